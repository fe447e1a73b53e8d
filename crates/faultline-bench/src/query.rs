//! Filling the store to a given size at full speed, with a rare word in about
//! a hundred entries, then timing queries with the admin token.

use crate::generate::{Generator, SERVICES};
use crate::load::Target;
use crate::stats::{Outcome, Summary, Tally};
use anyhow::{Context, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The word the full-text query looks for; it appears nowhere else.
pub const RARE_WORD: &str = "quokkazephyr";
/// How many entries carry [`RARE_WORD`].
pub const RARE_COUNT: u64 = 100;

pub struct Fill {
    pub tally: Tally,
    pub elapsed: Duration,
    /// Entries with [`RARE_WORD`] that were acknowledged.
    pub rare_stored: u64,
    /// The time limit ended the fill before the goal.
    pub timed_out: bool,
    /// The disk was nearly full: the fill stopped before the goal.
    pub disk_full: bool,
}

/// Sends `goal` more entries with `clients` clients in `batch`-entry arrays,
/// printing progress every 5 s through `progress`, for at most `limit`;
/// stops early when `disk_low` (asked every 5 s) says so: the machine's
/// disk is shared.
#[allow(clippy::too_many_arguments)]
pub async fn fill(
    target: &Target,
    clients: usize,
    batch: usize,
    goal: u64,
    limit: Duration,
    seed: u64,
    progress: impl Fn(u64, Duration) + Send + 'static,
    disk_low: impl Fn() -> bool + Send + 'static,
) -> Fill {
    let start = Instant::now();
    let deadline = start + limit;
    let accepted = Arc::new(AtomicU64::new(0));
    let next_batch = Arc::new(AtomicU64::new(0));
    let rare_sent = Arc::new(AtomicU64::new(0));
    let rare_stored = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let stride = (goal / batch as u64 / RARE_COUNT).max(1);

    let reporter = {
        let accepted = accepted.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(5));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                progress(accepted.load(Ordering::Relaxed), start.elapsed());
                if disk_low() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        })
    };

    let mut set = JoinSet::new();
    for client in 0..clients {
        let target = target.clone();
        let accepted = accepted.clone();
        let next_batch = next_batch.clone();
        let rare_sent = rare_sent.clone();
        let rare_stored = rare_stored.clone();
        let stop = stop.clone();
        set.spawn(async move {
            let mut generator = Generator::new(seed ^ ((client as u64 + 1) << 40));
            let mut tally = Tally::default();
            while accepted.load(Ordering::Relaxed) < goal
                && Instant::now() < deadline
                && !stop.load(Ordering::Relaxed)
            {
                let k = next_batch.fetch_add(1, Ordering::Relaxed);
                let service = (k as usize) % SERVICES;
                let rare = k % stride == stride / 2
                    && rare_sent.fetch_add(1, Ordering::Relaxed) < RARE_COUNT;
                let body = generator.batch_json(service, batch, rare.then_some(RARE_WORD));
                let t0 = Instant::now();
                let outcome = target.post(service, body).await;
                tally.record(&outcome, t0.elapsed());
                match outcome {
                    Outcome::Accepted(n) => {
                        accepted.fetch_add(n, Ordering::Relaxed);
                        if rare {
                            rare_stored.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Outcome::Status(503 | 429) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            tally
        });
    }
    let mut tally = Tally::default();
    while let Some(done) = set.join_next().await {
        tally.merge(done.expect("a fill client does not panic"));
    }
    reporter.abort();
    let disk_full = stop.load(Ordering::Relaxed);
    Fill {
        timed_out: tally.accepted < goal && !disk_full,
        disk_full,
        tally,
        elapsed: start.elapsed(),
        rare_stored: rare_stored.load(Ordering::Relaxed),
    }
}

pub struct QueryTimes {
    pub summary: Summary,
    /// The first (cold) query, not part of the summary.
    pub first: Duration,
    /// Entries the first answer held.
    pub returned: usize,
}

/// Times `GET url` with the admin token: one cold query, then `n` timed
/// ones (stopping early after `limit`). Each latency runs until the whole
/// body is received.
pub async fn time_query(
    http: &reqwest::Client,
    url: &str,
    admin_token: &str,
    n: usize,
    limit: Duration,
) -> anyhow::Result<QueryTimes> {
    let once = || async {
        let t0 = Instant::now();
        let resp = http
            .get(url)
            .bearer_auth(admin_token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("GET {url}"))?;
        let took = t0.elapsed();
        if !status.is_success() {
            bail!(
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        anyhow::Ok((took, body))
    };
    let (first, body) = once().await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("GET {url}: not JSON"))?;
    let returned = v
        .get("entries")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    let end = Instant::now() + limit;
    let mut times = Vec::with_capacity(n);
    while times.len() < n && Instant::now() < end {
        times.push(once().await?.0);
    }
    Ok(QueryTimes {
        summary: Summary::of(&times).context("no query finished in time")?,
        first,
        returned,
    })
}
