//! Web login: sessions, first-run setup and local users.
//!
//! - `POST /api/v1/session` `{username, password}` logs in: sets the session
//!   cookie and answers `{user, csrf}`. `GET` shows the current session,
//!   `DELETE` logs out.
//! - `POST /api/v1/setup` `{admin_token, username, password}` creates the
//!   first user, proving with the admin token printed at the first start (or
//!   made with `faultline token create --admin`) that the caller runs this
//!   server. Refused (409) once a user exists. `GET /api/v1/setup` says
//!   whether setup is needed.
//! - `/api/v1/users` (admin): list, create, change a password, delete.

use super::State;
use super::admin::parse_json;
use crate::auth::hash_token;
use crate::error::ApiError;
use crate::session::{
    self, check_password, check_username, clear_cookie, hash_password, hash_session,
    new_session_secrets, set_cookie, verify_password,
};
use axum::Json;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_model::{TokenKind, format_rfc3339_micros, now_micros};
use faultline_store::User;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A user as the API shows it.
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "created_at": format_rfc3339_micros(u.created_at),
        "last_login": u.last_login.map(format_rfc3339_micros),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// Password hashes computed at once: each takes ~19 MiB and tens of
/// milliseconds by design, so a flood of logins queues here instead of
/// exhausting memory (and guessing stays slow).
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Runs a password hash or check off the async threads, two at a time.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Starts a session for `user` and answers with its cookie and CSRF token.
async fn start_session(
    state: &State,
    headers: &HeaderMap,
    user: User,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (token, csrf) = new_session_secrets();
    let now = now_micros();
    let expires = now + session::SESSION_LIFETIME.as_micros() as i64;
    let (hash, id, c) = (hash_session(&token), user.id, csrf.clone());
    state
        .with_store(move |s| s.create_session(&hash, id, &c, now, expires))
        .await?;
    let secure = session::is_https(headers, &state.config.public_url);
    let mut response = (
        status,
        Json(json!({"user": user_json(&user), "csrf": csrf})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&token, secure));
    Ok(response)
}

/// Failed logins of one user name within the current window.
struct Failures {
    since: Instant,
    count: u32,
}

/// Failed logins per user name (lowercased). After [`MAX_FAILURES`] in
/// [`FAILURE_WINDOW`] the name is refused with 429 until the window ends,
/// without looking at the password; a right password before that clears
/// the count. Per name rather than per address: behind a proxy every
/// address is the proxy's. The price is that someone can lock a name out
/// for the window; the administrator's token and `faultline user` still
/// work.
static FAILED_LOGINS: LazyLock<Mutex<HashMap<String, Failures>>> = LazyLock::new(Default::default);
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

fn failed_logins() -> std::sync::MutexGuard<'static, HashMap<String, Failures>> {
    FAILED_LOGINS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Refuses a name with too many recent failures.
fn check_failures(key: &str) -> Result<(), ApiError> {
    let map = failed_logins();
    match map.get(key) {
        Some(f) if f.count >= MAX_FAILURES && f.since.elapsed() < FAILURE_WINDOW => {
            let left = FAILURE_WINDOW.saturating_sub(f.since.elapsed()).as_secs() + 1;
            Err(ApiError::TooManyRequests {
                detail: format!(
                    "too many failed logins for this user; try again in {} min",
                    left.div_ceil(60)
                ),
                retry_after_secs: left,
            })
        }
        _ => Ok(()),
    }
}

fn count_failure(key: String) {
    let mut map = failed_logins();
    if map.len() >= 10_000 {
        map.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
    }
    let f = map.entry(key).or_insert(Failures {
        since: Instant::now(),
        count: 0,
    });
    if f.since.elapsed() >= FAILURE_WINDOW {
        *f = Failures {
            since: Instant::now(),
            count: 0,
        };
    }
    f.count += 1;
}

pub async fn login(state: State, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let c: Credentials = parse_json(&state, &headers, body).await?;
    let key = c.username.to_lowercase();
    check_failures(&key)?;
    let name = c.username.clone();
    let found = state.with_store(move |s| s.find_user(&name)).await?;
    // Hash even for an unknown user, so timing does not tell names apart.
    let (user, stored) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, String::new()),
    };
    let password = c.password;
    let ok = blocking(move || {
        if stored.is_empty() {
            let _ = hash_password(&password);
            false
        } else {
            verify_password(&password, &stored)
        }
    })
    .await?;
    match user {
        Some(user) if ok => {
            tracing::info!(user = %user.username, "logged in");
            failed_logins().remove(&key);
            start_session(&state, &headers, user, StatusCode::OK).await
        }
        _ => {
            tracing::warn!(user = %c.username, "failed login");
            count_failure(key);
            Err(ApiError::Unauthorized("wrong username or password"))
        }
    }
}

pub async fn current(state: State, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let token = session::session_cookie(&headers).ok_or(ApiError::Unauthorized("not logged in"))?;
    let s = state
        .auth
        .session(token)
        .await?
        .ok_or(ApiError::Unauthorized(
            "your session has expired; log in again",
        ))?;
    Ok(Json(json!({"user": user_json(&s.user), "csrf": s.csrf})))
}

pub async fn logout(state: State, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = session::session_cookie(&headers) {
        let hash = hash_session(token);
        state.with_store(move |s| s.delete_session(&hash)).await?;
        state.auth.invalidate();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

pub async fn setup_status(state: State) -> Result<Json<Value>, ApiError> {
    let users = state.with_store(|s| s.count_users()).await?;
    Ok(Json(json!({"needed": users == 0})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupBody {
    admin_token: String,
    username: String,
    password: String,
}

pub async fn setup(state: State, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let b: SetupBody = parse_json(&state, &headers, body).await?;
    if state.with_store(|s| s.count_users()).await? > 0 {
        return Err(ApiError::Conflict(
            "setup is done; log in, or ask an administrator for an account".into(),
        ));
    }
    let hash = hash_token(b.admin_token.trim());
    let token = state.with_store(move |s| s.find_token(&hash)).await?;
    match token {
        Some(t) if t.revoked_at.is_none() && matches!(t.kind, TokenKind::Admin) => {}
        _ => {
            return Err(ApiError::Unauthorized(
                "that is not a valid admin token (see the server's first start, or run `faultline token create --admin`)",
            ));
        }
    }
    let user = create(&state, b.username, b.password).await?;
    start_session(&state, &headers, user, StatusCode::CREATED).await
}

/// A new password's hash, off the async threads.
async fn hashed(password: String) -> Result<String, ApiError> {
    check_password(&password).map_err(|e| ApiError::bad("invalid password", e))?;
    blocking(move || hash_password(&password))
        .await?
        .map_err(ApiError::Internal)
}

async fn create(state: &State, username: String, password: String) -> Result<User, ApiError> {
    check_username(&username).map_err(|e| ApiError::bad("invalid username", e))?;
    let hash = hashed(password).await?;
    let now = now_micros();
    state
        .with_store(move |s| s.create_user(&username, &hash, now))
        .await
}

pub async fn list_users(state: State, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let users = state.with_store(|s| s.list_users()).await?;
    let list: Vec<Value> = users.iter().map(user_json).collect();
    Ok(Json(json!({"users": list})))
}

pub async fn create_user(
    state: State,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let c: Credentials = parse_json(&state, &headers, body).await?;
    let user = create(&state, c.username, c.password).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad("invalid parameter", "user id must be a number"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

pub async fn set_password(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id = parse_id(&id)?;
    let b: PasswordBody = parse_json(&state, &headers, body).await?;
    let hash = hashed(b.password).await?;
    state
        .with_store(move |s| s.set_user_password(id, &hash))
        .await?;
    // The store ended the user's sessions; forget cached ones.
    state.auth.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_user(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id = parse_id(&id)?;
    let users = state.with_store(|s| s.list_users()).await?;
    if users.len() == 1 && users[0].id == id {
        return Err(ApiError::Conflict(
            "this is the last user; create another one first".into(),
        ));
    }
    state.with_store(move |s| s.delete_user(id)).await?;
    state.auth.invalidate();
    Ok(StatusCode::NO_CONTENT)
}
