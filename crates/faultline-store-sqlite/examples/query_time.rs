//! Query latency of the SQLite store on an existing database, such as one
//! filled by the `append_rate` example with `--dir` and `--rare`:
//!
//! ```text
//! cargo run --release -p faultline-store-sqlite --example query_time -- DIR/append_rate.db
//! ```
//!
//! Times, through the `Store` trait, a full-text query for a rare word in a
//! project and the newest page of one service (100 entries each), like the
//! benchmark's query phase, plus a few other shapes.

use faultline_model::{Level, LogFilter};
use faultline_store::{LogQuery, Paging, Store};
use faultline_store_sqlite::{SqliteOptions, SqliteStore};
use std::time::{Duration, Instant};

fn time(store: &SqliteStore, name: &str, filter: LogFilter, runs: usize) {
    let query = LogQuery {
        filter,
        limit: 100,
        paging: Paging::Cursor(None),
    };
    let cold = Instant::now();
    let first = store.query_logs(&query).expect("query");
    let cold = cold.elapsed();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            store.query_logs(&query).expect("query");
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name:40} {:4} rows  cold {:8.2} ms  p50 {:8.2} ms  p99 {:8.2} ms",
        first.entries.len(),
        cold.as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() * 99 / 100].as_secs_f64() * 1e3,
    );
}

fn main() {
    let path = std::env::args().nth(1).expect("the database file");
    let store = SqliteStore::open(path.as_ref(), SqliteOptions::default()).expect("open");
    let project = || LogFilter {
        project: Some("bench".into()),
        ..LogFilter::default()
    };
    time(
        &store,
        "q=quokkazephyr in project",
        LogFilter {
            q: Some("quokkazephyr".into()),
            ..project()
        },
        50,
    );
    time(
        &store,
        "service page",
        LogFilter {
            services: vec!["svc-3".into()],
            ..project()
        },
        100,
    );
    time(&store, "project page", project(), 100);
    time(&store, "all, newest page", LogFilter::default(), 100);
    time(
        &store,
        "errors of a service",
        LogFilter {
            services: vec!["svc-3".into()],
            min_level: Some(Level::Error),
            ..project()
        },
        20,
    );
    time(
        &store,
        "tag db of a service",
        LogFilter {
            services: vec!["svc-3".into()],
            tag: Some("db".into()),
            ..project()
        },
        20,
    );
    time(
        &store,
        "q=id phrase (user_id=42-ish)",
        LogFilter {
            q: Some("id=5a3f".into()),
            ..project()
        },
        10,
    );
    time(
        &store,
        "q=common word (timeout)",
        LogFilter {
            q: Some("timeout".into()),
            ..project()
        },
        20,
    );
    time(
        &store,
        "q=two common words",
        LogFilter {
            q: Some("timeout queue".into()),
            ..project()
        },
        20,
    );
    time(
        &store,
        "q=common word, errors",
        LogFilter {
            q: Some("timeout".into()),
            min_level: Some(Level::Error),
            ..project()
        },
        20,
    );
    time(
        &store,
        "q=common word, one service",
        LogFilter {
            q: Some("timeout".into()),
            services: vec!["svc-3".into()],
            ..project()
        },
        20,
    );
    println!("size {} MiB", store.size_bytes().expect("size") / (1 << 20));
}
