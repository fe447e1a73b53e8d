//! What every client command shares: the server's base URL, the token,
//! turning HTTP failures into one-line causes, and retrying what is worth
//! retrying.

use super::ConnArgs;
use super::timearg::format_duration;
use anyhow::{Context, anyhow, bail};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A configured connection to one faultline server.
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    base: Url,
    token: String,
}

impl Api {
    /// Validates the flags and builds the HTTP client. `timeout` bounds a
    /// whole request (None for streams).
    pub fn new(conn: &ConnArgs, timeout: Option<Duration>) -> anyhow::Result<Api> {
        let base = parse_base_url(&conn.server)?;
        let token = conn.token.trim().to_string();
        if token.is_empty() {
            bail!("the token is empty: pass --token or set FAULTLINE_TOKEN");
        }
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            bail!("the token contains characters that cannot be sent in an HTTP header");
        }
        let mut builder = Client::builder()
            .user_agent(concat!("faultline-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10));
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let client = builder.build().context("cannot set up the HTTP client")?;
        Ok(Api {
            client,
            base,
            token,
        })
    }

    /// The URL of an API path such as `api/v1/logs` (no leading slash), so a
    /// server mounted under a path prefix works too.
    pub fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("a relative path always joins onto an http(s) base URL")
    }

    /// An authenticated request.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }
}

/// Parses `--server`: `http://host:port[/prefix]`; a bare `host:port`
/// means http. The result always ends in `/` so paths join under it.
pub fn parse_base_url(s: &str) -> anyhow::Result<Url> {
    let s = s.trim();
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| anyhow!("invalid server URL {s:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("invalid server URL {s:?}: expected http://HOST[:PORT]");
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A non-success answer, with the server's `{"error", "detail"}` when it
/// sent one.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub error: Option<String>,
    pub detail: Option<String>,
    /// The whole JSON body, for extra fields such as `entries`.
    pub body: Option<Value>,
    /// The body when it was not JSON (a proxy's page, say), shortened.
    pub text: Option<String>,
}

impl HttpError {
    /// Reads the body of a failed response.
    pub async fn from_response(resp: Response) -> HttpError {
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        HttpError::from_parts(status, &bytes)
    }

    pub fn from_parts(status: StatusCode, body: &[u8]) -> HttpError {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        let (error, detail) = (field("error"), field("detail"));
        let text = if json.is_none() {
            let t = String::from_utf8_lossy(body);
            let one_line = t.split_whitespace().collect::<Vec<_>>().join(" ");
            (!one_line.is_empty()).then(|| shorten(&one_line, 200))
        } else {
            None
        };
        HttpError {
            status,
            error,
            detail,
            body: json,
            text,
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server said {}", self.status)?;
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if self.error.is_none() && self.detail.is_none() {
            if let Some(t) = &self.text {
                write!(f, ": {t}")?;
            }
            if self.status == StatusCode::NOT_FOUND {
                write!(f, " (is --server a faultline server?)")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

/// Turns a failed response into an error (success passes through).
pub async fn check(resp: Response) -> anyhow::Result<Response> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(HttpError::from_response(resp).await.into())
    }
}

/// The innermost error's message: the one that says what happened
/// ("Connection refused").
fn root_cause(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    root.to_string()
}

/// An https URL in a build without TLS: the connector refuses the scheme.
/// (Matching the message is brittle; if it changes we merely retry.)
fn is_missing_tls(e: &reqwest::Error) -> bool {
    e.url().is_some_and(|u| u.scheme() == "https") && root_cause(e).contains("scheme is not http")
}

/// Failures the same request will meet again: not worth a retry.
pub fn is_permanent(e: &reqwest::Error) -> bool {
    e.is_builder() || is_missing_tls(e)
}

/// A short, single-line cause for a transport failure.
pub fn describe_transport_error(e: &reqwest::Error) -> String {
    if is_missing_tls(e) {
        return "this build of faultline cannot speak https: use an http:// URL or a \
                TLS-terminating proxy"
            .to_string();
    }
    let root = root_cause(e);
    let target = e.url().map(|u| {
        let host = u.host_str().unwrap_or("?");
        match u.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    });
    if e.is_timeout() {
        "timed out waiting for the server".to_string()
    } else if e.is_connect() {
        match target {
            Some(t) => format!("cannot connect to {t}: {root}"),
            None => format!("cannot connect: {root}"),
        }
    } else if e.is_body() || e.is_decode() {
        format!("reading the server's answer failed: {root}")
    } else {
        format!("request failed: {root}")
    }
}

/// A transport failure as an error with a readable cause.
pub fn transport_error(e: reqwest::Error) -> anyhow::Error {
    anyhow!(describe_transport_error(&e))
}

/// Statuses that mean "not now" rather than "no".
pub fn is_retryable_status(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and is
/// treated as absent), capped at five minutes.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(300)))
}

/// Exponential backoff with "equal jitter": each delay is between half and
/// all of the current step, so many clients do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            step: initial,
            initial,
            max,
        }
    }

    /// The next delay; doubles the step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(jitter_fraction())
    }

    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// A number in [0, 1) that differs between calls and processes; good
/// enough to spread retries, not for anything else.
fn jitter_fraction() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos)
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    // splitmix64 finaliser
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// How long to keep retrying a request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Stop when the next attempt would start later than this after the
    /// first one. Zero: a single attempt.
    pub give_up_after: Duration,
}

/// Sends the request built by `build`, retrying connection failures and
/// "not now" statuses (503 with `Retry-After`, 429, 502, 504, 408) with
/// backoff. Returns the first response that is not retryable, whatever its
/// status; `on_retry(cause, delay)` is told about every retry.
pub async fn send_with_retry(
    build: impl Fn() -> RequestBuilder,
    policy: RetryPolicy,
    mut on_retry: impl FnMut(&str, Duration),
) -> anyhow::Result<Response> {
    let start = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (cause, server_delay) = match build().send().await {
            Ok(resp) if is_retryable_status(resp.status()) => {
                let delay = retry_after(resp.headers());
                (
                    anyhow::Error::new(HttpError::from_response(resp).await),
                    delay,
                )
            }
            Ok(resp) => return Ok(resp),
            Err(e) if is_permanent(&e) => return Err(transport_error(e)),
            Err(e) => (transport_error(e), None),
        };
        let own_delay = backoff.next_delay();
        let delay = server_delay.map_or(own_delay, |d| d.max(own_delay / 2));
        if start.elapsed() + delay > policy.give_up_after {
            if attempts == 1 {
                return Err(cause);
            }
            return Err(cause.context(format!(
                "gave up after {attempts} attempts in {}",
                format_duration(start.elapsed())
            )));
        }
        on_retry(&format!("{cause:#}"), delay);
        tokio::time::sleep(delay).await;
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised() {
        let u = parse_base_url("http://127.0.0.1:8470").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8470/");
        let u = parse_base_url("localhost:9000").unwrap();
        assert_eq!(u.as_str(), "http://localhost:9000/");
        let u = parse_base_url("https://logs.example.com/faultline?x=1").unwrap();
        assert_eq!(
            u.join("api/v1/logs").unwrap().as_str(),
            "https://logs.example.com/faultline/api/v1/logs"
        );
        assert!(parse_base_url("ftp://example.com").is_err());
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn http_errors_read_as_one_line() {
        let e = HttpError::from_parts(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"unauthorized","detail":"unknown token"}"#,
        );
        assert_eq!(
            e.to_string(),
            "server said 401 Unauthorized: unauthorized: unknown token"
        );
        let e = HttpError::from_parts(StatusCode::BAD_REQUEST, br#"{"error":"empty body"}"#);
        assert_eq!(e.to_string(), "server said 400 Bad Request: empty body");
        let e = HttpError::from_parts(StatusCode::NOT_FOUND, b"<html>\n<h1>Not\nFound</h1></html>");
        assert_eq!(
            e.to_string(),
            "server said 404 Not Found: <html> <h1>Not Found</h1></html> (is --server a faultline server?)"
        );
        let e = HttpError::from_parts(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.to_string(), "server said 502 Bad Gateway");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(300)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut step = 100u64;
        for _ in 0..8 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(step / 2),
                "{d:?} for step {step}"
            );
            assert!(d <= Duration::from_millis(step), "{d:?} for step {step}");
            step = (step * 2).min(800);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn shorten_counts_characters() {
        assert_eq!(shorten("héllo", 10), "héllo");
        assert_eq!(shorten("héllo", 2), "hé…");
    }
}
