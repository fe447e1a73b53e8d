//! The issue side of a store: issues, their events, status history, and
//! the issue processor's durable state.

use crate::{AlertWrites, Result};
use faultline_model::{
    IgnoreUntil, Issue, IssueStatus, Level, NewEvent, StatusChange, StoredEvent,
};
use serde::Serialize;

/// How issue lists are sorted (always descending).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IssueSort {
    #[default]
    LastSeen,
    FirstSeen,
    Count,
    /// Events in the last 24 h minus the 24 h before.
    Trend,
}

impl std::str::FromStr for IssueSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "last_seen" => Ok(IssueSort::LastSeen),
            "first_seen" => Ok(IssueSort::FirstSeen),
            "count" => Ok(IssueSort::Count),
            "trend" => Ok(IssueSort::Trend),
            other => Err(format!(
                "unknown sort {other:?} (expected last_seen, first_seen, count or trend)"
            )),
        }
    }
}

/// Which issues to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueQuery {
    pub project: Option<String>,
    pub service: Option<String>,
    pub status: Option<IssueStatus>,
    /// Issues whose highest level is at least this.
    pub min_level: Option<Level>,
    /// Case-insensitive substring of the title, culprit or exception type.
    pub q: Option<String>,
    pub sort: IssueSort,
    pub limit: usize,
    /// 1-based page.
    pub page: u32,
    /// Reference time for the trend columns (microseconds).
    pub now: i64,
}

/// A page of issues.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuePage {
    pub issues: Vec<Issue>,
    /// Issues matching the query on all pages.
    pub total: u64,
}

/// Where an event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventOutcome {
    pub event_id: i64,
    pub issue_id: i64,
    /// The issue was created by this event.
    pub new_issue: bool,
    /// The event reopened a resolved issue.
    pub regressed: bool,
    /// The event's idempotency key was seen before: nothing was recorded,
    /// the ids are those of the first recording.
    pub duplicate: bool,
}

/// What the issue processor commits at once: events, template merges,
/// grouper state and how far through the log it got.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    pub events: Vec<NewEvent>,
    /// (project, from fingerprint, into fingerprint): the grouper merged
    /// two templates; their issues become one.
    pub merges: Vec<(String, String, String)>,
    /// (project, serialized grouper state) to persist.
    pub grouper_states: Vec<(String, Vec<u8>)>,
    /// Every log entry up to this id has been processed (None: unchanged).
    pub processed_through: Option<i64>,
    /// The batch must survive a power loss when `record_events` returns
    /// (an incident acknowledged to an agent). Batches derived from stored
    /// log entries need not: a lost one is replayed from the watermark
    /// committed with it, so stores may commit them without waiting for the
    /// disk.
    pub durable: bool,
}

/// A status change requested through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub status: IssueStatus,
    pub ignore: Option<IgnoreUntil>,
    pub actor: String,
    pub at: i64,
}

/// An issue's ticket in an external tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueTicket {
    /// `shotgrid`, …
    pub tracker: String,
    pub external_id: String,
    pub url: String,
    /// The log is attached.
    pub attached: bool,
    /// When the last note was added (µs).
    pub last_note_at: Option<i64>,
}

/// An attachment's content, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// SHA-256 of the original (uncompressed) bytes, lowercase hex.
    pub sha256: String,
    pub content_type: String,
    /// Size of the original bytes.
    pub size: u64,
    /// The content, gzip-compressed.
    pub gzip: Vec<u8>,
}

/// A project's issues at a glance ([`IssueStore::project_overview`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectOverview {
    /// Issues whose status is unresolved.
    pub unresolved: u64,
    /// Issues (any status) with `first_seen >= since`.
    pub new_since: u64,
    /// Unresolved issues whose regressed flag is set.
    pub regressed: u64,
}

/// Most ids [`IssueStore::issues_for_logs`] and [`IssueStore::issue_counts`]
/// take in one call.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// Time buckets for a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn micros(self) -> i64 {
        match self {
            Bucket::Hour => 3_600_000_000,
            Bucket::Day => 86_400_000_000,
        }
    }
}

/// Issues, events and the issue processor's state. Semantics every adapter
/// honours (checked by [`crate::contract_issues`]):
/// - `record_events` is atomic: all its events, merges, states and the
///   watermark, or nothing.
/// - One issue per (project, fingerprint), whatever the concurrency; a
///   merged-away fingerprint keeps pointing at the issue it was merged into.
/// - Counts are exact: an issue's count is the sum of its events' counts.
pub trait IssueStore: Send + Sync {
    /// Records a batch (see the trait docs).
    fn record_events(&self, batch: &EventBatch) -> Result<Vec<EventOutcome>> {
        self.record_events_and(batch, &mut |_| AlertWrites::default())
    }
    /// Records a batch and, in the same transaction, what `then` makes of
    /// the outcomes (alert notifications and rule states): an event and
    /// the alert it causes commit together or not at all. `then` may be
    /// called again if the transaction is retried.
    fn record_events_and(
        &self,
        batch: &EventBatch,
        then: &mut dyn FnMut(&[EventOutcome]) -> AlertWrites,
    ) -> Result<Vec<EventOutcome>>;
    /// The processor's watermark: every log id up to it was processed.
    fn issues_processed_through(&self) -> Result<i64>;
    /// Persisted grouper states, by project name.
    fn grouper_states(&self) -> Result<Vec<(String, Vec<u8>)>>;

    fn list_issues(&self, query: &IssueQuery) -> Result<IssuePage>;
    /// `now` is the reference time of the trend counts.
    fn get_issue(&self, id: i64, now: i64) -> Result<Option<Issue>>;
    /// Events newest first, older than `before` (an event id) when given.
    fn issue_events(&self, id: i64, before: Option<i64>, limit: usize) -> Result<Vec<StoredEvent>>;
    /// The oldest event of an issue.
    fn first_event(&self, id: i64) -> Result<Option<StoredEvent>>;
    /// Event counts per bucket from `since` on: (bucket start, count), only
    /// non-empty buckets, oldest first.
    fn issue_histogram(&self, id: i64, bucket: Bucket, since: i64) -> Result<Vec<(i64, u64)>>;
    fn set_issue_status(&self, id: i64, update: &StatusUpdate) -> Result<Issue>;
    fn issue_history(&self, id: i64) -> Result<Vec<StatusChange>>;
    /// Merges `from` into `into`: events, counts and fingerprints move;
    /// `from` is deleted. Both must be in one project.
    fn merge_issues(&self, into: i64, from: i64, actor: &str, at: i64) -> Result<Issue>;
    /// Deletes an issue and its events; a later event of its fingerprint
    /// opens a new issue.
    fn delete_issue(&self, id: i64) -> Result<()>;
    /// Deletes events with a timestamp before `before` (at most `max_rows`),
    /// and the attachments no remaining event refers to.
    fn delete_expired_events(&self, before: i64, max_rows: usize) -> Result<usize>;

    /// Stores an attachment's gzip-compressed bytes under the SHA-256 (hex)
    /// of its original content; storing the same content again does
    /// nothing. Store attachments before the events that refer to them.
    fn put_attachment(&self, attachment: &Attachment) -> Result<()>;
    /// An attachment by the SHA-256 of its content.
    fn get_attachment(&self, sha256: &str) -> Result<Option<Attachment>>;

    /// The external ticket linked to an issue, if any.
    fn issue_ticket(&self, issue: i64) -> Result<Option<IssueTicket>>;
    /// Links (or updates the link of) an issue to its external ticket.
    fn set_issue_ticket(&self, issue: i64, ticket: &IssueTicket) -> Result<()>;

    /// Counts of a project's issues; `NotFound` for an unknown project.
    fn project_overview(&self, project: &str, since: i64) -> Result<ProjectOverview>;
    /// (log id, issue id) for those of `log_ids` that became issue events,
    /// ordered by log id then issue id, each pair once; ids without an event
    /// are left out. At most [`MAX_IDS_PER_CALL`] ids (`Invalid` beyond).
    fn issues_for_logs(&self, log_ids: &[i64]) -> Result<Vec<(i64, i64)>>;
    /// Hourly event counts `(issue id, hour start, count)` of the given
    /// issues with `hour >= since`, ordered by issue then hour; only
    /// non-empty hours. At most [`MAX_IDS_PER_CALL`] ids (`Invalid`
    /// beyond).
    fn issue_counts(&self, issue_ids: &[i64], since: i64) -> Result<Vec<(i64, i64, u64)>>;

    /// A project's fingerprint rules (JSON as the user wrote it), if any.
    fn fingerprint_rules(&self, project: &str) -> Result<Option<String>>;
    /// Stores a project's fingerprint rules (validated by the caller).
    fn set_fingerprint_rules(&self, project: &str, rules_json: &str) -> Result<()>;
}
