//! Throughput of the grouper on the Loghub messages, and a memory-bounded
//! run over a 10-million-line synthetic stream.
//!
//! `cargo bench -p faultline-grouping --bench throughput`. Plain
//! `std::time` measurement; the Loghub samples are read from
//! `../shared/loghub` (or `$FAULTLINE_LOGHUB`) and the Loghub part is
//! skipped when they are absent.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use faultline_grouping::{Grouper, GrouperConfig, MinerConfig};

fn loghub_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("FAULTLINE_LOGHUB") {
        return Some(PathBuf::from(d));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        "../../../shared/loghub",
        "../../shared/loghub",
        "/work/shared/loghub",
    ]
    .iter()
    .map(|p| here.join(p))
    .find(|p| p.is_dir())
}

/// The `Content` column of each `*_structured_corrected.csv` (a minimal CSV
/// reader: quoted fields with doubled quotes).
fn loghub_messages(dir: &Path) -> Vec<Vec<String>> {
    let mut sets = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !p.to_string_lossy().ends_with("_structured_corrected.csv") {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read csv");
            let mut rows = parse_csv(&text).into_iter();
            let header = rows.next().unwrap_or_default();
            let Some(col) = header.iter().position(|h| h == "Content") else {
                continue;
            };
            sets.push(rows.filter_map(|r| r.get(col).cloned()).collect());
        }
    }
    sets
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                '\r' => {}
                c => field.push(c),
            }
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn bench_loghub() {
    let Some(dir) = loghub_dir() else {
        println!("loghub: skipped (no ../shared/loghub; set FAULTLINE_LOGHUB)");
        return;
    };
    let sets = loghub_messages(&dir);
    if sets.is_empty() {
        println!(
            "loghub: skipped (no *_structured_corrected.csv under {})",
            dir.display()
        );
        return;
    }
    let total: usize = sets.iter().map(Vec::len).sum();
    // One grouper per dataset, as the server has one per project; repeat
    // the messages so the measurement lasts long enough.
    let reps = 50;
    let mut best = f64::MAX;
    for _round in 0..3 {
        let t = Instant::now();
        for set in &sets {
            let mut g = Grouper::new(GrouperConfig::default());
            for _ in 0..reps {
                for m in set {
                    black_box(g.group_ref(m).id);
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let lines = (total * reps) as f64;
    println!(
        "loghub: {} messages x {reps}: {:.0} lines/s ({:.0} ns/line, best of 3)",
        total,
        lines / best,
        best * 1e9 / lines
    );
    // First pass only (cold: every template is new), for reference.
    let t = Instant::now();
    for set in &sets {
        let mut g = Grouper::new(GrouperConfig::default());
        for m in set {
            black_box(g.group_ref(m).id);
        }
    }
    let cold = t.elapsed().as_secs_f64();
    println!(
        "loghub: cold single pass: {:.0} lines/s",
        total as f64 / cold
    );
}

/// A deterministic generator of log lines: a few hundred event shapes with
/// numbers, ids, ips and user names, plus a stream of never-repeating
/// shapes (unique words) that forces eviction.
const SERVICES: [&str; 20] = [
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "gateway",
    "inventory",
    "ledger",
    "mailer",
    "orders",
    "payments",
    "profile",
    "search",
    "session",
    "shipping",
    "stock",
    "tax",
    "upload",
    "users",
    "webhooks",
];
const EVENTS: [&str; 20] = [
    "started",
    "stopped",
    "failed",
    "retried",
    "queued",
    "accepted",
    "rejected",
    "expired",
    "created",
    "deleted",
    "updated",
    "locked",
    "unlocked",
    "timeout",
    "throttled",
    "resumed",
    "paused",
    "flushed",
    "opened",
    "closed",
];

struct Synth {
    state: u64,
}

impl Synth {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn line(&mut self, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let r = self.next();
        let shape = r % 400;
        let users = [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
        ];
        let user = users[(r >> 20) as usize % users.len()];
        let n = (r >> 24) % 100_000;
        match r % 1000 {
            // 1% of lines are new shapes: a unique first word (letters
            // only, so no mask hides it) forces the template cap.
            0..=9 => {
                push_word(out, self.next());
                out.push_str(" reported an unexpected condition in module ");
                push_word(out, self.next());
                let _ = write!(out, " after {n} retries");
            }
            _ => {
                let _ = write!(
                    out,
                    "{} handler {} user {user} took {n}ms from 10.0.{}.{}:{} req={:08x}",
                    SERVICES[shape as usize % SERVICES.len()],
                    EVENTS[(shape / 20) as usize % EVENTS.len()],
                    (r >> 32) % 256,
                    (r >> 40) % 256,
                    1024 + (r >> 48) % 60000,
                    r >> 16
                );
            }
        }
    }
}

/// A pronounceable-enough word from the bits of `v` (letters only).
fn push_word(out: &mut String, mut v: u64) {
    for _ in 0..8 {
        out.push((b'a' + (v % 26) as u8) as char);
        v /= 26;
    }
}

fn bench_stream() {
    let lines = 10_000_000u64;
    let cfg = GrouperConfig {
        miner: MinerConfig {
            max_templates: 20_000,
            ..MinerConfig::default()
        },
    };
    let mut g = Grouper::new(cfg);
    let mut s = Synth {
        state: 0x9e37_79b9_7f4a_7c15,
    };
    let mut buf = String::new();
    let mut peak_templates = 0;
    let mut peak_mem = 0;
    let t = Instant::now();
    for i in 0..lines {
        s.line(&mut buf);
        black_box(g.group_ref(&buf).id);
        if i % 100_000 == 0 {
            peak_templates = peak_templates.max(g.template_count());
            peak_mem = peak_mem.max(g.memory_estimate());
        }
    }
    let secs = t.elapsed().as_secs_f64();
    peak_templates = peak_templates.max(g.template_count());
    peak_mem = peak_mem.max(g.memory_estimate());
    println!(
        "stream: {lines} synthetic lines in {secs:.1}s ({:.0} lines/s); templates now {}, peak {} (cap {}); peak template memory ~{:.1} MiB",
        lines as f64 / secs,
        g.template_count(),
        peak_templates,
        g.config().miner.max_templates,
        peak_mem as f64 / (1024.0 * 1024.0)
    );
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    bench_loghub();
    if quick {
        println!("stream: skipped (run with `cargo bench`)");
    } else {
        bench_stream();
    }
}
