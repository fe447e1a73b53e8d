//! Web sessions: local users' passwords (Argon2id), session cookies and CSRF.
//!
//! A browser logs in with `POST /api/v1/session` and gets an HttpOnly,
//! SameSite=Lax cookie holding a random session token (only its SHA-256
//! is stored, like API tokens). Lax, not Strict, so a link to an issue in a
//! chat or a ticket opens it for a logged-in user; writes are protected by
//! the CSRF token and the origin check, not by the cookie's scope. Every state-changing request made with that
//! cookie must carry the session's CSRF token in `X-CSRF-Token`, and a
//! cookie-authenticated request whose `Origin` is another site is refused
//! ([`csrf_guard`]). Requests with `Authorization: Bearer` are not affected:
//! a bearer token is not an ambient credential.

use crate::AppState;
use crate::auth::{generate_token, hash_token};
use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// Name of the session cookie.
pub const COOKIE: &str = "faultline_session";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);
/// Password length bounds (characters).
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes),
/// as a PHC string that carries its salt and parameters.
pub fn hash_password(password: &str) -> Result<String, String> {
    let bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&bytes).map_err(|e| format!("password salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing failed: {e}"))
}

/// Whether `password` matches a stored PHC hash (false for a malformed one).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(format!(
            "a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// Checks a username: 1–64 letters, digits, `.`, `_`, `-` or `@`.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err("a username has 1 to 64 letters, digits, '.', '_', '-' or '@'".into())
    }
}

/// A new session: the cookie's secret and the CSRF token.
pub fn new_session_secrets() -> (String, String) {
    (generate_token(), generate_token())
}

/// The session token in a request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session (`secure` when served over HTTPS).
pub fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    HeaderValue::from_str(&value).expect("session tokens are ASCII")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("faultline_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// Whether the request's `Origin` (if any) is this server: browsers send it
/// on cross-origin requests, WebSocket handshakes and every POST. It matches
/// when its host is the request's `Host`, or when it is the origin of the
/// configured `public_url` (a reverse proxy may rewrite `Host`).
fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if !public_url.is_empty() && origin.eq_ignore_ascii_case(url_origin(public_url)) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

/// `scheme://host[:port]` of a URL.
fn url_origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Whether the browser reached us over HTTPS (directly per `public_url`,
/// or through a proxy that says so).
pub fn is_https(headers: &HeaderMap, public_url: &str) -> bool {
    public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Middleware: a request authenticated by the session cookie (and no bearer
/// token) must come from our own origin, and when it changes state, carry
/// the session's CSRF token. Anything else passes through unchanged.
pub async fn csrf_guard(
    state: axum::extract::State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = check_request(state, request, next).await;
    // API answers are per-user data: never cached by a browser or proxy.
    if api && !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn check_request(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if is_login(&request) {
        // A cross-site form cannot send JSON: no logging a victim in as
        // someone else (login CSRF).
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json || !same_origin(headers, &state.config.public_url) {
            return ApiError::Forbidden(
                "log in with Content-Type: application/json from this site".into(),
            )
            .into_response();
        }
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some(token) = session_cookie(headers) else {
        return next.run(request).await;
    };
    if !same_origin(headers, &state.config.public_url) {
        return ApiError::Forbidden("cross-origin request refused".into()).into_response();
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    // Logging in replaces whatever session the cookie names.
    let login = is_login(&request);
    if !safe && !login {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match state.auth.session(token).await {
            Ok(Some(s)) if !sent.is_empty() && constant_eq(sent, &s.csrf) => {}
            Ok(Some(_)) => {
                return ApiError::Forbidden(
                    "missing or wrong CSRF token (X-CSRF-Token header)".into(),
                )
                .into_response();
            }
            // No valid session: the handler answers 401.
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    next.run(request).await
}

/// Logging in or setting up (which logs in).
fn is_login(request: &Request) -> bool {
    request.method() == Method::POST
        && matches!(request.uri().path(), "/api/v1/session" | "/api/v1/setup")
}

/// Compares two secrets in time independent of where they differ.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The stored form of a session token.
pub fn hash_session(token: &str) -> String {
    hash_token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("correct horsE", &a));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn cookies_parse_and_origins_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; faultline_session=fl_abc ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("fl_abc"));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8470"));
        assert!(same_origin(&h, ""));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8470"),
        );
        assert!(same_origin(&h, ""));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(!same_origin(&h, ""));
        // Behind a proxy that rewrites Host: the public URL's origin.
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://logs.studio.example"),
        );
        assert!(!same_origin(&h, ""));
        assert!(same_origin(&h, "https://logs.studio.example/faultline"));
        assert!(!same_origin(&h, "https://other.example"));
        assert_eq!(url_origin("https://a.b:8443/x/y"), "https://a.b:8443");
        assert_eq!(url_origin("http://a.b"), "http://a.b");
        assert!(constant_eq("abc", "abc"));
        assert!(!constant_eq("abc", "abd"));
        assert!(!constant_eq("abc", "ab"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_username("ana.lee@studio").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
    }
}
