//! `faultline-bench`: measures the foundation's performance figures against
//! the real `faultline` server binary over loopback, and prints a table (each
//! figure beside its target, PASS/MISS) and one JSON line to paste into notes.
//!
//! ```text
//! cargo build --release -p faultline-cli
//! cargo run --release -p faultline-bench -- [--faultline PATH] [--clients N]
//!     [--duration SECS] [--stored ENTRIES] [--skip-query] [--quick]
//! ```
//!
//! `--quick` is a smoke run (5 s phases, 200,000 stored entries); the full
//! run with defaults takes several minutes, most of it filling the store.
//!
//! # What is measured, in order
//! 1. **Baseline** (before the server starts): plain SQLite inserting the same
//!    kind of rows with a prepared statement, one transaction per 10,000 rows,
//!    WAL, `synchronous=FULL`; once without an index and once with a
//!    contentless FTS5 table on the message. This is the ceiling the pipeline
//!    is compared with.
//! 2. The server is started as `faultline server --listen 127.0.0.1:PORT
//!    --data-dir TMP` (a free port, a temporary directory), tokens are made
//!    with `faultline token create` (ten ingest tokens for `bench/svc0..9`
//!    and an admin token). The server is stopped by its PID when the
//!    benchmark ends, fails or panics.
//! 3. **Sustained ingest**: `--clients` closed-loop HTTP clients post JSON
//!    arrays of 100 realistic entries (see [`generate`]) back to back for
//!    `--duration`; entries/s counts only 202 answers; errors by status;
//!    p50/p99/max of the time to the 202.
//! 4. **Latency at half load**: an open-loop pass at 50 % of the sustained
//!    rate for half the duration; latency from each batch's scheduled send
//!    time to its 202.
//! 5. **Live tail**: a WebSocket on `/api/v1/logs/live?project=bench&service=svc0`
//!    (admin token) during another half-load pass; every 50 ms a batch to
//!    `svc0` carries a unique marker; delay = marker's arrival on the socket
//!    minus its batch's 202 (0 when it arrived first).
//! 6. **Memory**: the server's `VmRSS` every 200 ms; the maximum during the
//!    load phases, and a reading once idle a few seconds after them.
//! 7. **Queries** (unless `--skip-query`): the store is filled to `--stored`
//!    entries at full speed (about 100 carry a rare word), then, with the
//!    admin token, a full-text query for that word (50 times) and a
//!    newest-first page of one service (100 times).
//!
//! The server and the load generator share the machine's cores; the report
//! says how much CPU each used in each phase.

mod baseline;
mod generate;
mod live;
mod load;
mod prom;
mod query;
mod report;
mod server;
mod stats;

use anyhow::{Context, anyhow};
use clap::Parser;
use load::Target;
use prom::Scrape;
use report::{Report, Verdict, fmt_num};
use serde_json::json;
use server::{Meter, RssSampler, Server, Window, rss_kib, rss_parts_kib};
use stats::{Summary, Tally, round3};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Targets of the foundation.
const TARGET_HALF_LOAD_P99_MS: f64 = 50.0;
const TARGET_LIVE_P99_MS: f64 = 50.0;
const TARGET_RSS_LOAD_MB: f64 = 150.0;
const TARGET_RSS_IDLE_MB: f64 = 30.0;
const TARGET_FULLTEXT_P50_MS: f64 = 50.0;
const TARGET_PAGE_P50_MS: f64 = 10.0;

#[derive(Parser, Debug)]
#[command(
    name = "faultline-bench",
    about = "Benchmarks the faultline server binary over loopback and reports its figures against the foundation's targets"
)]
struct Args {
    /// The faultline binary to run.
    #[arg(long, default_value = "target/release/faultline")]
    faultline: PathBuf,
    /// Concurrent HTTP clients in the sustained-ingest phase.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of sustained ingest; the half-load and live-tail phases last
    /// half as long [default: 20, --quick: 5].
    #[arg(long)]
    duration: Option<u64>,
    /// Entries in the store before the query figures are taken
    /// [default: 10000000, --quick: 200000].
    #[arg(long)]
    stored: Option<u64>,
    /// Skip filling the store and the query figures.
    #[arg(long)]
    skip_query: bool,
    /// Smoke run with small numbers.
    #[arg(long)]
    quick: bool,
    /// Entries per batch in the ingest and live phases.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Entries per batch while filling the store.
    #[arg(long, default_value_t = 1000)]
    fill_batch: usize,
    /// Clients filling the store [default: twice --clients].
    #[arg(long)]
    fill_clients: Option<usize>,
    /// Longest the fill may take, in seconds.
    #[arg(long, default_value_t = 3600)]
    max_fill_secs: u64,
    /// Seed of the entry generator.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
}

/// The resolved plan of one run.
struct Plan {
    exe: PathBuf,
    clients: usize,
    batch: usize,
    sustained: Duration,
    half: Duration,
    warmup: Duration,
    idle_wait: Duration,
    stored: u64,
    fill_batch: usize,
    fill_clients: usize,
    max_fill: Duration,
    baseline_rows: u64,
    baseline_limit: Duration,
    query: bool,
    seed: u64,
}

impl Plan {
    fn from_args(args: Args) -> anyhow::Result<Plan> {
        anyhow::ensure!(
            (1..=256).contains(&args.clients),
            "--clients must be 1..=256"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&args.batch) && (1..=10_000).contains(&args.fill_batch),
            "batch sizes must be 1..=10000"
        );
        let secs = args
            .duration
            .unwrap_or(if args.quick { 5 } else { 20 })
            .max(2);
        Ok(Plan {
            exe: find_binary(&args.faultline)?,
            clients: args.clients,
            batch: args.batch,
            sustained: Duration::from_secs(secs),
            half: Duration::from_secs((secs / 2).max(2)),
            warmup: Duration::from_secs(if args.quick { 1 } else { 3 }),
            idle_wait: Duration::from_secs(if args.quick { 3 } else { 5 }),
            stored: args
                .stored
                .unwrap_or(if args.quick { 200_000 } else { 10_000_000 }),
            fill_batch: args.fill_batch,
            fill_clients: args.fill_clients.unwrap_or(args.clients * 2).clamp(1, 256),
            max_fill: Duration::from_secs(args.max_fill_secs.max(1)),
            baseline_rows: if args.quick { 200_000 } else { 2_000_000 },
            baseline_limit: Duration::from_secs(if args.quick { 3 } else { 10 }),
            query: !args.skip_query,
            seed: args.seed,
        })
    }
}

/// The given path, or (for the default relative path) the workspace's
/// `target/release/faultline` when run from elsewhere.
fn find_binary(given: &Path) -> anyhow::Result<PathBuf> {
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(given);
    if given.is_relative() && in_workspace.is_file() {
        return Ok(in_workspace);
    }
    Err(anyhow!(
        "{} not found; build it with `cargo build --release -p faultline-cli` or pass --faultline PATH",
        given.display()
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Mean message and mean JSON entry size of the generated entries, bytes.
fn entry_sizes(seed: u64) -> (f64, f64) {
    let mut generator = generate::Generator::new(seed);
    let n = 1_000;
    let body = generator.batch_json(0, n, None);
    let messages: usize = (0..n)
        .map(|i| generator.entry(i % generate::SERVICES, None).message.len())
        .sum();
    (messages as f64 / n as f64, body.len() as f64 / n as f64)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn progress(text: impl AsRef<str>) {
    eprintln!("[bench] {}", text.as_ref());
}

/// One phase's CPU and RSS, for the notes and the JSON line.
fn phase_json(w: &Window, sampler: &RssSampler) -> serde_json::Value {
    json!({
        "secs": round3((w.end - w.start).as_secs_f64()),
        "server_cpu_cores": round3(w.server_cores),
        "bench_cpu_cores": round3(w.bench_cores),
        "other_cpu_cores": round3(w.other_cores),
        "iowait_cores": round3(w.iowait_cores),
        "server_rss_max_mb": sampler.max_between(w.start, w.end).map(|k| round3(mb(k))),
    })
}

fn cpu_text(w: &Window) -> String {
    format!(
        "{:.2} / {:.2} / {:.2}, {:.2}",
        w.server_cores, w.bench_cores, w.other_cores, w.iowait_cores
    )
}

fn tally_json(t: &Tally, secs: f64) -> serde_json::Value {
    json!({
        "accepted_entries": t.accepted,
        "entries_per_sec": round3(t.accepted as f64 / secs.max(1e-9)),
        "batches_202": t.batches,
        "errors": t.errors_json(),
        "ack_latency": Summary::of(&t.latencies).map(|s| s.json()),
    })
}

fn latency_text(s: &Option<Summary>) -> String {
    s.map_or("no 202 answers".into(), |s| {
        format!(
            "p50 {} / p99 {} / max {} ms",
            fmt_num(s.p50_ms),
            fmt_num(s.p99_ms),
            fmt_num(s.max_ms)
        )
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::from_args(args)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ticks = server::clock_ticks_per_sec();
    let mut report = Report::default();
    let (message_bytes, entry_bytes) = entry_sizes(plan.seed);
    let mut out = serde_json::Map::new();
    out.insert("bench".into(), json!("faultline"));
    out.insert(
        "config".into(),
        json!({
            "clients": plan.clients,
            "batch": plan.batch,
            "duration_secs": plan.sustained.as_secs(),
            "stored_goal": if plan.query { Some(plan.stored) } else { None },
            "machine_cores": cores,
            "binary": plan.exe.display().to_string(),
            "argv": std::env::args().collect::<Vec<_>>(),
            "mean_message_bytes": round3(message_bytes),
            "mean_entry_json_bytes": round3(entry_bytes),
        }),
    );
    progress(format!(
        "{} cores shared by the server and this load generator; binary {}",
        cores,
        plan.exe.display()
    ));

    // 1. Baseline, before the server runs.
    let (plain, fts, commit) = {
        let rows = plan.baseline_rows;
        let limit = plan.baseline_limit;
        let seed = plan.seed;
        let batch = plan.batch;
        progress("baseline: plain SQLite inserts, then SQLite + contentless FTS5");
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let dir = tempfile::Builder::new()
                .prefix("faultline-bench-sqlite-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let plain = baseline::run(dir.path(), false, rows, limit, seed)?;
            let fts = baseline::run(dir.path(), true, rows, limit, seed)?;
            let commit = baseline::commit_latency(dir.path(), batch, 200, limit, seed)?;
            Ok((plain, fts, commit))
        })
        .await
        .context("the baseline panicked")??
    };
    progress(format!(
        "baseline: plain {:.0} rows/s ({} rows), FTS5 {:.0} rows/s ({} rows), one {}-row commit p50 {:.2} / p99 {:.2} ms",
        plain.rows_per_sec(),
        plain.rows,
        fts.rows_per_sec(),
        fts.rows,
        plan.batch,
        commit.p50_ms,
        commit.p99_ms
    ));

    // 2. The server and its tokens.
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let server = Server::start(&plan.exe, &http).await?;
    let base = server.base_url();
    progress(format!("server pid {} on {base}", server.pid));
    let mut tokens = Vec::new();
    for i in 0..generate::SERVICES {
        let service = format!("svc{i}");
        tokens.push(server.create_token(&["--project", "bench", "--service", &service])?);
    }
    let admin = server.create_token(&["--admin"])?;
    let target = Target {
        http: http.clone(),
        url: format!("{base}/api/v1/logs").into(),
        tokens: Arc::from(tokens),
    };
    let sampler = RssSampler::start(
        server.pid,
        Duration::from_millis(200),
        Duration::from_secs(4 * 3600),
    );
    let startup_rss = rss_kib(server.pid);
    let in_flight = plan.clients * 4;
    let mut accepted_total = 0u64;

    // Warm-up (not reported).
    progress(format!("warm-up {} s", plan.warmup.as_secs()));
    let (warm, _) = load::closed_loop(
        &target,
        plan.clients,
        plan.batch,
        plan.warmup,
        plan.seed ^ 1,
    )
    .await;
    accepted_total += warm.accepted;

    // 3. Sustained ingest.
    progress(format!(
        "sustained ingest: {} clients × {} entries/batch for {} s",
        plan.clients,
        plan.batch,
        plan.sustained.as_secs()
    ));
    let before = Scrape::fetch(&http, &base).await;
    let meter = Meter::begin(server.pid, ticks);
    let (sustained, elapsed) =
        load::closed_loop(&target, plan.clients, plan.batch, plan.sustained, plan.seed).await;
    let w_sustained = meter.end();
    let after = Scrape::fetch(&http, &base).await;
    accepted_total += sustained.accepted;
    let rate = sustained.accepted as f64 / elapsed.as_secs_f64();
    let sustained_lat = Summary::of(&sustained.latencies);
    progress(format!(
        "sustained: {rate:.0} entries/s, errors {}, {}",
        sustained.errors_text(),
        latency_text(&sustained_lat)
    ));
    let commit_sustained = after.histogram_since(&before, "faultline_batch_commit_seconds");
    let request_sustained = after.histogram_since(&before, "faultline_ingest_request_seconds");

    // 4. Half load.
    let half_rate = rate * 0.5;
    progress(format!(
        "half load: {half_rate:.0} entries/s open-loop for {} s",
        plan.half.as_secs()
    ));
    let before = Scrape::fetch(&http, &base).await;
    let meter = Meter::begin(server.pid, ticks);
    let half = load::open_loop(
        &target,
        half_rate,
        plan.batch,
        plan.half,
        in_flight,
        plan.seed ^ 2,
    )
    .await;
    let w_half = meter.end();
    let after = Scrape::fetch(&http, &base).await;
    accepted_total += half.tally.accepted;
    let half_lat = Summary::of(&half.tally.latencies);
    progress(format!(
        "half load: {:.0} entries/s achieved, errors {}, {}",
        half.tally.accepted as f64 / half.elapsed.as_secs_f64(),
        half.tally.errors_text(),
        latency_text(&half_lat)
    ));
    let commit_half = after.histogram_since(&before, "faultline_batch_commit_seconds");

    // 5. Live tail under half load.
    progress(format!(
        "live tail: WebSocket on svc0 with {half_rate:.0} entries/s background load for {} s",
        plan.half.as_secs()
    ));
    let ws_url = format!(
        "ws://{}/api/v1/logs/live?project=bench&service=svc0",
        server.addr
    );
    let meter = Meter::begin(server.pid, ticks);
    let live = live::run(
        &target,
        &ws_url,
        &admin,
        half_rate,
        plan.batch,
        plan.half,
        in_flight,
        plan.seed ^ 3,
    )
    .await?;
    let w_live = meter.end();
    accepted_total += live.load.tally.accepted + live.acked as u64 * plan.batch as u64;
    let live_lat = Summary::of(&live.delays);
    progress(format!(
        "live tail: {}/{} markers seen, {} dropped, delay {}",
        live.seen,
        live.acked,
        live.dropped,
        latency_text(&live_lat)
    ));

    // 6. Memory under load and idle.
    let load_rss = [w_sustained, w_half, w_live]
        .iter()
        .filter_map(|w| sampler.max_between(w.start, w.end))
        .max();
    progress(format!("idle {} s", plan.idle_wait.as_secs()));
    tokio::time::sleep(plan.idle_wait).await;
    let idle_rss = rss_kib(server.pid);
    let idle_parts = rss_parts_kib(server.pid);

    // 7. Fill and query.
    let mut query_json = serde_json::Value::Null;
    if plan.query {
        let goal = plan
            .stored
            .saturating_sub(accepted_total)
            .max(query::RARE_COUNT * plan.fill_batch as u64);
        progress(format!(
            "fill: {goal} more entries with {} clients × {} entries/batch (≤ {} s)",
            plan.fill_clients,
            plan.fill_batch,
            plan.max_fill.as_secs()
        ));
        let pid = server.pid;
        let meter = Meter::begin(pid, ticks);
        let fill = query::fill(
            &target,
            plan.fill_clients,
            plan.fill_batch,
            goal,
            plan.max_fill,
            plan.seed ^ 4,
            move |done, elapsed| {
                let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
                let eta = goal.saturating_sub(done) as f64 / rate.max(1.0);
                progress(format!(
                    "fill: {done}/{goal} ({:.0}%), {rate:.0} entries/s, ETA {eta:.0} s, server RSS {} MB",
                    done as f64 * 100.0 / goal as f64,
                    rss_kib(pid).map_or("?".into(), |k| fmt_num(mb(k)))
                ));
            },
        )
        .await;
        let w_fill = meter.end();
        accepted_total += fill.tally.accepted;
        let fill_rate = fill.tally.accepted as f64 / fill.elapsed.as_secs_f64();
        let metrics = Scrape::fetch(&http, &base).await;
        let store_bytes = metrics.get("faultline_store_size_bytes");
        progress(format!(
            "fill: {} entries in {:.0} s ({fill_rate:.0} entries/s), errors {}, {} rare entries",
            fill.tally.accepted,
            fill.elapsed.as_secs_f64(),
            fill.tally.errors_text(),
            fill.rare_stored
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;

        let meter = Meter::begin(pid, ticks);
        let q_url = format!(
            "{base}/api/v1/logs?project=bench&q={}&limit=100",
            query::RARE_WORD
        );
        progress(format!("query: full-text q={} × 50", query::RARE_WORD));
        let fulltext =
            query::time_query(&http, &q_url, &admin, 50, Duration::from_secs(120)).await?;
        let page_url = format!("{base}/api/v1/logs?project=bench&service=svc3&limit=100");
        progress("query: newest-first page of svc3 × 100");
        let page =
            query::time_query(&http, &page_url, &admin, 100, Duration::from_secs(120)).await?;
        let w_query = meter.end();
        progress(format!("idle {} s", plan.idle_wait.as_secs()));
        tokio::time::sleep(plan.idle_wait).await;
        let idle_after_rss = rss_kib(server.pid);
        if let Some((anon, file)) = rss_parts_kib(server.pid) {
            report.note(format!(
                "idle RSS after fill+queries: {} MB anonymous (heap), {} MB file-backed",
                fmt_num(mb(anon)),
                fmt_num(mb(file))
            ));
        }
        let fill_rss = sampler.max_between(w_fill.start, w_query.end);

        report.info(
            "store filled to",
            format!(
                "{accepted_total} entries{}{}",
                store_bytes.map_or(String::new(), |b| format!(", {:.0} MB", b / 1e6)),
                if fill.timed_out { " (TIME LIMIT)" } else { "" },
            ),
        );
        report.info(
            format!("fill rate ({} clients)", plan.fill_clients),
            format!(
                "{} entries/s ({} batches)",
                fmt_num(fill_rate),
                plan.fill_batch
            ),
        );
        report.at_most(
            "RSS max while filling and querying",
            fill_rss.map(mb),
            TARGET_RSS_LOAD_MB,
            "MB",
        );
        report.at_most(
            format!("full-text q= p50 ({} hits)", fulltext.returned),
            Some(fulltext.summary.p50_ms),
            TARGET_FULLTEXT_P50_MS,
            "ms",
        );
        report.info(
            "full-text q= p99 / first (cold)",
            format!(
                "{} / {} ms",
                fmt_num(fulltext.summary.p99_ms),
                fmt_num(fulltext.first.as_secs_f64() * 1e3)
            ),
        );
        report.at_most(
            "newest-first page svc3 p50",
            Some(page.summary.p50_ms),
            TARGET_PAGE_P50_MS,
            "ms",
        );
        report.info(
            "newest-first page p99 / first (cold)",
            format!(
                "{} / {} ms",
                fmt_num(page.summary.p99_ms),
                fmt_num(page.first.as_secs_f64() * 1e3)
            ),
        );
        report.at_most(
            format!("RSS idle {} s after fill+queries", plan.idle_wait.as_secs()),
            idle_after_rss.map(mb),
            TARGET_RSS_IDLE_MB,
            "MB",
        );
        if fulltext.returned as u64 != fill.rare_stored.min(100) {
            report.note(format!(
                "the full-text query returned {} entries; {} carry the word",
                fulltext.returned, fill.rare_stored
            ));
        }
        report.note(format!(
            "CPU in cores (server / load generator / other processes, iowait): fill {}; queries {}",
            cpu_text(&w_fill),
            cpu_text(&w_query)
        ));
        query_json = json!({
            "stored_entries": accepted_total,
            "fill": {
                "entries": fill.tally.accepted,
                "entries_per_sec": round3(fill_rate),
                "errors": fill.tally.errors_json(),
                "timed_out": fill.timed_out,
                "rare_entries": fill.rare_stored,
                "store_size_bytes": store_bytes,
                "phase": phase_json(&w_fill, &sampler),
            },
            "fulltext": {
                "hits": fulltext.returned,
                "latency": fulltext.summary.json(),
                "first_ms": round3(fulltext.first.as_secs_f64() * 1e3),
            },
            "page": {
                "returned": page.returned,
                "latency": page.summary.json(),
                "first_ms": round3(page.first.as_secs_f64() * 1e3),
            },
            "rss_max_mb": fill_rss.map(|k| round3(mb(k))),
            "idle_rss_mb": idle_after_rss.map(|k| round3(mb(k))),
        });
    }
    let phases = json!({
        "sustained": phase_json(&w_sustained, &sampler),
        "half_load": phase_json(&w_half, &sampler),
        "live": phase_json(&w_live, &sampler),
    });
    let server_log = server.log_tail();
    drop(sampler);
    drop(server);

    // The table.
    let ratio = |base: f64| if base > 0.0 { rate / base * 100.0 } else { 0.0 };
    let mut rows_first = Report::default();
    let r = &mut rows_first;
    r.info(
        "baseline: SQLite inserts, no index",
        format!("{} rows/s", fmt_num(plain.rows_per_sec())),
    );
    r.info(
        "baseline: SQLite + contentless FTS5",
        format!("{} rows/s", fmt_num(fts.rows_per_sec())),
    );
    r.info(
        format!("baseline: one {}-row commit with FTS5", plan.batch),
        format!(
            "p50 {} / p99 {} ms",
            fmt_num(commit.p50_ms),
            fmt_num(commit.p99_ms)
        ),
    );
    r.info(
        format!("sustained ingest ({} clients)", plan.clients),
        format!("{} entries/s", fmt_num(rate)),
    );
    r.info(
        "  as share of the baselines",
        format!(
            "{:.0}% of plain, {:.0}% of FTS5",
            ratio(plain.rows_per_sec()),
            ratio(fts.rows_per_sec())
        ),
    );
    r.at_most(
        "sustained ingest errors",
        Some(sustained.error_count() as f64),
        0.0,
        "requests",
    );
    r.info("sustained ack latency", latency_text(&sustained_lat));
    r.info(
        "half load ack p50",
        half_lat.map_or("-".into(), |s| format!("{} ms", fmt_num(s.p50_ms))),
    );
    r.at_most(
        format!("half load ({} entries/s) ack p99", fmt_num(half_rate)),
        half_lat.map(|s| s.p99_ms),
        TARGET_HALF_LOAD_P99_MS,
        "ms",
    );
    r.info(
        "live tail delay p50",
        live_lat.map_or("-".into(), |s| format!("{} ms", fmt_num(s.p50_ms))),
    );
    r.at_most(
        "live tail delay p99",
        live_lat.map(|s| s.p99_ms),
        TARGET_LIVE_P99_MS,
        "ms",
    );
    r.info(
        "live tail markers seen",
        format!(
            "{}/{} ({} before their 202, {} entries dropped)",
            live.seen, live.acked, live.early, live.dropped
        ),
    );
    r.at_most(
        "RSS max under ingest load",
        load_rss.map(mb),
        TARGET_RSS_LOAD_MB,
        "MB",
    );
    r.at_most(
        format!("RSS idle {} s after load", plan.idle_wait.as_secs()),
        idle_rss.map(mb),
        TARGET_RSS_IDLE_MB,
        "MB",
    );
    rows_first.rows.append(&mut report.rows);
    rows_first.notes.append(&mut report.notes);
    let mut report = rows_first;

    report.note(format!(
        "CPU in cores of {cores} (server / load generator / other processes, iowait): {}",
        [
            ("sustained", &w_sustained),
            ("half load", &w_half),
            ("live", &w_live),
        ]
        .iter()
        .map(|(name, w)| format!("{name} {}", cpu_text(w)))
        .collect::<Vec<_>>()
        .join("; ")
    ));
    if let Some(h) = &commit_sustained {
        report.note(format!(
            "group commits during sustained load: {}",
            h.describe()
        ));
    }
    if let Some(h) = &request_sustained {
        report.note(format!(
            "server-side ingest request time during sustained load: {}",
            h.describe()
        ));
    }
    if let Some(h) = &commit_half {
        report.note(format!("group commits at half load: {}", h.describe()));
    }
    if half.late > 0 {
        report.note(format!(
            "half load: {} of {} batches started > 5 ms after their scheduled time (the generator was short of CPU or in-flight slots)",
            half.late,
            half.tally.batches + half.tally.error_count()
        ));
    }
    report.note(format!(
        "entries: mean message {:.0} bytes, {:.0} bytes of JSON per entry, {} services, 5 levels",
        message_bytes,
        entry_bytes,
        generate::SERVICES
    ));
    if let Some((anon, file)) = idle_parts {
        report.note(format!(
            "idle RSS after load: {} MB anonymous (heap), {} MB file-backed",
            fmt_num(mb(anon)),
            fmt_num(mb(file))
        ));
    }
    if let Some(kib) = startup_rss {
        report.note(format!(
            "server RSS right after start: {} MB",
            fmt_num(mb(kib))
        ));
    }

    out.insert(
        "baseline".into(),
        json!({
            "plain_rows_per_sec": round3(plain.rows_per_sec()),
            "plain_rows": plain.rows,
            "fts5_rows_per_sec": round3(fts.rows_per_sec()),
            "fts5_rows": fts.rows,
            "commit_latency": commit.json(),
        }),
    );
    let mut sustained_json = tally_json(&sustained, elapsed.as_secs_f64());
    sustained_json["share_of_plain"] = json!(round3(ratio(plain.rows_per_sec()) / 100.0));
    sustained_json["share_of_fts5"] = json!(round3(ratio(fts.rows_per_sec()) / 100.0));
    out.insert("sustained".into(), sustained_json);
    let mut half_json = tally_json(&half.tally, half.elapsed.as_secs_f64());
    half_json["target_entries_per_sec"] = json!(round3(half_rate));
    half_json["late_batches"] = json!(half.late);
    out.insert("half_load".into(), half_json);
    out.insert(
        "live".into(),
        json!({
            "markers_acked": live.acked,
            "markers_seen": live.seen,
            "markers_early": live.early,
            "entries_received": live.entries,
            "dropped": live.dropped,
            "delay": live_lat.map(|s| s.json()),
            "load": tally_json(&live.load.tally, live.load.elapsed.as_secs_f64()),
        }),
    );
    out.insert(
        "rss".into(),
        json!({
            "startup_mb": startup_rss.map(|k| round3(mb(k))),
            "load_max_mb": load_rss.map(|k| round3(mb(k))),
            "idle_mb": idle_rss.map(|k| round3(mb(k))),
        }),
    );
    out.insert("query".into(), query_json);
    out.insert("phases".into(), phases);
    out.insert(
        "verdicts".into(),
        json!({"pass": report.count(Verdict::Pass), "miss": report.count(Verdict::Miss)}),
    );

    println!();
    println!("{}", report.render());
    println!();
    println!("{}", serde_json::Value::Object(out));
    if sustained.error_count() > 0 {
        eprintln!("last lines of the server log:\n{server_log}");
    }
    Ok(())
}
