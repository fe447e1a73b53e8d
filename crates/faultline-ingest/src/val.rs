//! A JSON value that borrows strings from the request body where it can and
//! keeps object fields in a small vector: decoding an entry allocates only
//! for what the entry keeps (`serde_json::Value` allocated every key and
//! built a tree map per entry, most of the decode time).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A JSON number as it was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    I(i64),
    U(u64),
    F(f64),
}

impl Num {
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Num::I(i) => Some(i),
            Num::U(u) => i64::try_from(u).ok(),
            Num::F(_) => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::U(u) => u as f64,
            Num::F(f) => f,
        }
    }
}

/// Object fields in the order they were written.
pub type Obj<'de> = Vec<(Cow<'de, str>, Val<'de>)>;

/// A JSON value. The 8-byte tag (`repr(u64)`) makes every move of a value
/// a few aligned word copies: with the default one-byte tag, values moved
/// through temporaries were copied in odd-sized pieces that the CPU could
/// not forward to the next load, about 10 % of the decode time.
#[derive(Debug, Clone, PartialEq)]
#[repr(u64)]
pub enum Val<'de> {
    Null,
    Bool(bool),
    Number(Num),
    String(Cow<'de, str>),
    Array(Vec<Val<'de>>),
    Object(Obj<'de>),
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Number(Num::I(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Number(Num::U(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Number(Num::F(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        Val::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Val::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        let mut fields = Vec::with_capacity(12);
        while let Some(k) = map.next_key::<Key<'de>>()? {
            fields.push((k.0, map.next_value()?));
        }
        Ok(Val::Object(fields))
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// An object key, borrowed unless it contained escapes.
pub struct Key<'de>(pub Cow<'de, str>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_owns_escaped_ones() {
        let v: Val<'_> =
            serde_json::from_str(r#"{"a":"x","b\n":"y\"","c":[1,-2,1.5,true,null]}"#).unwrap();
        let Val::Object(fields) = v else { panic!() };
        assert!(matches!(&fields[0].0, Cow::Borrowed("a")));
        assert!(matches!(&fields[0].1, Val::String(Cow::Borrowed("x"))));
        assert!(matches!(&fields[1].0, Cow::Owned(k) if k == "b\n"));
        assert!(matches!(&fields[1].1, Val::String(Cow::Owned(s)) if s == "y\""));
        assert_eq!(
            fields[2].1,
            Val::Array(vec![
                Val::Number(Num::U(1)),
                Val::Number(Num::I(-2)),
                Val::Number(Num::F(1.5)),
                Val::Bool(true),
                Val::Null
            ])
        );
    }
}
