//! Integration tests: the real tailer against the real file system.
//! Scenarios first, then the model-based property test, then a real Python
//! `RotatingFileHandler`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use faultline_tail::{
    EventLog, FileId, MultilineConfig, OpenReason, Record, StartAt, TailEvent, Tailer,
    TailerConfig, WatchMode,
};

struct Env {
    logs: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            logs: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.logs.path().join(name)
    }

    /// Deterministic config: rescan every step, close finished files at
    /// once, read existing files from the start.
    fn cfg(&self, pattern: &str) -> TailerConfig {
        let mut c = TailerConfig::new([self
            .logs
            .path()
            .join(pattern)
            .to_string_lossy()
            .into_owned()]);
        c.checkpoint_path = Some(self.state.path().join("checkpoints.json"));
        c.rescan_interval = Duration::ZERO;
        c.close_grace = Duration::ZERO;
        c.start_at = StartAt::Beginning;
        c.partial_line_timeout = None;
        c
    }

    fn append(&self, name: &str, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.p(name))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

fn start(cfg: TailerConfig) -> (Tailer, EventLog) {
    let log = EventLog::new();
    let t = Tailer::with_observer(cfg, Box::new(log.clone())).unwrap();
    (t, log)
}

/// Polls until nothing more comes (three empty steps in a row).
fn drain(t: &mut Tailer) -> Vec<Record> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        if t.poll(&mut out, Duration::ZERO) == 0 && !t.has_backlog() {
            empty += 1;
        } else {
            empty = 0;
        }
    }
    out
}

fn texts(rs: &[Record]) -> Vec<&str> {
    rs.iter().map(|r| r.text.as_str()).collect()
}

#[test]
fn tailer_can_move_to_a_thread() {
    fn is_send<T: Send>() {}
    is_send::<Tailer>();
    is_send::<Record>();
}

#[test]
fn missing_checkpoint_directory_fails_the_start() {
    let env = Env::new();
    let mut c = env.cfg("*.log");
    c.checkpoint_path = Some(env.state.path().join("no/such/dir/c.json"));
    assert!(matches!(
        Tailer::new(c),
        Err(faultline_tail::TailError::Checkpoint(_))
    ));
}

#[test]
fn reads_new_lines_and_acks_resume_after_restart() {
    let env = Env::new();
    env.append("a.log", "one\ntwo\n");
    let (mut t, _) = start(env.cfg("*.log"));
    let rs = drain(&mut t);
    assert_eq!(texts(&rs), ["one", "two"]);
    assert_eq!((rs[0].offset_start, rs[0].offset_end), (0, 4));
    assert_eq!(rs[1].idempotency_key(), format!("{}-4", rs[1].file.id));
    t.ack_record(&rs[0]);
    env.append("a.log", "three\n");
    let rs2 = drain(&mut t);
    assert_eq!(texts(&rs2), ["three"]);
    drop(t); // "two" and "three" were never acknowledged

    let (mut t, log) = start(env.cfg("*.log"));
    assert!(log.take().iter().any(|e| matches!(
        e,
        TailEvent::Opened {
            reason: OpenReason::Resumed,
            offset: 4,
            ..
        }
    )));
    let again = drain(&mut t);
    assert_eq!(texts(&again), ["two", "three"]);
    assert_eq!(
        again[0].file.id, rs[0].file.id,
        "same stream id after restart"
    );
    assert_eq!(again[0].offset_start, 4);
    t.ack(again[1].ack());
    drop(t);
    let (mut t, _) = start(env.cfg("*.log"));
    assert!(drain(&mut t).is_empty());
}

#[test]
fn start_at_end_skips_existing_content_but_keeps_an_unfinished_line() {
    let env = Env::new();
    env.append("a.log", "old 1\nold 2\nhalf");
    let mut c = env.cfg("*.log");
    c.start_at = StartAt::End;
    let (mut t, _) = start(c);
    assert!(drain(&mut t).is_empty());
    env.append("a.log", " done\nnew\n");
    // A file that appears later is read from its beginning.
    env.append("b.log", "b1\n");
    let rs = drain(&mut t);
    assert_eq!(texts(&rs), ["half done", "new", "b1"]);
    for r in &rs {
        t.ack_record(r);
    }
    drop(t);
    // Not a first start any more: a file created while no tailer ran is
    // read from its beginning, not skipped.
    env.append("c.log", "c1\n");
    let mut c = env.cfg("*.log");
    c.start_at = StartAt::End;
    let (mut t, _) = start(c);
    assert_eq!(texts(&drain(&mut t)), ["c1"]);
}

#[test]
fn rename_rotation_finishes_the_old_file_first() {
    let env = Env::new();
    env.append("tk-maya.log", "1\n");
    let (mut t, log) = start(env.cfg("tk-*.log"));
    assert_eq!(texts(&drain(&mut t)), ["1"]);
    // The writer appends, rotates (rename to .1, not matched by the glob),
    // and goes on in a new file.
    env.append("tk-maya.log", "2\n3\n");
    fs::rename(env.p("tk-maya.log"), env.p("tk-maya.log.1")).unwrap();
    env.append("tk-maya.log", "4\n");
    let rs = drain(&mut t);
    assert_eq!(texts(&rs), ["2", "3", "4"]);
    assert_ne!(rs[1].file.id, rs[2].file.id);
    assert_eq!(&*rs[1].file.path, env.p("tk-maya.log.1").as_path());
    let evs = log.take();
    assert!(evs.iter().any(|e| matches!(
        e,
        TailEvent::RotatedAway {
            new_path: Some(_),
            ..
        }
    )));
    assert!(evs.iter().any(|e| matches!(e, TailEvent::Closed { .. })));
    assert_eq!(t.files().len(), 1);
}

#[test]
fn shotgrid_rename_away_and_back_is_the_same_file() {
    for grace in [Duration::ZERO, Duration::from_secs(3600)] {
        let env = Env::new();
        env.append("tk-maya.log", "a\n");
        let mut c = env.cfg("tk-*.log");
        c.close_grace = grace;
        let (mut t, log) = start(c);
        assert_eq!(texts(&drain(&mut t)), ["a"]);
        env.append("tk-maya.log", "b\n");
        fs::rename(env.p("tk-maya.log"), env.p("tk-maya.log.tmp")).unwrap();
        assert_eq!(texts(&drain(&mut t)), ["b"]);
        fs::rename(env.p("tk-maya.log.tmp"), env.p("tk-maya.log")).unwrap();
        env.append("tk-maya.log", "c\n");
        let rs = drain(&mut t);
        assert_eq!(texts(&rs), ["c"], "grace {grace:?}");
        let evs = log.take();
        let back = evs.iter().any(|e| {
            matches!(e, TailEvent::CameBack { .. })
                || matches!(
                    e,
                    TailEvent::Opened {
                        reason: OpenReason::Returned,
                        ..
                    }
                )
        });
        assert!(back, "{evs:?}");
    }
}

#[test]
fn truncation_restarts_at_zero_with_a_new_stream() {
    let env = Env::new();
    env.append("a.log", "first line\nsecond line\n");
    let (mut t, log) = start(env.cfg("*.log"));
    let rs = drain(&mut t);
    File::options()
        .write(true)
        .open(env.p("a.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    env.append("a.log", "x\n");
    let rs2 = drain(&mut t);
    assert_eq!(texts(&rs2), ["x"]);
    assert_eq!(rs2[0].offset_start, 0);
    assert_ne!(
        rs2[0].file.id, rs[0].file.id,
        "offset 0 again needs a new id"
    );
    assert!(
        log.take()
            .iter()
            .any(|e| matches!(e, TailEvent::Truncated { .. }))
    );
    // Truncated and rewritten *longer* than what was read before the
    // tailer looked: caught by the head fingerprint.
    File::options()
        .write(true)
        .open(env.p("a.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    env.append("a.log", "a much longer replacement line\n");
    let rs3 = drain(&mut t);
    assert_eq!(texts(&rs3), ["a much longer replacement line"]);
    assert_ne!(rs3[0].file.id, rs2[0].file.id);
}

#[test]
fn copytruncate_keeps_reading_the_original() {
    let env = Env::new();
    env.append("app.log", "1\n");
    let (mut t, _) = start(env.cfg("*.log"));
    assert_eq!(texts(&drain(&mut t)), ["1"]);
    fs::copy(env.p("app.log"), env.p("app.log.1")).unwrap();
    File::options()
        .write(true)
        .open(env.p("app.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    env.append("app.log", "2\n");
    assert_eq!(texts(&drain(&mut t)), ["2"]);
}

#[test]
fn deleted_file_is_finished_through_the_handle_then_closed() {
    let env = Env::new();
    env.append("a.log", "1\n");
    let (mut t, log) = start(env.cfg("*.log"));
    assert_eq!(texts(&drain(&mut t)), ["1"]);
    let mut w = OpenOptions::new()
        .append(true)
        .open(env.p("a.log"))
        .unwrap();
    w.write_all(b"2\n").unwrap();
    fs::remove_file(env.p("a.log")).unwrap();
    assert_eq!(texts(&drain(&mut t)), ["2"]);
    assert!(t.files().is_empty(), "handle closed");
    let evs = log.take();
    assert!(evs.iter().any(|e| matches!(e, TailEvent::Deleted { .. })));
    // Same name again: a new file from 0 (even if the inode number is reused).
    drop(w);
    env.append("a.log", "3\n");
    assert_eq!(texts(&drain(&mut t)), ["3"]);
}

#[test]
fn restart_finishes_a_file_rotated_while_down() {
    let env = Env::new();
    env.append("tk-a.log", "1\n");
    let (mut t, _) = start(env.cfg("tk-*.log"));
    let rs = drain(&mut t);
    t.ack_record(&rs[0]);
    env.append("tk-a.log", "2\n");
    assert_eq!(texts(&drain(&mut t)), ["2"]); // delivered, not acknowledged
    drop(t);
    env.append("tk-a.log", "3\n");
    fs::rename(env.p("tk-a.log"), env.p("tk-a.log.1")).unwrap();
    env.append("tk-a.log", "4\n");
    let (mut t, log) = start(env.cfg("tk-*.log"));
    assert!(log.take().iter().any(|e| matches!(
        e,
        TailEvent::Opened {
            reason: OpenReason::Recovered,
            ..
        }
    )));
    assert_eq!(texts(&drain(&mut t)), ["2", "3", "4"]);
}

#[test]
fn partial_line_waits_then_flushes_after_timeout() {
    let env = Env::new();
    let mut c = env.cfg("*.log");
    c.partial_line_timeout = Some(Duration::from_millis(150));
    let (mut t, _) = start(c);
    let t0 = Instant::now();
    env.append("a.log", "no newline yet");
    assert!(drain(&mut t).is_empty());
    let mut out = Vec::new();
    t.poll(&mut out, Duration::from_secs(3));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(texts(&out), ["no newline yet"]);
    assert!(out[0].partial);
    env.append("a.log", " and the rest\n");
    let rs = drain(&mut t);
    assert_eq!(texts(&rs), [" and the rest"]);
    assert_eq!(rs[0].offset_start, out[0].offset_end);
}

#[test]
fn multiline_records_with_flush_timeout() {
    let env = Env::new();
    let mut c = env.cfg("*.log");
    c.multiline = Some(MultilineConfig {
        timeout: Duration::from_millis(200),
        ..MultilineConfig::default()
    });
    let (mut t, _) = start(c);
    env.append(
        "tk-desktop.log",
        "2016-04-25 08:56:12,413 [44862 DEBUG sgtk.core.log] hello\n\
         2016-04-25 08:56:13,000 [44862 ERROR sgtk.core.engine] boom\n\
         Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: boom\n",
    );
    let first = drain(&mut t);
    assert_eq!(
        texts(&first),
        ["2016-04-25 08:56:12,413 [44862 DEBUG sgtk.core.log] hello"]
    );
    let mut out = Vec::new();
    t.poll(&mut out, Duration::from_secs(3));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].lines, 4);
    assert!(out[0].text.ends_with("ValueError: boom"));
    assert_eq!(out[0].offset_start, first[0].offset_end);
}

#[test]
fn huge_single_line_is_capped() {
    let env = Env::new();
    let mut c = env.cfg("*.log");
    c.max_line_bytes = 1024;
    c.max_read_per_poll = 1 << 20;
    let (mut t, log) = start(c);
    {
        let mut f = File::create(env.p("big.log")).unwrap();
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..20 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\nafter\n").unwrap();
    }
    let rs = drain(&mut t);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].text.len(), 1024);
    assert!(rs[0].truncated);
    assert_eq!(rs[0].offset_end, 20 * (1 << 20) + 1);
    assert_eq!(rs[1].text, "after");
    assert_eq!(t.counters().lines_truncated, 1);
    assert!(
        log.take()
            .iter()
            .any(|e| matches!(e, TailEvent::LineTruncated { .. }))
    );
}

#[test]
fn bad_paths_are_reported_and_do_not_stop_the_tailer() {
    let env = Env::new();
    #[cfg(unix)]
    {
        // A symlink loop cannot be stat'ed (ELOOP), even by root; a FIFO
        // must not be opened (it would block).
        std::os::unix::fs::symlink(env.p("loop.log"), env.p("loop.log")).unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(env.p("fifo.log"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    env.append("good.log", "ok\n");
    let (mut t, log) = start(env.cfg("*.log"));
    assert_eq!(texts(&drain(&mut t)), ["ok"]);
    let evs = log.take();
    #[cfg(unix)]
    {
        let errs: Vec<_> = evs
            .iter()
            .filter(|e| matches!(e, TailEvent::Error { .. }))
            .collect();
        assert_eq!(errs.len(), 1, "reported once, not every rescan: {errs:?}");
        assert_eq!(t.counters().errors, 1);
    }
    let _ = evs;
}

#[test]
fn notifications_wake_the_poller_without_rescans() {
    let env = Env::new();
    let mut c = env.cfg("*.log");
    c.rescan_interval = Duration::from_secs(60);
    let (mut t, _) = start(c);
    assert!(t.is_notifying());
    for round in 0..3 {
        env.append("n.log", &format!("line {round}\n"));
        let t0 = Instant::now();
        let mut out = Vec::new();
        t.poll(&mut out, Duration::from_secs(5));
        assert_eq!(texts(&out), [format!("line {round}").as_str()]);
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "woken by the notification"
        );
    }
}

#[test]
fn idle_files_cost_nothing_but_the_slow_rescan() {
    let env = Env::new();
    for i in 0..200 {
        env.append(&format!("f{i}.log"), "x\n");
    }
    let mut c = env.cfg("*.log");
    c.rescan_interval = Duration::from_millis(500);
    let (mut t, _) = start(c);
    assert_eq!(drain(&mut t).len(), 200);
    let before = t.counters().clone();
    let t0 = Instant::now();
    let mut out = Vec::new();
    while t0.elapsed() < Duration::from_millis(1600) {
        t.poll(&mut out, Duration::from_millis(400));
    }
    let after = t.counters();
    assert!(out.is_empty());
    assert_eq!(after.bytes_read, before.bytes_read);
    let rescans = after.rescans - before.rescans;
    assert!((2..=5).contains(&rescans), "{rescans} rescans in 1.6 s");
}

#[test]
fn poll_mode_works_without_notifications() {
    let env = Env::new();
    let mut c = env.cfg("*.log");
    c.watch = WatchMode::Poll;
    c.rescan_interval = Duration::from_millis(300);
    c.poll_interval = Duration::from_millis(50);
    let (mut t, _) = start(c);
    assert!(!t.is_notifying());
    env.append("p.log", "polled\n");
    let mut out = Vec::new();
    t.poll(&mut out, Duration::from_secs(3));
    assert_eq!(texts(&out), ["polled"]);
}

#[test]
fn checkpoint_file_is_versioned_json() {
    let env = Env::new();
    env.append("a.log", "1\n");
    let (mut t, _) = start(env.cfg("*.log"));
    let rs = drain(&mut t);
    t.ack_record(&rs[0]);
    t.checkpoint_now().unwrap();
    let text = fs::read_to_string(env.state.path().join("checkpoints.json")).unwrap();
    let v: serde_json_value::Value = serde_json_value::from_str(&text);
    assert_eq!(v.version, 1);
    assert_eq!(v.files.len(), 1);
    assert_eq!(v.files[0].offset, 2);
    assert_eq!(v.files[0].id, rs[0].file.id.to_string());
}

/// Minimal typed view of the checkpoint for the test above (the crate's
/// own types are covered by its unit tests).
mod serde_json_value {
    #[derive(serde::Deserialize)]
    pub struct Value {
        pub version: u32,
        pub files: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    pub struct Entry {
        pub id: String,
        pub offset: u64,
    }
    pub fn from_str(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }
}

// ----- model-based property test ------------------------------------------

mod model {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 2] = ["a", "b"];

    #[derive(Debug, Clone)]
    pub enum Action {
        Write {
            f: usize,
            n: u8,
            pad: u8,
        },
        /// The application still writes to the file it had before the
        /// last rotation / deletion (no reopen yet).
        WriteOld {
            f: usize,
            n: u8,
        },
        RenameRotate {
            f: usize,
        },
        ShotgunRotate {
            f: usize,
            observe_between: bool,
        },
        CopyTruncate {
            f: usize,
        },
        Truncate {
            f: usize,
        },
        Delete {
            f: usize,
        },
        Recreate {
            f: usize,
        },
        Poll {
            ack: u8,
        },
        Restart,
    }

    fn action() -> impl Strategy<Value = Action> {
        let f = 0..NAMES.len();
        prop_oneof![
            8 => (f.clone(), 1u8..4, 0u8..40).prop_map(|(f, n, pad)| Action::Write { f, n, pad }),
            1 => (f.clone(), 1u8..3).prop_map(|(f, n)| Action::WriteOld { f, n }),
            2 => f.clone().prop_map(|f| Action::RenameRotate { f }),
            2 => (f.clone(), any::<bool>()).prop_map(|(f, o)| Action::ShotgunRotate { f, observe_between: o }),
            1 => f.clone().prop_map(|f| Action::CopyTruncate { f }),
            1 => f.clone().prop_map(|f| Action::Truncate { f }),
            1 => f.clone().prop_map(|f| Action::Delete { f }),
            1 => f.clone().prop_map(|f| Action::Recreate { f }),
            5 => (0u8..3).prop_map(|ack| Action::Poll { ack }),
            1 => Just(Action::Restart),
        ]
    }

    /// One file instance (inode) as the model sees it.
    struct Inst {
        /// Open append handle: the application's.
        writer: File,
        /// Line numbers in the current content.
        lines: Vec<u64>,
        /// How many of them the tailer must have read by now.
        read: usize,
        /// Current name, if linked.
        name: Option<String>,
        /// The tailer holds it open.
        held: bool,
        /// The tailer has seen it (so it is in the checkpoint).
        seen: bool,
    }

    pub struct Harness {
        env: Env,
        grace: Duration,
        watch: WatchMode,
        start_at: StartAt,
        tailer: Option<Tailer>,
        insts: Vec<Inst>,
        /// name -> instance index
        at: HashMap<String, usize>,
        /// base name -> last instance that left the name (for WriteOld)
        old: HashMap<usize, usize>,
        seq: u64,
        text: HashMap<u64, String>,
        /// Lines present before the first start with StartAt::End.
        skipped: HashSet<u64>,
        session: u32,
        deliveries: Vec<(u32, Record)>,
    }

    fn matched(name: &str) -> bool {
        name.ends_with(".log")
    }

    impl Harness {
        pub fn new(grace_zero: bool, poll_mode: bool, at_end: bool) -> Self {
            Harness {
                env: Env::new(),
                grace: if grace_zero {
                    Duration::ZERO
                } else {
                    Duration::from_secs(3600)
                },
                watch: if poll_mode {
                    WatchMode::Poll
                } else {
                    WatchMode::Notify
                },
                start_at: if at_end {
                    StartAt::End
                } else {
                    StartAt::Beginning
                },
                tailer: None,
                insts: Vec::new(),
                at: HashMap::new(),
                old: HashMap::new(),
                seq: 0,
                text: HashMap::new(),
                skipped: HashSet::new(),
                session: 0,
                deliveries: Vec::new(),
            }
        }

        fn name(f: usize) -> String {
            format!("{}.log", NAMES[f])
        }

        fn create(&mut self, name: &str) -> usize {
            let writer = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.env.p(name))
                .unwrap();
            self.insts.push(Inst {
                writer,
                lines: Vec::new(),
                read: 0,
                name: Some(name.to_owned()),
                held: false,
                seen: false,
            });
            let i = self.insts.len() - 1;
            if let Some(prev) = self.at.insert(name.to_owned(), i) {
                self.insts[prev].name = None;
            }
            i
        }

        fn write_to(&mut self, i: usize, n: u8, pad: u8) {
            let mut buf = String::new();
            for _ in 0..n {
                self.seq += 1;
                let line = format!("L{:08} {}", self.seq, "p".repeat(pad as usize));
                buf.push_str(&line);
                buf.push('\n');
                self.text.insert(self.seq, line);
                self.insts[i].lines.push(self.seq);
            }
            self.insts[i].writer.write_all(buf.as_bytes()).unwrap();
        }

        /// Renames `from` to `to` (replacing `to`), in the model too.
        fn rename(&mut self, from: &str, to: &str) {
            fs::rename(self.env.p(from), self.env.p(to)).unwrap();
            let i = self.at.remove(from).expect("renamed file exists");
            if let Some(prev) = self.at.insert(to.to_owned(), i) {
                self.insts[prev].name = None;
            }
            self.insts[i].name = Some(to.to_owned());
        }

        fn unlink(&mut self, name: &str) {
            if let Some(i) = self.at.remove(name) {
                fs::remove_file(self.env.p(name)).unwrap();
                self.insts[i].name = None;
            }
        }

        fn truncate(&mut self, i: usize) {
            self.insts[i].writer.set_len(0).unwrap();
            self.insts[i].lines.clear();
            self.insts[i].read = 0;
        }

        fn config(&self) -> TailerConfig {
            let mut c = self.env.cfg("*.log");
            c.close_grace = self.grace;
            c.watch = self.watch;
            c.start_at = self.start_at;
            c
        }

        pub fn seed(&mut self, lines: u8) {
            // Files present before the very first start.
            for f in 0..NAMES.len() {
                let name = Self::name(f);
                let i = self.create(&name);
                let from = self.seq;
                self.write_to(i, lines, 3);
                if self.start_at == StartAt::End {
                    self.skipped.extend(from + 1..=self.seq);
                    self.insts[i].read = self.insts[i].lines.len();
                }
            }
            self.start_tailer();
        }

        fn start_tailer(&mut self) {
            self.session += 1;
            self.tailer = Some(Tailer::new(self.config()).unwrap());
            // What the new tailer holds: matched files, and files it knows
            // from the checkpoint that it can find again.
            for inst in &mut self.insts {
                let linked_matched = inst.name.as_deref().is_some_and(matched);
                inst.held = inst.name.is_some() && (linked_matched || inst.seen);
                if linked_matched {
                    inst.seen = true;
                }
            }
        }

        fn poll(&mut self, ack: u8) {
            let t = self.tailer.as_mut().unwrap();
            let rs = drain(t);
            // Acknowledge: 0 nothing, 1 everything, 2 up to the first
            // record of each stream in this batch.
            let mut acks: BTreeMap<FileId, u64> = BTreeMap::new();
            for r in &rs {
                let e = acks.entry(r.file.id).or_insert(r.offset_end);
                if ack == 1 {
                    *e = r.offset_end;
                }
            }
            if ack != 0 {
                for (id, offset) in acks {
                    t.ack(faultline_tail::Ack { id, offset });
                }
            }
            self.deliveries
                .extend(rs.into_iter().map(|r| (self.session, r)));
            for inst in &mut self.insts {
                let visible = inst.name.as_deref().is_some_and(matched) || inst.held;
                if visible {
                    inst.read = inst.lines.len();
                    inst.seen = true;
                    inst.held = true;
                }
                // Finished files are closed at once with a zero grace.
                if inst.held && !inst.name.as_deref().is_some_and(matched) && self.grace.is_zero() {
                    inst.held = false;
                }
            }
        }

        fn rotate(&mut self, f: usize) {
            let name = Self::name(f);
            if !self.at.contains_key(&name) {
                return;
            }
            let i = self.at[&name];
            self.rename(&name, &format!("{name}.1"));
            self.old.insert(f, i);
            self.create(&name);
        }

        pub fn apply(&mut self, a: &Action) {
            match *a {
                Action::Write { f, n, pad } => {
                    let name = Self::name(f);
                    let i = match self.at.get(&name) {
                        Some(&i) => i,
                        None => self.create(&name),
                    };
                    self.write_to(i, n, pad);
                }
                Action::WriteOld { f, n } => {
                    if let Some(&i) = self.old.get(&f) {
                        self.write_to(i, n, 1);
                    }
                }
                Action::RenameRotate { f } => self.rotate(f),
                Action::ShotgunRotate { f, observe_between } => {
                    let name = Self::name(f);
                    if !self.at.contains_key(&name) {
                        return;
                    }
                    let tmp = format!("{name}.tmp");
                    self.rename(&name, &tmp);
                    if observe_between {
                        self.poll(0);
                    }
                    self.rename(&tmp, &name);
                    self.rotate(f);
                }
                Action::CopyTruncate { f } => {
                    let name = Self::name(f);
                    let Some(&i) = self.at.get(&name) else { return };
                    let copy = format!("{name}.1");
                    self.unlink(&copy);
                    fs::copy(self.env.p(&name), self.env.p(&copy)).unwrap();
                    // The copy is not followed (not matched); keep it in
                    // the model so renames over it are handled.
                    let writer = OpenOptions::new()
                        .append(true)
                        .open(self.env.p(&copy))
                        .unwrap();
                    self.insts.push(Inst {
                        writer,
                        lines: Vec::new(),
                        read: 0,
                        name: Some(copy.clone()),
                        held: false,
                        seen: false,
                    });
                    self.at.insert(copy, self.insts.len() - 1);
                    self.truncate(i);
                }
                Action::Truncate { f } => {
                    if let Some(&i) = self.at.get(&Self::name(f)) {
                        self.truncate(i);
                    }
                }
                Action::Delete { f } => {
                    let name = Self::name(f);
                    if let Some(&i) = self.at.get(&name) {
                        self.old.insert(f, i);
                    }
                    self.unlink(&name);
                }
                Action::Recreate { f } => {
                    let name = Self::name(f);
                    if let Some(&i) = self.at.get(&name) {
                        self.old.insert(f, i);
                    }
                    self.unlink(&name);
                    self.create(&name);
                }
                Action::Poll { ack } => self.poll(ack),
                Action::Restart => {
                    drop(self.tailer.take());
                    self.start_tailer();
                }
            }
        }

        /// Final drain, then the checks.
        pub fn check(mut self) -> Result<(), TestCaseError> {
            self.poll(1);
            let mut key_of: HashMap<u64, (FileId, u64)> = HashMap::new();
            let mut text_of: HashMap<(FileId, u64), &str> = HashMap::new();
            let mut seen_in_session: HashSet<(u32, FileId, u64)> = HashSet::new();
            let mut last_in_session: HashMap<(u32, FileId), u64> = HashMap::new();
            let mut first: Vec<u64> = Vec::new();
            for (s, r) in &self.deliveries {
                let key = (r.file.id, r.offset_start);
                prop_assert!(!r.partial && !r.truncated && !r.lossy, "{r:?}");
                let seq: u64 = r.text[1..9].parse().expect("line number");
                prop_assert_eq!(
                    self.text.get(&seq).map(String::as_str),
                    Some(r.text.as_str())
                );
                prop_assert!(
                    !self.skipped.contains(&seq),
                    "StartAt::End line delivered: {}",
                    seq
                );
                // One identity per line: dedup by key is exact.
                match key_of.get(&seq) {
                    Some(k) => prop_assert_eq!(*k, key, "line {} under two keys", seq),
                    None => {
                        key_of.insert(seq, key);
                        first.push(seq);
                    }
                }
                // One text per identity.
                let t = text_of.entry(key).or_insert(r.text.as_str());
                prop_assert_eq!(*t, r.text.as_str());
                // Nothing read twice by one tailer, in order per stream.
                prop_assert!(
                    seen_in_session.insert((*s, key.0, key.1)),
                    "read twice: {r:?}"
                );
                let last = last_in_session.entry((*s, r.file.id)).or_insert(0);
                prop_assert!(r.offset_start >= *last, "out of order: {r:?}");
                *last = r.offset_end;
            }
            // Everything the tailer could see was delivered.
            for inst in &self.insts {
                for seq in &inst.lines[..inst.read] {
                    if !self.skipped.contains(seq) {
                        prop_assert!(key_of.contains_key(seq), "line {} lost", seq);
                    }
                }
            }
            // Lines that were read before a truncation are in `key_of`
            // already (the model only forgets *unread* ones).
            // First deliveries keep the write order per stream.
            let mut by_stream: HashMap<FileId, u64> = HashMap::new();
            for seq in first {
                let (id, off) = key_of[&seq];
                let prev = by_stream.insert(id, off);
                prop_assert!(
                    prev.is_none_or(|p| p < off),
                    "stream order broken at line {}",
                    seq
                );
            }
            Ok(())
        }
    }

    proptest! {
        // TAIL_MODEL_CASES=2000 for a long run.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("TAIL_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
            max_shrink_iters: 400,
            ..ProptestConfig::default()
        })]

        #[test]
        fn tailer_matches_model(
            grace_zero in any::<bool>(),
            poll_mode in any::<bool>(),
            at_end in any::<bool>(),
            seed_lines in 0u8..3,
            actions in proptest::collection::vec(action(), 1..40),
        ) {
            let mut h = Harness::new(grace_zero, poll_mode, at_end);
            h.seed(seed_lines);
            for a in &actions {
                h.apply(a);
            }
            h.check()?;
        }
    }
}

// ----- Python's RotatingFileHandler ---------------------------------------

const PY_WRITER: &str = r#"
import logging, logging.handlers, os, sys, time

path, n = sys.argv[1], int(sys.argv[2])

class ShotgunHandler(logging.handlers.RotatingFileHandler):
    # tk-core checks that the file can be renamed before rolling over by
    # renaming it away and back (fails on Windows if someone holds it).
    def doRollover(self):
        tmp = self.baseFilename + ".tmp"
        os.rename(self.baseFilename, tmp)
        os.rename(tmp, self.baseFilename)
        super().doRollover()

h = ShotgunHandler(path, maxBytes=20 * 1024, backupCount=1, encoding="utf-8")
h.setFormatter(logging.Formatter("%(asctime)s [%(process)d %(levelname)s %(name)s] %(message)s"))
log = logging.getLogger("sgtk.core.test")
log.addHandler(h)
log.setLevel(logging.DEBUG)
for i in range(n):
    if i % 97 == 0:
        try:
            raise ValueError("boom %d" % i)
        except ValueError:
            log.exception("n=%d failed", i)
    else:
        log.debug("n=%d some message text to fill the line", i)
    # Paced so that one rollover takes ~0.1 s: a tailer starved of CPU for
    # longer than two rollovers cannot see a file that was created, filled,
    # rotated and deleted meanwhile (case 1 of the crate docs).
    if i % 10 == 0:
        time.sleep(0.005)
"#;

#[test]
fn python_rotating_file_handler_is_followed_exactly_once_in_order() {
    let env = Env::new();
    let script = env.state.path().join("writer.py");
    fs::write(&script, PY_WRITER).unwrap();
    let mut c = env.cfg("tk-*.log");
    c.rescan_interval = Duration::from_millis(500);
    c.close_grace = Duration::from_secs(2);
    c.multiline = Some(MultilineConfig::default());
    let (mut t, log) = start(c);
    let n = 6000;
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .arg(env.p("tk-test.log"))
        .arg(n.to_string())
        .spawn()
        .expect("python3 runs");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut exited = false;
    loop {
        t.poll(&mut out, Duration::from_millis(50));
        let acks: Vec<_> = out.iter().map(Record::ack).collect();
        for a in acks.into_iter().rev().take(2) {
            t.ack(a);
        }
        if !exited && child.try_wait().unwrap().is_some() {
            exited = true;
        }
        let headers = out.iter().filter(|r| r.text.contains(" n=")).count();
        if exited && headers >= n || Instant::now() > deadline {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    let mut numbers = Vec::new();
    for r in &out {
        let i = r.text.find(" n=").expect("every record is one log record");
        let rest = &r.text[i + 3..];
        let num: usize = rest[..rest.find(' ').unwrap()].parse().unwrap();
        if num.is_multiple_of(97) {
            assert!(r.lines >= 4, "traceback joined: {:?}", r.text);
            assert!(r.text.ends_with(&format!("ValueError: boom {num}")));
        } else {
            assert_eq!(r.lines, 1);
        }
        numbers.push(num);
    }
    let expected: Vec<usize> = (0..n).collect();
    if numbers != expected {
        let got: HashSet<usize> = numbers.iter().copied().collect();
        let missing: Vec<usize> = expected
            .iter()
            .copied()
            .filter(|n| !got.contains(n))
            .collect();
        let at = numbers.iter().zip(&expected).position(|(a, b)| a != b);
        let evs = log.take();
        if let Some(i) = at {
            for r in &out[i.saturating_sub(4)..(i + 6).min(out.len())] {
                eprintln!(
                    "{} {} {}..{} {:?}",
                    r.file.id,
                    r.file.path.display(),
                    r.offset_start,
                    r.offset_end,
                    &r.text[..60.min(r.text.len())]
                );
            }
            eprintln!("{:#?}", evs);
        }
        panic!(
            "delivered {} records; first mismatch at {:?} ({:?}); missing {} {:?}; counters {:?}; events: {:?}",
            numbers.len(),
            at,
            at.map(|i| &numbers[i.saturating_sub(2)..(i + 3).min(numbers.len())]),
            missing.len(),
            &missing[..missing.len().min(30)],
            t.counters(),
            &evs[..evs.len().min(12)]
        );
    }
    let rotations = t.counters().rotations + t.counters().deletions;
    assert!(rotations >= 10, "the test must rotate: {:?}", t.counters());
}
