//! Issues: one problem, many events. The status model and its transitions
//! are pure, so every store applies them the same way.

use crate::{Attributes, Level};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an issue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    Unresolved,
    Resolved,
    Ignored,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }
}

impl fmt::Display for IssueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IssueStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "unresolved" => Ok(IssueStatus::Unresolved),
            "resolved" => Ok(IssueStatus::Resolved),
            "ignored" => Ok(IssueStatus::Ignored),
            other => Err(format!(
                "unknown status {other:?} (expected unresolved, resolved or ignored)"
            )),
        }
    }
}

/// How long an ignored issue stays ignored. With neither bound it is
/// ignored forever; with both, whichever comes first ends it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreUntil {
    /// Until this many more events arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Until this time (microseconds since the epoch; the API speaks RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// The part of an issue that events change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueState {
    pub status: IssueStatus,
    /// Set while an ignored issue waits; `count` is what is left of it.
    pub ignore: Option<IgnoreUntil>,
    /// A resolved issue got a new event and reopened.
    pub regressed: bool,
}

/// What an event did to an issue's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// A resolved issue got an event: unresolved again, flagged regressed.
    Regressed,
    /// An ignored issue's condition ran out (count or time).
    IgnoreEnded,
}

impl IssueState {
    /// Applies one event at time `at`; returns the status change, if any.
    pub fn on_event(&mut self, at: i64) -> Option<Transition> {
        match self.status {
            IssueStatus::Unresolved => None,
            IssueStatus::Resolved => {
                self.status = IssueStatus::Unresolved;
                self.regressed = true;
                self.ignore = None;
                Some(Transition::Regressed)
            }
            IssueStatus::Ignored => {
                let mut ignore = self.ignore?;
                let time_up = ignore.until.is_some_and(|u| at >= u);
                let count_up = match ignore.count {
                    Some(n) => {
                        let left = n.saturating_sub(1);
                        ignore.count = Some(left);
                        left == 0
                    }
                    None => false,
                };
                if time_up || count_up {
                    self.status = IssueStatus::Unresolved;
                    self.ignore = None;
                    Some(Transition::IgnoreEnded)
                } else {
                    self.ignore = Some(ignore);
                    None
                }
            }
        }
    }

    /// A person (or API client) sets the status.
    pub fn set(&mut self, status: IssueStatus, ignore: Option<IgnoreUntil>) {
        self.status = status;
        self.ignore = match status {
            IssueStatus::Ignored => Some(ignore.unwrap_or_default()).filter(|i| {
                // Forever is "no bound", stored as no condition.
                i.count.is_some() || i.until.is_some()
            }),
            _ => None,
        };
        if status == IssueStatus::Resolved {
            self.regressed = false;
        }
    }
}

/// One stack frame as events keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub in_app: bool,
}

/// An attachment of an event (the agent's log file, …), stored
/// content-addressed; the bytes are fetched separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub name: String,
    pub content_type: String,
    /// Size of the original (uncompressed) content in bytes.
    pub size: u64,
    /// SHA-256 of the original content, hex.
    pub sha256: String,
}

/// Lines around the error, when the sender provides them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContext {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// What an event carries besides the log entry's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<EventFrame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<EventContext>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub environment: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// Occurrences this event stands for (an agent's local throttle
    /// folds repeats into one event); 1 for a plain log entry.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// An event to record: which issue (by fingerprint), what to show, and the
/// entry it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub project: String,
    pub service: String,
    /// The grouping key (hex); events with equal fingerprints are one issue.
    pub fingerprint: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: Level,
    pub timestamp: i64,
    pub received_at: i64,
    /// The log entry it came from (None for events that are not log entries).
    pub log_id: Option<i64>,
    pub message: String,
    pub host: Option<String>,
    /// Who was affected (a user login), for the affected-users count.
    pub user: Option<String>,
    pub tags: Vec<String>,
    pub attributes: Attributes,
    pub details: EventDetails,
    /// An idempotency key: recording an event whose key was already
    /// recorded in the project does nothing.
    pub key: Option<String>,
}

/// An issue as stores return it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub id: i64,
    pub project: String,
    /// The service of its first event.
    pub service: String,
    pub fingerprint: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
    /// The highest level seen.
    pub level: Level,
    pub status: IssueStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore: Option<IgnoreUntil>,
    pub regressed: bool,
    /// Microseconds since the epoch.
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    pub hosts: u64,
    pub users: u64,
    /// Events in the last 24 hours and the 24 before (for the trend).
    pub count_24h: u64,
    pub count_prev_24h: u64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub issue_id: i64,
    pub project: String,
    pub service: String,
    pub level: Level,
    pub timestamp: i64,
    pub received_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_id: Option<i64>,
    pub title: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub tags: Vec<String>,
    pub attributes: Attributes,
    #[serde(flatten)]
    pub details: EventDetails,
}

/// One change of an issue's status, for its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    pub at: i64,
    /// Who: `system` for transitions events caused, else the token's
    /// description.
    pub actor: String,
    pub action: String,
    pub from: IssueStatus,
    pub to: IssueStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: IssueStatus, ignore: Option<IgnoreUntil>) -> IssueState {
        IssueState {
            status,
            ignore,
            regressed: false,
        }
    }

    #[test]
    fn resolved_issue_regresses_on_an_event() {
        let mut s = state(IssueStatus::Resolved, None);
        assert_eq!(s.on_event(10), Some(Transition::Regressed));
        assert_eq!(s.status, IssueStatus::Unresolved);
        assert!(s.regressed);
        assert_eq!(s.on_event(11), None);
        s.set(IssueStatus::Resolved, None);
        assert!(!s.regressed, "resolving clears the regression flag");
    }

    #[test]
    fn ignore_until_count_ends_after_that_many_events() {
        let mut s = state(IssueStatus::Unresolved, None);
        s.set(
            IssueStatus::Ignored,
            Some(IgnoreUntil {
                count: Some(3),
                until: None,
            }),
        );
        assert_eq!(s.on_event(1), None);
        assert_eq!(s.on_event(2), None);
        assert_eq!(s.on_event(3), Some(Transition::IgnoreEnded));
        assert_eq!(s.status, IssueStatus::Unresolved);
        assert!(!s.regressed);
    }

    #[test]
    fn ignore_until_time_ends_with_the_first_later_event() {
        let mut s = state(IssueStatus::Unresolved, None);
        s.set(
            IssueStatus::Ignored,
            Some(IgnoreUntil {
                count: None,
                until: Some(100),
            }),
        );
        assert_eq!(s.on_event(99), None);
        assert_eq!(s.status, IssueStatus::Ignored);
        assert_eq!(s.on_event(100), Some(Transition::IgnoreEnded));
    }

    #[test]
    fn ignore_forever_never_ends() {
        let mut s = state(IssueStatus::Unresolved, None);
        s.set(IssueStatus::Ignored, Some(IgnoreUntil::default()));
        assert_eq!(s.ignore, None);
        for t in 0..1000 {
            assert_eq!(s.on_event(t), None);
        }
        assert_eq!(s.status, IssueStatus::Ignored);
    }

    #[test]
    fn status_parses_case_insensitively() {
        assert_eq!("Resolved".parse(), Ok(IssueStatus::Resolved));
        assert!("done".parse::<IssueStatus>().is_err());
    }
}
