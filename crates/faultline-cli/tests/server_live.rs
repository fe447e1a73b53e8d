//! The live tail of a real `faultline server`: WebSocket and Server-Sent
//! Events, filters, slow clients, pings, authorization and shutdown.

mod common;

use common::{Server, percentile};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Heavy tests run one at a time so their timings mean something.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Opens `ws://ADDR/api/v1/logs/live?QUERY`.
async fn ws_connect(
    s: &Server,
    query: &str,
    token: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    let path = if query.is_empty() {
        "/api/v1/logs/live".to_string()
    } else {
        format!("/api/v1/logs/live?{query}")
    };
    let mut req = s.ws_url(&path).into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("websocket handshake within 10 s")?;
    assert_eq!(resp.status(), 101);
    Ok(ws)
}

/// The next frame within `timeout`; None on timeout or end of stream.
async fn ws_frame(ws: &mut Ws, timeout: Duration) -> Option<Message> {
    match tokio::time::timeout(timeout, ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(e))) => panic!("websocket error: {e}"),
        Ok(None) | Err(_) => None,
    }
}

/// The next text message as JSON, skipping pings and pongs.
async fn ws_json(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match ws_frame(ws, left).await? {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("JSON text")),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => return None,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads entries until one with message `sentinel`; returns the messages
/// (including the sentinel).
async fn ws_until(ws: &mut Ws, sentinel: &str) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..10_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = ws_json(ws, left)
            .await
            .unwrap_or_else(|| panic!("no {sentinel:?} within 10 s; got {got:#?}"));
        let done = v["message"] == sentinel;
        got.push(v);
        if done {
            return got;
        }
    }
    panic!("too many messages");
}

fn msgs(v: &[Value]) -> Vec<&str> {
    v.iter()
        .map(|e| e["message"].as_str().unwrap_or("<notice>"))
        .collect()
}

/// One Server-Sent Events block.
#[derive(Debug, Default)]
struct SseEvent {
    event: Option<String>,
    data: String,
    comments: Vec<String>,
}

struct Sse {
    stream: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

impl Sse {
    async fn open(
        s: &Server,
        query: &[(&str, &str)],
        token: Option<&str>,
    ) -> Result<Sse, (u16, String)> {
        let mut req = s
            .http
            .get(s.url("/api/v1/logs/live"))
            .query(query)
            .header("accept", "text/event-stream");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("SSE request");
        if resp.status() != 200 {
            let st = resp.status().as_u16();
            return Err((st, resp.text().await.unwrap_or_default()));
        }
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Ok(Sse {
            stream: resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buf: String::new(),
        })
    }

    /// The next block within `timeout`; None on timeout or end of stream.
    async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut ev = SseEvent::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.comments.push(c.trim().to_string());
                    } else if let Some(e) = line.strip_prefix("event:") {
                        ev.event = Some(e.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                return Some(ev);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8(chunk).unwrap()),
                Ok(Some(Err(e))) => panic!("SSE stream error: {e}"),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Entries (JSON data of `event: entry`) until the sentinel message.
    async fn until(&mut self, sentinel: &str) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no {sentinel:?} within 10 s; got {got:#?}"));
            if ev.event.is_none() && ev.data.is_empty() {
                continue; // a comment (keep-alive)
            }
            assert_eq!(ev.event.as_deref(), Some("entry"), "{ev:?}");
            let v: Value = serde_json::from_str(&ev.data).expect("entry JSON");
            let done = v["message"] == sentinel;
            got.push(v);
            if done {
                return got;
            }
        }
        panic!("too many events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tail_follows_its_filters() {
    let s = Server::start_default().await;
    let api = s.ingest_token("shop", "api");
    let web = s.ingest_token("shop", "web");
    let blog = s.ingest_token("blog", "web");
    let read_blog = s.read_token("blog");
    let mut filtered = ws_connect(&s, "service=api&level=warn&q=disk", Some(&s.admin))
        .await
        .unwrap();
    let mut everything = ws_connect(&s, "project=shop", Some(&s.admin))
        .await
        .unwrap();
    let mut blog_only = ws_connect(&s, "", Some(&read_blog)).await.unwrap();
    let mut tagged = ws_connect(&s, "tag=db&service=web,api", Some(&s.admin))
        .await
        .unwrap();

    s.ingest(
        &api,
        &json!({"message": "disk full", "level": "error", "tag": "db"}),
    )
    .await;
    s.ingest(&api, &json!({"message": "disk ok", "level": "info"}))
        .await;
    s.ingest(&api, &json!({"message": "network down", "level": "error"}))
        .await;
    s.ingest(
        &web,
        &json!({"message": "disk full on web", "level": "error", "tag": "db"}),
    )
    .await;
    s.ingest(
        &api,
        &json!([
            {"message": "Disk failure imminent", "level": "critical"},
            {"message": "diskette", "level": "error"},
            {"message": "disk slow", "level": "warn"}
        ]),
    )
    .await;
    s.ingest(&blog, &json!({"message": "blog disk", "level": "error"}))
        .await;
    s.ingest(
        &api,
        &json!({"message": "disk sentinel", "level": "error", "tag": "db"}),
    )
    .await;
    s.ingest(&blog, &json!({"message": "blog sentinel"})).await;

    let got = ws_until(&mut filtered, "disk sentinel").await;
    assert_eq!(
        msgs(&got),
        [
            "disk full",
            "Disk failure imminent",
            "disk slow",
            "disk sentinel"
        ]
    );
    let e = &got[0];
    assert_eq!(e["project"], "shop");
    assert_eq!(e["service"], "api");
    assert_eq!(e["level"], "error");
    assert_eq!(e["tags"], json!(["db"]));
    assert!(e["id"].is_i64() && e["timestamp"].is_string() && e["received_at"].is_string());
    // The live entry is the stored entry.
    let stored = s
        .entries(&s.admin, &[("q", "disk full"), ("service", "api")])
        .await;
    assert_eq!(stored.len(), 1);
    // A stored entry also says which issue it became part of (the live one
    // is sent before grouping).
    let mut stored = stored[0].clone();
    stored.as_object_mut().unwrap().remove("issue_id");
    assert_eq!(&stored, e, "live and stored entries are the same JSON");

    let got = ws_until(&mut everything, "disk sentinel").await;
    assert_eq!(
        msgs(&got),
        [
            "disk full",
            "disk ok",
            "network down",
            "disk full on web",
            "Disk failure imminent",
            "diskette",
            "disk slow",
            "disk sentinel"
        ],
        "in commit order, nothing of another project"
    );
    let got = ws_until(&mut tagged, "disk sentinel").await;
    assert_eq!(
        msgs(&got),
        ["disk full", "disk full on web", "disk sentinel"]
    );
    let got = ws_until(&mut blog_only, "blog sentinel").await;
    assert_eq!(
        msgs(&got),
        ["blog disk", "blog sentinel"],
        "a read token sees its project"
    );

    // The client may close cleanly.
    filtered.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_tail_sends_entry_events() {
    let s = Server::start_default().await;
    let api = s.ingest_token("shop", "api");
    let web = s.ingest_token("shop", "web");
    let read = s.read_token("shop");
    let mut sse = Sse::open(&s, &[("service", "api"), ("q", "checkout")], Some(&read))
        .await
        .unwrap();
    let mut levels = Sse::open(&s, &[("level", "error")], Some(&s.admin))
        .await
        .unwrap();

    s.ingest(
        &api,
        &json!({"message": "checkout started", "attributes": {"cart": 42}}),
    )
    .await;
    s.ingest(&web, &json!({"message": "checkout page", "level": "error"}))
        .await;
    s.ingest(&api, &json!({"message": "login", "level": "error"}))
        .await;
    s.ingest(
        &api,
        &json!({"message": "checkout\nfailed: card declined", "level": "critical"}),
    )
    .await;
    s.ingest(
        &api,
        &json!({"message": "checkout sentinel", "level": "error"}),
    )
    .await;

    let got = sse.until("checkout sentinel").await;
    assert_eq!(
        msgs(&got),
        [
            "checkout started",
            "checkout\nfailed: card declined",
            "checkout sentinel"
        ],
        "multi-line messages survive the SSE framing"
    );
    assert_eq!(got[0]["attributes"]["cart"], 42);
    assert_eq!(got[0]["service"], "api");
    let got = levels.until("checkout sentinel").await;
    assert_eq!(
        msgs(&got),
        [
            "checkout page",
            "login",
            "checkout\nfailed: card declined",
            "checkout sentinel"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_websocket_client_gets_dropped_notice_and_never_slows_ingest() {
    let _heavy = HEAVY.lock().await;
    let s = Server::start_with_config("[live]\nbuffer = 10\nping_interval = \"1s\"\n").await;
    let token = s.ingest_token("shop", "api");
    // Connect and do not read.
    let mut slow = ws_connect(&s, "", Some(&s.admin)).await.unwrap();

    // Heavy ingest: 4 clients x 25 posts x 100 entries of ~2 KB each
    // (20 MB of live JSON, far more than socket buffers hold).
    const CLIENTS: usize = 4;
    const POSTS: usize = 25;
    const PER_POST: usize = 100;
    let pad = "p".repeat(2000);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let http = s.http.clone();
        let url = s.url("/api/v1/logs");
        let token = token.clone();
        let pad = pad.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for p in 0..POSTS {
                let batch: Vec<Value> = (0..PER_POST)
                    .map(|i| json!({"message": format!("heavy {c} {p} {i}"), "attributes": {"pad": pad}}))
                    .collect();
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await
                    .unwrap();
                lat.push(t.elapsed());
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let total = CLIENTS * POSTS * PER_POST;
    let elapsed = started.elapsed();
    let p99 = percentile(lat.clone(), 99.0);
    eprintln!(
        "ingest with a stalled live client: {total} entries in {elapsed:?}, p50 {:?}, p99 {p99:?}",
        percentile(lat, 50.0)
    );
    assert!(
        p99 < Duration::from_secs(2),
        "ingest p99 stays fast with a stalled live client: {p99:?}"
    );
    assert_eq!(
        s.services(&s.admin, &[]).await[0]["count"],
        total,
        "everything was stored"
    );

    // Now read: entries delivered plus entries reported dropped account for
    // everything, and at least one drop notice arrives.
    let mut entries = 0u64;
    let mut dropped = 0u64;
    let mut notices = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while entries + dropped < total as u64 && Instant::now() < deadline {
        let Some(v) = ws_json(&mut slow, Duration::from_secs(5)).await else {
            break;
        };
        if let Some(n) = v.get("dropped") {
            let n = n.as_u64().expect("dropped is a count");
            assert!(n > 0, "a notice reports at least one dropped entry");
            assert_eq!(
                v.as_object().unwrap().len(),
                1,
                "a notice is only {{\"dropped\": N}}"
            );
            dropped += n;
            notices += 1;
        } else {
            assert!(v["message"].as_str().unwrap().starts_with("heavy "));
            entries += 1;
        }
    }
    eprintln!("slow client: {entries} entries, {dropped} dropped in {notices} notices");
    assert!(
        notices >= 1 && dropped > 0,
        "the slow client is told about drops"
    );
    assert_eq!(
        entries + dropped,
        total as u64,
        "every entry was either delivered or counted as dropped"
    );

    // The connection is still usable afterwards.
    s.ingest(&token, &json!({"message": "after the storm"}))
        .await;
    let got = ws_until(&mut slow, "after the storm").await;
    assert_eq!(got.len(), 1, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sse_client_gets_dropped_event() {
    let _heavy = HEAVY.lock().await;
    let s = Server::start_with_config("[live]\nbuffer = 10\n").await;
    let token = s.ingest_token("shop", "api");
    let mut sse = Sse::open(&s, &[], Some(&s.admin)).await.unwrap();
    let pad = "p".repeat(2000);
    let total = 30 * 200;
    for p in 0..30 {
        let batch: Vec<Value> = (0..200)
            .map(|i| json!({"message": format!("sse {p} {i}"), "attributes": {"pad": pad}}))
            .collect();
        s.ingest(&token, &Value::Array(batch)).await;
    }
    s.ingest(&token, &json!({"message": "sse sentinel"})).await;
    let mut entries = 0;
    let mut dropped = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_sentinel = false;
    while Instant::now() < deadline && !(seen_sentinel && entries + dropped == total + 1) {
        let Some(ev) = sse.next(Duration::from_secs(3)).await else {
            break;
        };
        match ev.event.as_deref() {
            Some("dropped") => {
                let v: Value = serde_json::from_str(&ev.data).unwrap();
                dropped += v["dropped"].as_u64().unwrap() as usize;
            }
            Some("entry") => {
                entries += 1;
                if ev.data.contains("sse sentinel") {
                    seen_sentinel = true;
                }
            }
            _ => {}
        }
    }
    assert!(dropped > 0, "an event: dropped arrived ({entries} entries)");
    assert_eq!(
        entries + dropped,
        total + 1,
        "delivered + dropped = published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_live_streams_alive() {
    let s = Server::start_with_config("[live]\nping_interval = \"1s\"\n").await;
    let mut ws = ws_connect(&s, "", Some(&s.admin)).await.unwrap();
    let mut sse = Sse::open(&s, &[], Some(&s.admin)).await.unwrap();
    let started = Instant::now();
    let (ws_pings, sse_pings) = tokio::join!(
        async {
            let mut pings = 0;
            while pings < 2 && started.elapsed() < Duration::from_secs(5) {
                match ws_frame(&mut ws, Duration::from_secs(5)).await {
                    Some(Message::Ping(_)) => pings += 1,
                    Some(other) => panic!("only pings expected, got {other:?}"),
                    None => break,
                }
            }
            pings
        },
        async {
            let mut pings = 0;
            while pings < 2 && started.elapsed() < Duration::from_secs(5) {
                match sse.next(Duration::from_secs(5)).await {
                    Some(ev) => {
                        assert!(ev.event.is_none() && ev.data.is_empty(), "{ev:?}");
                        assert_eq!(ev.comments, ["ping"], "a `: ping` comment");
                        pings += 1;
                    }
                    None => break,
                }
            }
            pings
        }
    );
    assert_eq!(ws_pings, 2, "two WebSocket pings within 5 s");
    assert_eq!(sse_pings, 2, "two SSE ping comments within 5 s");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_needs_a_read_or_admin_token() {
    let s = Server::start_default().await;
    let ingest = s.ingest_token("shop", "api");
    let read_blog = s.read_token("blog");
    let status_of = |r: Result<Ws, tungstenite::Error>| match r {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert!(v["error"].is_string(), "JSON error body: {body:?}");
            resp.status().as_u16()
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    assert_eq!(status_of(ws_connect(&s, "", None).await), 401);
    assert_eq!(status_of(ws_connect(&s, "", Some(&ingest)).await), 403);
    assert_eq!(
        status_of(ws_connect(&s, "", Some("fl_nonexistenttokennonexistenttokennonexiste")).await),
        401
    );
    assert_eq!(
        status_of(ws_connect(&s, "project=shop", Some(&read_blog)).await),
        403
    );
    assert_eq!(
        status_of(ws_connect(&s, "limit=5", Some(&s.admin)).await),
        400
    );
    assert_eq!(
        status_of(ws_connect(&s, "level=loud", Some(&s.admin)).await),
        400
    );
    assert_eq!(status_of(ws_connect(&s, "", Some(&read_blog)).await), 101);

    let e = Sse::open(&s, &[], None).await.err().unwrap();
    assert_eq!(e.0, 401, "{}", e.1);
    let e = Sse::open(&s, &[], Some(&ingest)).await.err().unwrap();
    assert_eq!(e.0, 403, "{}", e.1);
    let v: Value = serde_json::from_str(&e.1).unwrap();
    assert_eq!(v["error"], "forbidden");
    let e = Sse::open(&s, &[("project", "shop")], Some(&read_blog))
        .await
        .err()
        .unwrap();
    assert_eq!(e.0, 403, "{}", e.1);
    let e = Sse::open(&s, &[("cursor", "1_1")], Some(&s.admin))
        .await
        .err()
        .unwrap();
    assert_eq!(e.0, 400, "paging parameters do not apply to the live tail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_live_streams_and_exits_zero() {
    let mut s = Server::start_default().await;
    let mut ws = ws_connect(&s, "", Some(&s.admin)).await.unwrap();
    let mut sse = Sse::open(&s, &[], Some(&s.admin)).await.unwrap();
    let token = s.ingest_token("shop", "api");
    s.ingest(&token, &json!({"message": "before shutdown"}))
        .await;
    assert_eq!(
        ws_json(&mut ws, Duration::from_secs(5)).await.unwrap()["message"],
        "before shutdown"
    );
    assert_eq!(sse.until("before shutdown").await.len(), 1);

    let t = Instant::now();
    s.sigterm();
    let status = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(10)));
    let status = status.unwrap_or_else(|| {
        panic!(
            "the server did not exit within 10 s of SIGTERM with live clients open; stderr: {:#?}",
            s.stderr_lines()
        )
    });
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exited in {:?}",
        t.elapsed()
    );
    // Both streams end.
    let mut ended = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                ended = true;
                break;
            }
            Ok(Some(Ok(_))) | Err(_) => {}
        }
    }
    assert!(ended, "the WebSocket is closed");
    let mut ended = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(2), sse.stream.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {
                ended = true;
                break;
            }
            Ok(Some(Ok(_))) | Err(_) => {}
        }
    }
    assert!(ended, "the SSE stream ends");
}

/// Opens an SSE request on a raw socket with a tiny receive buffer and never
/// reads from it, so the server's writes to it stall.
async fn stalled_sse(s: &Server, token: &str) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stream = sock.connect(s.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/logs/live HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n",
        s.addr
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
}

/// Posts `posts` batches of 100 entries of ~2 KB each.
async fn flood(s: &Server, token: &str, posts: usize) {
    let pad = "p".repeat(2000);
    for p in 0..posts {
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"message": format!("flood {p} {i}"), "attributes": {"pad": pad}}))
            .collect();
        s.ingest(token, &Value::Array(batch)).await;
    }
}

/// A live client that stopped reading must not keep the server from
/// shutting down: its connection is closed after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_sse_client_still_exits() {
    let _heavy = HEAVY.lock().await;
    let mut s = Server::start_with_config("shutdown_grace = \"1s\"\n").await;
    let token = s.ingest_token("shop", "api");
    let _stalled = stalled_sse(&s, &s.admin).await;
    // Let the subscription be registered before the flood.
    tokio::time::sleep(Duration::from_millis(200)).await;
    flood(&s, &token, 40).await;
    let t = Instant::now();
    s.sigterm();
    let status = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(10)));
    assert!(
        status.is_some(),
        "the server is still running 10 s after SIGTERM: a stalled SSE client blocks \
         the graceful shutdown; stderr tail: {:#?}",
        s.stderr_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(status.unwrap().success());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exited in {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_websocket_client_still_exits() {
    let _heavy = HEAVY.lock().await;
    let mut s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let _stalled = ws_connect(&s, "", Some(&s.admin)).await.unwrap();
    flood(&s, &token, 40).await;
    let t = Instant::now();
    s.sigterm();
    let status = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(10)));
    assert!(
        status.is_some(),
        "the server is still running 10 s after SIGTERM with a stalled WebSocket client"
    );
    assert!(status.unwrap().success());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exited in {:?}",
        t.elapsed()
    );
}

/// The live tail evaluates `q` in memory, the query API in the full-text
/// index: both must select the same entries (model::LogFilter says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_stored_full_text_search_agree() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let texts = [
        "foo-bar failed",
        "don't panic",
        "user_id=42 logged in",
        "Straße gesperrt",
        "ÉCHEC de connexion",
        "naïve café",
        "日本語のテキスト",
        "हिंदी भाषा",
        "emoji 🔥 fire",
        "dotted.name.space",
        "CamelCase",
        "x² squared",
        "ﬁle missing",
        "İstanbul office",
        "from 10.0.0.1 port 22",
        "tab\tseparated\nnewline",
    ];
    let queries = [
        "foo-bar",
        "bar-foo",
        "foo bar",
        "don't",
        "don",
        "user_id",
        "user",
        "id=42",
        "straße",
        "STRASSE",
        "échec",
        "ECHEC",
        "naïve",
        "naive",
        "CAFÉ",
        "日本語のテキスト",
        "日本語",
        "हिंदी",
        "ह",
        "🔥",
        "fire",
        "dotted.name",
        "name.space",
        "dotted.space",
        "camelcase",
        "x²",
        "²",
        "ﬁle",
        "file",
        "istanbul",
        "İstanbul",
        "10.0.0.1",
        "0.0",
        "separated newline",
    ];
    let mut subs = Vec::new();
    for q in queries {
        let enc: String = q
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        subs.push(
            ws_connect(&s, &format!("q={enc}"), Some(&s.admin))
                .await
                .unwrap(),
        );
    }
    let batch: Vec<Value> = texts.iter().map(|t| json!({"message": t})).collect();
    s.ingest(&token, &Value::Array(batch)).await;
    // A sentinel that contains every query matches every query.
    let sentinel = format!("SENTINEL {}", queries.join(" "));
    s.ingest(&token, &json!({"message": sentinel})).await;

    let mut disagree = Vec::new();
    for (q, ws) in queries.iter().zip(subs.iter_mut()) {
        let mut live: Vec<String> = Vec::new();
        let mut got_sentinel = false;
        for _ in 0..100 {
            let Some(v) = ws_json(ws, Duration::from_secs(3)).await else {
                break;
            };
            let m = v["message"].as_str().unwrap().to_string();
            if m == sentinel {
                got_sentinel = true;
                break;
            }
            live.push(m);
        }
        live.sort();
        if !got_sentinel {
            live.push("<the sentinel never came>".into());
        }
        let mut stored: Vec<String> = s
            .entries(&s.admin, &[("q", q), ("limit", "1000")])
            .await
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .filter(|m| m != &sentinel)
            .collect();
        stored.sort();
        if live != stored {
            disagree.push(format!("q={q:?}: live {live:?} vs stored {stored:?}"));
        }
    }
    assert!(
        disagree.is_empty(),
        "live tail and query disagree:\n{}",
        disagree.join("\n")
    );
    // A few plain expectations.
    let found = async |q: &str| -> Vec<String> {
        s.entries(&s.admin, &[("q", q)])
            .await
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .filter(|m| m != &sentinel)
            .collect()
    };
    assert_eq!(found("foo-bar").await, ["foo-bar failed"]);
    assert_eq!(found("échec").await, ["ÉCHEC de connexion"]);
    assert_eq!(found("user_id").await, ["user_id=42 logged in"]);
    assert_eq!(found("10.0.0.1").await, ["from 10.0.0.1 port 22"]);
}
