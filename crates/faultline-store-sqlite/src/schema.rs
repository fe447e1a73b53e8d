//! Opening connections and migrating the schema.

use crate::chunk::{Chunk, ChunkBuilder};
use crate::{SqliteOptions, db, index, write};
use faultline_model::{Attributes, Level, Name, NewEntry};
use faultline_store::{Result, StoreError};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// How long any connection waits for a lock held by another one (the CLI and
/// the server share the file) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection. The writer uses about twenty;
/// readers build a variant per shape of filter, and a few of those (several
/// services) are large, so the cache stays small.
const STATEMENT_CACHE: usize = 32;

/// Largest WAL file kept after a checkpoint; a burst may grow it, the next
/// checkpoint truncates it back to this.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Page size of a new database (an existing one keeps its own): 8 KiB.
/// Each WAL frame is one page, written by SQLite as two `pwrite`s (header,
/// then page) and copied again by the checkpoint, so twice the page size
/// halves the system calls per byte of both. Against SQLite's default of
/// 4 KiB (5 alternated pairs of the benchmark): sustained ingest about 10 %
/// more entries per server core, the file about as big (383 vs 377 bytes an
/// entry), about a fifth more WAL bytes an entry (each commit rewrites the
/// partly filled pages it touches), half-load acknowledgements unchanged.
/// 16 KiB (measured earlier: 6 % faster than 4 KiB) wrote 1.8x the bytes
/// and gave half-load acknowledgements of 60-90 ms now and then. The index
/// rows (`POSTINGS_CHUNK`, bloom rows) fit a 4 KiB page, so they stay
/// local in either.
pub(crate) const PAGE_SIZE: i64 = 8 * 1024;

/// Schema migrations; `MIGRATIONS[i]` takes `user_version` from `i` to `i + 1`.
/// Append only: a released migration never changes.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tenancy, tokens, logs and their full-text index.
    r#"
    CREATE TABLE projects (
        id          INTEGER PRIMARY KEY,
        name        TEXT    NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE services (
        id           INTEGER PRIMARY KEY,
        project_id   INTEGER NOT NULL REFERENCES projects (id),
        name         TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        last_seen    INTEGER,
        count        INTEGER NOT NULL DEFAULT 0,
        error_count  INTEGER NOT NULL DEFAULT 0,
        UNIQUE (project_id, name)
    ) STRICT;

    CREATE TABLE tokens (
        id          INTEGER PRIMARY KEY,
        kind        TEXT    NOT NULL CHECK (kind IN ('admin', 'read', 'ingest')),
        project_id  INTEGER REFERENCES projects (id),
        service_id  INTEGER REFERENCES services (id),
        hash        TEXT    NOT NULL UNIQUE,
        prefix      TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        last_used   INTEGER,
        revoked_at  INTEGER
    ) STRICT;
    CREATE INDEX tokens_project ON tokens (project_id);

    CREATE TABLE logs (
        id           INTEGER PRIMARY KEY,
        ts           INTEGER NOT NULL,
        received_at  INTEGER NOT NULL,
        service_id   INTEGER NOT NULL,
        level        INTEGER NOT NULL,
        message      TEXT    NOT NULL,
        tags         TEXT,
        host         TEXT,
        attributes   TEXT,
        trace_id     TEXT,
        span_id      TEXT
    ) STRICT;
    -- The rowid (= id) ends every index: these are (ts, id) and
    -- (service_id, ts, id).
    CREATE INDEX logs_ts ON logs (ts);
    CREATE INDEX logs_service_ts ON logs (service_id, ts);

    -- Contentless (the text lives in logs.message) and without per-row
    -- sizes (nothing is ranked); positions are kept for phrase terms such as
    -- `user_id` or `10.0.0.1`. It indexes fts::index_text(message), not the
    -- message itself: see fts.rs.
    CREATE VIRTUAL TABLE logs_fts USING fts5 (
        message,
        content = '',
        columnsize = 0,
        tokenize = "unicode61 remove_diacritics 0 categories 'L* N*'"
    );
    -- Each commit adds a segment; merging 16 at a time rather than 4 halves
    -- the index maintenance per entry, for a few more segments per lookup.
    INSERT INTO logs_fts (logs_fts, rank) VALUES ('automerge', 16);
    INSERT INTO logs_fts (logs_fts, rank) VALUES ('crisismerge', 64);

    CREATE TABLE meta (
        key    TEXT PRIMARY KEY,
        value  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('last_log_id', 0);
    "#,
    // 2: the block text index replaces FTS5 (see index.rs); the blocks of
    // the existing rows are built by `index_existing_rows` right after.
    r#"
    DROP TABLE logs_fts;
    -- The full-text index (see index.rs): one row per finished block of
    -- consecutive log ids, with the bloom filter's 8-byte header; the bloom
    -- filter's 64-byte lines, 32 per row, and the postings, in 4000-byte
    -- pieces, in rows that fit one page (no overflow chain), keyed by
    -- first_row * 65536 + chunk (faultline-textindex formats).
    CREATE TABLE text_blocks (
        first_row     INTEGER PRIMARY KEY,
        last_row      INTEGER NOT NULL,
        bloom_header  BLOB    NOT NULL
    ) STRICT;
    CREATE TABLE text_blooms (
        id     INTEGER PRIMARY KEY,
        lines  BLOB NOT NULL
    ) STRICT;
    CREATE TABLE text_postings (
        id     INTEGER PRIMARY KEY,
        bytes  BLOB NOT NULL
    ) STRICT;
    "#,
    // 3: issues and events (see issues.rs).
    r#"
    -- AUTOINCREMENT: an issue or event id, once given, is never reused
    -- (links and cursors stay unambiguous after deletions).
    CREATE TABLE issues (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id      INTEGER NOT NULL REFERENCES projects (id),
        service_id      INTEGER NOT NULL REFERENCES services (id),
        fingerprint     TEXT    NOT NULL,
        title           TEXT    NOT NULL,
        culprit         TEXT,
        exception_type  TEXT,
        level           INTEGER NOT NULL,
        status          TEXT    NOT NULL DEFAULT 'unresolved',
        ignore_count    INTEGER,
        ignore_until    INTEGER,
        regressed       INTEGER NOT NULL DEFAULT 0,
        first_seen      INTEGER NOT NULL,
        last_seen       INTEGER NOT NULL,
        count           INTEGER NOT NULL,
        hosts           INTEGER NOT NULL DEFAULT 0,
        users           INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX issues_project_last_seen ON issues (project_id, last_seen);

    -- Every fingerprint that leads to an issue: its own, and those merged
    -- into it. One row per (project, fingerprint): one issue each.
    CREATE TABLE issue_fingerprints (
        project_id   INTEGER NOT NULL,
        fingerprint  TEXT    NOT NULL,
        issue_id     INTEGER NOT NULL,
        PRIMARY KEY (project_id, fingerprint)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX issue_fingerprints_issue ON issue_fingerprints (issue_id);

    CREATE TABLE issue_events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        issue_id     INTEGER NOT NULL,
        service_id   INTEGER NOT NULL,
        level        INTEGER NOT NULL,
        ts           INTEGER NOT NULL,
        received_at  INTEGER NOT NULL,
        log_id       INTEGER,
        title        TEXT    NOT NULL,
        message      TEXT    NOT NULL,
        host         TEXT,
        user         TEXT,
        tags         TEXT,
        attributes   TEXT,
        details      TEXT,
        count        INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX issue_events_issue ON issue_events (issue_id, id);
    CREATE INDEX issue_events_ts ON issue_events (ts);

    CREATE TABLE event_keys (
        project_id  INTEGER NOT NULL,
        key         TEXT    NOT NULL,
        event_id    INTEGER NOT NULL,
        issue_id    INTEGER NOT NULL,
        PRIMARY KEY (project_id, key)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX event_keys_event ON event_keys (event_id);
    CREATE INDEX event_keys_issue ON event_keys (issue_id);

    CREATE TABLE issue_hosts (
        issue_id  INTEGER NOT NULL,
        value     TEXT    NOT NULL,
        PRIMARY KEY (issue_id, value)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE issue_users (
        issue_id  INTEGER NOT NULL,
        value     TEXT    NOT NULL,
        PRIMARY KEY (issue_id, value)
    ) STRICT, WITHOUT ROWID;
    -- Events per hour (hour = start of the hour, microseconds).
    CREATE TABLE issue_counts (
        issue_id  INTEGER NOT NULL,
        hour      INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        PRIMARY KEY (issue_id, hour)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE issue_history (
        id           INTEGER PRIMARY KEY,
        issue_id     INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        actor        TEXT    NOT NULL,
        action       TEXT    NOT NULL,
        from_status  TEXT    NOT NULL,
        to_status    TEXT    NOT NULL,
        detail       TEXT
    ) STRICT;
    CREATE INDEX issue_history_issue ON issue_history (issue_id, id);

    CREATE TABLE grouper_states (
        project_id  INTEGER PRIMARY KEY,
        state       BLOB    NOT NULL
    ) STRICT;
    CREATE TABLE fingerprint_rules (
        project_id  INTEGER PRIMARY KEY,
        rules       TEXT    NOT NULL
    ) STRICT;

    -- Attachments, content-addressed (SHA-256 of the original bytes),
    -- stored gzip-compressed; `event_attachments` says which events use
    -- them, so unused ones can go.
    CREATE TABLE attachments (
        sha256        TEXT    PRIMARY KEY,
        content_type  TEXT    NOT NULL,
        size          INTEGER NOT NULL,
        gzip          BLOB    NOT NULL,
        created_at    INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE event_attachments (
        event_id  INTEGER NOT NULL,
        sha256    TEXT    NOT NULL,
        PRIMARY KEY (event_id, sha256)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX event_attachments_sha ON event_attachments (sha256);

    -- Alerting (see alerts.rs): specs are JSON validated by faultline-alerts.
    CREATE TABLE alert_channels (
        project_id  INTEGER NOT NULL,
        name        TEXT    NOT NULL,
        spec        TEXT    NOT NULL,
        PRIMARY KEY (project_id, name)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE alert_rules (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id  INTEGER NOT NULL,
        name        TEXT    NOT NULL,
        spec        TEXT    NOT NULL,
        UNIQUE (project_id, name)
    ) STRICT;
    CREATE TABLE alert_states (
        rule_id  INTEGER NOT NULL,
        key      TEXT    NOT NULL,
        state    TEXT    NOT NULL,
        PRIMARY KEY (rule_id, key)
    ) STRICT, WITHOUT ROWID;
    -- The outbox: one row per (trigger, channel), ever.
    CREATE TABLE notifications (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id       INTEGER NOT NULL,
        rule_id          INTEGER NOT NULL,
        channel          TEXT    NOT NULL,
        dedupe           TEXT    NOT NULL,
        trigger          TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        attempts         INTEGER NOT NULL,
        next_attempt_at  INTEGER NOT NULL,
        last_error       TEXT,
        created_at       INTEGER NOT NULL,
        delivered_at     INTEGER,
        UNIQUE (dedupe, channel)
    ) STRICT;
    CREATE INDEX notifications_due ON notifications (status, next_attempt_at);

    -- An issue's ticket in an external tracker (ShotGrid, …).
    CREATE TABLE issue_tickets (
        issue_id      INTEGER PRIMARY KEY,
        tracker       TEXT    NOT NULL,
        external_id   TEXT    NOT NULL,
        url           TEXT    NOT NULL,
        attached      INTEGER NOT NULL,
        last_note_at  INTEGER
    ) STRICT;
    "#,
    // 4: entries are stored in chunks (see chunk.rs and the crate docs);
    // `chunks_from_logs` converts the rows of `logs` right after, then
    // drops it.
    r#"
    CREATE TABLE log_chunks (
        first_id    INTEGER PRIMARY KEY,
        last_id     INTEGER NOT NULL,
        service_id  INTEGER NOT NULL,
        min_ts      INTEGER NOT NULL,
        max_ts      INTEGER NOT NULL,
        levels      INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        data        BLOB    NOT NULL
    ) STRICT;
    -- Newest-first walks read these (covering) indexes only, then each
    -- chunk's blob by first_id.
    CREATE INDEX log_chunks_ts ON log_chunks (max_ts, min_ts, service_id, levels);
    CREATE INDEX log_chunks_service ON log_chunks (service_id, max_ts, min_ts, levels);
    "#,
    // 5: entries per hour (dashboard), issue events by log entry, web UI
    // users and sessions; `log_counts_from_chunks` counts the entries
    // already stored right after.
    r#"
    -- Entries per (service, hour, level), by timestamp (hour = start of the
    -- hour, microseconds); the writer adds each append's counts, retention
    -- leaves them.
    CREATE TABLE log_counts (
        service_id  INTEGER NOT NULL,
        hour        INTEGER NOT NULL,
        level       INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        PRIMARY KEY (service_id, hour, level)
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX issue_events_log ON issue_events (log_id) WHERE log_id IS NOT NULL;

    CREATE TABLE users (
        id             INTEGER PRIMARY KEY,
        username       TEXT    NOT NULL UNIQUE,
        password_hash  TEXT    NOT NULL,
        created_at     INTEGER NOT NULL,
        last_login     INTEGER
    ) STRICT;
    -- Sessions by the hash of their cookie token.
    CREATE TABLE sessions (
        token_hash  TEXT    PRIMARY KEY,
        user_id     INTEGER NOT NULL,
        csrf        TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sessions_user ON sessions (user_id);
    "#,
    // 6: issue lists (see issues.rs, `list_issues`): each sort of a
    // project's issues walks an index in order, and the filters (status,
    // service, level) and counts read index entries, not rows.
    r#"
    DROP INDEX issues_project_last_seen;
    CREATE INDEX issues_last_seen ON issues (project_id, last_seen, status, service_id, level);
    CREATE INDEX issues_status_last_seen ON issues (project_id, status, last_seen, service_id, level);
    CREATE INDEX issues_first_seen ON issues (project_id, first_seen, status);
    CREATE INDEX issues_count ON issues (project_id, count, last_seen, status);
    -- The project overview's regressed count.
    CREATE INDEX issues_regressed ON issues (project_id, status) WHERE regressed != 0;
    -- Issues a text search must check apart (LIKE stops at a NUL).
    CREATE INDEX issues_nul ON issues (project_id) WHERE instr(title, char(0)) > 0
        OR instr(culprit, char(0)) > 0 OR instr(exception_type, char(0)) > 0;
    -- The trend sort: the counts of the last 48 hours in one range.
    CREATE INDEX issue_counts_hour ON issue_counts (hour, issue_id, count);
    "#,
];

/// The version whose migration creates `text_blocks`, which then needs the
/// blocks of the entries already stored.
const TEXT_BLOCKS_VERSION: usize = 2;

/// The version whose migration creates `log_chunks`, which then receives
/// the rows of `logs`.
const CHUNKS_VERSION: usize = 4;

/// The version whose migration creates `log_counts`, which then counts the
/// entries already stored.
const LOG_COUNTS_VERSION: usize = 5;

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Switches a database to WAL (a no-op when it already is), retrying while
/// another connection holds the lock: when two processes open a new data
/// directory at once, SQLite answers the switch "database is locked" at
/// once instead of waiting (the busy handler is not called where waiting
/// could deadlock).
fn enable_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Opens the write connection and migrates the schema.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db("open the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db("set the busy timeout"))?;
    // Only takes effect while the database is still empty.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(db("set the page size"))?;
    let mode = enable_wal(&conn).map_err(db("enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!(
            "{} cannot use write-ahead logging (journal mode stays {mode:?}); is it on a network file system?",
            path.display()
        )));
    }
    configure(&conn, options)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(db("set journal_size_limit"))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Opens a read connection on an existing, migrated database.
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db("open a read connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db("set the busy timeout"))?;
    configure(&conn, options)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(db("make a read connection read-only"))?;
    Ok(conn)
}

/// Opens the connection of the checkpoint thread (see checkpoint.rs).
pub(crate) fn open_checkpointer(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db("open the checkpoint connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db("set the busy timeout"))?;
    configure(
        &conn,
        &SqliteOptions {
            cache_size_kib: 64,
            ..options.clone()
        },
    )?;
    Ok(conn)
}

/// Sets `synchronous=NORMAL` for the next transactions of `conn`: their
/// commits are not fsynced, something else makes them durable (the WAL's
/// next sync). Returns the mode to give back to [`restore_synchronous`];
/// `None` when it was NORMAL or OFF already.
pub(crate) fn relax_synchronous(conn: &Connection) -> Result<Option<i64>> {
    let mode: i64 = conn
        .prepare_cached("PRAGMA synchronous")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("read synchronous"))?;
    if mode <= 1 {
        return Ok(None);
    }
    conn.prepare_cached("PRAGMA synchronous = NORMAL")
        .and_then(|mut s| s.execute([]))
        .map_err(db("relax synchronous"))?;
    Ok(Some(mode))
}

/// Gives back the mode [`relax_synchronous`] replaced. A failure is logged,
/// not returned: the transactions in between committed (or failed) all the
/// same, and only later writes lose their fsync until a switch succeeds.
pub(crate) fn restore_synchronous(conn: &Connection, mode: Option<i64>) {
    let Some(mode) = mode else {
        return;
    };
    if let Err(e) = conn
        .prepare_cached(&format!("PRAGMA synchronous = {mode}"))
        .and_then(|mut s| s.execute([]))
    {
        tracing::error!(error = %e, mode, "could not restore synchronous on the write connection");
    }
}

/// Settings every connection needs (they are per connection in SQLite).
fn configure(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(db("set synchronous"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(db("enable foreign keys"))?;
    // Negative: KiB rather than pages.
    conn.pragma_update(
        None,
        "cache_size",
        -i64::from(options.cache_size_kib.max(64)),
    )
    .map_err(db("set cache_size"))?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(db("set temp_store"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db("read the schema version"))
}

/// Applies the missing migrations in one `IMMEDIATE` transaction, so two
/// processes opening a new file at once cannot both migrate it: the second
/// waits for the lock, then sees the new version and does nothing.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    if user_version(conn)? == LATEST {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin the schema migration"))?;
    let from = user_version(&tx)?;
    if from > LATEST {
        return Err(StoreError::Invalid(format!(
            "{} has schema version {from}, newer than this faultline understands ({LATEST}); upgrade faultline",
            path.display()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(sql).map_err(db("migrate the schema"))?;
        if i + 1 == CHUNKS_VERSION {
            chunks_from_logs(&tx)?;
        }
        if i + 1 == LOG_COUNTS_VERSION {
            log_counts_from_chunks(&tx)?;
        }
        tracing::info!(path = %path.display(), version = i + 1, "migrated database schema");
    }
    if from < TEXT_BLOCKS_VERSION as i64 {
        // Finished blocks for every full block of existing entries (now in
        // chunks); the rest is the writer's open block, rebuilt on its
        // first append.
        index::OpenBlock::new(faultline_textindex::BLOCK_ROWS).sync(&tx, 0)?;
    }
    tx.pragma_update(None, "user_version", LATEST)
        .map_err(db("write the schema version"))?;
    tx.commit().map_err(db("commit the schema migration"))?;
    Ok(())
}

/// Moves the rows of a version 2 `logs` table into chunks (runs of
/// consecutive ids of one service, cut as the writer cuts them), then drops
/// it. Ids, and so the full-text index, stay as they were.
fn chunks_from_logs(conn: &Connection) -> Result<()> {
    let mut insert = conn
        .prepare_cached(write::INSERT_CHUNK)
        .map_err(db("prepare the chunk insert"))?;
    let mut stmt = conn
        .prepare(
            "SELECT id, ts, received_at, service_id, level, message, tags, host, attributes, \
             trace_id, span_id FROM logs ORDER BY id",
        )
        .map_err(db("read the rows to convert"))?;
    let mut rows = stmt.query([]).map_err(db("read the rows to convert"))?;
    let mut chunk = ChunkBuilder::new();
    let mut service = 0i64;
    let mut converted = 0usize;
    while let Some(r) = rows.next().map_err(db("read the rows to convert"))? {
        let id: i64 = r.get(0).map_err(db("read a row to convert"))?;
        let service_id: i64 = r.get(3).map_err(db("read a row to convert"))?;
        let level: i64 = r.get(4).map_err(db("read a row to convert"))?;
        let tags: Option<String> = r.get(6).map_err(db("read a row to convert"))?;
        let attributes: Option<String> = r.get(8).map_err(db("read a row to convert"))?;
        let level = u8::try_from(level)
            .ok()
            .and_then(Level::from_code)
            .ok_or_else(|| {
                StoreError::Invalid(format!("entry {id} has unknown level code {level}"))
            })?;
        let e = NewEntry {
            project: Name::default(),
            service: Name::default(),
            level,
            message: r.get(5).map_err(db("read a row to convert"))?,
            tags: match tags {
                None => Vec::new(),
                Some(t) => t
                    .strip_prefix('\x1f')
                    .and_then(|t| t.strip_suffix('\x1f'))
                    .unwrap_or(&t)
                    .split('\x1f')
                    .map(Name::from)
                    .collect(),
            },
            timestamp: r.get(1).map_err(db("read a row to convert"))?,
            received_at: r.get(2).map_err(db("read a row to convert"))?,
            host: r
                .get::<_, Option<String>>(7)
                .map_err(db("read a row to convert"))?
                .map(Name::from),
            attributes: match attributes {
                None => Attributes::new(),
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| StoreError::backend("decode stored attributes", e))?,
            },
            trace_id: r.get(9).map_err(db("read a row to convert"))?,
            span_id: r.get(10).map_err(db("read a row to convert"))?,
        };
        if !chunk.is_empty() && (service_id != service || chunk.full_for(e.timestamp)) {
            write::store_chunk(&mut insert, &mut chunk, service)?;
        }
        service = service_id;
        chunk.push(id, &e)?;
        converted += 1;
    }
    if !chunk.is_empty() {
        write::store_chunk(&mut insert, &mut chunk, service)?;
    }
    drop(rows);
    drop(stmt);
    drop(insert);
    conn.execute_batch("DROP TABLE logs")
        .map_err(db("drop the converted rows"))?;
    if converted > 0 {
        tracing::info!(entries = converted, "moved log entries into chunks");
    }
    Ok(())
}

/// Counts the entries stored in chunks into `log_counts` (entries deleted
/// by retention before this version are not counted: they are gone).
fn log_counts_from_chunks(conn: &Connection) -> Result<()> {
    let mut counts: HashMap<(i64, i64, u8), i64> = HashMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT first_id, service_id, data FROM log_chunks")
            .map_err(db("read the chunks to count"))?;
        let mut rows = stmt.query([]).map_err(db("read the chunks to count"))?;
        while let Some(r) = rows.next().map_err(db("read the chunks to count"))? {
            let first_id: i64 = r.get(0).map_err(db("read a chunk to count"))?;
            let service_id: i64 = r.get(1).map_err(db("read a chunk to count"))?;
            let data: Vec<u8> = r.get(2).map_err(db("read a chunk to count"))?;
            let chunk = Chunk::decode(first_id, service_id, data)?;
            for rec in &chunk.recs {
                *counts
                    .entry((service_id, write::hour_of(rec.ts), rec.level))
                    .or_default() += 1;
            }
        }
    }
    let mut insert = conn
        .prepare(write::ADD_LOG_COUNT)
        .map_err(db("prepare the log count insert"))?;
    for (&(service_id, hour, level), &n) in &counts {
        insert
            .execute(rusqlite::params![service_id, hour, level, n])
            .map_err(db("store a log count"))?;
    }
    if !counts.is_empty() {
        tracing::info!(
            rows = counts.len(),
            "counted the stored log entries per hour"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::{SqliteOptions, SqliteStore};
    use faultline_model::{AttrValue, Attributes, Level, LogFilter, Name, NewEntry};
    use faultline_store::{LogQuery, Paging, Store};
    use rusqlite::{Connection, params};

    const T0: i64 = 1_700_000_000_000_000;
    const HOUR: i64 = 3_600_000_000;

    fn all(store: &SqliteStore, filter: LogFilter) -> Vec<(i64, NewEntry)> {
        store
            .query_logs(&LogQuery {
                filter,
                limit: 10_000,
                paging: Paging::Cursor(None),
            })
            .expect("query")
            .entries
            .into_iter()
            .map(|e| (e.id, e.entry))
            .collect()
    }

    /// A version 2 database with rows (two services interleaved, every
    /// field, timestamps hours apart) is converted to chunks: every entry
    /// keeps its id and fields, search and retention work, ids go on after
    /// the stored high-water mark.
    #[test]
    fn migration_from_rows_keeps_every_entry() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("v2.db");
        let mut want: Vec<(i64, NewEntry)> = Vec::new();
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.execute_batch(MIGRATIONS[0]).expect("v1 schema");
            conn.execute_batch(MIGRATIONS[1]).expect("v2 schema");
            conn.execute_batch(
                "PRAGMA user_version = 2;
                 INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 0);
                 INSERT INTO services (id, project_id, name, created_at) VALUES (1, 1, 'api', 0);
                 INSERT INTO services (id, project_id, name, created_at) VALUES (2, 1, 'web', 0);",
            )
            .expect("v2 tenancy");
            let mut insert = conn
                .prepare(
                    "INSERT INTO logs (id, ts, received_at, service_id, level, message, tags, \
                     host, attributes, trace_id, span_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .expect("prepare");
            for id in 1..=700i64 {
                // Runs of one service, a gap in the ids, hours between
                // some entries.
                let service = if (id / 50) % 2 == 0 { 1 } else { 2 };
                if id % 97 == 0 {
                    continue;
                }
                let ts = T0 + (id / 100) * 2 * HOUR + id;
                let level = Level::from_code((id % 6 + 1) as u8).expect("level");
                let tags: Vec<Name> = (0..id % 3).map(|t| format!("tag{t}").into()).collect();
                let mut attributes = Attributes::new();
                if id % 2 == 0 {
                    attributes.insert("n".into(), AttrValue::Int(id));
                    attributes.insert("f".into(), AttrValue::Float(id as f64 / 4.0));
                    attributes.insert("b".into(), AttrValue::Bool(true));
                    attributes.insert("s".into(), AttrValue::Str(format!("v{id}").into()));
                }
                let e = NewEntry {
                    project: "p".into(),
                    service: if service == 1 { "api" } else { "web" }.into(),
                    level,
                    message: format!("converted entry {id} word{}", id % 10),
                    tags,
                    timestamp: ts,
                    received_at: ts + 5,
                    host: (id % 3 == 0).then(|| format!("host{}", id % 4).into()),
                    attributes,
                    trace_id: (id % 5 == 0).then(|| format!("{id:032x}")),
                    span_id: (id % 7 == 0).then(|| format!("{id:016x}")),
                };
                let stored_tags =
                    (!e.tags.is_empty()).then(|| format!("\u{1f}{}\u{1f}", e.tags.join("\u{1f}")));
                let attrs = (!e.attributes.is_empty())
                    .then(|| serde_json::to_string(&e.attributes).expect("json"));
                insert
                    .execute(params![
                        id,
                        e.timestamp,
                        e.received_at,
                        service,
                        i64::from(level.code()),
                        e.message,
                        stored_tags,
                        e.host.as_deref(),
                        attrs,
                        e.trace_id,
                        e.span_id
                    ])
                    .expect("insert");
                want.push((id, e));
            }
            conn.execute("UPDATE meta SET value = 705 WHERE key = 'last_log_id'", [])
                .expect("meta");
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("migrate");
        want.sort_by_key(|(id, e)| std::cmp::Reverse((e.timestamp, *id)));
        assert_eq!(all(&store, LogFilter::default()), want);
        let conn = Connection::open(&path).expect("raw open");
        let (logs, chunks): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'logs'), \
                 (SELECT count(*) FROM log_chunks)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("schema");
        assert_eq!(logs, 0, "logs is dropped");
        assert!(
            chunks >= 14,
            "runs of one service and of one minute: {chunks}"
        );
        let q = LogFilter {
            q: Some("word3".into()),
            ..LogFilter::default()
        };
        let hits: Vec<(i64, NewEntry)> =
            want.iter().filter(|(_, e)| q.matches(e)).cloned().collect();
        assert_eq!(all(&store, q), hits);
        let deleted = store
            .delete_expired(Level::Info, T0 + 4 * HOUR, 1_000)
            .expect("retention");
        let gone = want
            .iter()
            .filter(|(_, e)| e.level == Level::Info && e.timestamp < T0 + 4 * HOUR)
            .count();
        assert_eq!(deleted, gone);
        let ids = store
            .append(&[&[NewEntry {
                message: "after migration".into(),
                ..want[0].1.clone()
            }]])
            .expect("append");
        assert_eq!(ids, vec![706]);
    }

    /// Rows of `log_counts`, sorted.
    fn log_count_rows(conn: &Connection) -> Vec<(i64, i64, i64, i64)> {
        conn.prepare("SELECT service_id, hour, level, count FROM log_counts ORDER BY 1, 2, 3")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    /// A version 4 database (entries in chunks, no counts) gets the counts
    /// of the entries it holds when migrated to version 5.
    #[test]
    fn migration_to_5_counts_stored_entries() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("v4.db");
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
            for round in 0..3i64 {
                let batch: Vec<NewEntry> = (0..300i64)
                    .map(|i| NewEntry {
                        project: "p".into(),
                        service: ["api", "web", "cron"][(i % 3) as usize].into(),
                        level: Level::from_code((i % 6 + 1) as u8).expect("level"),
                        message: format!("entry {round} {i}"),
                        tags: Vec::new(),
                        timestamp: T0 + (i % 7) * HOUR + round * 25 * HOUR + i,
                        received_at: T0,
                        host: None,
                        attributes: Attributes::new(),
                        trace_id: None,
                        span_id: None,
                    })
                    .collect();
                store.append(&[&batch]).expect("append");
            }
        }
        let conn = Connection::open(&path).expect("raw open");
        let want = log_count_rows(&conn);
        assert_eq!(
            want.iter().map(|r| r.3).sum::<i64>(),
            900,
            "the writer counted every entry"
        );
        conn.execute_batch(
            "DROP INDEX issues_last_seen; DROP INDEX issues_status_last_seen; \
             DROP INDEX issues_first_seen; DROP INDEX issues_count; DROP INDEX issues_regressed; \
             DROP INDEX issues_nul; DROP INDEX issue_counts_hour; \
             CREATE INDEX issues_project_last_seen ON issues (project_id, last_seen); \
             DROP TABLE log_counts; DROP TABLE users; DROP TABLE sessions; \
             DROP INDEX issue_events_log; PRAGMA user_version = 4;",
        )
        .expect("back to version 4");
        drop(conn);
        drop(SqliteStore::open(&path, SqliteOptions::default()).expect("migrate"));
        let conn = Connection::open(&path).expect("raw open");
        assert_eq!(log_count_rows(&conn), want);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    /// Entries of a log page to their issues: the partial index on
    /// `issue_events (log_id)`; issue counts: the primary key.
    #[test]
    fn issue_lookups_use_indexes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("plan.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        let plan = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> String {
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare")
                .query_map(params, |r| r.get::<_, String>(3))
                .expect("explain")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("plan")
                .join("\n")
        };
        let p = plan(crate::issues::ISSUES_FOR_LOGS, params!["[1,2,3]"]);
        assert!(p.contains("INDEX issue_events_log"), "{p}");
        let p = plan(crate::issues::ISSUE_COUNTS, params!["[1,2,3]", 0]);
        assert!(
            p.contains("PRIMARY KEY") || p.contains("sqlite_autoindex"),
            "{p}"
        );
        assert!(!p.contains("SCAN issue_counts"), "{p}");
    }
}
