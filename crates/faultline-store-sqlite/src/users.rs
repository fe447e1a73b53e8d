//! Web UI users and their sessions on SQLite.
//!
//! Tables (migration 5, see schema.rs): `users` (the username is unique,
//! compared byte for byte: case-sensitive) and `sessions`, keyed by the
//! hash of the session's cookie token. Writes run on the writer connection,
//! reads (a session lookup on every UI request) on the read pool.

use crate::db;
use faultline_store::{Result, Session, StoreError, User};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

const USER_SELECT: &str = "SELECT id, username, created_at, last_login FROM users";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        created_at: r.get(2)?,
        last_login: r.get(3)?,
    })
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: "user",
        name: id.to_string(),
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

pub(crate) fn create_user(
    conn: &mut Connection,
    username: &str,
    password_hash: &str,
    now: i64,
) -> Result<User> {
    if username.is_empty() {
        return Err(StoreError::Invalid("username must not be empty".into()));
    }
    conn.prepare_cached(
        "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![username, password_hash, now]))
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::Conflict(format!("user {username:?} already exists"))
        } else {
            StoreError::backend("create a user", e)
        }
    })?;
    Ok(User {
        id: conn.last_insert_rowid(),
        username: username.to_owned(),
        created_at: now,
        last_login: None,
    })
}

pub(crate) fn list_users(conn: &Connection) -> Result<Vec<User>> {
    conn.prepare_cached(&format!("{USER_SELECT} ORDER BY username"))
        .and_then(|mut s| s.query_map([], user_from_row)?.collect())
        .map_err(db("list users"))
}

pub(crate) fn count_users(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM users")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("count users"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) fn find_user(conn: &Connection, username: &str) -> Result<Option<(User, String)>> {
    conn.prepare_cached(
        "SELECT id, username, created_at, last_login, password_hash FROM users \
         WHERE username = ?1",
    )
    .and_then(|mut s| {
        s.query_row([username], |r| Ok((user_from_row(r)?, r.get(4)?)))
            .optional()
    })
    .map_err(db("look up a user"))
}

pub(crate) fn set_password(conn: &mut Connection, id: i64, password_hash: &str) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin changing a password"))?;
    let changed = tx
        .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, password_hash]))
        .map_err(db("change a password"))?;
    if changed == 0 {
        return Err(not_found(id));
    }
    // Whoever knew the old password is logged out.
    tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db("end a user's sessions"))?;
    tx.commit().map_err(db("commit changing a password"))
}

pub(crate) fn delete_user(conn: &mut Connection, id: i64) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin deleting a user"))?;
    tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db("delete a user's sessions"))?;
    let deleted = tx
        .prepare_cached("DELETE FROM users WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db("delete a user"))?;
    if deleted == 0 {
        // Dropping the transaction rolls it back (it deleted nothing).
        return Err(not_found(id));
    }
    tx.commit().map_err(db("commit deleting a user"))
}

pub(crate) fn create_session(
    conn: &mut Connection,
    token_hash: &str,
    user_id: i64,
    csrf: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin creating a session"))?;
    let changed = tx
        .prepare_cached("UPDATE users SET last_login = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute([user_id, now]))
        .map_err(db("record a login"))?;
    if changed == 0 {
        return Err(not_found(user_id));
    }
    tx.prepare_cached(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![token_hash, user_id, csrf, now, expires_at]))
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::Conflict("a session with this token already exists".into())
        } else {
            StoreError::backend("create a session", e)
        }
    })?;
    tx.commit().map_err(db("commit a new session"))
}

pub(crate) fn find_session(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<Session>> {
    conn.prepare_cached(
        "SELECT u.id, u.username, u.created_at, u.last_login, s.csrf, s.created_at, \
         s.expires_at FROM sessions AS s JOIN users AS u ON u.id = s.user_id \
         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![token_hash, now], |r| {
            Ok(Session {
                user: user_from_row(r)?,
                csrf: r.get(4)?,
                created_at: r.get(5)?,
                expires_at: r.get(6)?,
            })
        })
        .optional()
    })
    .map_err(db("look up a session"))
}

pub(crate) fn delete_session(conn: &mut Connection, token_hash: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")
        .and_then(|mut s| s.execute([token_hash]))
        .map_err(db("delete a session"))?;
    Ok(())
}

pub(crate) fn delete_expired_sessions(conn: &mut Connection, now: i64) -> Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")
        .and_then(|mut s| s.execute([now]))
        .map_err(db("delete expired sessions"))
}
