//! Operations: health, readiness, metrics, retention, configuration errors
//! and the token CLI next to a running server.

mod common;

use common::{Server, now_micros, rfc3339, run_bounded, run_cli, wait_until};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// The value of the first sample line `name{labels} value` (or `name value`)
/// whose series starts with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.starts_with(series)
                && match l.as_bytes().get(series.len()) {
                    Some(b' ') => true,
                    Some(b'{') => !series.contains('{'),
                    _ => false,
                }
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_json() {
    let s = Server::start_default().await;
    let r = s.get("/healthz", None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"status": "ok"}));
    let r = s.get("/readyz", None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"status": "ready"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_pipeline_series() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    s.ingest(
        &token,
        &json!([{"message": "one"}, {"message": "two", "level": "error"}]),
    )
    .await;
    // One invalid entry in a batch of three: the whole batch is refused.
    let r = s
        .post_json(
            &token,
            &json!([{"message": "a"}, {"message": "b", "level": "loud"}, {"message": 3}]),
        )
        .await;
    r.assert_error(400, "invalid entries");
    let r = s.post_raw(None, "{\"message\":\"x\"}", &[]).await;
    r.assert_error(401, "unauthorized");

    // The store size gauge is refreshed every 2 s.
    let mut text = String::new();
    let ok = wait_until(
        Duration::from_secs(8),
        Duration::from_millis(200),
        async || {
            text = s.metrics().await;
            sample(&text, "faultline_store_size_bytes").is_some_and(|v| v > 0.0)
        },
    )
    .await;
    assert!(ok, "faultline_store_size_bytes > 0 within 8 s:\n{text}");

    assert_eq!(
        sample(&text, "faultline_entries_accepted_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "faultline_entries_rejected_total{reason=\"invalid\"}"
        ),
        Some(2.0),
        "two entries of the batch were invalid:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "faultline_entries_rejected_total{reason=\"unauthorized\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("faultline_batch_commit_seconds_bucket{le="),
        "the commit time is a histogram:\n{text}"
    );
    assert!(
        sample(&text, "faultline_batch_commit_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "faultline_queue_depth"), Some(0.0), "{text}");
    assert!(text.contains("# TYPE faultline_entries_accepted_total counter"));

    // A live subscriber is counted while it is connected.
    let resp = s
        .http
        .get(s.url("/api/v1/logs/live"))
        .bearer_auth(&s.admin)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = s.metrics().await;
    assert_eq!(
        sample(&text, "faultline_live_subscribers"),
        Some(1.0),
        "{text}"
    );
    drop(resp);
    let ok = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || sample(&s.metrics().await, "faultline_live_subscribers") == Some(0.0),
    )
    .await;
    assert!(ok, "the subscriber gauge goes back to 0 after a disconnect");
}

/// Gauges should exist (at 0) from the start, so dashboards and alerts see
/// 0 rather than "no data" before the first live client or first ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_gauges_exist_before_first_use() {
    let s = Server::start_default().await;
    let mut text = String::new();
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(200),
        async || {
            text = s.metrics().await;
            sample(&text, "faultline_store_size_bytes").is_some()
        },
    )
    .await;
    for series in [
        "faultline_store_size_bytes",
        "faultline_queue_depth",
        "faultline_live_subscribers",
    ] {
        assert!(
            sample(&text, series).is_some(),
            "{series} is exported before first use:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_expired_levels_only() {
    let s =
        Server::start_with_config("[retention]\ndebug = \"2s\"\nsweep_interval = \"1s\"\n").await;
    let token = s.ingest_token("shop", "api");
    let ts = rfc3339(now_micros() - 1_000_000);
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(json!({"message": format!("debug {i}"), "level": "debug", "timestamp": ts}));
    }
    for i in 0..5 {
        batch.push(json!({"message": format!("error {i}"), "level": "error", "timestamp": ts}));
    }
    for i in 0..5 {
        batch.push(json!({"message": format!("info {i}"), "level": "info", "timestamp": ts}));
    }
    // A far-past debug entry is stored with its receive time: retention must
    // not delete it on arrival.
    batch.push(json!({"message": "ancient debug", "level": "debug",
        "timestamp": "1990-01-01T00:00:00Z"}));
    s.ingest(&token, &Value::Array(batch)).await;

    let all = s.entries(&s.admin, &[("limit", "1000")]).await;
    assert_eq!(all.len(), 31, "everything is there right after the 202");
    let ancient: Vec<&Value> = all
        .iter()
        .filter(|e| e["message"] == "ancient debug")
        .collect();
    assert_eq!(
        ancient.len(),
        1,
        "the far-past entry is not deleted on arrival"
    );
    assert_eq!(
        ancient[0]["attributes"]["faultline.original_timestamp"],
        "1990-01-01T00:00:00.000000Z"
    );
    let svc = s.services(&s.admin, &[("project", "shop")]).await;
    assert_eq!(svc[0]["count"], 31);
    assert_eq!(svc[0]["error_count"], 5);

    let ok = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || {
            s.entries(&s.admin, &[("limit", "1000")])
                .await
                .iter()
                .all(|e| e["level"] != "debug")
        },
    )
    .await;
    assert!(ok, "debug entries older than 2 s are deleted within 10 s");
    let left = s.entries(&s.admin, &[("limit", "1000")]).await;
    assert_eq!(left.len(), 10, "errors and infos stay: {left:#?}");
    assert_eq!(
        left.iter().filter(|e| e["level"] == "error").count(),
        5,
        "errors stay"
    );
    let svc = s.services(&s.admin, &[("project", "shop")]).await;
    assert_eq!(svc.len(), 1);
    assert_eq!(
        svc[0]["count"], 10,
        "service counts follow deletions: {svc:?}"
    );
    assert_eq!(svc[0]["error_count"], 5);
    let ok = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(100),
        async || sample(&s.metrics().await, "faultline_entries_expired_total") == Some(21.0),
    )
    .await;
    assert!(
        ok,
        "faultline_entries_expired_total counts the 21 deleted entries"
    );
    // Full-text search no longer finds deleted entries either.
    assert!(s.entries(&s.admin, &[("q", "debug")]).await.is_empty());
    assert_eq!(s.entries(&s.admin, &[("q", "error")]).await.len(), 5);
}

/// Runs `faultline server` that must fail; returns its stderr.
fn server_must_fail(args: &[&str], config: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::BIN);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args);
    if let Some(c) = config {
        let p = dir.path().join("faultline.toml");
        std::fs::write(&p, c).unwrap();
        cmd.arg("--config").arg(p);
    }
    let out = run_bounded(cmd, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_some(),
        "the server exits by itself (it was still running after 15 s); stderr: {stderr}"
    );
    assert!(
        !out.status.success(),
        "the server must refuse to start; stderr: {stderr}"
    );
    stderr
}

#[track_caller]
fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr:?}");
    lines[0]
}

#[test]
fn config_errors_exit_nonzero_with_one_line() {
    let port = "127.0.0.1:0";
    let line = one_line(&server_must_fail(
        &["--listen", port],
        Some("lisen = \"127.0.0.1:1\"\n"),
    ))
    .to_string();
    assert!(line.contains("lisen"), "names the unknown key: {line}");

    let line = one_line(&server_must_fail(
        &["--listen", port],
        Some("[limits]\nmax_bodybytes = 5\n"),
    ))
    .to_string();
    assert!(
        line.contains("max_bodybytes"),
        "names the unknown key: {line}"
    );

    let line = one_line(&server_must_fail(
        &["--listen", port],
        Some("[retention]\ndebug = \"forever\"\n"),
    ))
    .to_string();
    assert!(
        line.contains("retention.debug") && line.contains("forever"),
        "names the field and the value: {line}"
    );

    let line = one_line(&server_must_fail(
        &["--listen", port],
        Some("[live]\nping_interval = \"10 parsecs\"\n"),
    ))
    .to_string();
    assert!(line.contains("ping_interval"), "{line}");

    let line = one_line(&server_must_fail(&["--listen", "nonsense"], None)).to_string();
    assert!(
        line.contains("listen") && line.contains("nonsense"),
        "names the bad address: {line}"
    );

    let line = one_line(&server_must_fail(
        &[],
        Some("listen = \"127.0.0.1:99999\"\n"),
    ))
    .to_string();
    assert!(line.contains("listen"), "{line}");

    let line = one_line(&server_must_fail(
        &["--listen", port],
        Some("this is not toml"),
    ))
    .to_string();
    assert!(line.contains("invalid config file"), "{line}");

    let line = one_line(&server_must_fail(
        &["--listen", port, "--config", "/nonexistent/faultline.toml"],
        None,
    ))
    .to_string();
    assert!(line.contains("/nonexistent/faultline.toml"), "{line}");
}

#[test]
fn port_in_use_exits_nonzero_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = server_must_fail(&["--listen", &addr], None);
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(
        last.starts_with("error:") && last.contains(&addr) && last.contains("in use"),
        "the last line says the address is in use: {stderr:?}"
    );
    drop(taken);
}

/// A start that fails to bind must not consume the first-run admin token:
/// the token is shown only on a successful first start, so creating and
/// storing it before binding leaves an admin credential nobody ever saw, and
/// the next (successful) start no longer prints one.
#[test]
fn failed_bind_does_not_consume_first_run_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = Command::new(common::BIN);
    cmd.arg("server")
        .arg("--listen")
        .arg(&addr)
        .arg("--data-dir")
        .arg(&data);
    let out = run_bounded(cmd, Duration::from_secs(15));
    assert!(!out.status.success());
    drop(taken);

    let mut cmd = Command::new(common::BIN);
    cmd.arg("server")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data);
    // Runs until the banner is out, then is killed by the bound.
    let out = run_bounded(cmd, Duration::from_secs(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("faultline listening on"),
        "second start runs: {stderr}"
    );
    let list = run_cli(&["token", "list"], Some(&data));
    let listing = String::from_utf8_lossy(&list.stdout);
    let admins = listing.lines().filter(|l| l.contains(" admin ")).count();
    assert!(
        stderr.contains("first run: admin token") || admins == 0,
        "an admin token was stored by the failed start but never shown \
         ({admins} admin token(s) in the data dir); second start said:\n{stderr}"
    );
}

#[test]
fn token_create_without_purpose_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["token", "create"], Some(dir.path()));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = one_line(&stderr);
    assert!(
        line.contains("--admin") && line.contains("--project"),
        "{line}"
    );

    let out = run_cli(
        &["token", "create", "--admin", "--project", "p"],
        Some(dir.path()),
    );
    assert!(!out.status.success(), "--admin with --project is refused");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cli_works_while_the_server_runs() {
    let s = Server::start_default().await;
    // Project and service are created by the CLI while the server runs; the
    // token is usable at once.
    let ingest = s.ingest_token("fresh-project", "fresh-service");
    s.ingest(&ingest, &json!({"message": "hello from a fresh token"}))
        .await;

    let admin = s.admin_token();
    let r = s.get("/api/v1/projects", Some(&admin), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json["projects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fresh-project"),
        "{}",
        r.text
    );

    let read = s.read_token("fresh-project");
    let e = s.entries(&read, &[]).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["message"], "hello from a fresh token");
    assert_eq!(e[0]["service"], "fresh-service");

    let list = s.cli(&["token", "list"]);
    assert!(list.status.success());
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("fresh-project/fresh-service"), "{listing}");
    assert!(
        !listing.contains(&ingest),
        "token list never shows a secret: {listing}"
    );
}
