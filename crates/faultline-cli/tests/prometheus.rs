//! faultline with a real Prometheus and a real Alertmanager (Debian
//! packages `prometheus`, `prometheus-alertmanager`, installed by
//! scripts/test.sh): an alert rule's notification is visible through
//! Alertmanager's API and resolves when the rule re-arms; Prometheus
//! scrapes `/metrics` and answers queries on faultline's series; the
//! sample configs in deploy/ are valid.

mod common;

use common::{Server, free_port, run_bounded, wait_until};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A process we started, killed (by its PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(bin: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!(
        "{bin} is not installed; scripts/test.sh installs it (apt-get install prometheus prometheus-alertmanager)"
    );
}

async fn get_json(url: &str) -> Option<Value> {
    let r = common::http_client().get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

async fn wait_ready(url: &str) {
    let ok = wait_until(Duration::from_secs(20), Duration::from_millis(100), async || {
        matches!(common::http_client().get(url).send().await, Ok(r) if r.status().is_success())
    })
    .await;
    assert!(ok, "{url} never became ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_fires_and_resolutions() {
    let bin = require("prometheus-alertmanager");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: sink\n  group_wait: 1s\nreceivers:\n  - name: sink\n",
    )
    .unwrap();
    let port = free_port();
    let _am = Proc(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("am.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let am = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{am}/-/ready")).await;

    let s = Server::start_default().await;
    let admin = s.admin_token();
    let token = s.ingest_token("studio", "render");
    s.alert_channel_and_rule(
        &admin,
        "studio",
        "am",
        json!({"type": "alertmanager", "url": am}),
        json!({
            "name": "render-storm",
            "condition": {"type": "frequency", "count": 5, "window": "1m"},
            "channels": ["am"],
            "cooldown": "3s",
        }),
    )
    .await;

    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"level": "critical", "message": format!("farm node {i} lost its license")}))
        .collect();
    s.ingest(&token, &Value::Array(batch)).await;

    let alerts_url = format!("{am}/api/v2/alerts?filter=alertname%3D%22render-storm%22");
    let mut alert = Value::Null;
    let ok = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            if let Some(v) = get_json(&alerts_url).await
                && let Some(a) = v.as_array().and_then(|a| a.first())
            {
                alert = a.clone();
                return true;
            }
            false
        },
    )
    .await;
    assert!(ok, "the alert never reached Alertmanager");
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "render-storm");
    assert_eq!(labels["project"], "studio");
    assert_eq!(labels["service"], "render");
    assert_eq!(labels["severity"], "critical");
    assert!(
        labels["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 16)
    );
    assert_eq!(alert["status"]["state"], "active");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("5 events in 1 min")
    );

    // Quiet for the cooldown: the rule re-arms and the alert resolves.
    let ok = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            match get_json(&alerts_url).await {
                // ISO 8601 UTC times compare as text (to the second).
                Some(Value::Array(a)) => a.iter().all(|x| {
                    let now = common::rfc3339(common::now_micros());
                    x["endsAt"]
                        .as_str()
                        .is_some_and(|e| e.len() >= 19 && e[..19] <= now[..19])
                }),
                _ => false,
            }
        },
    )
    .await;
    assert!(
        ok,
        "the alert never resolved: {:#?}",
        get_json(&alerts_url).await
    );
    let r = s
        .get(
            "/api/v1/notifications",
            Some(&admin),
            &[("project", "studio")],
        )
        .await;
    let states: Vec<&str> = r.json["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["delivered", "delivered"], "firing and resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_faultline_metrics() {
    let bin = require("prometheus");
    let s = Server::start_default().await;
    let token = s.ingest_token("studio", "render");
    let batch: Vec<Value> = (0..20)
        .map(|i| {
            json!({"level": if i % 4 == 0 { "error" } else { "info" }, "message": format!("frame {i} done")})
        })
        .collect();
    s.ingest(&token, &Value::Array(batch)).await;

    let dir = tempfile::tempdir().unwrap();
    let target = s.url("").trim_start_matches("http://").to_string();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: faultline\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Proc(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let prom = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{prom}/-/ready")).await;

    let query = |q: &str| {
        format!(
            "{prom}/api/v1/query?query={}",
            q.replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
        )
    };
    for (q, want) in [
        ("up{job=\"faultline\"}", 1.0),
        ("faultline_entries_stored_total", 20.0),
        ("faultline_entries_accepted_total", 20.0),
        (
            "faultline_events_recorded_total{project=\"studio\",service=\"render\",level=\"error\"}",
            5.0,
        ),
        ("faultline_issues_created_total", 1.0),
    ] {
        let url = query(q);
        let mut last = Value::Null;
        let ok = wait_until(
            Duration::from_secs(20),
            Duration::from_millis(250),
            async || {
                last = get_json(&url).await.unwrap_or(Value::Null);
                last["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    == Some(want)
            },
        )
        .await;
        assert!(ok, "{q} never became {want}: {last}");
    }
    let url = query("faultline_store_size_bytes");
    let v = get_json(&url).await.unwrap();
    let size: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 0.0);
}

#[test]
fn sample_configs_in_deploy_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut cmd = Command::new(require("promtool"));
    cmd.arg("check")
        .arg("config")
        .arg(root.join("prometheus.yml"));
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let mut cmd = Command::new(require("amtool"));
    cmd.arg("check-config").arg(root.join("alertmanager.yml"));
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
}
