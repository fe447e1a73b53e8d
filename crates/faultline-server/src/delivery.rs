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

use faultline_alerts::{ChannelKind, ChannelSpec, Trigger, TriggerKind, email_text, request};
use faultline_model::now_micros;
use faultline_store::IssueTicket;
use faultline_store::{Attempt, Notification, Store};
use faultline_tickets::{Link, Occurrence, ShotGrid, ShotGridConfig, TicketRef, file_ticket};
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
    crate::install_tls_provider();
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
    let mut trackers = Trackers::new();
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
            deliver(&store, &client, &mut trackers, &settings, n).await;
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

/// ShotGrid clients by channel (their tokens are cached across
/// deliveries), keyed by project, channel and spec.
type Trackers = std::collections::HashMap<String, Arc<ShotGrid>>;

async fn deliver(
    store: &Arc<dyn Store>,
    client: &reqwest::Client,
    trackers: &mut Trackers,
    settings: &Settings,
    n: Notification,
) {
    let outcome = attempt(store, client, trackers, settings, &n).await;
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
    trackers: &mut Trackers,
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
    if let ChannelKind::Shotgrid {
        site,
        script_name,
        script_key,
        project_id,
        signature_field,
        closed_status,
        note_interval,
    } = &channel.kind
    {
        let key = format!("{}/{}/{}", n.project, n.channel, spec.spec);
        let tracker = trackers
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ShotGrid::new(
                    ShotGridConfig {
                        site: site.clone(),
                        script_name: script_name.clone(),
                        script_key: script_key.clone(),
                        project_id: *project_id,
                        signature_field: signature_field.clone(),
                        closed_status: closed_status.clone(),
                    },
                    client.clone(),
                ))
            })
            .clone();
        let interval = note_interval
            .as_deref()
            .and_then(faultline_model::parse_duration)
            .unwrap_or(Duration::from_secs(3600));
        return ticket(store, tracker.as_ref(), &trigger, settings, interval).await;
    }
    if let ChannelKind::Email {
        smtp_host,
        smtp_port,
        tls,
        username,
        password,
        from,
        to,
    } = &channel.kind
    {
        if trigger.kind == TriggerKind::Resolved {
            return Ok(());
        }
        let (subject, body) = email_text(&trigger, &settings.public_url);
        return send_mail(
            smtp_host,
            *smtp_port,
            tls.as_deref().unwrap_or("starttls"),
            username.as_deref().zip(password.as_deref()),
            from,
            to,
            &subject,
            body,
            &n.id.to_string(),
        )
        .await;
    }
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

/// Sends one notification e-mail over SMTP.
#[allow(clippy::too_many_arguments)]
async fn send_mail(
    host: &str,
    port: Option<u16>,
    tls: &str,
    credentials: Option<(&str, &str)>,
    from: &str,
    to: &[String],
    subject: &str,
    body: String,
    delivery_id: &str,
) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    crate::install_tls_provider();
    let mut message = Message::builder()
        .from(from.parse().map_err(|e| format!("from {from:?}: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .message_id(Some(format!("<faultline-{delivery_id}@{host}>")));
    for addr in to {
        message = message.to(addr.parse().map_err(|e| format!("to {addr:?}: {e}"))?);
    }
    let message = message.body(body).map_err(|e| e.to_string())?;
    let builder = match tls {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| e.to_string())?,
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        _ => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| e.to_string())?
        }
    };
    let mut builder = builder.timeout(Some(TIMEOUT));
    if let Some(p) = port {
        builder = builder.port(p);
    }
    if let Some((user, pass)) = credentials {
        builder = builder.credentials(Credentials::new(user.to_owned(), pass.to_owned()));
    }
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}

/// Files (or notes) the ticket of the trigger's issue.
async fn ticket(
    store: &Arc<dyn Store>,
    tracker: &ShotGrid,
    trigger: &Trigger,
    settings: &Settings,
    note_interval: Duration,
) -> Result<(), String> {
    if trigger.kind == TriggerKind::Resolved {
        return Ok(());
    }
    let issue = trigger.issue_id.ok_or(
        "ticket channels need per-issue rules (frequency per issue, new_issue or regression)",
    )?;
    let s = store.clone();
    let (link, event, blob) = tokio::task::spawn_blocking(move || {
        let link = s.issue_ticket(issue)?;
        let event = s.issue_events(issue, None, 1)?.pop();
        let blob = match event.as_ref().and_then(|e| e.details.attachments.first()) {
            Some(a) if link.is_none() => s.get_attachment(&a.sha256)?.map(|b| (a.clone(), b)),
            _ => None,
        };
        Ok::<_, faultline_store::StoreError>((link, event, blob))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let attachment = match blob {
        Some((r, b)) => {
            let mut out = Vec::with_capacity(b.size as usize);
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&b.gzip[..]), &mut out)
                .map_err(|e| format!("a stored attachment does not decompress: {e}"))?;
            Some((r.name, r.content_type, out))
        }
        None => None,
    };
    let link_url = format!(
        "{}/api/v1/issues/{issue}",
        settings.public_url.trim_end_matches('/')
    );
    let (matched, host, user, at) = match &event {
        Some(e) => (
            e.message.lines().take(20).collect::<Vec<_>>().join("\n"),
            e.host.clone().unwrap_or_else(|| "-".into()),
            e.user.clone().unwrap_or_else(|| "-".into()),
            faultline_model::format_rfc3339_micros(e.timestamp),
        ),
        None => (
            trigger.title.clone(),
            "-".into(),
            "-".into(),
            faultline_model::format_rfc3339_micros(trigger.fired_at),
        ),
    };
    let occ = Occurrence {
        signature: trigger.title.clone(),
        description: format!(
            "Matched line:\n{matched}\n\nDetected at: {at}\nHost: {host}\nUser: {user}\nProject / service: {}/{}\nfaultline: {link_url}",
            trigger.project, trigger.service
        ),
        attachment,
        now: now_micros(),
        note_interval: i64::try_from(note_interval.as_micros()).unwrap_or(i64::MAX),
        note: format!(
            "Seen again: {} event(s), last at {} on {host}. {link_url}",
            trigger.count,
            faultline_model::format_rfc3339_micros(trigger.last_at)
        ),
    };
    let current = link.map(|l| Link {
        tracker: l.tracker,
        ticket: TicketRef {
            id: l.external_id,
            url: l.url,
        },
        attached: l.attached,
        last_note_at: l.last_note_at,
    });
    let s = store.clone();
    let mut save = move |l: &Link| {
        s.set_issue_ticket(
            issue,
            &IssueTicket {
                tracker: l.tracker.clone(),
                external_id: l.ticket.id.clone(),
                url: l.ticket.url.clone(),
                attached: l.attached,
                last_note_at: l.last_note_at,
            },
        )
        .map_err(|e| e.to_string())
    };
    let (filed, link) = file_ticket(tracker, current, &occ, &mut save).await?;
    tracing::info!(issue, ticket = %link.ticket.id, ?filed, "ticket");
    metrics::counter!("faultline_tickets_total", "outcome" => format!("{filed:?}").to_lowercase())
        .increment(1);
    Ok(())
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
