//! The write connection: appends, retention, tenancy and token changes.

use crate::db;
use crate::index::{self, OpenBlock};
use crate::read::token_by_id;
use faultline_model::{Level, NewEntry, Project, Service, TokenInfo, TokenKind, now_micros};
use faultline_store::{Result, StoreError};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use std::collections::HashMap;

const INSERT_LOG: &str = "INSERT INTO logs \
    (id, ts, received_at, service_id, level, message, tags, host, attributes, trace_id, span_id) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const LAST_LOG_ID: &str = "SELECT max(\
    (SELECT value FROM meta WHERE key = 'last_log_id'), \
    coalesce((SELECT max(id) FROM logs), 0))";
const SET_LAST_LOG_ID: &str = "UPDATE meta SET value = ?1 WHERE key = 'last_log_id'";
const COUNT_APPENDED: &str = "UPDATE services SET \
    count = count + ?2, error_count = error_count + ?3, \
    last_seen = max(coalesce(last_seen, ?4), ?4) WHERE id = ?1";

/// The separator around every stored tag (see the crate docs).
pub(crate) const TAG_SEP: char = '\x1f';

/// State owned by the single write connection.
pub(crate) struct Writer {
    conn: Connection,
    /// (project, service) → service id. Services are never deleted or
    /// renamed, so an id once seen stays right, even if another process
    /// created the service.
    services: ServiceIds,
    /// Reused encoding buffers, so appending allocates nothing per entry.
    tag_buf: String,
    attr_buf: Vec<u8>,
    /// The open block of the full-text index (see `index.rs`).
    index: OpenBlock,
    /// Retention watermarks, by level code - 1: every entry of that level
    /// with a timestamp before the watermark is known to be deleted.
    expired: [Option<i64>; 6],
    /// `PRAGMA data_version` when the watermarks were last checked; it
    /// changes when another connection commits, which may have appended old
    /// entries we did not see.
    data_version: i64,
}

#[derive(Default)]
struct ServiceIds(HashMap<String, HashMap<String, i64>>);

impl ServiceIds {
    fn get(&self, project: &str, service: &str) -> Option<i64> {
        self.0.get(project)?.get(service).copied()
    }

    fn insert(&mut self, project: &str, service: &str, id: i64) {
        self.0
            .entry(project.to_owned())
            .or_default()
            .insert(service.to_owned(), id);
    }
}

/// What one transaction did to one service's counters.
struct Counter {
    service_id: i64,
    count: i64,
    errors: i64,
    last_seen: i64,
}

impl Writer {
    pub(crate) fn new(conn: Connection, block_rows: usize) -> Result<Writer> {
        let data_version = data_version(&conn)?;
        Ok(Writer {
            conn,
            services: ServiceIds::default(),
            tag_buf: String::new(),
            attr_buf: Vec::new(),
            index: OpenBlock::new(block_rows),
            expired: [None; 6],
            data_version,
        })
    }

    pub(crate) fn release_memory(&mut self) -> Result<()> {
        self.index.release_memory();
        self.conn
            .release_memory()
            .map_err(db("release writer memory"))
    }

    /// The write connection, for writes kept in other modules (issues).
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn begin(&mut self, what: &'static str) -> Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(what))
    }

    pub(crate) fn ensure_project(&mut self, name: &str) -> Result<Project> {
        let tx = self.begin("begin creating a project")?;
        let project = ensure_project_in(&tx, name, now_micros())?;
        tx.commit().map_err(db("commit a new project"))?;
        Ok(project)
    }

    pub(crate) fn ensure_service(&mut self, project: &str, name: &str) -> Result<Service> {
        let tx = self.begin("begin creating a service")?;
        let service = ensure_service_in(&tx, project, name, now_micros())?;
        tx.commit().map_err(db("commit a new service"))?;
        self.services.insert(project, name, service.id);
        Ok(service)
    }

    pub(crate) fn append(&mut self, batches: &[&[NewEntry]]) -> Result<Vec<i64>> {
        let result = self.append_in_transaction(batches);
        if result.is_err() {
            // Services created by the failed transaction were rolled back
            // with it; forget every id rather than track which. So were
            // the index blocks it finished.
            self.services.0.clear();
            self.index.invalidate();
        }
        result
    }

    /// The hot path. Per entry: one row in `logs` (plus its two index
    /// entries) through a cached statement, and its tokens hashed into the
    /// open block of the full-text index, in memory. Per transaction: one id
    /// read, one check that the open block is in step with the database,
    /// one id write, one counter update per service, one commit; and, every
    /// `BLOCK_ROWS` entries, one finished block stored.
    fn append_in_transaction(&mut self, batches: &[&[NewEntry]]) -> Result<Vec<i64>> {
        let Writer {
            conn,
            services,
            tag_buf,
            attr_buf,
            index,
            expired,
            ..
        } = self;
        let total = batches.iter().map(|b| b.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut counters: Vec<Counter> = Vec::new();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("begin an append"))?;
        {
            let mut insert = tx
                .prepare_cached(INSERT_LOG)
                .map_err(db("prepare the log insert"))?;
            let mut id: i64 = tx
                .prepare_cached(LAST_LOG_ID)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(db("read the last log id"))?;
            // Another handle on the file may have appended since our last
            // commit (or our last transaction failed): then the open block
            // is rebuilt from the rows first.
            index.sync(&tx, id)?;
            // Batches usually come from one service: remember the last one.
            let mut last: Option<(&str, &str, i64)> = None;
            let mut counter = 0;
            for e in batches.iter().flat_map(|b| b.iter()) {
                let service_id = match last {
                    Some((p, s, sid)) if e.service == s && e.project == p => sid,
                    _ => {
                        let sid = match services.get(&e.project, &e.service) {
                            Some(sid) => sid,
                            None => {
                                let s =
                                    ensure_service_in(&tx, &e.project, &e.service, now_micros())?;
                                services.insert(&e.project, &e.service, s.id);
                                s.id
                            }
                        };
                        last = Some((&e.project, &e.service, sid));
                        sid
                    }
                };
                id += 1;
                let tags = encode_tags(tag_buf, &e.tags)?;
                let attrs = if e.attributes.is_empty() {
                    None
                } else {
                    attr_buf.clear();
                    serde_json::to_writer(&mut *attr_buf, &e.attributes)
                        .map_err(|err| StoreError::backend("encode attributes", err))?;
                    Some(ToSqlOutput::Borrowed(ValueRef::Text(attr_buf)))
                };
                insert
                    .execute(params![
                        id,
                        e.timestamp,
                        e.received_at,
                        service_id,
                        i64::from(e.level.code()),
                        e.message,
                        tags,
                        e.host,
                        attrs,
                        e.trace_id,
                        e.span_id,
                    ])
                    .map_err(db("insert a log entry"))?;
                index.add(&tx, id, &e.message)?;
                ids.push(id);

                if counters.get(counter).map(|c| c.service_id) != Some(service_id) {
                    counter = match counters.iter().position(|c| c.service_id == service_id) {
                        Some(i) => i,
                        None => {
                            counters.push(Counter {
                                service_id,
                                count: 0,
                                errors: 0,
                                last_seen: e.received_at,
                            });
                            counters.len() - 1
                        }
                    };
                }
                let c = &mut counters[counter];
                c.count += 1;
                c.errors += i64::from(e.level >= Level::Error);
                c.last_seen = c.last_seen.max(e.received_at);

                // An entry older than a retention watermark: that level's
                // range must be scanned again.
                let watermark = &mut expired[usize::from(e.level.code()) - 1];
                if watermark.is_some_and(|w| e.timestamp < w) {
                    *watermark = Some(e.timestamp);
                }
            }
            tx.prepare_cached(SET_LAST_LOG_ID)
                .and_then(|mut s| s.execute([id]))
                .map_err(db("write the last log id"))?;
            let mut count = tx
                .prepare_cached(COUNT_APPENDED)
                .map_err(db("prepare the service counters update"))?;
            for c in &counters {
                count
                    .execute(params![c.service_id, c.count, c.errors, c.last_seen])
                    .map_err(db("update service counters"))?;
            }
        }
        tx.commit().map_err(db("commit an append"))?;
        if let Some(&last) = ids.last() {
            index.committed(last);
        }
        Ok(ids)
    }

    pub(crate) fn delete_expired(
        &mut self,
        level: Level,
        before: i64,
        max_rows: usize,
    ) -> Result<usize> {
        let version = data_version(&self.conn)?;
        if version != self.data_version {
            self.expired = [None; 6];
            self.data_version = version;
        }
        let slot = usize::from(level.code()) - 1;
        let from = self.expired[slot].unwrap_or(i64::MIN);
        if from >= before {
            return Ok(0);
        }
        let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let tx = self.begin("begin deleting expired entries")?;
        let mut deleted = 0;
        let mut last_ts = None;
        let mut counters: Vec<(i64, i64)> = Vec::new();
        {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM logs WHERE id IN (\
                         SELECT id FROM logs WHERE ts >= ?1 AND ts < ?2 AND level = ?3 \
                         ORDER BY ts, id LIMIT ?4) \
                     RETURNING service_id, ts",
                )
                .map_err(db("prepare the expired entries delete"))?;
            let mut rows = delete
                .query(params![from, before, i64::from(level.code()), limit])
                .map_err(db("delete expired entries"))?;
            while let Some(row) = rows.next().map_err(db("delete expired entries"))? {
                let service_id: i64 = row.get(0).map_err(db("read a deleted entry"))?;
                let ts: i64 = row.get(1).map_err(db("read a deleted entry"))?;
                match counters.iter_mut().find(|(s, _)| *s == service_id) {
                    Some((_, n)) => *n += 1,
                    None => counters.push((service_id, 1)),
                }
                deleted += 1;
                last_ts = Some(last_ts.map_or(ts, |t: i64| t.max(ts)));
            }
            drop(rows);
            if deleted > 0 {
                // Rows deleted inside a live block just fail the candidate
                // fetch; blocks whose rows are all gone go.
                index::delete_dead_blocks(&tx)?;
            }
            let mut count = tx
                .prepare_cached(
                    "UPDATE services SET count = count - ?2, error_count = error_count - ?3 \
                     WHERE id = ?1",
                )
                .map_err(db("prepare the service counters update"))?;
            let is_error = level >= Level::Error;
            for &(service_id, n) in &counters {
                count
                    .execute(params![service_id, n, if is_error { n } else { 0 }])
                    .map_err(db("update service counters"))?;
            }
        }
        tx.commit().map_err(db("commit deleting expired entries"))?;
        // Everything of this level before the watermark is gone: all of
        // [from, before) when we stopped early, else up to the last deleted
        // timestamp (entries at that very timestamp may remain, so it is
        // scanned again next time).
        self.expired[slot] = Some(match last_ts {
            Some(ts) if deleted == max_rows => ts,
            _ => before,
        });
        if deleted > 0 {
            tracing::debug!(%level, deleted, before, "deleted expired entries");
        }
        Ok(deleted)
    }

    pub(crate) fn create_token(
        &mut self,
        kind: &TokenKind,
        hash: &str,
        prefix: &str,
        now: i64,
    ) -> Result<TokenInfo> {
        let tx = self.begin("begin creating a token")?;
        let (name, project_id, service_id) = match kind {
            TokenKind::Admin => ("admin", None, None),
            TokenKind::Read { project } => {
                let pid = project_id(&tx, project)?.ok_or_else(|| StoreError::NotFound {
                    what: "project",
                    name: project.clone(),
                })?;
                ("read", Some(pid), None)
            }
            TokenKind::Ingest { project, service } => {
                let (pid, sid) =
                    service_ids(&tx, project, service)?.ok_or_else(|| StoreError::NotFound {
                        what: "service",
                        name: format!("{project}/{service}"),
                    })?;
                ("ingest", Some(pid), Some(sid))
            }
        };
        tx.execute(
            "INSERT INTO tokens (kind, project_id, service_id, hash, prefix, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![name, project_id, service_id, hash, prefix, now],
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => {
                StoreError::Invalid("a token with this hash already exists".into())
            }
            _ => StoreError::backend("insert a token", e),
        })?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(db("commit a new token"))?;
        Ok(TokenInfo {
            id,
            kind: kind.clone(),
            prefix: prefix.to_owned(),
            created_at: now,
            last_used: None,
            revoked_at: None,
        })
    }

    pub(crate) fn revoke_token(&mut self, id: i64, now: i64) -> Result<TokenInfo> {
        let tx = self.begin("begin revoking a token")?;
        let changed = tx
            .execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now],
            )
            .map_err(db("revoke a token"))?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "token",
                name: id.to_string(),
            });
        }
        let info = token_by_id(&tx, id)?.ok_or_else(|| StoreError::NotFound {
            what: "token",
            name: id.to_string(),
        })?;
        tx.commit().map_err(db("commit a token revocation"))?;
        Ok(info)
    }

    pub(crate) fn touch_tokens(&mut self, uses: &[(i64, i64)]) -> Result<()> {
        let tx = self.begin("begin recording token use")?;
        {
            let mut touch = tx
                .prepare_cached(
                    "UPDATE tokens SET last_used = max(coalesce(last_used, ?2), ?2) WHERE id = ?1",
                )
                .map_err(db("prepare the token use update"))?;
            for &(id, at) in uses {
                touch.execute([id, at]).map_err(db("record token use"))?;
            }
        }
        tx.commit().map_err(db("commit token use"))
    }
}

/// Fills `buf` with the stored form of `tags` (see the crate docs).
fn encode_tags<'a>(buf: &'a mut String, tags: &[String]) -> Result<Option<&'a str>> {
    if tags.is_empty() {
        return Ok(None);
    }
    buf.clear();
    buf.push(TAG_SEP);
    for t in tags {
        if t.contains(TAG_SEP) {
            return Err(StoreError::Invalid(format!(
                "tag {t:?} contains the control character U+001F"
            )));
        }
        buf.push_str(t);
        buf.push(TAG_SEP);
    }
    Ok(Some(buf))
}

fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(db("read the data version"))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::Invalid(format!(
            "{what} name must not be empty"
        )));
    }
    Ok(())
}

pub(crate) fn project_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db("look up a project"))
}

/// (project id, service id) of a service, if it exists.
pub(crate) fn service_ids(
    conn: &Connection,
    project: &str,
    service: &str,
) -> Result<Option<(i64, i64)>> {
    conn.prepare_cached(
        "SELECT p.id, s.id FROM services AS s JOIN projects AS p ON p.id = s.project_id \
         WHERE p.name = ?1 AND s.name = ?2",
    )
    .and_then(|mut s| {
        s.query_row([project, service], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    })
    .map_err(db("look up a service"))
}

pub(crate) fn ensure_project_in(conn: &Connection, name: &str, now: i64) -> Result<Project> {
    check_name("project", name)?;
    conn.prepare_cached(
        "INSERT INTO projects (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![name, now]))
    .map_err(db("create a project"))?;
    conn.prepare_cached("SELECT id, created_at FROM projects WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok(Project {
                    id: r.get(0)?,
                    name: name.to_owned(),
                    created_at: r.get(1)?,
                })
            })
        })
        .map_err(db("read a project"))
}

pub(crate) fn ensure_service_in(
    conn: &Connection,
    project: &str,
    name: &str,
    now: i64,
) -> Result<Service> {
    check_name("service", name)?;
    let p = ensure_project_in(conn, project, now)?;
    conn.prepare_cached(
        "INSERT INTO services (project_id, name, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (project_id, name) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![p.id, name, now]))
    .map_err(db("create a service"))?;
    conn.prepare_cached("SELECT id, created_at FROM services WHERE project_id = ?1 AND name = ?2")
        .and_then(|mut s| {
            s.query_row(params![p.id, name], |r| {
                Ok(Service {
                    id: r.get(0)?,
                    project: project.to_owned(),
                    name: name.to_owned(),
                    created_at: r.get(1)?,
                })
            })
        })
        .map_err(db("read a service"))
}
