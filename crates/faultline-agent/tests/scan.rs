//! The catch-up scan filter end to end: the same log read by the real tail
//! and incident threads with the filter (the default) and line by line
//! gives the same incidents — message, context before and after, offsets,
//! versions, attachment — and the same checkpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_agent::config::{AgentConfig, Overrides, RawConfig};
use faultline_agent::environment::StaticEnv;
use faultline_agent::pipeline::{Shared, start_source};
use faultline_agent::spool::Spool;

/// A small deterministic generator (no dependency on a seed crate).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// About `bytes` of ShotGrid log: errors with tracebacks of varying length
/// every few dozen lines (so read boundaries fall in and around them),
/// version announcements, CRLF lines, blank and orphan lines, syslog-like
/// lines; the last line has no newline.
fn log(seed: u64, bytes: usize) -> String {
    let mut r = Rng(seed);
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < bytes {
        i += 1;
        let eol = if r.below(7) == 0 { "\r\n" } else { "\n" };
        let ts = format!(
            "2026-11-22 06:{:02}:{:02},{:03}",
            i / 3600 % 60,
            i / 60 % 60,
            i % 1000
        );
        match r.below(100) {
            0..=2 => {
                let _ = write!(
                    s,
                    "{ts} [4242 ERROR sgtk.core.engine] failed to open shot sh{i:06}{eol}"
                );
                let frames = r.below(40);
                if frames > 0 {
                    let _ = write!(s, "Traceback (most recent call last):{eol}");
                    for f in 0..frames {
                        let _ = write!(
                            s,
                            "  File \"/opt/tk/app{f}.py\", line {f}, in load{eol}    step_{f}(){eol}"
                        );
                    }
                    let _ = write!(s, "ValueError: bad shot sh{i:06}{eol}");
                }
            }
            3 => {
                let _ = write!(s, "{ts} [4242 CRITICAL sgtk.core] disk full at {i}{eol}");
            }
            4 => {
                let _ = write!(
                    s,
                    "{ts} [4242 INFO sgtk.core] Running tk-core v0.{}.{}{eol}",
                    i % 30,
                    i % 7
                );
            }
            5 => {
                let _ = write!(
                    s,
                    "{ts} [4242 INFO sgtk.env] tk-maya version: v0.{}.1{eol}",
                    i % 20
                );
            }
            6 => s.push_str(eol),
            7 => {
                let _ = write!(s, "    orphan continuation {i}{eol}");
            }
            8 => {
                let _ = write!(s, "<11>Jan  2 03:04:05 host app: something {i}{eol}");
            }
            _ => {
                let _ = write!(
                    s,
                    "{ts} [4242 DEBUG sgtk.core.log] loaded app tk-multi-loader2 item {i} from /projects/show/seq/sh{:04}/comp{eol}",
                    i % 9999
                );
            }
        }
    }
    let _ = write!(
        s,
        "2026-11-22 07:00:00,000 [4242 ERROR sgtk.core] the very last one"
    );
    s
}

/// Runs one source over `file` to the end; returns the incidents spooled
/// (keyed by offset, without what depends on the run: detection time,
/// stream id, machine uptime) and the acknowledged offset.
fn run(file: &Path, state: &Path, scan_filter: bool) -> (BTreeMap<u64, serde_json::Value>, u64) {
    let text = format!(
        r#"server = "http://127.0.0.1:9"
token = "test"
state_dir = {state:?}
[throttle]
window = "0s"
[context]
after_wait = "3s"
[attachment]
max_bytes = 4096
[[sources]]
name = "scan"
paths = [{file:?}]
format = "shotgrid"
start_at = "beginning"
"#,
        state = state.to_string_lossy(),
        file = file.to_string_lossy(),
    );
    let raw: RawConfig = toml::from_str(&text).unwrap();
    let mut cfg = AgentConfig::build(raw, Overrides::default(), &|_: &str| None).unwrap();
    cfg.scan_filter = scan_filter;
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(state).unwrap();
    let spool = Spool::open(&state.join("spool"), &state.join("dead-letter"), 1 << 30).unwrap();
    let shared = Shared::new(spool);
    let env = Arc::new(StaticEnv::collect("tester", &BTreeMap::new()));
    let (mut worker, builder) = start_source(
        cfg.sources[0].clone(),
        Arc::clone(&cfg),
        env,
        Arc::clone(&shared),
    )
    .unwrap();
    let b = std::thread::spawn(move || builder.run());
    let size = std::fs::metadata(file).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        worker.step(Duration::from_millis(50));
        let done = worker.files().iter().all(|f| f.emitted >= size);
        if done && !worker.has_pending() {
            break;
        }
        assert!(Instant::now() < deadline, "source did not finish");
    }
    let scanned = worker.tail_counters().bytes_skipped;
    assert_eq!(scanned > 0, scan_filter, "skipped {scanned} bytes");
    // Let the incident thread spool everything and the acks come back.
    let mut acked = 0;
    while Instant::now() < deadline {
        worker.step(Duration::from_millis(20));
        acked = worker.files()[0].acked;
        if acked >= size {
            break;
        }
    }
    drop(worker);
    b.join().unwrap();
    let mut incidents = BTreeMap::new();
    for e in std::fs::read_dir(state.join("spool")).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".incident.json") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let mut body = v["body"].clone();
        let offset = body["source"]["offset"].as_u64().unwrap();
        let o = body.as_object_mut().unwrap();
        o.remove("timestamp");
        o.remove("idempotency_key");
        if let Some(env) = o.get_mut("environment").and_then(|e| e.as_object_mut()) {
            env.remove("uptime_secs");
        }
        assert!(
            incidents.insert(offset, body).is_none(),
            "two incidents at {offset}"
        );
    }
    (incidents, acked)
}

#[test]
fn catch_up_with_the_filter_gives_the_same_incidents_as_line_by_line() {
    for (seed, kib) in [(7u64, 2560usize), (0x5eed, 1536)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tk-maya.log");
        std::fs::write(&file, log(seed, kib << 10)).unwrap();
        let (fast, fast_acked) = run(&file, &dir.path().join("fast"), true);
        let (slow, slow_acked) = run(&file, &dir.path().join("slow"), false);
        assert!(slow.len() > 200, "{} incidents", slow.len());
        assert_eq!(fast.len(), slow.len());
        for (offset, s) in &slow {
            assert_eq!(fast.get(offset), Some(s), "incident at {offset}");
        }
        // Some incidents really have a long context and versions.
        assert!(
            slow.values()
                .any(|i| i["context"]["before"].as_array().unwrap().len() == 20)
        );
        assert!(
            slow.values()
                .any(|i| i["context"]["after"].as_array().unwrap().len() == 10)
        );
        assert!(
            slow.values()
                .any(|i| i["environment"]["tk_core_version"].is_string())
        );
        assert_eq!(fast_acked, slow_acked);
        assert_eq!(slow_acked, std::fs::metadata(&file).unwrap().len());
    }
}
