//! Configuration: the TOML file (`Raw*` serde types, unknown keys refused),
//! overridden by the environment and flags ([`Overrides`]), validated into
//! [`AgentConfig`] (durations parsed, regexes and globs compiled).
//!
//! Two phases, as in ripgrep: [`RawConfig`] is what the user wrote;
//! [`AgentConfig::build`] checks all of it and reports the first problem
//! with the key that holds it (`sources[1].format: ...`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_model::{Level, parse_duration};
use faultline_tail::StartAt;
use regex::Regex;
use serde::Deserialize;

use crate::parse::Format;
use crate::redact::{RedactRule, Redactor};

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys included).
    #[error("invalid config {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (one line).
        message: String,
    },
    /// A value is invalid.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The configuration file as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Base URL of the faultline server (`http://host:port`).
    pub server: Option<String>,
    /// Ingest token used when a source has none of its own.
    pub token: Option<String>,
    /// Directory for the lock, checkpoints, spool and dead letters.
    pub state_dir: Option<PathBuf>,
    /// User login shown in titles and environment [default: the OS login].
    pub user: Option<String>,
    /// Defaults for every source's matcher.
    #[serde(default)]
    pub matcher: RawMatcher,
    /// Lines around an error.
    #[serde(default)]
    pub context: RawContext,
    /// The log tail attached to each incident.
    #[serde(default)]
    pub attachment: RawAttachment,
    /// What is reported about the machine.
    #[serde(default)]
    pub environment: RawEnvironment,
    /// Secret scrubbing.
    #[serde(default)]
    pub redaction: RawRedaction,
    /// The on-disk queue.
    #[serde(default)]
    pub spool: RawSpool,
    /// Retries and timeouts.
    #[serde(default)]
    pub delivery: RawDelivery,
    /// Local rate limit per fingerprint.
    #[serde(default)]
    pub throttle: RawThrottle,
    /// File watching.
    #[serde(default)]
    pub tail: RawTail,
    /// Files to watch. Without any (and without `--watch`), the ShotGrid
    /// Toolkit log folder of the OS.
    #[serde(default)]
    pub sources: Vec<RawSource>,
}

/// Which records become incidents.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatcher {
    /// Lowest level that makes an incident [default: error].
    pub min_level: Option<String>,
    /// Regexes: a record matching one is an incident whatever its level.
    pub include: Option<Vec<String>>,
    /// Regexes: a record matching one is never an incident.
    pub exclude: Option<Vec<String>>,
}

/// Context lines.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContext {
    /// Lines kept before the error [default: 20].
    pub before: Option<usize>,
    /// Lines waited for after the error [default: 10].
    pub after: Option<usize>,
    /// Longest wait for those lines, counted from when the error's record
    /// is complete; for an error nothing follows, from its last line (the
    /// wait overlaps the multiline timeout) [default: 100ms].
    pub after_wait: Option<String>,
}

/// Attachment of the log's tail.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttachment {
    /// Attach the log file's tail [default: true].
    pub enabled: Option<bool>,
    /// Bytes taken from the end of the file, before compression [default: 1 MiB].
    pub max_bytes: Option<u64>,
    /// Compressed size above which the attachment is left out [default: 4 MiB].
    pub max_compressed_bytes: Option<u64>,
}

/// Environment capture.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    /// Names (with `*` wildcards) of environment variables reported
    /// [default: `["TK_*", "SHOTGUN_*"]`].
    pub variables: Option<Vec<String>>,
    /// Extra fixed values added to every incident's environment.
    pub extra: Option<BTreeMap<String, String>>,
}

/// Redaction rules.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedaction {
    /// Apply the built-in rules (passwords, tokens, keys, Authorization
    /// headers, private key blocks) [default: true].
    pub defaults: Option<bool>,
    /// Extra rules, applied after the built-in ones.
    #[serde(default)]
    pub rules: Vec<RawRedactRule>,
}

/// One redaction rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedactRule {
    /// Regex of what to hide.
    pub pattern: String,
    /// Replacement (`$1` refers to groups) [default: `[REDACTED]`].
    pub replacement: Option<String>,
}

/// Spool limits.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    /// Most bytes on disk; when full the oldest items are dropped and
    /// counted [default: 256 MiB].
    pub max_bytes: Option<u64>,
}

/// Delivery settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// First retry delay [default: 1s].
    pub initial_backoff: Option<String>,
    /// Longest retry delay [default: 5m].
    pub max_backoff: Option<String>,
    /// Connect + request timeout [default: 30s].
    pub timeout: Option<String>,
    /// Most lines per shipped batch [default: 1000].
    pub batch_lines: Option<usize>,
    /// PEM file of the certificate authorities an `https://` server is
    /// checked against instead of the OS trust store (a studio's own CA).
    pub ca_file: Option<PathBuf>,
}

/// Throttle settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThrottle {
    /// Same fingerprint within this window: one incident with a count
    /// [default: 60s; `0s` disables].
    pub window: Option<String>,
}

/// Tailer settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTail {
    /// `notify` (OS events + rescan) or `poll` [default: notify].
    pub watch: Option<String>,
    /// How often globs are re-evaluated and files checked without a
    /// notification [default: 5s with `notify`, 1s with `poll`].
    pub rescan_interval: Option<String>,
    /// A traceback is complete when no line joined it this long [default: 100ms].
    pub multiline_timeout: Option<String>,
}

/// One source of logs.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Name (checkpoints are kept per name) (default: `source<N>`).
    pub name: Option<String>,
    /// Glob patterns of files.
    pub paths: Vec<String>,
    /// Glob patterns of files to leave out.
    #[serde(default)]
    pub exclude_paths: Vec<String>,
    /// `auto`, `shotgrid`, `python`, `log4j`, `syslog`, `json`, `plain`
    /// [default: auto].
    pub format: Option<String>,
    /// Service name sent with incidents [default: the token's service].
    pub service: Option<String>,
    /// Tags added to every incident and line.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Ingest token for this source (tokens are bound to one service).
    pub token: Option<String>,
    /// `end` or `beginning` for files present at the first start [default: end].
    pub start_at: Option<String>,
    /// Also ship every line to `/api/v1/logs` [default: false].
    pub ship_all_lines: Option<bool>,
    /// Group tracebacks and other continuation lines [default: true].
    pub multiline: Option<bool>,
    /// Overrides of the global matcher.
    #[serde(default)]
    pub matcher: RawMatcher,
}

/// Values from the environment and the command line (they win over the
/// file, flags over environment; clap merges those two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--server` / `FAULTLINE_SERVER`.
    pub server: Option<String>,
    /// `--token` / `FAULTLINE_TOKEN`.
    pub token: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--watch` globs (one extra source).
    pub watch: Vec<String>,
}

/// Compiled matcher rules.
#[derive(Debug, Clone)]
pub struct MatcherConfig {
    /// Lowest level that makes an incident.
    pub min_level: Level,
    /// A record matching one is an incident whatever its level.
    pub include: Vec<Regex>,
    /// A record matching one is never an incident.
    pub exclude: Vec<Regex>,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name.
    pub name: String,
    /// Globs.
    pub paths: Vec<String>,
    /// Excluded globs.
    pub exclude_paths: Vec<String>,
    /// Line format.
    pub format: Format,
    /// Service name, `None`: the token's.
    pub service: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Token, `None`: the global one.
    pub token: Option<String>,
    /// Start position at first start.
    pub start_at: StartAt,
    /// Ship every line.
    pub ship_all_lines: bool,
    /// Multiline grouping.
    pub multiline: bool,
    /// Matcher.
    pub matcher: MatcherConfig,
    /// The zero-config ShotGrid source (engine from `tk-<engine>.log`).
    pub shotgrid_default: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Server base URL, if any (`check` works without one).
    pub server: Option<String>,
    /// Default token.
    pub token: Option<String>,
    /// State directory.
    pub state_dir: PathBuf,
    /// User login.
    pub user: String,
    /// Sources.
    pub sources: Vec<SourceConfig>,
    /// Lines before.
    pub context_before: usize,
    /// Lines after.
    pub context_after: usize,
    /// Wait for lines after.
    pub after_wait: Duration,
    /// Attach the log tail.
    pub attachment_enabled: bool,
    /// Bytes of log tail.
    pub attachment_max_bytes: u64,
    /// Compressed cap.
    pub attachment_max_compressed: u64,
    /// Environment variable name patterns.
    pub env_variables: Vec<String>,
    /// Extra environment values.
    pub env_extra: BTreeMap<String, String>,
    /// Redaction.
    pub redactor: Redactor,
    /// Spool cap.
    pub spool_max_bytes: u64,
    /// Backoff start.
    pub initial_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// Request timeout.
    pub timeout: Duration,
    /// Lines per batch.
    pub batch_lines: usize,
    /// CA certificates for `https://` instead of the OS trust store.
    pub ca_file: Option<PathBuf>,
    /// Throttle window (zero: off).
    pub throttle_window: Duration,
    /// Use OS notifications.
    pub notify: bool,
    /// Rescan interval.
    pub rescan_interval: Duration,
    /// Multiline flush timeout.
    pub multiline_timeout: Duration,
    /// Catch-up reads skip the records that cannot matter without framing
    /// them (`pipeline::scan_filter`). Always on from a configuration;
    /// tests and `bench scan --line-by-line` turn it off to compare.
    pub scan_filter: bool,
}

/// Reads and parses a config file (no validation yet). Relative paths in
/// it (`state_dir`, `delivery.ca_file`, the sources' globs) are relative to
/// the file's directory, not to wherever the agent was started (a service
/// starts in `/` or the home directory); see [`RawConfig::resolve_paths`].
pub fn load_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut raw = parse_toml(&text).map_err(|message| ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    })?;
    let dir = absolute_path(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    raw.resolve_paths(
        &dir,
        crate::platform::home(&crate::platform::process_env).as_deref(),
    );
    Ok(raw)
}

/// `p` made absolute against the current directory, `.` and `..` resolved
/// by their names (as the path was written: a symlinked directory is not
/// followed, and no `\\?\` prefix on Windows).
pub fn absolute_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl RawConfig {
    /// Makes the relative paths of the file absolute against `dir` and
    /// expands a leading `~` to `home`. Excludes without a directory part
    /// (`*.gz`) stay file-name patterns.
    pub fn resolve_paths(&mut self, dir: &Path, home: Option<&Path>) {
        let path = |p: &mut PathBuf| {
            let s = p.to_string_lossy().into_owned();
            // An empty path stays empty: validation names it.
            if !s.is_empty() {
                *p = PathBuf::from(absolute_glob(dir, home, &s, false));
            }
        };
        if let Some(p) = &mut self.state_dir {
            path(p);
        }
        if let Some(p) = &mut self.delivery.ca_file {
            path(p);
        }
        for s in &mut self.sources {
            for g in &mut s.paths {
                *g = absolute_glob(dir, home, g, true);
            }
            for g in &mut s.exclude_paths {
                if has_dir_part(g) {
                    *g = absolute_glob(dir, home, g, true);
                }
            }
        }
    }
}

fn has_dir_part(glob: &str) -> bool {
    glob.contains('/') || (cfg!(windows) && glob.contains('\\'))
}

/// `text` (a path, or a glob when `glob`) made absolute against `dir`, a
/// leading `~` expanded to `home`; unchanged when absolute or empty. The
/// directory is escaped when it goes into a glob (a `[` in a directory name
/// is a character, not a class).
pub fn absolute_glob(dir: &Path, home: Option<&Path>, text: &str, glob: bool) -> String {
    let escape = |p: &Path| {
        let s = p.to_string_lossy();
        if glob {
            glob::Pattern::escape(&s)
        } else {
            s.into_owned()
        }
    };
    let join = |base: String, rest: &str| {
        let sep = std::path::MAIN_SEPARATOR;
        if rest.is_empty() {
            base
        } else if base.ends_with(sep) || base.ends_with('/') {
            format!("{base}{rest}")
        } else {
            format!("{base}{sep}{rest}")
        }
    };
    if let Some(home) = home {
        if text == "~" {
            return escape(home);
        }
        if let Some(rest) = text
            .strip_prefix("~/")
            .or_else(|| text.strip_prefix("~\\").filter(|_| cfg!(windows)))
        {
            return join(escape(home), rest);
        }
    }
    if text.is_empty() || Path::new(text).is_absolute() {
        text.to_owned()
    } else {
        join(escape(dir), text)
    }
}

/// Parses TOML text into the raw config; the error is one line.
pub fn parse_toml(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_owned();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {msg}")
            }
            None => msg,
        }
    })
}

fn duration(key: &str, v: Option<&String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).ok_or_else(|| {
            invalid(
                key,
                format!("invalid duration {s:?} (use e.g. 500ms, 30s, 5m)"),
            )
        }),
    }
}

fn regexes(key: &str, v: &[String]) -> Result<Vec<Regex>, ConfigError> {
    v.iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(p).map_err(|e| {
                let first = e.to_string();
                let first = first.lines().last().unwrap_or_default().trim().to_owned();
                invalid(
                    format!("{key}[{i}]"),
                    format!("invalid regex {p:?}: {first}"),
                )
            })
        })
        .collect()
}

fn matcher(
    key: &str,
    raw: &RawMatcher,
    base: &MatcherConfig,
) -> Result<MatcherConfig, ConfigError> {
    let min_level = match &raw.min_level {
        None => base.min_level,
        Some(s) => s
            .parse::<Level>()
            .map_err(|e| invalid(format!("{key}.min_level"), e.to_string()))?,
    };
    let include = match &raw.include {
        None => base.include.clone(),
        Some(v) => regexes(&format!("{key}.include"), v)?,
    };
    let exclude = match &raw.exclude {
        None => base.exclude.clone(),
        Some(v) => regexes(&format!("{key}.exclude"), v)?,
    };
    Ok(MatcherConfig {
        min_level,
        include,
        exclude,
    })
}

fn check_globs(key: &str, globs: &[String]) -> Result<(), ConfigError> {
    for (i, g) in globs.iter().enumerate() {
        if let Err(e) = glob::Pattern::new(g) {
            return Err(invalid(
                format!("{key}[{i}]"),
                format!("invalid glob {g:?}: {e}"),
            ));
        }
    }
    Ok(())
}

/// Checks a server URL: `http(s)://host[:port][/prefix]`.
pub fn check_server_url(s: &str) -> Result<(), String> {
    crate::http::Endpoint::parse(s)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl AgentConfig {
    /// Validates `raw` with `over` applied. `home` and `env` are passed in
    /// (tests); see [`crate::platform`] for the defaults they feed.
    pub fn build(
        mut raw: RawConfig,
        over: Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AgentConfig, ConfigError> {
        if over.server.is_some() {
            raw.server = over.server;
        }
        if over.token.is_some() {
            raw.token = over.token;
        }
        if over.state_dir.is_some() {
            raw.state_dir = over.state_dir;
        }
        let server = match raw.server.map(|s| s.trim().to_owned()) {
            Some(s) if s.is_empty() => None,
            Some(s) => {
                check_server_url(&s).map_err(|m| invalid("server", m))?;
                Some(s)
            }
            None => None,
        };
        let token = raw.token.filter(|t| !t.trim().is_empty());
        if let Some(t) = &token
            && t.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("token", "must not contain whitespace"));
        }
        let state_dir = match raw.state_dir {
            Some(d) if d.as_os_str().is_empty() => {
                return Err(invalid("state_dir", "must not be empty"));
            }
            Some(d) => d,
            None => crate::platform::default_state_dir(env)
                .ok_or_else(|| invalid("state_dir", "no home directory; set state_dir"))?,
        };
        let user = raw
            .user
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| crate::platform::user_login(env));

        let base = matcher(
            "matcher",
            &raw.matcher,
            &MatcherConfig {
                min_level: Level::Error,
                include: Vec::new(),
                exclude: Vec::new(),
            },
        )?;

        let mut sources = Vec::new();
        for (i, s) in raw.sources.iter().enumerate() {
            let key = format!("sources[{i}]");
            sources.push(source(&key, s, &base, format!("source{i}"))?);
        }
        if !over.watch.is_empty() {
            let s = RawSource {
                name: Some("watch".into()),
                paths: over.watch.clone(),
                ..Default::default()
            };
            sources.push(source("--watch", &s, &base, "watch".into())?);
        }
        if sources.is_empty() {
            let dir = crate::platform::shotgrid_log_dir(env)
                .ok_or_else(|| invalid("sources", "no home directory for the ShotGrid default"))?;
            let s = RawSource {
                name: Some("shotgrid".into()),
                paths: vec![dir.join("tk-*.log").to_string_lossy().into_owned()],
                format: Some("shotgrid".into()),
                ..Default::default()
            };
            let mut s = source("sources", &s, &base, "shotgrid".into())?;
            s.shotgrid_default = true;
            sources.push(s);
        }
        let mut seen = std::collections::HashSet::new();
        for s in &sources {
            if !seen.insert(s.name.clone()) {
                return Err(invalid(
                    "sources",
                    format!("duplicate source name {:?}", s.name),
                ));
            }
        }

        let c = &raw.context;
        let a = &raw.attachment;
        let attachment_max_compressed = a.max_compressed_bytes.unwrap_or(4 << 20);
        if attachment_max_compressed == 0 {
            return Err(invalid("attachment.max_compressed_bytes", "must be > 0"));
        }
        let mut env_variables = raw
            .environment
            .variables
            .clone()
            .unwrap_or_else(|| vec!["TK_*".into(), "SHOTGUN_*".into()]);
        env_variables.retain(|v| !v.is_empty());
        for (i, v) in env_variables.iter().enumerate() {
            if v.chars().any(|c| c == '=' || c.is_whitespace()) {
                return Err(invalid(
                    format!("environment.variables[{i}]"),
                    format!("{v:?} is not a variable name pattern"),
                ));
            }
        }

        let mut rules = Vec::new();
        for (i, r) in raw.redaction.rules.iter().enumerate() {
            let re = regexes(
                &format!("redaction.rules[{i}].pattern"),
                std::slice::from_ref(&r.pattern),
            )
            .map_err(|e| match e {
                ConfigError::Invalid { message, .. } => {
                    invalid(format!("redaction.rules[{i}].pattern"), message)
                }
                other => other,
            })?;
            rules.push(RedactRule {
                pattern: re.into_iter().next().expect("one pattern compiled"),
                replacement: r.replacement.clone().unwrap_or_else(|| "[REDACTED]".into()),
            });
        }
        let redactor = Redactor::new(raw.redaction.defaults.unwrap_or(true), rules);

        let spool_max_bytes = raw.spool.max_bytes.unwrap_or(256 << 20);
        if spool_max_bytes < 64 << 10 {
            return Err(invalid("spool.max_bytes", "must be at least 65536"));
        }
        let d = &raw.delivery;
        let initial_backoff = duration(
            "delivery.initial_backoff",
            d.initial_backoff.as_ref(),
            Duration::from_secs(1),
        )?;
        let max_backoff = duration(
            "delivery.max_backoff",
            d.max_backoff.as_ref(),
            Duration::from_secs(300),
        )?;
        if initial_backoff.is_zero() || max_backoff < initial_backoff {
            return Err(invalid(
                "delivery",
                "initial_backoff must be > 0 and <= max_backoff",
            ));
        }
        let timeout = duration(
            "delivery.timeout",
            d.timeout.as_ref(),
            Duration::from_secs(30),
        )?;
        if timeout.is_zero() {
            return Err(invalid("delivery.timeout", "must be > 0"));
        }
        if let Some(ca) = &d.ca_file {
            crate::http::load_ca(ca).map_err(|e| match e {
                crate::http::TlsError::CaFile { path, reason } => {
                    invalid("delivery.ca_file", format!("{path}: {reason}"))
                }
                other => invalid("delivery.ca_file", other.to_string()),
            })?;
        }
        let batch_lines = d.batch_lines.unwrap_or(1000);
        if batch_lines == 0 || batch_lines > 10_000 {
            return Err(invalid("delivery.batch_lines", "must be 1..=10000"));
        }
        let t = &raw.tail;
        let notify = match t.watch.as_deref() {
            None | Some("notify") => true,
            Some("poll") => false,
            Some(o) => {
                return Err(invalid(
                    "tail.watch",
                    format!("{o:?}: expected notify or poll"),
                ));
            }
        };
        Ok(AgentConfig {
            server,
            token,
            state_dir,
            user,
            sources,
            context_before: c.before.unwrap_or(20).min(1000),
            context_after: c.after.unwrap_or(10).min(1000),
            after_wait: duration(
                "context.after_wait",
                c.after_wait.as_ref(),
                Duration::from_millis(100),
            )?,
            attachment_enabled: a.enabled.unwrap_or(true),
            attachment_max_bytes: a.max_bytes.unwrap_or(1 << 20),
            attachment_max_compressed,
            env_variables,
            env_extra: raw.environment.extra.clone().unwrap_or_default(),
            redactor,
            spool_max_bytes,
            initial_backoff,
            max_backoff,
            timeout,
            batch_lines,
            ca_file: d.ca_file.clone(),
            throttle_window: duration(
                "throttle.window",
                raw.throttle.window.as_ref(),
                Duration::from_secs(60),
            )?,
            notify,
            // With notifications the rescan is only a safety net for a
            // missed event: 5 s keeps 200 idle files at ~0.03% of a core
            // (1 s: ~0.13%). Polling needs it to find new files.
            rescan_interval: duration(
                "tail.rescan_interval",
                t.rescan_interval.as_ref(),
                if notify {
                    Duration::from_secs(5)
                } else {
                    Duration::from_secs(1)
                },
            )?,
            multiline_timeout: duration(
                "tail.multiline_timeout",
                t.multiline_timeout.as_ref(),
                Duration::from_millis(100),
            )?,
            scan_filter: true,
        })
    }

    /// The token for a source (its own, else the global one).
    pub fn token_for(&self, source: &str) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| s.name == source)
            .and_then(|s| s.token.as_deref())
            .or(self.token.as_deref())
    }
}

fn source(
    key: &str,
    s: &RawSource,
    base: &MatcherConfig,
    default_name: String,
) -> Result<SourceConfig, ConfigError> {
    if s.paths.is_empty() {
        return Err(invalid(
            format!("{key}.paths"),
            "at least one glob is needed",
        ));
    }
    check_globs(&format!("{key}.paths"), &s.paths)?;
    check_globs(&format!("{key}.exclude_paths"), &s.exclude_paths)?;
    let name = s.name.clone().unwrap_or(default_name);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            format!("{key}.name"),
            format!("{name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let format = match &s.format {
        None => Format::Auto,
        Some(f) => f
            .parse::<Format>()
            .map_err(|e| invalid(format!("{key}.format"), e))?,
    };
    let start_at = match s.start_at.as_deref() {
        None | Some("end") => StartAt::End,
        Some("beginning") => StartAt::Beginning,
        Some(o) => {
            return Err(invalid(
                format!("{key}.start_at"),
                format!("{o:?}: expected end or beginning"),
            ));
        }
    };
    if let Some(svc) = &s.service
        && (svc.is_empty() || svc.len() > 256)
    {
        return Err(invalid(format!("{key}.service"), "must be 1..=256 bytes"));
    }
    Ok(SourceConfig {
        name,
        paths: s.paths.clone(),
        exclude_paths: s.exclude_paths.clone(),
        format,
        service: s.service.clone(),
        tags: s.tags.clone(),
        token: s.token.clone().filter(|t| !t.is_empty()),
        start_at,
        ship_all_lines: s.ship_all_lines.unwrap_or(false),
        multiline: s.multiline.unwrap_or(true),
        matcher: matcher(&format!("{key}.matcher"), &s.matcher, base)?,
        shotgrid_default: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[cfg(unix)]
    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let mut raw = parse_toml(
            r#"
state_dir = "state"
[delivery]
ca_file = "~/ca.pem"
[[sources]]
paths = ["logs/*.log", "/var/log/x.log", "~/app/*.log"]
exclude_paths = ["*.gz", "old/*.log"]
"#,
        )
        .unwrap();
        let dir = Path::new("/etc/fl[prod]");
        raw.resolve_paths(dir, Some(Path::new("/home/ana")));
        assert_eq!(
            raw.state_dir.as_deref(),
            Some(Path::new("/etc/fl[prod]/state"))
        );
        assert_eq!(
            raw.delivery.ca_file.as_deref(),
            Some(Path::new("/home/ana/ca.pem"))
        );
        let s = &raw.sources[0];
        assert_eq!(s.paths[1], "/var/log/x.log");
        assert_eq!(s.paths[2], "/home/ana/app/*.log");
        // The directory's `[` is a character in the glob, not a class.
        let logs = glob::Pattern::new(&s.paths[0]).unwrap();
        assert!(logs.matches("/etc/fl[prod]/logs/a.log"), "{}", s.paths[0]);
        assert!(!logs.matches("/etc/flp/logs/a.log"));
        // A file-name exclude stays one; one with a directory is anchored.
        assert_eq!(s.exclude_paths[0], "*.gz");
        assert!(
            glob::Pattern::new(&s.exclude_paths[1])
                .unwrap()
                .matches("/etc/fl[prod]/old/a.log")
        );
        let here = std::env::current_dir().unwrap();
        assert_eq!(absolute_path(Path::new("a/../b/./c")), here.join("b/c"));
    }

    fn build(text: &str) -> Result<AgentConfig, String> {
        let raw = parse_toml(text)?;
        AgentConfig::build(raw, Overrides::default(), &env(&[("HOME", "/home/alice")]))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn empty_config_watches_shotgrid_logs() {
        let c = build("").unwrap();
        assert_eq!(c.sources.len(), 1);
        let s = &c.sources[0];
        assert!(s.shotgrid_default);
        assert_eq!(s.format, Format::Shotgrid);
        if cfg!(target_os = "linux") {
            assert_eq!(s.paths, ["/home/alice/.shotgun/logs/tk-*.log"]);
        }
        assert_eq!(s.matcher.min_level, Level::Error);
        assert_eq!(c.throttle_window, Duration::from_secs(60));
    }

    #[test]
    fn shotgun_home_wins() {
        let raw = RawConfig::default();
        let c = AgentConfig::build(
            raw,
            Overrides::default(),
            &env(&[("HOME", "/home/a"), ("SHOTGUN_HOME", "/studio/sg")]),
        )
        .unwrap();
        assert_eq!(
            c.sources[0].paths,
            [Path::new("/studio/sg/logs/tk-*.log").to_string_lossy()]
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let e = build("server = \"http://x:1\"\nbogus = 1\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("bogus"), "{e}");
        let e = build("[[sources]]\npaths = [\"/x\"]\nfromat = \"json\"\n").unwrap_err();
        assert!(e.contains("fromat"), "{e}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("server = \"ftp://x\"", "server"),
            ("[matcher]\nmin_level = \"loud\"", "matcher.min_level"),
            ("[matcher]\ninclude = [\"(\"]", "matcher.include[0]"),
            ("[[sources]]\npaths = []", "sources[0].paths"),
            ("[[sources]]\npaths = [\"[\"]", "sources[0].paths[0]"),
            (
                "[[sources]]\npaths = [\"/x\"]\nformat = \"xml\"",
                "sources[0].format",
            ),
            (
                "[[sources]]\npaths = [\"/x\"]\nstart_at = \"middle\"",
                "sources[0].start_at",
            ),
            ("[throttle]\nwindow = \"soon\"", "throttle.window"),
            ("[spool]\nmax_bytes = 10", "spool.max_bytes"),
            (
                "[redaction]\nrules = [{pattern = \"[\"}]",
                "redaction.rules[0].pattern",
            ),
            (
                "[[sources]]\nname = \"a\"\npaths = [\"/x\"]\n[[sources]]\nname = \"a\"\npaths = [\"/y\"]",
                "duplicate",
            ),
            ("[tail]\nwatch = \"psychic\"", "tail.watch"),
        ];
        for (text, key) in cases {
            let e = build(text).unwrap_err();
            assert!(e.contains(key), "{text:?} gave {e:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn precedence_file_env_flags() {
        let raw = parse_toml(
            "server = \"http://file:1\"\ntoken = \"filetoken\"\n[[sources]]\nname = \"app\"\npaths = [\"/var/log/*.log\"]\ntoken = \"apptoken\"\nservice = \"app\"\nmatcher = { min_level = \"warn\", exclude = [\"noise\"] }\n",
        )
        .unwrap();
        let over = Overrides {
            server: Some("http://flag:2".into()),
            token: None,
            state_dir: Some("/tmp/st".into()),
            watch: vec!["/tmp/*.log".into()],
        };
        let c = AgentConfig::build(raw, over, &env(&[("HOME", "/h")])).unwrap();
        assert_eq!(c.server.as_deref(), Some("http://flag:2"));
        assert_eq!(c.token.as_deref(), Some("filetoken"));
        assert_eq!(c.state_dir, Path::new("/tmp/st"));
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].matcher.min_level, Level::Warn);
        assert_eq!(c.sources[0].matcher.exclude.len(), 1);
        assert_eq!(c.sources[1].name, "watch");
        assert_eq!(c.sources[1].matcher.min_level, Level::Error);
        assert_eq!(c.token_for("app"), Some("apptoken"));
        assert_eq!(c.token_for("watch"), Some("filetoken"));
    }
}
