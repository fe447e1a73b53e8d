//! Turns [`Results`] into the table (figures, targets, PASS/MISS, notes) and
//! the JSON line.

use crate::Plan;
use crate::report::{Report, Verdict, fmt_num};
use crate::run::{Ingest, QueryResults, Results, UiResults, latency_text, mb};
use crate::server::{RssParts, Window};
use crate::stats::{Summary, Tally, round3};
use serde_json::{Value, json};
use std::time::Duration;

/// Targets of the foundation.
const TARGET_HALF_LOAD_P99_MS: f64 = 50.0;
const TARGET_LIVE_P99_MS: f64 = 50.0;
const TARGET_RSS_LOAD_MB: f64 = 150.0;
const TARGET_RSS_IDLE_MB: f64 = 30.0;
const TARGET_FULLTEXT_P50_MS: f64 = 50.0;
const TARGET_PAGE_P50_MS: f64 = 10.0;
/// The web UI issue's target: a page's server time, here its p99.
const TARGET_UI_PAGE_MS: f64 = 100.0;

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
    if let Some(i) = &r.ingest {
        ingest_rows(plan, i, &mut t);
    }
    if let Some(q) = &r.query {
        query_rows(plan, q, &mut t);
    }
    if let Some(u) = &r.ui {
        ui_rows(u, &mut t);
    }
    notes(plan, r, &mut t);
    t
}

fn ingest_rows(plan: &Plan, r: &Ingest, t: &mut Report) {
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
}

fn query_rows(plan: &Plan, q: &QueryResults, t: &mut Report) {
    {
        t.info(
            "store filled to",
            format!(
                "{} entries{}{}",
                q.stored,
                q.store_bytes
                    .map_or(String::new(), |b| format!(", {:.0} MB", b / 1e6)),
                if q.fill.timed_out {
                    " (TIME LIMIT)"
                } else if q.fill.disk_full {
                    " (STOPPED: DISK NEARLY FULL)"
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
}

/// `p50 / p99 ms` of some durations.
fn p50_p99(d: &[Duration]) -> String {
    Summary::of(d).map_or("-".into(), |s| {
        format!("{} / {}", fmt_num(s.p50_ms), fmt_num(s.p99_ms))
    })
}

/// A request's path without the project parameter, for the table.
fn short(path: &str) -> String {
    path.replace("project=bench&", "")
        .replace("?project=bench", "")
        .replace("/projects/bench/", "/projects/P/")
}

fn ui_rows(u: &UiResults, t: &mut Report) {
    let s = &u.seeded;
    t.info(
        "ui: issues in project bench (seeded)",
        format!(
            "{} ({} events; {} resolved, {} ignored, {} regressed; {} seen in 48 h)",
            s.issues, s.events, s.resolved, s.ignored, s.regressed, s.recent_48h
        ),
    );
    for p in &u.pages {
        let Some(page) = Summary::of(&p.page) else {
            t.at_most(
                format!("ui page: {}", p.name),
                None,
                TARGET_UI_PAGE_MS,
                "ms",
            );
            continue;
        };
        t.at_most(
            format!(
                "ui page: {} p99 (p50 {}, n {})",
                p.name,
                fmt_num(page.p50_ms),
                page.n
            ),
            Some(page.p99_ms),
            TARGET_UI_PAGE_MS,
            "ms",
        );
        let slowest = p
            .requests
            .iter()
            .filter_map(|(path, d)| Some((path, Summary::of(d)?)))
            .max_by(|a, b| a.1.p50_ms.total_cmp(&b.1.p50_ms));
        if let Some((path, s)) = slowest {
            t.info(
                "  slowest request p50 / p99",
                format!(
                    "{} / {} ms  {}",
                    fmt_num(s.p50_ms),
                    fmt_num(s.p99_ms),
                    short(path)
                ),
            );
        }
    }
}

fn ui_notes(u: &UiResults, t: &mut Report) {
    t.note(format!(
        "ui: a page = its HTML shell and the API requests its module makes on load, one after the other, from sending the first to the last byte of the last (no browser time); the dashboard's five API requests run at once as in the browser (Promise.all) and count as the slowest; {} loads of each page round robin after a cold one; logged in through POST /api/v1/setup in {} ms",
        u.pages.first().map_or(0, |p| p.page.len()),
        fmt_num(u.login.as_secs_f64() * 1e3)
    ));
    if !u.quiet {
        t.note(format!(
            "WARNING: the server was still busy {:.0} s after the fill when the ui pages were measured",
            u.quiet_after.as_secs_f64()
        ));
    }
    t.note(format!(
        "CPU in cores (server / load generator / other processes, iowait): ui pages {}",
        cpu_text(&u.w_ui)
    ));
    for p in &u.pages {
        let requests: Vec<String> = p
            .requests
            .iter()
            .map(|(path, d)| format!("{} {}", short(path), p50_p99(d)))
            .collect();
        let returned = match p.returned {
            (n, Some(total)) => format!("; {n} of {total} returned"),
            (n, None) if p.group == "logs" => format!("; {n} returned"),
            _ => String::new(),
        };
        t.note(format!(
            "ui {} (first load {} ms{returned}), p50 / p99 ms: {}",
            p.name,
            fmt_num(p.first.as_secs_f64() * 1e3),
            requests.join(", ")
        ));
    }
}

fn notes(plan: &Plan, r: &Results, t: &mut Report) {
    if let Some(i) = &r.ingest {
        ingest_notes(r.cores, i, t);
    }
    if let Some(q) = &r.query {
        t.note(format!(
            "CPU in cores (server / load generator / other processes, iowait): fill {}; queries {}",
            cpu_text(&q.w_fill),
            cpu_text(&q.w_query)
        ));
    }
    let parts = |label: &str, p: Option<RssParts>| {
        p.map(|p| {
            let sockets = p
                .sockets
                .map(|n| format!(", {n} sockets open"))
                .unwrap_or_default();
            format!(
                "{label}: {} MB anonymous (heap), {} MB file-backed{sockets}",
                fmt_num(mb(p.anon_kib)),
                fmt_num(mb(p.file_kib)),
            )
        })
    };
    if let Some(n) = r
        .ingest
        .as_ref()
        .and_then(|i| parts("idle RSS after load", i.idle_parts))
    {
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
    if let Some(u) = &r.ui {
        ui_notes(u, t);
    }
    t.note(format!(
        "entries: mean message {:.0} bytes, {:.0} bytes of JSON per entry, {} per batch",
        r.message_bytes, r.entry_json_bytes, plan.batch
    ));
}

fn ingest_notes(cores: usize, r: &Ingest, t: &mut Report) {
    t.note(format!(
        "CPU in cores of {} (server / load generator / other processes, iowait): {}",
        cores,
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
    let query = r.query.as_ref().map(|q| {
        json!({
            "stored_entries": q.stored,
            "store_size_bytes": q.store_bytes,
            "fill": {
                "entries": q.fill.tally.accepted,
                "entries_per_sec": round3(q.fill_rate()),
                "errors": q.fill.tally.errors_json(),
                "timed_out": q.fill.timed_out,
                "disk_full": q.fill.disk_full,
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
    let ui = r.ui.as_ref().map(ui_json);
    let mut out = json!({
        "bench": "faultline",
        "config": {
            "argv": std::env::args().collect::<Vec<_>>(),
            "binary": plan.exe.display().to_string(),
            "clients": plan.clients,
            "batch": plan.batch,
            "duration_secs": plan.ingest.then_some(plan.sustained.as_secs()),
            "stored_goal": plan.query.then_some(plan.stored),
            "issues_seeded": plan.ui.then_some(plan.issues),
            "server_env": plan.server_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "machine_cores": r.cores,
            "mean_message_bytes": round3(r.message_bytes),
            "mean_entry_json_bytes": round3(r.entry_json_bytes),
        },
        "baseline": null,
        "sustained": null,
        "half_load": null,
        "live": null,
        "rss": {
            "startup_mb": mb_json(r.startup_rss),
        },
        "query": query,
        "ui": ui,
        "verdicts": {
            "pass": report.count(Verdict::Pass),
            "miss": report.count(Verdict::Miss),
        },
    });
    if let Some(i) = &r.ingest {
        let rate = i.sustained_rate();
        let mut sustained = tally_json(&i.sustained, i.sustained_secs);
        sustained["share_of_plain"] = json!(round3(share(rate, i.plain.rows_per_sec())));
        sustained["share_of_fts5"] = json!(round3(share(rate, i.fts.rows_per_sec())));
        sustained["phase"] = window_json(&i.w_sustained);
        let mut half = tally_json(&i.half.tally, i.half.elapsed.as_secs_f64());
        half["target_entries_per_sec"] = json!(round3(i.half_rate));
        half["late_batches"] = json!(i.half.late);
        half["phase"] = window_json(&i.w_half);
        out["baseline"] = json!({
            "plain_rows_per_sec": round3(i.plain.rows_per_sec()),
            "plain_rows": i.plain.rows,
            "fts5_rows_per_sec": round3(i.fts.rows_per_sec()),
            "fts5_rows": i.fts.rows,
            "commit_latency": i.commit.json(),
        });
        out["sustained"] = sustained;
        out["half_load"] = half;
        out["live"] = json!({
            "markers_acked": i.live.acked,
            "markers_seen": i.live.seen,
            "markers_early": i.live.early,
            "entries_received": i.live.entries,
            "dropped": i.live.dropped,
            "delay": Summary::of(&i.live.delays).map(|s| s.json()),
            "load": tally_json(&i.live.load.tally, i.live.load.elapsed.as_secs_f64()),
            "phase": window_json(&i.w_live),
        });
        out["rss"]["load_max_mb"] = mb_json(i.load_rss());
        out["rss"]["idle_mb"] = mb_json(i.idle_rss);
    }
    out
}

fn ui_json(u: &UiResults) -> Value {
    let s = &u.seeded;
    let pages: Vec<Value> = u
        .pages
        .iter()
        .map(|p| {
            let page = Summary::of(&p.page);
            json!({
                "name": p.name,
                "page": p.group,
                "parallel_step": p.parallel,
                "latency": page.map(|s| s.json()),
                "pass": page.is_some_and(|s| s.p99_ms <= TARGET_UI_PAGE_MS),
                "first_ms": round3(p.first.as_secs_f64() * 1e3),
                "returned": p.returned.0,
                "total": p.returned.1,
                "requests": p.requests.iter().map(|(path, d)| json!({
                    "path": path,
                    "latency": Summary::of(d).map(|s| s.json()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "target_page_p99_ms": TARGET_UI_PAGE_MS,
        "seeded": {
            "issues": s.issues,
            "events": s.events,
            "resolved": s.resolved,
            "ignored": s.ignored,
            "regressed": s.regressed,
            "seen_last_48h": s.recent_48h,
            "with_search_word": s.with_word,
            "secs": round3(s.elapsed.as_secs_f64()),
        },
        "login_ms": round3(u.login.as_secs_f64() * 1e3),
        "quiet_after_secs": round3(u.quiet_after.as_secs_f64()),
        "quiet": u.quiet,
        "pages": pages,
        "phase": window_json(&u.w_ui),
    })
}
