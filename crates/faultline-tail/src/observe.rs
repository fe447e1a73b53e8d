//! Observations: what happened to files, and counters. The tailer reports
//! through an injected [`TailObserver`], so the library does no logging
//! policy of its own and tests can see every decision.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::identity::FileId;

/// Why a file was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// Present at the first start, `StartAt::Beginning`.
    Initial,
    /// Present at the first start, `StartAt::End`.
    InitialAtEnd,
    /// Appeared later (new file, new file after a rotation): from byte 0.
    New,
    /// Known from the checkpoint: resumed at the acknowledged offset.
    Resumed,
    /// Known from the checkpoint and no longer matched by the globs (it was
    /// rotated away while the tailer was down): read to its end, then closed.
    Recovered,
    /// Closed earlier in this run and back at a matched path (renamed away
    /// and back): resumed where it was left.
    Returned,
}

/// Something the tailer noticed or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TailEvent {
    /// A file is now followed.
    Opened {
        /// Stream id.
        id: FileId,
        /// Where.
        path: PathBuf,
        /// First offset that will be read.
        offset: u64,
        /// Why.
        reason: OpenReason,
    },
    /// A followed file now has another matched path.
    Renamed {
        /// Stream id.
        id: FileId,
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
    },
    /// A followed file left the globs but still exists (rename rotation):
    /// it is read to its end, then closed after the grace period.
    RotatedAway {
        /// Stream id.
        id: FileId,
        /// The path it had.
        path: PathBuf,
        /// Where it went, when found in the same directory.
        new_path: Option<PathBuf>,
    },
    /// A file that had left the globs is back (renamed away and back, as
    /// ShotGrid's RotatingFileHandler does before each rollover).
    CameBack {
        /// Stream id.
        id: FileId,
        /// Its path again.
        path: PathBuf,
    },
    /// A followed file was deleted; it is read to its end through the open
    /// handle, then closed.
    Deleted {
        /// Stream id.
        id: FileId,
        /// The path it had.
        path: PathBuf,
    },
    /// The file got shorter than what was read, or its first bytes changed
    /// (truncated and rewritten): a new stream starts at 0.
    Truncated {
        /// The old stream.
        old_id: FileId,
        /// The new stream.
        new_id: FileId,
        /// Where.
        path: PathBuf,
        /// How far the old stream had been read.
        read_to: u64,
        /// The size now.
        size: u64,
    },
    /// A file was closed (left the globs, read to its end, grace passed).
    Closed {
        /// Stream id.
        id: FileId,
        /// Last path.
        path: PathBuf,
        /// Where reading stopped.
        offset: u64,
    },
    /// A line longer than the cap was cut.
    LineTruncated {
        /// Stream id.
        id: FileId,
        /// Where.
        path: PathBuf,
        /// Offset of the line.
        offset: u64,
    },
    /// An I/O problem with one path (permission denied, vanished while
    /// read, unreadable directory, ...). The tailer goes on.
    Error {
        /// The path concerned, when there is one.
        path: Option<PathBuf>,
        /// What the tailer was doing.
        op: &'static str,
        /// The error.
        error: String,
    },
    /// OS notifications are unavailable: only polling from now on.
    WatchFallback {
        /// Why.
        reason: String,
    },
    /// The checkpoint could not be written; retried later.
    CheckpointFailed {
        /// The error.
        error: String,
    },
}

/// Running totals, cheap to copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Files opened (any reason).
    pub files_opened: u64,
    /// Files closed.
    pub files_closed: u64,
    /// Rename rotations seen (file left the globs but exists).
    pub rotations: u64,
    /// Deletions seen.
    pub deletions: u64,
    /// Truncations / content replacements seen.
    pub truncations: u64,
    /// Records returned.
    pub records: u64,
    /// Lines returned (in records).
    pub lines: u64,
    /// Bytes read from files.
    pub bytes_read: u64,
    /// Bytes of records not handed out because the scan filter showed
    /// nobody wants them (neither framed nor counted in `records`/`lines`).
    pub bytes_skipped: u64,
    /// Lines cut at the line cap.
    pub lines_truncated: u64,
    /// Lines with invalid UTF-8.
    pub lines_lossy: u64,
    /// Unfinished lines emitted by the flush timeout or at a file's end.
    pub lines_partial: u64,
    /// Records split at a multiline cap.
    pub records_split: u64,
    /// I/O errors reported.
    pub errors: u64,
    /// Checkpoint writes that succeeded.
    pub checkpoint_writes: u64,
    /// Checkpoint writes that failed.
    pub checkpoint_errors: u64,
    /// Glob rescans.
    pub rescans: u64,
    /// Notifications received.
    pub notifications: u64,
    /// Whether the tailer polls because notifications are unavailable.
    pub polling_fallback: bool,
}

/// Receives [`TailEvent`]s. Called on the thread that calls
/// [`crate::Tailer::poll`]; keep it cheap.
pub trait TailObserver: Send {
    /// One event.
    fn event(&mut self, event: &TailEvent);
}

/// The default observer: logs through `tracing` (errors at `warn`, the rest
/// at `debug`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingObserver;

impl TailObserver for TracingObserver {
    fn event(&mut self, event: &TailEvent) {
        match event {
            TailEvent::Error { path, op, error } => {
                let path = path.as_deref().map(|p| p.display().to_string());
                tracing::warn!(path = ?path, op, error = %error, "tail error");
            }
            TailEvent::WatchFallback { reason } => {
                tracing::warn!(reason = %reason, "file notifications unavailable, polling");
            }
            TailEvent::CheckpointFailed { error } => {
                tracing::warn!(error = %error, "checkpoint write failed, will retry");
            }
            other => tracing::debug!(event = ?other, "tail"),
        }
    }
}

/// An observer that keeps events in memory (tests, or an agent that drains
/// them into its own status report). Clones share the same list.
#[derive(Debug, Default, Clone)]
pub struct EventLog(Arc<Mutex<Vec<TailEvent>>>);

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        EventLog::default()
    }

    /// Takes the events collected so far.
    pub fn take(&self) -> Vec<TailEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl TailObserver for EventLog {
    fn event(&mut self, event: &TailEvent) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// Fan-out to two observers (e.g. tracing and an [`EventLog`]).
impl<A: TailObserver, B: TailObserver> TailObserver for (A, B) {
    fn event(&mut self, event: &TailEvent) {
        self.0.event(event);
        self.1.event(event);
    }
}
