//! A tiny, deterministic, fast hash (FxHash-style word mixing with a
//! murmur3 finaliser). Deterministic across processes and platforms, which
//! group ids rely on: never swap it for a randomly seeded hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x517c_c1b7_2722_0a95;

#[inline]
fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(SEED)
}

/// murmur3's 64-bit finaliser: spreads every input bit over the output.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Hashes a byte string, eight bytes at a time.
#[inline]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("chunk of 8")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(buf));
    }
    fmix64(h)
}

/// Combines a running hash with one more 64-bit value (order-sensitive).
#[inline]
pub(crate) fn combine(h: u64, v: u64) -> u64 {
    fmix64(mix(h, v))
}

/// `Hasher` for in-memory maps keyed by values that are already hashes or
/// small integers.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    h: u64,
}

impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.h
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.h = mix(self.h, hash_bytes(bytes));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.h = mix(self.h, i);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.h = mix(self.h, u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.h = mix(self.h, i as u64);
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_across_builds() {
        // Group ids are persisted: this value must never change.
        assert_eq!(
            hash_bytes(b"user <*> logged in"),
            hash_bytes(b"user <*> logged in")
        );
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
    }
}
