//! WAL checkpoints off the writer's commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL
//! past 1000 pages, so one append in a few paid for copying pages into the
//! database file and syncing it (≈11 % of the writer's time under sustained
//! ingest, and the latency of that commit). Instead, the write connection's
//! WAL hook (which replaces the automatic checkpoint) wakes a thread of its
//! own when the WAL holds [`THREAD_BYTES`], and that thread runs
//! `PRAGMA wal_checkpoint(PASSIVE)` on its own connection: a passive
//! checkpoint never blocks the writer or readers, and the writer keeps
//! appending to the WAL while it copies. The WAL restarts from its start
//! once a checkpoint caught up while no write transaction was adding to it,
//! which a writer that commits back to back rarely leaves time for; so
//! when the WAL reaches [`WRITER_BYTES`], the writer checkpoints
//! right after its commit, as the automatic checkpoint would have (cheap:
//! the thread has copied most frames already), and the WAL restarts at its
//! next transaction. That also bounds the WAL when the thread is starved of
//! CPU. The hook itself never fails: an error returned by a WAL hook makes
//! SQLite report the commit as failed although it committed.

use crate::{SqliteOptions, db, schema};
use faultline_store::{Result, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TrySendError, sync_channel};

/// WAL size at which the thread is woken: 4 MiB, SQLite's automatic
/// threshold of 1000 pages of 4 KiB.
const THREAD_BYTES: i64 = 4 << 20;

/// WAL size past which the writer checkpoints itself.
const WRITER_BYTES: i64 = 16 << 20;

/// `bytes` of WAL in frames (pages) of `page_size` bytes.
fn frames(bytes: i64, page_size: i64) -> i32 {
    i32::try_from(bytes / page_size.max(512)).unwrap_or(i32::MAX)
}

/// The checkpoint thread; stops when dropped.
pub(crate) struct Checkpointer {
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set by the hook when the writer should checkpoint after its commit.
    writer_due: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the thread with its own connection on `path`, and installs
    /// the hook that wakes it on the write connection `writer`.
    pub(crate) fn start(
        writer: &mut Connection,
        path: &Path,
        options: &SqliteOptions,
    ) -> Result<Checkpointer> {
        let page_size: i64 = writer
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(db("read the page size"))?;
        let (thread_frames, writer_frames) = (
            frames(THREAD_BYTES, page_size),
            frames(WRITER_BYTES, page_size),
        );
        let conn = schema::open_checkpointer(path, options)?;
        let (nudge, nudged) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("faultline-checkpoint".into())
            .spawn(move || run(&conn, &nudged))
            .map_err(|e| StoreError::backend("start the checkpoint thread", e))?;
        let writer_due = Arc::new(AtomicBool::new(false));
        let due = Arc::clone(&writer_due);
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: i32| {
                if frames >= writer_frames {
                    due.store(true, Ordering::Relaxed);
                } else if frames >= thread_frames {
                    match nudge.try_send(()) {
                        Ok(()) | Err(TrySendError::Full(())) => {}
                        Err(TrySendError::Disconnected(())) => due.store(true, Ordering::Relaxed),
                    }
                }
                Ok(())
            }))
            .map_err(db("install the WAL hook"))?;
        Ok(Checkpointer {
            thread: Some(thread),
            writer_due,
        })
    }

    /// Called by the writer after a commit: checkpoints on `writer` when
    /// the WAL has grown past [`WRITER_BYTES`]. A failure (another
    /// connection is checkpointing, say) is only logged: the next commit
    /// tries again.
    pub(crate) fn after_commit(&self, writer: &Connection) {
        if self.writer_due.swap(false, Ordering::Relaxed)
            && let Err(e) = writer
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(db("checkpoint the WAL"))
        {
            tracing::debug!(error = %e, "WAL checkpoint by the writer failed");
        }
    }

    /// Removes the hook from `writer` (which closes the channel, so the
    /// thread ends) and waits for the thread.
    pub(crate) fn stop(&mut self, writer: &mut Connection) {
        let _ = writer.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, nudged: &Receiver<()>) {
    while nudged.recv().is_ok() {
        if let Err(e) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(db("checkpoint the WAL"))
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{SqliteOptions, SqliteStore};
    use faultline_model::{Level, NewEntry};
    use faultline_store::Store;

    /// Small appends back to back (the WAL grows while the thread
    /// checkpoints): every commit succeeds and the WAL stays bounded.
    #[test]
    fn back_to_back_commits_keep_the_wal_bounded() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("w.db");
        let store = SqliteStore::open(
            &path,
            SqliteOptions {
                synchronous_full: false,
                ..SqliteOptions::default()
            },
        )
        .expect("open");
        let mut wal_max = 0;
        for i in 0..3_000i64 {
            let e = NewEntry {
                project: "p".into(),
                service: format!("s{}", i % 3).into(),
                level: Level::Info,
                message: format!("entry {i} {}", "x".repeat(2_000)),
                tags: Vec::new(),
                timestamp: i,
                received_at: i,
                host: None,
                attributes: Default::default(),
                trace_id: None,
                span_id: None,
            };
            store.append(&[&[e]]).expect("every commit succeeds");
            let wal = std::fs::metadata(dir.path().join("w.db-wal")).map_or(0, |m| m.len());
            wal_max = wal_max.max(wal);
        }
        assert!(
            wal_max < 2 * super::WRITER_BYTES as u64,
            "WAL peaked at {wal_max} bytes"
        );
    }
}
