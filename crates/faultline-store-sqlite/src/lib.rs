//! # faultline-store-sqlite
//!
//! The embedded store: [`faultline_store::Store`] on one SQLite file, the
//! default for a single-machine faultline. It passes the contract suite in
//! `faultline_store::contract`.
//!
//! ```no_run
//! use faultline_store::Store;
//! use faultline_store_sqlite::{SqliteOptions, SqliteStore};
//!
//! let store = SqliteStore::open("data/faultline.db".as_ref(), SqliteOptions::default())?;
//! store.ensure_service("shop", "api")?;
//! # Ok::<(), faultline_store::StoreError>(())
//! ```
//!
//! # Brief overview
//!
//! - **One writer, several readers.** All writes go through one connection
//!   behind a mutex; reads take a connection from a small lazily-opened pool.
//!   The database runs in WAL mode, so readers see the last committed state
//!   and never wait for the writer, and the writer never waits for readers.
//! - **Group commit is the caller's job.** [`Store::append`] takes several
//!   batches and writes them in *one* transaction with one fsync
//!   (`synchronous=FULL` by default: a returned `Ok` survives power loss).
//!   The server's writer thread gathers whatever arrived while the previous
//!   commit was syncing and hands it over in one call, so the fsync is paid
//!   per group, not per request. What then bounds throughput is CPU: the
//!   entries are stored in chunks (one row per service per append, below),
//!   so per entry it is a few dozen bytes of encoding plus the full-text
//!   index (≈1 µs); `examples/append_rate.rs` measures it.
//! - **Checkpoints off the commit path.** The writer's WAL hook wakes a
//!   checkpoint thread of the store (its own connection, passive
//!   checkpoints) instead of checkpointing inside the commit. Past 16 MiB
//!   of WAL the writer checkpoints right after its commit (cheap, the
//!   thread copied most pages), which lets the WAL restart even when
//!   commits come back to back (see `checkpoint.rs`).
//! - **Several processes may open the file.** The CLI creates tokens while the
//!   server runs. Migrations run inside `BEGIN IMMEDIATE`, every connection
//!   waits up to 10 s for a lock, and nothing cached in memory can go stale
//!   (services and projects are never deleted or renamed; log ids come from a
//!   high-water mark stored in the database; the writer's open index block
//!   is checked against the database at the start of every append, see
//!   below). Each open store runs its own checkpoint thread.
//!
//! # Schema (version 6, in `PRAGMA user_version`)
//!
//! | table | what | why this shape |
//! |---|---|---|
//! | `projects`, `services` | tenancy; `services` also keeps `count`, `error_count`, `last_seen` | counters are updated once per service per transaction, so listing services never reads entries |
//! | `tokens` | hashes of API tokens, never secrets | `hash` is unique: authentication is one index lookup |
//! | `log_chunks` | the entries, in chunks: `first_id INTEGER PRIMARY KEY, last_id, service_id, min_ts, max_ts, levels, count, data` | one row (and two index entries) per chunk of up to a few hundred entries instead of per entry: one row per entry capped ingest near 100k entries/s, the plain SQLite ceiling is ≈300k rows/s |
//! | `text_blocks` | the full-text index: one row per finished block of [`faultline_textindex::BLOCK_ROWS`] consecutive log ids (`first_row INTEGER PRIMARY KEY, last_row, bloom_header`) | listing all blocks reads a few pages; the message is stored once, in its chunk |
//! | `text_blooms`, `text_postings` | each block's bloom filter (32 64-byte lines per row) and postings (4000-byte pieces), `id = first_row * 65536 + chunk` | every row fits one page: a bloom probe is one lookup, never a walk down a blob's overflow chain |
//! | `meta` | `last_log_id` high-water mark | ids are never reused, even after the newest entries were deleted |
//! | `log_counts` | entries per `(service_id, hour, level)` by timestamp, `WITHOUT ROWID` | the dashboard's histograms and per-service activity read a few hundred rows, never entries; the writer counts each append in memory and upserts once per (service, hour, level) present; retention leaves the counts |
//! | `users`, `sessions` | web UI accounts (password hashes) and sessions by the hash of their cookie token (`users.rs`) | a session lookup is one primary-key read on a read connection |
//!
//! The issue tables (`issues.rs`, `alerts.rs`) and their indexes (migration 6:
//! the issue lists page ids from indexes, see `issues.rs`) are described there.
//!
//! **Chunks.** One append (one transaction) groups its entries by service,
//! in the order services first appear, and gives each group the next ids in
//! arrival order, so a chunk holds the entries of one service and one
//! append with consecutive ids `[first_id, last_id]` (ids are still
//! returned in the caller's entry order). A chunk is cut early when its
//! timestamps would span more than `chunk::MAX_SPAN` (1 min), or at
//! 1024 entries or 32 KiB, so that reading one entry (a full-text
//! candidate) stays cheap. `levels` is a bitmask of the level codes
//! present (bit `code`). The blob is our own format (`chunk.rs`): per entry
//! its length, id offset, timestamp delta and `received_at` delta
//! (zigzag varints), then level, flags, message, tags, host, typed
//! attributes, trace and span id; record headers decode without building
//! entries, so walks check timestamps and levels first, and the message or
//! tags only of entries they get to.
//!
//! Indexes on `log_chunks`: `(max_ts, min_ts, service_id, levels)` and
//! `(service_id, max_ts, min_ts, levels)`, both covering what a walk needs
//! to choose chunks, so the blobs are read by `first_id` only for chunks a
//! query gets to. Queries (`walk.rs`) go newest first:
//! - *Walks* read chunks by `max_ts` descending (one service: its own
//!   index; several services: the `(max_ts)` index filtered on
//!   `service_id`), skipping chunks without a wanted level. The newest
//!   timestamp wanted (cursor, `until`) bounds the index range at
//!   `max_ts <= newest + MAX_SPAN`. Chunks of concurrent appends overlap in
//!   time, so the kept entries of the chunks read go on a heap, and an
//!   entry is emitted once it is newer than the next chunk's `max_ts`: the
//!   order is exactly (ts, id) descending, and cursors `(ts, id)` page
//!   without repeating or skipping whatever is appended meanwhile.
//! - *Full text* finds candidate ids with the block index, then either the
//!   index drives (candidates sorted, grouped by chunk, each chunk read by
//!   primary key and decoded once, every candidate checked with the exact
//!   matcher, the newest `offset + limit` kept on a bounded heap) or, when
//!   the term is common (more candidates than a threshold, collected newest
//!   blocks first), chunks are walked newest first checking the text, with
//!   a budget after which the index drives after all.
//! - Every query reads inside one read transaction: one snapshot of the
//!   chunk list, the blobs and the index.
//!
//! Details worth knowing:
//! - **Timestamps** are integers, microseconds since the epoch; levels are
//!   their [`faultline_model::Level::code`].
//! - **Tags** are stored as they are; a tag containing `\x1f` is still
//!   refused (schemas 1 and 2 stored tags between `\x1f` separators; ingest
//!   refuses control characters anyway).
//! - **Full-text search** must mean exactly what
//!   [`faultline_model::LogFilter::matches`] says. The index
//!   ([`faultline_textindex`], wired in `index.rs`) tokenizes exactly like it
//!   and only narrows entries down to *candidates*: entries holding every
//!   token of the query (no positions, 32-bit token keys), never missing a
//!   match. Every candidate is re-checked in Rust (`text.rs`, phrases
//!   included), so results are exactly `LogFilter`'s. Entries are grouped
//!   in blocks of consecutive ids; a finished block is a bloom filter of its
//!   tokens plus sorted token keys with delta-coded id lists, stored as two
//!   blobs.
//!   - *Writing*: each appended entry's tokens are hashed into the writer's
//!     in-memory open block (≈1 µs); when it holds `BLOCK_ROWS` entries a
//!     thread of its own encodes it and the writer's next transaction (or
//!     the idle upkeep) inserts it; until then readers scan its entries
//!     like the open block's, and a crash leaves them to the rebuild. The
//!     open block is never stored: at the start of every append transaction
//!     the writer compares the newest block's `last_row` and the id
//!     high-water mark with what it last committed, and when they differ
//!     (first append after open, another handle appended, or our
//!     transaction rolled back) rebuilds the open block from the chunks
//!     after the newest block. So a crash loses nothing and two handles
//!     cannot make overlapping blocks.
//!   - *Reading*: the entries after the newest block (fewer than two blocks,
//!     in the newest chunks) are decoded and checked directly; then blocks
//!     are visited newest first, probing each block's bloom filter (one
//!     `text_blooms` row per token) and, on a hit, looking the tokens up in
//!     its postings (header, directory binary search, key section, list: a
//!     few `text_postings` rows). Nothing of the index stays in memory
//!     between queries (the page cache holds what is hot). A first version
//!     stored each blob whole and read it with incremental blob I/O; every
//!     read then walked the blob's overflow-page chain (≈15 pages for a
//!     bloom, ≈170 for postings), which made a rare-term query over 10 M
//!     rows ≈38 ms instead of ≈12 ms.
//!   - *Migration* from version 1 drops the FTS5 table; the blocks of the
//!     existing entries are built (≈1–2 µs per entry) after they moved to
//!     chunks, in the migration transaction.
//! - **Migration to version 3** moves the rows of `logs` into chunks (runs
//!   of consecutive ids of one service, cut like the writer cuts) and drops
//!   `logs`, in the migration transaction; ids do not change, so the text
//!   index stays valid.
//! - **Retention** ([`Store::delete_expired`]) reads the chunks that may
//!   hold an expired entry of the level (`max_ts >= watermark`,
//!   `min_ts < before`, its bit in `levels`: a range of the `(max_ts)`
//!   index, bounded by `before + MAX_SPAN`) oldest `min_ts` first; a chunk
//!   whose entries all expire is deleted, a chunk that keeps some is
//!   rewritten without them (the others keep their ids: each record holds
//!   its id offset, and the row is re-keyed by its first remaining id).
//!   `max_rows` is honoured exactly (within the last chunk, its oldest
//!   expired entries go first). Then it deletes the index blocks whose
//!   `last_row` is below the oldest remaining chunk (entries deleted inside
//!   a live block simply stop being found when candidates are fetched).
//!   The writer remembers, per level, up to which timestamp everything was
//!   already deleted (all of `[from, before)`, or up to the `min_ts` of the
//!   chunk where `max_rows` stopped it), so repeated calls do not rescan
//!   the entries that are kept longer; the memory is dropped whenever
//!   another connection wrote to the file or an older entry is appended.
//!
//! # Memory
//!
//! Each connection has its own page cache of [`SqliteOptions::cache_size_kib`]
//! (the writer, and up to [`SqliteOptions::readers`] readers opened on
//! demand; the checkpoint connection keeps 64 KiB); temporary tables and
//! sorts stay in memory (sorts of a page are bounded by its `LIMIT`). [`SqliteStore::release_memory`] gives idle
//! connections' caches back. A query holds the chunks it is merging
//! (32 KiB each, a few at a time unless their time ranges overlap a lot) and
//! the entries of its page. The full-text index adds the writer's open
//! block (≈15 token hashes × 8 bytes per row, ≈2 MB when full, plus a sort
//! buffer of the same size) and, per query, its candidate ids; bloom filters
//! are read from the file, not cached (≈3–4 bytes per row would be ≈35 MB
//! for 10 M rows).

mod alerts;
mod checkpoint;
mod chunk;
mod counts;
mod index;
mod issues;
mod read;
mod schema;
mod text;
mod users;
mod walk;
mod write;

use faultline_model::{Issue, StatusChange, StoredEntry, StoredEvent};
use faultline_model::{Level, NewEntry, Project, Service, ServiceSummary, TokenInfo, TokenKind};
use faultline_store::{
    AlertStore, AlertWrites, Attachment, Attempt, Bucket, EventBatch, EventOutcome, IssuePage,
    IssueQuery, IssueStore, IssueTicket, LogCount, LogPage, LogQuery, Notification,
    NotificationStatus, Prepared, ProjectOverview, Result, ServiceActivity, Session, StatusUpdate,
    Store, StoreError, StoredChannel, StoredRule, User, UserStore,
};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (fsync on every commit, the default) or `NORMAL`
    /// (fsync only at checkpoints: a power loss may lose the last commits,
    /// never corrupt the file).
    pub synchronous_full: bool,
    /// Page cache per connection, KiB. The writer and every reader each have
    /// one, so the worst case is `(1 + readers) * cache_size_kib`.
    pub cache_size_kib: u32,
    /// Most read connections open at once (at least 1). Readers are opened on
    /// first use and kept.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            cache_size_kib: 8192,
            readers: 4,
        }
    }
}

/// A [`Store`] on one SQLite database file.
///
/// Cheap to share (`Arc<SqliteStore>`); every method may be called from any
/// thread. Methods block: call them from blocking threads.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<write::Writer>,
    readers: read::Pool,
    /// The WAL file `sync_appends` syncs; `None` with `synchronous=NORMAL`
    /// (nothing to sync).
    wal: Option<WalFile>,
}

/// The WAL as SQLite names it (after the database file's real path:
/// SQLite resolves symbolic links), opened on first use.
struct WalFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl SqliteStore {
    /// Opens (creating when needed, with its parent directory) the database at
    /// `path` and brings its schema up to date.
    ///
    /// Safe to call while another process has the same file open.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        Self::open_with_block_rows(path, options, faultline_textindex::BLOCK_ROWS)
    }

    /// [`SqliteStore::open`] with another size of full-text index block, so
    /// tests reach finished blocks with few rows.
    pub(crate) fn open_with_block_rows(
        path: &Path,
        options: SqliteOptions,
        block_rows: usize,
    ) -> Result<SqliteStore> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend("create the data directory", e))?;
        }
        let mut conn = schema::open_writer(path, &options)?;
        let checkpointer = checkpoint::Checkpointer::start(&mut conn, path, &options)?;
        let wal = match conn.path() {
            Some(db) if options.synchronous_full && !db.is_empty() => Some(WalFile {
                path: PathBuf::from(format!("{db}-wal")),
                file: Mutex::new(None),
            }),
            _ => None,
        };
        let writer = write::Writer::new(conn, checkpointer, block_rows)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            wal,
            readers: read::Pool::new(path.to_path_buf(), options),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append_prepared_with(
        &self,
        batches: &[(&[NewEntry], Option<&Prepared>)],
        synced: bool,
    ) -> Result<Vec<i64>> {
        if batches.iter().all(|b| b.0.is_empty()) {
            return Ok(Vec::new());
        }
        // What another store (or nobody) prepared is ignored.
        let batches: Vec<write::Batch<'_>> = batches
            .iter()
            .map(|&(entries, prepared)| {
                let prepared = prepared
                    .and_then(|p| (**p).downcast_ref::<write::PreparedBatch>())
                    .filter(|p| p.fits(entries.len()));
                (entries, prepared)
            })
            .collect();
        let mut writer = self.writer();
        if synced {
            writer.append(&batches)
        } else {
            writer.append_unsynced(&batches)
        }
    }

    /// Gives the memory SQLite holds for caching (page caches, prepared
    /// statements) back to the allocator, for connections not in use right
    /// now. Worth calling when the server has been idle for a while; the
    /// caches refill on the next queries.
    pub fn release_memory(&self) -> Result<()> {
        if let Ok(mut writer) = self.writer.try_lock() {
            writer.release_memory()?;
        }
        self.readers.release_memory()
    }

    fn writer(&self) -> MutexGuard<'_, write::Writer> {
        // A panic while holding the lock has rolled its transaction back when
        // the `Transaction` was dropped; the connection is still usable.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store for SqliteStore {
    fn release_memory(&self) -> Result<()> {
        SqliteStore::release_memory(self)
    }

    fn ensure_project(&self, name: &str) -> Result<Project> {
        if let Some(p) = self.readers.get()?.find_project(name)? {
            return Ok(p);
        }
        self.writer().ensure_project(name)
    }

    fn list_projects(&self) -> Result<Vec<Project>> {
        self.readers.get()?.list_projects()
    }

    fn ensure_service(&self, project: &str, name: &str) -> Result<Service> {
        if let Some(s) = self.readers.get()?.find_service(project, name)? {
            return Ok(s);
        }
        self.writer().ensure_service(project, name)
    }

    fn list_services(&self, project: Option<&str>) -> Result<Vec<ServiceSummary>> {
        self.readers.get()?.list_services(project)
    }

    fn create_token(
        &self,
        kind: &TokenKind,
        hash: &str,
        prefix: &str,
        now: i64,
    ) -> Result<TokenInfo> {
        self.writer().create_token(kind, hash, prefix, now)
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>> {
        self.readers.get()?.find_token(hash)
    }

    fn list_tokens(&self, project: Option<&str>) -> Result<Vec<TokenInfo>> {
        self.readers.get()?.list_tokens(project)
    }

    fn revoke_token(&self, id: i64, now: i64) -> Result<TokenInfo> {
        self.writer().revoke_token(id, now)
    }

    fn touch_tokens(&self, uses: &[(i64, i64)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.writer().touch_tokens(uses)
    }

    fn has_admin_token(&self) -> Result<bool> {
        self.readers.get()?.has_admin_token()
    }

    fn append(&self, batches: &[&[NewEntry]]) -> Result<Vec<i64>> {
        if batches.iter().all(|b| b.is_empty()) {
            return Ok(Vec::new());
        }
        let batches: Vec<write::Batch<'_>> = batches.iter().map(|b| (*b, None)).collect();
        self.writer().append(&batches)
    }

    fn prepare(&self, entries: &[NewEntry]) -> Option<Prepared> {
        write::PreparedBatch::new(entries).map(|p| Box::new(p) as Prepared)
    }

    fn append_prepared(&self, batches: &[(&[NewEntry], Option<&Prepared>)]) -> Result<Vec<i64>> {
        self.append_prepared_with(batches, true)
    }

    fn append_prepared_unsynced(
        &self,
        batches: &[(&[NewEntry], Option<&Prepared>)],
    ) -> Result<Vec<i64>> {
        self.append_prepared_with(batches, false)
    }

    /// With `synchronous=FULL`, SQLite fsyncs the WAL in every commit;
    /// unsynced appends commit with `NORMAL` instead (the same WAL frames,
    /// no fsync), and this fsyncs the WAL file, which makes every frame
    /// written before durable: the same guarantee, paid once for all the
    /// commits since the last sync, and off the writer.
    fn sync_appends(&self) -> Result<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let mut file = wal.file.lock().unwrap_or_else(PoisonError::into_inner);
        if file.is_none() {
            // The WAL exists from the open on (the schema check reads
            // through it) until the last connection closes, and the
            // writer's stays open: a missing WAL is an error, never
            // "nothing to sync".
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .open(&wal.path)
                .map_err(|e| {
                    let named =
                        std::io::Error::new(e.kind(), format!("{}: {e}", wal.path.display()));
                    StoreError::backend("open the WAL to sync it", named)
                })?;
            *file = Some(opened);
        }
        file.as_ref()
            .expect("opened above")
            .sync_data()
            .map_err(|e| StoreError::backend("sync the WAL", e))
    }

    fn query_logs(&self, query: &LogQuery) -> Result<LogPage> {
        self.readers.query_logs(query)
    }

    fn delete_expired(&self, level: Level, before: i64, max_rows: usize) -> Result<usize> {
        if max_rows == 0 {
            return Ok(0);
        }
        self.writer().delete_expired(level, before, max_rows)
    }

    fn entries_after(
        &self,
        after: i64,
        min_level: Level,
        limit: usize,
    ) -> Result<Vec<StoredEntry>> {
        self.readers.entries_after(after, min_level, limit)
    }

    fn last_entry_id(&self) -> Result<i64> {
        self.readers.last_entry_id()
    }

    fn size_bytes(&self) -> Result<u64> {
        let pages = self.readers.get()?.page_bytes()?;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = match std::fs::metadata(&wal) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(StoreError::backend("read the size of the WAL file", e)),
        };
        Ok(pages + wal)
    }

    fn log_counts(
        &self,
        project: &str,
        service: Option<&str>,
        bucket: Bucket,
        since: i64,
    ) -> Result<Vec<LogCount>> {
        counts::log_counts(&*self.readers.get()?, project, service, bucket, since)
    }

    fn service_activity(&self, project: &str, since: i64) -> Result<Vec<ServiceActivity>> {
        counts::service_activity(&*self.readers.get()?, project, since)
    }
}

impl IssueStore for SqliteStore {
    fn record_events_and(
        &self,
        batch: &EventBatch,
        then: &mut dyn FnMut(&[EventOutcome]) -> AlertWrites,
    ) -> Result<Vec<EventOutcome>> {
        issues::record_events(self.writer().conn(), batch, then)
    }

    fn issues_processed_through(&self) -> Result<i64> {
        issues::processed_through(&*self.readers.get()?)
    }

    fn grouper_states(&self) -> Result<Vec<(String, Vec<u8>)>> {
        issues::grouper_states(&*self.readers.get()?)
    }

    fn list_issues(&self, query: &IssueQuery) -> Result<IssuePage> {
        issues::list_issues(&*self.readers.get()?, query)
    }

    fn get_issue(&self, id: i64, now: i64) -> Result<Option<Issue>> {
        issues::get_issue(&*self.readers.get()?, id, now)
    }

    fn issue_events(&self, id: i64, before: Option<i64>, limit: usize) -> Result<Vec<StoredEvent>> {
        issues::events(&*self.readers.get()?, id, before, limit)
    }

    fn first_event(&self, id: i64) -> Result<Option<StoredEvent>> {
        issues::first_event(&*self.readers.get()?, id)
    }

    fn issue_histogram(&self, id: i64, bucket: Bucket, since: i64) -> Result<Vec<(i64, u64)>> {
        issues::histogram(&*self.readers.get()?, id, bucket, since)
    }

    fn set_issue_status(&self, id: i64, update: &StatusUpdate) -> Result<Issue> {
        issues::set_status(self.writer().conn(), id, update)?;
        self.get_issue(id, update.at)?.ok_or(StoreError::NotFound {
            what: "issue",
            name: id.to_string(),
        })
    }

    fn issue_history(&self, id: i64) -> Result<Vec<StatusChange>> {
        issues::history(&*self.readers.get()?, id)
    }

    fn merge_issues(&self, into: i64, from: i64, actor: &str, at: i64) -> Result<Issue> {
        issues::merge(self.writer().conn(), into, from, actor, at)?;
        self.get_issue(into, at)?.ok_or(StoreError::NotFound {
            what: "issue",
            name: into.to_string(),
        })
    }

    fn delete_issue(&self, id: i64) -> Result<()> {
        issues::delete(self.writer().conn(), id)
    }

    fn delete_expired_events(&self, before: i64, max_rows: usize) -> Result<usize> {
        if max_rows == 0 {
            return Ok(0);
        }
        issues::delete_expired_events(self.writer().conn(), before, max_rows)
    }

    fn put_attachment(&self, attachment: &Attachment) -> Result<()> {
        issues::put_attachment(self.writer().conn(), attachment)
    }

    fn get_attachment(&self, sha256: &str) -> Result<Option<Attachment>> {
        issues::get_attachment(&*self.readers.get()?, sha256)
    }

    fn issue_ticket(&self, issue: i64) -> Result<Option<IssueTicket>> {
        issues::issue_ticket(&*self.readers.get()?, issue)
    }

    fn set_issue_ticket(&self, issue: i64, ticket: &IssueTicket) -> Result<()> {
        issues::set_issue_ticket(self.writer().conn(), issue, ticket)
    }

    fn project_overview(&self, project: &str, since: i64) -> Result<ProjectOverview> {
        issues::project_overview(&*self.readers.get()?, project, since)
    }

    fn issues_for_logs(&self, log_ids: &[i64]) -> Result<Vec<(i64, i64)>> {
        issues::issues_for_logs(&*self.readers.get()?, log_ids)
    }

    fn issue_counts(&self, issue_ids: &[i64], since: i64) -> Result<Vec<(i64, i64, u64)>> {
        issues::issue_counts(&*self.readers.get()?, issue_ids, since)
    }

    fn fingerprint_rules(&self, project: &str) -> Result<Option<String>> {
        issues::rules(&*self.readers.get()?, project)
    }

    fn set_fingerprint_rules(&self, project: &str, rules_json: &str) -> Result<()> {
        issues::set_rules(self.writer().conn(), project, rules_json)
    }
}

impl AlertStore for SqliteStore {
    fn put_channel(&self, project: &str, name: &str, spec: &str) -> Result<()> {
        alerts::put_channel(self.writer().conn(), project, name, spec)
    }

    fn list_channels(&self, project: Option<&str>) -> Result<Vec<StoredChannel>> {
        alerts::list_channels(&*self.readers.get()?, project)
    }

    fn delete_channel(&self, project: &str, name: &str) -> Result<()> {
        alerts::delete_channel(self.writer().conn(), project, name)
    }

    fn create_rule(&self, project: &str, name: &str, spec: &str) -> Result<StoredRule> {
        alerts::create_rule(self.writer().conn(), project, name, spec)
    }

    fn update_rule(&self, id: i64, name: &str, spec: &str) -> Result<StoredRule> {
        alerts::update_rule(self.writer().conn(), id, name, spec)
    }

    fn delete_rule(&self, id: i64) -> Result<()> {
        alerts::delete_rule(self.writer().conn(), id)
    }

    fn list_rules(&self, project: Option<&str>) -> Result<Vec<StoredRule>> {
        alerts::list_rules(&*self.readers.get()?, project)
    }

    fn find_rule(&self, project: &str, name: &str) -> Result<Option<StoredRule>> {
        alerts::find_rule(&*self.readers.get()?, project, name)
    }

    fn alert_states(&self) -> Result<Vec<(i64, String, String)>> {
        alerts::alert_states(&*self.readers.get()?)
    }

    fn record_alerts(&self, writes: &AlertWrites) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        alerts::record_alerts(self.writer().conn(), writes)
    }

    fn due_notifications(&self, now: i64, limit: usize) -> Result<Vec<Notification>> {
        alerts::due(&*self.readers.get()?, now, limit)
    }

    fn next_due(&self) -> Result<Option<i64>> {
        alerts::next_due(&*self.readers.get()?)
    }

    fn record_attempt(&self, id: i64, attempt: &Attempt) -> Result<()> {
        alerts::record_attempt(self.writer().conn(), id, attempt)
    }

    fn list_notifications(
        &self,
        project: Option<&str>,
        status: Option<NotificationStatus>,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        alerts::list(&*self.readers.get()?, project, status, limit)
    }

    fn get_notification(&self, id: i64) -> Result<Option<Notification>> {
        alerts::get(&*self.readers.get()?, id)
    }

    fn retry_notification(&self, id: i64, now: i64) -> Result<Notification> {
        alerts::retry(self.writer().conn(), id, now)
    }

    fn discard_notification(&self, id: i64) -> Result<()> {
        alerts::discard(self.writer().conn(), id)
    }
}

impl UserStore for SqliteStore {
    fn create_user(&self, username: &str, password_hash: &str, now: i64) -> Result<User> {
        users::create_user(self.writer().conn(), username, password_hash, now)
    }

    fn list_users(&self) -> Result<Vec<User>> {
        users::list_users(&*self.readers.get()?)
    }

    fn count_users(&self) -> Result<u64> {
        users::count_users(&*self.readers.get()?)
    }

    fn find_user(&self, username: &str) -> Result<Option<(User, String)>> {
        users::find_user(&*self.readers.get()?, username)
    }

    fn set_user_password(&self, id: i64, password_hash: &str) -> Result<()> {
        users::set_password(self.writer().conn(), id, password_hash)
    }

    fn delete_user(&self, id: i64) -> Result<()> {
        users::delete_user(self.writer().conn(), id)
    }

    fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        users::create_session(
            self.writer().conn(),
            token_hash,
            user_id,
            csrf,
            now,
            expires_at,
        )
    }

    fn find_session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        users::find_session(&*self.readers.get()?, token_hash, now)
    }

    fn delete_session(&self, token_hash: &str) -> Result<()> {
        users::delete_session(self.writer().conn(), token_hash)
    }

    fn delete_expired_sessions(&self, now: i64) -> Result<usize> {
        users::delete_expired_sessions(self.writer().conn(), now)
    }
}

/// Maps a rusqlite error to a [`StoreError`] naming what we were doing.
pub(crate) fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(op, e)
}

#[cfg(test)]
mod tests {
    use crate::{SqliteOptions, SqliteStore};
    use faultline_model::{Level, NewEntry};
    use faultline_store::Store;

    /// Unsynced appends commit without an fsync, and leave the connection
    /// as it was for every other write; their data is in the file once
    /// synced.
    #[test]
    fn unsynced_appends_restore_synchronous_full() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("u.db");
        let entries: Vec<NewEntry> = (0..20)
            .map(|i| NewEntry {
                project: "p".into(),
                service: "s".into(),
                level: Level::Warn,
                message: format!("entry {i}"),
                timestamp: i,
                ..NewEntry::default()
            })
            .collect();
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
            store
                .append_prepared_unsynced(&[(&entries, None)])
                .expect("unsynced append");
            let mode: i64 = store
                .writer()
                .conn()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .expect("read synchronous");
            assert_eq!(mode, 2, "FULL again after the unsynced append");
            store.sync_appends().expect("sync");
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
        assert_eq!(store.last_entry_id().expect("last id"), 20);
    }

    /// The WAL synced is the one SQLite writes, also when the database is
    /// opened through a symbolic link (SQLite names the WAL after the
    /// link's target).
    #[cfg(unix)]
    #[test]
    fn the_synced_wal_is_the_one_sqlite_writes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("real")).expect("mkdir");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(dir.path().join("real/target.db"), &link).expect("symlink");
        let store = SqliteStore::open(&link, SqliteOptions::default()).expect("open");
        let e = NewEntry {
            project: "p".into(),
            service: "s".into(),
            message: "through a link".into(),
            ..NewEntry::default()
        };
        store
            .append_prepared_unsynced(&[(&[e], None)])
            .expect("unsynced append");
        let wal = &store.wal.as_ref().expect("synchronous=FULL syncs").path;
        assert!(wal.exists(), "{} is not the WAL", wal.display());
        assert!(wal.starts_with(dir.path().join("real")) || wal.ends_with("real/target.db-wal"));
        store.sync_appends().expect("sync");
    }
}
