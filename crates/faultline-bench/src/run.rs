//! The measuring sequence: baseline, server start, warm-up, sustained ingest,
//! half load, live tail, idle, fill and queries. Progress goes to stderr;
//! the figures are returned as [`Results`].

use crate::Plan;
use crate::baseline::{self, Baseline};
use crate::generate::{self, EntryPool, Generator};
use crate::live::{self, LiveResult};
use crate::load::{self, Paced, Target};
use crate::prom::{HistogramDelta, Scrape};
use crate::query::{self, Fill, QueryTimes};
use crate::report::fmt_num;
use crate::seed::{self, Seeded};
use crate::server::{self, Meter, RssParts, RssSampler, Server, Window, rss_kib, rss_parts};
use crate::stats::{Summary, Tally};
use crate::ui::{self, PageTimes};
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

/// Everything one run measured.
pub struct Results {
    pub cores: usize,
    pub message_bytes: f64,
    pub entry_json_bytes: f64,
    pub startup_rss: Option<u64>,
    /// The baseline and ingest phases (not with `--ui-only`).
    pub ingest: Option<Ingest>,
    pub query: Option<QueryResults>,
    pub ui: Option<UiResults>,
    /// The end of the server's stderr.
    pub server_log: String,
}

/// The baseline and the ingest phases.
pub struct Ingest {
    pub plain: Baseline,
    pub fts: Baseline,
    /// One `batch`-row commit with FTS5.
    pub commit: Summary,
    pub sustained: Tally,
    pub sustained_secs: f64,
    pub w_sustained: Window,
    pub commits_sustained: Option<HistogramDelta>,
    pub requests_sustained: Option<HistogramDelta>,
    pub half_rate: f64,
    pub half: Paced,
    pub w_half: Window,
    pub commits_half: Option<HistogramDelta>,
    pub live: LiveResult,
    pub w_live: Window,
    /// Idle RSS a few seconds after the ingest phases, KiB.
    pub idle_rss: Option<u64>,
    /// What it is made of.
    pub idle_parts: Option<RssParts>,
}

impl Ingest {
    /// Entries/s of the sustained phase (202s only).
    pub fn sustained_rate(&self) -> f64 {
        self.sustained.accepted as f64 / self.sustained_secs.max(1e-9)
    }

    /// Largest RSS during the ingest phases, KiB.
    pub fn load_rss(&self) -> Option<u64> {
        [&self.w_sustained, &self.w_half, &self.w_live]
            .iter()
            .filter_map(|w| w.rss_max_kib)
            .max()
    }
}

/// The web UI's pages (see [`crate::ui`]).
pub struct UiResults {
    pub seeded: Seeded,
    /// `POST /api/v1/setup` (creates the user, Argon2id hash included).
    pub login: Duration,
    /// How long the server took to go quiet after the fill (its issue
    /// processor catching up), and whether it did.
    pub quiet_after: Duration,
    pub quiet: bool,
    pub pages: Vec<PageTimes>,
    pub w_ui: Window,
}

/// The store filled and queried.
pub struct QueryResults {
    /// Entries acknowledged over the whole run.
    pub stored: u64,
    pub fill: Fill,
    pub w_fill: Window,
    pub store_bytes: Option<f64>,
    pub fulltext: QueryTimes,
    pub page: QueryTimes,
    pub w_query: Window,
    pub idle_rss: Option<u64>,
    pub idle_parts: Option<RssParts>,
}

impl QueryResults {
    pub fn fill_rate(&self) -> f64 {
        self.fill.tally.accepted as f64 / self.fill.elapsed.as_secs_f64().max(1e-9)
    }

    /// Largest RSS while filling and querying, KiB.
    pub fn rss_max(&self) -> Option<u64> {
        self.w_fill.rss_max_kib.max(self.w_query.rss_max_kib)
    }
}

pub fn progress(text: impl AsRef<str>) {
    eprintln!("[bench] {}", text.as_ref());
}

pub fn latency_text(s: &Option<Summary>) -> String {
    s.map_or("no 202 answers".into(), |s| {
        format!(
            "p50 {} / p99 {} / max {} ms",
            fmt_num(s.p50_ms),
            fmt_num(s.p99_ms),
            fmt_num(s.max_ms)
        )
    })
}

pub fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Mean message and mean JSON entry size of the generated entries, bytes.
fn entry_sizes(seed: u64) -> (f64, f64) {
    let mut generator = Generator::new(seed);
    let n = 1_000;
    let body = generator.batch_json(0, n, None);
    let messages: usize = (0..n)
        .map(|i| generator.entry(i % generate::SERVICES, None).message.len())
        .sum();
    (messages as f64 / n as f64, body.len() as f64 / n as f64)
}

/// Runs the whole sequence.
pub async fn measure(plan: &Plan) -> anyhow::Result<Results> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ticks = server::clock_ticks_per_sec();
    let (message_bytes, entry_json_bytes) = entry_sizes(plan.seed);
    progress(format!(
        "{cores} cores shared by the server, this load generator and anything else running; binary {}",
        plan.exe.display()
    ));

    // 1. Baseline, before the server runs.
    let baseline = if plan.ingest {
        let (plain, fts, commit) = run_baseline(plan).await?;
        progress(format!(
            "baseline: plain {:.0} rows/s ({} rows), FTS5 {:.0} rows/s ({} rows), one {}-row commit {}",
            plain.rows_per_sec(),
            plain.rows,
            fts.rows_per_sec(),
            fts.rows,
            plan.batch,
            latency_text(&Some(commit))
        ));
        Some((plain, fts, commit))
    } else {
        None
    };

    // 2. The issues of the UI phase, written before the server starts;
    //    then the server and its tokens.
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let mut seeded = None;
    let server = Server::start(
        &plan.exe,
        &plan.server_env,
        &http,
        plan.keep_data,
        |data_dir| {
            if plan.ui {
                let db = data_dir.join("faultline.db");
                progress(format!(
                    "seed: {} issues in project {} ({})",
                    plan.issues,
                    seed::PROJECT,
                    db.display()
                ));
                let s = seed::seed(&db, plan.issues, faultline_model::now_micros(), plan.seed)?;
                progress(format!(
                    "seed: {} issues, {} events in {:.1} s ({} resolved, {} ignored, {} regressed, {} seen in the last 48 h, {} with \"{}\")",
                    s.issues,
                    s.events,
                    s.elapsed.as_secs_f64(),
                    s.resolved,
                    s.ignored,
                    s.regressed,
                    s.recent_48h,
                    s.with_word,
                    seed::SEARCH_WORD
                ));
                seeded = Some(s);
            }
            Ok(())
        },
    )
    .await?;
    let base = server.base_url();
    let pid = server.pid;
    progress(format!("server pid {pid} on {base}"));
    if plan.keep_data {
        progress(format!(
            "the data directory {} is kept after the run",
            server.data_dir().display()
        ));
    }
    let mut tokens = Vec::new();
    for i in 0..generate::SERVICES {
        let service = format!("svc{i}");
        tokens.push(server.create_token(&["--project", "bench", "--service", &service])?);
    }
    let admin = server.create_token(&["--admin"])?;
    let target = Target {
        http: http.clone(),
        url: reqwest::Url::parse(&format!("{base}/api/v1/logs"))?,
        tokens: Arc::from(tokens),
    };
    let sampler = RssSampler::start(
        pid,
        Duration::from_millis(200),
        Duration::from_secs(4 * 3600),
    );
    let startup_rss = rss_kib(pid);

    // 3–6. Ingest phases.
    let mut stored = 0;
    let ingest = match baseline {
        Some(baseline) => {
            let (i, n) = ingest_phases(
                plan, baseline, &target, &http, &server, &admin, &sampler, ticks,
            )
            .await?;
            stored = n;
            Some(i)
        }
        None => None,
    };

    // 7. Fill and query.
    let query = if plan.query {
        let q = fill_and_query(
            plan,
            &target,
            server.data_dir(),
            &http,
            &base,
            &admin,
            &sampler,
            stored,
            ticks,
            pid,
        )
        .await?;
        Some(q)
    } else {
        None
    };

    // 8. The web UI's pages.
    let ui = match seeded {
        Some(seeded) if plan.query => {
            Some(ui_phase(plan, &base, &admin, &sampler, ticks, pid, seeded).await?)
        }
        _ => None,
    };

    Ok(Results {
        cores,
        message_bytes,
        entry_json_bytes,
        startup_rss,
        ingest,
        query,
        ui,
        server_log: server.log_tail(),
    })
}

/// Warm-up, sustained ingest, half load, live tail and idle memory; with
/// the baseline, what they measured and how many entries they stored.
#[allow(clippy::too_many_arguments)]
async fn ingest_phases(
    plan: &Plan,
    (plain, fts, commit): (Baseline, Baseline, Summary),
    target: &Target,
    http: &reqwest::Client,
    server: &Server,
    admin: &str,
    sampler: &RssSampler,
    ticks: f64,
) -> anyhow::Result<(Ingest, u64)> {
    let base = server.base_url();
    let pid = server.pid;
    let in_flight = plan.clients * 4;
    let seed = plan.seed;
    let pool = Arc::new(
        tokio::task::spawn_blocking(move || EntryPool::new(seed ^ 2))
            .await
            .context("generate the entry pool")?,
    );
    progress(format!(
        "warm-up {} s (not reported)",
        plan.warmup.as_secs()
    ));
    let (warm, _) = load::closed_loop(
        target,
        &pool,
        plan.clients,
        plan.batch,
        plan.warmup,
        plan.seed ^ 1,
    )
    .await;
    let mut stored = warm.accepted;

    // 3. Sustained ingest.
    progress(format!(
        "sustained ingest: {} clients × {} entries/batch for {} s",
        plan.clients,
        plan.batch,
        plan.sustained.as_secs()
    ));
    let before = Scrape::fetch(http, &base).await;
    let meter = Meter::begin(pid, ticks);
    let (sustained, elapsed) = load::closed_loop(
        target,
        &pool,
        plan.clients,
        plan.batch,
        plan.sustained,
        plan.seed,
    )
    .await;
    let w_sustained = meter.end(sampler);
    let after = Scrape::fetch(http, &base).await;
    stored += sustained.accepted;
    let sustained_secs = elapsed.as_secs_f64();
    let rate = sustained.accepted as f64 / sustained_secs;
    progress(format!(
        "sustained: {rate:.0} entries/s, errors {}, {}",
        sustained.errors_text(),
        latency_text(&Summary::of(&sustained.latencies))
    ));
    let commits_sustained = after.histogram_since(&before, "faultline_batch_commit_seconds");
    let requests_sustained = after.histogram_since(&before, "faultline_ingest_request_seconds");

    // 4. Half load.
    let half_rate = rate * 0.5;
    progress(format!(
        "half load: {half_rate:.0} entries/s open-loop for {} s",
        plan.half.as_secs()
    ));
    let before = Scrape::fetch(http, &base).await;
    let meter = Meter::begin(pid, ticks);
    let half = load::open_loop(
        target,
        &pool,
        half_rate,
        plan.batch,
        plan.half,
        in_flight,
        plan.seed ^ 2,
    )
    .await;
    let w_half = meter.end(sampler);
    let after = Scrape::fetch(http, &base).await;
    stored += half.tally.accepted;
    progress(format!(
        "half load: {:.0} entries/s achieved, errors {}, {}",
        half.tally.accepted as f64 / half.elapsed.as_secs_f64(),
        half.tally.errors_text(),
        latency_text(&Summary::of(&half.tally.latencies))
    ));
    let commits_half = after.histogram_since(&before, "faultline_batch_commit_seconds");

    // 5. Live tail under half load.
    progress(format!(
        "live tail: WebSocket on svc0 with {half_rate:.0} entries/s background load for {} s",
        plan.half.as_secs()
    ));
    let ws_url = format!(
        "ws://{}/api/v1/logs/live?project=bench&service=svc0",
        server.addr
    );
    let meter = Meter::begin(pid, ticks);
    let live = live::run(
        target,
        &pool,
        &ws_url,
        admin,
        half_rate,
        plan.batch,
        plan.half,
        in_flight,
        plan.seed ^ 3,
    )
    .await?;
    let w_live = meter.end(sampler);
    stored += live.load.tally.accepted + live.acked as u64 * plan.batch as u64;
    progress(format!(
        "live tail: {}/{} markers seen, {} dropped, delay {}",
        live.seen,
        live.acked,
        live.dropped,
        latency_text(&Summary::of(&live.delays))
    ));

    // 6. Idle memory.
    progress(format!("idle {} s", plan.idle_wait.as_secs()));
    tokio::time::sleep(plan.idle_wait).await;
    let idle_rss = rss_kib(pid);
    let idle_parts = rss_parts(pid);

    let ingest = Ingest {
        plain,
        fts,
        commit,
        sustained,
        sustained_secs,
        w_sustained,
        commits_sustained,
        requests_sustained,
        half_rate,
        half,
        w_half,
        commits_half,
        live,
        w_live,
        idle_rss,
        idle_parts,
    };
    Ok((ingest, stored))
}

/// Waits (at most `limit`) until the server used less than 5 % of a core
/// over a second: the issue processor has caught up with the fill.
async fn wait_quiet(pid: u32, ticks: f64, limit: Duration) -> (Duration, bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        let t0 = server::cpu_ticks(Some(pid)).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t1 = server::cpu_ticks(Some(pid)).unwrap_or(0);
        if (t1.saturating_sub(t0) as f64) / ticks < 0.05 {
            return (start.elapsed(), true);
        }
    }
    (start.elapsed(), false)
}

async fn ui_phase(
    plan: &Plan,
    base: &str,
    admin: &str,
    sampler: &RssSampler,
    ticks: f64,
    pid: u32,
    seeded: Seeded,
) -> anyhow::Result<UiResults> {
    progress("ui: waiting for the server to go quiet (issue processor catching up)");
    let (quiet_after, quiet) = wait_quiet(pid, ticks, Duration::from_secs(180)).await;
    progress(format!(
        "ui: {} after {:.0} s",
        if quiet { "quiet" } else { "still busy" },
        quiet_after.as_secs_f64()
    ));
    let (browser, login) = ui::log_in(base, admin).await?;
    progress(format!(
        "ui: logged in as {} through first-run setup in {:.0} ms",
        ui::USERNAME,
        login.as_secs_f64() * 1e3
    ));
    // Page 500 of 100,000 issues (about 70 % unresolved): well inside.
    let deep = u32::try_from(seeded.issues / 200).map_or(500, |p| p.clamp(1, 500));
    let pages = ui::pages(seed::PROJECT, query::RARE_WORD, seed::SEARCH_WORD, deep);
    progress(format!(
        "ui: {} pages × {} loads (+1 cold), round robin",
        pages.len(),
        plan.ui_samples
    ));
    let meter = Meter::begin(pid, ticks);
    let times = ui::measure(&browser, &pages, plan.ui_samples, plan.ui_limit).await?;
    let w_ui = meter.end(sampler);
    for t in &times {
        if let Some(s) = Summary::of(&t.page) {
            progress(format!(
                "ui: {}: p50 {} / p99 {} ms",
                t.name,
                fmt_num(s.p50_ms),
                fmt_num(s.p99_ms)
            ));
        }
    }
    Ok(UiResults {
        seeded,
        login,
        quiet_after,
        quiet,
        pages: times,
        w_ui,
    })
}

async fn run_baseline(plan: &Plan) -> anyhow::Result<(Baseline, Baseline, Summary)> {
    let rows = plan.baseline_rows;
    let limit = plan.baseline_limit;
    let seed = plan.seed;
    let batch = plan.batch;
    progress("baseline: plain SQLite inserts, then SQLite + contentless FTS5");
    tokio::task::spawn_blocking(move || {
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
    .context("the baseline panicked")?
}

#[allow(clippy::too_many_arguments)]
async fn fill_and_query(
    plan: &Plan,
    target: &Target,
    data_dir: &std::path::Path,
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    sampler: &RssSampler,
    stored_before: u64,
    ticks: f64,
    pid: u32,
) -> anyhow::Result<QueryResults> {
    let goal = plan
        .stored
        .saturating_sub(stored_before)
        .max(query::RARE_COUNT * plan.fill_batch as u64);
    progress(format!(
        "fill: {goal} more entries with {} clients × {} entries/batch (≤ {} s)",
        plan.fill_clients,
        plan.fill_batch,
        plan.max_fill.as_secs()
    ));
    let meter = Meter::begin(pid, ticks);
    let dir = data_dir.to_path_buf();
    let min_free = plan.min_free_bytes;
    let fill = query::fill(
        target,
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
        move || {
            let low = server::free_bytes(&dir).is_some_and(|b| b < min_free);
            if low {
                progress(format!(
                    "fill: stopping, less than {} GB free on the disk",
                    min_free / 1_000_000_000
                ));
            }
            low
        },
    )
    .await;
    let w_fill = meter.end(sampler);
    let store_bytes = Scrape::fetch(http, base)
        .await
        .get("faultline_store_size_bytes");
    progress(format!(
        "fill: {} entries in {:.0} s, errors {}, {} entries with the rare word",
        fill.tally.accepted,
        fill.elapsed.as_secs_f64(),
        fill.tally.errors_text(),
        fill.rare_stored
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let meter = Meter::begin(pid, ticks);
    progress(format!("query: full-text q={} × 50", query::RARE_WORD));
    let q_url = format!(
        "{base}/api/v1/logs?project=bench&q={}&limit=100",
        query::RARE_WORD
    );
    let fulltext = query::time_query(http, &q_url, admin, 50, Duration::from_secs(120)).await?;
    progress("query: newest-first page of svc3 × 100");
    let page_url = format!("{base}/api/v1/logs?project=bench&service=svc3&limit=100");
    let page = query::time_query(http, &page_url, admin, 100, Duration::from_secs(120)).await?;
    let w_query = meter.end(sampler);

    progress(format!("idle {} s", plan.idle_wait.as_secs()));
    tokio::time::sleep(plan.idle_wait).await;
    Ok(QueryResults {
        stored: stored_before + fill.tally.accepted,
        fill,
        w_fill,
        store_bytes,
        fulltext,
        page,
        w_query,
        idle_rss: rss_kib(pid),
        idle_parts: rss_parts(pid),
    })
}
