//! Append throughput of the SQLite store: how many entries per second one
//! writer stores with the full-text index on.
//!
//! ```text
//! cargo run --release -p faultline-store-sqlite --example append_rate -- \
//!     [--entries N] [--batch N] [--per-call N] [--services N] [--normal] \
//!     [--dir DIR] [--rare N]
//! ```
//!
//! `--batch` is the size of one ingest batch, `--per-call` how many batches
//! one `append` call (one transaction) carries, as the server's group commit
//! would. `--normal` uses `synchronous=NORMAL` instead of `FULL`. With
//! `--dir` the database (`DIR/append_rate.db`) is kept, and `--rare N` spreads
//! N entries containing the word `quokkazephyr` through it, for the
//! `query_time` example.

use faultline_model::{AttrValue, Level, NewEntry};
use faultline_store::Store;
use faultline_store_sqlite::{SqliteOptions, SqliteStore};
use std::time::Instant;

const WORDS: &[&str] = &[
    "request",
    "completed",
    "failed",
    "timeout",
    "upstream",
    "connection",
    "refused",
    "cache",
    "miss",
    "hit",
    "order",
    "payment",
    "user",
    "session",
    "token",
    "expired",
    "retry",
    "queue",
    "worker",
    "job",
    "render",
    "frame",
    "texture",
    "shader",
    "scene",
    "publish",
    "asset",
    "version",
    "database",
    "query",
    "slow",
    "lock",
    "wait",
    "disk",
    "full",
    "memory",
];

fn main() {
    let mut entries = 1_000_000usize;
    let mut batch = 2_000usize;
    let mut per_call = 1usize;
    let mut services = 8usize;
    let mut full = true;
    let mut dir = None;
    let mut rare = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("a number after the flag")
        };
        match a.as_str() {
            "--entries" => entries = num(),
            "--batch" => batch = num(),
            "--per-call" => per_call = num(),
            "--services" => services = num(),
            "--normal" => full = false,
            "--dir" => dir = args.next(),
            "--rare" => rare = num(),
            other => panic!("unknown argument {other}"),
        }
    }

    let tmp = tempfile::tempdir().expect("a temporary directory");
    let path = match &dir {
        Some(d) => std::path::Path::new(d).join("append_rate.db"),
        None => tmp.path().join("append_rate.db"),
    };
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            synchronous_full: full,
            ..SqliteOptions::default()
        },
    )
    .expect("open the store");

    // A pool of distinct entries (~150-byte messages), reused cyclically so
    // generating them is not measured.
    let pool_len = 100_000.min(entries).max(batch);
    let base = 1_700_000_000_000_000i64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pool: Vec<NewEntry> = (0..pool_len)
        .map(|i| {
            let mut message = String::with_capacity(160);
            while message.len() < 140 {
                if !message.is_empty() {
                    message.push(' ');
                }
                match rand() % 4 {
                    0 => message.push_str(&format!("id={:x}", rand() % 1_000_000)),
                    _ => message.push_str(WORDS[(rand() % WORDS.len() as u64) as usize]),
                }
            }
            let level = match rand() % 20 {
                0 => Level::Error,
                1..=3 => Level::Warn,
                4..=9 => Level::Debug,
                _ => Level::Info,
            };
            let mut attributes = faultline_model::Attributes::new();
            if i % 4 == 0 {
                attributes.insert("status".into(), AttrValue::Int(200 + (i % 5) as i64));
                attributes.insert("route".into(), AttrValue::Str("/api/v1/orders".into()));
            }
            NewEntry {
                project: "bench".into(),
                service: format!("svc-{}", i % services.max(1)).into(),
                level,
                message,
                tags: if i % 3 == 0 {
                    vec!["db".into()]
                } else {
                    Vec::new()
                },
                timestamp: base + i as i64 * 1_000,
                received_at: base + i as i64 * 1_000,
                host: Some("host-01".into()),
                attributes,
                trace_id: None,
                span_id: None,
            }
        })
        .collect();
    let avg_msg = pool.iter().map(|e| e.message.len()).sum::<usize>() / pool.len();

    let rss_before = rss_kib("VmRSS");
    let chunks: Vec<&[NewEntry]> = pool.chunks(batch).collect();
    let mut marked = pool[0].clone();
    marked.message.push_str(" quokkazephyr");
    let marked = [marked];
    let stride = entries.checked_div(rare).map_or(usize::MAX, |s| s.max(1));
    let mut next_rare = stride / 2;
    let mut written = 0usize;
    let mut calls = 0usize;
    let started = Instant::now();
    let mut next = 0usize;
    while written < entries {
        let mut call: Vec<&[NewEntry]> = Vec::with_capacity(per_call);
        for _ in 0..per_call {
            let c = chunks[next % chunks.len()];
            next += 1;
            let c = &c[..c
                .len()
                .min(entries - written - call.iter().map(|c| c.len()).sum::<usize>())];
            if c.is_empty() {
                break;
            }
            call.push(c);
        }
        let in_call: usize = call.iter().map(|c| c.len()).sum();
        if written + in_call > next_rare {
            call.push(&marked);
            next_rare = next_rare.saturating_add(stride);
        }
        let ids = store.append(&call).expect("append");
        written += ids.len();
        calls += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "appended {written} entries (message ~{avg_msg} bytes) in {calls} calls of {per_call} x {batch}: \
         {secs:.2} s, {:.0} entries/s, synchronous={}, database {} MiB",
        written as f64 / secs,
        if full { "FULL" } else { "NORMAL" },
        store.size_bytes().expect("size") / (1024 * 1024)
    );
    // The generated entries are in memory before the first append; what
    // grows after that is the store's (Linux only).
    if let (Some(before), Some(after)) = (rss_before, rss_kib("VmRSS")) {
        println!(
            "RSS {} MiB with the generated entries, {} MiB after the appends (+{} MiB)",
            before / 1024,
            after / 1024,
            after.saturating_sub(before) / 1024
        );
    }
}

/// A `/proc/self/status` figure in KiB.
fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
