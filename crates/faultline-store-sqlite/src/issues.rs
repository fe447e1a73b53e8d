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
//! Migration 6 indexes `issues` for the lists: by `last_seen`,
//! `first_seen` and `count` within a project, each index also holding the
//! columns the filters read (see [`list_issues`]).
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
use std::collections::{HashMap, HashSet};

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

/// An issue's distinct sets: the hosts and the users its events came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Distinct {
    Hosts,
    Users,
}

/// Adds `value` to an issue's distinct set (`issue_hosts` / `issue_users`)
/// and bumps its counter when it was new.
fn add_distinct(tx: &Connection, set: Distinct, issue: i64, value: &str) -> Result<()> {
    let (insert, count) = match set {
        Distinct::Hosts => (
            "INSERT INTO issue_hosts (issue_id, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            "UPDATE issues SET hosts = hosts + 1 WHERE id = ?1",
        ),
        Distinct::Users => (
            "INSERT INTO issue_users (issue_id, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            "UPDATE issues SET users = users + 1 WHERE id = ?1",
        ),
    };
    let inserted = tx
        .prepare_cached(insert)
        .and_then(|mut s| s.execute(params![issue, value]))
        .map_err(db("record an affected host or user"))?;
    if inserted > 0 {
        tx.prepare_cached(count)
            .and_then(|mut s| s.execute([issue]))
            .map_err(db("count an affected host or user"))?;
    }
    Ok(())
}

/// What one transaction of [`record_events`] has read or will write once
/// per issue rather than once per event: a batch of events under load holds
/// hundreds of events of a few services and issues, and every statement
/// runs while the writer connection is held (log appends wait for it).
#[derive(Default)]
struct EventTx {
    /// (project, service) → (project id, service id).
    services: Vec<(String, String, i64, i64)>,
    /// (project id, fingerprint) → issue, as mapped in this transaction.
    issues: HashMap<(i64, String), i64>,
    /// Issue → its status columns, as written in this transaction.
    states: HashMap<i64, IssueState>,
    /// Issue → what its events add to its row, in order of first event.
    deltas: Vec<(i64, IssueDelta)>,
    delta_of: HashMap<i64, usize>,
    /// (issue, hour) → events to add to `issue_counts`.
    hours: Vec<((i64, i64), i64)>,
    hour_of: HashMap<(i64, i64), usize>,
    /// (set, issue, value) added in this transaction: an issue's events
    /// mostly come from the same few hosts, and each would otherwise try
    /// its insert again.
    distinct: HashSet<(Distinct, i64, String)>,
}

/// The sums of an issue's events in one transaction.
struct IssueDelta {
    count: i64,
    first_seen: i64,
    last_seen: i64,
    level: i64,
    /// The first exception type of its events.
    exception_type: Option<String>,
}

impl EventTx {
    /// (project id, service id), the service (and project) created when
    /// missing.
    fn service(&mut self, tx: &Transaction<'_>, e: &NewEvent) -> Result<(i64, i64)> {
        if let Some(&(_, _, p, s)) = self
            .services
            .iter()
            .find(|(p, s, _, _)| *s == e.service && *p == e.project)
        {
            return Ok((p, s));
        }
        let service = ensure_service_in(tx, &e.project, &e.service, e.received_at)?;
        let project = project_id(tx, &e.project)?.ok_or_else(|| StoreError::NotFound {
            what: "project",
            name: e.project.clone(),
        })?;
        self.services
            .push((e.project.clone(), e.service.clone(), project, service.id));
        Ok((project, service.id))
    }

    fn issue_of(
        &mut self,
        tx: &Transaction<'_>,
        project: i64,
        fingerprint: &str,
    ) -> Result<Option<i64>> {
        if let Some(&id) = self.issues.get(&(project, fingerprint.to_owned())) {
            return Ok(Some(id));
        }
        let found = issue_of(tx, project, fingerprint)?;
        if let Some(id) = found {
            self.issues.insert((project, fingerprint.to_owned()), id);
        }
        Ok(found)
    }

    fn state(&mut self, tx: &Transaction<'_>, issue: i64) -> Result<IssueState> {
        if let Some(s) = self.states.get(&issue) {
            return Ok(*s);
        }
        let s = load_state(tx, issue)?.ok_or_else(|| not_found(issue))?;
        self.states.insert(issue, s);
        Ok(s)
    }

    fn store_state(&mut self, tx: &Transaction<'_>, issue: i64, s: &IssueState) -> Result<()> {
        store_state(tx, issue, s)?;
        self.states.insert(issue, *s);
        Ok(())
    }

    fn count(&mut self, issue: i64, e: &NewEvent, count: i64, level: i64) {
        match self.delta_of.get(&issue) {
            Some(&i) => {
                let d = &mut self.deltas[i].1;
                d.count = d.count.saturating_add(count);
                d.first_seen = d.first_seen.min(e.timestamp);
                d.last_seen = d.last_seen.max(e.timestamp);
                d.level = d.level.max(level);
                if d.exception_type.is_none() {
                    d.exception_type.clone_from(&e.details.exception_type);
                }
            }
            None => {
                self.delta_of.insert(issue, self.deltas.len());
                self.deltas.push((
                    issue,
                    IssueDelta {
                        count,
                        first_seen: e.timestamp,
                        last_seen: e.timestamp,
                        level,
                        exception_type: e.details.exception_type.clone(),
                    },
                ));
            }
        }
        let key = (issue, e.timestamp.div_euclid(HOUR) * HOUR);
        match self.hour_of.get(&key) {
            Some(&i) => self.hours[i].1 = self.hours[i].1.saturating_add(count),
            None => {
                self.hour_of.insert(key, self.hours.len());
                self.hours.push((key, count));
            }
        }
    }

    /// Writes the issues' counters and hourly counts summed so far.
    fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        // An UPDATE naming a column rewrites the entries of every index
        // holding it (the list indexes of migration 6), so what rarely
        // changes (an older first event, a higher level, the first
        // exception type) has statements of its own that update nothing
        // most of the time.
        for (issue, d) in self.deltas.drain(..) {
            tx.prepare_cached(
                "UPDATE issues SET count = count + ?2, last_seen = max(last_seen, ?3) WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![issue, d.count, d.last_seen]))
            .map_err(db("count an event"))?;
            tx.prepare_cached(
                "UPDATE issues SET first_seen = ?2 WHERE id = ?1 AND first_seen > ?2",
            )
            .and_then(|mut s| s.execute(params![issue, d.first_seen]))
            .map_err(db("count an event"))?;
            tx.prepare_cached("UPDATE issues SET level = ?2 WHERE id = ?1 AND level < ?2")
                .and_then(|mut s| s.execute(params![issue, d.level]))
                .map_err(db("count an event"))?;
            if let Some(t) = &d.exception_type {
                tx.prepare_cached(
                    "UPDATE issues SET exception_type = ?2 WHERE id = ?1 AND exception_type IS NULL",
                )
                .and_then(|mut s| s.execute(params![issue, t]))
                .map_err(db("count an event"))?;
            }
        }
        self.delta_of.clear();
        for ((issue, hour), count) in self.hours.drain(..) {
            tx.prepare_cached(
                "INSERT INTO issue_counts (issue_id, hour, count) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (issue_id, hour) DO UPDATE SET count = count + excluded.count",
            )
            .and_then(|mut s| s.execute(params![issue, hour, count]))
            .map_err(db("count an event per hour"))?;
        }
        self.hour_of.clear();
        Ok(())
    }
}

fn record_one(tx: &Transaction<'_>, cache: &mut EventTx, e: &NewEvent) -> Result<EventOutcome> {
    let (project, service_id) = cache.service(tx, e)?;
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
    let (issue, new_issue) = match cache.issue_of(tx, project, &e.fingerprint)? {
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
                    service_id,
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
            cache.issues.insert((project, e.fingerprint.clone()), id);
            (id, true)
        }
    };
    let mut regressed = false;
    let mut state = cache.state(tx, issue)?;
    let before = state.status;
    if let Some(t) = state.on_event(e.timestamp) {
        regressed = t == Transition::Regressed;
        cache.store_state(tx, issue, &state)?;
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
        cache.store_state(tx, issue, &state)?;
    }
    // The issue's counters and hourly counts are written once per issue,
    // after the batch's events.
    cache.count(issue, e, count, level);
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
            service_id,
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
    for (set, value) in [(Distinct::Hosts, &e.host), (Distinct::Users, &e.user)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty())
            && cache.distinct.insert((set, issue, value.to_owned()))
        {
            add_distinct(tx, set, issue, value)?;
        }
    }
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
    // Derived data: commit without waiting for the disk (the next sync of
    // the WAL, by the server's sync thread after a log append or by any
    // synchronous=FULL commit, makes it durable with the rest). A power
    // loss may drop it, together with the watermark committed with it: the
    // processor then replays those entries.
    let mode = crate::schema::relax_synchronous(conn)?;
    let result = record_events_in(conn, batch, then);
    crate::schema::restore_synchronous(conn, mode);
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
    let mut cache = EventTx::default();
    for e in &batch.events {
        out.push(record_one(&tx, &mut cache, e)?);
    }
    cache.flush(&tx)?;
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

/// Where the trend's window starts: events in the 48 hours before `now`
/// make an issue's trend (`c24 - cprev` in [`ISSUE_SELECT`]).
const TREND_WINDOW: i64 = 48 * HOUR;

/// Longest search text matched with `LIKE` (longer ones use `instr`, SQLite
/// refuses `LIKE` patterns past 50,000 bytes).
const MAX_LIKE_TEXT: usize = 1_000;

/// An issue as the id pass sees it: what the sorts need.
#[derive(Debug, Clone, Copy)]
struct Key {
    id: i64,
    last_seen: i64,
    first_seen: i64,
    count: i64,
    /// `c24 - cprev` (only where the sort is by trend).
    trend: i64,
}

/// The order of [`IssueSort`] on [`Key`]s: descending, ties broken by
/// the later `last_seen`, then the higher id, as [`list_issues`]'s SQL does.
fn cmp_keys(sort: IssueSort, a: &Key, b: &Key) -> std::cmp::Ordering {
    let by = |k: fn(&Key) -> i64| k(b).cmp(&k(a));
    match sort {
        IssueSort::LastSeen => by(|k| k.last_seen).then(by(|k| k.id)),
        IssueSort::FirstSeen => by(|k| k.first_seen).then(by(|k| k.id)),
        IssueSort::Count => by(|k| k.count).then(by(|k| k.last_seen)).then(by(|k| k.id)),
        IssueSort::Trend => by(|k| k.trend).then(by(|k| k.last_seen)).then(by(|k| k.id)),
    }
}

/// Rows of `issues AS i` holding a NUL in a searched column (the partial
/// index `issues_nul` has exactly these).
const HAS_NUL: &str = "(instr(i.title, char(0)) > 0 OR instr(i.culprit, char(0)) > 0 \
    OR instr(i.exception_type, char(0)) > 0)";

/// The filters of an issue query as SQL on `issues AS i` (no joins).
struct Filter {
    /// Project, service, status, level.
    base: String,
    params: Vec<Value>,
    /// The search text, if any: `(like, exact)` conditions (see
    /// [`issue_filter`]), each also naming every parameter (SQLite counts
    /// a statement's parameters up to the highest one named).
    text: Option<(Option<String>, String)>,
}

/// The [`Filter`] of a query; `None` when no issue can match (unknown
/// project).
fn issue_filter(conn: &Connection, q: &IssueQuery) -> Result<Option<Filter>> {
    let mut params: Vec<Value> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let bind = |v: Value, params: &mut Vec<Value>| {
        params.push(v);
        format!("?{}", params.len())
    };
    if let Some(p) = &q.project {
        let Some(id) = project_id(conn, p)? else {
            return Ok(None);
        };
        let ph = bind(Value::Integer(id), &mut params);
        conds.push(format!("i.project_id = {ph}"));
    }
    if let Some(s) = &q.service {
        // The service of the issue's first event.
        let ph = bind(Value::Text(s.clone()), &mut params);
        conds.push(format!(
            "i.service_id IN (SELECT id FROM services WHERE name = {ph})"
        ));
    }
    if let Some(st) = q.status {
        let ph = bind(Value::Text(st.as_str().into()), &mut params);
        conds.push(format!("i.status = {ph}"));
    }
    if let Some(l) = q.min_level {
        let ph = bind(Value::Integer(i64::from(l.code())), &mut params);
        conds.push(format!("i.level >= {ph}"));
    }
    if conds.is_empty() {
        conds.push("1".into());
    }
    let mut text_conds = None;
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        // A case-insensitive (ASCII) substring of the title, culprit or
        // exception type: `instr(lower(column), text) > 0`, what the
        // contract says. `LIKE '%text%'` means the same and takes half the
        // time (no lowered copies), except that it stops at a NUL in the
        // column: rows with a NUL (the `issues_nul` index) are checked
        // with `instr` apart.
        let text = text.to_lowercase();
        let columns = ["i.title", "i.culprit", "i.exception_type"];
        let exact_ph = bind(Value::Text(text.clone()), &mut params);
        let like = (text.len() <= MAX_LIKE_TEXT && !text.contains('\0')).then(|| {
            let mut pattern = String::with_capacity(text.len() + 2);
            pattern.push('%');
            for c in text.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            let ph = bind(Value::Text(pattern), &mut params);
            let any: Vec<String> = columns
                .iter()
                .map(|c| format!("{c} LIKE {ph} ESCAPE '\\'"))
                .collect();
            (
                ph,
                format!("({}) AND {exact_ph} IS NOT NULL", any.join(" OR ")),
            )
        });
        let any: Vec<String> = columns
            .iter()
            .map(|c| format!("instr(lower(coalesce({c}, '')), {exact_ph}) > 0"))
            .collect();
        let mut exact = format!("({})", any.join(" OR "));
        if let Some((ph, _)) = &like {
            exact.push_str(&format!(" AND {ph} IS NOT NULL"));
        }
        text_conds = Some((like.map(|(_, cond)| cond), exact));
    }
    Ok(Some(Filter {
        base: conds.join(" AND "),
        params,
        text: text_conds,
    }))
}

/// Runs an id-pass statement (`SELECT i.id, i.last_seen, i.first_seen,
/// i.count …`, or fewer columns) into keys.
fn keys(conn: &Connection, sql: &str, params: &[Value]) -> Result<Vec<Key>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| {
            let n = s.column_count();
            s.query_map(params_from_iter(params.iter()), |r| {
                Ok(Key {
                    id: r.get(0)?,
                    last_seen: if n > 1 { r.get(1)? } else { 0 },
                    first_seen: if n > 2 { r.get(2)? } else { 0 },
                    count: if n > 3 { r.get(3)? } else { 0 },
                    trend: 0,
                })
            })?
            .collect()
        })
        .map_err(db("list issue ids"))
}

/// Sets the trend of the given keys (those seen in the trend window; the
/// others have none): the counts of the window's hours, read from the
/// `issue_counts_hour` index (one range, not a lookup per issue).
fn add_trends(conn: &Connection, now: i64, keys: &mut [Key]) -> Result<()> {
    let recent: std::collections::HashMap<i64, usize> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.last_seen >= now - TREND_WINDOW)
        .map(|(i, k)| (k.id, i))
        .collect();
    if recent.is_empty() {
        return Ok(());
    }
    let day_ago = now - TREND_WINDOW / 2;
    let mut st = conn
        .prepare_cached(
            "SELECT issue_id, hour, count FROM issue_counts INDEXED BY issue_counts_hour \
             WHERE hour >= ?1",
        )
        .map_err(db("read issue trends"))?;
    let mut rows = st
        .query([now - TREND_WINDOW])
        .map_err(db("read issue trends"))?;
    while let Some(r) = rows.next().map_err(db("read issue trends"))? {
        let id: i64 = r.get(0).map_err(db("read issue trends"))?;
        if let Some(&k) = recent.get(&id) {
            let hour: i64 = r.get(1).map_err(db("read issue trends"))?;
            let count: i64 = r.get(2).map_err(db("read issue trends"))?;
            keys[k].trend += if hour >= day_ago { count } else { -count };
        }
    }
    Ok(())
}

/// Lists issues in two passes: the ids of the page, read from the indexes
/// of migration 6 (no table rows, no per-issue subqueries), then the full
/// rows of those ids only ([`ISSUE_SELECT`]), all in one read transaction.
/// The first version ran `ISSUE_SELECT` with the filters, the sort and
/// `LIMIT … OFFSET` directly: every sort but `last_seen` computed the two
/// trend subqueries of every matching issue to sort them, the count read
/// every issue row, and with 100,000 issues a page took 0.3 to 1.5 s.
///
/// - `last_seen`, `first_seen`, `count`: the index of the sort gives the
///   order, `LIMIT … OFFSET` skips index entries; the total is a count over
///   an index (`issues_last_seen` covers every filter but the text).
/// - `trend`: an issue's trend counts its events of the last 48 hours, and
///   `last_seen` is the newest event's time, so every issue with a non-zero
///   trend has `last_seen` in the last 48 hours (`issue_counts.hour` is
///   the start of the event's hour). Those (an index range) get their
///   trend from `issue_counts` and are sorted here; the rest all have trend
///   0 and come, by `last_seen`, after the recent ones with trend 0 and
///   before those with a negative trend: a `LIMIT … OFFSET` on the index.
/// - With a search text the text must be read anyway: one pass over the
///   table finds the matches, sorted here.
pub(crate) fn list_issues(conn: &Connection, q: &IssueQuery) -> Result<IssuePage> {
    if q.limit == 0 {
        return Err(StoreError::Invalid("limit must be at least 1".into()));
    }
    if q.page == 0 {
        return Err(StoreError::Invalid("pages are numbered from 1".into()));
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(db("begin listing issues"))?;
    let Some(Filter {
        base: filter,
        params,
        text,
    }) = issue_filter(&tx, q)?
    else {
        return Ok(IssuePage {
            issues: Vec::new(),
            total: 0,
        });
    };
    let limit = q.limit;
    let offset =
        usize::try_from(u64::from(q.page - 1).saturating_mul(limit as u64)).unwrap_or(usize::MAX);
    let sql_window = |params: &[Value]| {
        let mut p = params.to_vec();
        let lp = p.len() + 1;
        p.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        p.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        (format!("LIMIT ?{lp} OFFSET ?{}", lp + 1), p)
    };
    let count = |tx: &Connection| -> Result<usize> {
        tx.prepare_cached(&format!("SELECT count(*) FROM issues AS i WHERE {filter}"))
            .and_then(|mut s| s.query_row(params_from_iter(params.iter()), |r| r.get::<_, i64>(0)))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(db("count issues"))
    };
    let (ids, total): (Vec<i64>, usize) = if let Some((like, exact)) = &text {
        // NOT INDEXED: one pass over the table beats one random read of a
        // row per issue of the project.
        const KEYS: &str = "SELECT i.id, i.last_seen, i.first_seen, i.count FROM issues AS i";
        let mut all = match like {
            Some(like) => {
                let mut all = keys(
                    &tx,
                    &format!("{KEYS} NOT INDEXED WHERE {filter} AND {like}"),
                    &params,
                )?;
                let with_nul = keys(
                    &tx,
                    &format!(
                        "{KEYS} INDEXED BY issues_nul WHERE {HAS_NUL} AND {filter} AND {exact}"
                    ),
                    &params,
                )?;
                for k in with_nul {
                    if !all.iter().any(|a| a.id == k.id) {
                        all.push(k);
                    }
                }
                all
            }
            None => keys(
                &tx,
                &format!("{KEYS} NOT INDEXED WHERE {filter} AND {exact}"),
                &params,
            )?,
        };
        if q.sort == IssueSort::Trend {
            add_trends(&tx, q.now, &mut all)?;
        }
        all.sort_unstable_by(|a, b| cmp_keys(q.sort, a, b));
        let ids = all.iter().skip(offset).take(limit).map(|k| k.id).collect();
        (ids, all.len())
    } else if q.sort == IssueSort::Trend {
        let total = count(&tx)?;
        let mut p = params.clone();
        p.push(Value::Integer(q.now - TREND_WINDOW));
        let since = p.len();
        let mut recent = keys(
            &tx,
            &format!(
                "SELECT i.id, i.last_seen FROM issues AS i \
                 WHERE {filter} AND i.last_seen >= ?{since}"
            ),
            &p,
        )?;
        add_trends(&tx, q.now, &mut recent)?;
        recent.sort_unstable_by(|a, b| cmp_keys(IssueSort::Trend, a, b));
        // Positive trends, then trend 0 (the recent ones, then the older
        // ones by last_seen), then negative trends.
        let first_neg = recent.partition_point(|k| k.trend >= 0);
        let (head, neg) = recent.split_at(first_neg);
        let older = total.saturating_sub(recent.len());
        let mut ids: Vec<i64> = head.iter().skip(offset).take(limit).map(|k| k.id).collect();
        if ids.len() < limit && offset + ids.len() < head.len() + older {
            let from = offset.saturating_sub(head.len());
            let want = limit - ids.len();
            let mut p = params.clone();
            p.push(Value::Integer(q.now - TREND_WINDOW));
            p.push(Value::Integer(i64::try_from(want).unwrap_or(i64::MAX)));
            p.push(Value::Integer(i64::try_from(from).unwrap_or(i64::MAX)));
            let n = p.len();
            ids.extend(
                keys(
                    &tx,
                    &format!(
                        "SELECT i.id FROM issues AS i WHERE {filter} AND i.last_seen < ?{} \
                         ORDER BY i.last_seen DESC, i.id DESC LIMIT ?{} OFFSET ?{n}",
                        n - 2,
                        n - 1
                    ),
                    &p,
                )?
                .iter()
                .map(|k| k.id),
            );
        }
        if ids.len() < limit {
            let from = offset.saturating_sub(head.len() + older);
            ids.extend(neg.iter().skip(from).take(limit - ids.len()).map(|k| k.id));
        }
        (ids, total)
    } else {
        let order = match q.sort {
            IssueSort::FirstSeen => "i.first_seen DESC, i.id DESC",
            IssueSort::Count => "i.count DESC, i.last_seen DESC, i.id DESC",
            _ => "i.last_seen DESC, i.id DESC",
        };
        let (window, p) = sql_window(&params);
        let ids = keys(
            &tx,
            &format!("SELECT i.id FROM issues AS i WHERE {filter} ORDER BY {order} {window}"),
            &p,
        )?
        .iter()
        .map(|k| k.id)
        .collect();
        (ids, count(&tx)?)
    };
    let issues = issues_by_id(&tx, &ids, q.now)?;
    Ok(IssuePage {
        issues,
        total: total as u64,
    })
}

/// The issues of `ids`, in that order ([`ISSUE_SELECT`], trend counts as of
/// `now`); ids of issues that do not exist are left out.
fn issues_by_id(conn: &Connection, ids: &[i64], now: i64) -> Result<Vec<Issue>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = json_ids(ids.iter().copied());
    let mut found: std::collections::HashMap<i64, Issue> = conn
        .prepare_cached(&format!(
            "{ISSUE_SELECT} WHERE i.id IN (SELECT value FROM json_each(?2))"
        ))
        .and_then(|mut s| {
            s.query_map(params![now, list], issue_from_row)?
                .map(|r| r.map(|i| (i.id, i)))
                .collect()
        })
        .map_err(db("list issues"))?;
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
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
    // Three counts over indexes (`issues_last_seen`, `issues_first_seen`,
    // the partial `issues_regressed`) rather than one pass over the rows.
    let count = |sql: &str| -> Result<i64> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.query_row(params![pid, since], |r| r.get(0)))
            .map_err(db("read a project overview"))
    };
    let unresolved = count(
        "SELECT count(*) FROM issues WHERE project_id = ?1 AND status = 'unresolved' AND ?2 = ?2",
    )?;
    let new_since =
        count("SELECT count(*) FROM issues WHERE project_id = ?1 AND first_seen >= ?2")?;
    let regressed = count(
        "SELECT count(*) FROM issues \
         WHERE project_id = ?1 AND status = 'unresolved' AND regressed != 0 AND ?2 = ?2",
    )?;
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
    Ok(json_ids(ids.iter().copied()))
}

/// Ids as a JSON array.
fn json_ids(ids: impl ExactSizeIterator<Item = i64>) -> String {
    use std::fmt::Write as _;
    let mut json = String::with_capacity(ids.len() * 8 + 2);
    json.push('[');
    for (i, id) in ids.enumerate() {
        if i > 0 {
            json.push(',');
        }
        let _ = write!(json, "{id}");
    }
    json.push(']');
    json
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteOptions, SqliteStore};
    use faultline_store::IssueStore;

    const T0: i64 = 1_750_000_000_000_000;
    const DAY: i64 = 24 * HOUR;

    /// The first version of [`list_issues`]: one statement with the
    /// filters, the sort and `LIMIT … OFFSET`, a second one for the total.
    /// The two-pass version must answer exactly what it answered.
    fn list_issues_reference(conn: &Connection, q: &IssueQuery) -> Result<IssuePage> {
        let mut params: Vec<Value> = vec![Value::Integer(q.now)];
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

    /// SplitMix64, for reproducible data.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        }
    }

    const TITLES: &[&str] = &[
        "TimeoutError: upstream did not answer",
        "KeyError: 'Wombat'",
        "100% of disk used_on /var",
        "École fermée: ÉCOLE",
        "null byte \0 then wombat",
        "back\\slash in path",
        "ValueError: bad literal",
    ];

    fn event(rng: &mut Rng, project: &str, fingerprint: u64, now: i64) -> NewEvent {
        // Timestamps on and around the trend's hour boundaries too.
        let ts = match rng.below(4) {
            0 => now - rng.below(60 * DAY as u64) as i64,
            1 => now - rng.below(3 * DAY as u64) as i64,
            2 => {
                (now - (1 + rng.below(3) as i64) * DAY).div_euclid(HOUR) * HOUR
                    + [-1, 0, 1][rng.below(3) as usize]
            }
            _ => now - 2 * DAY + rng.below(2 * HOUR as u64) as i64 - HOUR,
        };
        NewEvent {
            project: project.into(),
            service: ["api", "web", "cron"][rng.below(3) as usize].into(),
            fingerprint: format!("fp{fingerprint}"),
            title: TITLES[(fingerprint % TITLES.len() as u64) as usize].into(),
            culprit: (!fingerprint.is_multiple_of(3))
                .then(|| format!("app/mod{}.py in Run", fingerprint % 5)),
            level: Level::from_code(3 + rng.below(4) as u8).expect("a level"),
            timestamp: ts,
            received_at: ts,
            log_id: None,
            message: "m".into(),
            host: None,
            user: None,
            tags: Vec::new(),
            attributes: Default::default(),
            details: EventDetails {
                exception_type: (fingerprint % 4 == 1).then(|| "WombatError".to_string()),
                count: 1 + rng.below(3),
                ..Default::default()
            },
            key: None,
        }
    }

    /// Random issues in two projects (statuses, regressions, merges, a
    /// deletion, counts around the trend's boundaries), then every
    /// combination of filters, sorts and pages, both ways.
    #[test]
    fn two_pass_list_answers_what_the_single_statement_did() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("issues.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        let now = T0 + 1234;
        let mut rng = Rng(7);
        for round in 0..4 {
            let events: Vec<NewEvent> = (0..400)
                .map(|_| {
                    let project = if rng.below(5) == 0 { "other" } else { "shop" };
                    let fp = rng.below(150);
                    event(&mut rng, project, fp, now)
                })
                .collect();
            store
                .record_events(&EventBatch {
                    events,
                    ..Default::default()
                })
                .expect("record");
            let page = store
                .list_issues(&IssueQuery {
                    limit: 500,
                    page: 1,
                    now,
                    ..Default::default()
                })
                .expect("list");
            for i in page.issues.iter().filter(|i| i.id % 4 == round) {
                let status = [IssueStatus::Resolved, IssueStatus::Ignored][(i.id % 2) as usize];
                store
                    .set_issue_status(
                        i.id,
                        &StatusUpdate {
                            status,
                            ignore: None,
                            actor: "test".into(),
                            at: now,
                        },
                    )
                    .expect("status");
            }
            if round == 1 {
                let shop: Vec<&Issue> =
                    page.issues.iter().filter(|i| i.project == "shop").collect();
                store
                    .merge_issues(shop[0].id, shop[1].id, "test", now)
                    .expect("merge");
                store.delete_issue(shop[2].id).expect("delete");
            }
        }
        let conn = Connection::open(&path).expect("raw open");
        let mut checked = 0;
        for project in [Some("shop"), Some("other"), Some("nowhere"), None] {
            for service in [None, Some("api"), Some("nowhere")] {
                for status in [
                    None,
                    Some(IssueStatus::Unresolved),
                    Some(IssueStatus::Resolved),
                ] {
                    for min_level in [None, Some(Level::Error)] {
                        for text in [
                            None,
                            Some("wombat"),
                            Some("ÉCOLE"),
                            Some("100%"),
                            Some("d_on"),
                            Some("\\"),
                            Some("zzz"),
                        ] {
                            for sort in [
                                IssueSort::LastSeen,
                                IssueSort::FirstSeen,
                                IssueSort::Count,
                                IssueSort::Trend,
                            ] {
                                for (limit, page) in
                                    [(50, 1), (7, 1), (7, 3), (10, 9), (500, 1), (3, 1000)]
                                {
                                    let q = IssueQuery {
                                        project: project.map(String::from),
                                        service: service.map(String::from),
                                        status,
                                        min_level,
                                        q: text.map(String::from),
                                        sort,
                                        limit,
                                        page,
                                        now,
                                    };
                                    let want = list_issues_reference(&conn, &q).expect("reference");
                                    let got = list_issues(&conn, &q).expect("two passes");
                                    assert_eq!(got, want, "{q:?}");
                                    checked += usize::from(!want.issues.is_empty());
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} non-empty pages compared");
    }

    /// The id pass of the default issue page and of every sort walks an
    /// index in order and reads no table row.
    #[test]
    fn id_pass_walks_indexes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("plan.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        let plan = |sql: &str| -> String {
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare")
                .query_map([], |r| r.get::<_, String>(3))
                .expect("explain")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("plan")
                .join("\n")
        };
        let filter = "i.project_id = 1 AND i.status = 'unresolved' \
             AND i.service_id IN (SELECT id FROM services WHERE name = 'api') AND i.level >= 5";
        for (order, index) in [
            ("i.last_seen DESC, i.id DESC", "issues_status_last_seen"),
            ("i.first_seen DESC, i.id DESC", "issues_first_seen"),
            ("i.count DESC, i.last_seen DESC, i.id DESC", "issues_count"),
        ] {
            let p = plan(&format!(
                "SELECT i.id FROM issues AS i WHERE i.project_id = 1 AND i.status = 'unresolved' \
                 ORDER BY {order} LIMIT 50 OFFSET 100"
            ));
            assert!(p.contains(&format!("COVERING INDEX {index}")), "{p}");
            assert!(!p.contains("USE TEMP B-TREE FOR ORDER BY"), "{p}");
        }
        let p = plan(&format!("SELECT count(*) FROM issues AS i WHERE {filter}"));
        assert!(
            p.contains("COVERING INDEX issues_status_last_seen (project_id=? AND status=?)"),
            "{p}"
        );
        let p = plan(&format!(
            "SELECT i.id, i.last_seen FROM issues AS i WHERE {filter} AND i.last_seen >= 5"
        ));
        assert!(
            p.contains(
                "COVERING INDEX issues_status_last_seen (project_id=? AND status=? AND last_seen>?)"
            ),
            "{p}"
        );
        let any_status = "i.project_id = 1 AND i.level >= 5";
        let p = plan(&format!(
            "SELECT i.id, i.last_seen FROM issues AS i WHERE {any_status} AND i.last_seen >= 5"
        ));
        assert!(
            p.contains("COVERING INDEX issues_last_seen (project_id=? AND last_seen>?)"),
            "{p}"
        );
        let p = plan(&format!(
            "SELECT i.id FROM issues AS i INDEXED BY issues_nul WHERE {HAS_NUL} AND {any_status}"
        ));
        assert!(p.contains("INDEX issues_nul (project_id=?)"), "{p}");
        let p = plan(
            "SELECT issue_id, hour, count FROM issue_counts INDEXED BY issue_counts_hour WHERE hour >= 5",
        );
        assert!(
            p.contains("COVERING INDEX issue_counts_hour (hour>?)"),
            "{p}"
        );
        let p = plan(
            "SELECT count(*) FROM issues WHERE project_id = 1 AND status = 'unresolved' AND regressed != 0",
        );
        assert!(p.contains("issues_regressed"), "{p}");
    }
}
