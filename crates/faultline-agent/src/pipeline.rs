//! One source: tail → parse → match → context (the tail thread,
//! [`SourceWorker`]) → incident → throttle → spool (the incident thread,
//! [`IncidentBuilder`]) → acknowledge (back on the tail thread).
//! The acknowledgement rule:
//! a stream's checkpoint may move past a record only when everything the
//! record produced is durably in the spool. An error waiting for its
//! "after" lines, an occurrence counted by the throttle but not sent yet,
//! shipped lines not spooled yet, and an incident whose spool write failed
//! all *hold* their stream at their offset ([`AckTracker`]). After a crash
//! the tailer hands the held records out again with the same identity,
//! and the server drops duplicates by idempotency key.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use faultline_grouping::{EventInput, Grouper, GrouperConfig, incident_title};
use faultline_model::{Level, format_rfc3339_micros, now_micros};
use faultline_tail::{
    Ack, Counters, FileId, MultilineConfig, Record, ScanFilter, TailError, Tailer, TailerConfig,
    WatchMode,
};
use serde::{Deserialize, Serialize};

use crate::config::{AgentConfig, SourceConfig};
use crate::environment::{self, StaticEnv};
use crate::incident::{Context, Incident, SourceRef, log_tail_attachment};
use crate::matcher::Matcher;
use crate::parse::{Parsed, parse};
use crate::spool::{Kind, Spool, SpoolError};
use crate::throttle::{Hold, Offer, Throttle};

/// Longest message shipped or sent (the server refuses more than 256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024;
/// Incidents kept in memory when the spool cannot be written (disk full).
pub const MAX_UNSPOOLED: usize = 1000;

/// State shared by the workers and the sender.
#[derive(Debug)]
pub struct Shared {
    /// The spool.
    pub spool: Mutex<Spool>,
    /// Signalled when an item was spooled or on stop.
    pub wake: Condvar,
    /// Set to stop every thread.
    pub stop: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Wraps a spool.
    pub fn new(spool: Spool) -> Arc<Shared> {
        Arc::new(Shared {
            spool: Mutex::new(spool),
            wake: Condvar::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Stops every thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Whether stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// What a spool file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version (1).
    pub v: u32,
    /// Source name (selects the token at send time; tokens are not
    /// written to the spool).
    pub source: String,
    /// The incident, or the array of log entries.
    pub body: serde_json::Value,
}

/// Per-stream acknowledgement bookkeeping (pure).
#[derive(Debug, Default)]
pub struct AckTracker {
    streams: HashMap<FileId, StreamAcks>,
}

#[derive(Debug, Default)]
struct StreamAcks {
    processed: u64,
    acked: u64,
    holds: BTreeMap<u64, usize>,
}

impl AckTracker {
    /// Everything of `id` before `end` was looked at.
    pub fn processed(&mut self, id: FileId, end: u64) {
        let s = self.streams.entry(id).or_default();
        s.processed = s.processed.max(end);
    }

    /// Nothing of `id` at or after `offset` may be acknowledged.
    pub fn hold(&mut self, id: FileId, offset: u64) {
        *self
            .streams
            .entry(id)
            .or_default()
            .holds
            .entry(offset)
            .or_default() += 1;
    }

    /// Releases one hold taken with [`AckTracker::hold`].
    pub fn release(&mut self, id: FileId, offset: u64) {
        if let Some(s) = self.streams.get_mut(&id)
            && let Some(n) = s.holds.get_mut(&offset)
        {
            *n -= 1;
            if *n == 0 {
                s.holds.remove(&offset);
            }
        }
    }

    /// Acks that may be given now (each stream once, when it moved).
    /// `extra` holds (e.g. unspooled shipped lines) are honoured too.
    pub fn take_acks(&mut self, extra: &HashMap<FileId, u64>) -> Vec<Ack> {
        let mut out = Vec::new();
        for (id, s) in &mut self.streams {
            let mut safe = s.processed;
            if let Some((&h, _)) = s.holds.iter().next() {
                safe = safe.min(h);
            }
            if let Some(&h) = extra.get(id) {
                safe = safe.min(h);
            }
            if safe > s.acked {
                s.acked = safe;
                out.push(Ack {
                    id: *id,
                    offset: safe,
                });
            }
        }
        out
    }

    /// Whether any stream is held.
    pub fn has_holds(&self) -> bool {
        self.streams.values().any(|s| !s.holds.is_empty())
    }

    /// Forgets streams that hold nothing (bounded memory); keeps `keep`.
    pub fn compact(&mut self, keep: &dyn Fn(FileId) -> bool) {
        self.streams
            .retain(|id, s| !s.holds.is_empty() || s.acked < s.processed || keep(*id));
    }
}

/// Words on which a record is looked at for component versions (with
/// `tk-`): the catch-up scan hands out every record holding one. A
/// version follows its component after spaces, `:` or `,` and then
/// `v` or `version` (`tk-core v0.20.5`, `tk-maya version: 1.2`,
/// `tk-nuke:v3.1`; `environment::versions_in`), so the last separator
/// and that `v` are the hint. Each is 2 bytes and starts with no
/// lower-case letter: the catch-up finds them in its one SIMD pass with
/// the level words (`faultline_tail::ScanFilter`). (Until session 10 the
/// hints were ` v` and `ersion`, which took a second pass.)
const VERSION_HINTS: [&str; 4] = [" v", ":v", ",v", "\tv"];

/// An error whose record is complete, waiting for its "after" lines.
struct Pending {
    key: Arc<str>,
    record: Record,
    parsed: Parsed,
    before: Vec<String>,
    after: Vec<String>,
    deadline: Instant,
    detected_micros: i64,
}

/// An error with its context, handed from the tail thread to the
/// incident thread.
pub struct Detected {
    record: Record,
    parsed: Parsed,
    before: Vec<String>,
    after: Vec<String>,
    detected_micros: i64,
    versions: BTreeMap<String, String>,
}

/// The last lines of one log (for the lines before an error): texts of
/// one or more lines (a record's, or the lines a catch-up skipped before
/// one), as the tailer joined them, with their line counts.
#[derive(Default)]
struct StreamCtx {
    before: VecDeque<(String, usize)>,
    lines: usize,
}

impl StreamCtx {
    /// Keeps `count` lines joined in `text`; drops what the last `n` do
    /// not need.
    fn keep(&mut self, text: String, count: usize, n: usize) {
        if n == 0 || count == 0 {
            return;
        }
        self.before.push_back((text, count));
        self.lines += count;
        while let Some(&(_, c)) = self.before.front() {
            if self.lines - c < n {
                break;
            }
            self.lines -= c;
            self.before.pop_front();
        }
    }

    /// The last `n` lines kept, oldest first.
    fn last_lines(&self, n: usize) -> Vec<String> {
        let skip = self.lines.saturating_sub(n);
        self.before
            .iter()
            .flat_map(|(t, _)| t.split('\n'))
            .skip(skip)
            .map(str::to_owned)
            .collect()
    }
}

/// Errors detected and waiting for the incident thread; beyond this the
/// tail thread waits (bounded memory).
pub const DETECTED_QUEUE: usize = 256;

/// The tail side of one source: reads, parses, matches, keeps context,
/// ships lines, acknowledges. Never does the expensive part of an
/// incident (attachment, environment, grouping, fsync of the incident),
/// so a burst of errors does not stall reading while the application
/// rotates its log.
pub struct SourceWorker {
    src: SourceConfig,
    cfg: Arc<AgentConfig>,
    shared: Arc<Shared>,
    tailer: Tailer,
    matcher: Matcher,
    acks: AckTracker,
    ctx: HashMap<Arc<str>, StreamCtx>,
    versions: HashMap<Arc<str>, BTreeMap<String, String>>,
    pending: Vec<Pending>,
    to_builder: mpsc::SyncSender<Detected>,
    released: mpsc::Receiver<Release>,
    lines: Vec<serde_json::Value>,
    lines_hold: HashMap<FileId, u64>,
    spool_error_reported: bool,
    next_compact: Instant,
    /// No checkpoint is forced before this (see [`SourceWorker::step`]).
    next_forced_checkpoint: Instant,
    last_key: Option<(Arc<std::path::Path>, Arc<str>)>,
    /// Counters.
    pub stats: WorkerStats,
}

/// Holds the incident side gives back, and whether it wrote the spool to
/// do so (otherwise the throttle folded the occurrences, or one was too
/// big to keep).
struct Release {
    holds: Vec<Hold>,
    spooled: bool,
}

/// Process details read from `/proc` are reused this long: an error loop
/// of one process reads them once, and a reused PID is seen again soon.
const PROC_INFO_TTL: Duration = Duration::from_secs(10);
/// The uptime is read again after this long (it goes on during a suspend,
/// the monotonic clock does not).
const UPTIME_TTL: Duration = Duration::from_secs(60);
/// At most one forced checkpoint write (fsync) in this long.
const FORCED_CHECKPOINT_GAP: Duration = Duration::from_millis(250);

/// What an incident reports about its process.
struct ProcInfo {
    read_at: Instant,
    name: Option<String>,
    vars: BTreeMap<String, String>,
    vars_from: &'static str,
}

/// The incident side of one source: grouping, title, environment,
/// throttle, attachment, spool; tells the tail side which holds to
/// release once an incident is on disk.
pub struct IncidentBuilder {
    src: SourceConfig,
    cfg: Arc<AgentConfig>,
    env: Arc<StaticEnv>,
    shared: Arc<Shared>,
    grouper: Grouper,
    throttle: Throttle<Incident>,
    detected: mpsc::Receiver<Detected>,
    release: mpsc::Sender<Release>,
    unspooled: VecDeque<(Incident, Vec<Hold>)>,
    spool_error_reported: bool,
    procs: HashMap<u32, ProcInfo>,
    uptime: Option<(Instant, Option<u64>)>,
    /// Counters.
    pub stats: BuilderStats,
}

/// Counters of the tail side.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerStats {
    /// Records read.
    pub records: u64,
    /// Records that matched.
    pub matched: u64,
    /// Lines spooled for shipping.
    pub lines_spooled: u64,
}

/// Counters of the incident side.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuilderStats {
    /// Incidents spooled.
    pub spooled: u64,
    /// Occurrences folded into another incident by the throttle.
    pub throttled: u64,
}

/// The tailer configuration of a source.
pub fn tailer_config(cfg: &AgentConfig, src: &SourceConfig) -> TailerConfig {
    let mut t = TailerConfig::new(src.paths.clone());
    t.exclude = src.exclude_paths.clone();
    t.start_at = src.start_at;
    t.checkpoint_path = Some(
        cfg.state_dir
            .join("checkpoints")
            .join(format!("{}.json", src.name)),
    );
    t.multiline = src.multiline.then(|| MultilineConfig {
        timeout: cfg.multiline_timeout,
        ..MultilineConfig::default()
    });
    t.watch = if cfg.notify {
        WatchMode::Notify
    } else {
        WatchMode::Poll
    };
    t.rescan_interval = cfg.rescan_interval;
    if cfg.scan_filter {
        t.scan_filter = scan_filter(cfg, src, &Matcher::new(src.matcher.clone(), src.format));
    }
    t
}

/// What a catch-up of `src` must hand out (see `faultline_tail::ScanFilter`):
/// the records that may pass the matcher's pre-filter with the context the
/// worker keeps around them, and the records that may announce versions.
/// `None` when every record counts: shipping every line, or a matcher
/// without pre-filter (`include` regexes, a level below warn).
pub fn scan_filter(cfg: &AgentConfig, src: &SourceConfig, matcher: &Matcher) -> Option<ScanFilter> {
    if src.ship_all_lines {
        return None;
    }
    let mut f = ScanFilter::new(matcher.needles()?.iter().cloned());
    f.line_prefixes = matcher
        .line_prefixes()
        .iter()
        .map(|p| p.to_string())
        .collect();
    f.plain_needles = VERSION_HINTS.iter().map(|h| h.to_string()).collect();
    f.before = cfg.context_before;
    f.after_lines = cfg.context_after;
    Some(f)
}

/// Starts a source: its tailer (loads its checkpoint) and the two halves,
/// to be run on two threads.
pub fn start_source(
    src: SourceConfig,
    cfg: Arc<AgentConfig>,
    env: Arc<StaticEnv>,
    shared: Arc<Shared>,
) -> Result<(SourceWorker, IncidentBuilder), TailError> {
    let dir = cfg.state_dir.join("checkpoints");
    std::fs::create_dir_all(&dir).map_err(|source| TailError::CurrentDir {
        pattern: dir.display().to_string(),
        source,
    })?;
    let tailer = Tailer::new(tailer_config(&cfg, &src))?;
    let (to_builder, detected) = mpsc::sync_channel(DETECTED_QUEUE);
    let (release, released) = mpsc::channel();
    let builder = IncidentBuilder {
        src: src.clone(),
        cfg: Arc::clone(&cfg),
        env,
        shared: Arc::clone(&shared),
        grouper: Grouper::new(GrouperConfig::default()),
        throttle: Throttle::new(cfg.throttle_window),
        detected,
        release,
        unspooled: VecDeque::new(),
        spool_error_reported: false,
        procs: HashMap::new(),
        uptime: None,
        stats: BuilderStats::default(),
    };
    let worker = SourceWorker {
        matcher: Matcher::new(src.matcher.clone(), src.format),
        src,
        cfg,
        shared,
        tailer,
        acks: AckTracker::default(),
        ctx: HashMap::new(),
        versions: HashMap::new(),
        pending: Vec::new(),
        to_builder,
        released,
        lines: Vec::new(),
        lines_hold: HashMap::new(),
        spool_error_reported: false,
        next_compact: Instant::now(),
        next_forced_checkpoint: Instant::now(),
        last_key: None,
        stats: WorkerStats::default(),
    };
    Ok((worker, builder))
}

fn push(shared: &Shared, kind: Kind, bytes: &[u8]) -> Result<u64, SpoolError> {
    shared
        .spool
        .lock()
        .expect("spool lock poisoned")
        .push(kind, bytes)
}

impl SourceWorker {
    /// Runs until [`Shared::stop`].
    pub fn run(mut self) {
        while !self.shared.stopping() {
            self.step(Duration::from_secs(1));
        }
        // Whatever waits for context, the incident thread or a throttle
        // window is not acked: a restart reads it again.
        let _ = self.tailer.checkpoint_now();
    }

    /// The files followed now (read and acknowledged offsets).
    pub fn files(&self) -> Vec<faultline_tail::FileState> {
        self.tailer.files()
    }

    /// The tailer's counters (`bytes_skipped`: what the catch-up scan did
    /// not even frame).
    pub fn tail_counters(&self) -> &Counters {
        self.tailer.counters()
    }

    /// Whether errors still wait for their context.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// One round: poll (up to `wait`), handle records, hand over errors
    /// whose context is complete, spool shipped lines, acknowledge.
    pub fn step(&mut self, wait: Duration) {
        let mut records = Vec::new();
        let wait = self
            .pending
            .iter()
            .map(|p| p.deadline)
            .min()
            .map_or(wait, |d| {
                wait.min(d.saturating_duration_since(Instant::now()))
            });
        // Short waits while the incident thread holds positions, so their
        // acknowledgement follows soon after they are spooled.
        let wait = if self.acks.has_holds() {
            wait.min(Duration::from_millis(100))
        } else {
            wait
        };
        self.tailer.poll(&mut records, wait);
        let now = Instant::now();
        let handled = records.len();
        for r in records {
            self.handle(r, now);
        }
        self.hand_over_due(now);
        let mut spooled = self.flush_lines();
        while let Ok(r) = self.released.try_recv() {
            spooled |= r.spooled;
            for h in r.holds {
                self.acks.release(h.stream, h.offset);
            }
        }
        for a in self.acks.take_acks(&self.lines_hold) {
            self.tailer.ack(a);
        }
        if spooled {
            self.shared.wake.notify_all();
            // Narrows the window in which a crash would re-read (and
            // re-send, deduplicated by the server) what is spooled; the
            // tailer writes its checkpoint every second anyway, and a
            // catch-up that spools at every step must not fsync at every
            // step.
            if now >= self.next_forced_checkpoint {
                let _ = self.tailer.checkpoint_now();
                self.next_forced_checkpoint = Instant::now() + FORCED_CHECKPOINT_GAP;
            }
        }
        // Bounded bookkeeping, but not on every idle wake-up (idle cost).
        if handled > 0 && now >= self.next_compact {
            self.next_compact = now + Duration::from_secs(10);
            let files = self.tailer.files();
            let live: std::collections::HashSet<FileId> = files.iter().map(|f| f.file.id).collect();
            self.acks.compact(&|id| live.contains(&id));
            if self.ctx.len() > files.len() {
                let keys: std::collections::HashSet<String> =
                    files.iter().map(|f| log_key(&f.file.path)).collect();
                self.ctx.retain(|k, _| keys.contains(&**k));
            }
        }
    }

    /// The log key of a record's file, cached for the last path (a
    /// catch-up reads thousands of records of one file in a row).
    fn key_of(&mut self, path: &Arc<std::path::Path>) -> Arc<str> {
        match &self.last_key {
            Some((p, k)) if Arc::ptr_eq(p, path) || **p == **path => Arc::clone(k),
            _ => {
                let k: Arc<str> = log_key(path).into();
                self.last_key = Some((Arc::clone(path), Arc::clone(&k)));
                k
            }
        }
    }

    fn handle(&mut self, mut r: Record, now: Instant) {
        self.stats.records += 1;
        let id = r.file.id;
        let key = self.key_of(&r.file.path);
        // Versions are announced on lines like `Running tk-core v0.20.5`.
        if r.text.contains("tk-") && VERSION_HINTS.iter().any(|h| r.text.contains(h)) {
            let found = environment::versions_in(&r.text);
            if !found.is_empty() {
                let v = self.versions.entry(key.clone()).or_default();
                for (c, ver) in found {
                    v.insert(c, ver);
                }
            }
        }
        let n_before = self.cfg.context_before;
        // Lines a catch-up skipped just before the record.
        if n_before > 0 && !r.lines_before.is_empty() {
            let lines = std::mem::take(&mut r.lines_before);
            let count = lines.len();
            let ctx = self.ctx.entry(key.clone()).or_default();
            ctx.keep(lines.into_string(), count, n_before);
        }
        // After-context of waiting errors of the same log: the record's
        // lines, then the lines after it a catch-up attached (as many as
        // any error waits for).
        let after_n = self.cfg.context_after;
        // (Length first: most waiting errors have their lines already.)
        for p in self
            .pending
            .iter_mut()
            .filter(|p| p.after.len() < after_n && p.key == key)
        {
            let lines = r.text.split('\n').chain(r.lines_after.iter());
            for l in lines {
                if p.after.len() >= after_n {
                    break;
                }
                p.after.push(l.to_owned());
            }
        }
        let mut parsed = None;
        let mut is_incident = false;
        if self.matcher.may_match(&r.text) {
            let p = parse(self.src.format, &r.text);
            if self.matcher.matches(&p, &r.text) {
                is_incident = true;
                self.stats.matched += 1;
                let ctx = self.ctx.entry(key.clone()).or_default();
                self.acks.hold(id, r.offset_start);
                let after = std::mem::take(&mut r.lines_after);
                self.pending.push(Pending {
                    key: key.clone(),
                    record: r.clone(),
                    parsed: p.clone(),
                    before: ctx.last_lines(n_before),
                    after: after.iter().take(after_n).map(str::to_owned).collect(),
                    // The wait for lines after the error counts from its
                    // last line: a record the flush timeout ended has
                    // already waited that long with nothing after it.
                    deadline: now
                        + if r.idle {
                            self.cfg
                                .after_wait
                                .saturating_sub(self.cfg.multiline_timeout)
                        } else {
                            self.cfg.after_wait
                        },
                    detected_micros: now_micros(),
                });
            }
            parsed = Some(p);
        }
        if self.src.ship_all_lines {
            let p = parsed.unwrap_or_else(|| parse(self.src.format, &r.text));
            if let Some(mut entry) = self.line_entry(&r, &p) {
                if is_incident {
                    // The same error also went out as an incident with
                    // this key: the server can tell the two apart.
                    entry["attributes"]["faultline.incident"] = r.idempotency_key().into();
                }
                self.lines_hold.entry(id).or_insert(r.offset_start);
                self.lines.push(entry);
            }
        }
        self.acks.processed(id, r.offset_end);
        if n_before > 0 {
            let count = r.lines as usize;
            self.ctx
                .entry(key)
                .or_default()
                .keep(r.text, count, n_before);
        }
    }

    fn line_entry(&self, r: &Record, p: &Parsed) -> Option<serde_json::Value> {
        let msg = if p.message.trim().is_empty() {
            r.text.as_str()
        } else {
            p.message.as_str()
        };
        if msg.trim().is_empty() {
            return None;
        }
        let msg = self.cfg.redactor.redact(clip(msg, MAX_MESSAGE_BYTES));
        let mut attrs = serde_json::Map::new();
        attrs.insert("file".into(), r.file.path.to_string_lossy().into());
        attrs.insert("offset".into(), r.offset_start.into());
        attrs.insert(
            "faultline.idempotency_key".into(),
            r.idempotency_key().into(),
        );
        if let Some(l) = &p.logger {
            attrs.insert("logger".into(), l.clone().into());
        }
        if let Some(pid) = p.pid {
            attrs.insert("pid".into(), pid.into());
        }
        if let Some(t) = &p.timestamp {
            attrs.insert("log_timestamp".into(), t.clone().into());
        }
        if let Some(e) = crate::platform::engine_from_path(&r.file.path) {
            attrs.insert("engine".into(), e.into());
        }
        for (k, v) in p.attributes.iter().take(40) {
            attrs.insert(k.clone(), self.cfg.redactor.redact(v).into());
        }
        let mut e = serde_json::json!({
            "level": p.level.unwrap_or(Level::Info).as_str(),
            "message": msg,
            "timestamp": format_rfc3339_micros(p.ts_micros.unwrap_or_else(now_micros)),
            "tags": self.src.tags,
            "attributes": attrs,
        });
        if let Some(s) = &self.src.service {
            e["service"] = s.clone().into();
        }
        Some(e)
    }

    /// Hands errors whose context is complete to the incident thread.
    fn hand_over_due(&mut self, now: Instant) {
        let after_n = self.cfg.context_after;
        let (due, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.after.len() >= after_n || now >= p.deadline);
        self.pending = keep;
        for p in due {
            let versions = self.versions.get(&p.key).cloned().unwrap_or_default();
            let d = Detected {
                record: p.record,
                parsed: p.parsed,
                before: p.before,
                after: p.after,
                detected_micros: p.detected_micros,
                versions,
            };
            // Blocks when the incident thread is DETECTED_QUEUE behind:
            // reading waits rather than memory growing without bound. A
            // closed channel means stopping: the hold stays, a restart
            // reads the record again.
            let _ = self.to_builder.send(d);
        }
    }

    fn flush_lines(&mut self) -> bool {
        if self.lines.is_empty() {
            return false;
        }
        let mut spooled = false;
        while !self.lines.is_empty() {
            let n = self.lines.len().min(self.cfg.batch_lines);
            let batch: Vec<serde_json::Value> = self.lines[..n].to_vec();
            let body = Envelope {
                v: 1,
                source: self.src.name.clone(),
                body: serde_json::Value::Array(batch),
            };
            let bytes = serde_json::to_vec(&body).expect("envelope serializes");
            match push(&self.shared, Kind::Lines(n as u32), &bytes) {
                Ok(_) => {
                    self.stats.lines_spooled += n as u64;
                    self.lines.drain(..n);
                    spooled = true;
                }
                Err(e) => {
                    if !self.spool_error_reported {
                        tracing::error!(error = %e, "cannot spool shipped lines; retrying");
                        self.spool_error_reported = true;
                    }
                    // Keep them (and the hold); bounded: beyond 10 batches
                    // stop keeping, a restart re-reads them (still held).
                    if self.lines.len() > 10 * self.cfg.batch_lines {
                        self.lines.truncate(10 * self.cfg.batch_lines);
                    }
                    return spooled;
                }
            }
        }
        self.spool_error_reported = false;
        self.lines_hold.clear();
        spooled
    }
}

impl IncidentBuilder {
    /// Runs until the tail side is gone or [`Shared::stop`]; returns its
    /// counters.
    pub fn run(mut self) -> BuilderStats {
        loop {
            if self.shared.stopping() {
                return self.stats;
            }
            let now = Instant::now();
            let mut wait = Duration::from_secs(1);
            if let Some(d) = self.throttle.next_deadline() {
                wait = wait.min(d.saturating_duration_since(now));
            }
            match self.detected.recv_timeout(wait) {
                Ok(d) => self.take(d, Instant::now()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.stats,
            }
            self.tick(Instant::now());
        }
    }

    fn release(&self, holds: Vec<Hold>, spooled: bool) {
        if !holds.is_empty() {
            let _ = self.release.send(Release { holds, spooled });
        }
    }

    /// The machine's uptime, read at most once per [`UPTIME_TTL`].
    fn uptime_secs(&mut self, now: Instant) -> Option<u64> {
        match self.uptime {
            Some((at, v)) if now.saturating_duration_since(at) < UPTIME_TTL => {
                v.map(|v| v + now.saturating_duration_since(at).as_secs())
            }
            _ => {
                let v = environment::uptime_secs();
                self.uptime = Some((now, v));
                v
            }
        }
    }

    /// Name and allowed environment variables of process `pid`, read at
    /// most once per [`PROC_INFO_TTL`].
    fn proc_info(&mut self, pid: u32, now: Instant) -> &ProcInfo {
        if self.procs.len() >= 256 {
            self.procs
                .retain(|_, p| now.saturating_duration_since(p.read_at) < PROC_INFO_TTL);
            if self.procs.len() >= 256 {
                // Hundreds of processes erring within seconds: start over.
                self.procs.clear();
            }
        }
        let fresh = self
            .procs
            .get(&pid)
            .is_some_and(|p| now.saturating_duration_since(p.read_at) < PROC_INFO_TTL);
        if !fresh {
            let (vars, vars_from) = environment::variables(Some(pid), &self.cfg.env_variables);
            self.procs.insert(
                pid,
                ProcInfo {
                    read_at: now,
                    name: environment::process_name(pid),
                    vars,
                    vars_from,
                },
            );
        }
        &self.procs[&pid]
    }

    /// One detected error: group, throttle, spool.
    fn take(&mut self, d: Detected, now: Instant) {
        let hold = Hold {
            stream: d.record.file.id,
            offset: d.record.offset_start,
        };
        let inc = self.build_incident(d);
        let fp = inc.fingerprint.clone();
        match self.throttle.offer(&fp, inc, hold, now) {
            Offer::Send(inc) => self.spool_incident(inc, vec![hold]),
            Offer::Held { hold_kept } => {
                self.stats.throttled += 1;
                if !hold_kept {
                    self.release(vec![hold], false);
                }
            }
        }
    }

    /// Windows that ended, and retries of what the spool refused.
    fn tick(&mut self, now: Instant) {
        let retry: Vec<_> = self.unspooled.drain(..).collect();
        for (inc, holds) in retry {
            self.spool_incident(inc, holds);
        }
        for rel in self.throttle.due(now) {
            let mut inc = rel.item;
            inc.count = rel.count;
            self.spool_incident(inc, rel.holds);
        }
    }

    fn attach(&self, inc: &mut Incident) {
        if !self.cfg.attachment_enabled {
            return;
        }
        // The engine's current log: `tk-maya.log` also for a record read
        // from `tk-maya.log.1`; the record's own file when the current
        // one is gone.
        let own = std::path::PathBuf::from(&inc.source.path);
        let current = current_log_path(&own);
        let mut previous = current.clone().into_os_string();
        previous.push(".1");
        let previous = std::path::PathBuf::from(previous);
        let read = |p: &std::path::Path, prev: Option<&std::path::Path>| {
            log_tail_attachment(
                p,
                prev,
                self.cfg.attachment_max_bytes,
                self.cfg.attachment_max_compressed,
                &self.cfg.redactor,
            )
        };
        let not_found = |r: &std::io::Result<_>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        let mut result = read(&current, Some(&previous));
        if not_found(&result) {
            // Mid-rotation: the current log was just renamed to `.1` and its
            // successor is not created yet.
            result = read(&previous, None);
        }
        if not_found(&result) && own != current && own != previous {
            result = read(&own, None);
        }
        match result {
            Ok(Some(a)) => inc.attachments = vec![a],
            Ok(None) => {
                inc.attributes
                    .insert("attachment_omitted".into(), "over the size cap".into());
            }
            Err(e) => {
                tracing::warn!(path = %current.display(), error = %e, "cannot read the log for the attachment");
                inc.attributes
                    .insert("attachment_omitted".into(), e.to_string());
            }
        }
    }

    fn spool_incident(&mut self, mut inc: Incident, holds: Vec<Hold>) {
        // The attachment is read when the incident goes out (not for
        // occurrences the throttle folds), so it shows the newest tail.
        if inc.attachments.is_empty() && !inc.attributes.contains_key("attachment_omitted") {
            self.attach(&mut inc);
        }
        let env = |inc: &Incident| Envelope {
            v: 1,
            source: self.src.name.clone(),
            body: serde_json::to_value(inc).expect("incident serializes"),
        };
        let mut bytes = serde_json::to_vec(&env(&inc)).expect("envelope serializes");
        let mut result = push(&self.shared, Kind::Incident, &bytes);
        if matches!(result, Err(SpoolError::TooLarge { .. })) && !inc.attachments.is_empty() {
            inc.attachments.clear();
            inc.attributes
                .insert("attachment_omitted".into(), "spool too small".into());
            bytes = serde_json::to_vec(&env(&inc)).expect("envelope serializes");
            result = push(&self.shared, Kind::Incident, &bytes);
        }
        match result {
            Ok(_) => {
                self.stats.spooled += 1;
                self.spool_error_reported = false;
                self.shared.wake.notify_all();
                self.release(holds, true);
            }
            Err(SpoolError::TooLarge { size, max }) => {
                // Cannot happen with a sane spool size (the message is
                // clipped); dropping it is the only way forward.
                tracing::error!(size, max, key = %inc.idempotency_key, "incident larger than the spool: dropped");
                self.release(holds, false);
            }
            Err(e) => {
                if !self.spool_error_reported {
                    tracing::error!(error = %e, "cannot write the spool; keeping incidents in memory and retrying");
                    self.spool_error_reported = true;
                }
                if self.unspooled.len() >= MAX_UNSPOOLED {
                    // Its holds stay: a restart reads the log again.
                    let (old, _holds) = self.unspooled.pop_front().expect("non-empty");
                    tracing::warn!(key = %old.idempotency_key, "memory queue full: incident left for a restart to re-read");
                }
                self.unspooled.push_back((inc, holds));
            }
        }
    }

    fn build_incident(&mut self, d: Detected) -> Incident {
        let red = &self.cfg.redactor;
        let r = &d.record;
        let parsed = &d.parsed;
        let raw_message = if parsed.message.trim().is_empty() {
            r.text.as_str()
        } else {
            parsed.message.as_str()
        };
        let message = red.redact(clip(raw_message, MAX_MESSAGE_BYTES));
        let level = parsed.level.unwrap_or(Level::Error);
        let engine = crate::platform::engine_from_path(&r.file.path);
        let fp = self.grouper.fingerprint(&EventInput {
            message: &message,
            level: Some(level.as_str()),
            service: self.src.service.as_deref(),
            logger: parsed.logger.as_deref(),
            ..Default::default()
        });
        let user = &self.cfg.user;
        let title = match &fp.exception_type {
            Some(t) => incident_title(user, t.rsplit('.').next().unwrap_or(t)),
            None => incident_title(
                user,
                red.redact(r.text.lines().next().unwrap_or("")).as_str(),
            ),
        };
        let mut env = self.env.values.clone();
        if let Some(u) = self.uptime_secs(Instant::now()) {
            env.insert("uptime_secs".into(), u.to_string());
        }
        if let Some(e) = &engine {
            env.insert("engine".into(), e.clone());
        }
        for (c, ver) in &d.versions {
            let key = if c == "tk-core" {
                "tk_core_version".to_owned()
            } else if Some(c) == engine.as_ref() {
                "engine_version".to_owned()
            } else {
                format!("{}_version", c.replace('-', "_"))
            };
            env.insert(key, ver.clone());
        }
        let (vars, from) = match parsed.pid {
            Some(pid) => {
                env.insert("process_id".into(), pid.to_string());
                let p = self.proc_info(pid, Instant::now());
                if let Some(name) = &p.name {
                    env.insert("process".into(), name.clone());
                }
                (p.vars.clone(), p.vars_from)
            }
            None => environment::variables(None, &self.cfg.env_variables),
        };
        let red = &self.cfg.redactor;
        if !vars.is_empty() {
            env.insert("env_source".into(), from.into());
        }
        for (k, v) in vars {
            env.insert(format!("env.{k}"), red.redact_value(&k, &v));
        }
        let mut attributes: BTreeMap<String, String> = parsed
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), red.redact_value(k, v)))
            .collect();
        if let Some(t) = &parsed.timestamp {
            attributes.insert("log_timestamp".into(), t.clone());
        }
        attributes.insert(
            "exception_type".into(),
            fp.exception_type.clone().unwrap_or_default(),
        );
        attributes.retain(|_, v| !v.is_empty());
        for (flag, on) in [
            ("lossy", r.lossy),
            ("truncated", r.truncated),
            ("partial", r.partial),
            ("split", r.split),
        ] {
            if on {
                attributes.insert(flag.into(), "true".into());
            }
        }
        Incident {
            idempotency_key: r.idempotency_key(),
            service: self.src.service.clone(),
            level: level.as_str().into(),
            timestamp: format_rfc3339_micros(parsed.ts_micros.unwrap_or(d.detected_micros)),
            message,
            title,
            fingerprint: fp.id.to_string(),
            logger: parsed.logger.clone(),
            pid: parsed.pid,
            engine,
            count: 1,
            dropped_before: 0,
            context: Context {
                before: d.before.iter().map(|l| red.redact(l)).collect(),
                after: d.after.iter().map(|l| red.redact(l)).collect(),
            },
            environment: env,
            tags: self.src.tags.clone(),
            attributes,
            source: SourceRef {
                path: r.file.path.to_string_lossy().into_owned(),
                offset: r.offset_start,
            },
            attachments: Vec::new(),
        }
    }
}

/// The log a file belongs to across rotations: the ShotGrid engine
/// (`tk-maya` for `tk-maya.log` and `tk-maya.log.1`), else the path
/// without a numeric rotation suffix. Context lines and versions are kept
/// per log, so an error at the top of a fresh file after a rotation still
/// gets the lines before it.
pub fn log_key(path: &std::path::Path) -> String {
    if let Some(e) = crate::platform::engine_from_path(path) {
        return e;
    }
    let p = path.to_string_lossy();
    match p.rsplit_once('.') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            head.to_owned()
        }
        _ => p.into_owned(),
    }
}

/// The live file of a log: the path without a numeric rotation suffix
/// (`tk-maya.log.1` → `tk-maya.log`).
pub fn current_log_path(path: &std::path::Path) -> std::path::PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match name.as_deref().and_then(|n| n.rsplit_once('.')) {
        Some((head, n))
            if !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            path.with_file_name(head)
        }
        _ => path.to_path_buf(),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> FileId {
        format!("{n:016x}").parse().unwrap()
    }

    #[test]
    fn acks_stop_at_holds() {
        let mut t = AckTracker::default();
        let none = HashMap::new();
        t.processed(id(1), 100);
        assert_eq!(
            t.take_acks(&none),
            [Ack {
                id: id(1),
                offset: 100
            }]
        );
        assert!(t.take_acks(&none).is_empty(), "only when it moved");
        t.hold(id(1), 150);
        t.hold(id(1), 180);
        t.processed(id(1), 300);
        assert_eq!(
            t.take_acks(&none),
            [Ack {
                id: id(1),
                offset: 150
            }]
        );
        t.release(id(1), 150);
        assert_eq!(
            t.take_acks(&none),
            [Ack {
                id: id(1),
                offset: 180
            }]
        );
        t.release(id(1), 180);
        let extra = HashMap::from([(id(1), 250)]);
        assert_eq!(
            t.take_acks(&extra),
            [Ack {
                id: id(1),
                offset: 250
            }]
        );
        assert_eq!(
            t.take_acks(&none),
            [Ack {
                id: id(1),
                offset: 300
            }]
        );
        // Two holds at one offset need two releases.
        t.hold(id(2), 0);
        t.hold(id(2), 0);
        t.processed(id(2), 10);
        t.release(id(2), 0);
        assert!(t.take_acks(&none).is_empty());
        t.release(id(2), 0);
        assert_eq!(
            t.take_acks(&none),
            [Ack {
                id: id(2),
                offset: 10
            }]
        );
        t.compact(&|_| false);
        assert!(t.streams.is_empty());
    }

    #[test]
    fn log_keys_survive_rotation() {
        use std::path::Path;
        assert_eq!(log_key(Path::new("/l/tk-maya.log.1")), "tk-maya");
        assert_eq!(log_key(Path::new("/l/app.log.1")), "/l/app.log");
        assert_eq!(log_key(Path::new("/l/app.log")), "/l/app.log");
        assert_eq!(
            current_log_path(Path::new("/l/tk-maya.log.1")),
            Path::new("/l/tk-maya.log")
        );
        assert_eq!(
            current_log_path(Path::new("/l/tk-maya.log")),
            Path::new("/l/tk-maya.log")
        );
    }

    #[test]
    fn version_hints_cover_the_version_forms() {
        for line in [
            "Running tk-core v0.20.5 in /opt/sg",
            "tk-maya version: 1.2.3",
            "tk-nuke:v3.1",
            "tk-x,version 2.0",
            "tk-y\tv1.0",
            "tk-z: v4.5",
        ] {
            assert!(!environment::versions_in(line).is_empty(), "{line}");
            assert!(VERSION_HINTS.iter().any(|h| line.contains(h)), "{line}");
        }
        // Known gap: a bare number after the component has no hint (it
        // never had one), so it is not read.
        assert!(!environment::versions_in("tk-core 0.20.5").is_empty());
        assert!(!VERSION_HINTS.iter().any(|h| "tk-core 0.20.5".contains(h)));
    }

    #[test]
    fn context_ring_keeps_the_last_lines() {
        let mut c = StreamCtx::default();
        c.keep("a".into(), 1, 3);
        assert_eq!(c.last_lines(3), ["a"]);
        c.keep("b1\nb2\n\nb3".into(), 4, 3);
        assert_eq!(c.last_lines(3), ["b2", "", "b3"]);
        assert_eq!(
            c.before.len(),
            1,
            "what the last 3 lines do not need is dropped"
        );
        c.keep("c".into(), 1, 3);
        assert_eq!(c.last_lines(3), ["", "b3", "c"]);
        assert_eq!(c.last_lines(1), ["c"]);
        let mut none = StreamCtx::default();
        none.keep("x\ny".into(), 2, 0);
        assert!(none.last_lines(0).is_empty());
    }

    #[test]
    fn clip_respects_characters() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }
}
