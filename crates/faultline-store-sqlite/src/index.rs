//! The full-text block index ([`faultline_textindex`]) on SQLite: the
//! writer's open block, building and storing finished blocks, and finding
//! candidate rows for a search text.
//!
//! Finished blocks are rows of `text_blocks` (`first_row`, `last_row` and
//! the bloom filter's 8-byte header). Their two blobs are cut in rows small
//! enough to live in one b-tree page each (no overflow chain to walk):
//! `text_blooms` holds the bloom filter's 64-byte lines,
//! [`BLOOM_CHUNK_LINES`] per row, and `text_postings` the postings in
//! [`POSTINGS_CHUNK`]-byte pieces, both keyed by `first_row * 65536 +
//! chunk`. A bloom probe then reads one row, and a postings lookup (header,
//! a binary search of the directory, one key section, one list) a few. The
//! open block (entries after the last finished block's `last_row`) is never
//! stored: the writer keeps it in memory and rebuilds it from `log_chunks`
//! whenever it cannot vouch for it; readers scan those entries (at most one
//! block's worth, in the newest chunks) instead.

use crate::db;
use crate::text::TextMatcher;
use faultline_store::{Result, StoreError};
use faultline_textindex::{
    AddError, BlockBuilder, EncodedBlock, FormatError, ReadAt, bloom_block_may_contain,
    bloom_blocks, bloom_probe_range, postings_lookup_read,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::mpsc::{Receiver, SendError, Sender, TryRecvError, channel};

const LAST_FINISHED: &str = "SELECT coalesce(\
    (SELECT last_row FROM text_blocks ORDER BY first_row DESC LIMIT 1), 0)";
const INSERT_BLOCK: &str =
    "INSERT INTO text_blocks (first_row, last_row, bloom_header) VALUES (?1, ?2, ?3)";
const INSERT_BLOOM: &str = "INSERT INTO text_blooms (id, lines) VALUES (?1, ?2)";
const INSERT_POSTINGS: &str = "INSERT INTO text_postings (id, bytes) VALUES (?1, ?2)";
/// Bytes per `text_postings` row: with its record header, less than the
/// largest payload a 4 KiB table leaf page keeps locally.
pub(crate) const POSTINGS_CHUNK: usize = 4000;
const BLOOM_LINE: usize = 64;
const BLOOM_HEADER: usize = 8;
/// Bloom lines per `text_blooms` row: 2 KiB, stored in the table's leaf page
/// (no overflow page), so a probe costs one b-tree lookup.
pub(crate) const BLOOM_CHUNK_LINES: usize = 32;
/// `text_blooms.id` = `first_row * BLOOM_CHUNKS + chunk`.
const BLOOM_CHUNKS: i64 = 1 << 16;

fn bloom_chunk_id(first_row: i64, chunk: usize) -> i64 {
    first_row * BLOOM_CHUNKS + chunk as i64
}

/// The `last_row` of the newest finished block (0 when there is none).
pub(crate) fn last_finished(conn: &Connection) -> Result<i64> {
    conn.prepare_cached(LAST_FINISHED)
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("read the last indexed row"))
}

/// The writer's open block, and the full block before it while a thread
/// of its own finishes (sorts and encodes) it.
///
/// Finishing a block (a sort of ≈250,000 postings and their encoding) took
/// a fifth of the writer's time under sustained ingest, all of it in the
/// commit that filled the block. So a full block is handed to a thread and
/// stored by the writer's next transaction that finds it finished (or by
/// the next one that fills a block, which waits for it): meanwhile readers
/// scan its rows like those of the open block (the rows after the newest
/// stored block), so searches are exact throughout; a crash before it is
/// stored leaves rows that the next start indexes again, like the open
/// block's.
pub(crate) struct OpenBlock {
    builder: BlockBuilder,
    /// Whether a full block is with the finisher: it holds the rows after
    /// `finished` and before the builder's.
    sealed: bool,
    /// The thread that finishes blocks, started with the first full block;
    /// None before, or if it could not be started (blocks are then
    /// finished by the writer).
    finisher: Option<Finisher>,
    /// A builder whose block was stored, kept for its buffers.
    spare: Option<BlockBuilder>,
    /// Rows per finished block.
    block_rows: usize,
    /// `last_row` of the newest stored block, as this writer sees it
    /// (including blocks stored in the current, uncommitted transaction).
    finished: i64,
    /// `(newest stored last_row, last log id)` of the database when the
    /// sealed block and the builder were last known to hold exactly the
    /// rows after the newest stored block: after a commit of this writer.
    /// `None`: unknown (a transaction failed, or nothing was checked yet),
    /// rebuild.
    synced: Option<(i64, i64)>,
}

/// The finishing thread's ends: full builders go in, finished blocks come
/// back with their builders (for their buffers). It stops when the writer
/// drops its end.
struct Finisher {
    send: Sender<BlockBuilder>,
    recv: Receiver<(Option<EncodedBlock>, BlockBuilder)>,
}

impl Finisher {
    fn start() -> Option<Finisher> {
        let (send, todo) = channel::<BlockBuilder>();
        let (done, recv) = channel();
        let started = std::thread::Builder::new()
            .name("faultline-index".into())
            .spawn(move || {
                while let Ok(mut b) = todo.recv() {
                    if done.send((b.finish(), b)).is_err() {
                        break;
                    }
                }
            });
        match started {
            Ok(_) => Some(Finisher { send, recv }),
            Err(e) => {
                tracing::warn!(error = %e, "no thread to finish full-text index blocks; the writer finishes them");
                None
            }
        }
    }
}

/// An idle writer finishes the open block early once it holds this
/// fraction of a block (1/4): its postings (8 bytes per key of each row;
/// 3.4 MB were live at idle after a 2 M entry fill, and the buffer grows to
/// several times that for a full block) then leave memory, while blocks
/// stay big enough for the index to stay compact on a server that idles
/// often.
pub(crate) const IDLE_SEAL_FRACTION: usize = 4;

impl OpenBlock {
    pub(crate) fn new(block_rows: usize) -> OpenBlock {
        OpenBlock {
            builder: BlockBuilder::new(),
            sealed: false,
            finisher: None,
            spare: None,
            block_rows: block_rows.max(1),
            finished: 0,
            synced: None,
        }
    }

    /// Makes the sealed block and the builder hold exactly the rows after
    /// the newest stored block, inside the writer's transaction and before
    /// it appends, and stores the sealed block if it is finished. `last_id`
    /// is the high-water mark of log ids read in that transaction. Cheap
    /// when nothing changed behind this writer's back (two reads of a
    /// b-tree's end); otherwise rebuilds the open block from the rows,
    /// finishing (and storing) full blocks on the way, which also makes it
    /// the schema migration's backfill.
    pub(crate) fn sync(&mut self, conn: &Connection, last_id: i64) -> Result<()> {
        let finished = last_finished(conn)?;
        if self.synced == Some((finished, last_id)) && self.finished == finished {
            return self.store_sealed(conn, false);
        }
        self.discard_sealed();
        self.builder = BlockBuilder::new();
        self.finished = finished;
        self.synced = None;
        let mut n = 0usize;
        crate::walk::entries_after(conn, finished, false, |id, message| {
            n += 1;
            self.add(conn, id, message)
        })?;
        // A rebuild (a start after a crash, the migration's backfill)
        // leaves no block behind.
        self.store_sealed(conn, true)?;
        if n > self.block_rows {
            tracing::info!(rows = n, "built the full-text index");
        }
        Ok(())
    }

    /// Indexes one appended row; seals the block when full.
    pub(crate) fn add(&mut self, conn: &Connection, id: i64, text: &str) -> Result<()> {
        match self.builder.add(id, text) {
            Ok(()) => {}
            Err(AddError::SpanTooLarge) => {
                // Only after billions of ids were deleted inside one block:
                // close it early.
                self.seal(conn)?;
                self.builder
                    .add(id, text)
                    .map_err(|e| StoreError::backend("index a log entry", e))?;
            }
            Err(e) => return Err(StoreError::backend("index a log entry", e)),
        }
        if self.builder.len() >= self.block_rows {
            self.seal(conn)?;
        }
        Ok(())
    }

    /// [`OpenBlock::add`] with the row's keys computed beforehand
    /// (`faultline_textindex::message_keys` of `text`); `text` is only
    /// read in the rare case of a block closed early.
    pub(crate) fn add_keys(
        &mut self,
        conn: &Connection,
        id: i64,
        keys: &[u32],
        text: &str,
    ) -> Result<()> {
        match self.builder.add_keys(id, keys) {
            Ok(()) => {}
            Err(AddError::SpanTooLarge) => return self.add(conn, id, text),
            Err(e) => return Err(StoreError::backend("index a log entry", e)),
        }
        if self.builder.len() >= self.block_rows {
            self.seal(conn)?;
        }
        Ok(())
    }

    /// Hands the open block to the finisher, after storing the block sealed
    /// before (waiting for it if need be), so at most one block is sealed
    /// and blocks are stored in order.
    fn seal(&mut self, conn: &Connection) -> Result<()> {
        self.store_sealed(conn, true)?;
        if self.builder.is_empty() {
            return Ok(());
        }
        let next = self.spare.take().unwrap_or_default();
        let mut full = std::mem::replace(&mut self.builder, next);
        if self.finisher.is_none() {
            self.finisher = Finisher::start();
        }
        if let Some(f) = &self.finisher {
            match f.send.send(full) {
                Ok(()) => {
                    self.sealed = true;
                    return Ok(());
                }
                Err(SendError(back)) => {
                    // The thread is gone (it panicked): finish here.
                    self.finisher = None;
                    full = back;
                }
            }
        }
        let block = full.finish();
        self.spare = Some(full);
        if let Some(block) = block {
            store_block(conn, &block)?;
            self.finished = block.last_row;
        }
        Ok(())
    }

    /// Stores the sealed block once finished; with `wait`, waits for it.
    fn store_sealed(&mut self, conn: &Connection, wait: bool) -> Result<()> {
        if !self.sealed {
            return Ok(());
        }
        let Some(f) = &self.finisher else {
            self.sealed = false;
            return Err(StoreError::Invalid(
                "the full-text index finisher is gone".into(),
            ));
        };
        let done = if wait {
            f.recv.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            f.recv.try_recv()
        };
        let (block, builder) = match done {
            Ok(d) => d,
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Disconnected) => {
                // It panicked: the block's rows are indexed again by the
                // rebuild after this failed append.
                self.finisher = None;
                self.sealed = false;
                return Err(StoreError::Invalid(
                    "finishing a full-text index block failed".into(),
                ));
            }
        };
        self.sealed = false;
        self.spare = Some(builder);
        if let Some(block) = block {
            store_block(conn, &block)?;
            self.finished = block.last_row;
        }
        Ok(())
    }

    /// Forgets the sealed block (before a rebuild): waits for the finisher
    /// to give its builder back.
    fn discard_sealed(&mut self) {
        if std::mem::take(&mut self.sealed)
            && let Some(f) = &self.finisher
        {
            match f.recv.recv() {
                Ok((_, builder)) => self.spare = Some(builder),
                Err(_) => self.finisher = None,
            }
        }
    }

    /// Stores the sealed block, waiting for it to be finished; inside a
    /// write transaction.
    pub(crate) fn store_pending(&mut self, conn: &Connection) -> Result<()> {
        self.store_sealed(conn, true)
    }

    /// Whether the open block holds at least [`IDLE_SEAL_FRACTION`] of a
    /// block: worth finishing early when idle.
    pub(crate) fn worth_sealing(&self) -> bool {
        self.builder.len() >= (self.block_rows / IDLE_SEAL_FRACTION).max(1)
    }

    /// Finishes the open block early (idle time) and stores it, waiting
    /// for it; inside a write transaction, after [`OpenBlock::sync`].
    pub(crate) fn seal_now(&mut self, conn: &Connection) -> Result<()> {
        self.seal(conn)?;
        self.store_sealed(conn, true)
    }

    /// Whether a sealed block waits to be stored.
    pub(crate) fn has_pending(&self) -> bool {
        self.sealed
    }

    /// Gives the builders' spare buffers back (idle time).
    pub(crate) fn release_memory(&mut self) {
        self.builder.release_memory();
        self.spare = None;
    }

    /// The transaction that appended up to `last_id` committed.
    pub(crate) fn committed(&mut self, last_id: i64) {
        self.synced = Some((self.finished, last_id));
    }

    /// A transaction failed (its blocks were rolled back): rebuild before
    /// the next append.
    pub(crate) fn invalidate(&mut self) {
        self.synced = None;
    }
}

fn store_block(conn: &Connection, b: &EncodedBlock) -> Result<()> {
    let lines = b.bloom.get(BLOOM_HEADER..).unwrap_or_default();
    let chunks = lines
        .len()
        .div_ceil(BLOOM_CHUNK_LINES * BLOOM_LINE)
        .max(b.postings.len().div_ceil(POSTINGS_CHUNK));
    if chunks as i64 > BLOOM_CHUNKS || b.first_row >= i64::MAX / BLOOM_CHUNKS - 1 {
        return Err(StoreError::Invalid(format!(
            "full-text index block {}..={} is too large to store",
            b.first_row, b.last_row
        )));
    }
    conn.prepare_cached(INSERT_BLOCK)
        .and_then(|mut s| {
            s.execute(params![
                b.first_row,
                b.last_row,
                &b.bloom[..BLOOM_HEADER.min(b.bloom.len())],
            ])
        })
        .map_err(db("store a full-text index block"))?;
    let mut insert = conn
        .prepare_cached(INSERT_BLOOM)
        .map_err(db("store a bloom filter"))?;
    for (i, chunk) in lines.chunks(BLOOM_CHUNK_LINES * BLOOM_LINE).enumerate() {
        insert
            .execute(params![bloom_chunk_id(b.first_row, i), chunk])
            .map_err(db("store a bloom filter"))?;
    }
    let mut insert = conn
        .prepare_cached(INSERT_POSTINGS)
        .map_err(db("store postings"))?;
    for (i, chunk) in b.postings.chunks(POSTINGS_CHUNK).enumerate() {
        insert
            .execute(params![bloom_chunk_id(b.first_row, i), chunk])
            .map_err(db("store postings"))?;
    }
    Ok(())
}

/// Drops the blocks all of whose rows are gone (retention deletes the
/// oldest rows); rows deleted inside a live block just fail the fetch.
pub(crate) fn delete_dead_blocks(conn: &Connection) -> Result<usize> {
    let dead: Vec<i64> = conn
        .prepare_cached(
            "DELETE FROM text_blocks WHERE first_row < ?1 AND last_row < ?1 RETURNING first_row",
        )
        .and_then(|mut s| {
            let oldest: i64 = conn.query_row(
                "SELECT coalesce((SELECT min(first_id) FROM log_chunks), \
                 (SELECT value FROM meta WHERE key = 'last_log_id') + 1)",
                [],
                |r| r.get(0),
            )?;
            s.query_map([oldest], |r| r.get(0))?.collect()
        })
        .map_err(db("delete full-text index blocks"))?;
    for table in ["text_blooms", "text_postings"] {
        let mut delete = conn
            .prepare_cached(&format!("DELETE FROM {table} WHERE id >= ?1 AND id < ?2"))
            .map_err(db("delete full-text index blocks"))?;
        for &first_row in &dead {
            delete
                .execute([
                    bloom_chunk_id(first_row, 0),
                    bloom_chunk_id(first_row + 1, 0),
                ])
                .map_err(db("delete full-text index blocks"))?;
        }
    }
    Ok(dead.len())
}

/// Candidate rows for a search text.
pub(crate) struct Candidates {
    /// Row ids, newest blocks first (not sorted).
    pub(crate) ids: Vec<i64>,
    /// False when the search stopped at its cap.
    pub(crate) complete: bool,
}

/// Errors of chunked reads, as [`ReadAt`] wants them.
enum ChunkError {
    Sql(rusqlite::Error),
    Format(FormatError),
}

impl From<FormatError> for ChunkError {
    fn from(e: FormatError) -> Self {
        ChunkError::Format(e)
    }
}

impl ChunkError {
    fn into_store(self) -> StoreError {
        match self {
            ChunkError::Sql(e) => StoreError::backend("read a full-text index block", e),
            ChunkError::Format(e) => StoreError::backend("read a full-text index block", e),
        }
    }
}

/// A block's postings read piecewise from `text_postings`, keeping the
/// last chunks read (a lookup reads the header and directory near the
/// start, then one key section and one list).
struct Postings<'s, 'c> {
    stmt: &'s mut rusqlite::CachedStatement<'c>,
    first_row: i64,
    /// (chunk, bytes), most recent last.
    cache: Vec<(usize, Vec<u8>)>,
}

impl Postings<'_, '_> {
    fn chunk(&mut self, chunk: usize) -> std::result::Result<&[u8], ChunkError> {
        if let Some(i) = self.cache.iter().position(|(c, _)| *c == chunk) {
            return Ok(&self.cache[i].1);
        }
        let bytes: Vec<u8> = self
            .stmt
            .query_row([bloom_chunk_id(self.first_row, chunk)], |r| r.get(0))
            .optional()
            .map_err(ChunkError::Sql)?
            .ok_or(ChunkError::Format(FormatError::Truncated))?;
        if self.cache.len() >= 4 {
            self.cache.remove(0);
        }
        self.cache.push((chunk, bytes));
        Ok(&self.cache.last().expect("just pushed").1)
    }
}

impl ReadAt for Postings<'_, '_> {
    type Error = ChunkError;
    fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> std::result::Result<(), ChunkError> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done;
            let bytes = self.chunk(at / POSTINGS_CHUNK)?;
            let from = at % POSTINGS_CHUNK;
            let n = bytes.len().saturating_sub(from).min(buf.len() - done);
            if n == 0 {
                return Err(ChunkError::Format(FormatError::Truncated));
            }
            buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
            done += n;
        }
        Ok(())
    }
}

/// Rows that may match `hashes` (from `faultline_textindex::query_hashes`,
/// non-empty), newest first by block, until at least `cap` are found. Rows
/// of the open block are checked exactly with `matcher` as they are
/// scanned; the others are candidates to re-check. A bloom probe reads one
/// `text_blooms` row (2 KiB); a postings lookup a few `text_postings` rows;
/// nothing of the index is held in memory between queries.
pub(crate) fn candidates(
    conn: &Connection,
    hashes: &[u64],
    matcher: &mut TextMatcher,
    cap: usize,
) -> Result<Candidates> {
    // The caller reads in one transaction (one snapshot for the block
    // list and the reads of their chunks, so that retention deleting a
    // block meanwhile cannot make it look torn).
    let blocks: Vec<(i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT first_row, last_row, bloom_header FROM text_blocks ORDER BY first_row DESC",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(db("list full-text index blocks"))?;
    let finished = blocks.first().map_or(0, |b| b.1);
    let mut ids = Vec::new();
    crate::walk::entries_after(conn, finished, true, |id, message| {
        if matcher.matches(message) {
            ids.push(id);
        }
        Ok(())
    })?;
    if ids.len() >= cap {
        return Ok(Candidates {
            ids,
            complete: false,
        });
    }
    let mut chunks = conn
        .prepare_cached("SELECT bytes FROM text_postings WHERE id = ?1")
        .map_err(db("prepare a postings read"))?;
    let mut probe = conn
        .prepare_cached("SELECT lines FROM text_blooms WHERE id = ?1")
        .map_err(db("prepare a bloom probe"))?;
    for (i, (first_row, _, header)) in blocks.iter().enumerate() {
        let first_row = *first_row;
        let n = bloom_blocks(header).map_err(|e| StoreError::backend("read a bloom filter", e))?;
        let mut maybe = true;
        for &h in hashes {
            let line = (bloom_probe_range(n, h).start - BLOOM_HEADER) / BLOOM_LINE;
            let id = bloom_chunk_id(first_row, line / BLOOM_CHUNK_LINES);
            let at = (line % BLOOM_CHUNK_LINES) * BLOOM_LINE;
            let hit = probe
                .query_row([id], |r| {
                    let lines = r.get_ref(0)?.as_blob()?;
                    // A missing line answers "maybe": never a false negative.
                    Ok(lines
                        .get(at..at + BLOOM_LINE)
                        .is_none_or(|l| bloom_block_may_contain(l, h)))
                })
                .optional()
                .map_err(db("read a bloom filter"))?
                .unwrap_or(true);
            if !hit {
                maybe = false;
                break;
            }
        }
        if !maybe {
            continue;
        }
        let mut postings = Postings {
            stmt: &mut chunks,
            first_row,
            cache: Vec::new(),
        };
        let mut acc: Option<Vec<i64>> = None;
        for &h in hashes {
            let rows = postings_lookup_read(&mut postings, h).map_err(ChunkError::into_store)?;
            let Some(rows) = rows else {
                acc = Some(Vec::new());
                break;
            };
            acc = Some(match acc {
                None => rows,
                Some(a) => faultline_textindex::intersect(&a, &rows),
            });
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        ids.extend(acc.unwrap_or_default().into_iter().rev());
        if ids.len() >= cap && i + 1 < blocks.len() {
            return Ok(Candidates {
                ids,
                complete: false,
            });
        }
    }
    Ok(Candidates {
        ids,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use crate::{SqliteOptions, SqliteStore, schema};
    use faultline_model::{Level, LogFilter, NewEntry};
    use faultline_store::{LogQuery, Paging, Store};
    use rusqlite::Connection;

    const T0: i64 = 1_700_000_000_000_000;

    fn entry(ts: i64, message: &str) -> NewEntry {
        NewEntry {
            project: "p".into(),
            service: "api".into(),
            level: Level::Info,
            message: message.into(),
            tags: Vec::new(),
            timestamp: ts,
            received_at: ts,
            host: None,
            attributes: Default::default(),
            trace_id: None,
            span_id: None,
        }
    }

    /// Ids of every entry matching `q`, newest first, through the store.
    fn search(store: &SqliteStore, q: &str) -> Vec<i64> {
        let page = store
            .query_logs(&LogQuery {
                filter: LogFilter {
                    q: Some(q.into()),
                    ..LogFilter::default()
                },
                limit: 100_000,
                paging: Paging::Cursor(None),
            })
            .expect("query");
        page.entries.iter().map(|e| e.id).collect()
    }

    /// Ids of every entry matching `q`, newest first, by scanning.
    fn expected(store: &SqliteStore, q: &str) -> Vec<i64> {
        let filter = LogFilter {
            q: Some(q.into()),
            ..LogFilter::default()
        };
        store
            .query_logs(&LogQuery {
                filter: LogFilter::default(),
                limit: 100_000,
                paging: Paging::Cursor(None),
            })
            .expect("query")
            .entries
            .iter()
            .filter(|e| filter.matches(&e.entry))
            .map(|e| e.id)
            .collect()
    }

    /// Rows of `text_blooms` and `text_postings`.
    fn chunk_rows(path: &std::path::Path) -> (i64, i64) {
        let conn = Connection::open(path).expect("raw open");
        conn.query_row(
            "SELECT (SELECT count(*) FROM text_blooms), (SELECT count(*) FROM text_postings)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count chunks")
    }

    fn blocks(path: &std::path::Path) -> Vec<(i64, i64)> {
        let conn = Connection::open(path).expect("raw open");
        let mut s = conn
            .prepare("SELECT first_row, last_row FROM text_blocks ORDER BY first_row")
            .expect("prepare");
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|r| r.collect())
            .expect("blocks")
    }

    /// Two handles append in turn (as two processes could): each one's
    /// open block is rebuilt when the other wrote, so blocks never miss or
    /// repeat a row. A failed append (rolled back) is recovered the same way.
    #[test]
    fn two_writers_and_failed_appends_keep_blocks_exact() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f.db");
        let options = SqliteOptions::default();
        let a = SqliteStore::open_with_block_rows(&path, options.clone(), 5).expect("open a");
        let b = SqliteStore::open_with_block_rows(&path, options, 5).expect("open b");
        for i in 0..40i64 {
            let store = if i % 3 == 0 { &b } else { &a };
            let batch: Vec<NewEntry> = (0..(i % 4 + 1))
                .map(|j| {
                    entry(
                        T0 + i * 10 + j,
                        &format!("w{i} common x{} phrase one", j % 2),
                    )
                })
                .collect();
            store.append(&[&batch]).expect("append");
            if i % 7 == 0 {
                // Fails after indexing some rows: everything rolls back.
                let mut bad = entry(T0, "w999 rolled back");
                bad.tags = vec!["a\u{1f}b".into()];
                let good = entry(T0, "w999 rolled back");
                store.append(&[&[good, bad]]).expect_err("refused tag");
            }
        }
        let got = blocks(&path);
        assert!(got.len() > 10, "{got:?}");
        assert!(got.windows(2).all(|w| w[0].1 < w[1].0), "{got:?}");
        for q in [
            "common",
            "w5",
            "w39",
            "x1",
            "phrase one",
            "one phrase",
            "w999",
            "w0 x0",
        ] {
            let want = expected(&a, q);
            assert_eq!(search(&a, q), want, "q={q}");
            assert_eq!(search(&b, q), want, "q={q}");
        }
        assert!(search(&a, "w999").is_empty());
    }

    /// Batches prepared before the append (records and index keys made off
    /// the writer) are stored and found exactly like plain ones; a batch
    /// the store cannot prepare (a refused tag) is refused all the same.
    #[test]
    fn prepared_appends_match_plain_ones() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let plain = SqliteStore::open_with_block_rows(
            &dir.path().join("plain.db"),
            SqliteOptions::default(),
            7,
        )
        .expect("open plain");
        let prepared = SqliteStore::open_with_block_rows(
            &dir.path().join("prepared.db"),
            SqliteOptions::default(),
            7,
        )
        .expect("open prepared");
        for i in 0..12i64 {
            let batch: Vec<NewEntry> = (0..(i % 5 + 1))
                .map(|j| {
                    let mut e = entry(
                        T0 + i * 10 + j,
                        &format!("Req{i} Ünïcode x{} GET /a/b", j % 3),
                    );
                    e.tags = vec![format!("t{j}").into()];
                    e.host = Some("web-1".into());
                    e
                })
                .collect();
            let ids = plain.append(&[&batch]).expect("plain append");
            let p = prepared.prepare(&batch);
            assert!(p.is_some());
            // Every other batch goes without (as from a bus that drops it).
            let p = p.filter(|_| i % 2 == 0);
            let got = prepared
                .append_prepared(&[(&batch, p.as_ref()), (&[], None)])
                .expect("prepared append");
            assert_eq!(got, ids);
        }
        let mut bad = entry(T0, "refused");
        bad.tags = vec!["a\u{1f}b".into()];
        let bad = [bad];
        assert!(prepared.prepare(&bad).is_none());
        prepared
            .append_prepared(&[(&bad, None)])
            .expect_err("refused tag");
        let all = |s: &SqliteStore| {
            s.query_logs(&LogQuery {
                filter: LogFilter::default(),
                limit: 1_000,
                paging: Paging::Cursor(None),
            })
            .expect("query")
            .entries
        };
        assert_eq!(all(&prepared), all(&plain));
        for q in ["req3", "ünïcode", "x1 get", "a b", "nothing"] {
            assert_eq!(search(&prepared, q), expected(&plain, q), "q={q}");
            assert_eq!(search(&prepared, q), search(&plain, q), "q={q}");
        }
    }

    /// A store in a temporary directory with blocks of `rows` ids.
    fn small_blocks(rows: usize) -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f.db");
        let store =
            SqliteStore::open_with_block_rows(&path, SqliteOptions::default(), rows).expect("open");
        (dir, path, store)
    }

    /// An idle writer finishes an open block that holds a quarter of a
    /// block or more (its postings leave memory), not a smaller one, and
    /// appends go on indexing exactly.
    #[test]
    fn idle_time_finishes_a_sizeable_open_block() {
        let (_dir, path, store) = small_blocks(8);
        let rows = |from: i64, n: i64| -> Vec<NewEntry> {
            (from..from + n)
                .map(|i| entry(T0 + i, &format!("row{i} all")))
                .collect()
        };
        store.append(&[&rows(0, 5)]).expect("append");
        assert!(blocks(&path).is_empty());
        store.release_memory().expect("idle");
        assert_eq!(blocks(&path), vec![(1, 5)]);
        assert_eq!(search(&store, "all"), expected(&store, "all"));
        // One row (under a quarter of 8): kept open.
        store.append(&[&rows(5, 1)]).expect("append one");
        store.release_memory().expect("idle again");
        assert_eq!(blocks(&path), vec![(1, 5)]);
        store.append(&[&rows(6, 9)]).expect("append more");
        store.writer().store_sealed_block().expect("store");
        assert_eq!(blocks(&path), vec![(1, 5), (6, 13)]);
        assert_eq!(search(&store, "all"), expected(&store, "all"));
        assert_eq!(search(&store, "all").len(), 15);
        assert_eq!(search(&store, "row14").len(), 1);
    }

    /// Retention drops blocks whose rows are all gone, keeps the others,
    /// and appends after it still index exactly.
    #[test]
    fn retention_drops_dead_blocks() {
        let (_dir, path, store) = small_blocks(4);
        let batch: Vec<NewEntry> = (0..30)
            .map(|i| entry(T0 + i, &format!("row{i} all")))
            .collect();
        store.append(&[&batch]).expect("append");
        // The last full block is finished off the writer and stored by the
        // next transaction; meanwhile its rows are searched like the open
        // block's.
        assert_eq!(blocks(&path).len(), 6);
        assert_eq!(search(&store, "all"), expected(&store, "all"));
        assert_eq!(search(&store, "row27").len(), 1);
        store
            .writer()
            .store_sealed_block()
            .expect("store the sealed block");
        assert_eq!(blocks(&path).len(), 7);
        // Small blocks: one row of bloom lines and one of postings each.
        assert_eq!(chunk_rows(&path), (7, 7));
        assert_eq!(
            store
                .delete_expired(Level::Info, T0 + 10, 1_000)
                .expect("delete"),
            10
        );
        // Rows 1..=10 are gone: blocks 1-4 and 5-8 with them.
        assert_eq!(blocks(&path).first(), Some(&(9, 12)));
        assert_eq!(chunk_rows(&path), (5, 5));
        assert_eq!(search(&store, "all"), expected(&store, "all"));
        assert_eq!(search(&store, "all").len(), 20);
        store
            .delete_expired(Level::Info, T0 + 100, 1_000)
            .expect("delete all");
        assert!(blocks(&path).is_empty());
        assert_eq!(chunk_rows(&path), (0, 0));
        let more: Vec<NewEntry> = (0..9)
            .map(|i| entry(T0 + 200 + i, &format!("again{i} all")))
            .collect();
        store.append(&[&more]).expect("append again");
        store
            .writer()
            .store_sealed_block()
            .expect("store the sealed block");
        assert_eq!(blocks(&path), vec![(31, 34), (35, 38)]);
        assert_eq!(search(&store, "all"), expected(&store, "all"));
        assert_eq!(search(&store, "again8").len(), 1);
    }

    /// A version 1 database (FTS5) is migrated: the FTS table goes and the
    /// existing rows get their blocks.
    #[test]
    fn migration_from_fts5_builds_blocks() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("v1.db");
        let rows = faultline_textindex::BLOCK_ROWS as i64 * 2 + 100;
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.execute_batch(schema::MIGRATIONS[0])
                .expect("v1 schema");
            conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 0);
                 INSERT INTO services (id, project_id, name, created_at) VALUES (1, 1, 'api', 0);",
            )
            .expect("v1 data");
            let tx = conn.unchecked_transaction().expect("begin");
            {
                let mut s = tx
                    .prepare(
                        "INSERT INTO logs (id, ts, received_at, service_id, level, message) \
                         VALUES (?1, ?1, ?1, 1, 3, ?2)",
                    )
                    .expect("prepare");
                for id in 1..=rows {
                    let m = if id % 1000 == 7 {
                        format!("old rare{id} marker")
                    } else {
                        format!("old entry {}", id % 97)
                    };
                    s.execute(rusqlite::params![id, m]).expect("insert");
                }
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'last_log_id'",
                [rows],
            )
            .expect("meta");
            tx.commit().expect("commit");
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("migrate");
        let n = faultline_textindex::BLOCK_ROWS as i64;
        assert_eq!(blocks(&path), vec![(1, n), (n + 1, 2 * n)]);
        let (blooms, postings) = chunk_rows(&path);
        assert!(blooms >= 2 && postings > 2, "{blooms} {postings}");
        let conn = Connection::open(&path).expect("raw open");
        let fts: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'logs_fts'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(fts, 0);
        let marker = search(&store, "marker");
        assert_eq!(marker.len(), (rows / 1000 + 1) as usize);
        assert_eq!(search(&store, "rare32007"), vec![32_007]);
        assert_eq!(search(&store, "rare7 marker"), vec![7]);
        store
            .append(&[&[entry(T0, "new marker")]])
            .expect("append after migration");
        assert_eq!(search(&store, "marker").len(), marker.len() + 1);
    }
}
