//! Tokens: generation, hashing, and resolving a request's bearer token to a
//! [`Principal`]. Only the SHA-256 of a token is stored; tokens carry 256 bits
//! of randomness, so a fast hash is enough (no password KDF needed).

use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use faultline_model::{TokenInfo, TokenKind, now_micros};
use faultline_store::{Session, Store, StoreError};
use rand::RngExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "fl_";
/// How long a resolved token is trusted before it is looked up again, which
/// bounds how late a revocation made by another process is noticed.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// A fresh random token.
pub fn generate_token() -> String {
    let mut rng = rand::rng();
    let body: String = (0..43)
        .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
        .collect();
    format!("{TOKEN_PREFIX}{body}")
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The part of a token shown in listings.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// Creates a token of `kind` (creating its project/service when needed) and
/// returns the secret, which is never stored.
pub fn create_token(
    store: &dyn Store,
    kind: &TokenKind,
) -> Result<(String, TokenInfo), StoreError> {
    match kind {
        TokenKind::Admin => {}
        TokenKind::Read { project } => {
            store.ensure_project(project)?;
        }
        TokenKind::Ingest { project, service } => {
            store.ensure_service(project, service)?;
        }
    }
    let token = generate_token();
    let info = store.create_token(
        kind,
        &hash_token(&token),
        &token_prefix(&token),
        now_micros(),
    )?;
    Ok((token, info))
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// 0 for a web session.
    pub token_id: i64,
    pub kind: TokenKind,
    /// The logged-in user of a web session (every local user is an
    /// administrator, see ARCHITECTURE.md).
    pub user: Option<String>,
}

/// Resolves bearer tokens with a short-lived cache, and remembers their use.
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, (TokenInfo, Instant)>>,
    /// Bumped by `invalidate`, so a lookup that raced a revocation does not
    /// put the stale token back into the cache.
    generation: std::sync::atomic::AtomicU64,
    used: Mutex<HashMap<i64, i64>>,
    /// Web sessions by token hash, briefly cached like tokens.
    sessions: Mutex<HashMap<String, (Session, Instant)>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Authenticator {
            store,
            cache: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            used: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a request, or 401.
    /// A bearer token wins over a session cookie.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            if let Some(cookie) = crate::session::session_cookie(headers) {
                let session = self.session(cookie).await?.ok_or(ApiError::Unauthorized(
                    "your session has expired; log in again",
                ))?;
                return Ok(Principal {
                    token_id: 0,
                    kind: TokenKind::Admin,
                    user: Some(session.user.username),
                });
            }
            return Err(ApiError::Unauthorized(
                "missing Authorization: Bearer <token> header",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be 'Bearer <token>'",
            ))?;
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(ApiError::Unauthorized("unknown token"));
        }
        let hash = hash_token(token);
        let cached = {
            let cache = self.cache.lock().expect("token cache lock poisoned");
            cache
                .get(&hash)
                .filter(|(_, at)| at.elapsed() < CACHE_TTL)
                .map(|(info, _)| info.clone())
        };
        let info = match cached {
            Some(info) => info,
            None => {
                let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
                let store = self.store.clone();
                let h = hash.clone();
                let found = tokio::task::spawn_blocking(move || store.find_token(&h))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))??;
                let info = found.ok_or(ApiError::Unauthorized("unknown token"))?;
                let mut cache = self.cache.lock().expect("token cache lock poisoned");
                if cache.len() > 10_000 {
                    cache.clear();
                }
                if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
                    cache.insert(hash, (info.clone(), Instant::now()));
                }
                info
            }
        };
        if info.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("this token has been revoked"));
        }
        self.used
            .lock()
            .expect("token use lock poisoned")
            .insert(info.id, now_micros());
        Ok(Principal {
            token_id: info.id,
            kind: info.kind,
            user: None,
        })
    }

    /// The live session a cookie token names, if any.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, ApiError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let hash = crate::session::hash_session(token);
        let now = now_micros();
        {
            let cache = self.sessions.lock().expect("session cache lock poisoned");
            if let Some((s, at)) = cache.get(&hash)
                && at.elapsed() < CACHE_TTL
                && s.expires_at > now
            {
                return Ok(Some(s.clone()));
            }
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let store = self.store.clone();
        let h = hash.clone();
        let found = tokio::task::spawn_blocking(move || store.find_session(&h, now))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        if let Some(s) = &found {
            let mut cache = self.sessions.lock().expect("session cache lock poisoned");
            if cache.len() > 10_000 {
                cache.clear();
            }
            if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
                cache.insert(hash, (s.clone(), Instant::now()));
            }
        }
        Ok(found)
    }

    /// Forgets cached tokens (after a revocation through the API).
    pub fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cache
            .lock()
            .expect("token cache lock poisoned")
            .clear();
        self.sessions
            .lock()
            .expect("session cache lock poisoned")
            .clear();
    }

    /// Token uses since the last call, for `Store::touch_tokens`.
    pub fn take_uses(&self) -> Vec<(i64, i64)> {
        std::mem::take(&mut *self.used.lock().expect("token use lock poisoned"))
            .into_iter()
            .collect()
    }
}

impl Principal {
    /// The project this principal may read: an admin may read any (or all,
    /// with `None`); a read token only its own; an ingest token nothing.
    pub fn readable_project(&self, requested: Option<String>) -> Result<Option<String>, ApiError> {
        match &self.kind {
            TokenKind::Admin => Ok(requested),
            TokenKind::Read { project } => match requested {
                Some(r) if &r != project => Err(ApiError::Forbidden(format!(
                    "this token may only read project {project:?}"
                ))),
                _ => Ok(Some(project.clone())),
            },
            TokenKind::Ingest { .. } => Err(ApiError::Forbidden(
                "ingest tokens are write-only; use a read or admin token".into(),
            )),
        }
    }

    /// 403 unless admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.kind {
            TokenKind::Admin => Ok(()),
            _ => Err(ApiError::Forbidden("this needs an admin token".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), 46);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
        assert_eq!(token_prefix(&a).len(), 9);
    }
}
