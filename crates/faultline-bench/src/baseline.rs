//! The ceiling: how fast plain SQLite stores the same kind of rows on this
//! machine, with a prepared statement in a loop, one transaction per 10,000
//! rows, WAL and `synchronous=FULL` — without and with a contentless FTS5
//! index on the message. Rows are generated before each transaction, so only
//! inserting and committing is timed.

use crate::generate::{Entry, Generator, SERVICES};
use crate::stats::Summary;
use anyhow::Context;
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::{Duration, Instant};

const ROWS_PER_TX: usize = 10_000;

pub struct Baseline {
    pub rows: u64,
    /// Time spent inserting and committing.
    pub busy: Duration,
}

impl Baseline {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.busy.as_secs_f64().max(1e-9)
    }
}

/// Opens a new database in WAL mode with `synchronous=FULL` and the
/// baseline's table (and the FTS5 table when `fts`).
fn open(path: &Path, fts: bool) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open baseline database {}", path.display()))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "baseline database is in {mode} mode, not WAL"
    );
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE logs (
             id INTEGER PRIMARY KEY,
             ts INTEGER NOT NULL,
             service_id INTEGER NOT NULL,
             level INTEGER NOT NULL,
             message TEXT NOT NULL,
             tags TEXT NOT NULL,
             attributes TEXT NOT NULL
         );",
    )?;
    if fts {
        conn.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(message, content='', contentless_delete=1);",
        )?;
    }
    Ok(conn)
}

/// Inserts `rows` generated entries in one transaction.
fn insert_tx(
    conn: &mut Connection,
    fts: bool,
    rows: &[Entry],
    first_ts: i64,
) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO logs (ts, service_id, level, message, tags, attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut index = if fts {
            Some(tx.prepare_cached("INSERT INTO f (rowid, message) VALUES (?1, ?2)")?)
        } else {
            None
        };
        for (i, e) in rows.iter().enumerate() {
            let id = insert.insert(params![
                first_ts + i as i64 * 1_000,
                e.service as i64,
                e.level.code(),
                e.message,
                e.tags_json(),
                e.attributes_json()
            ])?;
            if let Some(index) = index.as_mut() {
                index.execute(params![id, e.message])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn now_ns() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64
}

/// Inserts up to `max_rows` rows (stopping after `limit` of insert time)
/// into a new database in `dir`; with `fts`, each row's message also goes
/// into a contentless FTS5 table in the same transaction.
pub fn run(
    dir: &Path,
    fts: bool,
    max_rows: u64,
    limit: Duration,
    seed: u64,
) -> anyhow::Result<Baseline> {
    let path = dir.join(if fts { "fts.db" } else { "plain.db" });
    let mut conn = open(&path, fts)?;
    let mut generator = Generator::new(seed);
    let mut rows = 0u64;
    let mut busy = Duration::ZERO;
    let epoch_ns = now_ns();
    while rows < max_rows && busy < limit {
        let n = ROWS_PER_TX.min((max_rows - rows) as usize);
        let chunk: Vec<_> = (0..n)
            .map(|i| generator.entry(i % SERVICES, None))
            .collect();
        let t0 = Instant::now();
        insert_tx(&mut conn, fts, &chunk, epoch_ns + rows as i64 * 1_000)?;
        busy += t0.elapsed();
        rows += n as u64;
    }
    Ok(Baseline { rows, busy })
}

/// The floor of an ack: time to insert and commit one `batch`-row
/// transaction (FTS5 on, `synchronous=FULL`), `commits` times (stopping after
/// `limit`). Most of it is the WAL fsync on this disk.
pub fn commit_latency(
    dir: &Path,
    batch: usize,
    commits: usize,
    limit: Duration,
    seed: u64,
) -> anyhow::Result<Summary> {
    let mut conn = open(&dir.join("commit.db"), true)?;
    let mut generator = Generator::new(seed);
    let mut times = Vec::with_capacity(commits);
    let end = Instant::now() + limit;
    while times.len() < commits && Instant::now() < end {
        let chunk: Vec<_> = (0..batch)
            .map(|i| generator.entry(i % SERVICES, None))
            .collect();
        let t0 = Instant::now();
        insert_tx(&mut conn, true, &chunk, now_ns())?;
        times.push(t0.elapsed());
    }
    Summary::of(&times).context("no commit finished in time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_rows_with_and_without_fts() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for fts in [false, true] {
            let b = run(dir.path(), fts, 2_500, Duration::from_secs(30), 5).expect("baseline");
            assert_eq!(b.rows, 2_500);
            assert!(b.rows_per_sec() > 0.0);
        }
        let c = commit_latency(dir.path(), 100, 5, Duration::from_secs(30), 6).expect("commits");
        assert_eq!(c.n, 5);
        let conn = Connection::open(dir.path().join("fts.db")).expect("open");
        let hits: i64 = conn
            .query_row(
                "SELECT count(*) FROM f WHERE f MATCH 'order OR user OR session'",
                [],
                |r| r.get(0),
            )
            .expect("an FTS query");
        assert!(hits > 0);
    }
}
