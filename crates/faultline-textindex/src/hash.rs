//! The token hash. **Part of the on-disk format** (v1): changing a single
//! output bit requires bumping [`crate::FORMAT_VERSION`] and rebuilding every
//! stored block. It is written here (not taken from a crate) so that no
//! dependency upgrade can change it; `hash_test_vectors` pins it.
//!
//! Construction: wyhash-style folded 64×64→128 multiplication over the
//! token's lowercase UTF-8 bytes, 8 bytes at a time, little-endian,
//! zero-padded tail, length mixed into the seed.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
/// Lowercases an ASCII alphanumeric byte (digits already have bit 5 set).
const ASCII_LOWER: u64 = 0x2020_2020_2020_2020;

#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// The 1..=7 bytes of `rem` as a zero-padded little-endian `u64`, with
/// overlapping loads instead of a copy through the stack.
#[inline(always)]
fn tail(rem: &[u8]) -> u64 {
    let r = rem.len();
    if r >= 4 {
        let lo = u32::from_le_bytes([rem[0], rem[1], rem[2], rem[3]]);
        let hi = u32::from_le_bytes([rem[r - 4], rem[r - 3], rem[r - 2], rem[r - 1]]);
        u64::from(lo) | u64::from(hi) << (8 * (r - 4))
    } else {
        u64::from(rem[0])
            | u64::from(rem[r / 2]) << (8 * (r / 2))
            | u64::from(rem[r - 1]) << (8 * (r - 1))
    }
}

/// Hash of `bytes | or` byte-wise (`or` is 0 or [`ASCII_LOWER`]).
#[inline(always)]
fn hash_impl(bytes: &[u8], or: u64) -> u64 {
    let len = bytes.len() as u64;
    let mut h = P0 ^ len.wrapping_mul(P1);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mum(h ^ (u64::from_le_bytes(w) | or), P1);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mask = or & (u64::MAX >> (64 - 8 * rem.len()));
        h = mum(h ^ (tail(rem) | mask), P2);
    }
    mum(h ^ P2, P1 ^ len)
}

/// Hash of already-lowercased token bytes.
#[inline]
pub fn hash_lowercase_bytes(bytes: &[u8]) -> u64 {
    hash_impl(bytes, 0)
}

/// Hash of an ASCII alphanumeric token in any case: equal to
/// `hash_lowercase_bytes(&token.to_ascii_lowercase())` without the copy.
#[inline]
pub(crate) fn hash_ascii_alnum(token: &[u8]) -> u64 {
    debug_assert!(token.iter().all(u8::is_ascii_alphanumeric));
    hash_impl(token, ASCII_LOWER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_test_vectors() {
        // Pinned: these values are stored on disk. Never update them without
        // bumping FORMAT_VERSION.
        let got: Vec<u64> = ["a", "error", "connection", "0123456789abcdef0", "é"]
            .iter()
            .map(|s| hash_lowercase_bytes(s.as_bytes()))
            .collect();
        let expected: Vec<u64> = PINNED.to_vec();
        assert_eq!(got, expected, "{got:#x?}");
    }

    const PINNED: [u64; 5] = [
        9526812410154502797,
        9575629578826225115,
        1655946789019810462,
        12567581213278911965,
        16218543599752293122,
    ];

    #[test]
    fn tail_is_zero_padded_le() {
        let b = [1u8, 2, 3, 4, 5, 6, 7];
        for r in 1..=7 {
            let mut w = [0u8; 8];
            w[..r].copy_from_slice(&b[..r]);
            assert_eq!(tail(&b[..r]), u64::from_le_bytes(w));
        }
    }

    #[test]
    fn ascii_fast_path_agrees() {
        for t in [
            "A",
            "Error",
            "CONNECTION",
            "abcDEF0123456789XYZ",
            "0",
            "x9Y8z7W6",
        ] {
            assert_eq!(
                hash_ascii_alnum(t.as_bytes()),
                hash_lowercase_bytes(t.to_ascii_lowercase().as_bytes())
            );
        }
    }
}
