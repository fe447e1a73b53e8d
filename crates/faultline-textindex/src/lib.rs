//! A cheap full-text index for log rows: per-block bloom filters plus
//! compact postings, built in memory and stored by the storage adapter as
//! two opaque blobs per block. No SQL, no I/O.
//!
//! # Why
//!
//! FTS5 maintenance costs ≈17 µs of CPU per row. This index costs ≈1 µs per
//! row to build (see `benches/index.rs`) because it does no per-token
//! allocation and no B-tree maintenance: a row's tokens are hashed and
//! appended as packed `u64`s to one flat `Vec`, and a finished block is one
//! sort plus a linear encode.
//!
//! # Model
//!
//! Rows have increasing integer ids (the SQLite rowid). Consecutive rows are
//! grouped into *blocks* of at most [`BLOCK_ROWS`] rows. For every finished
//! block the adapter stores `first_row`, `last_row` and two blobs from
//! [`EncodedBlock`]:
//!
//! * `bloom`: a cache-line blocked bloom filter of the block's distinct
//!   token keys (≈10 bits per distinct token, ≈1% false positives). A probe
//!   reads 8 header bytes and one 64-byte block ([`bloom_may_contain`], or
//!   piecewise with [`bloom_blocks`] / [`bloom_probe_range`] /
//!   [`bloom_block_may_contain`]).
//! * `postings`: sorted distinct token keys with a sparse directory (one
//!   entry per 64 keys) and delta-varint row-offset lists
//!   ([`postings_lookup`], or piecewise through [`ReadAt`] with
//!   [`postings_lookup_read`]); the layout is documented in the `postings`
//!   module source and in [`PostingsHeader`].
//!
//! Block size: 16,384 rows keeps a selective query over 10 M rows at ≈610
//! bloom probes (a few µs), keeps a block's sort buffer (≈15 postings per
//! row × 8 bytes ≈ 2 MB) in L2/L3, and keeps row offsets small (deltas of
//! common tokens fit one byte). The builder accepts any size up to
//! `u32::MAX` row-id span; the adapter decides when to call
//! [`BlockBuilder::finish`].
//!
//! # Tokens and hashes
//!
//! Tokenization is exactly `faultline_model::LogFilter::matches`'s (runs of
//! alphanumeric chars, `str::to_lowercase` per token): see [`tokens`],
//! [`for_each_token_hash`]. Each token is hashed to 64 bits with the
//! in-crate hash in `hash.rs`; the index stores the *key*, the high 32 bits
//! ([`key`]). **The hash function and the key derivation are part of the
//! on-disk format**: changing them needs a new [`FORMAT_VERSION`] and a
//! rebuild of all blocks (cheap: rebuild from the rows, ≈1 µs each).
//!
//! # Query contract: false positives, never false negatives
//!
//! For a query `q`, take [`query_hashes`]`(q)` (all sub-tokens of all
//! terms). If it is empty the index cannot help (every row matches). Else a
//! row can only match if it contains every one of those tokens, so the
//! candidates of a block are the intersection of their row lists
//! ([`block_candidates`]). Candidates may be false positives (phrase order
//! not checked, 32-bit key collisions, bloom false positives are filtered by
//! the postings lookup anyway): **the caller must re-check every candidate
//! row's message with `LogFilter::matches`**. A row accepted by
//! `LogFilter::matches` is never missing from the candidates (tested by a
//! proptest).
//!
//! # Integration (the SQLite adapter)
//!
//! * Table `text_blocks(first_row INTEGER PRIMARY KEY, last_row, bloom
//!   BLOB, postings BLOB)`. Blooms are small (≈3–4 bytes per row); keep them
//!   all in memory (loaded at startup, appended on finish) or read them
//!   piecewise. (The SQLite adapter as built cuts both blobs into rows that
//!   fit one page, because piecewise reads of a large blob walk its
//!   overflow-page chain; see `faultline-store-sqlite`'s `index.rs`.)
//! * Writer: in the same transaction that inserts rows, `add` each row to
//!   the open [`BlockBuilder`]; when [`BlockBuilder::len`] reaches
//!   [`BLOCK_ROWS`], `finish` and insert the blobs in that transaction.
//! * Open block: lives only in memory. It is queried directly
//!   ([`BlockBuilder::candidates`]) or by scanning the rows with
//!   `rowid > last finished last_row` (≤ 16,384 rows). Crash safety: nothing
//!   to persist; at startup rebuild the builder from the rows after the last
//!   finished block (≈16 k rows × ≈1 µs ≈ 20 ms). If the writer rolls back a
//!   transaction, rebuild the same way (or build from the committed rows).
//! * Retention: a block's row is deleted when its `last_row` is below the
//!   oldest surviving row id (all its rows are gone). Rows deleted
//!   individually inside a live block simply fail the row fetch / re-check.

mod bloom;
mod hash;
mod postings;
mod token;
mod varint;

pub use bloom::{bloom_block_may_contain, bloom_blocks, bloom_may_contain, bloom_probe_range};
pub use hash::hash_lowercase_bytes;
pub use postings::{PostingsHeader, ReadAt, Rows, postings_lookup, postings_lookup_read};
pub use token::{for_each_token_hash, query_hashes, token_hash, tokens};

/// Version byte written in both blobs. Bump on any change to the layouts,
/// the tokenizer, the hash or [`key`].
pub const FORMAT_VERSION: u8 = 1;

/// Recommended rows per block.
pub const BLOCK_ROWS: usize = 16_384;

/// The part of a token hash the index stores (high 32 bits).
#[inline(always)]
pub fn key(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// A blob is not a valid v1 index blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    BadMagic,
    UnsupportedVersion(u8),
    Truncated,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadMagic => f.write_str("not a text index blob"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported text index version {v}"),
            Self::Truncated => f.write_str("truncated text index blob"),
        }
    }
}

impl std::error::Error for FormatError {}

/// [`BlockBuilder::add`] was given an unusable row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// Row ids must strictly increase within a block.
    NotIncreasing { last: i64, got: i64 },
    /// `row_id - first_row` must fit in a `u32`.
    SpanTooLarge,
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotIncreasing { last, got } => {
                write!(f, "row id {got} does not follow {last}")
            }
            Self::SpanTooLarge => f.write_str("row id span of a block exceeds u32"),
        }
    }
}

impl std::error::Error for AddError {}

/// One finished block, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBlock {
    pub first_row: i64,
    pub last_row: i64,
    /// Rows added (ids may have gaps).
    pub rows: u32,
    pub bloom: Vec<u8>,
    pub postings: Vec<u8>,
}

/// Accumulates the open block. Reusable: `finish` resets it and keeps its
/// allocations.
#[derive(Debug, Default)]
pub struct BlockBuilder {
    first_row: i64,
    last_row: i64,
    rows: u32,
    /// `key << 32 | (row_id - first_row)`, unsorted, with duplicates.
    postings: Vec<u64>,
    /// Radix sort buffer, kept between blocks.
    scratch: Vec<u64>,
}

impl BlockBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows added since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows as usize
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// `(first_row, last_row)` of the open block, if any row was added.
    pub fn row_range(&self) -> Option<(i64, i64)> {
        (self.rows > 0).then_some((self.first_row, self.last_row))
    }

    /// Indexes one row's text.
    #[inline]
    pub fn add(&mut self, row_id: i64, text: &str) -> Result<(), AddError> {
        let off = self.next_offset(row_id)?;
        let postings = &mut self.postings;
        for_each_token_hash(text, |h| {
            postings.push(u64::from(key(h)) << 32 | u64::from(off));
        });
        Ok(())
    }

    /// Indexes one row from its keys, as [`message_keys`] gives them for its
    /// text: the same as [`BlockBuilder::add`] with that text, without
    /// tokenizing (which the caller did elsewhere, in parallel).
    #[inline]
    pub fn add_keys(&mut self, row_id: i64, keys: &[u32]) -> Result<(), AddError> {
        let off = self.next_offset(row_id)?;
        self.postings
            .extend(keys.iter().map(|&k| u64::from(k) << 32 | u64::from(off)));
        Ok(())
    }

    /// Checks `row_id` and counts the row; its offset in the block.
    #[inline]
    fn next_offset(&mut self, row_id: i64) -> Result<u32, AddError> {
        if self.rows == 0 {
            self.first_row = row_id;
        } else if row_id <= self.last_row {
            return Err(AddError::NotIncreasing {
                last: self.last_row,
                got: row_id,
            });
        }
        let off = u32::try_from(row_id.wrapping_sub(self.first_row))
            .ok()
            .filter(|_| row_id >= self.first_row)
            .ok_or(AddError::SpanTooLarge)?;
        self.last_row = row_id;
        self.rows += 1;
        Ok(off)
    }

    /// Frees the sort buffer kept between blocks and the spare capacity of
    /// the open block (for idle periods; the next `finish` reallocates).
    pub fn release_memory(&mut self) {
        self.scratch = Vec::new();
        self.postings.shrink_to_fit();
    }

    /// Candidate rows of the open block for [`query_hashes`] output (same
    /// contract as [`block_candidates`]); a linear scan of the buffer.
    pub fn candidates(&self, hashes: &[u64]) -> Vec<i64> {
        let mut result: Option<Vec<u32>> = None;
        for &h in hashes {
            let k = key(h);
            let mut offs: Vec<u32> = self
                .postings
                .iter()
                .filter(|&&p| (p >> 32) as u32 == k)
                .map(|&p| p as u32)
                .collect();
            offs.sort_unstable();
            offs.dedup();
            result = Some(match result {
                None => offs,
                Some(r) => intersect(&r, &offs),
            });
            if result.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        result
            .unwrap_or_default()
            .into_iter()
            .map(|o| self.first_row + i64::from(o))
            .collect()
    }

    /// Encodes the open block and resets the builder. `None` if empty.
    pub fn finish(&mut self) -> Option<EncodedBlock> {
        if self.rows == 0 {
            return None;
        }
        sort_postings(&mut self.postings, &mut self.scratch);
        self.postings.dedup();
        let mut keys: Vec<u32> = self.postings.iter().map(|&p| (p >> 32) as u32).collect();
        keys.dedup();
        let bloom = bloom::build(keys.iter().copied());
        let mut postings = Vec::with_capacity(self.postings.len() * 2);
        postings::encode(self.first_row, &self.postings, &mut postings);
        let block = EncodedBlock {
            first_row: self.first_row,
            last_row: self.last_row,
            rows: self.rows,
            bloom,
            postings,
        };
        self.postings.clear();
        self.rows = 0;
        Some(block)
    }
}

/// Appends the keys a row's text is indexed under (its tokens' hashes'
/// [`key`]s, in token order) to `out`, for [`BlockBuilder::add_keys`].
#[inline]
pub fn message_keys(text: &str, out: &mut Vec<u32>) {
    for_each_token_hash(text, |h| out.push(key(h)));
}

/// Sorts packed postings. They were appended in row order, so a *stable*
/// sort on the 32-bit key alone (LSD radix, 3 passes of 11 bits) sorts them
/// completely, in O(n).
fn sort_postings(v: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    debug_assert!(v.windows(2).all(|w| w[0] as u32 <= w[1] as u32));
    if v.len() < 1024 {
        v.sort_unstable();
        return;
    }
    const BITS: u32 = 11;
    const SHIFTS: [u32; 3] = [32, 32 + BITS, 32 + 2 * BITS];
    let mut counts = [[0usize; 1 << BITS]; 3];
    for &p in v.iter() {
        for (c, &s) in counts.iter_mut().zip(&SHIFTS) {
            c[((p >> s) & ((1 << BITS) - 1)) as usize] += 1;
        }
    }
    scratch.clear();
    scratch.resize(v.len(), 0);
    for (c, &s) in counts.iter_mut().zip(&SHIFTS) {
        let mut sum = 0;
        for x in c.iter_mut() {
            let n = *x;
            *x = sum;
            sum += n;
        }
        for &p in v.iter() {
            let d = ((p >> s) & ((1 << BITS) - 1)) as usize;
            scratch[c[d]] = p;
            c[d] += 1;
        }
        std::mem::swap(v, scratch);
    }
}

/// The common elements of two ascending slices, ascending.
pub fn intersect<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Candidate row ids (ascending) of one finished block for the hashes of
/// [`query_hashes`]: rows containing every token, plus possible false
/// positives; the caller re-checks with `LogFilter::matches`. `hashes` must
/// be non-empty (an empty query matches every row). Probes the bloom for
/// every hash before touching the postings.
pub fn block_candidates(
    bloom: &[u8],
    postings: &[u8],
    hashes: &[u64],
) -> Result<Vec<i64>, FormatError> {
    if !hashes.iter().all(|&h| bloom_may_contain(bloom, h)) {
        return Ok(Vec::new());
    }
    let mut lists = Vec::with_capacity(hashes.len());
    for &h in hashes {
        match postings_lookup(postings, h)? {
            None => return Ok(Vec::new()),
            Some(rows) => lists.push(rows),
        }
    }
    lists.sort_by_key(Rows::count);
    let mut it = lists.into_iter();
    let mut acc: Vec<i64> = it.next().map(Iterator::collect).unwrap_or_default();
    for rows in it {
        if acc.is_empty() {
            break;
        }
        let mut rows = rows.peekable();
        acc.retain(|&r| {
            while rows.next_if(|&x| x < r).is_some() {}
            rows.peek() == Some(&r)
        });
    }
    Ok(acc)
}

#[cfg(test)]
mod tests;
