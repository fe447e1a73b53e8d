//! The delivery task: sends the outbox's due notifications to their
//! channels, retries failures with exponential backoff and jitter, and
//! moves a notification to the dead-letter queue after the last attempt.
//!
//! A notification is marked delivered only after a 2xx answer; a crash
//! between the answer and the mark sends it again after the restart, with
//! the same `X-Faultline-Delivery` id (receivers can drop the repeat). A
//! trigger enters the outbox once per channel, ever (the store refuses a
//! second row with the same trigger id), so retries and restarts never
//! make a second notification.

use faultline_alerts::{ChannelSpec, Trigger, request};
use faultline_model::now_micros;
use faultline_store::{Attempt, Notification, Store};
use rand::RngExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Notifications taken per round.
const BATCH: usize = 50;
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where links in notifications point.
    pub public_url: String,
    /// Wait before the second attempt; doubles each time (with ±20 %).
    pub retry_base: Duration,
    /// Attempts before the dead-letter queue.
    pub max_attempts: u32,
}

/// The wait before the attempt after `attempts` failed ones.
pub fn backoff(settings: &Settings, attempts: u32) -> Duration {
    let exp = settings
        .retry_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let base = exp.min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.8..1.2);
    base.mul_f64(jitter)
}

pub async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; notifications stay queued");
            return;
        }
    };
    loop {
        let s = store.clone();
        let due = tokio::task::spawn_blocking(move || {
            let now = now_micros();
            Ok::<_, faultline_store::StoreError>((s.due_notifications(now, BATCH)?, s.next_due()?))
        })
        .await;
        let (due, next) = match due {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                (Vec::new(), None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox read panicked");
                (Vec::new(), None)
            }
        };
        let full = due.len() == BATCH;
        for n in due {
            if *stop.borrow() {
                return;
            }
            deliver(&store, &client, &settings, n).await;
        }
        if full {
            continue;
        }
        // Sleep until the next one is due (at most a minute), new ones are
        // queued, or the server stops.
        let wait = next
            .map(|t| {
                let micros = t.saturating_sub(now_micros()).clamp(0, 60_000_000);
                Duration::from_micros(u64::try_from(micros).unwrap_or(0))
            })
            .unwrap_or(Duration::from_secs(60));
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn deliver(
    store: &Arc<dyn Store>,
    client: &reqwest::Client,
    settings: &Settings,
    n: Notification,
) {
    let outcome = attempt(store, client, settings, &n).await;
    let at = now_micros();
    let (result, label) = match outcome {
        Ok(()) => (Attempt::Delivered { at }, "sent"),
        Err(error) => {
            let attempts = n.attempts + 1;
            if attempts >= settings.max_attempts {
                tracing::warn!(id = n.id, channel = %n.channel, %error, attempts, "notification dead-lettered");
                (
                    Attempt::Failed {
                        at,
                        error,
                        retry_at: None,
                    },
                    "dead",
                )
            } else {
                let wait = backoff(settings, attempts);
                tracing::info!(id = n.id, channel = %n.channel, %error, attempts, retry_in = ?wait, "notification failed; will retry");
                (
                    Attempt::Failed {
                        at,
                        error,
                        retry_at: Some(
                            at.saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX)),
                        ),
                    },
                    "failed",
                )
            }
        }
    };
    metrics::counter!("faultline_notifications_total", "outcome" => label).increment(1);
    let s = store.clone();
    let id = n.id;
    let saved = tokio::task::spawn_blocking(move || s.record_attempt(id, &result)).await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!(id, "could not record a delivery attempt");
    }
}

/// One attempt; `Err` says why it failed.
async fn attempt(
    store: &Arc<dyn Store>,
    client: &reqwest::Client,
    settings: &Settings,
    n: &Notification,
) -> Result<(), String> {
    let trigger: Trigger =
        serde_json::from_str(&n.trigger).map_err(|e| format!("unreadable trigger: {e}"))?;
    let s = store.clone();
    let project = n.project.clone();
    let channels = tokio::task::spawn_blocking(move || s.list_channels(Some(&project)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let spec = channels
        .iter()
        .find(|c| c.name == n.channel)
        .ok_or_else(|| format!("channel {:?} does not exist (any more)", n.channel))?;
    let channel: ChannelSpec =
        serde_json::from_str(&spec.spec).map_err(|e| format!("unreadable channel: {e}"))?;
    let Some(req) = request(
        &channel.kind,
        &trigger,
        &settings.public_url,
        &n.id.to_string(),
    ) else {
        // The channel takes no notification of this kind (chat channels
        // and resolutions): done.
        return Ok(());
    };
    let mut builder = client.post(&req.url).body(req.body);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let resp = builder.send().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        Err(format!("HTTP {status}: {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let s = Settings {
            public_url: String::new(),
            retry_base: Duration::from_secs(2),
            max_attempts: 5,
        };
        for (attempts, base) in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 1024.0), (30, 3600.0)] {
            let w = backoff(&s, attempts).as_secs_f64();
            assert!(
                w >= base * 0.8 - 1e-9 && w <= base * 1.2 + 1e-9,
                "{attempts}: {w}"
            );
        }
    }
}
