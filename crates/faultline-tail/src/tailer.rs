//! The tailer: ties discovery, identity, framing and checkpoints together.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{CheckpointEntry, CheckpointStore};
use crate::config::{StartAt, TailerConfig, WatchMode};
use crate::discover::Discovery;
use crate::error::TailError;
use crate::identity::{
    DevIno, FileId, Head, HeadCheck, Stat, check_head, locate_in_dir, open_shared, read_at,
    read_full_at, stat_file, stat_path,
};
use crate::lines::{Line, LineSplitter, Lines};
use crate::multiline::{Aggregator, Frame, MultilineRules};
use crate::observe::{Counters, OpenReason, TailEvent, TailObserver, TracingObserver};
use crate::scan::{FileFraming, RegionStats, Scanner};
use crate::watch::Watcher;

const READ_CHUNK: usize = 64 * 1024;
/// Read size of a catch-up with a scan filter (allocated only while a file
/// has that much to read, freed when it is read to its end).
const SCAN_CHUNK: usize = 1 << 20;

/// Which file a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Stream id (stable across restarts; new after a truncation).
    pub id: FileId,
    /// The path the file had when the record was read (for a file rotated
    /// away, where it was found, or the last matched path).
    pub path: Arc<Path>,
}

/// Acknowledgement token: "everything of stream `id` before `offset` is
/// safely delivered". Cumulative per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ack {
    /// Stream id.
    pub id: FileId,
    /// Offset just past the acknowledged data.
    pub offset: u64,
}

/// One record: a line, or a multiline group of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Source file.
    pub file: FileKey,
    /// Offset of the record's first byte. `(file.id, offset_start)` is the
    /// record's identity: the same pair always carries the same text.
    pub offset_start: u64,
    /// Offset just past the record (past its last `\n`).
    pub offset_end: u64,
    /// The text (lines joined with `\n`, no trailing newline).
    pub text: String,
    /// Number of lines.
    pub lines: u32,
    /// A line was longer than `max_line_bytes` and was cut.
    pub truncated: bool,
    /// Invalid UTF-8 was replaced with U+FFFD.
    pub lossy: bool,
    /// The last line had no newline (flush timeout or end of the file).
    pub partial: bool,
    /// The record reached a multiline cap; the next record continues it.
    pub split: bool,
    /// Emitted by the multiline flush timeout: the file has been quiet
    /// since the record's last line for that long (otherwise the record
    /// ended because the next one began, or at a rotation or shutdown).
    pub idle: bool,
    /// With a scan filter: the lines just before this record that a
    /// catch-up skipped instead of handing them out as records (at most
    /// [`crate::ScanFilter::before`], oldest first). A consumer keeping
    /// the last lines of a log takes them in before this record's own.
    /// Empty otherwise.
    pub lines_before: Lines,
    /// With a scan filter, on a record with a needle or prefix: the
    /// [`crate::ScanFilter::after_lines`] lines that follow it, when the
    /// read holds them all (the records they belong to are then not all
    /// handed out). Empty otherwise: the records that follow are handed
    /// out until they hold that many lines.
    pub lines_after: Lines,
}

impl Record {
    /// The token that acknowledges this record and everything before it in
    /// the same stream.
    pub fn ack(&self) -> Ack {
        Ack {
            id: self.file.id,
            offset: self.offset_end,
        }
    }

    /// A stable idempotency key: `<file id>-<offset_start>`.
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.file.id, self.offset_start)
    }
}

/// A snapshot of one followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// Stream and path.
    pub file: FileKey,
    /// Bytes read so far (next offset to read).
    pub read: u64,
    /// End of the last record handed out.
    pub emitted: u64,
    /// Acknowledged offset (what the checkpoint holds).
    pub acked: u64,
    /// The file left the globs (rotated away or deleted) and is being
    /// finished.
    pub away: bool,
}

struct Away {
    since: Instant,
    deleted: bool,
}

struct Tracked {
    id: FileId,
    devino: DevIno,
    birth: Option<u64>,
    path: Arc<Path>,
    file: File,
    head: Head,
    splitter: LineSplitter,
    agg: Option<Aggregator>,
    /// Lines still owed to the consumer's after-context (scan filter;
    /// kept up to date by the scanner only).
    after_left: usize,
    /// `after_left` counts every record handed out so far (all went
    /// through the scanner); otherwise a scanned region starts by framing
    /// `after_lines` lines.
    after_exact: bool,
    /// Lines a catch-up skipped, for the record starting at this offset
    /// ([`Record::lines_before`]).
    lines_before: Option<(u64, Lines)>,
    acked: u64,
    emitted: u64,
    away: Option<Away>,
    last_growth: Instant,
    at_eof: bool,
    more: bool,
    /// Size and mtime when the head was last verified: an idle file whose
    /// size and mtime did not change is not re-read (idle cost).
    verified: Option<(u64, Option<u64>)>,
    /// Size and mtime from this step's rescan (saves an `fstat` per idle
    /// file per rescan).
    scanned: Option<(u64, Option<u64>)>,
}

/// Identity and handle of a file about to be followed.
struct Opening {
    id: FileId,
    devino: DevIno,
    birth: Option<u64>,
    path: Arc<Path>,
    file: File,
    head: Head,
}

impl Tracked {
    /// Whether the rescan showed the file unchanged since its last check.
    fn unchanged_by_scan(&self, scanned: Option<(u64, Option<u64>)>) -> bool {
        let Some((size, mtime)) = scanned else {
            return false;
        };
        !self.more
            && self.away.is_none()
            && mtime.is_some()
            && size == self.splitter.position()
            && self.verified == Some((size, mtime))
    }

    fn entry(&self, updated: u64) -> CheckpointEntry {
        CheckpointEntry {
            id: self.id,
            dev: self.devino.dev,
            ino: self.devino.ino,
            birth: self.birth,
            head_len: self.head.len,
            head_hash: self.head.hash,
            offset: self.acked,
            path: self.path.to_string_lossy().into_owned(),
            updated,
        }
    }

    fn key(&self) -> FileKey {
        FileKey {
            id: self.id,
            path: Arc::clone(&self.path),
        }
    }
}

/// A file no longer open but remembered: loaded from the checkpoint and not
/// seen yet, or closed in this run.
struct Closed {
    entry: CheckpointEntry,
    /// End of what was handed out (= `entry.offset` when loaded).
    emitted: u64,
    from_checkpoint: bool,
}

struct Sink {
    observer: Box<dyn TailObserver>,
    counters: Counters,
    /// Errors reported during the current rescan / previous rescan, so a
    /// permanent problem (unreadable directory) is reported once, not every
    /// second.
    sticky_now: HashSet<String>,
    sticky_prev: HashSet<String>,
}

impl Sink {
    fn emit(&mut self, ev: TailEvent) {
        let c = &mut self.counters;
        match &ev {
            TailEvent::Opened { .. } => c.files_opened += 1,
            TailEvent::Closed { .. } => c.files_closed += 1,
            TailEvent::RotatedAway { .. } => c.rotations += 1,
            TailEvent::Deleted { .. } => c.deletions += 1,
            TailEvent::Truncated { .. } => c.truncations += 1,
            TailEvent::Error { .. } => c.errors += 1,
            TailEvent::CheckpointFailed { .. } => c.checkpoint_errors += 1,
            TailEvent::WatchFallback { .. } => c.polling_fallback = true,
            TailEvent::Renamed { .. }
            | TailEvent::CameBack { .. }
            | TailEvent::LineTruncated { .. } => {}
        }
        self.observer.event(&ev);
    }

    fn io_error(&mut self, path: Option<&Path>, op: &'static str, err: &io::Error) {
        self.emit(TailEvent::Error {
            path: path.map(Path::to_path_buf),
            op,
            error: err.to_string(),
        });
    }

    /// Reports an error found by a rescan unless the previous rescan
    /// reported the same one.
    fn sticky_error(&mut self, path: Option<&Path>, op: &'static str, err: &io::Error) {
        let key = format!("{op}\0{path:?}\0{:?}", err.kind());
        if !self.sticky_prev.contains(&key) {
            self.io_error(path, op, err);
        }
        self.sticky_now.insert(key);
    }

    fn end_rescan(&mut self) {
        self.sticky_prev = std::mem::take(&mut self.sticky_now);
    }
}

/// Follows the files matched by a set of globs. See the crate docs.
pub struct Tailer {
    cfg: TailerConfig,
    discovery: Discovery,
    rules: Option<MultilineRules>,
    scanner: Option<Scanner>,
    watcher: Watcher,
    sink: Sink,
    files: Vec<Tracked>,
    index: HashMap<FileId, usize>,
    closed: HashMap<FileId, Closed>,
    store: Option<CheckpointStore>,
    /// A stream id or a head fingerprint changed and is not on disk yet.
    /// Written before the records of the step are returned: a restart must
    /// never resume a stream whose recorded head does not cover the data
    /// already handed out (it could not tell a rewritten file apart).
    identity_unsaved: bool,
    acks_unsaved: bool,
    last_save: Instant,
    save_retry_at: Option<Instant>,
    next_rescan: Instant,
    next_poll_check: Instant,
    rr: usize,
    buf: Vec<u8>,
    scan_buf: Vec<u8>,
    lines: Vec<Line>,
    frames: Vec<Frame>,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("include", &self.cfg.include)
            .field("files", &self.files.len())
            .field("closed", &self.closed.len())
            .field("counters", &self.sink.counters)
            .finish_non_exhaustive()
    }
}

fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tailer {
    /// Starts a tailer that reports through `tracing`.
    pub fn new(cfg: TailerConfig) -> Result<Tailer, TailError> {
        Tailer::with_observer(cfg, Box::new(TracingObserver))
    }

    /// Starts a tailer that reports through `observer`.
    ///
    /// Validates the configuration, loads the checkpoint, starts watching,
    /// opens every matched file at its start position, finds files that
    /// were rotated away while no tailer ran, and writes the checkpoint (so
    /// the next start is not a first start). Nothing is read yet.
    pub fn with_observer(
        cfg: TailerConfig,
        observer: Box<dyn TailObserver>,
    ) -> Result<Tailer, TailError> {
        let discovery = Discovery::new(&cfg.include, &cfg.exclude)?;
        let rules = cfg
            .multiline
            .as_ref()
            .map(|m| {
                MultilineRules::new(
                    &m.start_pattern,
                    m.continuation_pattern.as_deref(),
                    m.max_lines,
                    m.max_bytes,
                    m.timeout,
                )
                .map_err(|source| TailError::Regex {
                    pattern: format!("{} / {:?}", m.start_pattern, m.continuation_pattern),
                    source,
                })
            })
            .transpose()?;
        let scanner = cfg
            .scan_filter
            .clone()
            .map(Scanner::new)
            .transpose()
            .map_err(TailError::ScanFilter)?;
        let store = match &cfg.checkpoint_path {
            Some(p) if p.file_name().is_none() => return Err(TailError::CheckpointPath(p.clone())),
            Some(p) => Some(CheckpointStore::new(p)),
            None => None,
        };
        let loaded = match &store {
            Some(s) => s.load()?,
            None => None,
        };
        let first_start = loaded.is_none();
        let closed = loaded
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                (
                    entry.id,
                    Closed {
                        emitted: entry.offset,
                        entry,
                        from_checkpoint: true,
                    },
                )
            })
            .collect();
        let (watcher, watch_err) = Watcher::new(cfg.watch == WatchMode::Notify);
        let now = Instant::now();
        let mut t = Tailer {
            discovery,
            rules,
            scanner,
            watcher,
            sink: Sink {
                observer,
                counters: Counters::default(),
                sticky_now: HashSet::new(),
                sticky_prev: HashSet::new(),
            },
            files: Vec::new(),
            index: HashMap::new(),
            closed,
            store,
            identity_unsaved: true,
            acks_unsaved: false,
            last_save: now,
            save_retry_at: None,
            next_rescan: now + cfg.rescan_interval,
            next_poll_check: now + cfg.poll_interval,
            rr: 0,
            buf: vec![0; READ_CHUNK],
            scan_buf: Vec::new(),
            lines: Vec::new(),
            frames: Vec::new(),
            cfg,
        };
        if let Some(reason) = watch_err {
            t.sink.emit(TailEvent::WatchFallback { reason });
        }
        t.sync_watches();
        t.rescan(now, first_start.then_some(t.cfg.start_at));
        t.recover_rotated(now);
        // Fails the start when the checkpoint cannot be written (missing
        // directory, read-only disk): better said now than lost later.
        t.checkpoint_now()?;
        Ok(t)
    }

    /// Waits up to `timeout` for new records and appends them to `out`;
    /// returns how many were appended. Returns as soon as a step produced
    /// records; with a zero timeout does exactly one step. Never fails:
    /// problems with files are reported to the observer and counted.
    pub fn poll(&mut self, out: &mut Vec<Record>, timeout: Duration) -> usize {
        let start = out.len();
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            self.step(now, out);
            if out.len() > start || now >= deadline {
                return out.len() - start;
            }
            let wake = self.next_wakeup(now).min(deadline);
            if wake > now {
                self.watcher.wait(wake - now);
            }
        }
    }

    /// Acknowledges everything of `ack.id` before `ack.offset` (cumulative;
    /// an older ack is ignored, an ack past what was handed out is clamped).
    /// Persisted by the next checkpoint write (every
    /// `checkpoint_interval` during `poll`, on [`Tailer::checkpoint_now`]
    /// and on drop). Acks of streams that ended (truncated) are ignored.
    pub fn ack(&mut self, ack: Ack) {
        if let Some(&i) = self.index.get(&ack.id) {
            let t = &mut self.files[i];
            let o = ack.offset.min(t.emitted);
            if o > t.acked {
                t.acked = o;
                self.acks_unsaved = true;
            }
        } else if let Some(c) = self.closed.get_mut(&ack.id) {
            let o = ack.offset.min(c.emitted);
            if o > c.entry.offset {
                c.entry.offset = o;
                self.acks_unsaved = true;
            }
        }
    }

    /// Acknowledges `record` and everything before it in its stream.
    pub fn ack_record(&mut self, record: &Record) {
        self.ack(record.ack());
    }

    /// Writes the checkpoint now.
    pub fn checkpoint_now(&mut self) -> Result<(), TailError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let entries = self.entries();
        match store.save(&entries) {
            Ok(()) => {
                self.sink.counters.checkpoint_writes += 1;
                self.identity_unsaved = false;
                self.acks_unsaved = false;
                self.last_save = Instant::now();
                self.save_retry_at = None;
                Ok(())
            }
            Err(e) => {
                self.sink.emit(TailEvent::CheckpointFailed {
                    error: e.to_string(),
                });
                Err(e.into())
            }
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.sink.counters
    }

    /// The files followed now.
    pub fn files(&self) -> Vec<FileState> {
        self.files
            .iter()
            .map(|t| FileState {
                file: t.key(),
                read: t.splitter.position(),
                emitted: t.emitted,
                acked: t.acked,
                away: t.away.is_some(),
            })
            .collect()
    }

    /// Whether a file has data left that the last step's read budget did
    /// not cover (catching up); `poll` then returns again at once.
    pub fn has_backlog(&self) -> bool {
        self.files.iter().any(|t| t.more)
    }

    /// Whether OS notifications are in use (false: polling).
    pub fn is_notifying(&self) -> bool {
        self.watcher.is_notifying()
    }

    // ----- the work -------------------------------------------------------

    fn step(&mut self, now: Instant, out: &mut Vec<Record>) {
        let pending = self.watcher.take();
        self.sink.counters.notifications += pending.events;
        for e in pending.errors {
            self.sink.emit(TailEvent::Error {
                path: None,
                op: "watch",
                error: e,
            });
        }
        // A change to a matched path nobody follows (a missed create): look.
        let untracked = pending
            .paths
            .iter()
            .any(|p| !self.files.iter().any(|t| *t.path == **p) && self.discovery.matches(p));
        let rescan = pending.rescan || untracked || now >= self.next_rescan;
        let mut check_all = rescan;
        if rescan {
            self.sync_watches();
            self.follow_renames(now, &pending.renames);
            self.rescan(now, None);
            self.next_rescan = now + self.cfg.rescan_interval;
        }
        if !self.watcher.is_notifying() && now >= self.next_poll_check {
            check_all = true;
            self.next_poll_check = now + self.cfg.poll_interval;
        }

        let mut budget = self.cfg.max_read_per_poll.max(1);
        for id in self.read_order() {
            if budget == 0 {
                // Next time start the round with another active file.
                self.rr = self.rr.wrapping_add(1);
                break;
            }
            // Reading may remove files (an away file rewritten): look up.
            let Some(&i) = self.index.get(&id) else {
                continue;
            };
            let t = &mut self.files[i];
            let scanned = t.scanned.take();
            let notified = pending.paths.contains(&*t.path);
            let due = check_all || t.more || notified;
            if due && (notified || !t.unchanged_by_scan(scanned)) {
                self.read_file(i, now, out, &mut budget);
            }
        }
        let mut i = 0;
        while i < self.files.len() {
            self.flush_timers(i, now, out);
            if self.close_if_finished(i, now, out) {
                continue;
            }
            i += 1;
        }
        self.maybe_save(now);
    }

    /// Files rotated away (or deleted) first, oldest first, so an old file
    /// is finished before its successor; then the others in discovery
    /// order, rotated when the read budget ran out (fairness under load).
    fn read_order(&self) -> Vec<FileId> {
        let mut order: Vec<FileId> = self
            .files
            .iter()
            .filter(|t| t.away.is_some())
            .map(|t| t.id)
            .collect();
        let active: Vec<FileId> = self
            .files
            .iter()
            .filter(|t| t.away.is_none())
            .map(|t| t.id)
            .collect();
        if !active.is_empty() {
            let k = self.rr % active.len();
            order.extend_from_slice(&active[k..]);
            order.extend_from_slice(&active[..k]);
        }
        order
    }

    fn next_wakeup(&self, now: Instant) -> Instant {
        let mut w = self.next_rescan;
        if !self.watcher.is_notifying() {
            w = w.min(self.next_poll_check);
        }
        for t in &self.files {
            if t.more {
                return now;
            }
            if let Some(to) = self.cfg.partial_line_timeout
                && t.splitter.has_pending()
            {
                w = w.min(t.last_growth + to);
            }
            if let (Some(r), Some(agg)) = (&self.rules, &t.agg)
                && let Some(d) = agg.deadline(r)
            {
                w = w.min(d);
            }
            if let Some(a) = &t.away {
                let g = self.cfg.close_grace;
                w = w.min((a.since + g).max(t.last_growth + g));
            }
        }
        if self.identity_unsaved {
            w = w.min(self.save_retry_at.unwrap_or(now));
        }
        if self.acks_unsaved {
            w = w.min(self.last_save + self.cfg.checkpoint_interval);
        }
        w
    }

    fn sync_watches(&mut self) {
        if !self.watcher.is_notifying() {
            return;
        }
        for (dir, error) in self.watcher.sync_roots(self.discovery.roots()) {
            if error.is_limit {
                // The OS limit on watches: the periodic rescan still finds
                // everything; polling open files keeps latency bounded.
                self.watcher.disable();
                self.sink.emit(TailEvent::WatchFallback {
                    reason: format!("cannot watch {}: {}", dir.display(), error.message),
                });
                return;
            }
            // One unwatchable directory (permissions): its files are still
            // found and read by the periodic rescan.
            let e = io::Error::other(error.message);
            self.sink.sticky_error(Some(&dir), "watch", &e);
        }
    }

    /// A file renamed from a matched name to an unmatched one that no
    /// rescan saw (created, filled and rotated between two rescans): the
    /// rename notification says it is a log file, so it is opened and
    /// finished like any rotated file (before its successor is read).
    fn follow_renames(&mut self, now: Instant, renames: &[(PathBuf, PathBuf)]) {
        for (from, to) in renames {
            if !self.discovery.matches(from) || self.discovery.matches(to) {
                continue;
            }
            // Never open what is not a regular file (a FIFO would block).
            if !stat_path(to).is_ok_and(|s| s.is_file) {
                continue;
            }
            let Ok(file) = open_shared(to) else { continue };
            let Ok(st) = stat_file(&file) else { continue };
            let known = self.files.iter().any(|t| t.devino == st.devino)
                || self.closed.values().any(|c| c.entry.devino() == st.devino);
            if known || !st.is_file {
                continue;
            }
            if self.open_new(to, file, st, now, OpenReason::New, 0, None) {
                let n = self.files.len() - 1;
                self.files[n].away = Some(Away {
                    since: now,
                    deleted: false,
                });
                self.sink.emit(TailEvent::RotatedAway {
                    id: self.files[n].id,
                    path: from.clone(),
                    new_path: Some(to.clone()),
                });
            }
        }
    }

    /// Re-evaluates the globs: notices renames, rotations, deletions, files
    /// that came back, and new files. `initial` is the start position for
    /// unknown files at the first start.
    fn rescan(&mut self, now: Instant, initial: Option<StartAt>) {
        self.sink.counters.rescans += 1;
        let mut errs = Vec::new();
        let paths = self.discovery.scan(&mut errs);
        for (p, e) in &errs {
            self.sink.sticky_error(p.as_deref(), "scan", e);
        }
        let mut order: Vec<DevIno> = Vec::new();
        let mut found: HashMap<DevIno, (PathBuf, Stat)> = HashMap::new();
        for p in paths {
            match stat_path(&p) {
                Ok(st) if st.is_file => {
                    if let std::collections::hash_map::Entry::Vacant(v) = found.entry(st.devino) {
                        order.push(st.devino);
                        v.insert((p, st));
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => self.sink.sticky_error(Some(&p), "stat", &e),
            }
        }

        for t in &mut self.files {
            if let Some((p, st)) = found.remove(&t.devino) {
                t.scanned = Some((st.size, st.mtime));
                if t.away.take().is_some() {
                    t.path = p.into();
                    self.sink.emit(TailEvent::CameBack {
                        id: t.id,
                        path: t.path.to_path_buf(),
                    });
                } else if *t.path != *p {
                    let from = t.path.to_path_buf();
                    t.path = p.into();
                    self.sink.emit(TailEvent::Renamed {
                        id: t.id,
                        from,
                        to: t.path.to_path_buf(),
                    });
                }
            } else if t.away.is_none() {
                let deleted = stat_file(&t.file).map(|s| s.nlink == 0).unwrap_or(true);
                t.away = Some(Away {
                    since: now,
                    deleted,
                });
                if deleted {
                    self.sink.emit(TailEvent::Deleted {
                        id: t.id,
                        path: t.path.to_path_buf(),
                    });
                } else {
                    let new_path = t.path.parent().and_then(|d| locate_in_dir(d, t.devino));
                    self.sink.emit(TailEvent::RotatedAway {
                        id: t.id,
                        path: t.path.to_path_buf(),
                        new_path: new_path.clone(),
                    });
                    if let Some(np) = new_path {
                        t.path = np.into();
                    }
                }
            }
        }

        for devino in order {
            if let Some((p, st)) = found.remove(&devino) {
                self.open_found(&p, st, now, initial);
            }
        }

        let forget = self.cfg.forget_after.as_secs();
        let wall = wall_secs();
        let before = self.closed.len();
        self.closed
            .retain(|_, c| wall.saturating_sub(c.entry.updated) <= forget);
        if self.closed.len() != before {
            self.acks_unsaved = true;
        }
        self.sink.end_rescan();
    }

    /// Opens a file found at a matched path that is not followed yet.
    fn open_found(&mut self, path: &Path, scanned: Stat, now: Instant, initial: Option<StartAt>) {
        let file = match open_shared(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.sink.sticky_error(Some(path), "open", &e);
                return;
            }
        };
        // The path may have been replaced between stat and open: trust the
        // handle.
        let st = match stat_file(&file) {
            Ok(s) => s,
            Err(e) => {
                self.sink.sticky_error(Some(path), "stat", &e);
                return;
            }
        };
        if st.devino != scanned.devino && self.files.iter().any(|t| t.devino == st.devino) {
            return;
        }

        let known = self
            .closed
            .iter()
            .find(|(_, c)| c.entry.devino() == st.devino)
            .map(|(id, _)| *id);
        if let Some(id) = known {
            let c = self.closed.remove(&id).expect("found above");
            self.acks_unsaved = true;
            if let Some(head) = verify(&file, &st, &c.entry, c.emitted) {
                let reason = if c.from_checkpoint {
                    OpenReason::Resumed
                } else {
                    OpenReason::Returned
                };
                self.start_tracking(
                    Opening {
                        id,
                        devino: st.devino,
                        birth: st.birth.or(c.entry.birth),
                        path: path.into(),
                        file,
                        head,
                    },
                    (c.entry.offset, c.emitted),
                    None,
                    now,
                    reason,
                );
                return;
            }
            // Same inode, other content: rewritten or the inode was reused
            // while the file was not followed. A new stream.
            let new_id = FileId::fresh();
            self.sink.emit(TailEvent::Truncated {
                old_id: id,
                new_id,
                path: path.to_path_buf(),
                read_to: c.emitted,
                size: st.size,
            });
            self.open_new(path, file, st, now, OpenReason::New, 0, Some(new_id));
            return;
        }

        let (reason, offset) = match initial {
            Some(StartAt::Beginning) => (OpenReason::Initial, 0),
            Some(StartAt::End) => (OpenReason::InitialAtEnd, line_start_before(&file, st.size)),
            None => (OpenReason::New, 0),
        };
        self.open_new(path, file, st, now, reason, offset, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn open_new(
        &mut self,
        path: &Path,
        file: File,
        st: Stat,
        now: Instant,
        reason: OpenReason,
        offset: u64,
        id: Option<FileId>,
    ) -> bool {
        let head = match check_head(&file, Head::default()) {
            Ok(HeadCheck::Same(h)) => h,
            Ok(HeadCheck::Different) => Head::default(),
            Err(e) => {
                self.sink.sticky_error(Some(path), "read", &e);
                return false;
            }
        };
        let id = id.unwrap_or_else(FileId::fresh);
        self.identity_unsaved = true;
        self.start_tracking(
            Opening {
                id,
                devino: st.devino,
                birth: st.birth,
                path: path.into(),
                file,
                head,
            },
            (offset, offset),
            None,
            now,
            reason,
        );
        true
    }

    /// Starts following a file: reading continues at `emitted`, a restart
    /// would resume at `acked` (`(acked, emitted)`).
    fn start_tracking(
        &mut self,
        o: Opening,
        (acked, emitted): (u64, u64),
        away: Option<Away>,
        now: Instant,
        reason: OpenReason,
    ) {
        let (id, path) = (o.id, o.path.to_path_buf());
        self.track(Tracked {
            id: o.id,
            devino: o.devino,
            birth: o.birth,
            path: o.path,
            file: o.file,
            head: o.head,
            splitter: LineSplitter::new(emitted, self.cfg.max_line_bytes),
            agg: self.rules.as_ref().map(|_| Aggregator::new()),
            after_left: 0,
            after_exact: false,
            lines_before: None,
            acked,
            emitted,
            away,
            last_growth: now,
            at_eof: false,
            more: true,
            verified: None,
            scanned: None,
        });
        self.sink.emit(TailEvent::Opened {
            id,
            path,
            offset: emitted,
            reason,
        });
    }

    fn track(&mut self, t: Tracked) {
        self.index.insert(t.id, self.files.len());
        self.files.push(t);
    }

    fn reindex(&mut self) {
        self.index = self
            .files
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
    }

    /// At start: a checkpointed file the globs no longer match may have
    /// been rotated away while no tailer ran, with data never read or never
    /// acknowledged. Find it (at its last path, or by inode in that
    /// directory) and finish it.
    fn recover_rotated(&mut self, now: Instant) {
        let ids: Vec<FileId> = self
            .closed
            .iter()
            .filter(|(_, c)| c.from_checkpoint)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let c = &self.closed[&id];
            let devino = c.entry.devino();
            let last = PathBuf::from(&c.entry.path);
            let path = match stat_path(&last) {
                Ok(s) if s.is_file && s.devino == devino => Some(last.clone()),
                _ => last.parent().and_then(|d| locate_in_dir(d, devino)),
            };
            let Some(path) = path else { continue };
            if !stat_path(&path).is_ok_and(|s| s.is_file) {
                continue;
            }
            let Ok(file) = open_shared(&path) else {
                continue;
            };
            let Ok(st) = stat_file(&file) else { continue };
            // Opened even with nothing new yet: the writer may still append
            // to a renamed file; it is closed after the grace period.
            if st.devino != devino {
                continue;
            }
            let Some(head) = verify(&file, &st, &c.entry, c.entry.offset) else {
                // Same inode life (birth time equal, or unknown and the very
                // path it had), other content: truncated and rewritten while
                // no tailer looked. Its content is log data: a new stream.
                let same_life = match (st.birth, c.entry.birth) {
                    (Some(a), Some(b)) => a == b,
                    _ => path == last,
                };
                if same_life {
                    let c = self.closed.remove(&id).expect("present");
                    let new_id = FileId::fresh();
                    self.sink.emit(TailEvent::Truncated {
                        old_id: id,
                        new_id,
                        path: path.clone(),
                        read_to: c.entry.offset,
                        size: st.size,
                    });
                    let opened =
                        self.open_new(&path, file, st, now, OpenReason::Recovered, 0, Some(new_id));
                    if opened {
                        let n = self.files.len() - 1;
                        self.files[n].away = Some(Away {
                            since: now,
                            deleted: false,
                        });
                    }
                }
                continue;
            };
            let c = self.closed.remove(&id).expect("present");
            let offset = c.entry.offset;
            self.start_tracking(
                Opening {
                    id,
                    devino,
                    birth: st.birth.or(c.entry.birth),
                    path: path.as_path().into(),
                    file,
                    head,
                },
                (offset, offset),
                Some(Away {
                    since: now,
                    deleted: false,
                }),
                now,
                OpenReason::Recovered,
            );
        }
    }

    /// Reads what is new in file `i` (within `budget`).
    fn read_file(&mut self, i: usize, now: Instant, out: &mut Vec<Record>, budget: &mut usize) {
        let t = &mut self.files[i];
        let st = match stat_file(&t.file) {
            Ok(s) => s,
            Err(e) => {
                self.sink.io_error(Some(&t.path), "stat", &e);
                return;
            }
        };
        if let Some(a) = &mut t.away {
            a.deleted |= st.nlink == 0;
        }
        let pos = t.splitter.position();
        if st.size < pos {
            self.restart_stream(i, now, out, st.size);
            return;
        }
        if st.size == 0 && pos == 0 {
            t.at_eof = true;
            t.more = false;
            return;
        }
        let seen = Some((st.size, st.mtime));
        if st.size == pos && st.mtime.is_some() && t.verified == seen {
            // Nothing happened since the last look.
            t.at_eof = true;
            t.more = false;
            if t.away.is_some() {
                self.flush_held(i, now, out);
            }
            return;
        }
        // Also when the size did not change: a file truncated and rewritten
        // to the very size that was read is only told apart by its head.
        t.verified = seen;
        match check_head(&t.file, t.head) {
            Ok(HeadCheck::Same(h)) => {
                if h != t.head {
                    t.head = h;
                    self.identity_unsaved = true;
                }
            }
            Ok(HeadCheck::Different) => {
                self.restart_stream(i, now, out, st.size);
                return;
            }
            Err(e) => {
                self.sink.io_error(Some(&t.path), "read", &e);
                return;
            }
        }
        if st.size == pos {
            t.at_eof = true;
            t.more = false;
            if t.away.is_some() {
                self.flush_held(i, now, out);
            }
            return;
        }
        // A catch-up with a scan filter reads big chunks and frames them
        // with the scanner; anything else goes line by line.
        let scan_min = self
            .scanner
            .as_ref()
            .map(Scanner::min_read)
            .filter(|&m| st.size - pos >= m as u64);
        let mut buf = match scan_min {
            Some(m) => {
                let mut b = std::mem::take(&mut self.scan_buf);
                b.resize(SCAN_CHUNK.max(m).max(READ_CHUNK), 0);
                b
            }
            None => std::mem::take(&mut self.buf),
        };
        self.read_chunks(i, &mut buf, pos, scan_min, now, out, budget);
        match scan_min {
            // Read to its end: the catch-up is over, free the big buffer.
            Some(_) if self.files[i].at_eof => {}
            Some(_) => self.scan_buf = buf,
            None => self.buf = buf,
        }
    }

    /// Reads file `i` from `pos` in chunks of `buf` within `budget` (new
    /// bytes), framing each (with the scanner when `scan_min` says so).
    /// The scanner may leave the end of a chunk to the next read (bytes
    /// read again do not count against the budget, so a step covers the
    /// same bytes either way).
    #[allow(clippy::too_many_arguments)]
    fn read_chunks(
        &mut self,
        i: usize,
        buf: &mut [u8],
        mut pos: u64,
        scan_min: Option<usize>,
        now: Instant,
        out: &mut Vec<Record>,
        budget: &mut usize,
    ) {
        // Furthest byte read (beyond `pos` when the scanner deferred).
        let mut read_end = pos;
        loop {
            let again = (read_end - pos) as usize;
            let want = buf.len().min(budget.saturating_add(again));
            if want == 0 {
                self.files[i].more = true;
                return;
            }
            let t = &mut self.files[i];
            match read_at(&t.file, &mut buf[..want], pos) {
                Ok(0) => {
                    t.at_eof = true;
                    t.more = false;
                    if t.away.is_some() {
                        // Finish a rotated or deleted file before its
                        // successor is read: what it holds is complete.
                        self.flush_held(i, now, out);
                    }
                    return;
                }
                Ok(n) => {
                    let new = n.saturating_sub(again);
                    *budget -= new.min(*budget);
                    read_end = read_end.max(pos + n as u64);
                    self.sink.counters.bytes_read += new as u64;
                    t.last_growth = now;
                    t.at_eof = false;
                    if let Some(m) = scan_min.filter(|&m| n >= m) {
                        // Leave the end to the next read only when there is
                        // one: a full chunk, and budget for another big one.
                        let defer = n == want && *budget >= m;
                        pos += self.read_scanned(i, &buf[..n], defer, now, out) as u64;
                    } else {
                        pos += n as u64;
                        let lines = &mut self.lines;
                        t.splitter.feed(&buf[..n], &mut |l| lines.push(l));
                        self.emit_lines(i, now, out);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.sink.io_error(Some(&t.path), "read", &e);
                    return;
                }
            }
        }
    }

    /// Frames a big chunk of file `i` with the scanner: the end of the line
    /// the splitter holds and the unfinished last line go line by line,
    /// the complete lines between through [`Scanner::frame_region`].
    /// Returns the bytes consumed (all of `data` unless `defer`).
    fn read_scanned(
        &mut self,
        i: usize,
        data: &[u8],
        defer: bool,
        now: Instant,
        out: &mut Vec<Record>,
    ) -> usize {
        let mut k = 0;
        if !self.files[i].splitter.is_clean() {
            k = memchr::memchr(b'\n', data).map_or(data.len(), |j| j + 1);
            let lines = &mut self.lines;
            self.files[i]
                .splitter
                .feed(&data[..k], &mut |l| lines.push(l));
            self.emit_lines(i, now, out);
        }
        let rest = &data[k..];
        let len = memchr::memrchr(b'\n', rest).map_or(0, |j| j + 1);
        if len > 0 {
            let Tailer {
                files,
                rules,
                scanner,
                frames,
                sink,
                cfg,
                ..
            } = self;
            let scanner = scanner.as_ref().expect("scan reads need a scanner");
            let t = &mut files[i];
            let base = t.splitter.position();
            let mut stats = RegionStats::default();
            let mut ff = FileFraming {
                rules: rules.as_ref(),
                agg: t.agg.as_mut(),
                max_line: cfg.max_line_bytes,
                now,
                after_left: &mut t.after_left,
                after_exact: t.after_exact,
                lines_before: &mut t.lines_before,
                frames,
            };
            let used = scanner.frame_region(&rest[..len], base, defer, &mut ff, &mut stats);
            t.splitter.advance_clean(base + used as u64);
            let c = &mut sink.counters;
            c.bytes_skipped += stats.skipped;
            c.lines_lossy += stats.lossy;
            c.lines_truncated += stats.truncated.len() as u64;
            for offset in stats.truncated {
                sink.emit(TailEvent::LineTruncated {
                    id: t.id,
                    path: t.path.to_path_buf(),
                    offset,
                });
            }
            t.after_exact = true;
            frames_to_records(t, frames, out, &mut sink.counters, true);
            if used < len {
                return k + used;
            }
        }
        if len < rest.len() {
            let lines = &mut self.lines;
            self.files[i]
                .splitter
                .feed(&rest[len..], &mut |l| lines.push(l));
            self.emit_lines(i, now, out);
        }
        data.len()
    }

    /// Moves `self.lines` of file `i` through the aggregator into records.
    fn emit_lines(&mut self, i: usize, now: Instant, out: &mut Vec<Record>) {
        let t = &mut self.files[i];
        for line in self.lines.drain(..) {
            let c = &mut self.sink.counters;
            if line.truncated {
                c.lines_truncated += 1;
                self.sink.emit(TailEvent::LineTruncated {
                    id: t.id,
                    path: t.path.to_path_buf(),
                    offset: line.start,
                });
            }
            let c = &mut self.sink.counters;
            c.lines_lossy += u64::from(line.lossy);
            c.lines_partial += u64::from(line.partial);
            match (&self.rules, &mut t.agg) {
                (Some(r), Some(agg)) => agg.push(r, line, now, &mut self.frames),
                _ => self.frames.push(line.into()),
            }
        }
        frames_to_records(t, &mut self.frames, out, &mut self.sink.counters, false);
    }

    /// Emits what is held for file `i`: the unfinished line and the
    /// multiline record (the file ended for good, or a timer fired).
    fn flush_held(&mut self, i: usize, now: Instant, out: &mut Vec<Record>) {
        let t = &mut self.files[i];
        if let Some(l) = t.splitter.flush() {
            self.lines.push(l);
        }
        self.emit_lines(i, now, out);
        let t = &mut self.files[i];
        if let Some(agg) = &mut t.agg {
            agg.flush(&mut self.frames);
        }
        frames_to_records(t, &mut self.frames, out, &mut self.sink.counters, false);
    }

    fn flush_timers(&mut self, i: usize, now: Instant, out: &mut Vec<Record>) {
        if let Some(to) = self.cfg.partial_line_timeout {
            let t = &self.files[i];
            if t.splitter.has_pending() && now >= t.last_growth + to {
                // The rest of the line may be there already: look first.
                let mut budget = READ_CHUNK;
                self.read_file(i, now, out, &mut budget);
                let t = &mut self.files[i];
                if t.last_growth != now
                    && let Some(l) = t.splitter.flush()
                {
                    self.lines.push(l);
                    self.emit_lines(i, now, out);
                }
            }
        }
        let t = &mut self.files[i];
        if let (Some(r), Some(agg)) = (&self.rules, &mut t.agg) {
            agg.flush_due(r, now, &mut self.frames);
            frames_to_records(t, &mut self.frames, out, &mut self.sink.counters, false);
        }
    }

    /// Closes file `i` when it left the globs, was read to its end and the
    /// grace period passed. Returns whether it was removed.
    fn close_if_finished(&mut self, i: usize, now: Instant, out: &mut Vec<Record>) -> bool {
        let g = self.cfg.close_grace;
        let t = &self.files[i];
        let Some(a) = &t.away else { return false };
        if !(t.at_eof && now >= a.since + g && now >= t.last_growth + g) {
            return false;
        }
        // A last look: the writer may have appended after the rename.
        let mut budget = usize::MAX;
        self.read_file(i, now, out, &mut budget);
        if i >= self.files.len() || self.files[i].last_growth == now && !g.is_zero() {
            return false;
        }
        self.flush_held(i, now, out);
        let t = self.files.remove(i);
        self.reindex();
        let deleted = t.away.as_ref().is_some_and(|a| a.deleted);
        self.sink.emit(TailEvent::Closed {
            id: t.id,
            path: t.path.to_path_buf(),
            offset: t.splitter.position(),
        });
        if !deleted {
            // Remember it: it may come back (renamed back), and a restart
            // must be able to finish what is not acknowledged.
            self.closed.insert(
                t.id,
                Closed {
                    entry: t.entry(wall_secs()),
                    emitted: t.emitted,
                    from_checkpoint: false,
                },
            );
        }
        self.acks_unsaved = true;
        true
    }

    /// File `i` got shorter than what was read, or its head changed: flush
    /// what is held (it was written before), then start a new stream at 0.
    /// (Also for a file that already left the globs: the truncation may
    /// have happened before the rename, and its new content is log data.)
    fn restart_stream(&mut self, i: usize, now: Instant, out: &mut Vec<Record>, size: u64) {
        self.flush_held(i, now, out);
        let t = &mut self.files[i];
        let read_to = t.splitter.position();
        let old_id = t.id;
        t.id = FileId::fresh();
        t.splitter.reset(0);
        t.agg = self.rules.as_ref().map(|_| Aggregator::new());
        t.lines_before = None;
        t.after_exact = false;
        t.head = Head::default();
        t.acked = 0;
        t.emitted = 0;
        t.more = true;
        t.at_eof = false;
        let ev = TailEvent::Truncated {
            old_id,
            new_id: t.id,
            path: t.path.to_path_buf(),
            read_to,
            size,
        };
        self.identity_unsaved = true;
        self.reindex();
        self.sink.emit(ev);
    }

    fn entries(&self) -> Vec<CheckpointEntry> {
        let wall = wall_secs();
        let mut v: Vec<CheckpointEntry> = self.files.iter().map(|t| t.entry(wall)).collect();
        v.extend(self.closed.values().map(|c| c.entry.clone()));
        v.sort_by(|a, b| a.path.cmp(&b.path).then(a.id.cmp(&b.id)));
        v
    }

    fn maybe_save(&mut self, now: Instant) {
        let ids_due = self.identity_unsaved && self.save_retry_at.is_none_or(|r| now >= r);
        let acks_due = self.acks_unsaved && now >= self.last_save + self.cfg.checkpoint_interval;
        if ids_due || acks_due {
            self.save(now);
        }
    }

    fn save(&mut self, now: Instant) {
        if self.store.is_none() {
            self.identity_unsaved = false;
            self.acks_unsaved = false;
            return;
        }
        if self.checkpoint_now().is_err() {
            self.save_retry_at = Some(now + self.cfg.checkpoint_interval);
            self.last_save = now;
        }
    }
}

impl Drop for Tailer {
    fn drop(&mut self) {
        if self.identity_unsaved || self.acks_unsaved {
            let _ = self.checkpoint_now();
        }
    }
}

fn frames_to_records(
    t: &mut Tracked,
    frames: &mut Vec<Frame>,
    out: &mut Vec<Record>,
    counters: &mut Counters,
    scanned: bool,
) {
    // Records the scanner did not see: what they owe is not counted.
    t.after_exact &= scanned || frames.is_empty();
    for mut f in frames.drain(..) {
        f.take_lines_before(&mut t.lines_before);
        t.emitted = f.end;
        counters.records += 1;
        counters.lines += u64::from(f.lines);
        counters.records_split += u64::from(f.split);
        out.push(Record {
            file: t.key(),
            offset_start: f.start,
            offset_end: f.end,
            text: f.text,
            lines: f.lines,
            truncated: f.truncated,
            lossy: f.lossy,
            partial: f.partial,
            split: f.split,
            idle: f.idle,
            lines_before: f.lines_before,
            lines_after: f.lines_after,
        });
    }
}

/// Whether the open `file` is still the stream `entry` describes, to be
/// resumed at `resume`: same birth time (when both known), at least
/// `resume` bytes long, same head. Returns the (possibly extended) head.
fn verify(file: &File, st: &Stat, entry: &CheckpointEntry, resume: u64) -> Option<Head> {
    if let (Some(a), Some(b)) = (st.birth, entry.birth)
        && a != b
    {
        return None;
    }
    if st.size < resume {
        return None;
    }
    match check_head(file, entry.head()) {
        Ok(HeadCheck::Same(h)) => Some(h),
        _ => None,
    }
}

/// For `StartAt::End`: the start of the unfinished last line, so it is read
/// whole once completed; `size` when the last 64 KiB hold no newline in a
/// longer file.
fn line_start_before(file: &File, size: u64) -> u64 {
    let n = size.min(READ_CHUNK as u64);
    let mut buf = vec![0; n as usize];
    let from = size - n;
    let Ok(got) = read_full_at(file, &mut buf, from) else {
        return size;
    };
    match memchr::memrchr(b'\n', &buf[..got]) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    }
}
