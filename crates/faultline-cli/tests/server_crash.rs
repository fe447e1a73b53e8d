//! Crash safety of a real `faultline server`: concurrent clients post
//! batches with unique ids while the server is killed with SIGKILL (or
//! stopped with SIGTERM, or overloaded); after a restart on the same data
//! directory every acknowledged batch is present in full and no batch is
//! present in part.

mod common;

use common::{Rng, Server};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Heavy tests run one at a time: they measure nothing, but two of them
/// sharing 2 cores make each slower for no benefit.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What became of one posted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 202.
    Acked,
    /// An HTTP answer other than 202.
    Refused(u16),
    /// The connection failed: no answer.
    NoAnswer,
}

#[derive(Debug, Clone)]
struct Sent {
    id: u64,
    size: u64,
    outcome: Outcome,
}

#[derive(Debug, Default)]
struct Tally {
    acked: usize,
    refused: usize,
    no_answer: usize,
    acked_entries: u64,
}

fn tally(sent: &[Sent]) -> Tally {
    let mut t = Tally::default();
    for b in sent {
        match b.outcome {
            Outcome::Acked => {
                t.acked += 1;
                t.acked_entries += b.size;
            }
            Outcome::Refused(_) => t.refused += 1,
            Outcome::NoAnswer => t.no_answer += 1,
        }
    }
    t
}

/// Runs `clients` concurrent posters against `url` until `stop` is set or a
/// poster gets no answer (the server is gone), at most `max_time`. Batch ids
/// are `base + client * 1_000_000 + k`, entries carry `batch` and `seq`.
fn spawn_clients(
    http: &reqwest::Client,
    url: String,
    token: &str,
    clients: u64,
    base: u64,
    stop: Arc<AtomicBool>,
    max_time: Duration,
) -> Vec<tokio::task::JoinHandle<Vec<Sent>>> {
    (0..clients)
        .map(|c| {
            let http = http.clone();
            let url = url.clone();
            let token = token.to_string();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(base + c);
                let mut sent = Vec::new();
                let started = Instant::now();
                for k in 0..100_000u64 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > max_time {
                        break;
                    }
                    let id = base + c * 1_000_000 + k;
                    let size = rng.range(50, 200);
                    let batch: Vec<Value> = (0..size)
                        .map(|seq| {
                            json!({
                                "message": format!("batch {id} entry {seq}"),
                                "level": if seq % 7 == 0 { "error" } else { "info" },
                                "attributes": {"batch": id, "seq": seq}
                            })
                        })
                        .collect();
                    let outcome = match http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&batch)
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            // The answer counts once its body arrived.
                            match r.text().await {
                                Ok(body) if status == 202 => {
                                    assert_eq!(
                                        serde_json::from_str::<Value>(&body).unwrap(),
                                        json!({"accepted": size})
                                    );
                                    Outcome::Acked
                                }
                                Ok(_) => Outcome::Refused(status),
                                Err(_) => Outcome::NoAnswer,
                            }
                        }
                        Err(_) => Outcome::NoAnswer,
                    };
                    sent.push(Sent { id, size, outcome });
                    if outcome == Outcome::NoAnswer {
                        break;
                    }
                }
                sent
            })
        })
        .collect()
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Vec<Sent>>>) -> Vec<Sent> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("client ends")
                .unwrap(),
        );
    }
    all
}

/// Walks every entry of `service` (cursor paging) and checks the batches:
/// acknowledged → complete; refused → absent; unanswered → complete or
/// absent; nothing unknown, nothing twice.
async fn verify(s: &Server, service: &str, sent: &[Sent]) -> (usize, usize) {
    let mut found: HashMap<u64, HashSet<u64>> = HashMap::new();
    let mut dup = Vec::new();
    let mut total = 0u64;
    let pages = s
        .walk(
            &s.admin,
            &[("service", service), ("limit", "1000")],
            5_000,
            |e| {
                let a = &e["attributes"];
                let batch = a["batch"].as_u64().expect("batch attribute");
                let seq = a["seq"].as_u64().expect("seq attribute");
                assert_eq!(
                    e["message"],
                    format!("batch {batch} entry {seq}"),
                    "the entry is intact"
                );
                if !found.entry(batch).or_default().insert(seq) {
                    dup.push((batch, seq));
                }
                total += 1;
            },
        )
        .await;
    assert!(
        dup.is_empty(),
        "entries stored twice: {:?}",
        &dup[..dup.len().min(10)]
    );
    let by_id: HashMap<u64, &Sent> = sent.iter().map(|b| (b.id, b)).collect();
    let unknown: Vec<&u64> = found.keys().filter(|id| !by_id.contains_key(id)).collect();
    assert!(unknown.is_empty(), "batches nobody sent: {unknown:?}");
    let mut present_unanswered = 0;
    let mut absent_unanswered = 0;
    for b in sent {
        let seqs = found.get(&b.id);
        let n = seqs.map_or(0, |s| s.len() as u64);
        let complete = n == b.size && seqs.is_some_and(|s| s.iter().all(|&q| q < b.size));
        match b.outcome {
            Outcome::Acked => assert!(
                complete,
                "acknowledged batch {} has {n} of {} entries",
                b.id, b.size
            ),
            Outcome::Refused(status) => assert_eq!(
                n, 0,
                "batch {} refused with {status} has {n} entries stored",
                b.id
            ),
            Outcome::NoAnswer => {
                assert!(
                    n == 0 || complete,
                    "unanswered batch {} is partially stored: {n} of {}",
                    b.id,
                    b.size
                );
                if n == 0 {
                    absent_unanswered += 1;
                } else {
                    present_unanswered += 1;
                }
            }
        }
    }
    let t = tally(sent);
    let present: u64 = sent
        .iter()
        .filter(|b| found.contains_key(&b.id))
        .map(|b| b.size)
        .sum();
    assert_eq!(total, present, "only whole batches are stored");
    assert!(total >= t.acked_entries);
    eprintln!(
        "{service}: {} batches acked ({} entries), {} refused, {} unanswered \
         ({present_unanswered} stored, {absent_unanswered} not); {total} entries in {pages} pages",
        t.acked, t.acked_entries, t.refused, t.no_answer
    );
    (present_unanswered, absent_unanswered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_never_loses_acknowledged_batches_nor_splits_one() {
    let _heavy = HEAVY.lock().await;
    let mut s = Server::start_default().await;
    let mut rounds: Vec<(String, Vec<Sent>)> = Vec::new();
    // Kill at three different moments of the ingest.
    for (round, kill_after) in [(1u64, 500u64), (2, 1200), (3, 2400)] {
        let service = format!("crash-r{round}");
        let token = s.ingest_token("crash", &service);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = spawn_clients(
            &s.http,
            s.url("/api/v1/logs"),
            &token,
            6,
            round * 100_000_000,
            stop.clone(),
            Duration::from_secs(20),
        );
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        let status = s.kill9();
        assert!(status.is_some(), "the server was running when killed");
        let sent = join_all(tasks).await;
        stop.store(true, Ordering::Relaxed);
        let t = tally(&sent);
        assert!(
            t.acked > 0,
            "round {round}: some batches were acknowledged before the kill"
        );
        assert!(
            t.no_answer > 0,
            "round {round}: clients were still posting when the server died"
        );
        s.restart().await;
        let r = s.get("/readyz", None, &[]).await;
        assert_eq!(r.status, 200, "ready after a crash: {}", r.text);
        verify(&s, &service, &sent).await;
        rounds.push((service, sent));
    }
    // Earlier rounds survived the later kills too.
    for (service, sent) in &rounds {
        verify(&s, service, sent).await;
    }
    // Service counters agree with what is stored.
    let services = s.services(&s.admin, &[("project", "crash")]).await;
    for (service, _) in &rounds {
        let mut n = 0u64;
        s.walk(&s.admin, &[("service", service.as_str())], 5_000, |_| {
            n += 1
        })
        .await;
        let summary = services
            .iter()
            .find(|v| v["name"] == service.as_str())
            .unwrap();
        assert_eq!(
            summary["count"], n,
            "{service}: services count = stored entries"
        );
    }
    // The restarted server takes new data.
    let token = s.ingest_token("crash", "after");
    s.ingest(&token, &json!({"message": "alive after three crashes"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_batches_and_exits_zero() {
    let _heavy = HEAVY.lock().await;
    let mut s = Server::start_default().await;
    let token = s.ingest_token("crash", "graceful");
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = spawn_clients(
        &s.http,
        s.url("/api/v1/logs"),
        &token,
        6,
        900_000_000,
        stop.clone(),
        Duration::from_secs(20),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let t = Instant::now();
    s.sigterm();
    // Clients keep posting while the server shuts down.
    let status = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(15)));
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let status = status.unwrap_or_else(|| {
        panic!(
            "no exit within 15 s of SIGTERM; stderr: {:#?}",
            s.stderr_lines()
        )
    });
    assert!(status.success(), "graceful exit status: {status:?}");
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM"
    );
    let sent = join_all(tasks).await;
    let t = tally(&sent);
    assert!(t.acked > 0);

    s.restart().await;
    verify(&s, "graceful", &sent).await;
    // No refusals other than "unavailable" while shutting down.
    for b in &sent {
        if let Outcome::Refused(st) = b.outcome {
            assert_eq!(st, 503, "batch {} refused with {st}", b.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overloaded_batches_are_refused_whole_with_retry_after() {
    let _heavy = HEAVY.lock().await;
    let s = Server::start_with_config("[queue]\ncapacity = 50\nwait = \"1ms\"\n").await;
    let token = s.ingest_token("crash", "overload");
    // A direct look at one 503.
    let mut saw_503 = false;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = spawn_clients(
        &s.http,
        s.url("/api/v1/logs"),
        &token,
        8,
        700_000_000,
        stop.clone(),
        Duration::from_millis(1500),
    );
    for _ in 0..200 {
        let batch: Vec<Value> = (0..60)
            .map(|i| json!({"message": format!("probe {i}"), "attributes": {"batch": 1u64, "seq": i}}))
            .collect();
        let r = s.post_json(&token, &Value::Array(batch)).await;
        if r.status == 503 {
            r.assert_error(503, "overloaded");
            assert_eq!(
                r.headers.get("retry-after").map(|v| v.to_str().unwrap()),
                Some("1"),
                "503 carries Retry-After"
            );
            saw_503 = true;
            break;
        }
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let sent = join_all(tasks).await;
    let t = tally(&sent);
    assert!(
        saw_503 || t.refused > 0,
        "the tiny queue overflowed at least once"
    );
    assert!(t.acked > 0, "and still took batches");
    assert_eq!(t.no_answer, 0, "every request was answered");
    for b in &sent {
        if let Outcome::Refused(st) = b.outcome {
            assert_eq!(st, 503, "batch {} refused with {st}", b.id);
        }
    }
    // Probe batches (id 1) are not part of `sent`: verify the clients' only.
    let mut found: HashMap<u64, u64> = HashMap::new();
    s.walk(&s.admin, &[("service", "overload")], 5_000, |e| {
        *found
            .entry(e["attributes"]["batch"].as_u64().unwrap())
            .or_default() += 1;
    })
    .await;
    for b in &sent {
        let n = found.get(&b.id).copied().unwrap_or(0);
        match b.outcome {
            Outcome::Acked => assert_eq!(n, b.size, "acked batch {} complete", b.id),
            _ => assert_eq!(n, 0, "refused batch {} absent", b.id),
        }
    }
    assert_eq!(s.get("/metrics", None, &[]).await.status, 200);
    let m = s.metrics().await;
    assert!(
        t.refused == 0 || m.contains("faultline_entries_rejected_total{reason=\"overloaded\"}"),
        "overload refusals are counted"
    );
}

/// SIGTERM must stop the server in bounded time even when a client started
/// an upload and stalled: the graceful drain needs a deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_upload_still_exits() {
    use tokio::io::AsyncWriteExt;
    let mut s = Server::start_default().await;
    let token = s.ingest_token("crash", "stalled");
    let mut stalled = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/logs HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"message\":",
        s.addr
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // Meanwhile a well-behaved client is served.
    s.ingest(&token, &json!({"message": "normal"})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    s.sigterm();
    let status = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(10)));
    assert!(
        status.is_some(),
        "the server is still running 10 s after SIGTERM because one upload stalled"
    );
    assert!(status.unwrap().success());
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(stalled);
    s.restart().await;
    assert_eq!(s.entries(&s.admin, &[]).await.len(), 1);
}
