//! Alerting on a real `faultline server` with a local webhook receiver:
//! exactly one notification per burst (also across restarts), retries,
//! the dead-letter queue and its CLI, rules from the config file, and bad
//! requests.

mod common;

use common::{Receiver, Server, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Fast retries and a short cooldown, so the tests run in seconds.
const CONFIG: &str = "[alerts]\nretry_base = \"100ms\"\nmax_attempts = 3\n";

async fn setup(s: &Server, admin: &str, project: &str, rx: &Receiver, rule: Value) -> i64 {
    let hook = json!({"type": "webhook", "url": rx.url("/hook"), "secret": "s3cret"});
    s.alert_channel_and_rule(admin, project, "hook", hook, rule)
        .await
}

fn storm_rule() -> Value {
    json!({
        "name": "storm",
        "condition": {"type": "frequency", "count": 100, "window": "1m"},
        "channels": ["hook"],
        "cooldown": "3s",
    })
}

/// Sends `n` error entries of one kind (values vary, the issue does not).
async fn errors(s: &Server, token: &str, kind: &str, n: usize) {
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let k = left.min(50);
        let batch: Vec<Value> = (0..k)
            .map(|j| {
                json!({"level": "error", "message": format!("{kind} failed for job {}", i * 50 + j)})
            })
            .collect();
        s.ingest(token, &Value::Array(batch)).await;
        left -= k;
        i += 1;
    }
}

/// Runs `faultline alerts <args> --server URL --token T`.
fn alerts_cli(args: &[&str], url: &str, token: &str) -> std::process::Output {
    let mut all = vec!["alerts"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--server", url, "--token", token]);
    common::run_cli(&all, None)
}

/// Waits until the receiver has `n` successful deliveries, then a little
/// longer to see that no more come.
async fn expect_deliveries(rx: &Receiver, n: usize) {
    let ok = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        async || rx.delivered().len() >= n,
    )
    .await;
    assert!(ok, "expected {n} deliveries, got {:#?}", rx.received());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.delivered().len(), n, "{:#?}", rx.received());
}

/// Waits until the project's issues count `n` events.
async fn processed(s: &Server, token: &str, project: &str, n: u64) {
    let ok = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        async || {
            let r = s
                .get("/api/v1/issues", Some(token), &[("project", project)])
                .await;
            r.json["issues"]
                .as_array()
                .map(|a| a.iter().map(|i| i["count"].as_u64().unwrap()).sum::<u64>())
                == Some(n)
        },
    )
    .await;
    assert!(ok, "events never reached {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notification_per_burst_and_again_after_the_cooldown() {
    let s = Server::start_with_config(CONFIG).await;
    let admin = s.admin_token();
    let token = s.ingest_token("shop", "api");
    let rx = Receiver::start().await;
    setup(&s, &admin, "shop", &rx, storm_rule()).await;

    // 99: nothing.
    errors(&s, &token, "render", 99).await;
    processed(&s, &admin, "shop", 99).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(rx.received().is_empty(), "{:#?}", rx.received());
    // The 100th fires, the rest of the burst does not.
    errors(&s, &token, "render", 1).await;
    expect_deliveries(&rx, 1).await;
    errors(&s, &token, "render", 50).await;
    expect_deliveries(&rx, 1).await;

    let d = &rx.delivered()[0];
    let body = d.json();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["rule"]["name"], "storm");
    assert_eq!(body["count"], 100);
    assert_eq!(body["window_seconds"], 60);
    assert_eq!(body["project"], "shop");
    assert_eq!(body["service"], "api");
    assert!(
        body["issue"]["link"]
            .as_str()
            .unwrap()
            .contains("/api/v1/issues/")
    );
    assert_eq!(
        d.header("x-faultline-signature").unwrap(),
        faultline_signature("s3cret", &d.body)
    );
    assert!(d.header("x-faultline-delivery").is_some());

    // Quiet for the cooldown (3 s), then 150 more: exactly one more.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    errors(&s, &token, "render", 150).await;
    expect_deliveries(&rx, 2).await;
    // Another issue's burst is its own.
    errors(&s, &token, "upload", 100).await;
    expect_deliveries(&rx, 3).await;
    let m = s.metrics().await;
    assert!(
        m.contains("faultline_alerts_fired_total{rule=\"storm\"} 3"),
        "{m}"
    );
}

/// HMAC-SHA256 as the receiver would check it (independent of the server
/// code: computed with the test's own implementation).
fn faultline_signature(secret: &str, body: &[u8]) -> String {
    use sha2_like::hmac_sha256;
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A tiny HMAC-SHA256 (RFC 2104) on a small SHA-256 (FIPS 180-4), so the
/// test checks signatures without trusting the server's crates.
mod sha2_like {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    pub fn sha256(data: &[u8]) -> [u8; 32] {
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        let bits = (data.len() as u64) * 8;
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&bits.to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes([
                    block[4 * i],
                    block[4 * i + 1],
                    block[4 * i + 2],
                    block[4 * i + 3],
                ]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for i in 0..64 {
                let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
                let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
                let t1 = v[7]
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
                let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
                let t2 = s0.wrapping_add(maj);
                v = [
                    t1.wrapping_add(t2),
                    v[0],
                    v[1],
                    v[2],
                    v[3].wrapping_add(t1),
                    v[4],
                    v[5],
                    v[6],
                ];
            }
            for i in 0..8 {
                h[i] = h[i].wrapping_add(v[i]);
            }
        }
        let mut out = [0u8; 32];
        for (i, x) in h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
        }
        out
    }

    pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&sha256(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        inner.extend_from_slice(data);
        let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        outer.extend_from_slice(&sha256(&inner));
        sha256(&outer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_burst_still_sends_one() {
    let mut s = Server::start_with_config(CONFIG).await;
    let admin = s.admin_token();
    let token = s.ingest_token("shop", "api");
    let rx = Receiver::start().await;
    setup(&s, &admin, "shop", &rx, storm_rule()).await;

    errors(&s, &token, "render", 60).await;
    processed(&s, &admin, "shop", 60).await;
    // kill -9: the window's 60 arrivals are in the store with the events.
    s.restart().await;
    errors(&s, &token, "render", 90).await;
    expect_deliveries(&rx, 1).await;
    // A graceful restart while fired: the burst goes on, no second alert.
    s.sigterm();
    assert!(s.wait_exit(Duration::from_secs(15)).is_some());
    s.restart().await;
    errors(&s, &token, "render", 100).await;
    expect_deliveries(&rx, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_then_dead_lettered_and_retried_from_the_cli() {
    let s = Server::start_with_config("[alerts]\nretry_base = \"200ms\"\nmax_attempts = 4\n").await;
    let admin = s.admin_token();
    let token = s.ingest_token("shop", "api");
    let rx = Receiver::start().await;
    setup(&s, &admin, "shop", &rx, storm_rule()).await;

    // 500 for a while, then 200: exactly one delivery arrives.
    rx.answer(500);
    errors(&s, &token, "render", 100).await;
    let ok = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || rx.received().len() >= 2,
    )
    .await;
    assert!(ok, "retried");
    rx.answer(200);
    expect_deliveries(&rx, 1).await;

    // A receiver that never recovers: dead-lettered after 4 attempts.
    rx.answer(503);
    errors(&s, &token, "upload", 100).await;
    let mut dead = Value::Null;
    let ok = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            let r = s
                .get("/api/v1/notifications", Some(&admin), &[("status", "dead")])
                .await;
            dead = r.json["notifications"][0].clone();
            !dead.is_null()
        },
    )
    .await;
    assert!(ok, "dead-lettered: {:#?}", rx.received());
    assert_eq!(dead["attempts"], 4);
    assert!(
        dead["last_error"].as_str().unwrap().contains("503"),
        "{dead}"
    );
    let failed_before = rx.received().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.received().len(), failed_before, "no attempts once dead");

    // The CLI shows it and retries it once the receiver works.
    let id = dead["id"].as_i64().unwrap();
    let url = s.url("");
    let out = common::run_cli(
        &["alerts", "dlq", "--server", &url, "--token", &admin],
        None,
    );
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{out:?}");
    assert!(
        listing.starts_with(&format!("{id}\tshop\thook\t4 attempts")),
        "{listing}"
    );
    rx.answer(200);
    let out = alerts_cli(&["retry", &id.to_string()], &url, &admin);
    assert!(out.status.success(), "{out:?}");
    expect_deliveries(&rx, 2).await;
    let r = s
        .get("/api/v1/notifications", Some(&admin), &[("status", "dead")])
        .await;
    assert_eq!(r.json["notifications"], json!([]));
    // Retrying a delivered one is refused with a one-line error.
    let out = alerts_cli(&["retry", &id.to_string()], &url, &admin);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("delivered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_issue_rules_config_file_rules_and_bad_requests() {
    let rx = Receiver::start().await;
    let config = format!(
        "{CONFIG}\n[[alerts.channels]]\nproject = \"studio\"\nname = \"chat\"\ntype = \"webhook\"\nurl = \"{}\"\n\n[[alerts.rules]]\nproject = \"studio\"\nname = \"fresh\"\nchannels = [\"chat\"]\ncondition = {{ type = \"new_issue\" }}\nlevel = \"error\"\n",
        rx.url("/chat")
    );
    let s = Server::start_with_config(&config).await;
    let admin = s.admin_token();
    let reader = s.read_token("studio");
    let token = s.ingest_token("studio", "maya");

    let r = s
        .get("/api/v1/projects/studio/alert-rules", Some(&reader), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["rules"][0]["name"], "fresh");

    // Three occurrences of one new issue, one of another: two notifications.
    errors(&s, &token, "publish", 3).await;
    errors(&s, &token, "export", 1).await;
    expect_deliveries(&rx, 2).await;
    let titles: Vec<String> = rx
        .delivered()
        .iter()
        .map(|d| d.json()["rule"]["condition"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles, ["new_issue", "new_issue"]);
    assert!(rx.delivered().iter().all(|d| d.path == "/chat"));

    // Bad requests.
    let put = |name: &str, body: Value| {
        let s = &s;
        let admin = admin.clone();
        let name = name.to_string();
        async move {
            s.send(
                Method::PUT,
                &format!("/api/v1/projects/studio/alert-channels/{name}"),
                Some(&admin),
                &[],
                Some(body),
            )
            .await
        }
    };
    put("x", json!({"type": "webhook", "url": "ftp://nope"}))
        .await
        .assert_error(400, "invalid channel");
    put("x", json!({"type": "pager", "url": "http://x"}))
        .await
        .assert_error(400, "invalid channel");
    let post_rule = |token: String, body: Value| {
        let s = &s;
        async move {
            s.send(
                Method::POST,
                "/api/v1/projects/studio/alert-rules",
                Some(&token),
                &[],
                Some(body),
            )
            .await
        }
    };
    post_rule(reader.clone(), storm_rule())
        .await
        .assert_error(403, "forbidden");
    post_rule(admin.clone(), storm_rule())
        .await
        .assert_error(400, "invalid rule"); // channel "hook" does not exist here
    post_rule(
        admin.clone(),
        json!({"name": "fresh", "condition": {"type": "new_issue"}, "channels": ["chat"]}),
    )
    .await
    .assert_error(400, "invalid rule"); // name taken
    post_rule(
        admin.clone(),
        json!({"name": "z", "condition": {"type": "frequency", "count": 0, "window": "1m"}, "channels": ["chat"]}),
    )
    .await
    .assert_error(400, "invalid rule");
    s.get("/api/v1/projects/studio/alert-channels", Some(&reader), &[])
        .await
        .assert_error(403, "forbidden");
    s.get(
        "/api/v1/notifications",
        Some(&reader),
        &[("status", "lost")],
    )
    .await
    .assert_error(400, "invalid parameter");
    s.send(
        Method::POST,
        "/api/v1/notifications/999/retry",
        Some(&admin),
        &[],
        None,
    )
    .await
    .assert_error(404, "not found");

    // Deleting the rule stops it.
    let id = s
        .get("/api/v1/projects/studio/alert-rules", Some(&admin), &[])
        .await
        .json["rules"][0]["id"]
        .as_i64()
        .unwrap();
    let r = s
        .send(
            Method::DELETE,
            &format!("/api/v1/alert-rules/{id}"),
            Some(&admin),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    errors(&s, &token, "import", 1).await;
    processed(&s, &admin, "studio", 5).await;
    expect_deliveries(&rx, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_of_a_service_fires_once() {
    let s = Server::start_with_config(CONFIG).await;
    let admin = s.admin_token();
    let token = s.ingest_token("shop", "checkout");
    let rx = Receiver::start().await;
    setup(
        &s,
        &admin,
        "shop",
        &rx,
        json!({
            "name": "checkout-failing",
            "condition": {"type": "error_rate", "threshold": 0.5, "window": "1m", "min_entries": 20},
            "channels": ["hook"],
        }),
    )
    .await;
    let info = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"level": "info", "message": format!("order {i} paid")}))
                .collect(),
        )
    };
    // Half errors but fewer than 20 entries: nothing.
    s.ingest(&token, &info(5)).await;
    errors(&s, &token, "payment", 5).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(rx.received().is_empty());
    // 10 of 10 entries, then 15 errors more: 20 of 30 ≥ 50 %: fires once.
    errors(&s, &token, "payment", 15).await;
    expect_deliveries(&rx, 1).await;
    let body = rx.delivered()[0].json();
    assert_eq!(body["rule"]["condition"], "error_rate");
    assert_eq!(body["service"], "checkout");
    assert!(
        body["summary"].as_str().unwrap().contains("are errors"),
        "{body}"
    );
    errors(&s, &token, "payment", 30).await;
    s.ingest(&token, &info(10)).await;
    expect_deliveries(&rx, 1).await;
}

/// A real SMTP server: Python's `smtpd` DebuggingServer (python3 ≤ 3.11),
/// which prints every message it receives; killed when dropped.
struct Smtp {
    child: std::process::Child,
    port: u16,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Smtp {
    fn start() -> Smtp {
        use std::io::Read;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-W",
                "ignore",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m smtpd (python3 ≤ 3.11)");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // Ready when it accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "smtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { child, port, out }
    }

    fn messages(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_by_email_over_smtp() {
    let smtp = Smtp::start();
    let s = Server::start_with_config(CONFIG).await;
    let admin = s.admin_token();
    let token = s.ingest_token("shop", "api");
    let r = s
        .send(
            Method::PUT,
            "/api/v1/projects/shop/alert-channels/mail",
            Some(&admin),
            &[],
            Some(
                json!({"type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                        "tls": "none", "from": "faultline@studio.example",
                        "to": ["oncall@studio.example", "lead@studio.example"]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.send(
        Method::PUT,
        "/api/v1/projects/shop/alert-channels/bad",
        Some(&admin),
        &[],
        Some(json!({"type": "email", "smtp_host": "127.0.0.1", "from": "x@y", "to": [], "tls": "maybe"})),
    )
    .await
    .assert_error(400, "invalid channel");
    let r = s
        .send(
            Method::POST,
            "/api/v1/projects/shop/alert-rules",
            Some(&admin),
            &[],
            Some(json!({"name": "mail-new", "condition": {"type": "new_issue"}, "channels": ["mail"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    errors(&s, &token, "render", 3).await;
    let ok = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || smtp.messages().contains("Open in faultline"),
    )
    .await;
    assert!(ok, "no mail arrived: {}", smtp.messages());
    let mail = smtp.messages();
    assert!(mail.contains("From: faultline@studio.example"), "{mail}");
    assert!(mail.contains("oncall@studio.example"), "{mail}");
    assert!(
        mail.contains("Subject: [faultline] [shop/api] mail-new"),
        "{mail}"
    );
    assert!(mail.contains("/api/v1/issues/"), "{mail}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        smtp.messages().matches("Open in faultline").count(),
        1,
        "one issue, one mail"
    );
    let r = s
        .get(
            "/api/v1/notifications",
            Some(&admin),
            &[("project", "shop")],
        )
        .await;
    assert_eq!(r.json["notifications"][0]["status"], "delivered");
}
