//! Read connections and queries.

use crate::text::TextMatcher;
use crate::write::TAG_SEP;
use crate::{SqliteOptions, db, index, schema};
use faultline_model::{
    Attributes, Level, LogFilter, NewEntry, Project, Service, ServiceSummary, StoredEntry,
    TokenInfo, TokenKind,
};
use faultline_store::{Cursor, LogPage, LogQuery, Paging, Result, StoreError};
use faultline_textindex::query_hashes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock};

/// Full-text queries have two plans. The index can drive: read every
/// candidate row, keep the newest that match (cost: one row lookup per
/// candidate). Or rows can be walked newest first, checking the text in
/// Rust, until the page is full (cost: about `page × rows / matches` rows
/// read). They cost the same at about `sqrt(page × rows / 2)` matches (a
/// walked row costs about half a lookup); below that count the index
/// drives, above it rows are walked. Collecting candidates up to that
/// threshold is cheap (the index only, newest blocks first).
fn dense_matches(page: usize, rows: i64) -> i64 {
    let crossover = (page as f64 * rows.max(0) as f64 / 2.0).sqrt();
    crossover.clamp(1_000.0, 1_000_000.0) as i64
}

/// Most rows a walk reads before giving up and letting the index drive (the
/// term is common overall but rare among the rows the filter allows): a few
/// times what the walk should need at the threshold.
fn walk_budget(page: usize, rows: i64, dense: i64) -> usize {
    let expected = page as f64 * rows.max(0) as f64 / dense.max(1) as f64;
    (4.0 * expected).clamp(10_000.0, 10_000_000.0) as usize
}

/// Above this many services, a query does not merge per-service index scans
/// (SQLite allows at most 500 terms in a compound SELECT) but filters one
/// newest-first scan of all entries.
const MAX_MERGED_SERVICES: usize = 256;

/// The columns of `logs` a query returns, in [`RawEntry::from_row`] order.
const COLUMNS: &str =
    "id, ts, received_at, service_id, level, message, tags, host, attributes, trace_id, span_id";
/// Where `message` is in [`COLUMNS`].
const COLUMN_MESSAGE: usize = 5;

const TOKEN_SELECT: &str = "SELECT t.id, t.kind, p.name, s.name, t.prefix, t.created_at, \
    t.last_used, t.revoked_at \
    FROM tokens AS t \
    LEFT JOIN projects AS p ON p.id = t.project_id \
    LEFT JOIN services AS s ON s.id = t.service_id";

/// Read connections, opened on first use and kept, at most `readers`.
pub(crate) struct Pool {
    path: PathBuf,
    options: SqliteOptions,
    state: Mutex<PoolState>,
    returned: Condvar,
    /// service id → (project, service): the names a query's entries carry.
    /// Services are never deleted or renamed, so this never goes stale.
    names: RwLock<HashMap<i64, (String, String)>>,
    /// Overrides of [`dense_matches`] and [`walk_budget`], for tests that
    /// drive every plan through the contract.
    dense_matches: Option<i64>,
    walk_budget: Option<usize>,
}

struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

/// A read connection borrowed from the pool; goes back on drop.
pub(crate) struct Reader<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.state).idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    pub(crate) fn new(path: PathBuf, options: SqliteOptions) -> Pool {
        Pool {
            path,
            options,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            names: RwLock::new(HashMap::new()),
            dense_matches: None,
            walk_budget: None,
        }
    }

    /// A read connection: an idle one, a new one while fewer than `readers`
    /// are open, else the next one given back.
    pub(crate) fn get(&self) -> Result<Reader<'_>> {
        let mut state = lock(&self.state);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Reader {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.options.readers.max(1) {
                state.open += 1;
                drop(state);
                return match schema::open_reader(&self.path, &self.options) {
                    Ok(conn) => Ok(Reader {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        lock(&self.state).open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Frees the page caches and prepared statements of idle readers.
    pub(crate) fn release_memory(&self) -> Result<()> {
        for conn in &lock(&self.state).idle {
            conn.flush_prepared_statement_cache();
            conn.release_memory().map_err(db("release reader memory"))?;
        }
        Ok(())
    }

    pub(crate) fn query_logs(&self, query: &LogQuery) -> Result<LogPage> {
        if query.limit == 0 {
            return Err(StoreError::Invalid("limit must be at least 1".into()));
        }
        let (cursor, offset) = match query.paging {
            Paging::Cursor(c) => (c, 0),
            Paging::Page(0) => return Err(StoreError::Invalid("pages are numbered from 1".into())),
            Paging::Page(n) => (None, (n as usize - 1).saturating_mul(query.limit)),
        };
        let reader = self.get()?;
        let f = &query.filter;
        let services = reader.filter_services(f.project.as_deref(), &f.services)?;
        if services.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(LogPage {
                entries: Vec::new(),
                next_cursor: None,
            });
        }
        // One row more than the page tells whether there is an older page.
        let rows = query.limit.saturating_add(1);
        let shape = Shape {
            cursor,
            services: services.as_deref(),
            ids: None,
            page: Some((offset, rows)),
        };
        // No token in the search text: it filters nothing.
        let hashes = f.q.as_deref().map(query_hashes).unwrap_or_default();
        let raw = match f.q.as_deref() {
            Some(q) if !hashes.is_empty() => {
                // A term matching many rows is found faster by walking the
                // rows newest first than by sorting all its matches.
                let mut matcher = TextMatcher::new(q);
                let page = offset.saturating_add(rows);
                let total = reader.last_id()?;
                let threshold = self
                    .dense_matches
                    .unwrap_or_else(|| dense_matches(page, total));
                let cap = usize::try_from(threshold).unwrap_or(usize::MAX);
                let found = index::candidates(&reader, &hashes, &mut matcher, cap)?;
                let walked = if found.ids.len() >= cap {
                    let budget = self
                        .walk_budget
                        .unwrap_or_else(|| walk_budget(page, total, threshold));
                    let sql = log_query_sql(
                        f,
                        Shape {
                            page: None,
                            ..shape
                        },
                    );
                    reader.walk_matching(&sql, &mut matcher, offset, rows, budget)?
                } else {
                    None
                };
                match walked {
                    Some(raw) => raw,
                    None => {
                        let ids = if found.complete {
                            found.ids
                        } else {
                            index::candidates(&reader, &hashes, &mut matcher, usize::MAX)?.ids
                        };
                        if ids.is_empty() {
                            Vec::new()
                        } else {
                            // Candidates may not match (phrases, hash
                            // collisions): every row is checked in order.
                            let ids = ids_json(&ids);
                            let sql = log_query_sql(
                                f,
                                Shape {
                                    ids: Some(&ids),
                                    page: None,
                                    ..shape
                                },
                            );
                            reader
                                .walk_matching(&sql, &mut matcher, offset, rows, usize::MAX)?
                                .unwrap_or_default()
                        }
                    }
                }
            }
            _ => reader.fetch(&log_query_sql(f, shape))?,
        };
        // limit + 1 rows were asked for: one more than the page means there
        // is an older page.
        let more = raw.len() > query.limit;
        let mut entries = Vec::with_capacity(raw.len().min(query.limit));
        for r in raw.into_iter().take(query.limit) {
            let (project, service) = self.names(&reader, r.service_id)?;
            entries.push(r.into_entry(project, service)?);
        }
        let next_cursor = more.then(|| entries.last()).flatten().map(|e| Cursor {
            timestamp: e.entry.timestamp,
            id: e.id,
        });
        Ok(LogPage {
            entries,
            next_cursor,
        })
    }

    /// Entries after `after` of at least `min_level`, by id, with names.
    pub(crate) fn entries_after(
        &self,
        after: i64,
        min_level: Level,
        limit: usize,
    ) -> Result<Vec<StoredEntry>> {
        let reader = self.get()?;
        let raw = reader.entries_after(after, min_level, limit)?;
        raw.into_iter()
            .map(|r| {
                let (project, service) = self.names(&reader, r.service_id)?;
                r.into_entry(project, service)
            })
            .collect()
    }

    /// The project and service names of a service id, cached.
    fn names(&self, conn: &Connection, service_id: i64) -> Result<(String, String)> {
        if let Some(n) = self
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&service_id)
        {
            return Ok(n.clone());
        }
        let names: (String, String) = conn
            .prepare_cached(
                "SELECT p.name, s.name FROM services AS s JOIN projects AS p ON p.id = s.project_id \
                 WHERE s.id = ?1",
            )
            .and_then(|mut s| s.query_row([service_id], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(db("read service names"))?;
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(service_id, names.clone());
        Ok(names)
    }
}

/// How a log query runs, besides its filter.
#[derive(Debug, Clone, Copy)]
struct Shape<'a> {
    cursor: Option<Cursor>,
    /// The services allowed (None: all).
    services: Option<&'a [i64]>,
    /// The candidate row ids of the full-text index, as a JSON array, when
    /// the index drives.
    ids: Option<&'a str>,
    /// `Some((offset, rows))`: that slice of the order. `None`: every row in
    /// order, for a caller that stops reading when it has enough.
    page: Option<(usize, usize)>,
}

/// The SQL (and its parameters) of a log query. Plans are chosen by shape,
/// not by SQLite's cost guesses, so that each walks an index in the
/// newest-first order whenever it can; `tests::plans_use_the_indexes` pins
/// them. The filter's `q` is not applied here: `shape.ids` narrows the
/// rows to the index's candidates, which the caller re-checks.
fn log_query_sql(f: &LogFilter, shape: Shape<'_>) -> Sql {
    let mut sql = Sql::default();
    // Conditions every plan applies to `logs AS l`.
    let mut conds: Vec<String> = Vec::new();
    if let Some(level) = f.min_level.filter(|&l| l > Level::Trace) {
        conds.push(format!("l.level >= {}", sql.bind(i64::from(level.code()))));
    }
    if let Some(tag) = &f.tag {
        conds.push(format!(
            "instr(l.tags, {}) > 0",
            sql.bind(format!("{TAG_SEP}{tag}{TAG_SEP}"))
        ));
    }
    if let Some(since) = f.since {
        conds.push(format!("l.ts >= {}", sql.bind(since)));
    }
    if let Some(until) = f.until {
        conds.push(format!("l.ts < {}", sql.bind(until)));
    }
    if let Some(c) = shape.cursor {
        // The first comparison lets SQLite bound the index range on ts;
        // the row value is the exact condition.
        let ts = sql.bind(c.timestamp);
        let id = sql.bind(c.id);
        conds.push(format!("l.ts <= {ts} AND (l.ts, l.id) < ({ts}, {id})"));
    }
    let page = shape.page.map(|(offset, rows)| {
        (
            i64::try_from(offset).unwrap_or(i64::MAX),
            i64::try_from(rows).unwrap_or(i64::MAX),
        )
    });

    match (shape.ids, shape.services) {
        (Some(candidates), services) => {
            // Driven by the full-text index: only candidate rows are read,
            // by id, then sorted. CROSS JOIN pins the id list as the outer
            // loop.
            let m = sql.bind(candidates.to_owned());
            if let Some(ids) = services {
                conds.push(sql.in_list("l.service_id", ids));
            }
            let filter = if conds.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conds.join(" AND "))
            };
            sql.text = format!(
                "SELECT {} FROM json_each({m}) AS c CROSS JOIN logs AS l ON l.id = c.value \
                 {filter} ORDER BY l.ts DESC, l.id DESC",
                columns("l")
            );
        }
        (None, Some([id])) => {
            // One service: the (service_id, ts, id) index is the order.
            conds.insert(0, format!("l.service_id = {}", sql.bind(*id)));
            sql.text = format!(
                "SELECT {} FROM logs AS l WHERE {} ORDER BY l.ts DESC, l.id DESC",
                columns("l"),
                conds.join(" AND ")
            );
        }
        (None, Some(ids)) if ids.len() <= MAX_MERGED_SERVICES && page.is_some() => {
            // Several services, one page: the newest rows of each by its
            // index, then the newest of those. Each arm reads at most
            // offset + rows rows, however large the services.
            let (offset, rows) = page.unwrap_or_default();
            let arm_limit = sql.bind(offset.saturating_add(rows));
            let arms: Vec<String> = ids
                .iter()
                .map(|&id| {
                    let mut c = vec![format!("l.service_id = {}", sql.bind(id))];
                    c.extend(conds.iter().cloned());
                    format!(
                        "SELECT id FROM (SELECT l.id AS id FROM logs AS l WHERE {} \
                         ORDER BY l.ts DESC, l.id DESC LIMIT {arm_limit})",
                        c.join(" AND ")
                    )
                })
                .collect();
            sql.text = format!(
                "SELECT {} FROM logs AS o WHERE o.id IN ({}) ORDER BY o.ts DESC, o.id DESC",
                columns("o"),
                arms.join(" UNION ALL ")
            );
        }
        (None, services) => {
            // Everything, very many services, or a walk: the (ts, id) index
            // is the order. The unary `+` keeps SQLite from using the
            // service index for the IN list instead, which would then sort
            // every row of those services.
            if let Some(ids) = services {
                conds.push(sql.in_list("+l.service_id", ids));
            }
            let filter = if conds.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conds.join(" AND "))
            };
            sql.text = format!(
                "SELECT {} FROM logs AS l {filter} ORDER BY l.ts DESC, l.id DESC",
                columns("l")
            );
        }
    }
    if let Some((offset, rows)) = page {
        let limit = sql.bind(rows);
        let off = sql.bind(offset);
        sql.text.push_str(&format!(" LIMIT {limit} OFFSET {off}"));
    }
    sql
}

/// Row ids as a JSON array, for `json_each`.
fn ids_json(ids: &[i64]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(ids.len() * 9 + 2);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
    s
}

/// SQL text being built with its numbered parameters.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<Value>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder (`?N`), which may be used
    /// several times in the text.
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    fn in_list(&mut self, column: &str, ids: &[i64]) -> String {
        let list: Vec<String> = ids.iter().map(|&id| self.bind(id)).collect();
        format!("{column} IN ({})", list.join(", "))
    }
}

fn columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `logs` row before its service id is turned into names.
struct RawEntry {
    id: i64,
    ts: i64,
    received_at: i64,
    service_id: i64,
    level: i64,
    message: String,
    tags: Option<String>,
    host: Option<String>,
    attributes: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl RawEntry {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawEntry> {
        Ok(RawEntry {
            id: r.get(0)?,
            ts: r.get(1)?,
            received_at: r.get(2)?,
            service_id: r.get(3)?,
            level: r.get(4)?,
            message: r.get(5)?,
            tags: r.get(6)?,
            host: r.get(7)?,
            attributes: r.get(8)?,
            trace_id: r.get(9)?,
            span_id: r.get(10)?,
        })
    }

    fn into_entry(self, project: String, service: String) -> Result<StoredEntry> {
        let level = u8::try_from(self.level)
            .ok()
            .and_then(Level::from_code)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "entry {} has unknown level code {}",
                    self.id, self.level
                ))
            })?;
        let tags = match &self.tags {
            None => Vec::new(),
            Some(t) => t
                .strip_prefix(TAG_SEP)
                .and_then(|t| t.strip_suffix(TAG_SEP))
                .unwrap_or(t)
                .split(TAG_SEP)
                .map(str::to_owned)
                .collect(),
        };
        let attributes: Attributes = match &self.attributes {
            None => Attributes::new(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| StoreError::backend("decode stored attributes", e))?,
        };
        Ok(StoredEntry {
            id: self.id,
            entry: NewEntry {
                project,
                service,
                level,
                message: self.message,
                tags,
                timestamp: self.ts,
                received_at: self.received_at,
                host: self.host,
                attributes,
                trace_id: self.trace_id,
                span_id: self.span_id,
            },
        })
    }
}

impl Reader<'_> {
    /// Every row a query's SQL returns.
    fn fetch(&self, sql: &Sql) -> Result<Vec<RawEntry>> {
        self.prepare_cached(&sql.text)
            .and_then(|mut stmt| {
                stmt.query_map(params_from_iter(sql.params.iter()), RawEntry::from_row)?
                    .collect()
            })
            .map_err(db("query logs"))
    }

    /// Entries after `after` of at least `min_level`, by id.
    fn entries_after(&self, after: i64, min_level: Level, limit: usize) -> Result<Vec<RawEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM logs WHERE id > ?1 AND level >= ?2 ORDER BY id LIMIT ?3"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![after, i64::from(min_level.code()), limit],
                RawEntry::from_row,
            )?
            .collect()
        })
        .map_err(db("read entries after an id"))
    }

    /// The highest id ever given.
    pub(crate) fn last_entry_id(&self) -> Result<i64> {
        self.prepare_cached(
            "SELECT max((SELECT value FROM meta WHERE key = 'last_log_id'), \
             coalesce((SELECT max(id) FROM logs), 0))",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("read the last log id"))
    }

    /// The highest id, about the number of entries (cheap: the end of the
    /// table's b-tree).
    fn last_id(&self) -> Result<i64> {
        self.prepare_cached("SELECT coalesce(max(id), 0) FROM logs")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db("read the last id"))
    }

    /// The rows of `sql` (a walk in newest-first order) whose message
    /// matches, skipping the first `skip` of them and keeping the next
    /// `want`; None when that takes more than `budget` rows.
    fn walk_matching(
        &self,
        sql: &Sql,
        matcher: &mut TextMatcher,
        mut skip: usize,
        want: usize,
        budget: usize,
    ) -> Result<Option<Vec<RawEntry>>> {
        let mut stmt = self
            .prepare_cached(&sql.text)
            .map_err(db("prepare a log walk"))?;
        let mut rows = stmt
            .query(params_from_iter(sql.params.iter()))
            .map_err(db("walk logs"))?;
        let mut found = Vec::new();
        let mut read = 0;
        while found.len() < want {
            let Some(row) = rows.next().map_err(db("walk logs"))? else {
                break;
            };
            read += 1;
            if read > budget {
                return Ok(None);
            }
            let message = row
                .get_ref(COLUMN_MESSAGE)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(db("read a message"))?;
            if !matcher.matches(message) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(RawEntry::from_row(row).map_err(db("read a log entry"))?);
            }
        }
        Ok(Some(found))
    }

    /// The service ids a filter allows: None for all, else the (possibly
    /// empty) list.
    fn filter_services(
        &self,
        project: Option<&str>,
        services: &[String],
    ) -> Result<Option<Vec<i64>>> {
        if services.is_empty() && project.is_none() {
            return Ok(None);
        }
        let mut sql = Sql::default();
        let mut conds = Vec::new();
        if let Some(p) = project {
            conds.push(format!("p.name = {}", sql.bind(p.to_owned())));
        }
        if !services.is_empty() {
            let names: Vec<String> = services.iter().map(|s| sql.bind(s.clone())).collect();
            conds.push(format!("s.name IN ({})", names.join(", ")));
        }
        sql.text = format!(
            "SELECT s.id FROM services AS s JOIN projects AS p ON p.id = s.project_id \
             WHERE {} ORDER BY s.id",
            conds.join(" AND ")
        );
        let ids = self
            .prepare_cached(&sql.text)
            .and_then(|mut s| {
                s.query_map(params_from_iter(sql.params.iter()), |r| r.get(0))?
                    .collect()
            })
            .map_err(db("resolve the services of a query"))?;
        Ok(Some(ids))
    }

    pub(crate) fn find_project(&self, name: &str) -> Result<Option<Project>> {
        self.prepare_cached("SELECT id, name, created_at FROM projects WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], project_from_row).optional())
            .map_err(db("look up a project"))
    }

    pub(crate) fn list_projects(&self) -> Result<Vec<Project>> {
        self.prepare_cached("SELECT id, name, created_at FROM projects ORDER BY name")
            .and_then(|mut s| s.query_map([], project_from_row)?.collect())
            .map_err(db("list projects"))
    }

    pub(crate) fn find_service(&self, project: &str, name: &str) -> Result<Option<Service>> {
        self.prepare_cached(
            "SELECT s.id, p.name, s.name, s.created_at \
             FROM services AS s JOIN projects AS p ON p.id = s.project_id \
             WHERE p.name = ?1 AND s.name = ?2",
        )
        .and_then(|mut s| {
            s.query_row([project, name], |r| {
                Ok(Service {
                    id: r.get(0)?,
                    project: r.get(1)?,
                    name: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })
            .optional()
        })
        .map_err(db("look up a service"))
    }

    pub(crate) fn list_services(&self, project: Option<&str>) -> Result<Vec<ServiceSummary>> {
        self.prepare_cached(
            "SELECT p.name, s.name, s.last_seen, s.count, s.error_count \
             FROM services AS s JOIN projects AS p ON p.id = s.project_id \
             WHERE ?1 IS NULL OR p.name = ?1 \
             ORDER BY p.name, s.name",
        )
        .and_then(|mut s| {
            s.query_map([project], |r| {
                Ok(ServiceSummary {
                    project: r.get(0)?,
                    name: r.get(1)?,
                    last_seen: r.get(2)?,
                    count: r.get(3)?,
                    error_count: r.get(4)?,
                })
            })?
            .collect()
        })
        .map_err(db("list services"))
    }

    pub(crate) fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let row = self
            .prepare_cached(&format!("{TOKEN_SELECT} WHERE t.hash = ?1"))
            .and_then(|mut s| s.query_row([hash], RawToken::from_row).optional())
            .map_err(db("look up a token"))?;
        row.map(RawToken::into_info).transpose()
    }

    pub(crate) fn list_tokens(&self, project: Option<&str>) -> Result<Vec<TokenInfo>> {
        let rows: Vec<RawToken> = match project {
            None => self
                .prepare_cached(&format!("{TOKEN_SELECT} ORDER BY t.id"))
                .and_then(|mut s| s.query_map([], RawToken::from_row)?.collect()),
            Some(p) => self
                .prepare_cached(&format!("{TOKEN_SELECT} WHERE p.name = ?1 ORDER BY t.id"))
                .and_then(|mut s| s.query_map([p], RawToken::from_row)?.collect()),
        }
        .map_err(db("list tokens"))?;
        rows.into_iter().map(RawToken::into_info).collect()
    }

    pub(crate) fn has_admin_token(&self) -> Result<bool> {
        self.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM tokens WHERE kind = 'admin' AND revoked_at IS NULL)",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db("look for an admin token"))
    }

    /// Bytes in the main database file (pages in use or free).
    pub(crate) fn page_bytes(&self) -> Result<u64> {
        let bytes: i64 = self
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )
            .map_err(db("read the database size"))?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}

fn project_from_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

/// A `tokens` row joined with its names.
struct RawToken {
    id: i64,
    kind: String,
    project: Option<String>,
    service: Option<String>,
    prefix: String,
    created_at: i64,
    last_used: Option<i64>,
    revoked_at: Option<i64>,
}

impl RawToken {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawToken> {
        Ok(RawToken {
            id: r.get(0)?,
            kind: r.get(1)?,
            project: r.get(2)?,
            service: r.get(3)?,
            prefix: r.get(4)?,
            created_at: r.get(5)?,
            last_used: r.get(6)?,
            revoked_at: r.get(7)?,
        })
    }

    fn into_info(self) -> Result<TokenInfo> {
        let kind = match (self.kind.as_str(), self.project, self.service) {
            ("admin", _, _) => TokenKind::Admin,
            ("read", Some(project), _) => TokenKind::Read { project },
            ("ingest", Some(project), Some(service)) => TokenKind::Ingest { project, service },
            (kind, _, _) => {
                return Err(StoreError::Invalid(format!(
                    "token {} has kind {kind:?} without its project or service",
                    self.id
                )));
            }
        };
        Ok(TokenInfo {
            id: self.id,
            kind,
            prefix: self.prefix,
            created_at: self.created_at,
            last_used: self.last_used,
            revoked_at: self.revoked_at,
        })
    }
}

/// A token by id, on any connection (the writer uses it inside transactions).
pub(crate) fn token_by_id(conn: &Connection, id: i64) -> Result<Option<TokenInfo>> {
    let row = conn
        .prepare_cached(&format!("{TOKEN_SELECT} WHERE t.id = ?1"))
        .and_then(|mut s| s.query_row([id], RawToken::from_row).optional())
        .map_err(db("read a token"))?;
    row.map(RawToken::into_info).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteStore, schema};
    use faultline_store::Store;

    /// The query plan of some SQL, one line per step.
    fn explain(conn: &Connection, sql: &Sql) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
            .expect("prepare");
        let lines: Vec<String> = stmt
            .query_map(params_from_iter(sql.params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .and_then(|r| r.collect())
            .expect("explain");
        lines.join("\n")
    }

    /// The query plan of a filter, one line per step.
    fn plan(
        conn: &Connection,
        f: &LogFilter,
        cursor: Option<Cursor>,
        services: Option<&[i64]>,
    ) -> String {
        let ids = f.q.as_ref().map(|_| "[1,2,3]");
        let sql = log_query_sql(
            f,
            Shape {
                cursor,
                services,
                ids,
                page: Some((0, 101)),
            },
        );
        explain(conn, &sql)
    }

    /// The contract with every full-text query walking rows (as a term
    /// matching many rows does), and with every walk giving up at once and
    /// falling back to the index.
    #[test]
    fn store_contract_through_every_full_text_plan() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for (dense_matches, walk_budget) in [(1, usize::MAX), (1, 1), (1, 3)] {
            let n = std::cell::Cell::new(0);
            faultline_store::contract::run_all(&|| {
                n.set(n.get() + 1);
                let path = dir
                    .path()
                    .join(format!("{dense_matches}-{walk_budget}-{}.db", n.get()));
                let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
                store.readers.dense_matches = Some(dense_matches);
                store.readers.walk_budget = Some(walk_budget);
                Box::new(store)
            });
        }
    }

    /// The contract with full-text index blocks of a few rows, so that
    /// finished blocks, the open block and retention of blocks are all
    /// reached, through every full-text plan.
    #[test]
    fn store_contract_with_small_index_blocks() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for block_rows in [1, 3, 50] {
            for (dense_matches, walk_budget) in [(None, None), (Some(1), Some(1))] {
                let n = std::cell::Cell::new(0);
                faultline_store::contract::run_all(&|| {
                    n.set(n.get() + 1);
                    let path = dir
                        .path()
                        .join(format!("{block_rows}-{dense_matches:?}-{}.db", n.get()));
                    let mut store = SqliteStore::open_with_block_rows(
                        &path,
                        SqliteOptions::default(),
                        block_rows,
                    )
                    .expect("open");
                    store.readers.dense_matches = dense_matches;
                    store.readers.walk_budget = walk_budget;
                    Box::new(store)
                });
            }
        }
    }

    #[test]
    fn plans_use_the_indexes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("p.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        for s in ["a", "b", "c"] {
            store.ensure_service("p", s).expect("service");
        }
        let conn = schema::open_reader(&path, &SqliteOptions::default()).expect("reader");
        let cursor = Some(Cursor {
            timestamp: 1_000,
            id: 7,
        });
        let level = LogFilter {
            min_level: Some(Level::Warn),
            tag: Some("db".into()),
            ..LogFilter::default()
        };

        // Everything, newest first: the (ts, id) index, in order, no sort.
        for c in [None, cursor] {
            let p = plan(&conn, &level, c, None);
            assert!(p.contains("USING INDEX logs_ts"), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
        // One service: the (service_id, ts, id) index, in order, no sort.
        for c in [None, cursor] {
            let p = plan(&conn, &level, c, Some(&[2]));
            assert!(
                p.contains("USING INDEX logs_service_ts (service_id=?"),
                "{p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "{p}");
            if c.is_some() {
                assert!(p.contains("ts<?"), "the cursor bounds the index range: {p}");
            }
        }
        // Several services: one ordered index range per service, then a sort
        // of at most (services x page) rows found by id.
        let p = plan(&conn, &level, cursor, Some(&[1, 2, 3]));
        assert_eq!(
            p.matches("USING INDEX logs_service_ts (service_id=?")
                .count(),
            3,
            "{p}"
        );
        assert!(p.contains("USING INTEGER PRIMARY KEY (rowid=?)"), "{p}");
        assert!(!p.contains("SCAN l"), "{p}");
        // A walk of several services (dense full text): the (ts, id) order.
        let walk = log_query_sql(
            &level,
            Shape {
                cursor,
                services: Some(&[1, 2, 3]),
                ids: None,
                page: None,
            },
        );
        let p = explain(&conn, &walk);
        assert!(p.contains("USING INDEX logs_ts"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        // Full text: the index drives, rows are fetched by id.
        let text = LogFilter {
            q: Some("connection refused".into()),
            ..level.clone()
        };
        let p = plan(&conn, &text, cursor, Some(&[1, 2]));
        assert!(p.contains("VIRTUAL TABLE INDEX"), "{p}");
        assert!(
            p.contains("SEARCH l USING INTEGER PRIMARY KEY (rowid=?)"),
            "{p}"
        );
    }
}
