//! The alerting side of a store: rules, channels, rule state and the
//! notification outbox (with its dead-letter queue).

use crate::Result;
use serde::Serialize;

/// A rule as stored: its id, project and the spec as JSON (validated by
/// the caller with `faultline-alerts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRule {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub spec: String,
}

/// A channel as stored: the spec as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredChannel {
    pub project: String,
    pub name: String,
    pub spec: String,
}

/// A notification to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub project: String,
    pub rule_id: i64,
    pub channel: String,
    /// The trigger's id: one notification per (dedupe, channel), ever.
    pub dedupe: String,
    /// The trigger (JSON), rendered for the channel at delivery time.
    pub trigger: String,
}

/// What alert evaluation writes, atomically with what caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertWrites {
    pub notifications: Vec<NewNotification>,
    /// (rule id, key, state JSON or None to delete).
    pub states: Vec<(i64, String, Option<String>)>,
}

impl AlertWrites {
    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty() && self.states.is_empty()
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Every attempt failed: in the dead-letter queue until retried or
    /// discarded.
    Dead,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationStatus> {
        match s {
            "pending" => Some(NotificationStatus::Pending),
            "delivered" => Some(NotificationStatus::Delivered),
            "dead" => Some(NotificationStatus::Dead),
            _ => None,
        }
    }
}

/// A notification in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub project: String,
    pub rule_id: i64,
    pub channel: String,
    pub dedupe: String,
    pub trigger: String,
    pub status: NotificationStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        at: i64,
    },
    /// Failed; try again at `retry_at`, or give up (dead) when None.
    Failed {
        at: i64,
        error: String,
        retry_at: Option<i64>,
    },
}

/// Alert rules, channels, their state and the outbox. Semantics (checked by
/// [`crate::contract_alerts`]): a (dedupe, channel) pair enters the outbox
/// once, ever; a notification is handed out for delivery only while
/// pending and due; dead ones wait for `retry_notification`.
pub trait AlertStore: Send + Sync {
    /// Creates or replaces a channel of a project (creating the project).
    fn put_channel(&self, project: &str, name: &str, spec: &str) -> Result<()>;
    fn list_channels(&self, project: Option<&str>) -> Result<Vec<StoredChannel>>;
    /// `NotFound` when there is no such channel.
    fn delete_channel(&self, project: &str, name: &str) -> Result<()>;

    /// Creates a rule (names are unique per project: `Invalid` otherwise);
    /// returns it with its id.
    fn create_rule(&self, project: &str, name: &str, spec: &str) -> Result<StoredRule>;
    /// Replaces a rule's name and spec (its state is kept).
    fn update_rule(&self, id: i64, name: &str, spec: &str) -> Result<StoredRule>;
    /// Deletes a rule and its state (its notifications stay).
    fn delete_rule(&self, id: i64) -> Result<()>;
    fn list_rules(&self, project: Option<&str>) -> Result<Vec<StoredRule>>;
    /// A rule by name within a project.
    fn find_rule(&self, project: &str, name: &str) -> Result<Option<StoredRule>>;

    /// Every persisted rule-key state: (rule id, key, JSON).
    fn alert_states(&self) -> Result<Vec<(i64, String, String)>>;
    /// Writes notifications and states in one transaction (re-arming on a
    /// timer, outside event recording).
    fn record_alerts(&self, writes: &AlertWrites) -> Result<()>;

    /// Pending notifications due at `now`, oldest first.
    fn due_notifications(&self, now: i64, limit: usize) -> Result<Vec<Notification>>;
    /// The earliest `next_attempt_at` of the pending ones.
    fn next_due(&self) -> Result<Option<i64>>;
    fn record_attempt(&self, id: i64, attempt: &Attempt) -> Result<()>;
    fn list_notifications(
        &self,
        project: Option<&str>,
        status: Option<NotificationStatus>,
        limit: usize,
    ) -> Result<Vec<Notification>>;
    fn get_notification(&self, id: i64) -> Result<Option<Notification>>;
    /// Puts a dead (or pending) notification back in line for now, with
    /// its attempts reset. `NotFound` if there is none, `Invalid` if it was
    /// delivered.
    fn retry_notification(&self, id: i64, now: i64) -> Result<Notification>;
    /// Deletes a notification that is not delivered.
    fn discard_notification(&self, id: i64) -> Result<()>;
}
