//! The tokenizer shared by indexing and querying.
//!
//! It must split and fold exactly like `faultline_model::LogFilter::matches`:
//! tokens are maximal runs of characters for which `char::is_alphanumeric`
//! holds, each lowercased with `str::to_lowercase` (applied to the token on
//! its own, which matters for context-dependent rules like final sigma).
//! Tests in this crate check the agreement against `faultline_model`.

use crate::hash::{hash_ascii_alnum, hash_lowercase_bytes};

/// Lowercase tokens of `text`, as `LogFilter::matches` sees them (allocates;
/// for tests and tooling, the index itself uses [`for_each_token_hash`]).
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// Hash of one token (any case; it is lowercased first). Equal to
/// `hash_lowercase_bytes(token.to_lowercase().as_bytes())`.
pub fn token_hash(token: &str) -> u64 {
    if token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        hash_ascii_alnum(token.as_bytes())
    } else {
        hash_lowercase_bytes(token.to_lowercase().as_bytes())
    }
}

/// Calls `f` with the hash of every token of `text`, in order, duplicates
/// included. No allocation for ASCII text.
#[inline]
pub fn for_each_token_hash(text: &str, mut f: impl FnMut(u64)) {
    if text.is_ascii() {
        for_each_ascii_token(text.as_bytes(), |t| f(hash_ascii_alnum(t)));
    } else {
        for t in text.split(|c: char| !c.is_alphanumeric()) {
            if !t.is_empty() {
                f(token_hash(t));
            }
        }
    }
}

/// Bit `k` set when `block[k]` is an ASCII letter or digit; `block` is
/// ASCII. Eight bytes at a time in a `u64` (SWAR): for bytes below 0x80,
/// adding `0x80 - n` sets a byte's top bit exactly when it is at least
/// `n`, so two additions bound a range; a multiplication then gathers the
/// eight top bits into one byte. (The compiler's vectorization of the
/// byte-wise test did four bytes per step.)
#[inline(always)]
fn alnum_mask(block: &[u8; 64]) -> u64 {
    debug_assert!(block.is_ascii(), "a byte above 0x7f would carry");
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut m = 0u64;
    for (k, word) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let digit = x.wrapping_add(ONES * (0x80 - b'0' as u64))
            & !x.wrapping_add(ONES * (0x80 - (b'9' as u64 + 1)));
        let y = x | (ONES * 0x20);
        let letter = y.wrapping_add(ONES * (0x80 - b'a' as u64))
            & !y.wrapping_add(ONES * (0x80 - (b'z' as u64 + 1)));
        let top = (digit | letter) & HIGH;
        // Bit 7 of byte i → bit 56 + i.
        let bits = ((top >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) & 0xff;
        m |= bits << (8 * k);
    }
    m
}

/// Calls `f` with every maximal run of ASCII letters and digits of `b`, in
/// order. Classifies 64 bytes at a time into a bit mask and takes the
/// token boundaries from its bits, so the cost is one branch per token
/// instead of one (often mispredicted) per byte.
#[inline]
fn for_each_ascii_token(b: &[u8], mut f: impl FnMut(&[u8])) {
    let n = b.len();
    // Where the token being read started, if one is open.
    let mut open: Option<usize> = None;
    // Whether the byte before the block was alphanumeric.
    let mut carry = 0u64;
    let mut base = 0;
    while base < n {
        let m = match b[base..].first_chunk::<64>() {
            Some(block) => alnum_mask(block),
            None => {
                // The last, partial block, padded with separators.
                let mut block = [0u8; 64];
                block[..n - base].copy_from_slice(&b[base..]);
                alnum_mask(&block)
            }
        };
        let before = (m << 1) | carry;
        let mut starts = m & !before;
        let mut ends = !m & before;
        carry = m >> 63;
        loop {
            match open {
                Some(s) => {
                    if ends == 0 {
                        break;
                    }
                    let e = base + ends.trailing_zeros() as usize;
                    ends &= ends - 1;
                    f(&b[s..e]);
                    open = None;
                }
                None => {
                    if starts == 0 {
                        break;
                    }
                    open = Some(base + starts.trailing_zeros() as usize);
                    starts &= starts - 1;
                }
            }
        }
        base += 64;
    }
    if let Some(s) = open {
        f(&b[s..]);
    }
}

/// The token hashes a row must contain for `LogFilter { q: Some(q) }` to
/// match it: every sub-token of every whitespace-separated term, sorted and
/// deduplicated. Empty when `q` has no token (then every row matches and the
/// index must not be used).
pub fn query_hashes(q: &str) -> Vec<u64> {
    let mut v = Vec::new();
    for_each_token_hash(q, |h| v.push(h));
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time definition the block tokenizer must agree with.
    fn reference(b: &[u8]) -> Vec<Vec<u8>> {
        b.split(|c| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn blocks(b: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for_each_ascii_token(b, |t| out.push(t.to_vec()));
        out
    }

    #[test]
    fn alnum_mask_classifies_every_ascii_byte_at_every_place() {
        for c in 0..0x80u8 {
            let alnum = c.is_ascii_alphanumeric();
            for k in 0..64 {
                let mut block = [b' '; 64];
                block[k] = c;
                let want = if alnum { 1u64 << k } else { 0 };
                assert_eq!(alnum_mask(&block), want, "byte {c:#x} at {k}");
            }
            let all = if alnum { u64::MAX } else { 0 };
            assert_eq!(alnum_mask(&[c; 64]), all, "byte {c:#x} everywhere");
        }
    }

    #[test]
    fn tokens_across_block_boundaries() {
        for len in [0, 1, 62, 63, 64, 65, 127, 128, 129, 200] {
            // One token filling everything, tokens of every phase around
            // the 64-byte boundaries, and separators only.
            let all = vec![b'a'; len];
            assert_eq!(blocks(&all), reference(&all), "len {len}");
            let every: Vec<u8> = (0..len)
                .map(|i| {
                    if i % 7 == 3 {
                        b' '
                    } else {
                        b'0' + (i % 10) as u8
                    }
                })
                .collect();
            assert_eq!(blocks(&every), reference(&every), "len {len}");
            let none = vec![b'-'; len];
            assert!(blocks(&none).is_empty());
        }
        // Every boundary byte value around the letter and digit ranges.
        let edges: Vec<u8> = (0u8..128).collect();
        assert_eq!(blocks(&edges), reference(&edges));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn block_tokenizer_agrees_with_bytewise(s in "[a-zA-Z0-9 ./:=@_\\-\\[\\]`{~\x00\x7f]{0,300}") {
            prop_assert_eq!(blocks(s.as_bytes()), reference(s.as_bytes()));
            let mut hashes = Vec::new();
            for_each_token_hash(&s, |h| hashes.push(h));
            let want: Vec<u64> = reference(s.as_bytes())
                .iter()
                .map(|t| hash_lowercase_bytes(&t.to_ascii_lowercase()))
                .collect();
            prop_assert_eq!(hashes, want);
        }
    }
}
