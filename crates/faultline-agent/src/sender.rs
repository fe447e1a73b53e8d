//! Delivery: drains the spool oldest first to the server.
//!
//! | reply | what happens |
//! |---|---|
//! | 2xx | the item is removed from the spool |
//! | 408, 429, 5xx, connection error, timeout | retried after a backoff with jitter, or exactly `Retry-After` when the server gives one; the item stays first in line |
//! | other 4xx (400, 401, 403, 413, …) | permanent: the item moves to `dead-letter/` with the reason, an error is logged, the queue goes on |
//!
//! Incidents carry `Idempotency-Key` (also in the body), so a retry after
//! a lost reply never creates a second event. Drops reported by the spool
//! go out as `dropped_before` of the next incident and as a warn log entry.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backoff::{Backoff, parse_retry_after};
use crate::config::AgentConfig;
use crate::http::{self, Client, Response};
use crate::pipeline::{Envelope, Shared};
use crate::spool::{Dropped, Kind};

/// Log batches larger than this are sent gzip-compressed.
pub const GZIP_ABOVE: usize = 8 * 1024;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// How a reply is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Delivered,
    /// Try again later (after `Retry-After` when given).
    Retry(Option<Duration>),
    /// Never going to work.
    Permanent,
}

/// Classifies a reply.
pub fn classify(status: u16, retry_after: Option<&str>) -> Outcome {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => {
            Outcome::Retry(retry_after.and_then(|v| parse_retry_after(v, now)))
        }
        _ => Outcome::Permanent,
    }
}

/// Delivery counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct SenderStats {
    /// Items delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub retries: u64,
    /// Items dead-lettered.
    pub dead: u64,
}

/// The delivery loop.
pub struct Sender {
    cfg: Arc<AgentConfig>,
    shared: Arc<Shared>,
    client: Client,
    backoff: Backoff,
    warned: Dropped,
    /// A failed drop report is not retried before this (one extra request
    /// per item otherwise).
    next_report: Instant,
    /// Counters.
    pub stats: SenderStats,
}

impl Sender {
    /// A sender to `cfg.server` (validated by the config).
    pub fn new(cfg: Arc<AgentConfig>, shared: Arc<Shared>) -> Result<Sender, http::ClientError> {
        let client = Client::new(
            cfg.server.as_deref().unwrap_or_default(),
            cfg.ca_file.as_deref(),
        )?;
        let seed = u64::from(std::process::id())
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64);
        Ok(Sender {
            backoff: Backoff::new(cfg.initial_backoff, cfg.max_backoff, seed),
            cfg,
            shared,
            client,
            warned: Dropped::default(),
            next_report: Instant::now(),
            stats: SenderStats::default(),
        })
    }

    /// Runs until stopped.
    pub fn run(mut self) {
        while !self.shared.stopping() {
            match self.step() {
                Some(delay) => self.sleep(delay),
                None => {
                    let g = self.shared.spool.lock().expect("spool lock poisoned");
                    if g.is_empty() && !self.shared.stopping() {
                        let _ = self
                            .shared
                            .wake
                            .wait_timeout(g, Duration::from_secs(1))
                            .expect("spool lock poisoned");
                    }
                }
            }
        }
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut g = self.shared.spool.lock().expect("spool lock poisoned");
        while !self.shared.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            g = self
                .shared
                .wake
                .wait_timeout(g, until - now)
                .expect("spool lock poisoned")
                .0;
        }
    }

    /// Sends the oldest item. `None`: sent, refused for good, or nothing to
    /// send; `Some(delay)`: retry after `delay`.
    pub fn step(&mut self) -> Option<Duration> {
        let (item, dropped) = {
            let mut s = self.shared.spool.lock().expect("spool lock poisoned");
            match s.take_oldest() {
                Ok(i) => (i, s.dropped()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    return Some(Duration::from_secs(5));
                }
            }
        };
        let (seq, kind, bytes) = item?;
        let env: Envelope = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                self.dead(seq, &format!("unreadable spool item: {e}"));
                return None;
            }
        };
        let Some(token) = self.cfg.token_for(&env.source).map(str::to_owned) else {
            self.dead(seq, &format!("no token for source {:?}", env.source));
            return None;
        };
        if dropped != self.warned && !dropped.is_empty() && Instant::now() >= self.next_report {
            self.report_drops(&token, dropped);
        }
        let mut body = env.body;
        let mut reported = Dropped::default();
        let (path, key) = match kind {
            Kind::Incident => {
                if dropped.incidents > 0 {
                    body["dropped_before"] = dropped.incidents.into();
                    reported.incidents = dropped.incidents;
                }
                let key = body["idempotency_key"].as_str().map(str::to_owned);
                ("/api/v1/incidents", key)
            }
            Kind::Lines(_) => ("/api/v1/logs", None),
        };
        let mut payload = serde_json::to_vec(&body).expect("value serializes");
        let auth = format!("Bearer {token}");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        // Log batches compress well (the server accepts gzip bodies);
        // an incident's attachment is already gzip.
        if matches!(kind, Kind::Lines(_)) && payload.len() > GZIP_ABOVE {
            payload = gzip(&payload);
            headers.push(("Content-Encoding", "gzip"));
        }
        if let Some(k) = &key {
            headers.push(("Idempotency-Key", k.as_str()));
        }
        let result = self.client.post(path, &headers, &payload, self.cfg.timeout);
        let outcome = match &result {
            Ok(r) => classify(r.status, r.header("retry-after")),
            Err(_) => Outcome::Retry(None),
        };
        let mut s = self.shared.spool.lock().expect("spool lock poisoned");
        match outcome {
            Outcome::Delivered => {
                self.stats.delivered += 1;
                self.backoff.reset();
                if let Err(e) = s.remove(seq) {
                    tracing::error!(error = %e, "cannot remove a delivered item (it will be sent again)");
                }
                if reported.incidents > 0 {
                    let _ = s.reported(reported);
                    self.warned.incidents =
                        self.warned.incidents.saturating_sub(reported.incidents);
                }
                tracing::debug!(seq, path, "delivered");
                None
            }
            Outcome::Retry(ra) => {
                s.release();
                drop(s);
                self.stats.retries += 1;
                let delay = self.backoff.next_delay(ra);
                match &result {
                    Ok(r) => {
                        tracing::warn!(status = r.status, retry_in = ?delay, "server asked to retry")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, server = ?self.cfg.server, "delivery failed (server unreachable, TLS refused or connection lost)")
                    }
                }
                Some(delay)
            }
            Outcome::Permanent => {
                drop(s);
                let r = result.expect("permanent outcomes come from replies");
                let reason = describe(&r);
                tracing::error!(status = r.status, %reason, path, "server refused an item for good; kept in dead-letter");
                self.dead(seq, &format!("{} {reason}", r.status));
                self.backoff.reset();
                None
            }
        }
    }

    fn dead(&mut self, seq: u64, reason: &str) {
        self.stats.dead += 1;
        let mut s = self.shared.spool.lock().expect("spool lock poisoned");
        match s.dead_letter(seq, reason) {
            Ok(p) => tracing::error!(path = %p.display(), reason, "item moved to dead-letter"),
            Err(e) => {
                tracing::error!(error = %e, "cannot move an item to dead-letter; removing it");
                let _ = s.remove(seq);
            }
        }
    }

    /// A warn log entry telling the server how much the full spool
    /// dropped. Best effort; lines are marked reported when it got in.
    fn report_drops(&mut self, token: &str, d: Dropped) {
        let entry = serde_json::json!({
            "level": "warn",
            "message": format!(
                "faultline-agent spool full: dropped {} incidents and {} log lines",
                d.incidents, d.lines
            ),
            "tags": ["faultline-agent"],
            "attributes": {
                "faultline.dropped_incidents": d.incidents,
                "faultline.dropped_lines": d.lines,
            },
        });
        let auth = format!("Bearer {token}");
        let body = serde_json::to_vec(&entry).expect("value serializes");
        let reply = self.client.post(
            "/api/v1/logs",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &body,
            self.cfg.timeout,
        );
        let ok = match &reply {
            Ok(r) if (200..300).contains(&r.status) => true,
            Ok(r) => {
                // The server answered but refused (e.g. the token may not
                // write logs): not again for a minute.
                tracing::warn!(
                    status = r.status,
                    "could not report the spool drops; retrying in a minute"
                );
                self.next_report = Instant::now() + Duration::from_secs(60);
                false
            }
            // Unreachable: tried again with the next delivery attempt.
            Err(_) => false,
        };
        if ok {
            self.warned = d;
            if d.lines > 0 {
                let _ = self
                    .shared
                    .spool
                    .lock()
                    .expect("spool lock poisoned")
                    .reported(Dropped {
                        incidents: 0,
                        lines: d.lines,
                    });
                self.warned.lines = 0;
            }
        }
    }
}

fn describe(r: &Response) -> String {
    match serde_json::from_slice::<serde_json::Value>(&r.body) {
        Ok(v) => format!(
            "{}: {}",
            v["error"].as_str().unwrap_or("error"),
            v["detail"].as_str().unwrap_or("")
        ),
        Err(_) => String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_replies() {
        assert_eq!(classify(202, None), Outcome::Delivered);
        assert_eq!(classify(200, None), Outcome::Delivered);
        assert_eq!(
            classify(503, Some("3")),
            Outcome::Retry(Some(Duration::from_secs(3)))
        );
        assert_eq!(classify(429, None), Outcome::Retry(None));
        assert_eq!(classify(408, None), Outcome::Retry(None));
        assert_eq!(classify(500, Some("garbage")), Outcome::Retry(None));
        for s in [400, 401, 403, 404, 413, 415] {
            assert_eq!(classify(s, None), Outcome::Permanent, "{s}");
        }
    }
}
