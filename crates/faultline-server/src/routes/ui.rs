//! The web UI: one HTML shell per page and the static assets, all embedded
//! in the binary. Pages are small ES modules that call the JSON API with
//! the session cookie (see ARCHITECTURE.md, "Web UI"): the UI has no
//! logic of its own on the server.
//!
//! Every response carries a strict Content-Security-Policy (scripts and
//! styles only from this server, no inline script), so even a rendering
//! mistake cannot run injected script.

use super::State;
use crate::session;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The shell: `{{page}}`, `{{title}}`, `{{user}}` and `{{csrf}}` are
/// replaced (HTML-escaped).
const SHELL: &str = include_str!("../../assets/shell.html");

/// (path under /ui/, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", include_str!("../../assets/app.css")),
    (
        "app.js",
        "text/javascript",
        include_str!("../../assets/app.js"),
    ),
    (
        "lib.js",
        "text/javascript",
        include_str!("../../assets/lib.js"),
    ),
    (
        "chart.js",
        "text/javascript",
        include_str!("../../assets/chart.js"),
    ),
    (
        "login.js",
        "text/javascript",
        include_str!("../../assets/login.js"),
    ),
    (
        "dashboard.js",
        "text/javascript",
        include_str!("../../assets/dashboard.js"),
    ),
    (
        "logs.js",
        "text/javascript",
        include_str!("../../assets/logs.js"),
    ),
    (
        "issues.js",
        "text/javascript",
        include_str!("../../assets/issues.js"),
    ),
    (
        "issue.js",
        "text/javascript",
        include_str!("../../assets/issue.js"),
    ),
    (
        "settings.js",
        "text/javascript",
        include_str!("../../assets/settings.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../assets/favicon.svg"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shell(page: &str, title: &str, user: &str, csrf: &str) -> Response {
    let html = SHELL
        .replace("{{page}}", &escape_html(page))
        .replace("{{title}}", &escape_html(title))
        .replace("{{user}}", &escape_html(user))
        .replace("{{csrf}}", &escape_html(csrf))
        .replace("{{version}}", asset_version());
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    secure_headers(response.headers_mut());
    response
}

/// A page that needs a logged-in user: the shell, or a redirect to the
/// login page (or to setup when there is no user yet).
async fn page(state: &State, headers: &HeaderMap, page: &str, title: &str, next: &str) -> Response {
    if let Some(token) = session::session_cookie(headers)
        && let Ok(Some(s)) = state.auth.session(token).await
    {
        return shell(page, title, &s.user.username, &s.csrf);
    }
    match state.with_store(|s| s.count_users()).await {
        Ok(0) => Redirect::to("/setup").into_response(),
        Ok(_) => {
            let next = urlencode(next);
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn dashboard(state: State, headers: HeaderMap) -> Response {
    page(&state, &headers, "dashboard", "Dashboard", "/").await
}

pub async fn logs(state: State, headers: HeaderMap) -> Response {
    page(&state, &headers, "logs", "Logs", "/logs").await
}

pub async fn issues(state: State, headers: HeaderMap) -> Response {
    page(&state, &headers, "issues", "Issues", "/issues").await
}

pub async fn issue(state: State, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if id.parse::<i64>().is_err() {
        return (StatusCode::NOT_FOUND, "no such issue").into_response();
    }
    page(&state, &headers, "issue", "Issue", &format!("/issues/{id}")).await
}

pub async fn settings(state: State, headers: HeaderMap) -> Response {
    page(&state, &headers, "settings", "Settings", "/settings").await
}

pub async fn login(state: State) -> Response {
    match state.with_store(|s| s.count_users()).await {
        Ok(0) => Redirect::to("/setup").into_response(),
        _ => shell("login", "Log in", "", ""),
    }
}

pub async fn setup(state: State) -> Response {
    match state.with_store(|s| s.count_users()).await {
        Ok(0) => shell("setup", "Set up faultline", "", ""),
        _ => Redirect::to("/login").into_response(),
    }
}

/// A short hash of every asset, so browsers refetch after an upgrade.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for (_, _, content) in ASSETS {
            h.update(content.as_bytes());
        }
        hex::encode(&h.finalize()[..6])
    })
}

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, content)) = ASSETS.iter().find(|(n, ..)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{}\"", asset_version());
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ETAG, etag.as_str()),
        ],
        *content,
    )
        .into_response();
    secure_headers(response.headers_mut());
    response
}

pub async fn favicon() -> Response {
    asset(Path("favicon.svg".into()), HeaderMap::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(urlencode("/issues/3?x=<y>"), "/issues/3%3Fx%3D%3Cy%3E");
    }
}
