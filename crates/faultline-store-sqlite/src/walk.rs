//! Log queries over chunks: the newest-first walk (a merge of chunks whose
//! time ranges may overlap) and the fetch of the full-text index's
//! candidates.

use crate::chunk::{self, Chunk, Rec};
use crate::db;
use crate::text::TextMatcher;
use faultline_model::StoredEntry;
use faultline_store::{Cursor, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a query keeps, besides its full-text search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter<'a> {
    /// Allowed service ids, sorted (None: all).
    pub(crate) services: Option<&'a [i64]>,
    /// Lowest level code kept (0: all).
    pub(crate) min_level: u8,
    pub(crate) tag: Option<&'a str>,
    pub(crate) since: Option<i64>,
    pub(crate) until: Option<i64>,
    /// Only entries strictly older than this in the (ts, id) order.
    pub(crate) cursor: Option<Cursor>,
}

impl Filter<'_> {
    /// The `levels` bits of the level codes kept.
    fn levels_mask(&self) -> i64 {
        (i64::from(self.min_level.max(1))..=7).fold(0, |m, c| m | 1 << c)
    }

    /// The newest timestamp an entry may have, if bounded.
    fn newest(&self) -> Option<i64> {
        let until = self.until.map(|u| u.saturating_sub(1));
        match (self.cursor.map(|c| c.timestamp), until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn service_allowed(&self, service_id: i64) -> bool {
        self.services
            .is_none_or(|s| s.binary_search(&service_id).is_ok())
    }

    /// The cheap checks, on the record header alone.
    #[inline]
    fn keeps(&self, r: &Rec) -> bool {
        r.level >= self.min_level
            && self.since.is_none_or(|s| r.ts >= s)
            && self.until.is_none_or(|u| r.ts < u)
            && self
                .cursor
                .is_none_or(|c| (r.ts, r.id) < (c.timestamp, c.id))
    }

    /// The checks that read the entry's body.
    fn keeps_body(&self, c: &Chunk, r: &Rec, text: Option<&mut TextMatcher>) -> Result<bool> {
        if let Some(tag) = self.tag
            && !c.has_tag(r, tag)?
        {
            return Ok(false);
        }
        match text {
            Some(m) => Ok(m.matches(c.message(r)?)),
            None => Ok(true),
        }
    }
}

/// SQL text being built with its numbered parameters.
#[derive(Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<Value>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder (`?N`).
    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }
}

/// The chunks that may hold entries of `f`, newest `max_ts` first: their
/// `first_id` and `max_ts`, read from a covering index (`log_chunks_ts`,
/// or `log_chunks_service` for one service) without touching the blobs.
/// The newest timestamp wanted bounds the index range: a chunk spans at
/// most [`chunk::MAX_SPAN`], so one whose `max_ts` is past `newest +
/// MAX_SPAN` starts after `newest`.
pub(crate) fn chunk_walk_sql(f: &Filter<'_>) -> Sql {
    let mut sql = Sql::default();
    let mut conds = Vec::new();
    if let Some(&[id]) = f.services {
        conds.push(format!("service_id = {}", sql.bind(id)));
    }
    if let Some(newest) = f.newest() {
        conds.push(format!(
            "max_ts <= {} AND min_ts <= {}",
            sql.bind(newest.saturating_add(chunk::MAX_SPAN)),
            sql.bind(newest)
        ));
    }
    if let Some(since) = f.since {
        conds.push(format!("max_ts >= {}", sql.bind(since)));
    }
    let mask = f.levels_mask();
    if f.min_level > 1 {
        conds.push(format!("levels & {} != 0", sql.bind(mask)));
    }
    match f.services {
        Some(ids) if ids.len() > 1 => {
            // The unary `+` keeps the walk on the (max_ts) order rather
            // than a sort of every chunk of those services.
            let list: Vec<String> = ids.iter().map(|&id| sql.bind(id)).collect();
            conds.push(format!("+service_id IN ({})", list.join(", ")));
        }
        _ => {}
    }
    let index = if matches!(f.services, Some(&[_])) {
        "log_chunks_service"
    } else {
        "log_chunks_ts"
    };
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    sql.text = format!(
        "SELECT first_id, max_ts FROM log_chunks INDEXED BY {index} {filter} ORDER BY max_ts DESC"
    );
    sql
}

pub(crate) const CHUNK_BY_FIRST_ID: &str =
    "SELECT service_id, data FROM log_chunks WHERE first_id = ?1";
pub(crate) const CHUNK_HOLDING: &str = "SELECT first_id, last_id, service_id, data FROM log_chunks \
    WHERE first_id <= ?1 ORDER BY first_id DESC LIMIT 1";

/// An entry found, before its service id is turned into names.
pub(crate) struct Found {
    pub(crate) service_id: i64,
    pub(crate) entry: StoredEntry,
}

fn found(c: &Chunk, r: &Rec) -> Result<Found> {
    Ok(Found {
        service_id: c.service_id,
        entry: c.entry(r, "", "")?,
    })
}

/// The entries of `f` (and matching `text`, if any), newest first by (ts,
/// id), skipping the first `skip` and keeping the next `want`; None when
/// that takes reading more than `budget` entries.
///
/// Chunks come newest `max_ts` first; their kept entries go on a heap; an
/// entry is final once it is newer than the next chunk's `max_ts` (no chunk
/// left can hold a newer one).
pub(crate) fn walk(
    conn: &Connection,
    f: &Filter<'_>,
    mut text: Option<&mut TextMatcher>,
    mut skip: usize,
    want: usize,
    budget: usize,
) -> Result<Option<Vec<Found>>> {
    let sql = chunk_walk_sql(f);
    let mut list = conn
        .prepare_cached(&sql.text)
        .map_err(db("prepare a chunk walk"))?;
    let mut fetch = conn
        .prepare_cached(CHUNK_BY_FIRST_ID)
        .map_err(db("prepare a chunk read"))?;
    let mut rows = list
        .query(params_from_iter(sql.params.iter()))
        .map_err(db("walk log chunks"))?;
    let mut next: Option<(i64, i64)> = next_chunk(&mut rows)?;
    // Loaded chunks (None once every kept entry of it was taken), and how
    // many of each are still on the heap.
    let mut chunks: Vec<Option<Chunk>> = Vec::new();
    let mut left: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<(i64, i64, u32, u32)> = BinaryHeap::new();
    let mut out = Vec::new();
    let mut read = 0usize;
    while out.len() < want {
        // Emit what no unread chunk can precede.
        while let Some(&(ts, _, slot, i)) = heap.peek() {
            if next.is_some_and(|(_, max_ts)| ts <= max_ts) {
                break;
            }
            heap.pop();
            let slot = slot as usize;
            let c = chunks[slot]
                .as_ref()
                .expect("a chunk on the heap is loaded");
            let r = &c.recs[i as usize];
            read += 1;
            if read > budget {
                return Ok(None);
            }
            if f.keeps_body(c, r, text.as_deref_mut())? {
                if skip > 0 {
                    skip -= 1;
                } else {
                    out.push(found(c, r)?);
                    if out.len() >= want {
                        return Ok(Some(out));
                    }
                }
            }
            left[slot] -= 1;
            if left[slot] == 0 {
                chunks[slot] = None;
            }
        }
        let Some((first_id, _)) = next else {
            break;
        };
        next = next_chunk(&mut rows)?;
        let loaded: Option<(i64, Vec<u8>)> = fetch
            .query_row([first_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db("read a log chunk"))?;
        let Some((service_id, data)) = loaded else {
            continue;
        };
        let c = Chunk::decode(first_id, service_id, data)?;
        let slot = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        let mut n = 0;
        for (i, r) in c.recs.iter().enumerate() {
            if f.keeps(r) {
                heap.push((r.ts, r.id, slot, i as u32));
                n += 1;
            }
        }
        chunks.push((n > 0).then_some(c));
        left.push(n);
    }
    Ok(Some(out))
}

fn next_chunk(rows: &mut rusqlite::Rows<'_>) -> Result<Option<(i64, i64)>> {
    match rows.next().map_err(db("walk log chunks"))? {
        Some(r) => Ok(Some((
            r.get(0).map_err(db("walk log chunks"))?,
            r.get(1).map_err(db("walk log chunks"))?,
        ))),
        None => Ok(None),
    }
}

/// Calls `each` with every chunk holding some of `ids` (sorted newest
/// first, no duplicates) and the indexes of those ids' records in it
/// (ids no chunk holds any more are skipped).
fn by_chunk(
    conn: &Connection,
    f: &Filter<'_>,
    ids: &[i64],
    mut each: impl FnMut(&Chunk, &[usize]) -> Result<()>,
) -> Result<()> {
    let mut holding = conn
        .prepare_cached(CHUNK_HOLDING)
        .map_err(db("prepare a chunk lookup"))?;
    let mut at = 0;
    let mut recs = Vec::new();
    while at < ids.len() {
        let id = ids[at];
        let mut rows = holding.query([id]).map_err(db("read a log chunk"))?;
        let Some(row) = rows.next().map_err(db("read a log chunk"))? else {
            break;
        };
        let (first_id, last_id, service_id): (i64, i64, i64) = (
            row.get(0).map_err(db("read a log chunk"))?,
            row.get(1).map_err(db("read a log chunk"))?,
            row.get(2).map_err(db("read a log chunk"))?,
        );
        // The ids this chunk could hold.
        let end = ids[at..]
            .iter()
            .position(|&i| i < first_id)
            .map_or(ids.len(), |p| at + p);
        // The blob (its overflow pages) is read only for a chunk that
        // holds some of the ids and is of a service the query wants.
        if ids[end - 1] <= last_id && f.service_allowed(service_id) {
            let data: Vec<u8> = row.get(3).map_err(db("read a log chunk"))?;
            let c = Chunk::decode(first_id, service_id, data)?;
            recs.clear();
            for &id in &ids[at..end] {
                if let Ok(i) = c.recs.binary_search_by_key(&id, |r| r.id) {
                    recs.push(i);
                }
            }
            if !recs.is_empty() {
                each(&c, &recs)?;
            }
        }
        at = end;
    }
    Ok(())
}

/// The entries among the candidate `ids` of the full-text index that `f`
/// keeps and `text` matches, newest first, skipping `skip` and keeping
/// `want`. Only the newest `skip + want` matches are kept (a bounded heap),
/// and only those are built.
pub(crate) fn fetch_candidates(
    conn: &Connection,
    f: &Filter<'_>,
    mut ids: Vec<i64>,
    text: &mut TextMatcher,
    skip: usize,
    want: usize,
) -> Result<Vec<Found>> {
    ids.sort_unstable_by_key(|&i| Reverse(i));
    ids.dedup();
    let keep = skip.saturating_add(want);
    // The oldest kept match on top, to be pushed out by a newer one.
    let mut kept: BinaryHeap<Reverse<Keyed>> = BinaryHeap::new();
    by_chunk(conn, f, &ids, |c, recs| {
        for &i in recs {
            let r = &c.recs[i];
            if !f.keeps(r) {
                continue;
            }
            let key = (r.ts, r.id);
            if kept.len() >= keep && kept.peek().is_some_and(|Reverse(k)| k.key >= key) {
                continue;
            }
            if f.keeps_body(c, r, Some(&mut *text))? {
                kept.push(Reverse(Keyed {
                    key,
                    found: found(c, r)?,
                }));
                if kept.len() > keep {
                    kept.pop();
                }
            }
        }
        Ok(())
    })?;
    // Newest first.
    let mut out: Vec<Keyed> = kept.into_iter().map(|Reverse(k)| k).collect();
    out.sort_unstable_by_key(|k| Reverse(k.key));
    Ok(out.into_iter().skip(skip).map(|k| k.found).collect())
}

/// A match ordered by its (ts, id).
struct Keyed {
    key: (i64, i64),
    found: Found,
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Keyed {}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Calls `each` with the id and message of every entry with an id above
/// `after`, in id order (`newest_first`: reversed). The writer rebuilds its
/// open index block from them, readers scan them.
pub(crate) fn entries_after(
    conn: &Connection,
    after: i64,
    newest_first: bool,
    mut each: impl FnMut(i64, &str) -> Result<()>,
) -> Result<()> {
    let sql = if newest_first {
        "SELECT first_id, service_id, data FROM log_chunks WHERE first_id >= \
         coalesce((SELECT max(first_id) FROM log_chunks WHERE first_id <= ?1), 0) \
         ORDER BY first_id DESC"
    } else {
        "SELECT first_id, service_id, data FROM log_chunks WHERE first_id >= \
         coalesce((SELECT max(first_id) FROM log_chunks WHERE first_id <= ?1), 0) \
         ORDER BY first_id"
    };
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(db("prepare a scan of the newest entries"))?;
    let mut rows = stmt.query([after]).map_err(db("scan the newest entries"))?;
    while let Some(row) = rows.next().map_err(db("scan the newest entries"))? {
        let first_id: i64 = row.get(0).map_err(db("scan the newest entries"))?;
        let service_id: i64 = row.get(1).map_err(db("scan the newest entries"))?;
        let data = row
            .get_ref(2)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(db("scan the newest entries"))?;
        let c = Chunk::decode(first_id, service_id, data.to_vec())?;
        let mut visit = |r: &Rec| -> Result<()> {
            if r.id > after {
                each(r.id, c.message(r)?)?;
            }
            Ok(())
        };
        if newest_first {
            c.recs.iter().rev().try_for_each(&mut visit)?;
        } else {
            c.recs.iter().try_for_each(&mut visit)?;
        }
    }
    Ok(())
}
