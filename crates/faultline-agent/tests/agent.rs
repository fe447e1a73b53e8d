//! Integration tests: the real `faultline-agent` binary against a fake
//! faultline receiver (axum on 127.0.0.1) that records incidents and log
//! batches and deduplicates by idempotency key, as the server will.
//!
//! Every loop is bounded in time; every process started here is killed by
//! its guard (and only those).

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

const TOKEN: &str = "fl_test_token_0123456789abcdefghijklmnop";
const BIN: &str = env!("CARGO_BIN_EXE_faultline-agent");

// ----- fake receiver --------------------------------------------------------

#[derive(Default)]
struct Recv {
    /// Every accepted incident (including replays), with its header key.
    incidents: Vec<(Option<String>, Value)>,
    /// Accepted incidents by key (first delivery).
    by_key: BTreeMap<String, Value>,
    /// Log entries accepted (all deliveries).
    logs: Vec<Value>,
    /// Arrival time of every request to /incidents (also refused ones).
    attempts: Vec<Instant>,
    /// Answer 503 with this Retry-After to the next N incident requests.
    fail_503: Option<(u32, String)>,
    /// Answer this status to every incident request.
    status: Option<u16>,
    /// Think this long before handling an incident (slow server).
    delay: Duration,
    /// Log batches that came gzip-compressed.
    gzipped_batches: usize,
}

type Shared = Arc<Mutex<Recv>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn incidents(State(st): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    let delay = st.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = st.lock().unwrap();
    s.attempts.push(Instant::now());
    if !authorized(&h) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unauthorized","detail":"bad token"}"#,
        )
            .into_response();
    }
    if let Some(code) = s.status {
        let c = StatusCode::from_u16(code).unwrap();
        return (c, r#"{"error":"refused","detail":"test"}"#).into_response();
    }
    if let Some((n, ra)) = s.fail_503.clone()
        && n > 0
    {
        s.fail_503 = Some((n - 1, ra.clone()));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", ra)],
            r#"{"error":"overloaded","detail":"test"}"#,
        )
            .into_response();
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(r#"{{"error":"malformed json","detail":"{e}"}}"#),
            )
                .into_response();
        }
    };
    let key = v["idempotency_key"].as_str().unwrap_or_default().to_owned();
    let header = h
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let duplicate = s.by_key.contains_key(&key);
    if !duplicate {
        s.by_key.insert(key, v.clone());
    }
    let n = s.incidents.len();
    s.incidents.push((header, v));
    (
        StatusCode::ACCEPTED,
        format!(r#"{{"event_id":{n},"issue_id":1,"duplicate":{duplicate}}}"#),
    )
        .into_response()
}

async fn logs(State(st): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if !authorized(&h) {
        return (StatusCode::UNAUTHORIZED, "{}").into_response();
    }
    let gzipped = h
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = if gzipped {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        st.lock().unwrap().gzipped_batches += 1;
        out
    } else {
        body.to_vec()
    };
    let v: Value = serde_json::from_slice(&body).unwrap();
    let entries = match v {
        Value::Array(a) => a,
        o => vec![o],
    };
    let n = entries.len();
    st.lock().unwrap().logs.extend(entries);
    (StatusCode::ACCEPTED, format!(r#"{{"accepted":{n}}}"#)).into_response()
}

struct Receiver {
    addr: SocketAddr,
    state: Shared,
    rt: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    fn start() -> Receiver {
        Receiver::start_at("127.0.0.1:0".parse().unwrap(), Shared::default())
    }

    fn start_at(addr: SocketAddr, state: Shared) -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/api/v1/incidents", post(incidents))
            .route("/api/v1/logs", post(logs))
            .with_state(Arc::clone(&state));
        rt.spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            state,
            rt: Some(rt),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Recv) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn unique(&self) -> usize {
        self.with(|s| s.by_key.len())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A free loopback port (bound then released).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ----- agent process ----------------------------------------------------------

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        // SIGKILL of our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        Env { dir }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A fast configuration for tests, plus `extra` TOML.
    fn config(&self, extra: &str, source_extra: &str) -> PathBuf {
        let p = self.dir.path().join("agent.toml");
        let text = format!(
            r#"
[context]
before = 5
after = 3
after_wait = "200ms"
[delivery]
initial_backoff = "100ms"
max_backoff = "400ms"
timeout = "5s"
[tail]
rescan_interval = "200ms"
multiline_timeout = "200ms"
{extra}
[[sources]]
name = "tk"
paths = ["{}/tk-*.log"]
format = "shotgrid"
start_at = "beginning"
{source_extra}
"#,
            self.logs().display()
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    fn spawn(&self, server: &str, config: &Path) -> Agent {
        self.spawn_via(&[], server, config)
    }

    /// [`Env::spawn`] through a wrapper command (e.g. `setpriv …`).
    fn spawn_via(&self, wrapper: &[&str], server: &str, config: &Path) -> Agent {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let log = self.dir.path().join(format!("agent-{n}.stderr"));
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .args(["run", "--server", server, "--token", TOKEN])
            .arg("--state-dir")
            .arg(self.state())
            .arg("--config")
            .arg(config)
            .env("USER", "alice")
            .env(
                "FAULTLINE_LOG",
                "info,faultline_agent=debug,faultline_tail=debug",
            )
            .env_remove("FAULTLINE_SERVER")
            .env_remove("FAULTLINE_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut a = Agent { child, log };
        wait_until(Duration::from_secs(20), "agent start", || {
            assert!(a.alive(), "agent exited: {}", a.stderr());
            a.stderr().contains("faultline-agent started")
        });
        a
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sg_line(level: &str, msg: &str) -> String {
    format!("2026-11-22 06:40:00,123 [4242 {level} sgtk.core.engine] {msg}\n")
}

fn error_block(i: usize) -> String {
    format!(
        "{}Traceback (most recent call last):\n  File \"/opt/tk/engine.py\", line 12, in load\n    raise ValueError('boom')\nValueError: boom {i}\n",
        sg_line("ERROR", &format!("failed to load item {i}"))
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn gunzip_base64(data: &str) -> String {
    use std::io::Read as _;
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut bytes = Vec::new();
    for chunk in data.as_bytes().chunks(4) {
        let digits: Vec<u32> = chunk
            .iter()
            .filter(|c| **c != b'=')
            .map(|c| val(*c))
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |acc, (k, d)| acc | (d << (18 - 6 * k)));
        let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        bytes.extend_from_slice(&out[..digits.len() - 1]);
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The `boom N` numbers of the accepted incidents (first deliveries).
fn booms(r: &Receiver) -> Vec<usize> {
    let mut v: Vec<usize> = r.with(|s| {
        s.by_key
            .values()
            .filter_map(|i| {
                let m = i["message"].as_str()?;
                m.rsplit("boom ").next()?.trim().parse().ok()
            })
            .collect()
    });
    v.sort_unstable();
    v
}

// ----- tests ------------------------------------------------------------------

#[test]
fn python_rotating_handler_errors_arrive_exactly_once() {
    if Command::new("python3").arg("--version").output().is_err() {
        println!("python3 not found: skipping the RotatingFileHandler test");
        return;
    }
    let env = Env::new();
    let recv = Receiver::start();
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let agent = env.spawn(&recv.url(), &cfg);
    let script = format!(
        r#"
import logging, logging.handlers, time
h = logging.handlers.RotatingFileHandler("{}/tk-maya.log", maxBytes=20000, backupCount=1)
h.setFormatter(logging.Formatter("%(asctime)s [%(process)d %(levelname)s %(name)s] %(message)s"))
log = logging.getLogger("sgtk.core.engine")
log.addHandler(h)
log.setLevel(logging.DEBUG)
log.info("Running tk-core v0.20.5, tk-maya v0.12.1")
n = 0
for i in range(60):
    for j in range(25):
        log.debug("loading app tk-multi-loader2 item %d/%d from /projects/show/seq/sh%04d/comp password=hunter2", i, j, j)
        n += 1
        if n % 20 == 0:
            time.sleep(0.02)
    try:
        raise ValueError("boom %d" % i)
    except ValueError:
        log.exception("failed to load item %d", i)
"#,
        env.logs().display()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = env.logs().join("tk-maya.log.1");
    assert!(rotated.exists(), "the log rotated");

    let end = Instant::now() + Duration::from_secs(30);
    while recv.unique() < 60 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    if recv.unique() < 60 {
        let got = booms(&recv);
        let missing: Vec<usize> = (0..60).filter(|i| !got.contains(i)).collect();
        panic!("missing {missing:?}; agent log:\n{}", agent.stderr());
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(booms(&recv), (0..60).collect::<Vec<_>>());
    recv.with(|s| {
        assert_eq!(
            s.incidents.len(),
            60,
            "each delivered once (no retries needed)"
        );
        let fps: HashSet<&str> = s
            .by_key
            .values()
            .map(|i| i["fingerprint"].as_str().unwrap())
            .collect();
        assert_eq!(fps.len(), 1, "same stack, one fingerprint: {fps:?}");
        for (header, i) in &s.incidents {
            assert_eq!(header.as_deref(), i["idempotency_key"].as_str());
            assert_eq!(i["title"], "alice - ValueError");
            assert_eq!(i["level"], "error");
            assert_eq!(i["engine"], "tk-maya");
            assert_eq!(i["logger"], "sgtk.core.engine");
            assert_eq!(i["count"], 1);
            assert!(i["pid"].as_u64().unwrap() > 0);
            let msg = i["message"].as_str().unwrap();
            assert!(msg.contains("Traceback (most recent call last):"), "{msg}");
            let env = &i["environment"];
            for k in ["os", "hostname", "user", "agent_version", "cpu_count"] {
                assert!(env[k].is_string(), "environment.{k}: {env}");
            }
            assert_eq!(env["user"], "alice");
            assert_eq!(env["tk_core_version"], "v0.20.5");
            assert_eq!(env["engine_version"], "v0.12.1");
            let before = i["context"]["before"].as_array().unwrap();
            assert!(!before.is_empty());
            assert!(
                before
                    .iter()
                    .all(|l| !l.as_str().unwrap().contains("hunter2")),
                "redacted context"
            );
            let a = &i["attachments"][0];
            assert_eq!(a["encoding"], "gzip");
            assert!(a["name"].as_str().unwrap().starts_with("tk-maya.log"));
            assert!(a["size"].as_u64().unwrap() > 0);
            let text = gunzip_base64(a["data"].as_str().unwrap());
            assert_eq!(text.len() as u64, a["size"].as_u64().unwrap());
            assert!(!text.contains("hunter2"), "attachment redacted");
            assert!(text.contains("password=[REDACTED]"));
        }
        // The last error's attachment (no rotation after it) shows it.
        let last = s
            .by_key
            .values()
            .find(|i| i["message"].as_str().unwrap().ends_with("boom 59"))
            .unwrap();
        let text = gunzip_base64(last["attachments"][0]["data"].as_str().unwrap());
        assert!(
            text.contains("ValueError: boom 59"),
            "{}",
            &text[text.len().saturating_sub(300)..]
        );
    });
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    let env = Env::new();
    let recv = Receiver::start();
    // A slow server: the kill lands while uploads are in flight.
    recv.with(|s| s.delay = Duration::from_millis(100));
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let log = env.logs().join("tk-nuke.log");
    let mut agent = env.spawn(&recv.url(), &cfg);
    for i in 0..40 {
        append(&log, &error_block(i));
        append(&log, &sg_line("INFO", "working"));
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_until(Duration::from_secs(20), "some incidents", || {
        recv.unique() >= 3
    });
    agent.kill9();
    let waiting = spool_items(&env.state());
    assert!(waiting > 0, "killed with deliveries pending");
    // Written while no agent runs.
    for i in 40..80 {
        append(&log, &error_block(i));
    }
    recv.with(|s| s.delay = Duration::ZERO);
    let _agent = env.spawn(&recv.url(), &cfg);
    for i in 80..100 {
        append(&log, &error_block(i));
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_until(Duration::from_secs(30), "100 incidents", || {
        recv.unique() >= 100
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        booms(&recv),
        (0..100).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
    // Replays (if any) carried the same key as the first delivery.
    recv.with(|s| {
        for (_, i) in &s.incidents {
            let k = i["idempotency_key"].as_str().unwrap();
            assert_eq!(s.by_key[k]["message"], i["message"]);
        }
    });
}

fn spool_items(state: &Path) -> usize {
    std::fs::read_dir(state.join("spool")).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".incident.json"))
        })
        .count()
    })
}

#[test]
fn server_down_for_a_while_then_up_everything_arrives() {
    let env = Env::new();
    let addr = free_port();
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let _agent = env.spawn(&format!("http://{addr}"), &cfg);
    let log = env.logs().join("tk-houdini.log");
    for i in 0..20 {
        append(&log, &error_block(i));
    }
    // Spooled while the server is down.
    wait_until(Duration::from_secs(20), "20 spooled incidents", || {
        spool_items(&env.state()) >= 20
    });
    std::thread::sleep(Duration::from_secs(1));
    let recv = Receiver::start_at(addr, Shared::default());
    wait_until(
        Duration::from_secs(30),
        "20 incidents after the outage",
        || recv.unique() >= 20,
    );
    assert_eq!(booms(&recv), (0..20).collect::<Vec<_>>());
    wait_until(Duration::from_secs(10), "spool drained", || {
        spool_items(&env.state()) == 0
    });
}

#[test]
fn retry_after_of_a_503_is_honoured() {
    let env = Env::new();
    let recv = Receiver::start();
    recv.with(|s| s.fail_503 = Some((1, "2".into())));
    let cfg = env.config("", "");
    let _agent = env.spawn(&recv.url(), &cfg);
    append(&env.logs().join("tk-maya.log"), &error_block(1));
    wait_until(
        Duration::from_secs(20),
        "the incident after the retry",
        || recv.unique() == 1,
    );
    recv.with(|s| {
        assert_eq!(s.attempts.len(), 2, "one refused, one accepted");
        let gap = s.attempts[1] - s.attempts[0];
        // Backoff alone would retry after ~100 ms.
        assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
        assert!(gap < Duration::from_secs(5), "retried after {gap:?}");
    });
}

#[test]
fn permanent_refusal_goes_to_dead_letter_and_the_queue_goes_on() {
    let env = Env::new();
    let recv = Receiver::start();
    recv.with(|s| s.status = Some(400));
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let agent = env.spawn(&recv.url(), &cfg);
    append(&env.logs().join("tk-maya.log"), &error_block(1));
    let dead = env.state().join("dead-letter");
    wait_until(Duration::from_secs(20), "dead letter", || {
        std::fs::read_dir(&dead).is_ok_and(|d| d.count() >= 2)
    });
    assert_eq!(recv.with(|s| s.attempts.len()), 1, "never retried");
    assert!(agent.stderr().contains("dead-letter"), "{}", agent.stderr());
    recv.with(|s| s.status = None);
    append(&env.logs().join("tk-maya.log"), &error_block(2));
    wait_until(Duration::from_secs(20), "the next incident", || {
        recv.unique() == 1
    });
    assert_eq!(booms(&recv), [2]);
}

#[test]
fn second_instance_is_refused_and_a_stale_lock_does_not_block() {
    let env = Env::new();
    let recv = Receiver::start();
    let cfg = env.config("", "");
    let mut first = env.spawn(&recv.url(), &cfg);
    let out = Command::new(BIN)
        .args(["run", "--server", &recv.url(), "--token", TOKEN])
        .arg("--state-dir")
        .arg(env.state())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&format!("pid {}", first.child.id())), "{err}");
    assert!(first.alive());
    // After a crash the OS lock is gone: a new instance starts.
    first.kill9();
    let mut again = env.spawn(&recv.url(), &cfg);
    assert!(again.alive());
}

#[test]
fn bad_input_does_not_crash_the_agent() {
    let env = Env::new();
    let recv = Receiver::start();
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let mut agent = env.spawn(&recv.url(), &cfg);
    let logs = env.logs();
    // Binary garbage.
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(logs.join("tk-binary.log"), &garbage).unwrap();
    // Invalid UTF-8 in an error line.
    let mut bad = sg_line("ERROR", "caf").into_bytes();
    bad.truncate(bad.len() - 1);
    bad.extend_from_slice(b"\xe9 \xff\xfe failed\n");
    std::fs::write(logs.join("tk-latin1.log"), &bad).unwrap();
    // A file that vanishes while read.
    let gone = logs.join("tk-gone.log");
    std::fs::write(&gone, sg_line("INFO", "short-lived").repeat(1000)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::remove_file(&gone).unwrap();
    // Permission denied.
    let secret = logs.join("tk-secret.log");
    std::fs::write(&secret, error_block(999)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let root = std::fs::File::open(&secret).is_ok();
    if root {
        println!("running as root: permission bits do not deny reads; tk-secret.log is readable");
    }
    // A 100 MiB single line (cut at the 1 MiB line cap, the rest skipped
    // without being buffered), written in pieces.
    {
        let mut f = std::fs::File::create(logs.join("tk-huge.log")).unwrap();
        f.write_all(sg_line("ERROR", "huge").trim_end().as_bytes())
            .unwrap();
        let piece = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&piece).unwrap();
        }
        f.write_all(b"\n").unwrap();
    }
    // Then a normal error: the agent is still working.
    std::thread::sleep(Duration::from_millis(500));
    append(&logs.join("tk-maya.log"), &error_block(7));
    wait_until(Duration::from_secs(30), "the normal error", || {
        booms(&recv).contains(&7)
    });
    wait_until(Duration::from_secs(60), "the huge line's error", || {
        recv.with(|s| s.by_key.values().any(|i| i["engine"] == "tk-huge"))
    });
    assert!(agent.alive(), "{}", agent.stderr());
    recv.with(|s| {
        let latin = s
            .by_key
            .values()
            .find(|i| i["engine"] == "tk-latin1")
            .expect("the invalid UTF-8 error arrives");
        assert!(latin["message"].as_str().unwrap().contains('\u{fffd}'));
        assert_eq!(latin["attributes"]["lossy"], "true");
        let huge = s
            .by_key
            .values()
            .find(|i| i["engine"] == "tk-huge")
            .expect("the huge line's error arrives");
        assert!(huge["message"].as_str().unwrap().len() <= 200 * 1024);
        assert_eq!(huge["attributes"]["truncated"], "true");
        let secret_seen = s.by_key.values().any(|i| i["engine"] == "tk-secret");
        assert_eq!(
            secret_seen, root,
            "unreadable file skipped, readable one read"
        );
    });
    if !root {
        assert!(
            agent.stderr().contains("tk-secret.log"),
            "the problem is reported"
        );
    }
}

#[test]
fn throttle_folds_a_flood_into_one_plus_a_count() {
    let env = Env::new();
    let recv = Receiver::start();
    let cfg = env.config("[throttle]\nwindow = \"2s\"", "");
    let _agent = env.spawn(&recv.url(), &cfg);
    let log = env.logs().join("tk-maya.log");
    let mut text = String::new();
    for _ in 0..50 {
        text.push_str(&error_block(5));
    }
    append(&log, &text);
    wait_until(Duration::from_secs(20), "two incidents", || {
        recv.unique() >= 2
    });
    std::thread::sleep(Duration::from_secs(3));
    recv.with(|s| {
        let counts: Vec<u64> = s
            .by_key
            .values()
            .map(|i| i["count"].as_u64().unwrap())
            .collect();
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert_eq!(counts.iter().sum::<u64>(), 50, "{counts:?}");
        assert!(counts.contains(&1) && counts.contains(&49), "{counts:?}");
    });
}

#[test]
fn ship_all_lines_sends_every_line_once() {
    let env = Env::new();
    let recv = Receiver::start();
    let cfg = env.config(
        "",
        "ship_all_lines = true\nservice = \"tk-desktop\"\ntags = [\"desk\"]",
    );
    let _agent = env.spawn(&recv.url(), &cfg);
    let log = env.logs().join("tk-desktop.log");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&sg_line("INFO", &format!("line {i} token=abc{i}")));
    }
    // One write: one batch well over the gzip threshold.
    append(&log, &text);
    append(&log, &error_block(3));
    wait_until(Duration::from_secs(20), "101 entries", || {
        recv.with(|s| s.logs.len()) >= 101
    });
    wait_until(Duration::from_secs(20), "the incident", || {
        recv.unique() == 1
    });
    recv.with(|s| {
        let keys: HashSet<&str> = s
            .logs
            .iter()
            .map(|e| {
                e["attributes"]["faultline.idempotency_key"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(keys.len(), 101);
        assert_eq!(s.logs.len(), 101, "no duplicates without a crash");
        let first = &s.logs[0];
        assert_eq!(first["level"], "info");
        assert_eq!(first["service"], "tk-desktop");
        assert_eq!(first["tags"][0], "desk");
        assert_eq!(first["message"], "line 0 token=[REDACTED]");
        assert_eq!(first["attributes"]["pid"], 4242);
        let err = s.logs.iter().find(|e| e["level"] == "error").unwrap();
        let incident_key = s.by_key.keys().next().unwrap();
        assert_eq!(
            err["attributes"]["faultline.incident"],
            incident_key.as_str()
        );
        assert!(
            s.logs
                .iter()
                .filter(|e| e["level"] != "error")
                .all(|e| e["attributes"]["faultline.incident"].is_null())
        );
        assert!(s.gzipped_batches > 0, "big batches go gzip-compressed");
    });
}

#[test]
fn check_validates_and_prints_what_it_would_watch() {
    let env = Env::new();
    // Zero config: the ShotGrid folder of the (fake) home.
    let home = env.dir.path().join("home");
    let out = Command::new(BIN)
        .arg("check")
        .env("HOME", &home)
        .env_remove("SHOTGUN_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("FAULTLINE_SERVER")
        .env_remove("FAULTLINE_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if cfg!(target_os = "linux") {
        assert!(
            text.contains(&format!("watch {}/.shotgun/logs/tk-*.log", home.display())),
            "{text}"
        );
    }
    // $SHOTGUN_HOME wins; existing files are listed.
    let sg = env.dir.path().join("sg");
    std::fs::create_dir_all(sg.join("logs")).unwrap();
    std::fs::write(sg.join("logs/tk-desktop.log"), "").unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .env("HOME", &home)
        .env("SHOTGUN_HOME", &sg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&sg.join("logs/tk-desktop.log").display().to_string()),
        "{text}"
    );
    // A bad config: exit 2 and one line naming the key.
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "[[sources]]\npaths = [\"/x\"]\nformat = \"xml\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("sources[0].format"), "{err}");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(bad.with_file_name("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // `run` without a server says so.
    let out = Command::new(BIN)
        .arg("run")
        .arg("--state-dir")
        .arg(env.state())
        .env("HOME", &home)
        .env_remove("FAULTLINE_SERVER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server configured"));
}

/// Relative paths in a config file are relative to the file, wherever the
/// agent starts (a service starts in `/` or the home directory).
#[test]
fn relative_paths_in_the_config_are_relative_to_its_file() {
    let env = Env::new();
    let conf = env.dir.path().join("conf");
    std::fs::create_dir_all(conf.join("logs")).unwrap();
    std::fs::write(conf.join("logs/tk-nuke.log"), "").unwrap();
    std::fs::write(
        conf.join("agent.toml"),
        "state_dir = \"state\"\n[delivery]\nca_file = \"no-such-ca.pem\"\n[[sources]]\npaths = [\"logs/tk-*.log\"]\n",
    )
    .unwrap();
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let check = || {
        Command::new(BIN)
            .args(["check", "--config", "../conf/agent.toml"])
            .current_dir(&elsewhere)
            .env_remove("FAULTLINE_SERVER")
            .env_remove("FAULTLINE_TOKEN")
            .output()
            .unwrap()
    };
    // The CA file is looked for beside the config, and named absolutely.
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&conf.join("no-such-ca.pem").display().to_string()),
        "{err}"
    );
    std::fs::write(
        conf.join("agent.toml"),
        "state_dir = \"state\"\n[[sources]]\npaths = [\"logs/tk-*.log\"]\n",
    )
    .unwrap();
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("state dir: {}", conf.join("state").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("watch {}", conf.join("logs/tk-*.log").display())),
        "{text}"
    );
    assert!(
        text.contains(&conf.join("logs/tk-nuke.log").display().to_string()),
        "{text}"
    );
}

#[test]
fn install_writes_a_systemd_user_unit_and_uninstall_removes_it() {
    if !cfg!(target_os = "linux") {
        println!("systemd unit test: Linux only");
        return;
    }
    let env = Env::new();
    let xdg = env.dir.path().join("xdg");
    // No systemctl on this PATH: the unit is written and the message says
    // how to start it.
    let empty_path = env.dir.path().join("bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    let out = Command::new(BIN)
        .args([
            "install",
            "--server",
            "http://127.0.0.1:8470",
            "--token",
            TOKEN,
            "--state-dir",
            "state",
            "--watch",
            "logs/*.log",
        ])
        .current_dir(env.dir.path())
        .env("XDG_CONFIG_HOME", &xdg)
        .env("HOME", env.dir.path())
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = xdg.join("systemd/user/faultline-agent.service");
    assert!(msg.contains(&unit.display().to_string()), "{msg}");
    assert!(msg.contains("not available"), "{msg}");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(&format!("Environment=\"FAULTLINE_TOKEN={TOKEN}\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!("ExecStart=\"{BIN}\" \"run\"")),
        "{text}"
    );
    // Paths given relative to where `install` ran are absolute in the unit.
    for p in [env.state(), env.logs().join("*.log")] {
        assert!(text.contains(&format!("\"{}\"", p.display())), "{text}");
    }
    let out = Command::new(BIN)
        .arg("uninstall")
        .env("XDG_CONFIG_HOME", &xdg)
        .env("HOME", env.dir.path())
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!unit.exists());
}

#[test]
fn full_spool_drops_oldest_and_reports_every_drop() {
    let env = Env::new();
    let addr = free_port();
    let cfg = env.config(
        "[throttle]\nwindow = \"0s\"\n[spool]\nmax_bytes = 65536\n[attachment]\nenabled = false",
        "",
    );
    let _agent = env.spawn(&format!("http://{addr}"), &cfg);
    let log = env.logs().join("tk-maya.log");
    for i in 0..80 {
        append(&log, &error_block(i));
    }
    let dropped = env.state().join("spool/dropped.json");
    wait_until(Duration::from_secs(30), "drops counted", || {
        dropped.exists()
    });
    // Let the agent finish spooling all 80 before the server comes back.
    let mut last = (0, String::new());
    wait_until(Duration::from_secs(30), "spool stable", || {
        std::thread::sleep(Duration::from_millis(300));
        let now = (
            spool_items(&env.state()),
            std::fs::read_to_string(&dropped).unwrap_or_default(),
        );
        let stable = now == last;
        last = now;
        stable
    });
    let recv = Receiver::start_at(addr, Shared::default());
    wait_until(Duration::from_secs(30), "spool drained", || {
        spool_items(&env.state()) == 0 && recv.unique() > 0
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = booms(&recv);
    // The newest survive: the drop takes the oldest.
    assert!(got.contains(&79) && !got.contains(&0), "{got:?}");
    recv.with(|s| {
        let received = s.by_key.len() as u64;
        let reported: u64 = s
            .by_key
            .values()
            .map(|i| i["dropped_before"].as_u64().unwrap())
            .sum();
        assert!(received < 80, "the cap forced drops ({received} kept)");
        assert_eq!(
            received + reported,
            80,
            "every incident arrived or was reported dropped"
        );
        let warn = s
            .logs
            .iter()
            .find(|e| e["level"] == "warn")
            .expect("a warn log entry about the drops");
        assert_eq!(warn["attributes"]["faultline.dropped_incidents"], reported);
        assert!(warn["message"].as_str().unwrap().contains("spool full"));
    });
}

/// Starts the agent (throttle off) and waits for its first incident,
/// written to `tk-maya.log`; returns the agent, that log and the config.
fn first_incident(env: &Env, recv: &Receiver) -> (Agent, PathBuf, PathBuf) {
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let agent = env.spawn(&recv.url(), &cfg);
    let log = env.logs().join("tk-maya.log");
    append(&log, &error_block(1));
    wait_until(Duration::from_secs(20), "the first incident", || {
        recv.unique() == 1
    });
    (agent, log, cfg)
}

#[test]
fn unwritable_spool_keeps_incidents_until_it_recovers() {
    let env = Env::new();
    let recv = Receiver::start();
    let (mut agent, log, _) = first_incident(&env, &recv);
    wait_until(Duration::from_secs(10), "spool drained", || {
        spool_items(&env.state()) == 0
    });
    // The spool's directory becomes a file: every write fails (ENOTDIR),
    // as on a broken or full disk, whoever runs the test.
    let spool = env.state().join("spool");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();
    append(&log, &error_block(2));
    append(&log, &error_block(3));
    wait_until(Duration::from_secs(20), "the failure reported", || {
        agent.stderr().contains("cannot write the spool")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(recv.unique(), 1, "nothing spooled, nothing sent");
    assert!(agent.alive());
    // The disk recovers: the kept incidents go out.
    std::fs::remove_file(&spool).unwrap();
    std::fs::create_dir(&spool).unwrap();
    wait_until(Duration::from_secs(20), "the kept incidents", || {
        recv.unique() == 3
    });
    assert_eq!(booms(&recv), [1, 2, 3]);
    assert!(agent.alive());
}

// ----- https -----------------------------------------------------------------

/// A TLS front for `localhost` with a certificate signed by a test CA: it
/// passes each connection's request (one per connection, as the agent
/// sends them) to `backend` in plain HTTP and the reply back encrypted.
struct TlsFront {
    addr: SocketAddr,
    /// The test CA's certificate (PEM).
    ca_pem: String,
}

fn tls_front(backend: SocketAddr) -> TlsFront {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "faultline test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let cfg = Arc::new(cfg);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let cfg = Arc::clone(&cfg);
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let Some(request) = read_request(&mut tls) else {
                    return; // handshake refused by the client, or garbage
                };
                let mut up = std::net::TcpStream::connect(backend).unwrap();
                up.write_all(&request).unwrap();
                let mut reply = Vec::new();
                let _ = std::io::Read::read_to_end(&mut up, &mut reply);
                let _ = tls.write_all(&reply);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsFront {
        addr,
        ca_pem: ca.pem(),
    }
}

/// One HTTP/1.1 request with a `Content-Length` body, bytes as sent.
fn read_request(r: &mut impl std::io::Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = r.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = r.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

/// The test configuration with `delivery.ca_file` set.
fn config_with_ca(env: &Env, ca: &Path) -> PathBuf {
    let p = env.config("[throttle]\nwindow = \"0s\"", "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "[delivery]\n",
        &format!("[delivery]\nca_file = {:?}\n", ca.display().to_string()),
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn https_server_checked_against_the_studio_ca() {
    let env = Env::new();
    let recv = Receiver::start();
    let front = tls_front(recv.addr);
    let url = format!("https://localhost:{}", front.addr.port());
    let log = env.logs().join("tk-maya.log");
    // Without the studio's CA the OS trust store refuses the certificate:
    // the problem is reported and the incident stays spooled.
    let plain = env.config("[throttle]\nwindow = \"0s\"", "");
    let mut agent = env.spawn(&url, &plain);
    append(&log, &error_block(1));
    wait_until(Duration::from_secs(20), "the certificate refusal", || {
        agent
            .stderr()
            .contains("invalid peer certificate: UnknownIssuer")
    });
    assert_eq!(recv.unique(), 0, "nothing reached the server");
    assert_eq!(spool_items(&env.state()), 1, "the incident is kept");
    assert!(agent.alive());
    drop(agent);
    // With `delivery.ca_file`: delivered over TLS, then a second one.
    let ca = env.dir.path().join("studio-ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let cfg = config_with_ca(&env, &ca);
    let agent = env.spawn(&url, &cfg);
    append(&log, &error_block(2));
    wait_until(Duration::from_secs(20), "both incidents over https", || {
        recv.unique() == 2
    });
    assert_eq!(booms(&recv), [1, 2]);
    assert!(
        !agent.stderr().contains("certificate"),
        "{}",
        agent.stderr()
    );
    // A CA file that holds no certificate is a configuration error.
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--server", &url, "--token", TOKEN])
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(env.dir.path().join("other-state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("delivery.ca_file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

// ----- full disk, another user -------------------------------------------------

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A small tmpfs mounted at a directory for the test's life.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs at {}", at.display());
        SmallDisk(at.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file until ENOSPC.
fn fill_up(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    std::fs::File::create(&filler).unwrap();
    top_up(&filler);
    filler
}

/// Appends to `filler` until ENOSPC again: space the agent freed after
/// [`fill_up`] (a spool item it deleted once delivered, a checkpoint it
/// replaced) would otherwise let its next writes succeed.
fn top_up(filler: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(filler)
        .unwrap();
    let block = vec![0x55u8; 16 * 1024];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling up: {e}"),
        }
    }
    let _ = f.flush();
}

#[test]
fn full_disk_for_the_spool_keeps_incidents_until_space_returns() {
    if !running_as_root() {
        // Mounting a small file system needs root; `scripts/test.sh` (CI)
        // runs as root. `unwritable_spool_keeps_incidents_until_it_recovers`
        // covers the same path with another error for everyone.
        println!("not root: cannot mount a small file system for the spool; skipped");
        return;
    }
    let env = Env::new();
    let recv = Receiver::start();
    // The whole state directory (lock, checkpoints, spool) on 1 MiB.
    let disk = SmallDisk::mount(&env.state(), "1m");
    let (mut agent, log, cfg) = first_incident(&env, &recv);
    // The first incident's spool item is deleted after its delivery: fill
    // the disk only once that space is free.
    wait_until(Duration::from_secs(10), "the first spool item gone", || {
        spool_items(&env.state()) == 0
    });
    let filler = fill_up(&disk.0);
    for i in 2..=4 {
        append(&log, &error_block(i));
    }
    wait_until(Duration::from_secs(20), "the full disk reported", || {
        top_up(&filler);
        let e = agent.stderr();
        e.contains("cannot write the spool") && e.contains("No space left on device")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(recv.unique(), 1, "nothing could be spooled, nothing sent");
    assert!(agent.alive(), "{}", agent.stderr());
    // Space comes back: the incidents kept in memory go out, once each.
    std::fs::remove_file(&filler).unwrap();
    wait_until(Duration::from_secs(30), "the kept incidents", || {
        recv.unique() == 4
    });
    assert_eq!(booms(&recv), [1, 2, 3, 4]);
    assert!(agent.alive());
    // The checkpoints work again: a restart sends nothing twice.
    append(&log, &error_block(5));
    wait_until(Duration::from_secs(20), "the fifth", || recv.unique() == 5);
    wait_until(Duration::from_secs(10), "spool drained", || {
        spool_items(&env.state()) == 0
    });
    std::thread::sleep(Duration::from_secs(1));
    drop(agent);
    let agent = env.spawn(&recv.url(), &cfg);
    append(&log, &error_block(6));
    wait_until(Duration::from_secs(20), "the sixth", || recv.unique() == 6);
    std::thread::sleep(Duration::from_millis(500));
    let deliveries = recv.with(|s| s.incidents.len());
    assert_eq!(deliveries, 6, "no incident delivered twice");
    drop(agent);
    drop(disk);
}

#[test]
fn unreadable_log_as_a_normal_user_is_reported_and_skipped() {
    let env = Env::new();
    let recv = Receiver::start();
    let logs = env.logs();
    let secret = logs.join("tk-secret.log");
    std::fs::write(&secret, error_block(999)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let wrapper: Vec<&str> = if running_as_root() {
        // Root reads anything: run the agent as `nobody`, with a state
        // directory of its own and the test's files readable.
        use std::os::unix::fs::PermissionsExt;
        for d in [env.dir.path(), logs.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir_all(env.state()).unwrap();
        std::os::unix::fs::chown(env.state(), Some(65534), Some(65534)).unwrap();
        vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        Vec::new()
    };
    let agent = env.spawn_via(&wrapper, &recv.url(), &cfg);
    wait_until(
        Duration::from_secs(20),
        "the permission problem reported",
        || {
            let e = agent.stderr();
            e.contains("tk-secret.log") && e.contains("ermission denied")
        },
    );
    // The agent goes on with the files it can read.
    append(&logs.join("tk-maya.log"), &error_block(7));
    wait_until(Duration::from_secs(20), "the readable file's error", || {
        booms(&recv).contains(&7)
    });
    assert_eq!(
        booms(&recv),
        [7],
        "the unreadable file's error is not invented"
    );
    // Readable again (e.g. the admin fixed it): picked up at the next rescan.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    wait_until(Duration::from_secs(20), "the fixed file's error", || {
        booms(&recv).contains(&999)
    });
    drop(agent);
}

#[test]
fn with_default_waits_the_line_after_an_error_is_its_context() {
    let env = Env::new();
    let recv = Receiver::start();
    // The test configuration without its longer waits: the defaults.
    let cfg = env.config("[throttle]\nwindow = \"0s\"", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("after_wait = \"200ms\"\n", "")
        .replace("multiline_timeout = \"200ms\"\n", "");
    std::fs::write(&cfg, text).unwrap();
    let _agent = env.spawn(&recv.url(), &cfg);
    let log = env.logs().join("tk-maya.log");
    // An error, one more line, then silence.
    append(
        &log,
        &format!(
            "{}{}",
            error_block(1),
            sg_line("INFO", "giving up on item 1")
        ),
    );
    wait_until(Duration::from_secs(20), "the incident", || {
        recv.unique() == 1
    });
    recv.with(|s| {
        let i = s.by_key.values().next().unwrap();
        let after: Vec<&str> = i["context"]["after"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0].contains("giving up on item 1"), "{after:?}");
        assert!(
            i["message"]
                .as_str()
                .unwrap()
                .contains("ValueError: boom 1")
        );
    });
}
