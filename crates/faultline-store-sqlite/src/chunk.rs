//! The encoding of a log chunk: the entries of one service stored in one
//! `log_chunks` row (see the crate docs for why).
//!
//! A chunk's `data` blob is one codec byte and a body. The only codec is
//! [`CODEC_RAW`] (the body is the payload itself); the byte leaves room for
//! a compressed one. LZ4 (`lz4_flex`, block format) was tried: the database
//! was ≈37 % smaller, but appends were no faster (within the noise of the
//! measurements, one run faster, one slower), and the store contract's
//! `size_is_reported` expects the reported size to count the bytes stored,
//! which highly repetitive test messages compress far below. Worth
//! revisiting for disk space.
//!
//! The payload is the entry count (varint), then one record per entry in id
//! order: its length (varint, of what follows), then
//! - the id minus the chunk's `first_id` (varint),
//! - the timestamp minus the previous record's (zigzag varint; the first
//!   record's is relative to 0),
//! - `received_at` minus the timestamp (zigzag varint),
//! - the rest, copied as is when a chunk is rewritten: the level code (one
//!   byte), a flags byte ([`HAS_TAGS`], [`HAS_HOST`], [`HAS_ATTRS`],
//!   [`HAS_TRACE`], [`HAS_SPAN`]), the message (varint length + UTF-8), then
//!   only the parts the flags announce: tags (count, then each as
//!   length + UTF-8), host, attributes (count, then key, a type byte and the
//!   value: bool one byte, int zigzag varint, float 8 bytes little endian,
//!   string length + UTF-8), trace id, span id.
//!
//! Reading decodes the record headers (id, timestamp, level and where the
//! rest is) without building entries; the message, tags and the whole entry
//! are read from the rest on demand.

use faultline_model::{AttrValue, Attributes, Level, Name, NewEntry, StoredEntry};
use faultline_store::{Result, StoreError};
use std::ops::Range;

pub(crate) const CODEC_RAW: u8 = 0;

const HAS_TAGS: u8 = 1;
const HAS_HOST: u8 = 2;
const HAS_ATTRS: u8 = 4;
const HAS_TRACE: u8 = 8;
const HAS_SPAN: u8 = 16;

const ATTR_BOOL: u8 = 0;
const ATTR_INT: u8 = 1;
const ATTR_FLOAT: u8 = 2;
const ATTR_STR: u8 = 3;

/// Most entries in one chunk.
pub(crate) const MAX_ENTRIES: usize = 1024;
/// A chunk is closed once its payload passes this many bytes. Reading one
/// entry (a full-text candidate) reads and decodes its whole chunk, so
/// chunks stay small: at 32 KiB (about 130 typical entries) a candidate
/// costs about as much as reading a few dozen rows did.
pub(crate) const MAX_BYTES: usize = 32 * 1024;
/// Widest timestamp range of one chunk (µs): a newest-first walk from a
/// timestamp `t` only needs the chunks with `max_ts <= t + MAX_SPAN`, and
/// reads the index entries of all chunks ending in `(t, t + MAX_SPAN]` to
/// find them: at 100k entries/s in chunks of ~100, a minute is ~60,000
/// index entries (a few ms), an hour would be 3.6 M. Entries arriving with
/// timestamps near their receive time (the usual case) make chunks that
/// span milliseconds; a backfill of old entries is cut into chunks of a
/// minute of timestamps each.
pub(crate) const MAX_SPAN: i64 = 60 * 1_000_000;

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

/// Writes a varint at `at` of a buffer with room for it; returns the end.
#[inline]
fn put_varint_at(buf: &mut [u8; 30], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

#[inline]
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn corrupt() -> StoreError {
    StoreError::Invalid("a stored log chunk is corrupt".into())
}

/// A cursor over encoded bytes.
struct Bytes<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let byte = *self.b.get(self.at).ok_or_else(corrupt)?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt())
    }

    #[inline]
    fn zigzag(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    #[inline]
    fn byte(&mut self) -> Result<u8> {
        let b = *self.b.get(self.at).ok_or_else(corrupt)?;
        self.at += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(corrupt)?;
        let s = self.b.get(self.at..end).ok_or_else(corrupt)?;
        self.at = end;
        Ok(s)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str> {
        let n = usize::try_from(self.varint()?).map_err(|_| corrupt())?;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt())
    }
}

/// Builds one chunk. Reusable: [`ChunkBuilder::finish`] resets it and keeps
/// its buffers.
pub(crate) struct ChunkBuilder {
    payload: Vec<u8>,
    record: Vec<u8>,
    count: usize,
    pub(crate) first_id: i64,
    pub(crate) last_id: i64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    /// Bit `code` set for every level code present.
    pub(crate) levels: i64,
    prev_ts: i64,
    /// The finished blob.
    out: Vec<u8>,
}

impl ChunkBuilder {
    pub(crate) fn new() -> ChunkBuilder {
        ChunkBuilder {
            payload: Vec::new(),
            record: Vec::new(),
            count: 0,
            first_id: 0,
            last_id: 0,
            min_ts: 0,
            max_ts: 0,
            levels: 0,
            prev_ts: 0,
            out: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Drops the entries added since the last `finish` (a failed append).
    pub(crate) fn clear(&mut self) {
        self.count = 0;
    }

    /// Whether an entry with timestamp `ts` must go to a new chunk.
    #[inline]
    pub(crate) fn full_for(&self, ts: i64) -> bool {
        self.count > 0
            && (self.count >= MAX_ENTRIES
                || self.payload.len() >= MAX_BYTES
                || ts.max(self.max_ts).saturating_sub(ts.min(self.min_ts)) > MAX_SPAN)
    }

    /// Adds an entry with id `id` (greater than the previous one's).
    pub(crate) fn push(&mut self, id: i64, e: &NewEntry) -> Result<()> {
        let mut rest = std::mem::take(&mut self.record);
        rest.clear();
        encode_rest(&mut rest, e)?;
        self.push_raw(id, e.timestamp, e.received_at, e.level.code(), &rest);
        self.record = rest;
        Ok(())
    }

    /// Adds an entry whose rest (level onwards) is already encoded.
    pub(crate) fn push_raw(&mut self, id: i64, ts: i64, received_at: i64, level: u8, rest: &[u8]) {
        if self.count == 0 {
            self.first_id = id;
            self.min_ts = ts;
            self.max_ts = ts;
            self.levels = 0;
            self.prev_ts = 0;
            self.payload.clear();
            // Room for the count, patched in `finish`.
            self.payload.extend_from_slice(&[0; 5]);
        }
        let mut head = [0u8; 30];
        let mut n = put_varint_at(&mut head, 0, (id - self.first_id) as u64);
        n = put_varint_at(&mut head, n, zigzag(ts.wrapping_sub(self.prev_ts)));
        n = put_varint_at(&mut head, n, zigzag(received_at.wrapping_sub(ts)));
        put_varint(&mut self.payload, (n + rest.len()) as u64);
        self.payload.extend_from_slice(&head[..n]);
        self.payload.extend_from_slice(rest);
        self.prev_ts = ts;
        self.count += 1;
        self.last_id = id;
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.levels |= 1 << level;
    }

    /// The encoded blob of the entries added since the last `finish`, and
    /// resets the builder (its metadata fields stay readable until the next
    /// push).
    pub(crate) fn finish(&mut self) -> &[u8] {
        // The count, as a fixed 5-byte varint (padded with continuation
        // bytes), so it can be written last.
        let c = self.count as u64;
        for i in 0..5 {
            let b = ((c >> (7 * i)) & 0x7f) as u8;
            self.payload[i] = if i < 4 { b | 0x80 } else { b };
        }
        self.count = 0;
        self.out.clear();
        self.out.push(CODEC_RAW);
        self.out.extend_from_slice(&self.payload);
        &self.out
    }
}

/// Encodes what a record holds from the level on (see the module docs);
/// the same bytes whether done by [`ChunkBuilder::push`] or beforehand, for
/// [`ChunkBuilder::push_raw`].
pub(crate) fn encode_rest(out: &mut Vec<u8>, e: &NewEntry) -> Result<()> {
    let mut flags = 0;
    if !e.tags.is_empty() {
        flags |= HAS_TAGS;
    }
    if e.host.is_some() {
        flags |= HAS_HOST;
    }
    if !e.attributes.is_empty() {
        flags |= HAS_ATTRS;
    }
    if e.trace_id.is_some() {
        flags |= HAS_TRACE;
    }
    if e.span_id.is_some() {
        flags |= HAS_SPAN;
    }
    out.push(e.level.code());
    out.push(flags);
    put_str(out, &e.message);
    if !e.tags.is_empty() {
        put_varint(out, e.tags.len() as u64);
        for t in &e.tags {
            // Refused since the first schema (tags were stored between
            // U+001F separators); ingest refuses control characters anyway.
            if t.contains('\x1f') {
                return Err(StoreError::Invalid(format!(
                    "tag {t:?} contains the control character U+001F"
                )));
            }
            put_str(out, t);
        }
    }
    if let Some(h) = &e.host {
        put_str(out, h);
    }
    if !e.attributes.is_empty() {
        put_varint(out, e.attributes.len() as u64);
        for (k, v) in &e.attributes {
            put_str(out, k);
            match v {
                AttrValue::Bool(b) => {
                    out.push(ATTR_BOOL);
                    out.push(u8::from(*b));
                }
                AttrValue::Int(i) => {
                    out.push(ATTR_INT);
                    put_zigzag(out, *i);
                }
                AttrValue::Float(f) => {
                    out.push(ATTR_FLOAT);
                    out.extend_from_slice(&f.to_le_bytes());
                }
                AttrValue::Str(s) => {
                    out.push(ATTR_STR);
                    put_str(out, s);
                }
            }
        }
    }
    if let Some(t) = &e.trace_id {
        put_str(out, t);
    }
    if let Some(s) = &e.span_id {
        put_str(out, s);
    }
    Ok(())
}

/// One entry's header in a decoded chunk.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub(crate) id: i64,
    pub(crate) ts: i64,
    pub(crate) received_at: i64,
    pub(crate) level: u8,
    /// Where the rest (level onwards) is in the payload.
    rest: Range<usize>,
}

/// A decoded chunk: its payload and its entries' headers, in id order.
pub(crate) struct Chunk {
    pub(crate) service_id: i64,
    payload: Vec<u8>,
    pub(crate) recs: Vec<Rec>,
}

/// Where the payload starts in a chunk's blob.
fn payload_start(data: &[u8]) -> Result<usize> {
    match data.first() {
        Some(&CODEC_RAW) => Ok(1),
        Some(&codec) => Err(StoreError::Invalid(format!(
            "a stored log chunk has unknown codec {codec}; upgrade faultline"
        ))),
        None => Err(corrupt()),
    }
}

impl Chunk {
    /// Decodes the blob of the chunk whose first id is `first_id` (kept as
    /// it is: records point into it).
    pub(crate) fn decode(first_id: i64, service_id: i64, data: Vec<u8>) -> Result<Chunk> {
        let p = data;
        let start = payload_start(&p)?;
        let mut recs = Vec::new();
        {
            let mut b = Bytes { b: &p, at: start };
            let count = usize::try_from(b.varint()?).map_err(|_| corrupt())?;
            if count > p.len() {
                return Err(corrupt());
            }
            recs.reserve_exact(count);
            let mut prev_ts = 0i64;
            for _ in 0..count {
                let len = usize::try_from(b.varint()?).map_err(|_| corrupt())?;
                let end = b.at.checked_add(len).ok_or_else(corrupt)?;
                if end > p.len() {
                    return Err(corrupt());
                }
                let off = i64::try_from(b.varint()?).map_err(|_| corrupt())?;
                let ts = prev_ts.wrapping_add(b.zigzag()?);
                let received_at = ts.wrapping_add(b.zigzag()?);
                prev_ts = ts;
                let level = *p.get(b.at).ok_or_else(corrupt)?;
                recs.push(Rec {
                    id: first_id + off,
                    ts,
                    received_at,
                    level,
                    rest: b.at..end,
                });
                b.at = end;
            }
        }
        Ok(Chunk {
            service_id,
            payload: p,
            recs,
        })
    }

    /// The message of `rec`.
    #[inline]
    pub(crate) fn message(&self, rec: &Rec) -> Result<&str> {
        let mut b = Bytes {
            b: &self.payload[rec.rest.clone()],
            at: 2,
        };
        b.str()
    }

    /// The encoded rest of `rec`, for rewriting the chunk.
    pub(crate) fn rest(&self, rec: &Rec) -> &[u8] {
        &self.payload[rec.rest.clone()]
    }

    /// Whether `rec` carries exactly the tag `tag`.
    pub(crate) fn has_tag(&self, rec: &Rec, tag: &str) -> Result<bool> {
        let mut b = Bytes {
            b: &self.payload[rec.rest.clone()],
            at: 1,
        };
        let flags = b.byte()?;
        if flags & HAS_TAGS == 0 {
            return Ok(false);
        }
        b.str()?;
        let n = b.varint()?;
        for _ in 0..n {
            if b.str()? == tag {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The whole entry of `rec`.
    pub(crate) fn entry(&self, rec: &Rec, project: &str, service: &str) -> Result<StoredEntry> {
        let mut b = Bytes {
            b: &self.payload[rec.rest.clone()],
            at: 0,
        };
        let code = b.byte()?;
        let level = Level::from_code(code).ok_or_else(|| {
            StoreError::Invalid(format!("entry {} has unknown level code {code}", rec.id))
        })?;
        let flags = b.byte()?;
        let message = b.str()?.to_owned();
        let mut tags = Vec::new();
        if flags & HAS_TAGS != 0 {
            let n = b.varint()?;
            for _ in 0..n {
                tags.push(Name::from(b.str()?));
            }
        }
        let host = if flags & HAS_HOST != 0 {
            Some(Name::from(b.str()?))
        } else {
            None
        };
        let mut attributes = Attributes::new();
        if flags & HAS_ATTRS != 0 {
            let n = b.varint()?;
            // Bounded: `n` comes from stored (possibly damaged) bytes.
            attributes.reserve(usize::try_from(n).unwrap_or(0).min(64));
            for _ in 0..n {
                let k = Name::from(b.str()?);
                let v = match b.byte()? {
                    ATTR_BOOL => AttrValue::Bool(b.byte()? != 0),
                    ATTR_INT => AttrValue::Int(b.zigzag()?),
                    ATTR_FLOAT => {
                        let bytes: [u8; 8] = b.take(8)?.try_into().map_err(|_| corrupt())?;
                        AttrValue::Float(f64::from_le_bytes(bytes))
                    }
                    ATTR_STR => AttrValue::Str(Name::from(b.str()?)),
                    _ => return Err(corrupt()),
                };
                attributes.insert(k, v);
            }
        }
        let trace_id = if flags & HAS_TRACE != 0 {
            Some(b.str()?.to_owned())
        } else {
            None
        };
        let span_id = if flags & HAS_SPAN != 0 {
            Some(b.str()?.to_owned())
        } else {
            None
        };
        Ok(StoredEntry {
            id: rec.id,
            entry: NewEntry {
                project: Name::from(project),
                service: Name::from(service),
                level,
                message,
                tags,
                timestamp: rec.ts,
                received_at: rec.received_at,
                host,
                attributes,
                trace_id,
                span_id,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: i64) -> NewEntry {
        let mut attributes = Attributes::new();
        if i % 2 == 0 {
            attributes.insert("b".into(), AttrValue::Bool(true));
            attributes.insert("i".into(), AttrValue::Int(-i * 1_000_000_007));
            attributes.insert("f".into(), AttrValue::Float(-0.5 * i as f64));
            attributes.insert("s".into(), AttrValue::Str(format!("v{i} é").into()));
        }
        NewEntry {
            project: "p".into(),
            service: "s".into(),
            level: Level::from_code((i % 6 + 1) as u8).expect("level"),
            message: format!("message {i} ünïcode"),
            tags: (0..i % 3).map(|t| format!("t{t}").into()).collect(),
            timestamp: 1_700_000_000_000_000 - i * 7_919 * (i % 5 - 2),
            received_at: 1_700_000_000_000_000 + i,
            host: (i % 2 == 1).then(|| "host".into()),
            attributes,
            trace_id: (i % 3 == 0).then(|| format!("trace{i}")),
            span_id: (i % 4 == 0).then(|| format!("span{i}")),
        }
    }

    #[test]
    fn round_trip() {
        {
            let mut b = ChunkBuilder::new();
            let entries: Vec<NewEntry> = (0..300).map(sample).collect();
            for (i, e) in entries.iter().enumerate() {
                b.push(1_000 + 2 * i as i64, e).expect("push");
            }
            let (first, last) = (b.first_id, b.last_id);
            assert_eq!((first, last), (1_000, 1_598));
            let blob = b.finish().to_vec();
            assert_eq!(blob[0], CODEC_RAW);
            let c = Chunk::decode(first, 9, blob.clone()).expect("decode");
            assert_eq!(c.recs.len(), 300);
            for (i, (r, e)) in c.recs.iter().zip(&entries).enumerate() {
                let got = c.entry(r, "p", "s").expect("entry");
                assert_eq!(got.id, 1_000 + 2 * i as i64);
                assert_eq!(&got.entry, e);
                assert_eq!(c.message(r).expect("message"), e.message);
                assert_eq!(r.level, e.level.code());
                assert_eq!(c.has_tag(r, "t1").expect("tag"), e.tags.len() > 1);
                // Rewriting copies the rest.
            }
            // A rewrite keeping every other entry.
            let mut w = ChunkBuilder::new();
            for r in c.recs.iter().step_by(2) {
                w.push_raw(r.id, r.ts, r.received_at, r.level, c.rest(r));
            }
            let first = w.first_id;
            let blob = w.finish().to_vec();
            let c2 = Chunk::decode(first, 9, blob.clone()).expect("decode rewrite");
            assert_eq!(c2.recs.len(), 150);
            for (r, e) in c2.recs.iter().zip(entries.iter().step_by(2)) {
                assert_eq!(&c2.entry(r, "p", "s").expect("entry").entry, e);
            }
        }
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        let mut b = ChunkBuilder::new();
        b.push(1, &sample(1)).expect("push");
        let blob = b.finish().to_vec();
        for n in 0..blob.len() {
            if let Ok(c) = Chunk::decode(1, 1, blob[..n].to_vec()) {
                for r in &c.recs {
                    let _ = c.entry(r, "p", "s");
                }
            }
        }
        assert!(Chunk::decode(1, 1, vec![7, 0]).is_err());
    }
}
