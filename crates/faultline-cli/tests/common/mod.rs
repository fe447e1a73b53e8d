//! Shared harness of the server integration tests: runs the real `faultline`
//! binary on loopback (port 0) with a temporary data directory, parses its
//! address and first-run admin token from stderr, and offers HTTP helpers.
//!
//! Every server is killed by PID when its [`Server`] is dropped, and every
//! wait is bounded in time.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_faultline");

/// How long a server may take to print its address and answer /healthz.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

/// Formats µs since the epoch as RFC 3339 UTC with microseconds, like the
/// server does (civil-from-days algorithm, no date crate needed).
pub fn rfc3339(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (h, m, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{frac:06}Z")
}

/// Parses the server's RFC 3339 UTC format (`YYYY-MM-DDTHH:MM:SS.ffffffZ`)
/// back into µs since the epoch.
pub fn parse_rfc3339(s: &str) -> i64 {
    let b = s.as_bytes();
    assert!(
        s.len() == 27 && b[10] == b'T' && b[26] == b'Z' && b[19] == b'.',
        "not the server's timestamp format: {s:?}"
    );
    let n = |r: std::ops::Range<usize>| -> i64 { s[r].parse().expect("digits") };
    let (y, mo, d) = (n(0..4), n(5..7), n(8..10));
    let (h, mi, se, frac) = (n(11..13), n(14..16), n(17..19), n(20..26));
    // days_from_civil
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + frac
}

/// How a server is started.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// TOML config file contents (written next to the data directory).
    pub config: Option<String>,
}

/// A running `faultline server` child process.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// `http://ADDR`
    pub base: String,
    /// The first-run admin token (kept across restarts).
    pub admin: String,
    pub data_dir: PathBuf,
    config_path: Option<PathBuf>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
    _tmp: Arc<tempfile::TempDir>,
}

/// A reply, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// The `error` field of a JSON error body.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// Asserts the status and that the body is an API error object
    /// `{"error", "detail"}` with the given `error`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(self.error(), error, "unexpected error; body: {}", self.text);
        assert!(
            self.json["detail"].is_string(),
            "an error body has a string detail: {}",
            self.text
        );
    }
}

pub fn http_client() -> reqwest::Client {
    faultline_server::install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Spawns the server process and returns it with its stderr lines arriving
/// on a channel (and kept in a shared log).
fn spawn_server(
    data_dir: &Path,
    config: Option<&Path>,
    listen: &str,
) -> (Child, mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(BIN);
    cmd.arg("server")
        .arg("--listen")
        .arg(listen)
        .arg("--data-dir")
        .arg(data_dir);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.env_remove("FAULTLINE_CONFIG")
        .env_remove("FAULTLINE_LISTEN")
        .env_remove("FAULTLINE_DATA_DIR")
        .env("FAULTLINE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn faultline server");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            log2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (child, rx, log)
}

/// Reads stderr lines until the listen address (and the first-run admin
/// token, when one is printed) are known.
fn read_banner(rx: &mpsc::Receiver<String>) -> Result<(SocketAddr, Option<String>), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut addr = None;
    let mut admin = None;
    let mut expect_token = false;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out; stderr so far: {seen:#?}"));
        }
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => return Err(format!("stderr ended or timed out: {seen:#?}")),
        };
        seen.push(line.clone());
        if expect_token {
            admin = Some(line.trim().to_string());
            expect_token = false;
        } else if let Some(rest) = line.strip_prefix("faultline listening on http://") {
            addr = Some(
                rest.trim()
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("bad address in {line:?}: {e}"))?,
            );
        } else if line.starts_with("first run: admin token") {
            expect_token = true;
        } else if line.starts_with("ingest token:")
            && let Some(a) = addr
        {
            // The last line of the banner.
            return Ok((a, admin));
        }
    }
}

impl Server {
    /// A fresh server on a new temporary data directory.
    pub async fn start(opts: Options) -> Server {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let data_dir = tmp.path().join("data");
        let config_path = opts.config.as_ref().map(|c| {
            let p = tmp.path().join("faultline.toml");
            std::fs::write(&p, c).expect("write config");
            p
        });
        let mut s = Server {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            base: String::new(),
            admin: String::new(),
            data_dir,
            config_path,
            stderr: Arc::new(Mutex::new(Vec::new())),
            http: http_client(),
            _tmp: tmp,
        };
        s.launch().await;
        assert!(
            s.admin.starts_with("fl_"),
            "first run prints an admin token; stderr: {:#?}",
            s.stderr_lines()
        );
        s
    }

    /// A server with default settings.
    pub async fn start_default() -> Server {
        Server::start(Options::default()).await
    }

    /// A server with this config file.
    pub async fn start_with_config(config: &str) -> Server {
        Server::start(Options {
            config: Some(config.to_string()),
        })
        .await
    }

    /// Starts the process on the data dir and waits until /healthz answers.
    async fn launch(&mut self) {
        self.launch_on("127.0.0.1:0").await
    }

    async fn launch_on(&mut self, listen: &str) {
        assert!(self.child.is_none(), "server already running");
        let (child, rx, log) = spawn_server(&self.data_dir, self.config_path.as_deref(), listen);
        self.child = Some(child);
        self.stderr = log;
        let banner = tokio::task::spawn_blocking(move || read_banner(&rx))
            .await
            .expect("banner reader");
        let (addr, admin) = match banner {
            Ok(b) => b,
            Err(e) => {
                let status = self.kill9();
                panic!("server did not start ({status:?}): {e}");
            }
        };
        if let Some(a) = admin {
            self.admin = a;
        }
        self.addr = addr;
        self.base = format!("http://{addr}");
        let ok = wait_until(START_TIMEOUT, Duration::from_millis(20), async || {
            matches!(self.http.get(self.url("/healthz")).send().await, Ok(r) if r.status() == 200)
        })
        .await;
        assert!(
            ok,
            "server never became healthy: {:#?}",
            self.stderr_lines()
        );
    }

    /// Starts again on the same data directory (after a kill or exit).
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.launch().await;
    }

    /// Kills the server and starts it again on the same address (clients
    /// that reconnect find it where it was).
    pub async fn restart_same_addr(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        let listen = self.addr.to_string();
        self.launch_on(&listen).await;
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL (std's `Child::kill` on Unix) and reap.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Sends SIGTERM through `kill -TERM PID`.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit by itself; `None` on timeout (it is
    /// still running then).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `ws://ADDR/PATH`
    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// Runs `faultline ARGS... --data-dir DIR` (the data-dir flag is added).
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(args, Some(&self.data_dir))
    }

    fn token_cli(&self, args: &[&str]) -> String {
        let mut a = vec!["token", "create"];
        a.extend_from_slice(args);
        let out = self.cli(&a);
        assert!(
            out.status.success(),
            "token create {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).expect("utf-8 token");
        let token = token.trim_end_matches('\n').to_string();
        assert!(
            token.starts_with("fl_") && token.len() == 46 && !token.contains(char::is_whitespace),
            "token create prints only the token: {token:?}"
        );
        token
    }

    /// An ingest token made with the CLI.
    pub fn ingest_token(&self, project: &str, service: &str) -> String {
        self.token_cli(&["--project", project, "--service", service])
    }

    /// A read token made with the CLI.
    pub fn read_token(&self, project: &str) -> String {
        self.token_cli(&["--read", "--project", project])
    }

    /// An admin token made with the CLI.
    pub fn admin_token(&self) -> String {
        self.token_cli(&["--admin"])
    }

    /// Any request; `token` becomes a Bearer header.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, self.url(path)).query(query);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_resp(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>, query: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::GET, path, token, query, None)
            .await
    }

    /// POST /api/v1/logs with raw bytes.
    pub async fn post_raw(
        &self,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.post(self.url("/api/v1/logs")).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_resp(req.send().await.expect("request sent")).await
    }

    /// POST /api/v1/logs with a JSON value (object or array).
    pub async fn post_json(&self, token: &str, body: &Value) -> Resp {
        self.post_raw(
            Some(token),
            serde_json::to_vec(body).unwrap(),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// Posts and asserts `202 {"accepted": n}`.
    #[track_caller]
    pub fn ingest<'a>(
        &'a self,
        token: &'a str,
        body: &'a Value,
    ) -> impl std::future::Future<Output = ()> + 'a {
        let n = match body {
            Value::Array(a) => a.len(),
            _ => 1,
        };
        let caller = std::panic::Location::caller();
        async move {
            let r = self.post_json(token, body).await;
            assert_eq!(r.status, 202, "ingest at {caller}: {}", r.text);
            assert_eq!(r.json, serde_json::json!({ "accepted": n }), "at {caller}");
        }
    }

    /// GET /api/v1/logs, asserting 200; returns the whole body.
    pub async fn logs(&self, token: &str, query: &[(&str, &str)]) -> Value {
        let r = self.get("/api/v1/logs", Some(token), query).await;
        assert_eq!(r.status, 200, "GET /api/v1/logs {query:?}: {}", r.text);
        r.json
    }

    /// Entries of one GET /api/v1/logs page.
    pub async fn entries(&self, token: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let v = self.logs(token, query).await;
        v["entries"].as_array().expect("entries array").clone()
    }

    /// Walks every page with cursors (limit 1000), calling `each` per entry;
    /// returns the number of pages. Bounded to `max_pages`.
    pub async fn walk(
        &self,
        token: &str,
        query: &[(&str, &str)],
        max_pages: usize,
        mut each: impl FnMut(&Value),
    ) -> usize {
        let mut cursor: Option<String> = None;
        for page in 1..=max_pages {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if !q.iter().any(|(k, _)| *k == "limit") {
                q.push(("limit", "1000"));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let v = self.logs(token, &q).await;
            for e in v["entries"].as_array().expect("entries") {
                each(e);
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return page,
            }
        }
        panic!("more than {max_pages} pages");
    }

    /// The services list (asserting 200).
    pub async fn services(&self, token: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let r = self.get("/api/v1/services", Some(token), query).await;
        assert_eq!(r.status, 200, "GET /api/v1/services: {}", r.text);
        r.json["services"].as_array().expect("services").clone()
    }

    /// The text of /metrics.
    pub async fn metrics(&self) -> String {
        let r = self.get("/metrics", None, &[]).await;
        assert_eq!(r.status, 200);
        r.text
    }

    /// Creates an alert channel and a rule using it (admin API, asserting
    /// success); returns the rule's id.
    pub async fn alert_channel_and_rule(
        &self,
        admin: &str,
        project: &str,
        channel: &str,
        spec: Value,
        rule: Value,
    ) -> i64 {
        let r = self
            .send(
                reqwest::Method::PUT,
                &format!("/api/v1/projects/{project}/alert-channels/{channel}"),
                Some(admin),
                &[],
                Some(spec),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/alert-rules"),
                Some(admin),
                &[],
                Some(rule),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["id"].as_i64().expect("rule id")
    }

    /// The token id whose listed prefix starts `token` (via the admin API).
    pub async fn token_id(&self, token: &str) -> i64 {
        let r = self.get("/api/v1/tokens", Some(&self.admin), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let found: Vec<i64> = r.json["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .filter(|t| token.starts_with(t["prefix"].as_str().unwrap_or("\0")))
            .map(|t| t["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(found.len(), 1, "exactly one token with this prefix");
        found[0]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

/// Runs the binary with `args` (plus `--data-dir DIR` when given), waiting at
/// most 30 s.
pub fn run_cli(args: &[&str], data_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    run_bounded(cmd, Duration::from_secs(30))
}

/// Runs a command with piped output; kills it after `timeout` (then the
/// status is the kill's).
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    cmd.env_remove("FAULTLINE_CONFIG")
        .env_remove("FAULTLINE_LISTEN")
        .env_remove("FAULTLINE_DATA_DIR");
    run_with_stdin(cmd, None, timeout).0
}

/// Runs a command with `stdin` piped in (or none) and output collected;
/// kills it after `timeout`. Returns the output and whether it timed out.
pub fn run_with_stdin(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> (Output, bool) {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn faultline");
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        // Dropping the pipe at the end closes the child's stdin.
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &data);
        })
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let output = Output {
        status,
        stdout: t_out.join().expect("stdout reader"),
        stderr: t_err.join().expect("stderr reader"),
    };
    (output, timed_out)
}

/// Polls `f` every `every` until it returns true or `timeout` passes.
pub async fn wait_until(
    timeout: Duration,
    every: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A small deterministic PRNG (xorshift64*), so tests need no rand crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// A unique-enough marker word for one test's messages.
pub fn marker(prefix: &str) -> String {
    format!("{prefix}{}", now_micros() % 1_000_000_000)
}

/// The p-th percentile (0-100) of durations.
pub fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    assert!(!v.is_empty());
    v.sort();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A local HTTP receiver for webhooks: records every request and answers
/// with a settable status (200 by default). Stops when dropped.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let (g, st) = (got.clone(), status.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (g, st) = (g.clone(), st.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if buf.len() > 1 << 20 {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let path = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("")
                        .to_string();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let code = st.load(Ordering::SeqCst);
                    g.lock().unwrap().push(Received {
                        path,
                        headers,
                        body: buf[head_end..head_end + len].to_vec(),
                        status: code,
                    });
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 2\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Receiver {
            addr,
            got,
            status,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers every later request with `code`.
    pub fn answer(&self, code: u16) {
        self.status.store(code, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
