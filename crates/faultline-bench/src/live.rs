//! Live-tail delay: a WebSocket subscriber on `svc0` while paced load runs;
//! every 50 ms a batch to `svc0` carries a unique marker word, and the delay
//! is the time from that batch's 202 to the marker's arrival on the socket.

use crate::generate::{EntryPool, Generator};
use crate::load::{Paced, Target, open_loop};
use crate::stats::Outcome;
use anyhow::Context;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Prefix of the marker word; the sequence number and an `x` follow.
const MARK: &str = "fltlivemark";
/// Sequence numbers of the warm-up markers (sent until one arrives, so the
/// subscription is known to be active before measuring).
const WARMUP_SEQ: u64 = 1_000_000_000;
const MARKER_PERIOD: Duration = Duration::from_millis(50);

pub struct LiveResult {
    /// Marker batches answered 202.
    pub acked: usize,
    /// Of those, markers that arrived on the socket.
    pub seen: usize,
    /// Arrival minus 202, zero when the entry arrived first.
    pub delays: Vec<Duration>,
    /// Markers that arrived before their 202.
    pub early: usize,
    /// Entries received on the socket in all.
    pub entries: u64,
    /// Entries the server reported as dropped for this subscriber.
    pub dropped: u64,
    /// The background load.
    pub load: Paced,
}

struct Arrival {
    seq: u64,
    at: Instant,
}

/// Runs the phase; `load_rate` entries/s of background load go to all
/// services while markers go to `svc0`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: &Target,
    pool: &Arc<EntryPool>,
    ws_url: &str,
    admin_token: &str,
    load_rate: f64,
    batch: usize,
    duration: Duration,
    max_in_flight: usize,
    seed: u64,
) -> anyhow::Result<LiveResult> {
    let mut request = ws_url
        .into_client_request()
        .context("invalid live-tail URL")?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {admin_token}")
            .parse()
            .context("the admin token is not a valid header value")?,
    );
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .context("the live-tail WebSocket did not open within 10 s")?
    .context("cannot open the live-tail WebSocket")?;
    let (_write, mut read) = socket.split();

    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<Arrival>();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let hard_end = Instant::now() + duration + Duration::from_secs(60);
    let reader = tokio::spawn(async move {
        let mut entries = 0u64;
        let mut dropped = 0u64;
        loop {
            let next = tokio::select! {
                _ = &mut stop_rx => break,
                next = tokio::time::timeout_at(hard_end, read.next()) => next,
            };
            let text = match next {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
                _ => break,
            };
            let at = Instant::now();
            let text = text.as_str();
            if let Some(n) = dropped_notice(text) {
                dropped += n;
                continue;
            }
            entries += 1;
            if let Some(seq) = text.contains(MARK).then(|| marker_seq(text)).flatten() {
                let _ = arrivals_tx.send(Arrival { seq, at });
            }
        }
        (entries, dropped)
    });

    // Warm up until a marker makes the round trip (at most 10 s).
    let mut generator = Generator::new(seed);
    let warm_end = Instant::now() + Duration::from_secs(10);
    let mut warm_seq = WARMUP_SEQ;
    let mut warm = false;
    while !warm && Instant::now() < warm_end {
        let body = generator.batch_json(0, batch, Some(&format!("{MARK}{warm_seq}x")));
        warm_seq += 1;
        target.post(0, body).await;
        let wait = tokio::time::timeout(Duration::from_millis(500), arrivals.recv()).await;
        warm = matches!(wait, Ok(Some(_)));
    }
    anyhow::ensure!(
        warm,
        "no entry arrived on the live-tail WebSocket within 10 s"
    );

    let markers = async {
        let mut acked = HashMap::new();
        let mut ticks = tokio::time::interval(MARKER_PERIOD);
        let total = (duration.as_secs_f64() / MARKER_PERIOD.as_secs_f64()) as u64;
        for seq in 0..total {
            ticks.tick().await;
            let body = generator.batch_json(0, batch, Some(&format!("{MARK}{seq}x")));
            if let Outcome::Accepted(_) = target.post(0, body).await {
                acked.insert(seq, Instant::now());
            }
        }
        acked
    };
    let background = open_loop(
        target,
        pool,
        load_rate,
        batch,
        duration,
        max_in_flight,
        seed ^ 0xA11,
    );
    let (acked, load) = tokio::join!(markers, background);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(());
    let (entries, dropped) = reader.await.context("the live-tail reader panicked")?;

    let mut arrived: HashMap<u64, Instant> = HashMap::new();
    while let Ok(a) = arrivals.try_recv() {
        arrived.entry(a.seq).or_insert(a.at);
    }
    let mut delays = Vec::new();
    let mut early = 0;
    for (seq, ack) in &acked {
        if let Some(at) = arrived.get(seq) {
            if at < ack {
                early += 1;
            }
            delays.push(at.saturating_duration_since(*ack));
        }
    }
    Ok(LiveResult {
        acked: acked.len(),
        seen: delays.len(),
        delays,
        early,
        entries,
        dropped,
        load,
    })
}

/// `{"dropped": N}` → N.
fn dropped_notice(text: &str) -> Option<u64> {
    if !text.trim_start().starts_with("{\"dropped\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("dropped")?.as_u64()
}

/// The sequence number of the marker in an entry's message.
fn marker_seq(entry_json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(entry_json).ok()?;
    let message = v.get("message")?.as_str()?;
    let at = message.find(MARK)? + MARK.len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_markers_and_notices() {
        let entry = format!(r#"{{"id":1,"message":"GET /x 200 {MARK}42x","service":"svc0"}}"#);
        assert_eq!(marker_seq(&entry), Some(42));
        assert_eq!(marker_seq(r#"{"message":"nothing here"}"#), None);
        assert_eq!(dropped_notice(r#"{"dropped": 17}"#), Some(17));
        assert_eq!(dropped_notice(&entry), None);
    }
}
