//! Issues, events and the issue processor's state on SQLite.
//!
//! Tables (migration 3, see schema.rs): `issues`; `issue_fingerprints`
//! maps every fingerprint that ever led to an issue (its own and those
//! merged into it) to that issue, so one (project, fingerprint) has exactly
//! one issue; `issue_events` keeps each event whole; `event_keys` the
//! idempotency keys; `issue_hosts` / `issue_users` the distinct affected
//! hosts and users; `issue_counts` events per hour (histograms, trend);
//! `issue_history` status changes; `grouper_states` and `fingerprint_rules`
//! per project; `meta.issues_through` the processor's watermark.
//!
//! All writes run on the writer connection (one at a time), so "find the
//! issue of a fingerprint, else create it" cannot race.

use crate::db;
use crate::write::{ensure_service_in, project_id};
use faultline_model::{
    EventDetails, IgnoreUntil, Issue, IssueState, IssueStatus, Level, NewEvent, StatusChange,
    StoredEvent, Transition,
};
use faultline_store::{
    AlertWrites, Attachment, Bucket, EventBatch, EventOutcome, IssuePage, IssueQuery, IssueSort,
    IssueTicket, MAX_IDS_PER_CALL, ProjectOverview, Result, StatusUpdate, StoreError,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};

const HOUR: i64 = 3_600_000_000;

/// The issue columns [`issue_from_row`] reads, for `issues AS i` joined
/// with `projects AS p` and `services AS s`; `?1` is the trend's "now".
const ISSUE_SELECT: &str = "SELECT i.id, p.name, s.name, i.fingerprint, i.title, i.culprit, \
    i.exception_type, i.level, i.status, i.ignore_count, i.ignore_until, i.regressed, \
    i.first_seen, i.last_seen, i.count, i.hosts, i.users, \
    (SELECT coalesce(sum(c.count), 0) FROM issue_counts AS c \
       WHERE c.issue_id = i.id AND c.hour >= ?1 - 86400000000) AS c24, \
    (SELECT coalesce(sum(c.count), 0) FROM issue_counts AS c \
       WHERE c.issue_id = i.id AND c.hour >= ?1 - 172800000000 AND c.hour < ?1 - 86400000000) AS cprev \
    FROM issues AS i \
    JOIN projects AS p ON p.id = i.project_id \
    JOIN services AS s ON s.id = i.service_id";

const EVENT_SELECT: &str = "SELECT e.id, e.issue_id, p.name, s.name, e.level, e.ts, \
    e.received_at, e.log_id, e.title, e.message, e.host, e.user, e.tags, e.attributes, \
    e.details, e.count \
    FROM issue_events AS e \
    JOIN services AS s ON s.id = e.service_id \
    JOIN projects AS p ON p.id = s.project_id";

fn level_from(code: i64) -> rusqlite::Result<Level> {
    u8::try_from(code)
        .ok()
        .and_then(Level::from_code)
        .ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(0, code))
}

fn status_from(s: &str) -> rusqlite::Result<IssueStatus> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn issue_from_row(r: &Row<'_>) -> rusqlite::Result<Issue> {
    let ignore_count: Option<i64> = r.get(9)?;
    let ignore_until: Option<i64> = r.get(10)?;
    let status = status_from(&r.get::<_, String>(8)?)?;
    Ok(Issue {
        id: r.get(0)?,
        project: r.get(1)?,
        service: r.get(2)?,
        fingerprint: r.get(3)?,
        title: r.get(4)?,
        culprit: r.get(5)?,
        exception_type: r.get(6)?,
        level: level_from(r.get(7)?)?,
        status,
        ignore: (status == IssueStatus::Ignored
            && (ignore_count.is_some() || ignore_until.is_some()))
        .then(|| IgnoreUntil {
            count: ignore_count.map(u64_of),
            until: ignore_until,
        }),
        regressed: r.get::<_, i64>(11)? != 0,
        first_seen: r.get(12)?,
        last_seen: r.get(13)?,
        count: u64_of(r.get(14)?),
        hosts: u64_of(r.get(15)?),
        users: u64_of(r.get(16)?),
        count_24h: u64_of(r.get(17)?),
        count_prev_24h: u64_of(r.get(18)?),
    })
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let tags: Option<String> = r.get(12)?;
    let attributes: Option<String> = r.get(13)?;
    let details: Option<String> = r.get(14)?;
    let mut details: EventDetails = match details {
        Some(d) => serde_json::from_str(&d).map_err(json_err)?,
        None => EventDetails::default(),
    };
    details.count = u64_of(r.get(15)?);
    Ok(StoredEvent {
        id: r.get(0)?,
        issue_id: r.get(1)?,
        project: r.get(2)?,
        service: r.get(3)?,
        level: level_from(r.get(4)?)?,
        timestamp: r.get(5)?,
        received_at: r.get(6)?,
        log_id: r.get(7)?,
        title: r.get(8)?,
        message: r.get(9)?,
        host: r.get(10)?,
        user: r.get(11)?,
        tags: match tags {
            Some(t) => serde_json::from_str(&t).map_err(json_err)?,
            None => Vec::new(),
        },
        attributes: match attributes {
            Some(a) => serde_json::from_str(&a).map_err(json_err)?,
            None => Default::default(),
        },
        details,
    })
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: "issue",
        name: id.to_string(),
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::backend("encode an event field", e))
}

// ------------------------------------------------------------------ writes

/// The status columns of an issue.
fn load_state(tx: &Connection, id: i64) -> Result<Option<IssueState>> {
    tx.prepare_cached(
        "SELECT status, ignore_count, ignore_until, regressed FROM issues WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([id], |r| {
            let status = status_from(&r.get::<_, String>(0)?)?;
            let count: Option<i64> = r.get(1)?;
            let until: Option<i64> = r.get(2)?;
            Ok(IssueState {
                status,
                ignore: (count.is_some() || until.is_some()).then(|| IgnoreUntil {
                    count: count.map(u64_of),
                    until,
                }),
                regressed: r.get::<_, i64>(3)? != 0,
            })
        })
        .optional()
    })
    .map_err(db("read an issue's status"))
}

fn store_state(tx: &Connection, id: i64, s: &IssueState) -> Result<()> {
    let ignore = s.ignore.unwrap_or_default();
    tx.prepare_cached(
        "UPDATE issues SET status = ?2, ignore_count = ?3, ignore_until = ?4, regressed = ?5 \
         WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            s.status.as_str(),
            ignore.count.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            ignore.until,
            i64::from(s.regressed),
        ])
    })
    .map_err(db("write an issue's status"))?;
    Ok(())
}

fn add_history(tx: &Connection, id: i64, change: &StatusChange) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO issue_history (issue_id, at, actor, action, from_status, to_status, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            change.at,
            change.actor,
            change.action,
            change.from.as_str(),
            change.to.as_str(),
            change.detail,
        ])
    })
    .map_err(db("record an issue's history"))?;
    Ok(())
}

fn issue_of(tx: &Connection, project_id: i64, fingerprint: &str) -> Result<Option<i64>> {
    tx.prepare_cached(
        "SELECT issue_id FROM issue_fingerprints WHERE project_id = ?1 AND fingerprint = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![project_id, fingerprint], |r| r.get(0))
            .optional()
    })
    .map_err(db("look up a fingerprint"))
}

fn map_fingerprint(tx: &Connection, project_id: i64, fingerprint: &str, issue: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO issue_fingerprints (project_id, fingerprint, issue_id) VALUES (?1, ?2, ?3) \
         ON CONFLICT (project_id, fingerprint) DO UPDATE SET issue_id = excluded.issue_id",
    )
    .and_then(|mut s| s.execute(params![project_id, fingerprint, issue]))
    .map_err(db("map a fingerprint"))?;
    Ok(())
}

/// Adds `value` to an issue's distinct set (`issue_hosts` / `issue_users`)
/// and bumps its counter when it was new.
fn add_distinct(tx: &Connection, table: &str, column: &str, issue: i64, value: &str) -> Result<()> {
    let inserted = tx
        .prepare_cached(&format!(
            "INSERT INTO issue_{table} (issue_id, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
        ))
        .and_then(|mut s| s.execute(params![issue, value]))
        .map_err(db("record an affected host or user"))?;
    if inserted > 0 {
        tx.prepare_cached(&format!(
            "UPDATE issues SET {column} = {column} + 1 WHERE id = ?1"
        ))
        .and_then(|mut s| s.execute([issue]))
        .map_err(db("count an affected host or user"))?;
    }
    Ok(())
}

fn record_one(tx: &Transaction<'_>, e: &NewEvent) -> Result<EventOutcome> {
    let service = ensure_service_in(tx, &e.project, &e.service, e.received_at)?;
    let project = project_id(tx, &e.project)?.ok_or_else(|| StoreError::NotFound {
        what: "project",
        name: e.project.clone(),
    })?;
    if let Some(key) = &e.key {
        let seen: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT event_id, issue_id FROM event_keys WHERE project_id = ?1 AND key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![project, key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db("look up an event key"))?;
        if let Some((event_id, issue_id)) = seen {
            return Ok(EventOutcome {
                event_id,
                issue_id,
                new_issue: false,
                regressed: false,
                duplicate: true,
            });
        }
    }
    let count = i64::try_from(e.details.count.max(1)).unwrap_or(i64::MAX);
    let level = i64::from(e.level.code());
    let (issue, new_issue) = match issue_of(tx, project, &e.fingerprint)? {
        Some(id) => (id, false),
        None => {
            tx.prepare_cached(
                "INSERT INTO issues (project_id, service_id, fingerprint, title, culprit, \
                 exception_type, level, first_seen, last_seen, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 0)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    project,
                    service.id,
                    e.fingerprint,
                    e.title,
                    e.culprit,
                    e.details.exception_type,
                    level,
                    e.timestamp,
                ])
            })
            .map_err(db("create an issue"))?;
            let id = tx.last_insert_rowid();
            map_fingerprint(tx, project, &e.fingerprint, id)?;
            (id, true)
        }
    };
    let mut regressed = false;
    let mut state = load_state(tx, issue)?.ok_or_else(|| not_found(issue))?;
    let before = state.status;
    if let Some(t) = state.on_event(e.timestamp) {
        regressed = t == Transition::Regressed;
        store_state(tx, issue, &state)?;
        add_history(
            tx,
            issue,
            &StatusChange {
                at: e.received_at,
                actor: "system".into(),
                action: match t {
                    Transition::Regressed => "regressed",
                    Transition::IgnoreEnded => "ignore_ended",
                }
                .into(),
                from: before,
                to: state.status,
                detail: None,
            },
        )?;
    } else if state.ignore.is_some() {
        // The count left of an ignore changed.
        store_state(tx, issue, &state)?;
    }
    tx.prepare_cached(
        "UPDATE issues SET count = count + ?2, first_seen = min(first_seen, ?3), \
         last_seen = max(last_seen, ?3), level = max(level, ?4), \
         exception_type = coalesce(exception_type, ?5) WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            issue,
            count,
            e.timestamp,
            level,
            e.details.exception_type
        ])
    })
    .map_err(db("count an event"))?;
    let tags = (!e.tags.is_empty()).then(|| encode(&e.tags)).transpose()?;
    let attributes = (!e.attributes.is_empty())
        .then(|| encode(&e.attributes))
        .transpose()?;
    let details = {
        let mut d = e.details.clone();
        d.count = 1; // stored in its own column
        let json = encode(&d)?;
        (json != "{}").then_some(json)
    };
    tx.prepare_cached(
        "INSERT INTO issue_events (issue_id, service_id, level, ts, received_at, log_id, title, \
         message, host, user, tags, attributes, details, count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .and_then(|mut s| {
        s.execute(params![
            issue,
            service.id,
            level,
            e.timestamp,
            e.received_at,
            e.log_id,
            e.title,
            e.message,
            e.host,
            e.user,
            tags,
            attributes,
            details,
            count,
        ])
    })
    .map_err(db("store an event"))?;
    let event_id = tx.last_insert_rowid();
    if let Some(key) = &e.key {
        tx.prepare_cached(
            "INSERT INTO event_keys (project_id, key, event_id, issue_id) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![project, key, event_id, issue]))
        .map_err(db("store an event key"))?;
    }
    for a in &e.details.attachments {
        tx.prepare_cached(
            "INSERT INTO event_attachments (event_id, sha256) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![event_id, a.sha256]))
        .map_err(db("link an attachment"))?;
    }
    if let Some(host) = e.host.as_deref().filter(|h| !h.is_empty()) {
        add_distinct(tx, "hosts", "hosts", issue, host)?;
    }
    if let Some(user) = e.user.as_deref().filter(|u| !u.is_empty()) {
        add_distinct(tx, "users", "users", issue, user)?;
    }
    tx.prepare_cached(
        "INSERT INTO issue_counts (issue_id, hour, count) VALUES (?1, ?2, ?3) \
         ON CONFLICT (issue_id, hour) DO UPDATE SET count = count + excluded.count",
    )
    .and_then(|mut s| s.execute(params![issue, e.timestamp.div_euclid(HOUR) * HOUR, count]))
    .map_err(db("count an event per hour"))?;
    Ok(EventOutcome {
        event_id,
        issue_id: issue,
        new_issue,
        regressed,
        duplicate: false,
    })
}

/// Moves everything of issue `from` into `into` (same project, checked by
/// the caller) and deletes `from`.
fn merge_rows(tx: &Connection, into: i64, from: i64, actor: &str, at: i64) -> Result<()> {
    let run = |sql: &str, what: &'static str| -> Result<()> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![into, from]))
            .map_err(db(what))?;
        Ok(())
    };
    let fingerprint: String = tx
        .prepare_cached("SELECT fingerprint FROM issues WHERE id = ?1")
        .and_then(|mut s| s.query_row([from], |r| r.get(0)))
        .map_err(db("read a merged issue"))?;
    run(
        "UPDATE issue_events SET issue_id = ?1 WHERE issue_id = ?2",
        "move events",
    )?;
    run(
        "UPDATE issue_fingerprints SET issue_id = ?1 WHERE issue_id = ?2",
        "move fingerprints",
    )?;
    run(
        "UPDATE event_keys SET issue_id = ?1 WHERE issue_id = ?2",
        "move event keys",
    )?;
    for table in ["hosts", "users"] {
        run(
            &format!(
                "INSERT INTO issue_{table} (issue_id, value) \
                 SELECT ?1, value FROM issue_{table} WHERE issue_id = ?2 ON CONFLICT DO NOTHING"
            ),
            "merge hosts and users",
        )?;
        run(
            &format!("DELETE FROM issue_{table} WHERE issue_id = ?2 AND ?1 = ?1"),
            "merge hosts and users",
        )?;
    }
    run(
        "INSERT INTO issue_counts (issue_id, hour, count) \
         SELECT ?1, hour, count FROM issue_counts WHERE issue_id = ?2 \
         ON CONFLICT (issue_id, hour) DO UPDATE SET count = count + excluded.count",
        "merge hourly counts",
    )?;
    run(
        "DELETE FROM issue_counts WHERE issue_id = ?2 AND ?1 = ?1",
        "merge hourly counts",
    )?;
    run(
        "UPDATE issues SET \
           count = count + (SELECT f.count FROM issues AS f WHERE f.id = ?2), \
           first_seen = min(first_seen, (SELECT f.first_seen FROM issues AS f WHERE f.id = ?2)), \
           last_seen = max(last_seen, (SELECT f.last_seen FROM issues AS f WHERE f.id = ?2)), \
           level = max(level, (SELECT f.level FROM issues AS f WHERE f.id = ?2)), \
           hosts = (SELECT count(*) FROM issue_hosts WHERE issue_id = ?1), \
           users = (SELECT count(*) FROM issue_users WHERE issue_id = ?1) \
         WHERE id = ?1",
        "merge counts",
    )?;
    run(
        "DELETE FROM issue_history WHERE issue_id = ?2 AND ?1 = ?1",
        "drop a merged issue's history",
    )?;
    run(
        "DELETE FROM issues WHERE id = ?2 AND ?1 = ?1",
        "delete a merged issue",
    )?;
    let status = load_state(tx, into)?.ok_or_else(|| not_found(into))?.status;
    add_history(
        tx,
        into,
        &StatusChange {
            at,
            actor: actor.to_owned(),
            action: "merged".into(),
            from: status,
            to: status,
            detail: Some(format!(
                "issue {from} (fingerprint {fingerprint}) merged into this one"
            )),
        },
    )
}

fn project_of_issue(tx: &Connection, id: i64) -> Result<Option<i64>> {
    tx.prepare_cached("SELECT project_id FROM issues WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db("read an issue's project"))
}

pub(crate) fn record_events(
    conn: &mut Connection,
    batch: &EventBatch,
    then: &mut dyn FnMut(&[EventOutcome]) -> AlertWrites,
) -> Result<Vec<EventOutcome>> {
    if batch.durable {
        return record_events_in(conn, batch, then);
    }
    // Derived data: commit without waiting for the disk (the next durable
    // commit of the connection, e.g. the next log append, syncs the WAL
    // with it). A power loss may drop it, together with the watermark
    // committed with it: the processor then replays those entries.
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(db("read synchronous"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db("relax synchronous"))?;
    let result = record_events_in(conn, batch, then);
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(db("restore synchronous"))?;
    result
}

fn record_events_in(
    conn: &mut Connection,
    batch: &EventBatch,
    then: &mut dyn FnMut(&[EventOutcome]) -> AlertWrites,
) -> Result<Vec<EventOutcome>> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("begin recording events"))?;
    let mut out = Vec::with_capacity(batch.events.len());
    for e in &batch.events {
        out.push(record_one(&tx, e)?);
    }
    for (project, from, into) in &batch.merges {
        let Some(pid) = project_id(&tx, project)? else {
            continue;
        };
        let Some(from_issue) = issue_of(&tx, pid, from)? else {
            continue;
        };
        match issue_of(&tx, pid, into)? {
            Some(into_issue) if into_issue != from_issue => {
                merge_rows(
                    &tx,
                    into_issue,
                    from_issue,
                    "system",
                    faultline_model::now_micros(),
                )?;
            }
            Some(_) => {}
            None => map_fingerprint(&tx, pid, into, from_issue)?,
        }
    }
    for (project, state) in &batch.grouper_states {
        let service_less =
            crate::write::ensure_project_in(&tx, project, faultline_model::now_micros())?;
        tx.prepare_cached(
            "INSERT INTO grouper_states (project_id, state) VALUES (?1, ?2) \
             ON CONFLICT (project_id) DO UPDATE SET state = excluded.state",
        )
        .and_then(|mut s| s.execute(params![service_less.id, state]))
        .map_err(db("store a grouper state"))?;
    }
    if let Some(through) = batch.processed_through {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('issues_through', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        )
        .and_then(|mut s| s.execute([through]))
        .map_err(db("store the issue watermark"))?;
    }
    let alerts = then(&out);
    if !alerts.is_empty() {
        crate::alerts::write_alerts(&tx, &alerts)?;
    }
    tx.commit().map_err(db("commit recorded events"))?;
    Ok(out)
}

pub(crate) fn set_status(conn: &mut Connection, id: i64, update: &StatusUpdate) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("begin a status change"))?;
    let mut state = load_state(&tx, id)?.ok_or_else(|| not_found(id))?;
    let before = state;
    state.set(update.status, update.ignore);
    if state != before {
        store_state(&tx, id, &state)?;
        add_history(
            &tx,
            id,
            &StatusChange {
                at: update.at,
                actor: update.actor.clone(),
                action: update.status.as_str().into(),
                from: before.status,
                to: state.status,
                detail: state.ignore.map(|i| match (i.count, i.until) {
                    (Some(n), Some(t)) => format!("until {n} more events or {t}"),
                    (Some(n), None) => format!("until {n} more events"),
                    (None, Some(t)) => format!("until {t}"),
                    (None, None) => "forever".into(),
                }),
            },
        )?;
    }
    tx.commit().map_err(db("commit a status change"))
}

pub(crate) fn merge(
    conn: &mut Connection,
    into: i64,
    from: i64,
    actor: &str,
    at: i64,
) -> Result<()> {
    if into == from {
        return Err(StoreError::Invalid(
            "cannot merge an issue into itself".into(),
        ));
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("begin merging issues"))?;
    let p_into = project_of_issue(&tx, into)?.ok_or_else(|| not_found(into))?;
    let p_from = project_of_issue(&tx, from)?.ok_or_else(|| not_found(from))?;
    if p_into != p_from {
        return Err(StoreError::Invalid(
            "issues of different projects cannot be merged".into(),
        ));
    }
    merge_rows(&tx, into, from, actor, at)?;
    tx.commit().map_err(db("commit merging issues"))
}

pub(crate) fn delete(conn: &mut Connection, id: i64) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("begin deleting an issue"))?;
    if project_of_issue(&tx, id)?.is_none() {
        return Err(not_found(id));
    }
    for sql in [
        "DELETE FROM issue_tickets WHERE issue_id = ?1",
        "DELETE FROM event_attachments WHERE event_id IN \
         (SELECT id FROM issue_events WHERE issue_id = ?1)",
        "DELETE FROM issue_events WHERE issue_id = ?1",
        "DELETE FROM issue_fingerprints WHERE issue_id = ?1",
        "DELETE FROM event_keys WHERE issue_id = ?1",
        "DELETE FROM issue_hosts WHERE issue_id = ?1",
        "DELETE FROM issue_users WHERE issue_id = ?1",
        "DELETE FROM issue_counts WHERE issue_id = ?1",
        "DELETE FROM issue_history WHERE issue_id = ?1",
        "DELETE FROM issues WHERE id = ?1",
    ] {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([id]))
            .map_err(db("delete an issue"))?;
    }
    tx.commit().map_err(db("commit deleting an issue"))
}

pub(crate) fn delete_expired_events(
    conn: &mut Connection,
    before: i64,
    max_rows: usize,
) -> Result<usize> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("begin deleting old events"))?;
    let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "DELETE FROM event_keys WHERE event_id IN \
         (SELECT id FROM issue_events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
    )
    .and_then(|mut s| s.execute(params![before, limit]))
    .map_err(db("delete old event keys"))?;
    tx.prepare_cached(
        "DELETE FROM event_attachments WHERE event_id IN \
         (SELECT id FROM issue_events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
    )
    .and_then(|mut s| s.execute(params![before, limit]))
    .map_err(db("unlink old attachments"))?;
    let n = tx
        .prepare_cached(
            "DELETE FROM issue_events WHERE id IN \
             (SELECT id FROM issue_events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![before, limit]))
        .map_err(db("delete old events"))?;
    delete_unused_attachments(&tx)?;
    tx.commit().map_err(db("commit deleting old events"))?;
    Ok(n)
}

fn delete_unused_attachments(tx: &Connection) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM attachments WHERE NOT EXISTS \
         (SELECT 1 FROM event_attachments AS l WHERE l.sha256 = attachments.sha256)",
    )
    .and_then(|mut s| s.execute([]))
    .map_err(db("delete unused attachments"))?;
    Ok(())
}

pub(crate) fn put_attachment(conn: &mut Connection, a: &Attachment) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO attachments (sha256, content_type, size, gzip, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sha256) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            a.sha256,
            a.content_type,
            i64::try_from(a.size).unwrap_or(i64::MAX),
            a.gzip,
            faultline_model::now_micros(),
        ])
    })
    .map_err(db("store an attachment"))?;
    Ok(())
}

pub(crate) fn get_attachment(conn: &Connection, sha256: &str) -> Result<Option<Attachment>> {
    conn.prepare_cached("SELECT content_type, size, gzip FROM attachments WHERE sha256 = ?1")
        .and_then(|mut s| {
            s.query_row([sha256], |r| {
                Ok(Attachment {
                    sha256: sha256.to_owned(),
                    content_type: r.get(0)?,
                    size: u64_of(r.get(1)?),
                    gzip: r.get(2)?,
                })
            })
            .optional()
        })
        .map_err(db("read an attachment"))
}

pub(crate) fn issue_ticket(conn: &Connection, issue: i64) -> Result<Option<IssueTicket>> {
    conn.prepare_cached(
        "SELECT tracker, external_id, url, attached, last_note_at FROM issue_tickets WHERE issue_id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([issue], |r| {
            Ok(IssueTicket {
                tracker: r.get(0)?,
                external_id: r.get(1)?,
                url: r.get(2)?,
                attached: r.get::<_, i64>(3)? != 0,
                last_note_at: r.get(4)?,
            })
        })
        .optional()
    })
    .map_err(db("read an issue's ticket"))
}

pub(crate) fn set_issue_ticket(conn: &mut Connection, issue: i64, t: &IssueTicket) -> Result<()> {
    conn.execute(
        "INSERT INTO issue_tickets (issue_id, tracker, external_id, url, attached, last_note_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (issue_id) DO UPDATE SET \
         tracker = excluded.tracker, external_id = excluded.external_id, url = excluded.url, \
         attached = excluded.attached, last_note_at = excluded.last_note_at",
        params![
            issue,
            t.tracker,
            t.external_id,
            t.url,
            i64::from(t.attached),
            t.last_note_at
        ],
    )
    .map_err(db("link an issue to its ticket"))?;
    Ok(())
}

pub(crate) fn set_rules(conn: &mut Connection, project: &str, rules: &str) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("begin storing fingerprint rules"))?;
    let p = crate::write::ensure_project_in(&tx, project, faultline_model::now_micros())?;
    tx.execute(
        "INSERT INTO fingerprint_rules (project_id, rules) VALUES (?1, ?2) \
         ON CONFLICT (project_id) DO UPDATE SET rules = excluded.rules",
        params![p.id, rules],
    )
    .map_err(db("store fingerprint rules"))?;
    tx.commit().map_err(db("commit fingerprint rules"))
}

// ------------------------------------------------------------------- reads

pub(crate) fn get_issue(conn: &Connection, id: i64, now: i64) -> Result<Option<Issue>> {
    conn.prepare_cached(&format!("{ISSUE_SELECT} WHERE i.id = ?2"))
        .and_then(|mut s| s.query_row(params![now, id], issue_from_row).optional())
        .map_err(db("read an issue"))
}

pub(crate) fn list_issues(conn: &Connection, q: &IssueQuery) -> Result<IssuePage> {
    if q.limit == 0 {
        return Err(StoreError::Invalid("limit must be at least 1".into()));
    }
    if q.page == 0 {
        return Err(StoreError::Invalid("pages are numbered from 1".into()));
    }
    let mut params: Vec<Value> = vec![Value::Integer(q.now)];
    // `?1` (the trend's "now") appears in every statement.
    let mut conds: Vec<String> = vec!["?1 = ?1".into()];
    let bind = |v: Value, params: &mut Vec<Value>| {
        params.push(v);
        format!("?{}", params.len())
    };
    if let Some(p) = &q.project {
        let ph = bind(Value::Text(p.clone()), &mut params);
        conds.push(format!("p.name = {ph}"));
    }
    if let Some(s) = &q.service {
        // The service of the issue's first event.
        let ph = bind(Value::Text(s.clone()), &mut params);
        conds.push(format!("s.name = {ph}"));
    }
    if let Some(st) = q.status {
        let ph = bind(Value::Text(st.as_str().into()), &mut params);
        conds.push(format!("i.status = {ph}"));
    }
    if let Some(l) = q.min_level {
        let ph = bind(Value::Integer(i64::from(l.code())), &mut params);
        conds.push(format!("i.level >= {ph}"));
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        let ph = bind(Value::Text(text.to_lowercase()), &mut params);
        conds.push(format!(
            "(instr(lower(i.title), {ph}) > 0 OR instr(lower(coalesce(i.culprit, '')), {ph}) > 0 \
             OR instr(lower(coalesce(i.exception_type, '')), {ph}) > 0)"
        ));
    }
    let filter = format!("WHERE {}", conds.join(" AND "));
    let order = match q.sort {
        IssueSort::LastSeen => "i.last_seen DESC, i.id DESC",
        IssueSort::FirstSeen => "i.first_seen DESC, i.id DESC",
        IssueSort::Count => "i.count DESC, i.last_seen DESC, i.id DESC",
        IssueSort::Trend => "(c24 - cprev) DESC, i.last_seen DESC, i.id DESC",
    };
    let total: i64 = conn
        .prepare(&format!(
            "SELECT count(*) FROM issues AS i JOIN projects AS p ON p.id = i.project_id \
             JOIN services AS s ON s.id = i.service_id {filter}"
        ))
        .and_then(|mut s| s.query_row(params_from_iter(params.iter()), |r| r.get(0)))
        .map_err(db("count issues"))?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let offset = i64::from(q.page - 1).saturating_mul(limit);
    let lp = bind(Value::Integer(limit), &mut params);
    let op = bind(Value::Integer(offset), &mut params);
    let issues = conn
        .prepare(&format!(
            "{ISSUE_SELECT} {filter} ORDER BY {order} LIMIT {lp} OFFSET {op}"
        ))
        .and_then(|mut s| {
            s.query_map(params_from_iter(params.iter()), issue_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("list issues"))?;
    Ok(IssuePage {
        issues,
        total: u64_of(total),
    })
}

pub(crate) fn events(
    conn: &Connection,
    id: i64,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&format!(
        "{EVENT_SELECT} WHERE e.issue_id = ?1 AND e.id < ?2 ORDER BY e.id DESC LIMIT ?3"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![id, before.unwrap_or(i64::MAX), limit],
            event_from_row,
        )?
        .collect()
    })
    .map_err(db("read events"))
}

pub(crate) fn first_event(conn: &Connection, id: i64) -> Result<Option<StoredEvent>> {
    conn.prepare_cached(&format!(
        "{EVENT_SELECT} WHERE e.issue_id = ?1 ORDER BY e.id LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([id], event_from_row).optional())
    .map_err(db("read the first event"))
}

pub(crate) fn histogram(
    conn: &Connection,
    id: i64,
    bucket: Bucket,
    since: i64,
) -> Result<Vec<(i64, u64)>> {
    let size = bucket.micros();
    // Whole hours from `since`'s hour on, summed per bucket.
    let from = since.div_euclid(HOUR) * HOUR;
    conn.prepare_cached(
        "SELECT (hour - ((hour % ?3) + ?3) % ?3) AS b, sum(count) FROM issue_counts \
         WHERE issue_id = ?1 AND hour >= ?2 GROUP BY b ORDER BY b",
    )
    .and_then(|mut s| {
        s.query_map(params![id, from, size], |r| {
            Ok((r.get(0)?, u64_of(r.get(1)?)))
        })?
        .collect()
    })
    .map_err(db("read an issue histogram"))
}

pub(crate) fn history(conn: &Connection, id: i64) -> Result<Vec<StatusChange>> {
    conn.prepare_cached(
        "SELECT at, actor, action, from_status, to_status, detail FROM issue_history \
         WHERE issue_id = ?1 ORDER BY id",
    )
    .and_then(|mut s| {
        s.query_map([id], |r| {
            Ok(StatusChange {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                from: status_from(&r.get::<_, String>(3)?)?,
                to: status_from(&r.get::<_, String>(4)?)?,
                detail: r.get(5)?,
            })
        })?
        .collect()
    })
    .map_err(db("read an issue's history"))
}

pub(crate) fn processed_through(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT coalesce((SELECT value FROM meta WHERE key = 'issues_through'), 0)")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("read the issue watermark"))
}

pub(crate) fn grouper_states(conn: &Connection) -> Result<Vec<(String, Vec<u8>)>> {
    conn.prepare_cached(
        "SELECT p.name, g.state FROM grouper_states AS g JOIN projects AS p ON p.id = g.project_id",
    )
    .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
    .map_err(db("read grouper states"))
}

pub(crate) fn rules(conn: &Connection, project: &str) -> Result<Option<String>> {
    conn.prepare_cached(
        "SELECT r.rules FROM fingerprint_rules AS r JOIN projects AS p ON p.id = r.project_id \
         WHERE p.name = ?1",
    )
    .and_then(|mut s| s.query_row([project], |r| r.get(0)).optional())
    .map_err(db("read fingerprint rules"))
}

pub(crate) fn project_overview(
    conn: &Connection,
    project: &str,
    since: i64,
) -> Result<ProjectOverview> {
    let tx = conn
        .unchecked_transaction()
        .map_err(db("begin reading a project overview"))?;
    let pid = project_id(&tx, project)?.ok_or_else(|| StoreError::NotFound {
        what: "project",
        name: project.to_owned(),
    })?;
    let (unresolved, new_since, regressed): (i64, i64, i64) = tx
        .prepare_cached(
            "SELECT coalesce(sum(status = 'unresolved'), 0), \
             coalesce(sum(first_seen >= ?2), 0), \
             coalesce(sum(status = 'unresolved' AND regressed != 0), 0) \
             FROM issues WHERE project_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![pid, since], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
        })
        .map_err(db("read a project overview"))?;
    Ok(ProjectOverview {
        unresolved: u64_of(unresolved),
        new_since: u64_of(new_since),
        regressed: u64_of(regressed),
    })
}

/// The ids as a JSON array, for `json_each` (one cached statement whatever
/// the number of ids); `Invalid` past [`MAX_IDS_PER_CALL`].
fn id_list(ids: &[i64]) -> Result<String> {
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_IDS_PER_CALL} ids per call (got {})",
            ids.len()
        )));
    }
    let mut json = String::with_capacity(ids.len() * 8 + 2);
    json.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&id.to_string());
    }
    json.push(']');
    Ok(json)
}

pub(crate) const ISSUES_FOR_LOGS: &str = "SELECT DISTINCT log_id, issue_id FROM issue_events \
    WHERE log_id IN (SELECT value FROM json_each(?1)) AND log_id IS NOT NULL \
    ORDER BY log_id, issue_id";

pub(crate) fn issues_for_logs(conn: &Connection, log_ids: &[i64]) -> Result<Vec<(i64, i64)>> {
    let ids = id_list(log_ids)?;
    if log_ids.is_empty() {
        return Ok(Vec::new());
    }
    conn.prepare_cached(ISSUES_FOR_LOGS)
        .and_then(|mut s| {
            s.query_map([ids], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(db("read the issues of log entries"))
}

pub(crate) const ISSUE_COUNTS: &str = "SELECT issue_id, hour, count FROM issue_counts \
    WHERE issue_id IN (SELECT value FROM json_each(?1)) AND hour >= ?2 \
    ORDER BY issue_id, hour";

pub(crate) fn issue_counts(
    conn: &Connection,
    issue_ids: &[i64],
    since: i64,
) -> Result<Vec<(i64, i64, u64)>> {
    let ids = id_list(issue_ids)?;
    if issue_ids.is_empty() {
        return Ok(Vec::new());
    }
    conn.prepare_cached(ISSUE_COUNTS)
        .and_then(|mut s| {
            s.query_map(params![ids, since], |r| {
                Ok((r.get(0)?, r.get(1)?, u64_of(r.get(2)?)))
            })?
            .collect()
        })
        .map_err(db("read issue counts"))
}
