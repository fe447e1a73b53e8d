//! The postings blob: for every distinct token key of a block, the sorted
//! offsets (`row_id - first_row`) of the rows containing it.
//!
//! Layout (v1), integers little-endian, varints LEB128:
//!
//! ```text
//! header (24 bytes): b"FTXP" version:u8 0 0 0 first_row:i64 n_keys:u32 n_groups:u32
//! directory: n_groups × { first_key:u32 keys_off:u32 lists_off:u32 }  (absolute offsets)
//! per group of GROUP (=64) consecutive keys, the last one shorter:
//!   key section, for each key:
//!     varint(key - previous key in group, first key: - first_key, i.e. 0)
//!     varint(count)
//!     count == 1: varint(offset)            (inline, no list)
//!     count >  1: varint(byte length of list)
//!   list section: the lists of the keys with count > 1, in key order, each
//!     varint(first offset) then varint(offset - previous offset) …
//! ```
//!
//! A lookup reads the header, ~log2(n_groups) directory entries, one key
//! section (≤ a few hundred bytes) and one list.

use crate::{FormatError, varint};

pub(crate) const GROUP: usize = 64;
pub(crate) const HEADER: usize = 24;
const DIR_ENTRY: usize = 12;

/// Encodes sorted, deduplicated packed postings `key << 32 | offset`.
pub(crate) fn encode(first_row: i64, sorted: &[u64], out: &mut Vec<u8>) {
    out.clear();
    // Distinct keys.
    let mut runs: Vec<(u32, usize, usize)> = Vec::new(); // key, start, end
    let mut i = 0;
    while i < sorted.len() {
        let key = (sorted[i] >> 32) as u32;
        let start = i;
        while i < sorted.len() && (sorted[i] >> 32) as u32 == key {
            i += 1;
        }
        runs.push((key, start, i));
    }
    let n_keys = runs.len();
    let n_groups = n_keys.div_ceil(GROUP);
    out.extend_from_slice(b"FTXP");
    out.extend_from_slice(&[crate::FORMAT_VERSION, 0, 0, 0]);
    out.extend_from_slice(&first_row.to_le_bytes());
    out.extend_from_slice(&(n_keys as u32).to_le_bytes());
    out.extend_from_slice(&(n_groups as u32).to_le_bytes());
    let dir_start = out.len();
    out.resize(dir_start + n_groups * DIR_ENTRY, 0);
    let mut lists = Vec::new();
    for (g, group) in runs.chunks(GROUP).enumerate() {
        let first_key = group[0].0;
        let keys_off = out.len() as u32;
        let mut prev = first_key;
        lists.clear();
        for &(key, s, e) in group {
            varint::put(out, u64::from(key - prev));
            prev = key;
            let count = e - s;
            varint::put(out, count as u64);
            if count == 1 {
                varint::put(out, sorted[s] & 0xffff_ffff);
            } else {
                let before = lists.len();
                let mut last = 0u64;
                for (j, p) in sorted[s..e].iter().enumerate() {
                    let off = p & 0xffff_ffff;
                    varint::put(&mut lists, if j == 0 { off } else { off - last });
                    last = off;
                }
                varint::put(out, (lists.len() - before) as u64);
            }
        }
        let lists_off = out.len() as u32;
        out.extend_from_slice(&lists);
        let d = dir_start + g * DIR_ENTRY;
        out[d..d + 4].copy_from_slice(&first_key.to_le_bytes());
        out[d + 4..d + 8].copy_from_slice(&keys_off.to_le_bytes());
        out[d + 8..d + 12].copy_from_slice(&lists_off.to_le_bytes());
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, FormatError> {
    let s = b.get(at..at + 4).ok_or(FormatError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The parsed fixed header of a postings blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostingsHeader {
    pub first_row: i64,
    pub n_keys: u32,
    pub n_groups: u32,
}

impl PostingsHeader {
    /// Size of the fixed header, the first read of a piecewise lookup.
    pub const LEN: usize = HEADER;

    pub fn parse(b: &[u8]) -> Result<Self, FormatError> {
        if b.len() < HEADER || &b[0..4] != b"FTXP" {
            return Err(FormatError::BadMagic);
        }
        if b[4] != crate::FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(b[4]));
        }
        let mut fr = [0u8; 8];
        fr.copy_from_slice(&b[8..16]);
        Ok(Self {
            first_row: i64::from_le_bytes(fr),
            n_keys: u32_at(b, 16)?,
            n_groups: u32_at(b, 20)?,
        })
    }
}

/// Row ids of one token key in one block, ascending.
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    first_row: i64,
    remaining: usize,
    last: u64,
    single: bool,
    bytes: &'a [u8],
}

impl Rows<'_> {
    /// Number of rows (known before decoding).
    pub fn count(&self) -> usize {
        self.remaining
    }
}

impl Iterator for Rows<'_> {
    type Item = i64;
    #[inline]
    fn next(&mut self) -> Option<i64> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.single {
            return Some(self.first_row + self.last as i64);
        }
        // Malformed lists end early rather than panic.
        let Some((d, n)) = varint::get(self.bytes) else {
            self.remaining = 0;
            return None;
        };
        self.bytes = &self.bytes[n..];
        self.last += d;
        Some(self.first_row + self.last as i64)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Where a key's rows are, found in a group's key section.
enum Found {
    Single(u64),
    /// `count` offsets in `len` bytes at `start` (absolute).
    List {
        count: usize,
        start: usize,
        len: usize,
    },
}

struct DirEntry {
    first_key: u32,
    keys_off: usize,
    lists_off: usize,
}

impl DirEntry {
    fn parse(b: &[u8]) -> Result<Self, FormatError> {
        Ok(Self {
            first_key: u32_at(b, 0)?,
            keys_off: u32_at(b, 4)? as usize,
            lists_off: u32_at(b, 8)? as usize,
        })
    }
}

/// Binary search over the directory with `entry(g)` reading entry `g`:
/// the group that may hold `key`, and its number of keys.
fn find_group(
    h: &PostingsHeader,
    key: u32,
    mut entry: impl FnMut(usize) -> Result<DirEntry, FormatError>,
) -> Result<Option<(DirEntry, usize)>, FormatError> {
    let n_groups = h.n_groups as usize;
    if n_groups == 0 {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0usize, n_groups);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if entry(mid)?.first_key <= key {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let e = entry(lo)?;
    if key < e.first_key || e.lists_off < e.keys_off {
        return Ok(None);
    }
    let keys = if lo + 1 == n_groups {
        (h.n_keys as usize)
            .checked_sub(lo * GROUP)
            .ok_or(FormatError::Truncated)?
    } else {
        GROUP
    };
    Ok(Some((e, keys)))
}

/// Scans a group's key section (bytes `keys_off..lists_off`) for `key`.
fn scan_group(
    section: &[u8],
    e: &DirEntry,
    keys_in_group: usize,
    key: u32,
) -> Result<Option<Found>, FormatError> {
    let mut pos = 0;
    let mut cur = e.first_key;
    let mut list_pos = e.lists_off;
    let mut next = || -> Result<u64, FormatError> {
        let (v, n) = varint::get(&section[pos..]).ok_or(FormatError::Truncated)?;
        pos += n;
        Ok(v)
    };
    for _ in 0..keys_in_group {
        cur = cur.wrapping_add(next()? as u32);
        let count = next()? as usize;
        let v = next()?;
        if cur > key {
            return Ok(None);
        }
        if count == 1 {
            if cur == key {
                return Ok(Some(Found::Single(v)));
            }
        } else {
            let len = v as usize;
            if cur == key {
                return Ok(Some(Found::List {
                    count,
                    start: list_pos,
                    len,
                }));
            }
            list_pos += len;
        }
    }
    Ok(None)
}

/// Looks up the rows of the token with this hash. `Ok(None)`: no row of the
/// block contains it. `Ok(Some(rows))` may include rows that do not (32-bit
/// key collision), never omits one that does. Touches the header, about
/// log2(keys / 64) directory entries, one key section and one list.
pub fn postings_lookup(postings: &[u8], hash: u64) -> Result<Option<Rows<'_>>, FormatError> {
    let h = PostingsHeader::parse(postings)?;
    let key = crate::key(hash);
    let entry = |g: usize| {
        let at = HEADER + g * DIR_ENTRY;
        DirEntry::parse(
            postings
                .get(at..at + DIR_ENTRY)
                .ok_or(FormatError::Truncated)?,
        )
    };
    let Some((e, n)) = find_group(&h, key, entry)? else {
        return Ok(None);
    };
    let section = postings
        .get(e.keys_off..e.lists_off)
        .ok_or(FormatError::Truncated)?;
    Ok(match scan_group(section, &e, n, key)? {
        None => None,
        Some(Found::Single(off)) => Some(Rows {
            first_row: h.first_row,
            remaining: 1,
            last: off,
            single: true,
            bytes: &[],
        }),
        Some(Found::List { count, start, len }) => Some(Rows {
            first_row: h.first_row,
            remaining: count,
            last: 0,
            single: false,
            bytes: postings
                .get(start..start + len)
                .ok_or(FormatError::Truncated)?,
        }),
    })
}

/// Random access to a stored blob, e.g. SQLite incremental blob I/O
/// (`rusqlite::blob::Blob::read_at_exact`).
pub trait ReadAt {
    type Error: From<FormatError>;
    /// Fills `buf` from `offset`; reading past the end is an error.
    fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error>;
}

impl ReadAt for &[u8] {
    type Error = FormatError;
    fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FormatError> {
        let src = self
            .get(offset..offset + buf.len())
            .ok_or(FormatError::Truncated)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// [`postings_lookup`] over a blob read piecewise: reads the 24-byte header,
/// ~log2(keys / 64) 12-byte directory entries, one key section (a few
/// hundred bytes) and the one list, never the whole blob. Row ids ascending.
pub fn postings_lookup_read<R: ReadAt>(r: &mut R, hash: u64) -> Result<Option<Vec<i64>>, R::Error> {
    let mut hb = [0u8; HEADER];
    r.read_at(0, &mut hb)?;
    let h = PostingsHeader::parse(&hb)?;
    let key = crate::key(hash);
    let mut io_err = None;
    let found = find_group(&h, key, |g| {
        let mut b = [0u8; DIR_ENTRY];
        match r.read_at(HEADER + g * DIR_ENTRY, &mut b) {
            Ok(()) => DirEntry::parse(&b),
            Err(e) => {
                io_err = Some(e);
                Err(FormatError::Truncated)
            }
        }
    });
    if let Some(e) = io_err {
        return Err(e);
    }
    let Some((e, n)) = found? else {
        return Ok(None);
    };
    let mut section = vec![0u8; e.lists_off - e.keys_off];
    r.read_at(e.keys_off, &mut section)?;
    Ok(match scan_group(&section, &e, n, key)? {
        None => None,
        Some(Found::Single(off)) => Some(vec![h.first_row + off as i64]),
        Some(Found::List { count, start, len }) => {
            let mut bytes = vec![0u8; len];
            r.read_at(start, &mut bytes)?;
            Some(
                Rows {
                    first_row: h.first_row,
                    remaining: count,
                    last: 0,
                    single: false,
                    bytes: &bytes,
                }
                .collect(),
            )
        }
    })
}
