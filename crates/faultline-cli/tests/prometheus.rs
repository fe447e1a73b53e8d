//! faultline with a real Prometheus and a real Alertmanager (Debian
//! packages `prometheus`, `prometheus-alertmanager`, installed by
//! scripts/test.sh): an alert rule's notification is visible through
//! Alertmanager's API and resolves when the rule re-arms; Prometheus
//! scrapes `/metrics` and answers queries on faultline's series; the
//! sample configs in deploy/ are valid; every query of the Grafana
//! dashboard (deploy/grafana-dashboard.json) runs on that Prometheus and
//! its panels show data.

mod common;

use common::{Receiver, Server, free_port, run_bounded, wait_until};
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

/// A Prometheus scraping one faultline every second (job `faultline`),
/// killed when dropped.
struct Prometheus {
    url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(s: &Server) -> Prometheus {
        let bin = require("prometheus");
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
        let proc = Proc(
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
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{url}/-/ready")).await;
        Prometheus {
            url,
            _proc: proc,
            _dir: dir,
        }
    }

    /// `GET /api/v1/query` (an instant query): the HTTP status and the
    /// answer.
    async fn query(&self, q: &str) -> (u16, Value) {
        let r = common::http_client()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", q)])
            .send()
            .await
            .expect("prometheus answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The series `q` returns, polling until there is at least one or
    /// `timeout` passes (scrapes come every second). Panics at once when
    /// Prometheus refuses the expression.
    async fn series(&self, q: &str, timeout: Duration) -> Vec<Value> {
        let mut last = Vec::new();
        wait_until(timeout, Duration::from_millis(250), async || {
            let (status, v) = self.query(q).await;
            assert!(
                status == 200 && v["status"] == "success",
                "Prometheus refused {q}: {status} {v}"
            );
            last = v["data"]["result"].as_array().cloned().unwrap_or_default();
            !last.is_empty()
        })
        .await;
        last
    }

    /// `GET /api/v1/label/{label}/values?match[]={selector}`.
    async fn label_values(&self, label: &str, selector: &str) -> Vec<String> {
        let r = common::http_client()
            .get(format!("{}/api/v1/label/{label}/values", self.url))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("prometheus answers");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status == 200 && v["status"] == "success",
            "Prometheus refused label {label} of {selector}: {status} {v}"
        );
        v["data"]
            .as_array()
            .expect("label values")
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_faultline_metrics() {
    let s = Server::start_default().await;
    let token = s.ingest_token("studio", "render");
    let batch: Vec<Value> = (0..20)
        .map(|i| {
            json!({"level": if i % 4 == 0 { "error" } else { "info" }, "message": format!("frame {i} done")})
        })
        .collect();
    s.ingest(&token, &Value::Array(batch)).await;

    let prom = Prometheus::start(&s).await;
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
        let mut last = Value::Null;
        let ok = wait_until(
            Duration::from_secs(20),
            Duration::from_millis(250),
            async || {
                last = prom.query(q).await.1;
                last["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    == Some(want)
            },
        )
        .await;
        assert!(ok, "{q} never became {want}: {last}");
    }
    let v = prom.query("faultline_store_size_bytes").await.1;
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

/// deploy/grafana-dashboard.json.
fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows included, and the panels a collapsed row keeps inside.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// The panel titled `title`.
fn panel<'a>(d: &'a Value, title: &str) -> &'a Value {
    panels(d)
        .into_iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("the dashboard has no {title:?} panel"))
}

/// Every value of a `datasource` key anywhere in `v`, with its path.
fn datasources<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                if k == "datasource" {
                    out.push((p.clone(), x));
                }
                datasources(x, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                datasources(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `expr` with Grafana's variables replaced (`$name` and `${name}`, longest
/// names first); panics if one is left that `vars` does not know.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_string();
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(
        !out.contains('$') && !out.contains("[["),
        "a variable the test has no value for in {expr}"
    );
    out
}

/// The labels a legend format shows (`{{label}}`).
fn legend_labels(format: &str) -> Vec<&str> {
    format
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}").map(|(l, _)| l.trim()))
        .collect()
}

/// Imported anywhere: the data source is an input chosen at import, as in
/// Grafana's "export for sharing externally", never one instance's uid.
#[test]
fn grafana_dashboard_is_portable() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    let requires = d["__requires"].as_array().expect("__requires");
    let required =
        |kind: &str, id: &str| requires.iter().any(|r| r["type"] == kind && r["id"] == id);
    assert!(required("grafana", "grafana"), "{requires:?}");
    assert!(required("datasource", "prometheus"), "{requires:?}");
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {}",
        d["schemaVersion"]
    );
    assert!(
        d["id"].is_null(),
        "an exported dashboard has no database id"
    );

    let mut found = Vec::new();
    datasources(&d, "$", &mut found);
    assert!(found.len() > 20, "{found:?}");
    for (path, ds) in &found {
        let uid = ds["uid"].as_str();
        let input = ds["type"] == "prometheus" && uid == Some("${DS_PROMETHEUS}");
        let annotations = ds["type"] == "grafana" && uid == Some("-- Grafana --");
        assert!(
            input || annotations,
            "{path} names a data source of one Grafana: {ds}"
        );
    }

    let mut ids = std::collections::HashSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().expect("title");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{title} is wider than the grid"
        );
        let kind = p["type"].as_str().expect("panel type");
        if kind == "row" {
            continue;
        }
        assert!(required("panel", kind), "{title}: {kind} not in __requires");
        let targets = p["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "{title} has no query"
        );
    }
}

/// Every query of deploy/grafana-dashboard.json runs on a real Prometheus
/// scraping a real faultline that saw ingest, a rejected request, agent
/// incidents and alert notifications (sent, failed, dead-lettered); the
/// panels show data, with the labels their legends name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_run_on_prometheus() {
    let d = dashboard();
    let s = Server::start_with_config("[alerts]\nretry_base = \"100ms\"\nmax_attempts = 2\n").await;
    let admin = s.admin_token();
    let render = s.ingest_token("studio", "render");
    let comp = s.ingest_token("studio", "comp");

    // A new-issue rule notifying a receiver that answers and one that
    // fails every attempt (dead-lettered after two).
    let good = Receiver::start().await;
    let broken = Receiver::start().await;
    broken.answer(500);
    let r = s
        .send(
            reqwest::Method::PUT,
            "/api/v1/projects/studio/alert-channels/broken",
            Some(&admin),
            &[],
            Some(json!({"type": "webhook", "url": broken.url("/hook")})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.alert_channel_and_rule(
        &admin,
        "studio",
        "good",
        json!({"type": "webhook", "url": good.url("/hook")}),
        json!({"name": "fresh", "condition": {"type": "new_issue"}, "channels": ["good", "broken"]}),
    )
    .await;

    let batch: Vec<Value> = (0..20)
        .map(|i| {
            if i % 4 == 0 {
                json!({"level": "error", "message": format!("frame {i} failed: out of memory")})
            } else {
                json!({"level": "info", "message": format!("frame {i} done")})
            }
        })
        .collect();
    s.ingest(&render, &Value::Array(batch)).await;
    let batch: Vec<Value> = (0..10)
        .map(|i| {
            json!({"level": if i < 3 { "critical" } else { "warning" }, "message": format!("comp node {i} lost its license")})
        })
        .collect();
    s.ingest(&comp, &Value::Array(batch)).await;
    let r = s
        .post_raw(
            Some(&render),
            "{not json",
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let incident = json!({
        "idempotency_key": "grafana-1",
        "level": "error",
        "message": "TankError: no such shot",
        "dropped_before": 3,
    });
    for duplicate in [false, true] {
        let r = common::into_resp(
            common::http_client()
                .post(s.url("/api/v1/incidents"))
                .bearer_auth(&render)
                .json(&incident)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
        assert_eq!(r.json["duplicate"], duplicate);
    }

    let prom = Prometheus::start(&s).await;
    let target = s.url("").trim_start_matches("http://").to_string();
    // Grafana's built-ins as Grafana sends them; the template variables as
    // one selected value each (not `.*`, so that a misspelled label
    // matcher finds nothing).
    let vars = [
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
        ("job", "faultline"),
        ("instance", target.as_str()),
        ("project", "studio"),
        ("service", "(render|comp)"),
    ];

    // Template variables: `label_values(selector, label)` offers the
    // values this faultline has.
    let templating = d["templating"]["list"].as_array().expect("templating");
    assert!(!templating.is_empty());
    for v in templating {
        let name = v["name"].as_str().expect("variable name");
        assert!(
            vars.iter().any(|(n, _)| *n == name),
            "the test has no value for variable {name}"
        );
        let query = v["definition"].as_str().expect("variable query");
        let (selector, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .unwrap_or_else(|| panic!("{name}: not label_values(selector, label): {query}"));
        let selector = substitute(selector.trim(), &vars);
        let want = match name {
            "job" => "faultline",
            "instance" => target.as_str(),
            "project" => "studio",
            "service" => "render",
            other => panic!("unexpected variable {other}"),
        };
        let mut got = Vec::new();
        let ok = wait_until(
            Duration::from_secs(20),
            Duration::from_millis(250),
            async || {
                got = prom.label_values(label.trim(), &selector).await;
                got.iter().any(|g| g == want)
            },
        )
        .await;
        assert!(ok, "variable {name} ({query}) offers {got:?}, not {want}");
    }

    // The checks below can fail: Prometheus accepts a misspelled metric or
    // label but finds nothing, and refuses a syntax error.
    let ingest = substitute(
        panel(&d, "Ingest rate")["targets"][0]["expr"]
            .as_str()
            .unwrap(),
        &vars,
    );
    assert!(
        !prom
            .series(&ingest, Duration::from_secs(30))
            .await
            .is_empty()
    );
    for typo in [
        ingest.replace(
            "faultline_entries_accepted_total",
            "faultline_entries_acepted_total",
        ),
        ingest.replace("job=~", "jbo=~"),
    ] {
        assert_ne!(typo, ingest);
        let (status, v) = prom.query(&typo).await;
        assert_eq!((status, &v["status"]), (200, &json!("success")), "{v}");
        assert_eq!(v["data"]["result"], json!([]), "{typo}");
    }
    let (status, v) = prom.query(&ingest[..ingest.len() - 1]).await;
    assert_eq!((status, &v["status"]), (400, &json!("error")), "{v}");

    // Every query is valid; every panel but those needing what this test
    // does not do (ShotGrid tickets, retention, a full issue feed) shows
    // data. `… or vector(0)` shows data anyway, so its left side must.
    const MAY_BE_EMPTY: [&str; 3] = [
        "Tickets per hour",
        "Entries expired by retention per hour",
        "Issue feed overflows",
    ];
    for title in MAY_BE_EMPTY.iter().chain(&[
        "Ingest rate",
        "Queue depth",
        "Store size",
        "Events recorded by level",
    ]) {
        panel(&d, title);
    }
    let mut queries = 0;
    for p in panels(&d) {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap();
        let required = !MAY_BE_EMPTY.contains(&title);
        for t in p["targets"].as_array().unwrap() {
            let expr = substitute(t["expr"].as_str().unwrap(), &vars);
            let wait = if required {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            };
            let series = prom.series(&expr, wait).await;
            queries += 1;
            if !required {
                continue;
            }
            assert!(!series.is_empty(), "{title}: no data for {expr}");
            if let Some(left) = expr.strip_suffix(" or vector(0)") {
                assert!(
                    !prom.series(left, wait).await.is_empty(),
                    "{title}: no data for {left}"
                );
            }
            for label in legend_labels(t["legendFormat"].as_str().unwrap_or("")) {
                for x in &series {
                    assert!(
                        x["metric"].get(label).is_some(),
                        "{title}: the legend shows {label} but {expr} gives {x}"
                    );
                }
            }
        }
    }
    assert!(queries >= 30, "{queries} queries");

    // What this test did shows up under the right labels.
    for (title, label, want) in [
        (
            "Events recorded by level",
            "level",
            &["critical", "error"][..],
        ),
        (
            "Events recorded by project / service",
            "service",
            &["comp", "render"],
        ),
        ("Rejected entries by reason", "reason", &["malformed"]),
        ("Incidents per hour", "duplicate", &["false", "true"]),
        ("Alerts fired by rule per hour", "rule", &["fresh"]),
        (
            "Notifications per hour",
            "outcome",
            &["dead", "failed", "sent"],
        ),
    ] {
        let expr = substitute(
            panel(&d, title)["targets"][0]["expr"].as_str().unwrap(),
            &vars,
        );
        let mut got = Vec::new();
        let ok = wait_until(
            Duration::from_secs(30),
            Duration::from_millis(250),
            async || {
                got = prom
                    .series(&expr, Duration::ZERO)
                    .await
                    .iter()
                    .filter_map(|x| x["metric"][label].as_str().map(String::from))
                    .collect();
                got.sort();
                want.iter().all(|w| got.iter().any(|g| g == w))
            },
        )
        .await;
        assert!(ok, "{title}: {label} {got:?}, want {want:?} ({expr})");
    }
}
