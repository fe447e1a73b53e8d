//! # faultline-tail
//!
//! Follows log files through rotation, truncation and restarts, and hands
//! out their lines (or multiline records) with a stable identity, so that
//! a consumer that acknowledges what it delivered gets every line **at
//! least once on the wire and exactly once after deduplication**.
//!
//! This is the tailing library of the faultline agent (the quality bar is
//! Vector's `file-source`): discovery by globs, file identity that survives
//! renames, acknowledged checkpoints, line framing with hard memory caps,
//! multiline grouping. It has no async runtime and no thread of its own
//! besides the OS watcher's; the agent runs [`Tailer::poll`] on a thread.
//!
//! ## Brief overview
//!
//! ```
//! use std::time::Duration;
//! use faultline_tail::{StartAt, Tailer, TailerConfig, MultilineConfig};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let state = tempfile::tempdir().unwrap();
//! let mut cfg = TailerConfig::new([format!("{}/tk-*.log", dir.path().display())]);
//! cfg.checkpoint_path = Some(state.path().join("checkpoints.json"));
//! cfg.start_at = StartAt::Beginning;
//! cfg.multiline = Some(MultilineConfig::default());
//! let mut tailer = Tailer::new(cfg)?;
//!
//! std::fs::write(dir.path().join("tk-maya.log"),
//!     "2016-04-25 08:56:12,413 [44862 ERROR sgtk.core.log] boom\n\
//!      Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom\n")?;
//!
//! let mut records = Vec::new();
//! while records.is_empty() {
//!     // Waits for notifications, timers and the periodic rescan.
//!     tailer.poll(&mut records, Duration::from_secs(2));
//! }
//! let r = &records[0];
//! assert_eq!(r.lines, 4);
//! // `(file id, offset)` is the record's identity: send it as the
//! // idempotency key, and acknowledge once the server accepted it.
//! let _key = r.idempotency_key();
//! tailer.ack(r.ack());
//! tailer.checkpoint_now()?; // also done every `checkpoint_interval` and on drop
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The path of a byte through the crate: [`Tailer::poll`] takes the
//! coalesced notifications, re-evaluates the globs when something
//! structural happened (or every `rescan_interval`), reads new bytes of
//! each followed file with positioned reads, frames them into lines
//! ([`LineSplitter`]), groups lines into records ([`Aggregator`]), and
//! returns [`Record`]s. The consumer calls [`Tailer::ack`]; acknowledged
//! offsets are written to the checkpoint file.
//!
//! ## Catch-up scan
//!
//! A consumer that only wants some records (the agent: records with a
//! level word, and the lines around them) describes them with a
//! [`ScanFilter`] ([`TailerConfig::scan_filter`]). Reads of at least
//! [`ScanFilter::min_read`] bytes (a catch-up: a file present at start,
//! a backlog after a pause) are then read in 1 MiB chunks, searched for
//! the filter's needles (one SIMD multi-literal pass, `memchr`/`memmem` for
//! short needles and line prefixes), and framed only around the hits; the
//! stretches between are skipped without being split into lines,
//! converted or matched against the multiline pattern
//! ([`Counters::bytes_skipped`]). Every record handed out is the one a
//! line-by-line read hands out (same text, offsets and flags), and a
//! consumer of the filter gets everything it needs: the wanted records
//! and the record before each, the context around them as plain lines
//! ([`Record::lines_before`], [`Record::lines_after`]: the last `before`
//! lines skipped before a record, the `after_lines` lines after a wanted
//! one), the record before the end of what each poll step reads of a
//! file, and the first lines of a scanned read when what came before was
//! read line by line or is another file (context that continues from it).
//! The module docs of `scan.rs` list it exactly. Exactness
//! rests on one property of multiline framing: a line that starts a record
//! whatever came before it (a header, or a line that cannot join) resets
//! the framing, so a skip always goes from such a line to such a line. The
//! property test `tests/scan.rs` compares filtered and line-by-line reads
//! on generated logs (tracebacks across read boundaries, CRLF, caps,
//! over-long and invalid lines, a last line without newline, two files of
//! one log). Live tailing (small reads) is unchanged.
//!
//! ## File identity
//!
//! A file is identified by **(device, inode)** (volume serial + file index
//! on Windows) **plus a fingerprint of its first bytes**: FNV-1a over the
//! first `len` bytes, where `len` grows with the file up to
//! [`HEAD_BYTES`] (256). "Still the same file" means: same (device, inode),
//! same birth time when the OS reports one, at least `len` bytes long, and
//! the same first `len` bytes. Paths are only where files are *found*.
//!
//! What is handed out is not the inode but a [`FileId`]: the id of one
//! *byte stream*, i.e. one file between two truncations. It is random,
//! assigned when a file is first seen (or seen truncated or rewritten), and
//! **persisted in the checkpoint before any record carrying it is
//! returned**; head fingerprint changes are persisted the same way. So
//! `(FileId, offset)` names one line forever, across restarts, and never
//! names two different lines: a truncated file continues under a new id,
//! never re-using offsets of the old one.
//!
//! ## Rotation, truncation, deletion
//!
//! | what happens | what the tailer does |
//! |---|---|
//! | rename rotation (`tk.log` → `tk.log.1`, new `tk.log`) | the old file keeps its id and is read to its end through the handle it has open (even under a name the globs do not match, which is looked up in the same directory); what it holds (an unfinished record) is emitted then; only after that is the new file read, from byte 0 |
//! | renamed away and back (ShotGrid's `RotatingFileHandler` does it before each rollover) | same (device, inode) and head: the same stream, continued where it was, whether the tailer saw it away or not (and even if it had already closed it: a closed file is remembered) |
//! | rename within the globs (`*.log*`) | same stream, new path |
//! | truncation (`> file`, `truncate`, copytruncate) | detected when the size drops below what was read, or when the first bytes changed (truncated and rewritten longer before the tailer looked); what was held is emitted, then a **new stream** starts at 0 |
//! | deletion | the open handle is read to its end, then closed |
//! | file replaced (deleted + created, inode reused) | the head or birth time differs: a new stream from 0 |
//! | new file while running | read from byte 0 |
//! | files present at the **first** start (no checkpoint file) | [`StartAt::End`] (default: skip, backing up to the start of an unfinished last line) or [`StartAt::Beginning`] |
//! | files not in the checkpoint at a later start | read from byte 0 (they appeared while no tailer ran) |
//! | known from the checkpoint | resumed at the **acknowledged** offset |
//! | known from the checkpoint but rotated away while down | found again (its last path, else by inode in that directory) and finished from the acknowledged offset, before its successor |
//!
//! A file that left the globs (renamed away or deleted) is closed once it
//! was read to its end and neither left nor grew for `close_grace`
//! (default 5 s), so deleted files' space is not pinned. Closed files are
//! remembered for `forget_after` (default 24 h).
//!
//! Files are opened read-only; on Windows with
//! `FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE`, so the writer
//! can append, rename (rotate) and delete while the tailer holds the file:
//! **the tailer never blocks the writer**.
//!
//! ## Checkpoint protocol
//!
//! One JSON file ([`CheckpointStore`], `{"version": 1, "files": [...]}`),
//! replaced atomically: write a temporary file in the same directory, fsync
//! it, rename it over the checkpoint, fsync the directory. A crash leaves
//! the old or the new version, never a mix.
//!
//! Per stream it holds (device, inode, birth, head fingerprint, last path)
//! and the **acknowledged offset**, which moves only through
//! [`Tailer::ack`]: the consumer acknowledges after the server answered.
//! Acknowledgements are cumulative per stream (acknowledging a record
//! acknowledges everything before it in the same stream; an older ack is
//! ignored; an ack beyond what was handed out is clamped). Offsets handed
//! out but not acknowledged are handed out again after a restart, with the
//! same `(FileId, offset)` identity, so the server drops the duplicates.
//! Written: before records with a new id or a changed head are returned;
//! acknowledgements at most every `checkpoint_interval` (default 1 s), on
//! [`Tailer::checkpoint_now`] and on drop. A start that cannot write the
//! checkpoint fails; a later failed write is reported and retried.
//!
//! ## Guarantees
//!
//! A file is *seen* when a rescan finds it at a path the globs match (every
//! `rescan_interval`, and on every create/rename/delete notification), or
//! when a rename notification shows it leaving a matched name (so a file
//! created, filled and rotated between two rescans is still read, as long
//! as it exists when the notification is handled).
//! For every byte written to a seen file, the tailer hands out the line
//! containing it **at least once** (exactly once per tailer lifetime,
//! again after a restart if it was not acknowledged), **in file order**,
//! with the same `(FileId, offset_start)` and text every time, and nothing
//! between two records is skipped — except where it is impossible in
//! principle:
//!
//! 1. **Destroyed before it was read.** Bytes the tailer had not read when
//!    the file was truncated, or when its last name was removed *and* no
//!    handle of the tailer was open on it (the tailer was not running, or
//!    had closed it after `close_grace`), no longer exist anywhere.
//! 2. **Never seen.** A file created and deleted (or renamed away, and
//!    then deleted or renamed again) before the tailer handled the
//!    notification or rescan that would have found it. With notifications
//!    that window is the tailer's reaction time (milliseconds unless its
//!    thread is starved); with polling it is `rescan_interval`. A writer
//!    rotating at 5 MiB is minutes away from that.
//! 3. **Written after the tailer let go.** Bytes appended to a file that
//!    left the globs after it was closed (`close_grace` after its last
//!    growth), or to a deleted file after its last handle was closed.
//! 4. **Rewritten in place, indistinguishably.** A file truncated and
//!    rewritten, between two looks, to at least the size already read
//!    *and* with the same first bytes as far as the fingerprint reaches
//!    (256 bytes, or the whole file when it was shorter then) — or to
//!    exactly the size already read within one tick of the file system's
//!    modification time; likewise, without birth times, an inode reused by
//!    a file with the same first bytes. Nothing observable tells such a
//!    file from the old one; its bytes before the old read offset are not
//!    read.
//!
//! Cases 1–3 are exactly what the model-based property test
//! (`tests/tail.rs`) allows to be lost: its model marks a line *required*
//! once a poll happened while the line's file was reachable (at a matched
//! path, or held open by the tailer), and checks that every required line
//! was delivered, under one identity, in order, never twice by one tailer,
//! and that no identity ever carried two texts.
//!
//! Other deliberate limits: a line longer than `max_line_bytes` (1 MiB)
//! is handed out cut (flag `truncated`), the rest skipped without being
//! buffered; an unfinished last line is handed out after
//! `partial_line_timeout` (1 s, flag `partial`; the rest of that line, if
//! it comes, is a separate record starting where it ended); a multiline
//! record stops at `max_lines` / `max_bytes` (flag `split`) and is emitted
//! after `timeout` (500 ms) without a new line. Invalid UTF-8 is replaced
//! (flag `lossy`). Cross-file order is only kept for a rotated file and its
//! successor.
//!
//! ## Cost
//!
//! Watching files nobody writes costs one glob rescan and one `stat` and
//! `fstat` per file every `rescan_interval` (1 s; the head is re-read only
//! when size or modification time changed): measured at about 0.1% of one
//! core and 3.5 MB RSS for 200 idle files (release build of
//! `examples/follow.rs`), no busy polling. Notifications
//! are coalesced into a bounded set of paths. Memory per file: a handle, a
//! small struct, and a line buffer that never exceeds `max_line_bytes`;
//! with a scan filter, one 1 MiB read buffer per tailer while a file has
//! that much to read (freed once it is read to its end).
//! When the OS refuses more watches the tailer falls back to polling open
//! files every `poll_interval` (reported once).
//!
//! ## Observability
//!
//! Everything the tailer notices (files opened, renamed, rotated away,
//! back, deleted, truncated, closed; I/O errors; watcher fallback;
//! checkpoint failures) goes to an injected [`TailObserver`] as a
//! [`TailEvent`] and is counted in [`Counters`]. The default observer logs
//! through `tracing`; [`EventLog`] keeps events in memory. Errors never
//! stop the tailer; a persistent error is reported once, not every rescan.
//!
//! ## Architecture invariants
//!
//! - No async runtime, no thread of our own: the only other thread is the
//!   OS watcher's, and it only records *which* paths changed.
//! - Only `tailer.rs` (with the platform calls in `identity.rs`) touches
//!   log files; `lines.rs` and `multiline.rs` are pure and take the clock
//!   as an argument.
//! - The checkpoint is the only state on disk; it is versioned and always
//!   replaced atomically.
//! - A `FileId` (and the head that guards it) is on disk before any record
//!   carrying it is returned.

mod checkpoint;
mod config;
mod discover;
mod error;
mod identity;
mod lines;
mod multiline;
mod observe;
mod scan;
mod tailer;
mod watch;

pub use checkpoint::{
    CHECKPOINT_VERSION, CheckpointEntry, CheckpointError, CheckpointStore, write_atomic,
};
pub use config::{MultilineConfig, StartAt, TailerConfig, WatchMode};
pub use error::TailError;
pub use identity::{DevIno, FileId, HEAD_BYTES, Head, ParseFileIdError};
pub use lines::{Line, LineSplitter, Lines};
pub use multiline::{Aggregator, DEFAULT_START_PATTERN, Frame, MultilineRules};
pub use observe::{Counters, EventLog, OpenReason, TailEvent, TailObserver, TracingObserver};
pub use scan::{DEFAULT_MIN_READ, ScanFilter};
pub use tailer::{Ack, FileKey, FileState, Record, Tailer};
