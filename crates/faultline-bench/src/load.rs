//! The ingest load generator: closed-loop clients at full speed, and an
//! open-loop pacer at a fixed rate.

use crate::generate::{EntryPool, Rng, SERVICES};
use crate::http1;
use crate::stats::{Outcome, Tally};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where and as whom to send entries.
#[derive(Clone)]
pub struct Target {
    pub http: reqwest::Client,
    /// `http://ADDR/api/v1/logs`, parsed once (not per request).
    pub url: reqwest::Url,
    /// Ingest token of `svc{i}` at index `i`.
    pub tokens: Arc<[String]>,
}

impl Target {
    /// Posts one JSON array body as `service`.
    pub async fn post(&self, service: usize, body: impl Into<reqwest::Body>) -> Outcome {
        let sent = self
            .http
            .post(self.url.clone())
            .bearer_auth(&self.tokens[service % self.tokens.len()])
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(failure_kind(&e)),
        };
        let status = resp.status().as_u16();
        // Read the whole answer so the connection can be reused.
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(failure_kind(&e)),
        };
        answered(status, &body)
    }

    /// A connection of its own to the server of `url`, for a closed-loop
    /// client (see [`http1`]).
    fn connection(&self) -> http1::Conn {
        let addr = self
            .url
            .socket_addrs(|| None)
            .ok()
            .and_then(|a| a.into_iter().next())
            .expect("the server listens on an IP address");
        http1::Conn::new(addr, self.url.path())
    }
}

/// Posts one JSON array body as `service` on `conn` (see [`Target::post`]).
async fn post_on(
    conn: &mut http1::Conn,
    tokens: &[String],
    service: usize,
    body: &[u8],
) -> Outcome {
    match conn.post(&tokens[service % tokens.len()], body).await {
        Ok((status, answer)) => answered(status, answer),
        Err(http1::Failure::Connect) => Outcome::Failed("connect"),
        Err(http1::Failure::Io) => Outcome::Failed("io"),
        Err(http1::Failure::Timeout) => Outcome::Failed("timeout"),
    }
}

/// The outcome of an answer: a 202 must say how many entries it accepted.
fn answered(status: u16, body: &[u8]) -> Outcome {
    if status != 202 {
        return Outcome::Status(status);
    }
    let accepted = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("accepted").and_then(serde_json::Value::as_u64));
    match accepted {
        Some(n) => Outcome::Accepted(n),
        None => Outcome::Failed("202 without accepted"),
    }
}

fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "io"
    }
}

/// Pause after an answer that asks the client to back off.
async fn back_off(outcome: &Outcome) {
    match outcome {
        Outcome::Accepted(_) => {}
        Outcome::Status(503 | 429) => tokio::time::sleep(Duration::from_millis(100)).await,
        _ => tokio::time::sleep(Duration::from_millis(20)).await,
    }
}

/// `clients` concurrent clients, each posting `batch`-entry arrays drawn
/// from `pool` back to back (rotating over the services' tokens) until
/// `duration` has passed. Returns the tally and the wall time until the
/// last answer.
pub async fn closed_loop(
    target: &Target,
    pool: &Arc<EntryPool>,
    clients: usize,
    batch: usize,
    duration: Duration,
    seed: u64,
) -> (Tally, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for client in 0..clients {
        let target = target.clone();
        let pool = Arc::clone(pool);
        set.spawn(async move {
            let mut rng = Rng::new(seed ^ ((client as u64 + 1) << 32));
            let mut tally = Tally::default();
            let mut k = client;
            let mut conn = target.connection();
            while Instant::now() < deadline {
                let service = k % SERVICES;
                k += 1;
                let body = pool.batch_json(&mut rng, service, batch);
                let t0 = Instant::now();
                let outcome = post_on(&mut conn, &target.tokens, service, &body).await;
                tally.record(&outcome, t0.elapsed());
                back_off(&outcome).await;
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(done) = set.join_next().await {
        total.merge(done.expect("a load client does not panic"));
    }
    (total, start.elapsed())
}

/// An open-loop pass: one `batch`-entry array every `1 / (rate / batch)`
/// seconds for `duration`, whatever the answers, with at most `max_in_flight`
/// requests outstanding. Latency is measured from the scheduled send time, so
/// a server that falls behind is not flattered (no coordinated omission).
pub struct Paced {
    pub tally: Tally,
    /// Batches that started more than 5 ms after their scheduled time.
    pub late: u64,
    pub elapsed: Duration,
}

pub async fn open_loop(
    target: &Target,
    pool: &Arc<EntryPool>,
    entries_per_sec: f64,
    batch: usize,
    duration: Duration,
    max_in_flight: usize,
    seed: u64,
) -> Paced {
    let batches_per_sec = (entries_per_sec / batch as f64).max(0.1);
    let period = Duration::from_secs_f64(1.0 / batches_per_sec);
    let total = (duration.as_secs_f64() * batches_per_sec).ceil().max(1.0) as u64;
    let late = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut set = JoinSet::new();
    let mut tally = Tally::default();
    for k in 0..total {
        let scheduled = ticks.tick().await;
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let target = target.clone();
        let pool = Arc::clone(pool);
        let late = late.clone();
        set.spawn(async move {
            let _permit = permit;
            if scheduled.elapsed() > Duration::from_millis(5) {
                late.fetch_add(1, Ordering::Relaxed);
            }
            let service = (k as usize) % SERVICES;
            let mut rng = Rng::new(seed ^ k.wrapping_mul(0x2545_F491));
            let body = pool.batch_json(&mut rng, service, batch);
            let outcome = target.post(service, body).await;
            (outcome, scheduled.elapsed())
        });
        while let Some(done) = set.try_join_next() {
            let (outcome, latency) = done.expect("a paced request does not panic");
            tally.record(&outcome, latency);
        }
    }
    while let Some(done) = set.join_next().await {
        let (outcome, latency) = done.expect("a paced request does not panic");
        tally.record(&outcome, latency);
    }
    Paced {
        tally,
        late: late.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_outcomes() {
        assert!(matches!(
            answered(202, br#"{"accepted":100}"#),
            Outcome::Accepted(100)
        ));
        assert!(matches!(
            answered(202, b"{}"),
            Outcome::Failed("202 without accepted")
        ));
        assert!(matches!(
            answered(503, br#"{"error":"overloaded"}"#),
            Outcome::Status(503)
        ));
    }
}
