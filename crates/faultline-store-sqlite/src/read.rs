//! Read connections and queries.

use crate::text::TextMatcher;
use crate::walk::{self, Sql};
use crate::{SqliteOptions, db, index, schema};
use faultline_model::{
    Level, Name, Project, Service, ServiceSummary, StoredEntry, TokenInfo, TokenKind,
};
use faultline_store::{Cursor, LogPage, LogQuery, Paging, Result, StoreError};
use faultline_textindex::query_hashes;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock};

/// Full-text queries have two plans. The index can drive: read every
/// candidate's chunk, keep the newest entries that match (cost: about one
/// chunk decoded per candidate when candidates are sparse). Or chunks can
/// be walked newest first, checking the text in Rust, until the page is
/// full (cost: about `page × entries / matches` entries decoded). A
/// candidate costs about [`CANDIDATE_COST`] walked entries, so they cost the
/// same at about `sqrt(page × entries / CANDIDATE_COST)` matches; below that
/// count the index drives, above it chunks are walked. Collecting
/// candidates up to that threshold is cheap (the index only, newest blocks
/// first).
fn dense_matches(page: usize, rows: i64) -> i64 {
    let crossover = (page as f64 * rows.max(0) as f64 / CANDIDATE_COST).sqrt();
    crossover.clamp(1_000.0, 1_000_000.0) as i64
}

/// What fetching one candidate costs, in entries walked: its chunk is
/// read and decoded (a chunk holds up to a few thousand entries, but
/// candidates of one chunk share that work).
const CANDIDATE_COST: f64 = 16.0;

/// Most entries a walk reads before giving up and letting the index drive
/// (the term is common overall but rare among the entries the filter
/// allows): a few times what the walk should need at the threshold.
fn walk_budget(page: usize, rows: i64, dense: i64) -> usize {
    let expected = page as f64 * rows.max(0) as f64 / dense.max(1) as f64;
    (4.0 * expected).clamp(10_000.0, 10_000_000.0) as usize
}

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
    names: RwLock<HashMap<i64, (Name, Name)>>,
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
        // One snapshot for everything the query reads (the chunk list, the
        // chunks, the index). Read only: dropping it rolls back.
        let tx = reader
            .unchecked_transaction()
            .map_err(db("begin a log query"))?;
        let conn: &Connection = &tx;
        let f = &query.filter;
        let services = filter_services(conn, f.project.as_deref(), &f.services)?;
        if services.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(LogPage {
                entries: Vec::new(),
                next_cursor: None,
            });
        }
        let filter = walk::Filter {
            services: services.as_deref(),
            min_level: f.min_level.map_or(0, Level::code),
            tag: f.tag.as_deref(),
            since: f.since,
            until: f.until,
            cursor,
        };
        // One entry more than the page tells whether there is an older page.
        let rows = query.limit.saturating_add(1);
        // No token in the search text: it filters nothing.
        let hashes = f.q.as_deref().map(query_hashes).unwrap_or_default();
        let raw = match f.q.as_deref() {
            Some(q) if !hashes.is_empty() => {
                // A term matching many entries is found faster by walking
                // the chunks newest first than by sorting all its matches.
                let mut matcher = TextMatcher::new(q);
                let page = offset.saturating_add(rows);
                let total = last_id(conn)?;
                let threshold = self
                    .dense_matches
                    .unwrap_or_else(|| dense_matches(page, total));
                let cap = usize::try_from(threshold).unwrap_or(usize::MAX);
                let found = index::candidates(conn, &hashes, &mut matcher, cap)?;
                let walked = if found.ids.len() >= cap {
                    let budget = self
                        .walk_budget
                        .unwrap_or_else(|| walk_budget(page, total, threshold));
                    walk::walk(conn, &filter, Some(&mut matcher), offset, rows, budget)?
                } else {
                    None
                };
                match walked {
                    Some(raw) => raw,
                    None => {
                        let ids = if found.complete {
                            found.ids
                        } else {
                            index::candidates(conn, &hashes, &mut matcher, usize::MAX)?.ids
                        };
                        // Candidates may not match (phrases, hash
                        // collisions): every one is checked.
                        walk::fetch_candidates(conn, &filter, ids, &mut matcher, offset, rows)?
                    }
                }
            }
            _ => walk::walk(conn, &filter, None, offset, rows, usize::MAX)?.unwrap_or_default(),
        };
        // limit + 1 entries were asked for: one more than the page means
        // there is an older page.
        let more = raw.len() > query.limit;
        let mut entries = Vec::with_capacity(raw.len().min(query.limit));
        for r in raw.into_iter().take(query.limit) {
            let (project, service) = self.names(conn, r.service_id)?;
            let mut e = r.entry;
            e.entry.project = project;
            e.entry.service = service;
            entries.push(e);
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
        // Chunks holding an entry of at least that level (bit `code` of
        // `levels`), from the one containing `after + 1` on.
        let mask: i64 = (min_level.code()..=Level::Critical.code())
            .map(|c| 1i64 << c)
            .sum();
        let mut stmt = reader
            .prepare_cached(
                "SELECT first_id, service_id, data FROM log_chunks WHERE first_id >= \
                 coalesce((SELECT max(first_id) FROM log_chunks WHERE first_id <= ?1), 0) \
                 AND (levels & ?2) != 0 ORDER BY first_id",
            )
            .map_err(db("prepare reading entries after an id"))?;
        let mut rows = stmt
            .query(params![after, mask])
            .map_err(db("read entries after an id"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db("read entries after an id"))? {
            let first_id: i64 = row.get(0).map_err(db("read entries after an id"))?;
            let service_id: i64 = row.get(1).map_err(db("read entries after an id"))?;
            let data: Vec<u8> = row.get(2).map_err(db("read entries after an id"))?;
            let chunk = crate::chunk::Chunk::decode(first_id, service_id, data)?;
            let (project, service) = self.names(&reader, service_id)?;
            for rec in &chunk.recs {
                if rec.id > after && rec.level >= min_level.code() {
                    out.push(chunk.entry(rec, &project, &service)?);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The highest entry id ever given.
    pub(crate) fn last_entry_id(&self) -> Result<i64> {
        self.get()?
            .prepare_cached(
                "SELECT max((SELECT value FROM meta WHERE key = 'last_log_id'), \
                 coalesce((SELECT last_id FROM log_chunks ORDER BY first_id DESC LIMIT 1), 0))",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db("read the last log id"))
    }

    /// The project and service names of a service id, cached.
    fn names(&self, conn: &Connection, service_id: i64) -> Result<(Name, Name)> {
        if let Some(n) = self
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&service_id)
        {
            return Ok(n.clone());
        }
        let names: (Name, Name) = conn
            .prepare_cached(
                "SELECT p.name, s.name FROM services AS s JOIN projects AS p ON p.id = s.project_id \
                 WHERE s.id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([service_id], |r| {
                    Ok((
                        Name::from(r.get_ref(0)?.as_str()?),
                        Name::from(r.get_ref(1)?.as_str()?),
                    ))
                })
            })
            .map_err(db("read service names"))?;
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(service_id, names.clone());
        Ok(names)
    }
}

/// The highest id given so far, about the number of entries (cheap: the
/// end of the chunks' b-tree).
fn last_id(conn: &Connection) -> Result<i64> {
    conn.prepare_cached(
        "SELECT coalesce((SELECT last_id FROM log_chunks ORDER BY first_id DESC LIMIT 1), 0)",
    )
    .and_then(|mut s| s.query_row([], |r| r.get(0)))
    .map_err(db("read the last id"))
}

/// The service ids a filter allows: None for all, else the (possibly
/// empty) list, sorted.
fn filter_services(
    conn: &Connection,
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
    let ids = conn
        .prepare_cached(&sql.text)
        .and_then(|mut s| {
            s.query_map(params_from_iter(sql.params.iter()), |r| r.get(0))?
                .collect()
        })
        .map_err(db("resolve the services of a query"))?;
    Ok(Some(ids))
}

impl Reader<'_> {
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

    /// Walks read a covering index of chunks in newest-first order (no
    /// sort, no table access until a chunk's blob is read by id); the
    /// newest wanted timestamp bounds the index range.
    #[test]
    fn chunk_walks_use_the_indexes() {
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
        let filter = |services, cursor, min_level, since| walk::Filter {
            services,
            min_level,
            tag: Some("db"),
            since,
            until: None,
            cursor,
        };
        for (services, index) in [
            (None, "log_chunks_ts"),
            (Some(&[1, 2, 3][..]), "log_chunks_ts"),
            (Some(&[2][..]), "log_chunks_service"),
        ] {
            for c in [None, cursor] {
                for level in [0, Level::Warn.code()] {
                    let f = filter(services, c, level, Some(5));
                    let p = explain(&conn, &walk::chunk_walk_sql(&f));
                    assert!(p.contains(&format!("USING COVERING INDEX {index}")), "{p}");
                    assert!(!p.contains("TEMP B-TREE"), "{p}");
                    if c.is_some() {
                        assert!(p.contains("max_ts<?"), "the cursor bounds the range: {p}");
                    }
                }
            }
        }
        // A candidate's chunk, and a chunk by id: the primary key.
        for sql in [walk::CHUNK_HOLDING, walk::CHUNK_BY_FIRST_ID] {
            let p = explain(
                &conn,
                &Sql {
                    text: sql.into(),
                    params: vec![1.into()],
                },
            );
            assert!(p.contains("USING INTEGER PRIMARY KEY (rowid"), "{p}");
        }
    }
}
