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
        let b = text.as_bytes();
        let n = b.len();
        let mut i = 0;
        while i < n {
            while i < n && !b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let start = i;
            while i < n && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if i > start {
                f(hash_ascii_alnum(&b[start..i]));
            }
        }
    } else {
        for t in text.split(|c: char| !c.is_alphanumeric()) {
            if !t.is_empty() {
                f(token_hash(t));
            }
        }
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
