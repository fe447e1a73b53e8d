//! # faultline-store
//!
//! The storage boundary of faultline. The [`Store`] trait is everything the
//! pipeline and the API need from a database; adapters implement it
//! (`faultline-store-sqlite` now, PostgreSQL later) and must pass the
//! [`contract`] suite, which is the executable definition of the trait's
//! semantics.
//!
//! The trait is synchronous: the embedded adapter (SQLite) is synchronous by
//! nature, and callers run store calls on blocking threads (the writer thread,
//! or `spawn_blocking` for reads).
//!
//! Architecture invariant: this crate contains no SQL; only adapters do.

mod alerts;
pub mod contract;
pub mod contract_alerts;
pub mod contract_issues;
pub mod contract_users;
mod issues;
mod query;
mod users;

pub use alerts::{
    AlertStore, AlertWrites, Attempt, NewNotification, Notification, NotificationStatus,
    StoredChannel, StoredRule,
};
pub use issues::{
    Attachment, Bucket, EventBatch, EventOutcome, IssuePage, IssueQuery, IssueSort, IssueStore,
    IssueTicket, MAX_IDS_PER_CALL, ProjectOverview, StatusUpdate,
};
pub use query::{Cursor, LogPage, LogQuery, Paging};
pub use users::{Session, User, UserStore};

use faultline_model::{
    Level, NewEntry, Project, Service, ServiceSummary, StoredEntry, TokenInfo, TokenKind,
};

/// What [`Store::prepare`] made of a batch; only the store that made it
/// knows its type.
pub type Prepared = Box<dyn std::any::Any + Send>;

/// Errors at the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A referenced project, service or token does not exist.
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },
    /// The request cannot be satisfied (bad cursor, invalid name…).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request collides with what exists (a username taken…).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed; `op` says what we were doing.
    #[error("store failure during {op}: {source}")]
    Backend {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend error with the operation that failed.
    pub fn backend(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            op,
            source: Box::new(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored token found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub info: TokenInfo,
}

/// Log entries of one bucket and level ([`Store::log_counts`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogCount {
    /// Bucket start, microseconds (a multiple of [`Bucket::micros`]).
    pub bucket: i64,
    pub level: Level,
    pub count: u64,
}

/// A service's recent traffic ([`Store::service_activity`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceActivity {
    pub service: String,
    /// Entries in the window.
    pub total: u64,
    /// Of those, entries of level error or above.
    pub errors: u64,
}

/// Everything faultline keeps.
///
/// Semantics every adapter must honour (checked by [`contract`]):
/// - [`Store::append`] is atomic and durable when it returns `Ok`: all entries
///   of all batches are visible to readers, or none are.
/// - Ids grow with each append and are never reused, even after the entries
///   holding the highest ids were deleted.
/// - Queries order by (timestamp, id) descending and cursor pages never
///   repeat or skip an entry, whatever is appended between two pages.
/// - `q` means what [`faultline_model::LogFilter::matches`] says: the store
///   and the live tail agree on every filter.
/// - Names are exact and case-sensitive.
pub trait Store: IssueStore + AlertStore + UserStore + Send + Sync {
    /// Creates the project if it does not exist; returns it either way.
    fn ensure_project(&self, name: &str) -> Result<Project>;
    fn list_projects(&self) -> Result<Vec<Project>>;
    /// Creates the service (and its project) if needed.
    fn ensure_service(&self, project: &str, name: &str) -> Result<Service>;
    /// Services with their traffic, optionally of one project, by project then name.
    fn list_services(&self, project: Option<&str>) -> Result<Vec<ServiceSummary>>;

    /// Stores a token's hash. The project/service of an ingest or read token
    /// must exist.
    fn create_token(
        &self,
        kind: &TokenKind,
        hash: &str,
        prefix: &str,
        now: i64,
    ) -> Result<TokenInfo>;
    /// Finds a token by the hash of its secret, revoked or not.
    fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>>;
    /// Tokens, optionally of one project (admin tokens are listed only
    /// without a project).
    fn list_tokens(&self, project: Option<&str>) -> Result<Vec<TokenInfo>>;
    /// Revokes a token; `NotFound` if there is no such token.
    fn revoke_token(&self, id: i64, now: i64) -> Result<TokenInfo>;
    /// Records token use (id, time), coalesced by the caller.
    fn touch_tokens(&self, uses: &[(i64, i64)]) -> Result<()>;
    /// Whether any non-revoked admin token exists.
    fn has_admin_token(&self) -> Result<bool>;

    /// Appends batches in one transaction; returns the ids given to the
    /// entries, in order. Services (and projects) that entries name are
    /// created when missing, as by [`Store::ensure_service`].
    fn append(&self, batches: &[&[NewEntry]]) -> Result<Vec<i64>>;
    /// The part of appending `entries` that needs neither the database nor
    /// the writer (encoding them, tokenizing messages for a full-text
    /// index), done by the caller before the batch is queued, on its own
    /// thread, so that it runs in parallel with the single writer; the
    /// result goes back to [`Store::append_prepared`] with the same
    /// entries. No I/O. `None`: nothing to prepare (the default).
    fn prepare(&self, entries: &[NewEntry]) -> Option<Prepared> {
        let _ = entries;
        None
    }
    /// [`Store::append`], with what [`Store::prepare`] returned for each
    /// batch (if anything); the result is the same as without it.
    fn append_prepared(&self, batches: &[(&[NewEntry], Option<&Prepared>)]) -> Result<Vec<i64>> {
        let plain: Vec<&[NewEntry]> = batches.iter().map(|(b, _)| *b).collect();
        self.append(&plain)
    }
    /// [`Store::append_prepared`] that may return once the transaction is
    /// committed and visible but before it is durable; the caller makes it
    /// durable with [`Store::sync_appends`] before it acknowledges anything.
    /// The single writer then commits the next group while the last one is
    /// being synced. The default is `append_prepared` (durable on return).
    fn append_prepared_unsynced(
        &self,
        batches: &[(&[NewEntry], Option<&Prepared>)],
    ) -> Result<Vec<i64>> {
        self.append_prepared(batches)
    }
    /// Makes every append that returned before this call as durable as
    /// [`Store::append`] would have. May run on another thread than the
    /// appends, concurrently with the next one. The default does nothing.
    fn sync_appends(&self) -> Result<()> {
        Ok(())
    }
    /// Entries matching the query, newest first. `Invalid` for a limit of 0
    /// or page 0.
    fn query_logs(&self, query: &LogQuery) -> Result<LogPage>;
    /// Entries with an id above `after` and a level of at least `min_level`,
    /// by id, at most `limit` (the issue processor's catch-up).
    fn entries_after(&self, after: i64, min_level: Level, limit: usize)
    -> Result<Vec<StoredEntry>>;
    /// The highest entry id ever given (0 for none).
    fn last_entry_id(&self) -> Result<i64>;
    /// Deletes up to `max_rows` entries of exactly `level` with a timestamp
    /// before `before`; returns how many were deleted.
    fn delete_expired(&self, level: Level, before: i64, max_rows: usize) -> Result<usize>;
    /// Bytes used on disk.
    fn size_bytes(&self) -> Result<u64>;

    /// Entries per (bucket, level) of a project (optionally one service)
    /// with a timestamp at or after `since`, summed over services, ordered
    /// by bucket then level; only non-empty (bucket, level) pairs. Counts
    /// every appended entry, by its timestamp (not its receive time), and
    /// is unaffected by retention deletes. Counts are kept per hour:
    /// `since` counts from the start of its hour (UTC). Day buckets are UTC
    /// days. `NotFound` for an unknown project; an unknown service of a
    /// known project has no entries.
    fn log_counts(
        &self,
        project: &str,
        service: Option<&str>,
        bucket: Bucket,
        since: i64,
    ) -> Result<Vec<LogCount>>;
    /// Per service of the project (every one, those without entries in the
    /// window too, with zeros): entries with a timestamp at or after
    /// `since` (from the start of its hour, as [`Store::log_counts`]) and
    /// how many of them were error or above; ordered by service name.
    /// `NotFound` for an unknown project.
    fn service_activity(&self, project: &str, since: i64) -> Result<Vec<ServiceActivity>>;

    /// Gives caches back to the allocator; called when the server has been
    /// idle for a while. The default does nothing.
    fn release_memory(&self) -> Result<()> {
        Ok(())
    }
}
