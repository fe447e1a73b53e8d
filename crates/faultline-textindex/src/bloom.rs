//! Cache-line blocked bloom filter over 32-bit token keys.
//!
//! Layout (v1): an 8-byte header `b'F' b'B' version k n_blocks:u32le`, then
//! `n_blocks` blocks of 64 bytes (512 bits). A key selects one block and sets
//! `k` bits in it, so a probe touches the header and one cache line.
//! Bit `i` of a block is bit `i % 8` of byte `i / 8`.

use crate::FormatError;

pub(crate) const BLOOM_HEADER: usize = 8;
pub(crate) const BLOOM_BLOCK: usize = 64;
const K: u8 = 7;
/// Filter bits per distinct key: ≈1% false positives with k = 7 in 512-bit
/// blocks (measured by `bloom_false_positive_rate`).
const BITS_PER_KEY: usize = 10;

#[inline(always)]
fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[inline(always)]
fn block_of(key: u32, n_blocks: u32) -> usize {
    let x = mix(u64::from(key));
    (((x >> 32) * u64::from(n_blocks)) >> 32) as usize
}

#[inline(always)]
fn bit_positions(key: u32) -> u64 {
    mix(u64::from(key) ^ 0x5851_f42d_4c95_7f2d)
}

/// Builds the filter for `keys` (any order, duplicates harmless).
pub(crate) fn build(keys: impl ExactSizeIterator<Item = u32> + Clone) -> Vec<u8> {
    let n_blocks = (keys.len() * BITS_PER_KEY).div_ceil(512).max(1) as u32;
    let mut out = vec![0u8; BLOOM_HEADER + n_blocks as usize * BLOOM_BLOCK];
    out[0] = b'F';
    out[1] = b'B';
    out[2] = crate::FORMAT_VERSION;
    out[3] = K;
    out[4..8].copy_from_slice(&n_blocks.to_le_bytes());
    for key in keys {
        let base = BLOOM_HEADER + block_of(key, n_blocks) * BLOOM_BLOCK;
        let mut bits = bit_positions(key);
        for _ in 0..K {
            let i = (bits & 511) as usize;
            bits >>= 9;
            out[base + i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Parses the 8-byte bloom header: the number of 64-byte blocks.
pub fn bloom_blocks(header: &[u8]) -> Result<u32, FormatError> {
    if header.len() < BLOOM_HEADER || header[0] != b'F' || header[1] != b'B' {
        return Err(FormatError::BadMagic);
    }
    if header[2] != crate::FORMAT_VERSION || header[3] != K {
        return Err(FormatError::UnsupportedVersion(header[2]));
    }
    let n = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if n == 0 {
        return Err(FormatError::Truncated);
    }
    Ok(n)
}

/// Byte range of the one 64-byte block a probe for `hash` reads, for
/// callers reading the blob piecewise (SQLite incremental blob I/O): read
/// the 8-byte header, then this range, then call [`bloom_block_may_contain`].
pub fn bloom_probe_range(n_blocks: u32, hash: u64) -> std::ops::Range<usize> {
    let start = BLOOM_HEADER + block_of(crate::key(hash), n_blocks) * BLOOM_BLOCK;
    start..start + BLOOM_BLOCK
}

/// Tests one 64-byte block (see [`bloom_probe_range`]).
#[inline]
pub fn bloom_block_may_contain(block: &[u8], hash: u64) -> bool {
    let mut bits = bit_positions(crate::key(hash));
    for _ in 0..K {
        let i = (bits & 511) as usize;
        bits >>= 9;
        if block[i / 8] & (1 << (i % 8)) == 0 {
            return false;
        }
    }
    true
}

/// Whether the block whose filter is `bloom` may contain a token with this
/// hash. `false` is definite; `true` may be a false positive (≈1%). Reads
/// the header and one 64-byte block. A malformed filter answers `true`
/// (never a false negative); use [`bloom_blocks`] to validate.
#[inline]
pub fn bloom_may_contain(bloom: &[u8], hash: u64) -> bool {
    let Ok(n) = bloom_blocks(bloom) else {
        return true;
    };
    let r = bloom_probe_range(n, hash);
    match bloom.get(r) {
        Some(block) => bloom_block_may_contain(block, hash),
        None => true,
    }
}
