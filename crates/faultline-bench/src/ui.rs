//! The web UI's pages as a browser loads them: a session made through
//! first-run setup, then for each page the HTML shell and the JSON API
//! requests its ES module makes on load, in the browser's order, each timed
//! from sending to the last byte of the body.
//!
//! What the page modules request (crates/faultline-server/assets):
//! - every page (`app.js`): the shell, then `GET /api/v1/projects`, then the
//!   page module; the notification stream (`/api/v1/issues/live`, SSE) is
//!   left out, it stays open.
//! - logs (`logs.js`): `GET /api/v1/services?project=P`, then
//!   `GET /api/v1/logs?project=P&…&limit=100`; the live WebSocket is left
//!   out, and so are the issue links polled every 1.5 s afterwards.
//! - issues (`issues.js`): services, then `GET /api/v1/issues?project=P&
//!   status=…&sort=…&page=…&limit=50&sparkline=24h`.
//! - dashboard (`dashboard.js`): the project overview and four issue lists,
//!   all five at once (`Promise.all`): the browser sends them in parallel,
//!   and so does this benchmark.
//!
//! A page's server time is the sum of its sequential steps, a parallel
//! step counting as its slowest request (its wall time). Browser work
//! between the steps (parsing, running the modules, rendering) and the
//! static assets (revalidated with `If-None-Match`, answered 304) are not
//! part of it.

use crate::run::progress;
use anyhow::{Context, bail};
use futures_util::future::join_all;
use std::time::Duration;
use tokio::time::Instant;

/// What the benchmark user logs in as.
pub const USERNAME: &str = "bench";
const PASSWORD: &str = "bench-password-1";
const COOKIE: &str = "faultline_session";

/// One page load: steps run one after the other; the requests of one step
/// run at once.
pub struct Page {
    pub name: String,
    pub group: &'static str,
    pub steps: Vec<Vec<String>>,
}

impl Page {
    fn new(group: &'static str, name: impl Into<String>, steps: Vec<Vec<String>>) -> Page {
        Page {
            name: name.into(),
            group,
            steps,
        }
    }

    pub fn has_parallel_step(&self) -> bool {
        self.steps.iter().any(|s| s.len() > 1)
    }
}

/// The pages measured, for project `p`; `word` is the rare word of the
/// log entries, `issue_word` the issue search, `deep` the page number of
/// the deep pages.
pub fn pages(p: &str, word: &str, issue_word: &str, deep: u32) -> Vec<Page> {
    let shell = |path: &str| vec![path.to_string()];
    let projects = vec!["/api/v1/projects".to_string()];
    let services = vec![format!("/api/v1/services?project={p}")];
    let mut out = Vec::new();

    let logs = |name: &str, filter: &str| {
        Page::new(
            "logs",
            name,
            vec![
                shell("/logs"),
                projects.clone(),
                services.clone(),
                vec![format!("/api/v1/logs?project={p}{filter}&limit=100")],
            ],
        )
    };
    out.push(logs("logs", ""));
    out.push(logs("logs, service=svc0", "&service=svc0"));
    out.push(logs("logs, level=error", "&level=error"));
    out.push(logs(&format!("logs, q={word}"), &format!("&q={word}")));

    // issues.js sends empty filters not at all; its order of parameters.
    let issues = |name: String, status: &str, filter: &str, sort: &str, page: u32| {
        let status = if status.is_empty() {
            String::new()
        } else {
            format!("&status={status}")
        };
        Page::new(
            "issues",
            name,
            vec![
                shell("/issues"),
                projects.clone(),
                services.clone(),
                vec![format!(
                    "/api/v1/issues?project={p}{status}{filter}&sort={sort}&page={page}&limit=50&sparkline=24h"
                )],
            ],
        )
    };
    for sort in ["last_seen", "first_seen", "count", "trend"] {
        out.push(issues(
            format!("issues, sort={sort}"),
            "unresolved",
            "",
            sort,
            1,
        ));
    }
    out.push(issues(
        format!("issues, q={issue_word}"),
        "unresolved",
        &format!("&q={issue_word}"),
        "last_seen",
        1,
    ));
    out.push(issues("issues, any status".into(), "", "", "last_seen", 1));
    out.push(issues(
        "issues, service=svc3".into(),
        "unresolved",
        "&service=svc3",
        "last_seen",
        1,
    ));
    out.push(issues(
        "issues, level=critical".into(),
        "unresolved",
        "&level=critical",
        "last_seen",
        1,
    ));
    for sort in ["last_seen", "count", "trend"] {
        out.push(issues(
            format!("issues, sort={sort}, page {deep}"),
            "unresolved",
            "",
            sort,
            deep,
        ));
    }
    out.push(issues(
        format!("issues, any status, sort=trend, page {deep}"),
        "",
        "",
        "trend",
        deep,
    ));

    out.push(Page::new(
        "dashboard",
        "dashboard",
        vec![
            shell("/"),
            projects.clone(),
            vec![
                format!("/api/v1/projects/{p}/overview"),
                format!("/api/v1/issues?project={p}&status=unresolved&sort=count&limit=5"),
                format!("/api/v1/issues?project={p}&status=unresolved&sort=trend&limit=5"),
                format!("/api/v1/issues?project={p}&sort=first_seen&limit=10"),
                format!("/api/v1/issues?project={p}&status=unresolved&sort=last_seen&limit=100"),
            ],
        ],
    ));
    out
}

/// A logged-in browser: an HTTP client that follows no redirects (a page
/// that redirects to the login page is an error here) and the session
/// cookie.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

/// First-run setup with the admin token: creates the user and returns the
/// session it starts (`201` with `Set-Cookie: faultline_session=…`).
pub async fn log_in(base: &str, admin_token: &str) -> anyhow::Result<(Browser, Duration)> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")?;
    let t0 = Instant::now();
    let resp = http
        .post(format!("{base}/api/v1/setup"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "admin_token": admin_token,
                "username": USERNAME,
                "password": PASSWORD,
            })
            .to_string(),
        )
        .send()
        .await
        .context("POST /api/v1/setup")?;
    let status = resp.status();
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?.trim();
            pair.strip_prefix(COOKIE)?.strip_prefix('=')?;
            Some(pair.to_string())
        });
    let body = resp.text().await.unwrap_or_default();
    let took = t0.elapsed();
    if status.as_u16() != 201 {
        bail!("POST /api/v1/setup answered {status}: {body}");
    }
    let cookie = cookie.context("the setup answer set no session cookie")?;
    Ok((
        Browser {
            http,
            base: base.to_string(),
            cookie,
        },
        took,
    ))
}

impl Browser {
    /// GET `path` with the session cookie; the time to the last body byte
    /// and the body. Anything but 200 is an error.
    pub async fn get(&self, path: &str) -> anyhow::Result<(Duration, Vec<u8>)> {
        let t0 = Instant::now();
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("GET {path}"))?;
        let took = t0.elapsed();
        if status.as_u16() != 200 {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok((took, body.to_vec()))
    }
}

/// What one page's loads measured.
pub struct PageTimes {
    pub name: String,
    pub group: &'static str,
    pub parallel: bool,
    /// The whole page, one per load (the first, cold load excluded).
    pub page: Vec<Duration>,
    /// The first load.
    pub first: Duration,
    /// Per request (in page order): its path and its times.
    pub requests: Vec<(String, Vec<Duration>)>,
    /// What the page's last sequential request returned: `(items, total)`.
    pub returned: (usize, Option<u64>),
}

/// Items in an API answer (the first array among the known keys), and its
/// `total` when given.
fn items(body: &[u8]) -> (usize, Option<u64>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (0, None);
    };
    let n = ["issues", "entries", "services", "projects"]
        .iter()
        .find_map(|k| v.get(*k).and_then(serde_json::Value::as_array))
        .map_or(0, Vec::len);
    (n, v.get("total").and_then(serde_json::Value::as_u64))
}

/// Loads every page `samples + 1` times, round robin (so a noisy moment
/// spreads over all pages), for at most `limit`; the first load of each
/// page is reported apart.
pub async fn measure(
    browser: &Browser,
    pages: &[Page],
    samples: usize,
    limit: Duration,
) -> anyhow::Result<Vec<PageTimes>> {
    let mut out: Vec<PageTimes> = pages
        .iter()
        .map(|p| PageTimes {
            name: p.name.clone(),
            group: p.group,
            parallel: p.has_parallel_step(),
            page: Vec::with_capacity(samples),
            first: Duration::ZERO,
            requests: p
                .steps
                .iter()
                .flatten()
                .map(|r| (r.clone(), Vec::with_capacity(samples)))
                .collect(),
            returned: (0, None),
        })
        .collect();
    let end = Instant::now() + limit;
    for round in 0..=samples {
        if round > 0 && Instant::now() >= end {
            progress(format!(
                "ui: time limit reached after {} loads of each page",
                round - 1
            ));
            break;
        }
        for (page, times) in pages.iter().zip(out.iter_mut()) {
            let t0 = Instant::now();
            let mut k = 0;
            for step in &page.steps {
                let answers = join_all(step.iter().map(|path| browser.get(path))).await;
                for (i, answer) in answers.into_iter().enumerate() {
                    let (took, body) = answer?;
                    if round > 0 {
                        times.requests[k].1.push(took);
                    }
                    if round == 0 && i == 0 && step.len() == 1 && body.first() == Some(&b'{') {
                        times.returned = items(&body);
                    }
                    k += 1;
                }
            }
            let took = t0.elapsed();
            if round == 0 {
                times.first = took;
            } else {
                times.page.push(took);
            }
        }
        if round % 10 == 0 {
            progress(format!("ui: {round}/{samples} loads of each page"));
        }
    }
    Ok(out)
}
