//! Server configuration: a TOML file (`Raw*` structs, unknown keys refused)
//! validated into [`Config`]. Precedence file < environment < flags is applied
//! by the binary, which sets the `Raw` fields before validation.

use faultline_ingest::Limits;
use faultline_model::{Level, parse_duration};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
pub const DEFAULT_DATA_DIR: &str = "./faultline-data";

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address to listen on (default 127.0.0.1:8470).
    pub listen: Option<String>,
    /// Directory for the database and state (default ./faultline-data).
    pub data_dir: Option<PathBuf>,
    /// On SIGINT/SIGTERM, how long requests in flight may take to finish
    /// before their connections are closed (default 5s). Queued batches are
    /// always committed.
    pub shutdown_grace: Option<String>,
    /// How long a client may take to send a request body (default 30s).
    pub body_timeout: Option<String>,
    /// Ingest limits.
    #[serde(default)]
    pub limits: Limits,
    /// How long entries are kept, per level.
    #[serde(default)]
    pub retention: RawRetention,
    /// Live tail settings.
    #[serde(default)]
    pub live: RawLive,
    /// Storage settings.
    #[serde(default)]
    pub storage: RawStorage,
    /// Ingest queue settings.
    #[serde(default)]
    pub queue: RawQueue,
    /// Issue settings.
    #[serde(default)]
    pub issues: RawIssues,
    /// The server's address as users reach it, for links in notifications
    /// (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Alerting: delivery settings, and channels and rules to create or
    /// update at start.
    #[serde(default)]
    pub alerts: RawAlerts,
}

/// Alerting settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Wait before the second delivery attempt; doubles each time (default 5s).
    pub retry_base: Option<String>,
    /// Delivery attempts before the dead-letter queue (default 10).
    pub max_attempts: Option<u32>,
    /// `[[alerts.channels]]`: `project`, `name`, `type` and the type's fields.
    #[serde(default)]
    pub channels: Vec<toml::Table>,
    /// `[[alerts.rules]]`: `project` and the rule's fields.
    #[serde(default)]
    pub rules: Vec<toml::Table>,
}

/// Issue settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssues {
    /// Entries at or above this level become events of issues (default error).
    pub level: Option<String>,
    /// How long events are kept (default 90d); issues and their counts stay.
    pub event_retention: Option<String>,
    /// Largest incident request body, after decompression (default 32 MiB).
    pub max_incident_bytes: Option<usize>,
    /// Largest attachment, uncompressed (default 16 MiB).
    pub max_attachment_bytes: Option<usize>,
}

/// Retention per level, as durations such as `7d` or `12h`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Default 7d.
    pub trace: Option<String>,
    /// Default 7d.
    pub debug: Option<String>,
    /// Default 7d.
    pub info: Option<String>,
    /// Default 30d.
    pub warn: Option<String>,
    /// Default 90d.
    pub error: Option<String>,
    /// Default 90d.
    pub critical: Option<String>,
    /// How often expired entries are deleted (default 1m).
    pub sweep_interval: Option<String>,
}

/// Live tail settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLive {
    /// Entries buffered per subscriber before entries are skipped (default 1000).
    pub buffer: Option<usize>,
    /// Interval of keep-alive pings (default 15s).
    pub ping_interval: Option<String>,
}

/// Storage settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// `full` (default: a 202 survives power loss) or `normal` (survives a
    /// process crash, not power loss).
    pub synchronous: Option<String>,
    /// SQLite page cache per connection, KiB (default 2048: the OS page cache
    /// serves the rest, and the server stays small when idle).
    pub cache_size_kib: Option<u32>,
}

/// Ingest queue settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// Entries accepted but not yet committed, at most (default 25000). This
    /// bounds the server's memory: each queued entry is held in RAM.
    pub capacity: Option<usize>,
    /// How long a request waits for room before 503 (default 5s).
    pub wait: Option<String>,
    /// Most entries committed in one transaction (default 10000).
    pub max_commit_entries: Option<usize>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub shutdown_grace: Duration,
    pub body_timeout: Duration,
    pub limits: Limits,
    /// Retention per level, indexed by `Level::code() - 1`.
    pub retention: [Duration; 6],
    pub sweep_interval: Duration,
    pub live_buffer: usize,
    pub ping_interval: Duration,
    pub synchronous_full: bool,
    pub cache_size_kib: u32,
    pub queue_capacity: usize,
    pub queue_wait: Duration,
    pub max_commit_entries: usize,
    /// Entries at or above this level become issue events.
    pub issue_level: Level,
    pub event_retention: Duration,
    pub max_incident_bytes: usize,
    pub max_attachment_bytes: usize,
    pub public_url: String,
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// Channels and rules of the config file: (project, spec as JSON).
    pub alert_channels: Vec<(String, serde_json::Value)>,
    pub alert_rules: Vec<(String, serde_json::Value)>,
}

/// Splits `project` off a config table; the rest as JSON.
fn project_entry(
    field: &'static str,
    mut t: toml::Table,
) -> Result<(String, serde_json::Value), ConfigError> {
    let project = match t.remove("project") {
        Some(toml::Value::String(p)) if !p.is_empty() => p,
        _ => {
            return Err(ConfigError::Invalid {
                field,
                reason: "every entry needs a project = \"...\"".into(),
            });
        }
    };
    let json = serde_json::to_value(&t).map_err(|e| ConfigError::Invalid {
        field,
        reason: e.to_string(),
    })?;
    Ok((project, json))
}

impl Config {
    /// Retention of one level.
    pub fn retention_of(&self, level: Level) -> Duration {
        self.retention[usize::from(level.code() - 1)]
    }
}

fn duration(
    field: &'static str,
    v: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).ok_or_else(|| ConfigError::Invalid {
            field,
            reason: format!("{s:?} is not a duration like 30s, 15m, 7d"),
        }),
    }
}

const DAY: u64 = 86_400;

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().replace('\n', " "),
        })
    }

    /// Validates into runtime settings.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            field: "listen",
            reason: format!("{listen_text:?} is not an address like 127.0.0.1:8470"),
        })?;
        let r = &self.retention;
        let d = |days: u64| Duration::from_secs(days * DAY);
        let retention = [
            duration("retention.trace", &r.trace, d(7))?,
            duration("retention.debug", &r.debug, d(7))?,
            duration("retention.info", &r.info, d(7))?,
            duration("retention.warn", &r.warn, d(30))?,
            duration("retention.error", &r.error, d(90))?,
            duration("retention.critical", &r.critical, d(90))?,
        ];
        let synchronous_full = match self.storage.synchronous.as_deref() {
            None | Some("full") => true,
            Some("normal") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    field: "storage.synchronous",
                    reason: format!("{other:?} is not full or normal"),
                });
            }
        };
        let l = &self.limits;
        for (field, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_entries", l.max_entries),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_name_bytes", l.max_name_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "must be greater than 0".into(),
                });
            }
        }
        let live_buffer = self.live.buffer.unwrap_or(1000);
        if live_buffer == 0 {
            return Err(ConfigError::Invalid {
                field: "live.buffer",
                reason: "must be greater than 0".into(),
            });
        }
        Ok(Config {
            listen,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            shutdown_grace: duration(
                "shutdown_grace",
                &self.shutdown_grace,
                Duration::from_secs(5),
            )?,
            body_timeout: duration("body_timeout", &self.body_timeout, Duration::from_secs(30))?,
            limits: self.limits,
            retention,
            sweep_interval: duration(
                "retention.sweep_interval",
                &r.sweep_interval,
                Duration::from_secs(60),
            )?,
            live_buffer,
            ping_interval: duration(
                "live.ping_interval",
                &self.live.ping_interval,
                Duration::from_secs(15),
            )?,
            synchronous_full,
            cache_size_kib: self.storage.cache_size_kib.unwrap_or(2048),
            queue_capacity: self.queue.capacity.unwrap_or(25_000).max(1),
            queue_wait: duration("queue.wait", &self.queue.wait, Duration::from_secs(5))?,
            max_commit_entries: self.queue.max_commit_entries.unwrap_or(10_000).max(1),
            issue_level: match self.issues.level.as_deref() {
                None => Level::Error,
                Some(l) => l.parse().map_err(|e| ConfigError::Invalid {
                    field: "issues.level",
                    reason: format!("{e}"),
                })?,
            },
            event_retention: duration(
                "issues.event_retention",
                &self.issues.event_retention,
                d(90),
            )?,
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{listen}")),
            retry_base: duration(
                "alerts.retry_base",
                &self.alerts.retry_base,
                Duration::from_secs(5),
            )?,
            max_attempts: self.alerts.max_attempts.unwrap_or(10).max(1),
            alert_channels: self
                .alerts
                .channels
                .into_iter()
                .map(|t| project_entry("alerts.channels", t))
                .collect::<Result<_, _>>()?,
            alert_rules: self
                .alerts
                .rules
                .into_iter()
                .map(|t| project_entry("alerts.rules", t))
                .collect::<Result<_, _>>()?,
            max_incident_bytes: self.issues.max_incident_bytes.unwrap_or(32 << 20).max(1024),
            max_attachment_bytes: self.issues.max_attachment_bytes.unwrap_or(16 << 20).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.retention_of(Level::Info), Duration::from_secs(7 * DAY));
        assert_eq!(c.retention_of(Level::Warn), Duration::from_secs(30 * DAY));
        assert_eq!(
            c.retention_of(Level::Critical),
            Duration::from_secs(90 * DAY)
        );
        assert!(c.synchronous_full);
    }

    #[test]
    fn file_values_and_errors() {
        let raw: RawConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\n[retention]\ninfo = \"1d\"\n[limits]\nmax_entries = 5\n",
        )
        .unwrap();
        let c = raw.validate().unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.retention_of(Level::Info), Duration::from_secs(DAY));
        assert_eq!(c.limits.max_entries, 5);
        assert!(toml::from_str::<RawConfig>("lisen = \"x\"").is_err());
        let bad: RawConfig = toml::from_str("[retention]\nwarn = \"forever\"").unwrap();
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::Invalid {
                field: "retention.warn",
                ..
            })
        ));
    }
}
