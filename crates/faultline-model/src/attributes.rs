//! [`Attributes`]: an entry's flat key → value map, kept as a vector sorted
//! by key.
//!
//! Entries carry a handful of attributes. A `BTreeMap` allocated a leaf of
//! eleven slots (about 650 bytes) for the first one, searched and shifted
//! on each insert and walked its nodes to free them: about 5 % of the
//! server's CPU under sustained ingest, decoding on the HTTP workers and
//! freeing on the writer's helper thread. A sorted vector is one allocation
//! of the size needed, and iterates, compares, serializes and looks up
//! (binary search) in the same order and with the same results.

use crate::entry::{AttrValue, Name};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Attributes in a stable (sorted by key) order; one value per key.
#[derive(Clone, Default, PartialEq)]
pub struct Attributes(Vec<(Name, AttrValue)>);

impl Attributes {
    /// No attributes (allocates nothing).
    pub const fn new() -> Attributes {
        Attributes(Vec::new())
    }

    /// Room for `n` attributes without reallocating.
    pub fn with_capacity(n: usize) -> Attributes {
        Attributes(Vec::with_capacity(n))
    }

    /// Room for `n` more attributes without reallocating.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve_exact(n);
    }

    /// Sets `key` to `value`; returns the value it replaced, if any. Keys
    /// in ascending order are appended; others shift the later ones, so
    /// many keys in another order go in faster with [`Extend`] or
    /// `collect`.
    pub fn insert(&mut self, key: Name, value: AttrValue) -> Option<AttrValue> {
        // Keys often come in order (stored entries, sorted producers).
        if self.0.last().is_none_or(|(last, _)| *last < key) {
            self.0.push((key, value));
            return None;
        }
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Removes `key`; returns its value, if it was there.
    pub fn remove(&mut self, key: &str) -> Option<AttrValue> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Key and value pairs in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &Name> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Sorts by key after pushes, the last value of a key winning:
    /// O(n log n) whatever the order (linear for keys already in order).
    fn normalize(&mut self) {
        // A stable sort keeps equal keys in insertion order; reversed, the
        // dedup (which keeps the first of a run) keeps the last inserted.
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
        self.0.reverse();
        self.0.dedup_by(|later, earlier| later.0 == earlier.0);
        self.0.reverse();
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

/// Iterator over `(&key, &value)` in key order (as `BTreeMap::iter`).
pub struct Iter<'a>(std::slice::Iter<'a, (Name, AttrValue)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Name, &'a AttrValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a Name, &'a AttrValue);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Attributes {
    type Item = (Name, AttrValue);
    type IntoIter = std::vec::IntoIter<(Name, AttrValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Later pairs win over earlier ones with the same key (as collecting into
/// a `BTreeMap`).
impl<K: Into<Name>> FromIterator<(K, AttrValue)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, AttrValue)>>(iter: I) -> Attributes {
        let mut out = Attributes::new();
        out.extend(iter);
        out
    }
}

impl<K: Into<Name>> Extend<(K, AttrValue)> for Attributes {
    fn extend<I: IntoIterator<Item = (K, AttrValue)>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(|(k, v)| (k.into(), v)));
        self.normalize();
    }
}

/// The value of a key that must be there (panics otherwise, as indexing a
/// `BTreeMap` does).
impl std::ops::Index<&str> for Attributes {
    type Output = AttrValue;

    fn index(&self, key: &str) -> &AttrValue {
        self.get(key).expect("no attribute with this key")
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A JSON object, keys in order.
impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attributes, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = Attributes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of attributes")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
                let mut out = Attributes::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry::<Name, AttrValue>()? {
                    out.0.push(pair);
                }
                out.normalize();
                Ok(out)
            }
        }

        d.deserialize_map(MapVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn int(i: i64) -> AttrValue {
        AttrValue::Int(i)
    }

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut a = Attributes::new();
        let mut b: BTreeMap<Name, AttrValue> = BTreeMap::new();
        for (i, k) in ["m", "c", "x", "a", "c", "z", "b", "m", ""]
            .iter()
            .enumerate()
        {
            assert_eq!(
                a.insert((*k).into(), int(i as i64)),
                b.insert((*k).into(), int(i as i64)),
                "{k}"
            );
        }
        assert_eq!(a.len(), b.len());
        assert!(a.iter().eq(b.iter()));
        assert!(a.iter().rev().eq(b.iter().rev()));
        for k in ["a", "c", "m", "q", "", "zz"] {
            assert_eq!(a.get(k), b.get(k), "{k}");
            assert_eq!(a.contains_key(k), b.contains_key(k), "{k}");
        }
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(a.remove("c"), b.remove("c"));
        assert_eq!(a.remove("c"), None);
        assert!(a.keys().eq(b.keys()));
        let owned: Vec<(Name, AttrValue)> = a.clone().into_iter().collect();
        assert_eq!(owned, b.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn many_keys_in_any_order_go_in_quickly() {
        // Descending, the worst order for inserts one by one (quadratic):
        // collected and deserialized in O(n log n).
        let n = 200_000;
        let keys: Vec<String> = (0..n).rev().map(|i| format!("k{i:06}")).collect();
        let a: Attributes = keys.iter().map(|k| (k.as_str(), int(1))).collect();
        assert_eq!(a.len(), n);
        assert!(a.keys().zip(a.keys().skip(1)).all(|(x, y)| x < y));
        let json = format!(
            "{{{}}}",
            keys.iter()
                .map(|k| format!("\"{k}\":2"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let b: Attributes = serde_json::from_str(&json).unwrap();
        assert_eq!(b.len(), n);
        assert_eq!(b.get("k000000"), Some(&int(2)));
        assert!(b.iter().map(|(k, _)| k).eq(a.keys()));
    }

    #[test]
    fn json_round_trip_with_the_last_duplicate_winning() {
        let a: Attributes = serde_json::from_str(r#"{"b":true,"a":"x","b":2,"c":1.5}"#).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.get("b"), Some(&int(2)));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"a":"x","b":2,"c":1.5}"#
        );
        let back: Attributes = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let collected: Attributes = [("k", int(1)), ("j", int(2)), ("k", int(3))]
            .into_iter()
            .collect();
        assert_eq!(format!("{collected:?}"), r#"{"j": Int(2), "k": Int(3)}"#);
    }
}
