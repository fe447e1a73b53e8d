//! Alert rules, channels, rule states and the notification outbox on
//! SQLite (tables of migration 3, see schema.rs).

use crate::db;
use crate::write::{ensure_project_in, project_id};
use faultline_store::{
    AlertWrites, Attempt, Notification, NotificationStatus, Result, StoreError, StoredChannel,
    StoredRule,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

const NOTIFICATION_SELECT: &str = "SELECT n.id, p.name, n.rule_id, n.channel, n.dedupe, \
    n.trigger, n.status, n.attempts, n.next_attempt_at, n.last_error, n.created_at, \
    n.delivered_at FROM notifications AS n JOIN projects AS p ON p.id = n.project_id";

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    let status: String = r.get(6)?;
    Ok(Notification {
        id: r.get(0)?,
        project: r.get(1)?,
        rule_id: r.get(2)?,
        channel: r.get(3)?,
        dedupe: r.get(4)?,
        trigger: r.get(5)?,
        status: NotificationStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown notification status {status:?}").into(),
            )
        })?,
        attempts: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(u32::MAX),
        next_attempt_at: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        delivered_at: r.get(11)?,
    })
}

fn rule_from_row(r: &Row<'_>) -> rusqlite::Result<StoredRule> {
    Ok(StoredRule {
        id: r.get(0)?,
        project: r.get(1)?,
        name: r.get(2)?,
        spec: r.get(3)?,
    })
}

const RULE_SELECT: &str = "SELECT r.id, p.name, r.name, r.spec FROM alert_rules AS r \
    JOIN projects AS p ON p.id = r.project_id";

fn immediate<'c>(
    conn: &'c mut Connection,
    what: &'static str,
) -> Result<rusqlite::Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(what))
}

fn not_found(what: &'static str, name: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        name: name.to_string(),
    }
}

/// Writes notifications (once per (dedupe, channel)) and states inside the
/// caller's transaction.
pub(crate) fn write_alerts(tx: &Connection, w: &AlertWrites) -> Result<()> {
    let now = faultline_model::now_micros();
    for n in &w.notifications {
        let project = ensure_project_in(tx, &n.project, now)?;
        tx.prepare_cached(
            "INSERT INTO notifications (project_id, rule_id, channel, dedupe, trigger, status, \
             attempts, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6) \
             ON CONFLICT (dedupe, channel) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![project.id, n.rule_id, n.channel, n.dedupe, n.trigger, now])
        })
        .map_err(db("queue a notification"))?;
    }
    for (rule, key, state) in &w.states {
        match state {
            Some(json) => tx
                .prepare_cached(
                    "INSERT INTO alert_states (rule_id, key, state) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (rule_id, key) DO UPDATE SET state = excluded.state",
                )
                .and_then(|mut s| s.execute(params![rule, key, json])),
            None => tx
                .prepare_cached("DELETE FROM alert_states WHERE rule_id = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![rule, key])),
        }
        .map_err(db("store an alert state"))?;
    }
    Ok(())
}

pub(crate) fn record_alerts(conn: &mut Connection, w: &AlertWrites) -> Result<()> {
    let tx = immediate(conn, "begin recording alerts")?;
    write_alerts(&tx, w)?;
    tx.commit().map_err(db("commit alerts"))
}

pub(crate) fn put_channel(
    conn: &mut Connection,
    project: &str,
    name: &str,
    spec: &str,
) -> Result<()> {
    let tx = immediate(conn, "begin storing a channel")?;
    let p = ensure_project_in(&tx, project, faultline_model::now_micros())?;
    tx.execute(
        "INSERT INTO alert_channels (project_id, name, spec) VALUES (?1, ?2, ?3) \
         ON CONFLICT (project_id, name) DO UPDATE SET spec = excluded.spec",
        params![p.id, name, spec],
    )
    .map_err(db("store a channel"))?;
    tx.commit().map_err(db("commit a channel"))
}

pub(crate) fn delete_channel(conn: &mut Connection, project: &str, name: &str) -> Result<()> {
    let tx = immediate(conn, "begin deleting a channel")?;
    let pid = project_id(&tx, project)?.ok_or_else(|| not_found("project", project))?;
    let n = tx
        .execute(
            "DELETE FROM alert_channels WHERE project_id = ?1 AND name = ?2",
            params![pid, name],
        )
        .map_err(db("delete a channel"))?;
    if n == 0 {
        return Err(not_found("channel", format!("{project}/{name}")));
    }
    tx.commit().map_err(db("commit deleting a channel"))
}

pub(crate) fn list_channels(
    conn: &Connection,
    project: Option<&str>,
) -> Result<Vec<StoredChannel>> {
    conn.prepare_cached(
        "SELECT p.name, c.name, c.spec FROM alert_channels AS c JOIN projects AS p ON p.id = c.project_id \
         WHERE ?1 IS NULL OR p.name = ?1 ORDER BY p.name, c.name",
    )
    .and_then(|mut s| {
        s.query_map([project], |r| {
            Ok(StoredChannel {
                project: r.get(0)?,
                name: r.get(1)?,
                spec: r.get(2)?,
            })
        })?
        .collect()
    })
    .map_err(db("list channels"))
}

fn name_taken(e: rusqlite::Error, name: &str) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Invalid(format!(
            "a rule named {name:?} already exists in this project"
        )),
        _ => StoreError::backend("store a rule", e),
    }
}

fn rule_by_id(conn: &Connection, id: i64) -> Result<Option<StoredRule>> {
    conn.prepare_cached(&format!("{RULE_SELECT} WHERE r.id = ?1"))
        .and_then(|mut s| s.query_row([id], rule_from_row).optional())
        .map_err(db("read a rule"))
}

pub(crate) fn create_rule(
    conn: &mut Connection,
    project: &str,
    name: &str,
    spec: &str,
) -> Result<StoredRule> {
    let tx = immediate(conn, "begin creating a rule")?;
    let p = ensure_project_in(&tx, project, faultline_model::now_micros())?;
    tx.execute(
        "INSERT INTO alert_rules (project_id, name, spec) VALUES (?1, ?2, ?3)",
        params![p.id, name, spec],
    )
    .map_err(|e| name_taken(e, name))?;
    let id = tx.last_insert_rowid();
    let rule = rule_by_id(&tx, id)?.ok_or_else(|| not_found("rule", id))?;
    tx.commit().map_err(db("commit a rule"))?;
    Ok(rule)
}

pub(crate) fn update_rule(
    conn: &mut Connection,
    id: i64,
    name: &str,
    spec: &str,
) -> Result<StoredRule> {
    let tx = immediate(conn, "begin updating a rule")?;
    let n = tx
        .execute(
            "UPDATE alert_rules SET name = ?2, spec = ?3 WHERE id = ?1",
            params![id, name, spec],
        )
        .map_err(|e| name_taken(e, name))?;
    if n == 0 {
        return Err(not_found("rule", id));
    }
    let rule = rule_by_id(&tx, id)?.ok_or_else(|| not_found("rule", id))?;
    tx.commit().map_err(db("commit a rule"))?;
    Ok(rule)
}

pub(crate) fn delete_rule(conn: &mut Connection, id: i64) -> Result<()> {
    let tx = immediate(conn, "begin deleting a rule")?;
    tx.execute("DELETE FROM alert_states WHERE rule_id = ?1", [id])
        .map_err(db("delete a rule's state"))?;
    let n = tx
        .execute("DELETE FROM alert_rules WHERE id = ?1", [id])
        .map_err(db("delete a rule"))?;
    if n == 0 {
        return Err(not_found("rule", id));
    }
    tx.commit().map_err(db("commit deleting a rule"))
}

pub(crate) fn list_rules(conn: &Connection, project: Option<&str>) -> Result<Vec<StoredRule>> {
    conn.prepare_cached(&format!(
        "{RULE_SELECT} WHERE ?1 IS NULL OR p.name = ?1 ORDER BY r.id"
    ))
    .and_then(|mut s| s.query_map([project], rule_from_row)?.collect())
    .map_err(db("list rules"))
}

pub(crate) fn find_rule(
    conn: &Connection,
    project: &str,
    name: &str,
) -> Result<Option<StoredRule>> {
    conn.prepare_cached(&format!("{RULE_SELECT} WHERE p.name = ?1 AND r.name = ?2"))
        .and_then(|mut s| s.query_row([project, name], rule_from_row).optional())
        .map_err(db("find a rule"))
}

pub(crate) fn alert_states(conn: &Connection) -> Result<Vec<(i64, String, String)>> {
    conn.prepare_cached("SELECT rule_id, key, state FROM alert_states ORDER BY rule_id, key")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(db("read alert states"))
}

pub(crate) fn due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Notification>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&format!(
        "{NOTIFICATION_SELECT} WHERE n.status = 'pending' AND n.next_attempt_at <= ?1 \
         ORDER BY n.next_attempt_at, n.id LIMIT ?2"
    ))
    .and_then(|mut s| {
        s.query_map(params![now, limit], notification_from_row)?
            .collect()
    })
    .map_err(db("read due notifications"))
}

pub(crate) fn next_due(conn: &Connection) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT min(next_attempt_at) FROM notifications WHERE status = 'pending'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("read the next due notification"))
}

pub(crate) fn record_attempt(conn: &mut Connection, id: i64, a: &Attempt) -> Result<()> {
    let n = match a {
        Attempt::Delivered { at } => conn.execute(
            "UPDATE notifications SET status = 'delivered', attempts = attempts + 1, \
             delivered_at = ?2 WHERE id = ?1 AND status = 'pending'",
            params![id, at],
        ),
        Attempt::Failed {
            at,
            error,
            retry_at,
        } => conn.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_error = ?2, \
             status = CASE WHEN ?3 IS NULL THEN 'dead' ELSE 'pending' END, \
             next_attempt_at = coalesce(?3, ?4) WHERE id = ?1 AND status = 'pending'",
            params![id, error, retry_at, at],
        ),
    }
    .map_err(db("record a delivery attempt"))?;
    if n == 0 {
        return Err(not_found("pending notification", id));
    }
    Ok(())
}

pub(crate) fn list(
    conn: &Connection,
    project: Option<&str>,
    status: Option<NotificationStatus>,
    limit: usize,
) -> Result<Vec<Notification>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&format!(
        "{NOTIFICATION_SELECT} WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR n.status = ?2) \
         ORDER BY n.id DESC LIMIT ?3"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![project, status.map(NotificationStatus::as_str), limit],
            notification_from_row,
        )?
        .collect()
    })
    .map_err(db("list notifications"))
}

pub(crate) fn get(conn: &Connection, id: i64) -> Result<Option<Notification>> {
    conn.prepare_cached(&format!("{NOTIFICATION_SELECT} WHERE n.id = ?1"))
        .and_then(|mut s| s.query_row([id], notification_from_row).optional())
        .map_err(db("read a notification"))
}

pub(crate) fn retry(conn: &mut Connection, id: i64, now: i64) -> Result<Notification> {
    let tx = immediate(conn, "begin retrying a notification")?;
    let n = get(&tx, id)?.ok_or_else(|| not_found("notification", id))?;
    if n.status == NotificationStatus::Delivered {
        return Err(StoreError::Invalid(format!(
            "notification {id} was delivered; nothing to retry"
        )));
    }
    tx.execute(
        "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = ?2 WHERE id = ?1",
        params![id, now],
    )
    .map_err(db("retry a notification"))?;
    let n = get(&tx, id)?.ok_or_else(|| not_found("notification", id))?;
    tx.commit().map_err(db("commit retrying a notification"))?;
    Ok(n)
}

pub(crate) fn discard(conn: &mut Connection, id: i64) -> Result<()> {
    let tx = immediate(conn, "begin discarding a notification")?;
    let n = get(&tx, id)?.ok_or_else(|| not_found("notification", id))?;
    if n.status == NotificationStatus::Delivered {
        return Err(StoreError::Invalid(format!(
            "notification {id} was delivered; it cannot be discarded"
        )));
    }
    tx.execute("DELETE FROM notifications WHERE id = ?1", [id])
        .map_err(db("discard a notification"))?;
    tx.commit().map_err(db("commit discarding a notification"))
}
