//! Turns [`Results`] into the table (figures, targets, PASS/MISS, notes) and
//! the JSON line.

use crate::Plan;
use crate::report::{Report, Verdict, fmt_num};
use crate::run::{Results, latency_text, mb};
use crate::server::Window;
use crate::stats::{Summary, Tally, round3};
use serde_json::{Value, json};

/// Targets of the foundation.
const TARGET_HALF_LOAD_P99_MS: f64 = 50.0;
const TARGET_LIVE_P99_MS: f64 = 50.0;
const TARGET_RSS_LOAD_MB: f64 = 150.0;
const TARGET_RSS_IDLE_MB: f64 = 30.0;
const TARGET_FULLTEXT_P50_MS: f64 = 50.0;
const TARGET_PAGE_P50_MS: f64 = 10.0;

fn ms(s: Option<Summary>, pick: fn(&Summary) -> f64) -> String {
    s.map_or("-".into(), |s| format!("{} ms", fmt_num(pick(&s))))
}

fn cpu_text(w: &Window) -> String {
    format!(
        "{:.2} / {:.2} / {:.2}, {:.2}",
        w.server_cores, w.bench_cores, w.other_cores, w.iowait_cores
    )
}

/// The foundation issue's target for sustained ingest with full-text search.
const SUSTAINED_TARGET: f64 = 200_000.0;

fn share(rate: f64, of: f64) -> f64 {
    if of > 0.0 { rate / of } else { 0.0 }
}

/// The human table.
pub fn table(plan: &Plan, r: &Results) -> Report {
    let mut t = Report::default();
    let rate = r.sustained_rate();
    let sustained = Summary::of(&r.sustained.latencies);
    let half = Summary::of(&r.half.tally.latencies);
    let live = Summary::of(&r.live.delays);

    t.info(
        "baseline: SQLite inserts, no index",
        format!("{} rows/s", fmt_num(r.plain.rows_per_sec())),
    );
    t.info(
        "baseline: SQLite + contentless FTS5",
        format!("{} rows/s", fmt_num(r.fts.rows_per_sec())),
    );
    t.info(
        format!("baseline: one {}-row commit with FTS5", plan.batch),
        format!(
            "p50 {} / p99 {} ms",
            fmt_num(r.commit.p50_ms),
            fmt_num(r.commit.p99_ms)
        ),
    );
    t.at_least(
        format!("sustained ingest ({} clients, FTS on)", plan.clients),
        rate,
        SUSTAINED_TARGET,
        "entries/s",
    );
    t.info(
        "  as share of the baselines",
        format!(
            "{:.0}% of plain, {:.0}% of FTS5",
            share(rate, r.plain.rows_per_sec()) * 100.0,
            share(rate, r.fts.rows_per_sec()) * 100.0
        ),
    );
    t.at_most(
        "sustained ingest errors",
        Some(r.sustained.error_count() as f64),
        0.0,
        "requests",
    );
    t.info("sustained ack latency", latency_text(&sustained));
    t.info("half load ack p50", ms(half, |s| s.p50_ms));
    t.at_most(
        format!("half load ({} entries/s) ack p99", fmt_num(r.half_rate)),
        half.map(|s| s.p99_ms),
        TARGET_HALF_LOAD_P99_MS,
        "ms",
    );
    t.info("live tail delay p50", ms(live, |s| s.p50_ms));
    t.at_most(
        "live tail delay p99",
        live.map(|s| s.p99_ms),
        TARGET_LIVE_P99_MS,
        "ms",
    );
    t.info(
        "live tail markers seen",
        format!(
            "{}/{} ({} before their 202, {} entries dropped)",
            r.live.seen, r.live.acked, r.live.early, r.live.dropped
        ),
    );
    t.at_most(
        "RSS max under ingest load",
        r.load_rss().map(mb),
        TARGET_RSS_LOAD_MB,
        "MB",
    );
    t.at_most(
        format!("RSS idle {} s after load", plan.idle_wait.as_secs()),
        r.idle_rss.map(mb),
        TARGET_RSS_IDLE_MB,
        "MB",
    );

    if let Some(q) = &r.query {
        t.info(
            "store filled to",
            format!(
                "{} entries{}{}",
                q.stored,
                q.store_bytes
                    .map_or(String::new(), |b| format!(", {:.0} MB", b / 1e6)),
                if q.fill.timed_out {
                    " (TIME LIMIT)"
                } else {
                    ""
                },
            ),
        );
        t.info(
            format!(
                "fill rate ({} clients × {})",
                plan.fill_clients, plan.fill_batch
            ),
            format!("{} entries/s", fmt_num(q.fill_rate())),
        );
        t.at_most(
            "RSS max while filling and querying",
            q.rss_max().map(mb),
            TARGET_RSS_LOAD_MB,
            "MB",
        );
        t.at_most(
            format!("full-text q= p50 ({} hits)", q.fulltext.returned),
            Some(q.fulltext.summary.p50_ms),
            TARGET_FULLTEXT_P50_MS,
            "ms",
        );
        t.info(
            "full-text q= p99 / first (cold)",
            format!(
                "{} / {} ms",
                fmt_num(q.fulltext.summary.p99_ms),
                fmt_num(q.fulltext.first.as_secs_f64() * 1e3)
            ),
        );
        t.at_most(
            "newest-first page svc3 p50",
            Some(q.page.summary.p50_ms),
            TARGET_PAGE_P50_MS,
            "ms",
        );
        t.info(
            "newest-first page p99 / first (cold)",
            format!(
                "{} / {} ms",
                fmt_num(q.page.summary.p99_ms),
                fmt_num(q.page.first.as_secs_f64() * 1e3)
            ),
        );
        t.at_most(
            format!("RSS idle {} s after fill+queries", plan.idle_wait.as_secs()),
            q.idle_rss.map(mb),
            TARGET_RSS_IDLE_MB,
            "MB",
        );
    }

    notes(plan, r, &mut t);
    t
}

fn notes(plan: &Plan, r: &Results, t: &mut Report) {
    t.note(format!(
        "CPU in cores of {} (server / load generator / other processes, iowait): {}",
        r.cores,
        [
            ("sustained", &r.w_sustained),
            ("half load", &r.w_half),
            ("live", &r.w_live),
        ]
        .iter()
        .map(|(name, w)| format!("{name} {}", cpu_text(w)))
        .collect::<Vec<_>>()
        .join("; ")
    ));
    if let Some(q) = &r.query {
        t.note(format!(
            "CPU in cores (same order): fill {}; queries {}",
            cpu_text(&q.w_fill),
            cpu_text(&q.w_query)
        ));
    }
    let busy = [&r.w_sustained, &r.w_half, &r.w_live]
        .iter()
        .map(|w| w.other_cores)
        .fold(0.0, f64::max);
    if busy > 0.25 {
        t.note(format!(
            "WARNING: other processes used up to {busy:.2} cores during the measurements; the figures understate the server"
        ));
    }
    if let Some(h) = &r.commits_sustained {
        t.note(format!(
            "group commits during sustained load: {}",
            h.describe()
        ));
    }
    if let Some(h) = &r.requests_sustained {
        t.note(format!(
            "server-side ingest request time during sustained load: {}",
            h.describe()
        ));
    }
    if let Some(h) = &r.commits_half {
        t.note(format!("group commits at half load: {}", h.describe()));
    }
    if r.half.late > 0 {
        t.note(format!(
            "half load: {} of {} batches started > 5 ms after their scheduled time",
            r.half.late,
            r.half.tally.batches + r.half.tally.error_count()
        ));
    }
    let parts = |label: &str, p: Option<(u64, u64)>| {
        p.map(|(anon, file)| {
            format!(
                "{label}: {} MB anonymous (heap), {} MB file-backed",
                fmt_num(mb(anon)),
                fmt_num(mb(file))
            )
        })
    };
    if let Some(n) = parts("idle RSS after load", r.idle_parts) {
        t.note(n);
    }
    if let Some(n) = r
        .query
        .as_ref()
        .and_then(|q| parts("idle RSS after fill+queries", q.idle_parts))
    {
        t.note(n);
    }
    if let Some(kib) = r.startup_rss {
        t.note(format!(
            "server RSS right after start: {} MB",
            fmt_num(mb(kib))
        ));
    }
    if let Some(q) = r
        .query
        .as_ref()
        .filter(|q| q.fulltext.returned as u64 != q.fill.rare_stored.min(100))
    {
        t.note(format!(
            "the full-text query returned {} entries; {} carry the word",
            q.fulltext.returned, q.fill.rare_stored
        ));
    }
    t.note(format!(
        "entries: mean message {:.0} bytes, {:.0} bytes of JSON per entry, {} per batch",
        r.message_bytes, r.entry_json_bytes, plan.batch
    ));
}

fn window_json(w: &Window) -> Value {
    json!({
        "secs": round3(w.secs()),
        "server_cpu_cores": round3(w.server_cores),
        "bench_cpu_cores": round3(w.bench_cores),
        "other_cpu_cores": round3(w.other_cores),
        "iowait_cores": round3(w.iowait_cores),
        "server_rss_max_mb": w.rss_max_kib.map(|k| round3(mb(k))),
    })
}

fn tally_json(t: &Tally, secs: f64) -> Value {
    json!({
        "accepted_entries": t.accepted,
        "entries_per_sec": round3(t.accepted as f64 / secs.max(1e-9)),
        "batches_202": t.batches,
        "errors": t.errors_json(),
        "ack_latency": Summary::of(&t.latencies).map(|s| s.json()),
    })
}

fn mb_json(kib: Option<u64>) -> Value {
    json!(kib.map(|k| round3(mb(k))))
}

/// The JSON line.
pub fn json(plan: &Plan, r: &Results, report: &Report) -> Value {
    let rate = r.sustained_rate();
    let mut sustained = tally_json(&r.sustained, r.sustained_secs);
    sustained["share_of_plain"] = json!(round3(share(rate, r.plain.rows_per_sec())));
    sustained["share_of_fts5"] = json!(round3(share(rate, r.fts.rows_per_sec())));
    sustained["phase"] = window_json(&r.w_sustained);
    let mut half = tally_json(&r.half.tally, r.half.elapsed.as_secs_f64());
    half["target_entries_per_sec"] = json!(round3(r.half_rate));
    half["late_batches"] = json!(r.half.late);
    half["phase"] = window_json(&r.w_half);
    let query = r.query.as_ref().map(|q| {
        json!({
            "stored_entries": q.stored,
            "store_size_bytes": q.store_bytes,
            "fill": {
                "entries": q.fill.tally.accepted,
                "entries_per_sec": round3(q.fill_rate()),
                "errors": q.fill.tally.errors_json(),
                "timed_out": q.fill.timed_out,
                "rare_entries": q.fill.rare_stored,
                "phase": window_json(&q.w_fill),
            },
            "fulltext": {
                "hits": q.fulltext.returned,
                "latency": q.fulltext.summary.json(),
                "first_ms": round3(q.fulltext.first.as_secs_f64() * 1e3),
            },
            "page": {
                "returned": q.page.returned,
                "latency": q.page.summary.json(),
                "first_ms": round3(q.page.first.as_secs_f64() * 1e3),
            },
            "queries_phase": window_json(&q.w_query),
            "rss_max_mb": mb_json(q.rss_max()),
            "idle_rss_mb": mb_json(q.idle_rss),
        })
    });
    json!({
        "bench": "faultline",
        "config": {
            "argv": std::env::args().collect::<Vec<_>>(),
            "binary": plan.exe.display().to_string(),
            "clients": plan.clients,
            "batch": plan.batch,
            "duration_secs": plan.sustained.as_secs(),
            "stored_goal": plan.query.then_some(plan.stored),
            "server_env": plan.server_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "machine_cores": r.cores,
            "mean_message_bytes": round3(r.message_bytes),
            "mean_entry_json_bytes": round3(r.entry_json_bytes),
        },
        "baseline": {
            "plain_rows_per_sec": round3(r.plain.rows_per_sec()),
            "plain_rows": r.plain.rows,
            "fts5_rows_per_sec": round3(r.fts.rows_per_sec()),
            "fts5_rows": r.fts.rows,
            "commit_latency": r.commit.json(),
        },
        "sustained": sustained,
        "half_load": half,
        "live": {
            "markers_acked": r.live.acked,
            "markers_seen": r.live.seen,
            "markers_early": r.live.early,
            "entries_received": r.live.entries,
            "dropped": r.live.dropped,
            "delay": Summary::of(&r.live.delays).map(|s| s.json()),
            "load": tally_json(&r.live.load.tally, r.live.load.elapsed.as_secs_f64()),
            "phase": window_json(&r.w_live),
        },
        "rss": {
            "startup_mb": mb_json(r.startup_rss),
            "load_max_mb": mb_json(r.load_rss()),
            "idle_mb": mb_json(r.idle_rss),
        },
        "query": query,
        "verdicts": {
            "pass": report.count(Verdict::Pass),
            "miss": report.count(Verdict::Miss),
        },
    })
}
