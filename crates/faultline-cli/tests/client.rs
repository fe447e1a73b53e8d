//! The client commands (`send`, `logs`, `tail`) driven as a user would,
//! against a real `faultline server` on loopback.

mod common;

use common::{BIN, Server};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// No client run may take longer than this.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// `faultline ARGS` pointed at `base`, with no token or colour settings
/// leaking in from the environment.
fn command(base: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("FAULTLINE_SERVER", base)
        .env_remove("FAULTLINE_TOKEN")
        .env_remove("FAULTLINE_CONFIG")
        .env_remove("FAULTLINE_LISTEN")
        .env_remove("FAULTLINE_DATA_DIR")
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS");
    cmd
}

/// Runs a command to completion with `stdin` (or no stdin); a client still
/// running after [`CLI_TIMEOUT`] fails the test.
fn run(cmd: Command, stdin: Option<Vec<u8>>) -> Output {
    let shown = format!("{cmd:?}");
    let (out, timed_out) = common::run_with_stdin(cmd, stdin, CLI_TIMEOUT);
    assert!(
        !timed_out,
        "faultline {shown} did not finish within {CLI_TIMEOUT:?}"
    );
    out
}

/// Runs the client on the blocking pool (the test runtime stays free).
async fn client(base: &str, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    let cmd = command(base, args);
    tokio::task::spawn_blocking(move || run(cmd, stdin))
        .await
        .expect("client runner")
}

/// Like [`client`], asserting success.
async fn client_ok(base: &str, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    let out = client(base, args, stdin).await;
    assert!(
        out.status.success(),
        "faultline {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

/// Every line of `faultline logs -o ndjson` as JSON.
fn ndjson(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn messages(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["message"].as_str().expect("message").to_string())
        .collect()
}

/// Asserts a failed run printed exactly one stderr line, `error: …`, that
/// contains `needle`.
#[track_caller]
fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    assert_eq!(out.status.code(), Some(1), "exit code");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(lines[0].contains(needle), "{needle:?} in {err:?}");
    assert!(out.stdout.is_empty(), "stdout stays clean");
}

/// A long-running client (`tail`) whose stdout lines arrive on a channel;
/// killed by PID when dropped.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(base: &str, args: &[&str]) -> Running {
        let mut child = command(base, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn faultline");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line, waiting at most `timeout` (without blocking
    /// the async runtime's thread for long).
    async fn next_line(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.try_recv() {
                Ok(l) => return Some(l),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) if Instant::now() >= deadline => return None,
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Waits for the process to exit by itself.
    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_from_flags_then_logs_json_shows_it() {
    let s = Server::start_default().await;
    let ingest = s.ingest_token("shop", "api");
    let admin = s.admin_token();

    let out = client_ok(
        &s.base,
        &[
            "send",
            "--token",
            &ingest,
            "-l",
            "error",
            "--service",
            "api",
            "-t",
            "db",
            "--tag",
            "prod",
            "--attr",
            "order=1234",
            "-a",
            "retries:=3",
            "--attr",
            "ok:=true",
            "--host",
            "web-1",
            "payment failed: card declined",
        ],
        None,
    )
    .await;
    assert!(out.stdout.is_empty(), "send keeps stdout clean");
    assert_eq!(text(&out.stderr), "sent 1 entry\n");

    // --message is the same as the positional form.
    client_ok(
        &s.base,
        &["send", "--token", &ingest, "-m", "second one"],
        None,
    )
    .await;

    let out = client_ok(
        &s.base,
        &[
            "logs",
            "--token",
            &admin,
            "--project",
            "shop",
            "--output",
            "json",
        ],
        None,
    )
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).expect("--output json is one JSON document");
    let entries = v.as_array().expect("a JSON array");
    assert_eq!(
        messages(entries),
        ["second one", "payment failed: card declined"]
    );
    let e = &entries[1];
    assert_eq!(e["project"], "shop");
    assert_eq!(e["service"], "api");
    assert_eq!(e["level"], "error");
    assert_eq!(e["host"], "web-1");
    assert_eq!(e["tags"], serde_json::json!(["db", "prod"]));
    assert_eq!(e["attributes"]["order"], "1234");
    assert_eq!(e["attributes"]["retries"], 3);
    assert_eq!(e["attributes"]["ok"], true);
    assert_eq!(entries[0]["level"], "info", "level defaults to info");

    // An empty result is still valid JSON.
    let out = client_ok(
        &s.base,
        &[
            "logs",
            "--token",
            &admin,
            "-p",
            "shop",
            "-q",
            "nothing-matches-this",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_lines_arrive_exactly_once() {
    let s = Server::start_default().await;
    let ingest = s.ingest_token("shop", "batch");
    let admin = s.admin_token();

    let mut input = Vec::new();
    for i in 0..5000 {
        input.extend_from_slice(format!("line {i:05} of the import\n").as_bytes());
        if i % 1000 == 0 {
            input.extend_from_slice(b"\n   \n"); // blank lines are skipped
        }
    }
    input.extend_from_slice(b"bad \xff byte\r\n");
    input.extend_from_slice(b"no newline at the end");

    let out = client_ok(&s.base, &["send", "--token", &ingest], Some(input)).await;
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.starts_with("sent 5002 entries in ")
            && err.ends_with(", 1 line with invalid UTF-8 (converted lossily)\n")
            && err.lines().count() == 1,
        "one summary line: {err:?}"
    );

    // --all pages through the whole result (several pages of 1000).
    let out = client_ok(
        &s.base,
        &[
            "logs", "--token", &admin, "-p", "shop", "-s", "batch", "--all", "-o", "ndjson",
        ],
        None,
    )
    .await;
    let entries = ndjson(&out);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in messages(&entries) {
        *counts.entry(m).or_default() += 1;
    }
    assert_eq!(entries.len(), 5002);
    assert!(counts.values().all(|&c| c == 1), "no entry stored twice");
    for i in 0..5000 {
        assert!(
            counts.contains_key(&format!("line {i:05} of the import")),
            "line {i}"
        );
    }
    assert!(
        counts.contains_key("bad \u{fffd} byte"),
        "lossy, without the \\r"
    );
    assert!(counts.contains_key("no newline at the end"));

    // Entries keep their input order (newest first means reversed).
    let ordered: Vec<String> = messages(&entries)
        .into_iter()
        .filter(|m| m.starts_with("line "))
        .collect();
    let mut sorted = ordered.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ordered, sorted);

    // --limit bounds the total across pages.
    let out = client_ok(
        &s.base,
        &[
            "logs", "--token", &admin, "-p", "shop", "--limit", "1234", "-o", "ndjson",
        ],
        None,
    )
    .await;
    assert_eq!(ndjson(&out).len(), 1234);
    // Without --all or --limit: the newest 100.
    let out = client_ok(&s.base, &["logs", "--token", &admin, "-o", "ndjson"], None).await;
    assert_eq!(ndjson(&out).len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_import_with_level_and_service() {
    let s = Server::start_default().await;
    let ingest = s.ingest_token("shop", "legacy");
    let admin = s.admin_token();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.log");
    let mut content = String::new();
    for i in 0..1500 {
        content.push_str(&format!(
            "2016-04-25 08:56:12,413 [44862 WARNING sgtk] old warning {i}\r\n"
        ));
    }
    std::fs::write(&path, content).expect("write file");

    let out = client_ok(
        &s.base,
        &[
            "send",
            "--token",
            &ingest,
            "--file",
            path.to_str().unwrap(),
            "--service",
            "legacy",
            "--level",
            "warning",
            "--tag",
            "import",
        ],
        None,
    )
    .await;
    // stderr is not a terminal here: no progress bar, only the summary.
    let err = text(&out.stderr);
    assert!(
        err.starts_with("sent 1500 entries in ") && err.lines().count() == 1,
        "{err:?}"
    );

    let out = client_ok(
        &s.base,
        &[
            "logs", "--token", &admin, "-p", "shop", "-t", "import", "--all", "-o", "ndjson",
        ],
        None,
    )
    .await;
    let entries = ndjson(&out);
    assert_eq!(entries.len(), 1500);
    assert!(
        entries
            .iter()
            .all(|e| e["level"] == "warn" && e["service"] == "legacy")
    );
    let expected: Vec<String> = (0..1500)
        .rev()
        .map(|i| format!("2016-04-25 08:56:12,413 [44862 WARNING sgtk] old warning {i}"))
        .collect();
    assert_eq!(
        messages(&entries),
        expected,
        "input order, newest first, no \\r"
    );

    // A missing file is a one-line error.
    let out = client(
        &s.base,
        &["send", "--token", &ingest, "--file", "/nonexistent/x.log"],
        None,
    )
    .await;
    assert_one_line_error(&out, "cannot open /nonexistent/x.log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_filters_and_table_output() {
    let s = Server::start_default().await;
    let api = s.ingest_token("shop", "api");
    let web = s.ingest_token("shop", "web");
    let admin = s.admin_token();
    let read = s.read_token("shop");

    for (token, level, tag, message) in [
        (
            &api,
            "error",
            "db",
            "db connection refused\nTraceback: boom",
        ),
        (&web, "info", "http", "page served"),
        (&api, "warn", "db", "slow query"),
    ] {
        client_ok(
            &s.base,
            &["send", "--token", token, "-l", level, "-t", tag, message],
            None,
        )
        .await;
    }
    let query = |extra: &[&str]| {
        let mut args = vec![
            "logs",
            "--token",
            read.as_str(),
            "-p",
            "shop",
            "-o",
            "ndjson",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![],
            vec![
                "slow query",
                "page served",
                "db connection refused\nTraceback: boom",
            ],
        ),
        (vec!["-s", "web"], vec!["page served"]),
        (
            vec!["-s", "web", "--service", "api", "-l", "warn"],
            vec!["slow query", "db connection refused\nTraceback: boom"],
        ),
        (
            vec!["-l", "error"],
            vec!["db connection refused\nTraceback: boom"],
        ),
        (vec!["-t", "http"], vec!["page served"]),
        (
            vec!["-q", "connection refused"],
            vec!["db connection refused\nTraceback: boom"],
        ),
        (
            vec!["--since", "1h"],
            vec![
                "slow query",
                "page served",
                "db connection refused\nTraceback: boom",
            ],
        ),
        (vec!["--until", "1h"], vec![]),
        (vec!["-n", "1"], vec!["slow query"]),
    ];
    for (extra, expected) in cases {
        let args = query(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = client_ok(&s.base, &args, None).await;
        assert_eq!(messages(&ndjson(&out)), expected, "filters {extra:?}");
    }

    // Table: one line per entry, no colour off a terminal, newlines escaped.
    let out = client_ok(&s.base, &["logs", "--token", &admin, "-p", "shop"], None).await;
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        !table.contains('\x1b'),
        "no ANSI codes when stdout is a pipe"
    );
    assert!(
        lines[0].contains("  WARN   api ") && lines[0].ends_with("  slow query"),
        "{table}"
    );
    assert!(
        lines[2].contains("ERROR") && lines[2].ends_with("db connection refused\\nTraceback: boom"),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("20") && l.as_bytes()[23] == b'Z'),
        "{table}"
    );

    // Client-side validation of times: clap's usage error.
    let out = client(
        &s.base,
        &["logs", "--token", &admin, "--since", "yesterday"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--since"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_fail_with_one_line() {
    let s = Server::start_default().await;
    let ingest = s.ingest_token("shop", "api");
    let bogus = "fl_0000000000000000000000000000000000000000000";

    let out = client(&s.base, &["send", "--token", bogus, "hello"], None).await;
    assert_one_line_error(&out, "server said 401 Unauthorized: unauthorized");
    let out = client(
        &s.base,
        &["send", "--token", bogus],
        Some(b"a\nb\nc\n".to_vec()),
    )
    .await;
    assert_one_line_error(&out, "server said 401 Unauthorized");
    let out = client(&s.base, &["logs", "--token", bogus], None).await;
    assert_one_line_error(&out, "server said 401 Unauthorized");
    // An ingest token may not read.
    let out = client(&s.base, &["logs", "--token", &ingest], None).await;
    assert_one_line_error(&out, "server said 403 Forbidden");
    // Another service than the token's: the server's reason is shown.
    let out = client(
        &s.base,
        &["send", "--token", &ingest, "-s", "web", "hello"],
        None,
    )
    .await;
    assert_one_line_error(&out, "server said 403 Forbidden");

    // tail gives up at once on a refusal instead of reconnecting forever.
    let mut tail = Running::spawn(&s.base, &["tail", "--token", bogus]);
    let status = tail
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("tail exits");
    assert_eq!(status.code(), Some(1));
    let err = tail.stderr();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("error: following ") && err.contains("401"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_gives_up_after_the_retry_budget() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let out = client(
        &base,
        &["send", "--token", "fl_x", "--retry-for", "1s", "hello"],
        None,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: sending the entry: gave up after")
            && last.contains("cannot connect to 127.0.0.1:"),
        "{err:?}"
    );
    // Retry notes, if any, came before it on their own lines.
    assert!(
        err.lines()
            .rev()
            .skip(1)
            .all(|l| l.starts_with("faultline: ") && l.contains("retrying in")),
        "{err:?}"
    );

    let out = client(
        &base,
        &["send", "--token", "fl_x", "--retry-for", "0", "hello"],
        None,
    )
    .await;
    assert_one_line_error(&out, "cannot connect to 127.0.0.1:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_server_limits_split_batches_and_overload_is_retried() {
    // Batches of 1000 are too many for this server (413: split them), and a
    // tiny queue that waits 1 ms answers 503 + Retry-After under load.
    let s = Server::start_with_config(
        "[limits]\nmax_entries = 100\n\n[queue]\ncapacity = 150\nwait = \"1ms\"\n",
    )
    .await;
    let ingest = s.ingest_token("shop", "api");
    let admin = s.admin_token();
    let input: String = (0..5000).map(|i| format!("entry {i}\n")).collect();
    let out = client_ok(
        &s.base,
        &["send", "--token", &ingest],
        Some(input.into_bytes()),
    )
    .await;
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .last()
            .unwrap_or("")
            .starts_with("sent 5000 entries in "),
        "{err:?}"
    );

    let mut counts: HashMap<String, usize> = HashMap::new();
    s.walk(&admin, &[("project", "shop")], 10, |e| {
        *counts
            .entry(e["message"].as_str().unwrap().to_string())
            .or_default() += 1;
    })
    .await;
    assert_eq!(counts.len(), 5000);
    assert!(counts.values().all(|&c| c == 1), "no entry stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_entries_sent_after_it_started() {
    let s = Server::start_default().await;
    let ingest = s.ingest_token("shop", "api");
    let admin = s.admin_token();

    let json_tail = Running::spawn(
        &s.base,
        &["tail", "--token", &admin, "-p", "shop", "-o", "json"],
    );
    let text_tail = Running::spawn(
        &s.base,
        &["tail", "--token", &admin, "-p", "shop", "-l", "error"],
    );

    // The tails subscribe in the background: send probes until both saw one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut json_line, mut text_line) = (None, None);
    let mut n = 0;
    while json_line.is_none() || text_line.is_none() {
        assert!(
            Instant::now() < deadline,
            "no tail output; stderr: {:?} / {:?}",
            json_tail.stderr(),
            text_tail.stderr()
        );
        n += 1;
        let probe = format!("probe {n}");
        client_ok(
            &s.base,
            &["send", "--token", &ingest, "-l", "error", &probe],
            None,
        )
        .await;
        if json_line.is_none() {
            json_line = json_tail.next_line(Duration::from_millis(300)).await;
        }
        if text_line.is_none() {
            text_line = text_tail.next_line(Duration::from_millis(300)).await;
        }
    }
    let entry: Value = serde_json::from_str(&json_line.unwrap()).expect("json lines");
    assert!(
        entry["message"].as_str().unwrap().starts_with("probe "),
        "{entry}"
    );
    assert_eq!(entry["level"], "error");
    assert_eq!(entry["service"], "api");
    assert_eq!(entry["project"], "shop");
    let line = text_line.unwrap();
    assert!(
        line.contains("  ERROR  api ") && line.contains("  probe "),
        "{line:?}"
    );
    assert!(!line.contains('\x1b'), "no colour when stdout is a pipe");

    // The level filter applies live: the info entry never shows.
    client_ok(
        &s.base,
        &["send", "--token", &ingest, "-l", "info", "quiet info"],
        None,
    )
    .await;
    client_ok(
        &s.base,
        &[
            "send",
            "--token",
            &ingest,
            "-l",
            "critical",
            "loud critical",
        ],
        None,
    )
    .await;
    loop {
        let line = text_tail
            .next_line(Duration::from_secs(10))
            .await
            .expect("the critical entry arrives");
        assert!(!line.contains("quiet info"), "{line:?}");
        if line.contains("loud critical") {
            assert!(line.contains("  CRIT   api "), "{line:?}");
            break;
        }
    }
    assert!(json_tail.stderr().is_empty(), "{:?}", json_tail.stderr());
}

/// Polls `/healthz` until the server answers.
async fn wait_healthy(base: &str) {
    let http = common::http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server at {base} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the client's stderr contains `needle`.
async fn wait_stderr(r: &Running, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !r.stderr().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {:?}",
            r.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_reconnects_after_a_server_restart() {
    // The shared harness restarts servers on a new port; a tail can only
    // come back to the same address, so this test runs its own server on a
    // fixed port and restarts it there.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let listen = format!("127.0.0.1:{}", closed_port());
    let base = format!("http://{listen}");
    let server_args = ["server", "--listen", &listen, "--data-dir", data];
    let server = Running::spawn(&base, &server_args);
    wait_healthy(&base).await;
    let token = |args: &[&str]| {
        let mut a = vec!["token", "create", "--data-dir", data];
        a.extend_from_slice(args);
        let out = run(command(&base, &a), None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let admin = token(&["--admin"]);
    let ingest = token(&["--project", "shop", "--service", "api"]);

    let mut tail = Running::spawn(&base, &["tail", "--token", &admin, "-o", "json"]);
    let probe_until_seen = async |prefix: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in 0.. {
            assert!(
                Instant::now() < deadline,
                "tail printed nothing: {:?}",
                tail.stderr()
            );
            let msg = format!("{prefix} {n}");
            client_ok(&base, &["send", "--token", &ingest, &msg], None).await;
            if let Some(line) = tail.next_line(Duration::from_millis(300)).await {
                assert!(line.contains(prefix), "{line:?}");
                return;
            }
        }
    };
    probe_until_seen("before restart").await;

    drop(server); // killed by PID
    wait_stderr(&tail, "reconnecting in", Duration::from_secs(20)).await;
    let _server = Running::spawn(&base, &server_args);
    wait_healthy(&base).await;
    wait_stderr(&tail, "faultline: reconnected", Duration::from_secs(30)).await;
    probe_until_seen("after restart").await;
    assert!(
        tail.child.try_wait().expect("try_wait").is_none(),
        "tail still runs"
    );
}
