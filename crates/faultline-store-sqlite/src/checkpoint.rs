//! WAL checkpoints off the writer's commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL
//! past 1000 pages, so one append in a few paid for copying pages into the
//! database file and syncing it (≈11 % of the writer's time under sustained
//! ingest, and the latency of that commit). Instead, the write connection's
//! WAL hook (which replaces the automatic checkpoint) wakes a thread of its
//! own when the WAL holds [`THREAD_FRAMES`] frames, and that thread runs
//! `PRAGMA wal_checkpoint(PASSIVE)` on its own connection: a passive
//! checkpoint never blocks the writer or readers, and the writer keeps
//! appending to the WAL while it copies. The WAL restarts from its start
//! once a checkpoint caught up. It stays bounded: when the thread cannot
//! keep up (it is starved of CPU, or long reads pin old frames) and the WAL
//! reaches [`WRITER_FRAMES`] frames, the writer checkpoints in its commit,
//! as the automatic checkpoint would have.

use crate::{SqliteOptions, db, schema};
use faultline_store::{Result, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{Receiver, TrySendError, sync_channel};

/// WAL frames (pages) at which the thread is woken: 4 MiB of 4 KiB pages,
/// SQLite's automatic threshold.
const THREAD_FRAMES: i32 = 1_000;

/// WAL frames past which the writer checkpoints itself: 64 MiB.
const WRITER_FRAMES: i32 = 16_384;

/// The checkpoint thread; stops when dropped.
pub(crate) struct Checkpointer {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection on `path`, and installs
    /// the hook that wakes it on the write connection `writer`.
    pub(crate) fn start(
        writer: &mut Connection,
        path: &Path,
        options: &SqliteOptions,
    ) -> Result<Checkpointer> {
        let conn = schema::open_checkpointer(path, options)?;
        let (nudge, nudged) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("faultline-checkpoint".into())
            .spawn(move || run(&conn, &nudged))
            .map_err(|e| StoreError::backend("start the checkpoint thread", e))?;
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
                if frames >= WRITER_FRAMES {
                    wal.checkpoint()?;
                } else if frames >= THREAD_FRAMES {
                    match nudge.try_send(()) {
                        Ok(()) | Err(TrySendError::Full(())) => {}
                        Err(TrySendError::Disconnected(())) => wal.checkpoint()?,
                    }
                }
                Ok(())
            }))
            .map_err(db("install the WAL hook"))?;
        Ok(Checkpointer {
            thread: Some(thread),
        })
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
