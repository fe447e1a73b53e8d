//! Issues for the UI phase, written straight into the server's database
//! before the server starts: `n` issues with distinct fingerprints in the
//! `bench` project, spread over the ten services, three levels, the three
//! statuses (some regressed) and the last 30 days, recorded through
//! [`faultline_store::IssueStore::record_events`] like the issue processor
//! records them, so every table the issue pages read (`issues`,
//! `issue_counts`, `issue_events`, …) holds what a real server would.

use crate::generate::{Rng, SERVICES};
use anyhow::Context;
use faultline_model::{EventDetails, IgnoreUntil, IssueStatus, Level, NewEvent};
use faultline_store::{EventBatch, IssueStore, StatusUpdate};
use faultline_store_sqlite::{SqliteOptions, SqliteStore};
use std::path::Path;
use std::time::{Duration, Instant};

/// The project the issues go to (the one the log phases fill too).
pub const PROJECT: &str = "bench";
/// A word in the culprit of about 1 % of the issues (and nowhere else), for
/// the issue search.
pub const SEARCH_WORD: &str = "wombat";

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
/// Events per `record_events` call.
const BATCH: usize = 2_000;

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub issues: u64,
    pub events: u64,
    pub resolved: u64,
    pub ignored: u64,
    pub regressed: u64,
    /// Issues with an event in the last 48 h (the trend's window).
    pub recent_48h: u64,
    /// Issues whose culprit holds [`SEARCH_WORD`].
    pub with_word: u64,
    pub elapsed: Duration,
}

const EXCEPTIONS: &[&str] = &[
    "TimeoutError",
    "ConnectionResetError",
    "KeyError",
    "ValueError",
    "TypeError",
    "PermissionError",
    "FileNotFoundError",
    "IntegrityError",
    "OperationalError",
    "RuntimeError",
    "AssertionError",
    "MemoryError",
    "NullPointerException",
    "IllegalStateException",
    "SegmentationFault",
];

const MESSAGES: &[&str] = &[
    "upstream {host} did not answer within {n} ms",
    "connection to {host}:5432 reset by peer after {n} queries",
    "'{field}' missing from payload of job {n}",
    "invalid literal for int() with base 10: '{field}{n}'",
    "unsupported operand type(s) for +: 'NoneType' and 'int' in {field}",
    "permission denied writing /projects/{field}/shots/sh{n}/comp",
    "no such file: /var/data/uploads/{n}/{field}.png",
    "duplicate key value violates unique constraint \"{field}_pkey\"",
    "database is locked while updating {field} {n}",
    "cannot publish version {n} of {field}: checksum mismatch",
    "expected {n} rows in {field}, found {n}",
    "out of memory allocating {n} MiB for {field} cache",
    "render job {n} crashed in libshader.so on {host}",
    "payment provider returned 502 for order {n}",
    "session {n} expired while refreshing {field} token",
];

const FIELDS: &[&str] = &[
    "order_id",
    "customer",
    "invoice",
    "asset",
    "shot",
    "session",
    "payment",
    "inventory",
    "user_email",
    "render_queue",
    "thumbnail",
    "audit_entry",
];

const AREAS: &[&str] = &[
    "billing", "checkout", "orders", "auth", "render", "publish", "search", "gateway", "cron",
    "assets", "reports", "mailer",
];

const FUNCS: &[&str] = &[
    "handle",
    "process",
    "run",
    "commit",
    "fetch",
    "render_tile",
    "publish_version",
    "charge",
    "refresh",
    "validate",
];

const HOSTS: &[&str] = &["web", "api", "worker", "render", "db", "cache"];

fn expand(template: &str, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(96);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').expect("templates close every placeholder");
        match &after[..close] {
            "host" => {
                let host = *rng.pick(HOSTS);
                out.push_str(host);
                out.push('-');
                out.push_str(&rng.below(40).to_string());
            }
            "n" => out.push_str(&rng.below(100_000).to_string()),
            "field" => {
                let field = *rng.pick(FIELDS);
                out.push_str(field);
            }
            other => panic!("unknown placeholder {{{other}}}"),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One issue's fixed parts.
struct Shape {
    service: String,
    fingerprint: String,
    title: String,
    culprit: String,
    exception: String,
    level: Level,
}

fn shape(i: u64, rng: &mut Rng) -> (Shape, bool) {
    let exception = *rng.pick(EXCEPTIONS);
    let template = *rng.pick(MESSAGES);
    let message = expand(template, rng);
    let with_word = rng.below(100) == 0;
    let area = if with_word {
        SEARCH_WORD
    } else {
        *rng.pick(AREAS)
    };
    let culprit = format!(
        "app/{area}/{}_{}.py in {}",
        rng.pick(FIELDS),
        rng.below(50),
        rng.pick(FUNCS)
    );
    let level = match rng.below(100) {
        0..=4 => Level::Critical,
        5..=14 => Level::Warn,
        _ => Level::Error,
    };
    let shape = Shape {
        service: format!("svc{}", rng.below(SERVICES as u64)),
        // Distinct by construction: the index is part of it.
        fingerprint: format!("{i:08x}{:08x}", rng.next_u64() as u32),
        title: format!("{exception}: {message}"),
        culprit,
        exception: exception.to_owned(),
        level,
    };
    (shape, with_word)
}

fn event(s: &Shape, ts: i64, count: u64, now: i64, rng: &mut Rng) -> NewEvent {
    NewEvent {
        project: PROJECT.to_owned(),
        service: s.service.clone(),
        fingerprint: s.fingerprint.clone(),
        title: s.title.clone(),
        culprit: Some(s.culprit.clone()),
        level: s.level,
        timestamp: ts,
        received_at: ts.min(now),
        log_id: None,
        message: format!(
            "{} (request {:016x}, attempt {})",
            s.title,
            rng.next_u64(),
            1 + rng.below(3)
        ),
        host: Some(format!("{}-{:02}", rng.pick(HOSTS), rng.below(12))),
        user: (rng.below(3) == 0).then(|| format!("user{}", rng.below(500))),
        tags: vec!["prod".to_owned()],
        attributes: Default::default(),
        details: EventDetails {
            exception_type: Some(s.exception.clone()),
            count,
            ..Default::default()
        },
        key: None,
    }
}

/// Occurrences one event stands for: mostly 1, sometimes many (an agent's
/// throttle folds repeats), so counts spread over four orders of magnitude.
fn occurrences(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=5 => 1,
        6..=8 => 1 + rng.below(20),
        _ => 1 + rng.below(2_000),
    }
}

/// Writes `n` issues into the database at `db` (the server must not run
/// yet), with timestamps relative to `now` (µs).
pub fn seed(db: &Path, n: u64, now: i64, seed: u64) -> anyhow::Result<Seeded> {
    let start = Instant::now();
    // No fsync per transaction: nothing here must survive a power loss.
    let store = SqliteStore::open(
        db,
        SqliteOptions {
            synchronous_full: false,
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot open {}", db.display()))?;
    let mut rng = Rng::new(seed ^ 0x0155_70E5);
    let mut out = Seeded {
        issues: n,
        ..Default::default()
    };
    let mut batch = Vec::with_capacity(BATCH + 8);
    // (issue index, status to set, regress afterwards)
    let mut later: Vec<(u64, IssueStatus, bool)> = Vec::new();
    let mut shapes_of_later: Vec<Shape> = Vec::new();
    let flush = |batch: &mut Vec<NewEvent>| -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        store
            .record_events(&EventBatch {
                events: std::mem::take(batch),
                ..Default::default()
            })
            .context("cannot record seeded events")?;
        Ok(())
    };
    for i in 0..n {
        let (s, with_word) = shape(i, &mut rng);
        out.with_word += u64::from(with_word);
        let first_seen = now - rng.below(30 * DAY as u64) as i64;
        let mut last = first_seen;
        batch.push(event(&s, first_seen, occurrences(&mut rng), now, &mut rng));
        // 0–3 more events in the issue's active time, 1 h to 5 days after
        // its first (most issues are old and quiet).
        let active = HOUR * (1 + rng.below(120) as i64);
        let until = (first_seen + active).min(now);
        for _ in 0..rng.below(4) {
            let ts = first_seen + rng.below((until - first_seen) as u64 + 1) as i64;
            last = last.max(ts);
            batch.push(event(&s, ts, occurrences(&mut rng), now, &mut rng));
        }
        // One in twenty is busy in the last two days: a burst in either
        // day, so the trend goes both ways.
        if rng.below(20) == 0 {
            for _ in 0..1 + rng.below(6) {
                let ts = now - rng.below(2 * DAY as u64) as i64;
                last = last.max(ts);
                batch.push(event(&s, ts, occurrences(&mut rng), now, &mut rng));
            }
        }
        let status = match rng.below(10) {
            0 | 1 => Some(IssueStatus::Resolved),
            2 => Some(IssueStatus::Ignored),
            _ => None,
        };
        // One in a hundred was resolved and came back.
        let regress = rng.below(100) == 0;
        if let Some(st) = status {
            later.push((i, st, false));
        } else if regress {
            later.push((i, IssueStatus::Resolved, true));
        }
        if regress && status.is_none() {
            shapes_of_later.push(s);
            // The regression event comes in the last day.
            last = last.max(now - 1);
        }
        out.recent_48h += u64::from(last >= now - 2 * DAY);
        if batch.len() >= BATCH {
            out.events += batch.len() as u64;
            flush(&mut batch)?;
        }
    }
    out.events += batch.len() as u64;
    flush(&mut batch)?;

    // Statuses: issue ids are 1.. in creation order only when the database
    // had no issues before, so look them up by fingerprint order instead:
    // ids of this run are the last `n` ids, in creation order.
    let first_id = first_seeded_id(db, n)?;
    let mut regress_shapes = shapes_of_later.into_iter();
    for (i, status, regress) in later {
        let id = first_id + i as i64;
        let ignore = (status == IssueStatus::Ignored && rng.below(3) == 0).then(|| IgnoreUntil {
            count: Some(1_000 + rng.below(10_000)),
            until: None,
        });
        store
            .set_issue_status(
                id,
                &StatusUpdate {
                    status,
                    ignore,
                    actor: "bench".into(),
                    at: now - rng.below(DAY as u64) as i64,
                },
            )
            .with_context(|| format!("cannot set the status of issue {id}"))?;
        match status {
            IssueStatus::Resolved if !regress => out.resolved += 1,
            IssueStatus::Ignored => out.ignored += 1,
            _ => {}
        }
        if regress {
            let s = regress_shapes
                .next()
                .expect("one shape per regressed issue");
            let ts = now - 1 - rng.below(DAY as u64 - 1) as i64;
            store
                .record_events(&EventBatch {
                    events: vec![event(&s, ts, 1, now, &mut rng)],
                    ..Default::default()
                })
                .context("cannot record a regression")?;
            out.regressed += 1;
            out.events += 1;
        }
    }
    drop(store);
    out.elapsed = start.elapsed();
    Ok(out)
}

/// The id of the first of the last `n` issues (those just created).
fn first_seeded_id(db: &Path, n: u64) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    let (max, count): (i64, i64) = conn.query_row(
        "SELECT coalesce(max(id), 0), count(*) FROM issues",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    anyhow::ensure!(
        count as u64 >= n,
        "expected at least {n} issues after seeding, found {count}"
    );
    Ok(max - n as i64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_store::IssueQuery;

    #[test]
    fn seeds_distinct_issues_over_statuses_and_time() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = dir.path().join("faultline.db");
        let now = faultline_model::now_micros();
        let s = seed(&db, 2_000, now, 7).expect("seed");
        assert_eq!(s.issues, 2_000);
        assert!(s.events > 4_000, "{s:?}");
        assert!(s.resolved > 200 && s.ignored > 100, "{s:?}");
        assert!(s.regressed > 0 && s.with_word > 0, "{s:?}");
        let store = SqliteStore::open(&db, SqliteOptions::default()).expect("open");
        let page = |status, sort| {
            store
                .list_issues(&IssueQuery {
                    project: Some(PROJECT.into()),
                    status,
                    sort,
                    limit: 50,
                    page: 1,
                    now,
                    ..Default::default()
                })
                .expect("list")
        };
        let all = page(None, Default::default());
        assert_eq!(all.total, 2_000);
        let unresolved = page(Some(IssueStatus::Unresolved), Default::default());
        assert_eq!(unresolved.total, 2_000 - s.resolved - s.ignored);
        let trend = page(None, faultline_store::IssueSort::Trend);
        assert!(trend.issues[0].count_24h > trend.issues[0].count_prev_24h);
        let oldest = all
            .issues
            .iter()
            .map(|i| i.first_seen)
            .min()
            .expect("issues");
        assert!(oldest >= now - 30 * DAY);
    }
}
