//! The write connection: appends, retention, tenancy and token changes.

use crate::checkpoint::Checkpointer;
use crate::chunk::{self, Chunk, ChunkBuilder};
use crate::db;
use crate::index::{self, OpenBlock};
use crate::read::token_by_id;
use crate::schema;
use faultline_model::{Level, NewEntry, Project, Service, TokenInfo, TokenKind, now_micros};
use faultline_store::{Result, StoreError};
use rusqlite::{
    CachedStatement, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
    params,
};
use std::collections::HashMap;

pub(crate) const INSERT_CHUNK: &str = "INSERT INTO log_chunks \
    (first_id, last_id, service_id, min_ts, max_ts, levels, count, data) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const LAST_LOG_ID: &str = "SELECT max(\
    (SELECT value FROM meta WHERE key = 'last_log_id'), \
    coalesce((SELECT last_id FROM log_chunks ORDER BY first_id DESC LIMIT 1), 0))";
const SET_LAST_LOG_ID: &str = "UPDATE meta SET value = ?1 WHERE key = 'last_log_id'";
/// Adds to an entry count per (service, hour, level).
pub(crate) const ADD_LOG_COUNT: &str = "INSERT INTO log_counts (service_id, hour, level, count) \
    VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (service_id, hour, level) DO UPDATE SET count = count + excluded.count";
const HOUR: i64 = 3_600_000_000;
const COUNT_APPENDED: &str = "UPDATE services SET \
    count = count + ?2, error_count = error_count + ?3, \
    last_seen = max(coalesce(last_seen, ?4), ?4) WHERE id = ?1";

/// State owned by the single write connection.
pub(crate) struct Writer {
    conn: Connection,
    /// Checkpoints the WAL off the commit path; stopped on drop.
    checkpointer: Checkpointer,
    /// (project, service) → service id. Services are never deleted or
    /// renamed, so an id once seen stays right, even if another process
    /// created the service.
    services: ServiceIds,
    /// The chunk being encoded, reused (its buffers too).
    chunk: ChunkBuilder,
    /// Reused per append: the services of its entries, and the entries'
    /// positions grouped by service.
    groups: Vec<Group>,
    order: Vec<u32>,
    /// Reused per service of an append: its entries per hour and level.
    hours: HourCounts,
    /// The open block of the full-text index (see `index.rs`).
    index: OpenBlock,
    /// Retention watermarks, by level code - 1: every entry of that level
    /// with a timestamp before the watermark is known to be deleted.
    expired: [Option<i64>; 6],
    /// `PRAGMA data_version` when the watermarks were last checked; it
    /// changes when another connection commits, which may have appended old
    /// entries we did not see.
    data_version: i64,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.checkpointer.stop(&mut self.conn);
    }
}

#[derive(Default)]
struct ServiceIds(HashMap<String, HashMap<String, i64>>);

impl ServiceIds {
    fn get(&self, project: &str, service: &str) -> Option<i64> {
        self.0.get(project)?.get(service).copied()
    }

    fn insert(&mut self, project: &str, service: &str, id: i64) {
        self.0
            .entry(project.to_owned())
            .or_default()
            .insert(service.to_owned(), id);
    }
}

/// An entry's record and index keys, prepared.
type Encoded<'a> = (&'a [u8], &'a [u32]);

/// A batch to append, with what [`PreparedBatch::new`] made of it.
pub(crate) type Batch<'a> = (&'a [NewEntry], Option<&'a PreparedBatch>);

/// The part of an append done before the batch reaches the writer, on the
/// thread that decoded it, in parallel with the writer: every entry's
/// record as the chunk stores it and its full-text index keys.
pub(crate) struct PreparedBatch {
    records: Vec<u8>,
    /// Where each entry's record ends in `records`.
    record_ends: Vec<u32>,
    keys: Vec<u32>,
    /// Where each entry's keys end in `keys`.
    key_ends: Vec<u32>,
}

impl PreparedBatch {
    /// `None` when an entry cannot be encoded (the append then reports
    /// why) or the batch is too large to index with `u32` offsets.
    pub(crate) fn new(entries: &[NewEntry]) -> Option<PreparedBatch> {
        let mut p = PreparedBatch {
            records: Vec::with_capacity(entries.len() * 256),
            record_ends: Vec::with_capacity(entries.len()),
            keys: Vec::with_capacity(entries.len() * 24),
            key_ends: Vec::with_capacity(entries.len()),
        };
        for e in entries {
            chunk::encode_rest(&mut p.records, e).ok()?;
            faultline_textindex::message_keys(&e.message, &mut p.keys);
            p.record_ends.push(u32::try_from(p.records.len()).ok()?);
            p.key_ends.push(u32::try_from(p.keys.len()).ok()?);
        }
        Some(p)
    }

    /// The record and keys of entry `i`.
    fn get(&self, i: usize) -> Encoded<'_> {
        let at = |ends: &[u32], i: usize| if i == 0 { 0 } else { ends[i - 1] as usize };
        (
            &self.records[at(&self.record_ends, i)..self.record_ends[i] as usize],
            &self.keys[at(&self.key_ends, i)..self.key_ends[i] as usize],
        )
    }

    /// Whether it was made for a batch of `n` entries.
    pub(crate) fn fits(&self, n: usize) -> bool {
        self.record_ends.len() == n && self.key_ends.len() == n
    }
}

/// The entries of one service in one append.
struct Group {
    service_id: i64,
    /// How many, and where their positions start in `Writer::order`.
    len: usize,
    start: usize,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        checkpointer: Checkpointer,
        block_rows: usize,
    ) -> Result<Writer> {
        let data_version = data_version(&conn)?;
        Ok(Writer {
            conn,
            checkpointer,
            services: ServiceIds::default(),
            chunk: ChunkBuilder::new(),
            groups: Vec::new(),
            order: Vec::new(),
            hours: HourCounts::default(),
            index: OpenBlock::new(block_rows),
            expired: [None; 6],
            data_version,
        })
    }

    pub(crate) fn release_memory(&mut self) -> Result<()> {
        if self.index.worth_sealing() {
            self.store_index_blocks(true)?;
        } else {
            self.store_sealed_block()?;
        }
        self.index.release_memory();
        self.conn
            .release_memory()
            .map_err(db("release writer memory"))
    }

    /// Stores the full-text index block being finished off the writer, if
    /// any, in a transaction of its own (waiting for it): appends store it
    /// once finished, this is for when no append follows (idle time).
    pub(crate) fn store_sealed_block(&mut self) -> Result<()> {
        if !self.index.has_pending() {
            return Ok(());
        }
        self.store_index_blocks(false)
    }

    /// Stores the sealed block and, with `open`, finishes and stores the
    /// open block too (idle time), in a transaction of its own.
    fn store_index_blocks(&mut self, open: bool) -> Result<()> {
        let Writer { conn, index, .. } = self;
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db("begin storing an index block"))?;
            let last: i64 = tx
                .prepare_cached(LAST_LOG_ID)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(db("read the last log id"))?;
            index.sync(&tx, last)?;
            index.store_pending(&tx)?;
            if open {
                index.seal_now(&tx)?;
            }
            tx.commit().map_err(db("commit an index block"))?;
            Ok(last)
        })();
        match result {
            Ok(last) => {
                index.committed(last);
                Ok(())
            }
            Err(e) => {
                index.invalidate();
                Err(e)
            }
        }
    }

    /// The write connection, for writes kept in other modules (issues).
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn begin(&mut self, what: &'static str) -> Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(what))
    }

    pub(crate) fn ensure_project(&mut self, name: &str) -> Result<Project> {
        let tx = self.begin("begin creating a project")?;
        let project = ensure_project_in(&tx, name, now_micros())?;
        tx.commit().map_err(db("commit a new project"))?;
        Ok(project)
    }

    pub(crate) fn ensure_service(&mut self, project: &str, name: &str) -> Result<Service> {
        let tx = self.begin("begin creating a service")?;
        let service = ensure_service_in(&tx, project, name, now_micros())?;
        tx.commit().map_err(db("commit a new service"))?;
        self.services.insert(project, name, service.id);
        Ok(service)
    }

    pub(crate) fn append(&mut self, batches: &[Batch<'_>]) -> Result<Vec<i64>> {
        let result = self.append_in_transaction(batches);
        if result.is_err() {
            // Services created by the failed transaction were rolled back
            // with it; forget every id rather than track which. So were
            // the index blocks it finished.
            self.services.0.clear();
            self.index.invalidate();
        }
        result
    }

    /// [`Writer::append`] committed without an fsync (`synchronous=NORMAL`
    /// for this transaction only); `SqliteStore::sync_appends` makes it
    /// durable.
    pub(crate) fn append_unsynced(&mut self, batches: &[Batch<'_>]) -> Result<Vec<i64>> {
        let mode = schema::relax_synchronous(&self.conn)?;
        let result = self.append(batches);
        schema::restore_synchronous(&self.conn, mode);
        result
    }

    /// The hot path. Entries are grouped by service (in the order services
    /// first appear) and each group gets the next ids in arrival order, so
    /// every group is one chunk (or a few, see `ChunkBuilder::full_for`) of
    /// consecutive ids: per chunk one row and two index entries, per entry
    /// a few dozen bytes encoded and its tokens hashed into the open block
    /// of the full-text index. Per transaction: one id read, one check that
    /// the open block is in step with the database, one id write, one
    /// counter update per service, one `log_counts` upsert per (service,
    /// hour, level) present (counted in memory first), one commit; and,
    /// every `BLOCK_ROWS` entries, one finished index block stored.
    fn append_in_transaction(&mut self, batches: &[Batch<'_>]) -> Result<Vec<i64>> {
        let Writer {
            conn,
            checkpointer,
            services,
            index,
            expired,
            chunk,
            groups,
            order,
            hours,
            ..
        } = self;
        let total: usize = batches.iter().map(|b| b.0.len()).sum();
        chunk.clear();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("begin an append"))?;
        // Group by service: `groups[g]` is (service id, entries, start in
        // `order`), `order` the positions of the entries, group by group.
        groups.clear();
        order.clear();
        order.resize(total, 0);
        let mut group_of: Vec<u32> = Vec::with_capacity(total);
        {
            // Batches usually come from one service: remember the last one.
            let mut last: Option<(&str, &str, usize)> = None;
            for e in batches.iter().flat_map(|b| b.0.iter()) {
                let g = match last {
                    Some((p, s, g)) if e.service == s && e.project == p => g,
                    _ => {
                        let sid = match services.get(&e.project, &e.service) {
                            Some(sid) => sid,
                            None => {
                                let s =
                                    ensure_service_in(&tx, &e.project, &e.service, now_micros())?;
                                services.insert(&e.project, &e.service, s.id);
                                s.id
                            }
                        };
                        let g = match groups.iter().position(|g| g.service_id == sid) {
                            Some(g) => g,
                            None => {
                                groups.push(Group {
                                    service_id: sid,
                                    len: 0,
                                    start: 0,
                                });
                                groups.len() - 1
                            }
                        };
                        last = Some((&e.project, &e.service, g));
                        g
                    }
                };
                groups[g].len += 1;
                group_of.push(g as u32);
            }
            let mut start = 0;
            for g in groups.iter_mut() {
                g.start = start;
                start += g.len;
            }
            let mut fill: Vec<usize> = groups.iter().map(|g| g.start).collect();
            for (pos, &g) in group_of.iter().enumerate() {
                let slot = &mut fill[g as usize];
                order[*slot] = pos as u32;
                *slot += 1;
            }
        }
        // Each entry with its encoded record and index keys when they were
        // prepared (off the writer).
        let flat: Vec<(&NewEntry, Option<Encoded<'_>>)> = batches
            .iter()
            .flat_map(|(entries, prepared)| {
                entries
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (e, prepared.map(|p| p.get(i))))
            })
            .collect();
        let mut ids = vec![0i64; total];
        {
            let mut id: i64 = tx
                .prepare_cached(LAST_LOG_ID)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(db("read the last log id"))?;
            // Another handle on the file may have appended since our last
            // commit (or our last transaction failed): then the open block
            // is rebuilt from the entries first.
            index.sync(&tx, id)?;
            let mut insert = tx
                .prepare_cached(INSERT_CHUNK)
                .map_err(db("prepare the chunk insert"))?;
            let mut count = tx
                .prepare_cached(COUNT_APPENDED)
                .map_err(db("prepare the service counters update"))?;
            let mut add_count = tx
                .prepare_cached(ADD_LOG_COUNT)
                .map_err(db("prepare the log count update"))?;
            for g in groups.iter() {
                let mut errors = 0i64;
                let mut last_seen = i64::MIN;
                hours.clear();
                for &pos in &order[g.start..g.start + g.len] {
                    let (e, prepared) = flat[pos as usize];
                    if chunk.full_for(e.timestamp) {
                        store_chunk(&mut insert, chunk, g.service_id)?;
                    }
                    id += 1;
                    match prepared {
                        Some((rest, keys)) => {
                            chunk.push_raw(id, e.timestamp, e.received_at, e.level.code(), rest);
                            index.add_keys(&tx, id, keys, &e.message)?;
                        }
                        None => {
                            chunk.push(id, e)?;
                            index.add(&tx, id, &e.message)?;
                        }
                    }
                    ids[pos as usize] = id;
                    errors += i64::from(e.level >= Level::Error);
                    last_seen = last_seen.max(e.received_at);
                    hours.add(e.timestamp, e.level.code());
                    // An entry older than a retention watermark: that
                    // level's range must be scanned again.
                    let watermark = &mut expired[usize::from(e.level.code()) - 1];
                    if watermark.is_some_and(|w| e.timestamp < w) {
                        *watermark = Some(e.timestamp);
                    }
                }
                if !chunk.is_empty() {
                    store_chunk(&mut insert, chunk, g.service_id)?;
                }
                count
                    .execute(params![g.service_id, g.len as i64, errors, last_seen])
                    .map_err(db("update service counters"))?;
                // One upsert per (hour, level) of the service's entries:
                // a few per service, whatever the number of entries.
                for &(hour, ref levels) in &hours.hours {
                    for (code, &n) in levels.iter().enumerate().filter(|(_, n)| **n > 0) {
                        add_count
                            .execute(params![g.service_id, hour, code as i64, n])
                            .map_err(db("update log counts"))?;
                    }
                }
            }
            tx.prepare_cached(SET_LAST_LOG_ID)
                .and_then(|mut s| s.execute([id]))
                .map_err(db("write the last log id"))?;
        }
        tx.commit().map_err(db("commit an append"))?;
        checkpointer.after_commit(conn);
        if let Some(&last) = ids.iter().max() {
            index.committed(last);
        }
        Ok(ids)
    }

    /// Deletes up to `max_rows` entries of `level` older than `before`,
    /// chunk by chunk from the oldest `min_ts`: a chunk whose entries all
    /// go is deleted, one that keeps some is rewritten without them (the
    /// other entries keep their ids).
    pub(crate) fn delete_expired(
        &mut self,
        level: Level,
        before: i64,
        max_rows: usize,
    ) -> Result<usize> {
        let version = data_version(&self.conn)?;
        if version != self.data_version {
            self.expired = [None; 6];
            self.data_version = version;
        }
        let slot = usize::from(level.code()) - 1;
        let from = self.expired[slot].unwrap_or(i64::MIN);
        if from >= before {
            return Ok(0);
        }
        let code = level.code();
        let builder = &mut self.chunk;
        builder.clear();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("begin deleting expired entries"))?;
        let mut deleted = 0;
        // The `min_ts` of the chunk where we stopped, if we did.
        let mut stopped_at = None;
        let mut counters: Vec<(i64, i64)> = Vec::new();
        {
            // The chunks holding an entry of that level in [from, before):
            // min_ts < before and max_ts >= from; max_ts < before + span
            // bounds the range of the (max_ts) index walked.
            let chunks: Vec<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT first_id, min_ts FROM log_chunks INDEXED BY log_chunks_ts \
                     WHERE max_ts >= ?1 AND max_ts < ?2 AND min_ts < ?3 AND levels & ?4 != 0 \
                     ORDER BY min_ts, first_id",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            from,
                            before.saturating_add(chunk::MAX_SPAN),
                            before,
                            1i64 << code
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?
                    .collect()
                })
                .map_err(db("find expired entries"))?;
            let mut read = tx
                .prepare_cached("SELECT service_id, data FROM log_chunks WHERE first_id = ?1")
                .map_err(db("prepare a chunk read"))?;
            let mut delete = tx
                .prepare_cached("DELETE FROM log_chunks WHERE first_id = ?1")
                .map_err(db("prepare a chunk delete"))?;
            let mut insert = tx
                .prepare_cached(INSERT_CHUNK)
                .map_err(db("prepare the chunk insert"))?;
            for (first_id, min_ts) in chunks {
                if deleted >= max_rows {
                    stopped_at = Some(min_ts);
                    break;
                }
                let (service_id, data): (i64, Vec<u8>) = read
                    .query_row([first_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db("read a log chunk"))?;
                let c = Chunk::decode(first_id, service_id, data)?;
                // The expired entries, oldest first, as many as allowed.
                let mut gone: Vec<(i64, i64)> = c
                    .recs
                    .iter()
                    .filter(|r| r.level == code && r.ts < before)
                    .map(|r| (r.ts, r.id))
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                gone.sort_unstable();
                if gone.len() > max_rows - deleted {
                    gone.truncate(max_rows - deleted);
                    stopped_at = Some(min_ts);
                }
                let mut gone_ids: Vec<i64> = gone.iter().map(|g| g.1).collect();
                gone_ids.sort_unstable();
                delete
                    .execute([first_id])
                    .map_err(db("delete a log chunk"))?;
                for r in &c.recs {
                    if gone_ids.binary_search(&r.id).is_err() {
                        builder.push_raw(r.id, r.ts, r.received_at, r.level, c.rest(r));
                    }
                }
                if !builder.is_empty() {
                    store_chunk(&mut insert, builder, service_id)?;
                }
                let n = gone.len() as i64;
                match counters.iter_mut().find(|(s, _)| *s == service_id) {
                    Some((_, m)) => *m += n,
                    None => counters.push((service_id, n)),
                }
                deleted += gone.len();
                if stopped_at.is_some() {
                    break;
                }
            }
            if deleted > 0 {
                // Entries deleted inside a live block just are not found
                // when candidates are fetched; blocks whose entries are all
                // gone go.
                index::delete_dead_blocks(&tx)?;
            }
            let mut count = tx
                .prepare_cached(
                    "UPDATE services SET count = count - ?2, error_count = error_count - ?3 \
                     WHERE id = ?1",
                )
                .map_err(db("prepare the service counters update"))?;
            let is_error = level >= Level::Error;
            for &(service_id, n) in &counters {
                count
                    .execute(params![service_id, n, if is_error { n } else { 0 }])
                    .map_err(db("update service counters"))?;
            }
        }
        tx.commit().map_err(db("commit deleting expired entries"))?;
        // Everything of this level before the watermark is gone: all of
        // [from, before) when we did not stop early, else everything before
        // the `min_ts` of the chunk where we stopped (chunks are visited by
        // `min_ts`, and each visited one lost all its expired entries).
        self.expired[slot] = Some(stopped_at.map_or(before, |t| t.max(from)));
        if deleted > 0 {
            tracing::debug!(%level, deleted, before, "deleted expired entries");
        }
        Ok(deleted)
    }

    pub(crate) fn create_token(
        &mut self,
        kind: &TokenKind,
        hash: &str,
        prefix: &str,
        now: i64,
    ) -> Result<TokenInfo> {
        let tx = self.begin("begin creating a token")?;
        let (name, project_id, service_id) = match kind {
            TokenKind::Admin => ("admin", None, None),
            TokenKind::Read { project } => {
                let pid = project_id(&tx, project)?.ok_or_else(|| StoreError::NotFound {
                    what: "project",
                    name: project.clone(),
                })?;
                ("read", Some(pid), None)
            }
            TokenKind::Ingest { project, service } => {
                let (pid, sid) =
                    service_ids(&tx, project, service)?.ok_or_else(|| StoreError::NotFound {
                        what: "service",
                        name: format!("{project}/{service}"),
                    })?;
                ("ingest", Some(pid), Some(sid))
            }
        };
        tx.execute(
            "INSERT INTO tokens (kind, project_id, service_id, hash, prefix, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![name, project_id, service_id, hash, prefix, now],
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => {
                StoreError::Invalid("a token with this hash already exists".into())
            }
            _ => StoreError::backend("insert a token", e),
        })?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(db("commit a new token"))?;
        Ok(TokenInfo {
            id,
            kind: kind.clone(),
            prefix: prefix.to_owned(),
            created_at: now,
            last_used: None,
            revoked_at: None,
        })
    }

    pub(crate) fn revoke_token(&mut self, id: i64, now: i64) -> Result<TokenInfo> {
        let tx = self.begin("begin revoking a token")?;
        let changed = tx
            .execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now],
            )
            .map_err(db("revoke a token"))?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "token",
                name: id.to_string(),
            });
        }
        let info = token_by_id(&tx, id)?.ok_or_else(|| StoreError::NotFound {
            what: "token",
            name: id.to_string(),
        })?;
        tx.commit().map_err(db("commit a token revocation"))?;
        Ok(info)
    }

    pub(crate) fn touch_tokens(&mut self, uses: &[(i64, i64)]) -> Result<()> {
        let tx = self.begin("begin recording token use")?;
        {
            let mut touch = tx
                .prepare_cached(
                    "UPDATE tokens SET last_used = max(coalesce(last_used, ?2), ?2) WHERE id = ?1",
                )
                .map_err(db("prepare the token use update"))?;
            for &(id, at) in uses {
                touch.execute([id, at]).map_err(db("record token use"))?;
            }
        }
        tx.commit().map_err(db("commit token use"))
    }
}

/// The start of the hour (UTC) holding a timestamp, microseconds.
#[inline]
pub(crate) fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR) * HOUR
}

/// Entry counts per hour and level code (index 1..=6) of one service in
/// one append. Entries of an append mostly share an hour: the last slot
/// used is tried first, then the few slots, then (past
/// [`HourCounts::LINEAR`] hours, a backfill) a map.
#[derive(Default)]
struct HourCounts {
    hours: Vec<(i64, [i64; 7])>,
    index: HashMap<i64, usize>,
    last: usize,
}

impl HourCounts {
    const LINEAR: usize = 8;

    fn clear(&mut self) {
        self.hours.clear();
        self.index.clear();
        self.last = 0;
    }

    #[inline]
    fn add(&mut self, ts: i64, level: u8) {
        let hour = hour_of(ts);
        let slot = match self.hours.get(self.last) {
            Some(&(h, _)) if h == hour => self.last,
            _ => self.slot(hour),
        };
        self.hours[slot].1[usize::from(level)] += 1;
        self.last = slot;
    }

    fn slot(&mut self, hour: i64) -> usize {
        let found = if self.hours.len() <= Self::LINEAR {
            self.hours.iter().position(|&(h, _)| h == hour)
        } else {
            self.index.get(&hour).copied()
        };
        if let Some(slot) = found {
            return slot;
        }
        self.hours.push((hour, [0; 7]));
        let slot = self.hours.len() - 1;
        if self.hours.len() == Self::LINEAR + 1 {
            self.index = self
                .hours
                .iter()
                .enumerate()
                .map(|(i, &(h, _))| (h, i))
                .collect();
        } else if self.hours.len() > Self::LINEAR + 1 {
            self.index.insert(hour, slot);
        }
        slot
    }
}

/// Encodes the builder's entries as one chunk row.
pub(crate) fn store_chunk(
    insert: &mut CachedStatement<'_>,
    chunk: &mut ChunkBuilder,
    service_id: i64,
) -> Result<()> {
    let (first, last, min_ts, max_ts, levels) = (
        chunk.first_id,
        chunk.last_id,
        chunk.min_ts,
        chunk.max_ts,
        chunk.levels,
    );
    let n = chunk.len() as i64;
    let data = chunk.finish();
    insert
        .execute(params![
            first, last, service_id, min_ts, max_ts, levels, n, data
        ])
        .map_err(db("store a log chunk"))?;
    Ok(())
}

fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(db("read the data version"))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::Invalid(format!(
            "{what} name must not be empty"
        )));
    }
    Ok(())
}

pub(crate) fn project_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db("look up a project"))
}

/// (project id, service id) of a service, if it exists.
pub(crate) fn service_ids(
    conn: &Connection,
    project: &str,
    service: &str,
) -> Result<Option<(i64, i64)>> {
    conn.prepare_cached(
        "SELECT p.id, s.id FROM services AS s JOIN projects AS p ON p.id = s.project_id \
         WHERE p.name = ?1 AND s.name = ?2",
    )
    .and_then(|mut s| {
        s.query_row([project, service], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    })
    .map_err(db("look up a service"))
}

pub(crate) fn ensure_project_in(conn: &Connection, name: &str, now: i64) -> Result<Project> {
    check_name("project", name)?;
    conn.prepare_cached(
        "INSERT INTO projects (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![name, now]))
    .map_err(db("create a project"))?;
    conn.prepare_cached("SELECT id, created_at FROM projects WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok(Project {
                    id: r.get(0)?,
                    name: name.to_owned(),
                    created_at: r.get(1)?,
                })
            })
        })
        .map_err(db("read a project"))
}

pub(crate) fn ensure_service_in(
    conn: &Connection,
    project: &str,
    name: &str,
    now: i64,
) -> Result<Service> {
    check_name("service", name)?;
    let p = ensure_project_in(conn, project, now)?;
    conn.prepare_cached(
        "INSERT INTO services (project_id, name, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (project_id, name) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![p.id, name, now]))
    .map_err(db("create a service"))?;
    conn.prepare_cached("SELECT id, created_at FROM services WHERE project_id = ?1 AND name = ?2")
        .and_then(|mut s| {
            s.query_row(params![p.id, name], |r| {
                Ok(Service {
                    id: r.get(0)?,
                    project: project.to_owned(),
                    name: name.to_owned(),
                    created_at: r.get(1)?,
                })
            })
        })
        .map_err(db("read a service"))
}
