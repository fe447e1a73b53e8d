//! `faultline-bench`: measures the foundation's performance figures against
//! the real `faultline` server binary over loopback, and prints a table (each
//! figure beside its target, PASS/MISS) and one JSON line to paste into notes.
//!
//! ```text
//! cargo build --release -p faultline-cli
//! cargo run --release -p faultline-bench -- [--faultline PATH] [--clients N]
//!     [--duration SECS] [--stored ENTRIES] [--skip-query] [--quick]
//!     [--ui-only | --skip-ui] [--issues N] [--ui-samples N]
//! ```
//!
//! `--quick` is a smoke run (5 s phases, 200,000 stored entries, 10,000
//! issues); the full run with defaults takes 10–15 minutes, most of it
//! filling the store. `--ui-only` skips the baseline and the ingest phases
//! (steps 1 and 3–6) and measures the web UI pages on the same filled store:
//!
//! ```text
//! cargo run --release -p faultline-bench -- --ui-only      # 10 M entries, 100,000 issues
//! ```
//!
//! # What is measured, in order
//! 1. **Baseline** (before the server starts): plain SQLite inserting the same
//!    kind of rows with a prepared statement, one transaction per 10,000 rows,
//!    WAL, `synchronous=FULL`; once without an index and once with a
//!    contentless FTS5 table on the message. This is the ceiling the pipeline
//!    is compared with.
//! 2. `--issues` issues (100,000) are written into the `bench` project of
//!    the new data directory through the store itself (see [`seed`]), then
//!    the server is started as `faultline server --listen 127.0.0.1:PORT
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
//!    entries at full speed (`--fill-clients` clients, `--fill-batch` entries
//!    per request, about 100 entries carry a rare word), then, with the
//!    admin token, a full-text query for that word (50 times) and a
//!    newest-first page of one service (100 times); memory is sampled
//!    throughout and once more when idle. The fill stops early when the
//!    disk has less than `--min-free-gb` left.
//! 8. **Web UI pages** (unless `--skip-ui`; see [`ui`]): once the server is
//!    quiet (its issue processor caught up with the fill), a user is made
//!    through first-run setup (`POST /api/v1/setup` with the admin token)
//!    and every page is loaded as a browser loads it, with the session
//!    cookie: the HTML shell and the API requests its module makes, each
//!    timed to the last byte of its body. Pages: logs (plain, one service,
//!    errors, the rare word) over the filled store; issues (each sort, a
//!    search, any status, a service, a level, each sort on a deep page)
//!    over the 100,000 issues; the dashboard (its five API requests at once,
//!    as the browser sends them). `--ui-samples` loads of each page (100)
//!    after a cold one, round robin; p50 and p99 per page and per request;
//!    a page passes when its p99 is at most 100 ms (the web UI's target).
//!    Issues are written before the server starts because the store has no
//!    API to write 100,000 issues quickly, and in the same data directory
//!    (not a second server) so the issue pages are measured on the store
//!    the log pages use, 10 M entries beside the issues.
//!
//! The server, the load generator and anything else running share the
//! machine's cores; the notes under the table say how much CPU each used in
//! each phase, and what the server's own metrics say about its group commits.
//! `--server-env KEY=VALUE` runs the server with extra environment (a config
//! file through `FAULTLINE_CONFIG`, allocator settings) for experiments.

mod baseline;
mod figures;
mod generate;
mod http1;
mod live;
mod load;
mod prom;
mod query;
mod report;
mod run;
mod seed;
mod server;
mod stats;
mod ui;

use anyhow::anyhow;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "faultline-bench",
    about = "Benchmarks the faultline server binary over loopback and reports its figures against the foundation's targets"
)]
struct Args {
    /// The faultline binary to run.
    #[arg(long, default_value = "target/release/faultline")]
    faultline: PathBuf,
    /// Concurrent HTTP clients in the sustained-ingest phase. With 8, each
    /// waiting for its 202 before the next batch, the server sat at 1.3-1.5
    /// of the 2 cores (latency-bound, not at capacity); 32 keep it busy.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of sustained ingest; the half-load and live-tail phases last
    /// half as long [default: 20, --quick: 5].
    #[arg(long)]
    duration: Option<u64>,
    /// Entries in the store before the query figures are taken
    /// [default: 10000000, --quick: 200000].
    #[arg(long)]
    stored: Option<u64>,
    /// Skip filling the store, the query figures and the web UI pages.
    #[arg(long)]
    skip_query: bool,
    /// Skip the baseline and the ingest phases: seed the issues, fill the
    /// store, then the query figures and the web UI pages.
    #[arg(long, conflicts_with_all = ["skip_query", "skip_ui"])]
    ui_only: bool,
    /// Skip the web UI pages (and seeding their issues).
    #[arg(long)]
    skip_ui: bool,
    /// Issues written into the `bench` project before the server starts,
    /// for the web UI pages [default: 100000, --quick: 10000].
    #[arg(long)]
    issues: Option<u64>,
    /// Loads of each web UI page after its first (cold) one
    /// [default: 100, --quick: 10]. Percentiles are nearest-rank: with 100
    /// loads p99 is the second slowest, with fewer it is the slowest.
    #[arg(long)]
    ui_samples: Option<usize>,
    /// Longest the web UI page loads may take, in seconds.
    #[arg(long, default_value_t = 1800)]
    max_ui_secs: u64,
    /// Keep the server's data directory after the run (its path is
    /// printed), e.g. to look at query plans.
    #[arg(long)]
    keep_data: bool,
    /// Smoke run with small numbers.
    #[arg(long)]
    quick: bool,
    /// Entries per batch in the ingest and live phases.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Entries per batch while filling the store.
    #[arg(long, default_value_t = 1000)]
    fill_batch: usize,
    /// Clients filling the store.
    #[arg(long, default_value_t = 16)]
    fill_clients: usize,
    /// Longest the fill may take, in seconds.
    #[arg(long, default_value_t = 3600)]
    max_fill_secs: u64,
    /// The fill stops early when the disk of the data directory has less
    /// than this many GB free (the machine's disk is shared).
    #[arg(long, default_value_t = 2.0)]
    min_free_gb: f64,
    /// Seed of the entry generator.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Extra environment variable for the server process, KEY=VALUE
    /// (repeatable; for experiments such as MALLOC_ARENA_MAX=2).
    #[arg(long = "server-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
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
    min_free_bytes: u64,
    baseline_rows: u64,
    baseline_limit: Duration,
    /// Baseline and ingest phases.
    ingest: bool,
    query: bool,
    /// Seed issues and measure the web UI pages (after the fill).
    ui: bool,
    issues: u64,
    ui_samples: usize,
    ui_limit: Duration,
    keep_data: bool,
    seed: u64,
    server_env: Vec<(String, String)>,
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
            fill_clients: args.fill_clients.clamp(1, 256),
            max_fill: Duration::from_secs(args.max_fill_secs.max(1)),
            min_free_bytes: (args.min_free_gb.max(0.0) * 1e9) as u64,
            baseline_rows: if args.quick { 200_000 } else { 2_000_000 },
            baseline_limit: Duration::from_secs(if args.quick { 3 } else { 10 }),
            ingest: !args.ui_only,
            query: !args.skip_query,
            ui: !args.skip_query && !args.skip_ui,
            issues: args
                .issues
                .unwrap_or(if args.quick { 10_000 } else { 100_000 })
                .max(1),
            ui_samples: args
                .ui_samples
                .unwrap_or(if args.quick { 10 } else { 100 })
                .max(1),
            ui_limit: Duration::from_secs(args.max_ui_secs.max(1)),
            keep_data: args.keep_data,
            seed: args.seed,
            server_env: args.server_env,
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
    // HTTP clients use rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
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

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::from_args(args)?;
    let results = run::measure(&plan).await?;
    let report = figures::table(&plan, &results);
    let line = figures::json(&plan, &results, &report);
    println!();
    println!("{}", report.render());
    println!();
    println!("{line}");
    if results
        .ingest
        .as_ref()
        .is_some_and(|i| i.sustained.error_count() > 0)
    {
        eprintln!("last lines of the server log:\n{}", results.server_log);
    }
    Ok(())
}
