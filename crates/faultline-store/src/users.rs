//! The user side of a store: web UI accounts and their login sessions.
//!
//! The store keeps password hashes and hashes of session tokens, never
//! secrets: hashing (and checking) is the caller's job.

use crate::Result;
use serde::Serialize;

/// A web UI account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// When the last session was created (µs), if ever.
    pub last_login: Option<i64>,
}

/// A login session, found by the hash of its cookie token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    /// The session's CSRF token.
    pub csrf: String,
    pub created_at: i64,
    /// The session is valid while `now < expires_at`.
    pub expires_at: i64,
}

/// Users and sessions. Semantics every adapter honours (checked by
/// [`crate::contract_users`]):
/// - Usernames are exact and case-sensitive, and unique.
/// - A session belongs to an existing user; deleting the user deletes its
///   sessions.
pub trait UserStore {
    /// Conflict when the username exists (names are exact, case-sensitive).
    /// `Invalid` for an empty username.
    fn create_user(&self, username: &str, password_hash: &str, now: i64) -> Result<User>;
    /// Ordered by username.
    fn list_users(&self) -> Result<Vec<User>>;
    fn count_users(&self) -> Result<u64>;
    /// The user and their stored password hash.
    fn find_user(&self, username: &str) -> Result<Option<(User, String)>>;
    /// NotFound when no such user; ends the user's sessions.
    fn set_user_password(&self, id: i64, password_hash: &str) -> Result<()>;
    /// NotFound when no such user; deletes the user's sessions too.
    fn delete_user(&self, id: i64) -> Result<()>;
    /// Stores a session under the hash of its cookie token; sets the user's
    /// last_login = now. NotFound for an unknown user; Conflict when a
    /// session with that token hash exists.
    fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// None when unknown or expired (expires_at <= now).
    fn find_session(&self, token_hash: &str, now: i64) -> Result<Option<Session>>;
    /// Idempotent.
    fn delete_session(&self, token_hash: &str) -> Result<()>;
    /// Removes expired sessions (expires_at <= now), returns how many.
    fn delete_expired_sessions(&self, now: i64) -> Result<usize>;
}
