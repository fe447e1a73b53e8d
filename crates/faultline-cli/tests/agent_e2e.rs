//! The real `faultline-agent` against the real `faultline server`: errors
//! written to a ShotGrid-format log become issues with their log attached,
//! context and environment; `kill -9` of the agent mid-stream and a server
//! that is down for a while lose nothing and duplicate nothing.
//!
//! The agent binary is built by `cargo build --workspace --bins` (as
//! scripts/test.sh does) next to the `faultline` binary.

mod common;

use common::{Server, wait_until};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn agent_bin() -> PathBuf {
    let p = Path::new(common::BIN)
        .parent()
        .expect("target dir")
        .join("faultline-agent");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// An agent process, killed (by its PID) when dropped.
struct Agent(Child);

impl Agent {
    fn start(server: &str, token: &str, state: &Path, glob: &str) -> Agent {
        // A short throttle window, so folded repeats arrive within the test.
        let config = state.join("agent-test.toml");
        std::fs::write(
            &config,
            "[throttle]\nwindow = \"1s\"\n[delivery]\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n",
        )
        .unwrap();
        let child = Command::new(agent_bin())
            .args(["run", "--server", server, "--token", token])
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(state)
            .args(["--watch", glob])
            .env_remove("FAULTLINE_SERVER")
            .env_remove("FAULTLINE_TOKEN")
            .env("USER", "alice")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the agent");
        Agent(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Appends ShotGrid-format records: `n` errors of one kind (values vary),
/// each with a traceback, between info lines.
fn write_errors(log: &Path, kind: &str, from: usize, n: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for i in from..from + n {
        writeln!(
            f,
            "2026-11-22 06:40:{:02},123 [4242 INFO sgtk.core.engine] publishing shot sh{i:03}",
            i % 60
        )
        .unwrap();
        writeln!(
            f,
            "2026-11-22 06:40:{:02},456 [4242 ERROR sgtk.core.engine] {kind} while publishing sh{i:03}\nTraceback (most recent call last):\n  File \"/opt/tk/core/publish.py\", line 41, in publish\n    self._register(item)\n  File \"/opt/tk/core/publish.py\", line 77, in _register\n    raise {kind}(\"no path for sh{i:03}\")\n{kind}: no path for sh{i:03}",
            i % 60
        )
        .unwrap();
        writeln!(
            f,
            "2026-11-22 06:40:{:02},789 [4242 INFO sgtk.core.engine] moving on",
            i % 60
        )
        .unwrap();
    }
    f.sync_all().unwrap();
}

/// Issues of the project once their counts add up to `n` (and stay there).
async fn issues_at(s: &Server, token: &str, n: u64) -> Vec<Value> {
    let mut last = Vec::new();
    let ok = wait_until(
        Duration::from_secs(40),
        Duration::from_millis(200),
        async || {
            let r = s
                .get("/api/v1/issues", Some(token), &[("project", "studio")])
                .await;
            last = r.json["issues"].as_array().cloned().unwrap_or_default();
            last.iter()
                .map(|i| i["count"].as_u64().unwrap())
                .sum::<u64>()
                >= n
        },
    )
    .await;
    assert!(ok, "issues never reached {n} events: {last:#?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = s
        .get("/api/v1/issues", Some(token), &[("project", "studio")])
        .await;
    r.json["issues"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_errors_become_issues_exactly_once() {
    let mut s = Server::start_default().await;
    let token = s.ingest_token("studio", "tk-maya");
    let reader = s.read_token("studio");
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = logs.path().join("tk-maya.log");
    let glob = format!("{}/tk-*.log", logs.path().display());

    let mut agent = Agent::start(&s.url(""), &token, state.path(), &glob);
    tokio::time::sleep(Duration::from_millis(700)).await;
    write_errors(&log, "TankError", 0, 3);
    let issues = issues_at(&s, &reader, 3).await;
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert_eq!(issue["count"], 3);
    assert_eq!(issue["exception_type"], "TankError");
    let title = issue["title"].as_str().unwrap();
    assert!(title.ends_with(" - TankError"), "{title}");
    let id = issue["id"].as_i64().unwrap();
    let r = s
        .get(&format!("/api/v1/issues/{id}/events"), Some(&reader), &[])
        .await;
    let ev = &r.json["events"][0];
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("TankError: no path for sh")
    );
    assert!(!ev["environment"].as_object().unwrap().is_empty(), "{ev}");
    assert!(!ev["frames"].as_array().unwrap().is_empty(), "{ev}");
    let att = &ev["attachments"][0];
    assert_eq!(att["name"], "tk-maya.log");
    let url = format!(
        "/api/v1/issues/{id}/events/{}/attachments/{}",
        ev["id"],
        att["sha256"].as_str().unwrap()
    );
    let r = s.get(&url, Some(&reader), &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("publishing shot sh000"),
        "the log is attached"
    );

    // kill -9 of the agent while errors keep coming, then restart: nothing
    // lost, nothing doubled.
    write_errors(&log, "TankError", 3, 20);
    tokio::time::sleep(Duration::from_millis(150)).await;
    agent.kill9();
    write_errors(&log, "ValueError", 23, 5);
    let mut agent = Agent::start(&s.url(""), &token, state.path(), &glob);
    let issues = issues_at(&s, &reader, 28).await;
    let mut counts: Vec<u64> = issues
        .iter()
        .map(|i| i["count"].as_u64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, [5, 23], "{issues:#?}");

    // The server down for a while: the agent spools, then delivers.
    s.kill9();
    write_errors(&log, "KeyError", 28, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.restart().await;
    agent.kill9();
    // The restarted server listens on a new port: point a new agent at it
    // (same state directory, so the same spool and checkpoints).
    let _agent = Agent::start(&s.url(""), &token, state.path(), &glob);
    let issues = issues_at(&s, &reader, 32).await;
    let mut counts: Vec<u64> = issues
        .iter()
        .map(|i| i["count"].as_u64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, [4, 5, 23], "{issues:#?}");
}
