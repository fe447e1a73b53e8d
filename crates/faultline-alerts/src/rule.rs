//! Alert rules and notification channels as users write them (JSON or
//! TOML), validated.

use crate::AlertError;
use faultline_model::{Level, parse_duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest frequency threshold (the window keeps up to this many arrival
/// records per key until it fires).
pub const MAX_THRESHOLD: u64 = 100_000;

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// At least `count` events within `window` for one issue (or one
    /// service): fires on the `count`-th event, once per burst.
    Frequency {
        count: u64,
        /// A duration such as `1m`.
        window: String,
        #[serde(default)]
        per: Per,
    },
    /// An issue is seen for the first time.
    NewIssue,
    /// A resolved issue gets a new event.
    Regression,
    /// The share of a service's entries at error level or above, within
    /// `window`, reaches `threshold` (0–1) with at least `min_entries`
    /// entries in the window (default 100).
    ErrorRate {
        threshold: f64,
        window: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_entries: Option<u64>,
    },
}

/// What a frequency rule counts separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Issue,
    Service,
}

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub condition: Condition,
    /// Only events at or above this level (default: all events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Only these services (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Only events with at least one of these tags (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Channel names of the rule's project.
    pub channels: Vec<String>,
    /// A fired key re-arms after this long without events (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A validated rule of a project.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub project: String,
    pub spec: RuleSpec,
    pub kind: RuleKind,
    pub min_level: Option<Level>,
    /// Microseconds.
    pub cooldown: i64,
}

/// The condition, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleKind {
    Frequency {
        count: u64,
        window: i64,
        per: Per,
    },
    NewIssue,
    Regression,
    ErrorRate {
        threshold: f64,
        window: i64,
        min_entries: u64,
    },
}

fn micros(field: &str, v: &str) -> Result<i64, AlertError> {
    let d = parse_duration(v)
        .ok_or_else(|| AlertError::Invalid(format!("{field}: {v:?} is not a duration like 1m")))?;
    if d.is_zero() {
        return Err(AlertError::Invalid(format!("{field} must be more than 0")));
    }
    Ok(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl RuleSpec {
    /// Validates the spec (channel names are checked by the caller, who
    /// knows the project's channels).
    pub fn validate(self, id: i64, project: &str) -> Result<Rule, AlertError> {
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(AlertError::Invalid("name must be 1-128 bytes".into()));
        }
        if self.channels.is_empty() {
            return Err(AlertError::Invalid(
                "a rule needs at least one channel".into(),
            ));
        }
        let kind = match &self.condition {
            Condition::Frequency { count, window, per } => {
                if *count == 0 || *count > MAX_THRESHOLD {
                    return Err(AlertError::Invalid(format!(
                        "condition.count must be 1-{MAX_THRESHOLD}"
                    )));
                }
                RuleKind::Frequency {
                    count: *count,
                    window: micros("condition.window", window)?,
                    per: *per,
                }
            }
            Condition::NewIssue => RuleKind::NewIssue,
            Condition::Regression => RuleKind::Regression,
            Condition::ErrorRate {
                threshold,
                window,
                min_entries,
            } => {
                if !(*threshold > 0.0 && *threshold <= 1.0) {
                    return Err(AlertError::Invalid(
                        "condition.threshold must be a share in (0, 1], e.g. 0.05 for 5 %".into(),
                    ));
                }
                RuleKind::ErrorRate {
                    threshold: *threshold,
                    window: micros("condition.window", window)?,
                    min_entries: min_entries.unwrap_or(100).max(1),
                }
            }
        };
        let min_level = self
            .level
            .as_deref()
            .map(|l| {
                l.parse::<Level>()
                    .map_err(|e| AlertError::Invalid(format!("level: {e}")))
            })
            .transpose()?;
        let cooldown = micros("cooldown", self.cooldown.as_deref().unwrap_or("10m"))?;
        Ok(Rule {
            id,
            project: project.to_owned(),
            spec: self,
            kind,
            min_level,
            cooldown,
        })
    }
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelKind {
    /// Our documented JSON payload, optionally signed.
    Webhook {
        url: String,
        /// HMAC-SHA256 key: the body's signature is sent as
        /// `X-Faultline-Signature: sha256=<hex>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// Also tell the webhook when a burst ended (default false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        send_resolved: bool,
    },
    /// A Slack incoming webhook.
    Slack { url: String },
    /// A Microsoft Teams incoming webhook (or Workflows webhook): an
    /// Adaptive Card message.
    Teams { url: String },
    /// A Prometheus Alertmanager (`url` is its base, e.g.
    /// `http://127.0.0.1:9093`).
    Alertmanager { url: String },
    /// E-mail over SMTP.
    Email {
        smtp_host: String,
        /// Default 587 (`starttls`), 465 (`tls`), 25 (`none`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        smtp_port: Option<u16>,
        /// `starttls` (default), `tls` (implicit TLS) or `none`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        from: String,
        to: Vec<String>,
    },
    /// Tickets in ShotGrid (Flow Production Tracking): one per issue,
    /// found again by its signature; later firings add a note at most
    /// every `note_interval`. Use it with per-issue rules.
    Shotgrid {
        /// The site, e.g. `https://studio.shotgrid.autodesk.com`.
        site: String,
        script_name: String,
        script_key: String,
        project_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature_field: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closed_status: Option<String>,
        /// Least time between two notes on one ticket (default `1h`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note_interval: Option<String>,
    },
}

/// A channel as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: ChannelKind,
}

impl ChannelSpec {
    pub fn validate(&self) -> Result<(), AlertError> {
        if self.name.trim().is_empty()
            || self.name.len() > 64
            || self.name.contains('/')
            || self.name.chars().any(char::is_control)
        {
            return Err(AlertError::Invalid(
                "channel names are 1-64 bytes without '/' or control characters".into(),
            ));
        }
        let url = match &self.kind {
            ChannelKind::Webhook { url, headers, .. } => {
                for k in headers.keys() {
                    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(AlertError::Invalid(format!(
                            "header name {k:?} is not a valid HTTP header name"
                        )));
                    }
                }
                url
            }
            ChannelKind::Slack { url }
            | ChannelKind::Teams { url }
            | ChannelKind::Alertmanager { url } => url,
            ChannelKind::Email {
                smtp_host,
                tls,
                from,
                to,
                ..
            } => {
                if smtp_host.trim().is_empty() || from.trim().is_empty() || to.is_empty() {
                    return Err(AlertError::Invalid(
                        "e-mail channels need smtp_host, from and at least one to".into(),
                    ));
                }
                if let Some(t) = tls
                    && !matches!(t.as_str(), "starttls" | "tls" | "none")
                {
                    return Err(AlertError::Invalid(format!(
                        "tls {t:?} is not starttls, tls or none"
                    )));
                }
                return Ok(());
            }
            ChannelKind::Shotgrid {
                site,
                script_name,
                script_key,
                note_interval,
                ..
            } => {
                if script_name.is_empty() || script_key.is_empty() {
                    return Err(AlertError::Invalid(
                        "script_name and script_key are required".into(),
                    ));
                }
                if let Some(n) = note_interval {
                    micros("note_interval", n)?;
                }
                site
            }
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return Err(AlertError::Invalid(format!(
                "url {url:?} must be an http:// or https:// URL"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_validate() {
        let spec: RuleSpec = serde_json::from_str(
            r#"{"name":"storm","condition":{"type":"frequency","count":100,"window":"1m"},
                "channels":["teams"],"level":"error"}"#,
        )
        .unwrap();
        let rule = spec.validate(1, "p").unwrap();
        assert_eq!(
            rule.kind,
            RuleKind::Frequency {
                count: 100,
                window: 60_000_000,
                per: Per::Issue
            }
        );
        assert_eq!(rule.cooldown, 600_000_000);
        assert_eq!(rule.min_level, Some(Level::Error));
        assert!(rule.spec.enabled);

        let bad = |json: &str| {
            serde_json::from_str::<RuleSpec>(json)
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate(1, "p").map_err(|e| e.to_string()))
                .unwrap_err()
        };
        assert!(bad(r#"{"name":"x","condition":{"type":"frequency","count":0,"window":"1m"},"channels":["a"]}"#).contains("count"));
        assert!(bad(r#"{"name":"x","condition":{"type":"frequency","count":5,"window":"soon"},"channels":["a"]}"#).contains("window"));
        assert!(
            bad(r#"{"name":"x","condition":{"type":"new_issue"},"channels":[]}"#)
                .contains("channel")
        );
        assert!(
            bad(r#"{"name":"x","condition":{"type":"sometimes"},"channels":["a"]}"#)
                .contains("sometimes")
        );
        assert!(
            bad(r#"{"name":"x","condition":{"type":"new_issue"},"channels":["a"],"level":"loud"}"#)
                .contains("level")
        );
    }

    #[test]
    fn channels_parse_and_validate() {
        let c: ChannelSpec = serde_json::from_str(
            r#"{"name":"hook","type":"webhook","url":"http://127.0.0.1:9/x","secret":"s","headers":{"X-Env":"prod"}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        let c: ChannelSpec =
            serde_json::from_str(r#"{"name":"t","type":"teams","url":"ftp://nope"}"#).unwrap();
        assert!(c.validate().is_err());
        assert!(
            serde_json::from_str::<ChannelSpec>(r#"{"name":"t","type":"pager","url":"http://x"}"#)
                .is_err()
        );
    }
}
