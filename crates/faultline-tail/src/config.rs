//! Configuration, validated into the runtime form in [`crate::Tailer::new`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::multiline::DEFAULT_START_PATTERN;
use crate::scan::ScanFilter;

/// Where to start reading a file that is already there when the tailer
/// starts for the first time (no checkpoint file yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Read the whole file.
    Beginning,
    /// Skip what is there (backing up to the start of an unfinished last
    /// line); read only what is appended. The default, as the seed agent.
    #[default]
    End,
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// OS notifications (inotify, FSEvents, ReadDirectoryChangesW) plus the
    /// periodic rescan; falls back to `Poll` when the watcher cannot start.
    #[default]
    Notify,
    /// Check every open file every `poll_interval` (network file systems).
    Poll,
}

/// Multiline grouping rules.
#[derive(Debug, Clone, PartialEq)]
pub struct MultilineConfig {
    /// Regex: a line matching it starts a new record. Default
    /// [`DEFAULT_START_PATTERN`] (timestamps and level words).
    pub start_pattern: String,
    /// Regex: when set, a non-header line joins the current record only if
    /// it matches; other lines become records of their own. When `None`
    /// every non-header line joins (tracebacks, `at` frames, indented lines,
    /// `Caused by:`, the final `ValueError: ...`).
    pub continuation_pattern: Option<String>,
    /// Most lines in one record (default 500); more start a new record.
    pub max_lines: u32,
    /// Most bytes of text in one record (default 1 MiB).
    pub max_bytes: usize,
    /// A held record is emitted when no line joined it for this long
    /// (default 500 ms), so the last record of a burst is not held back.
    pub timeout: Duration,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        MultilineConfig {
            start_pattern: DEFAULT_START_PATTERN.to_owned(),
            continuation_pattern: None,
            max_lines: 500,
            max_bytes: 1 << 20,
            timeout: Duration::from_millis(500),
        }
    }
}

/// Everything a [`crate::Tailer`] needs. Build with [`TailerConfig::new`]
/// and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct TailerConfig {
    /// Glob patterns of files to follow (`*`, `?`, `[..]`, `**`); relative
    /// patterns are resolved against the current directory at start.
    pub include: Vec<String>,
    /// Glob patterns of files to leave out; matched against the full path
    /// and against the file name.
    pub exclude: Vec<String>,
    /// Start position for files present at the very first start.
    pub start_at: StartAt,
    /// The checkpoint file; `None` keeps no state (every start is a first
    /// start). Its directory must exist.
    pub checkpoint_path: Option<PathBuf>,
    /// Lines longer than this many bytes are cut (flag `truncated`), the
    /// rest skipped without buffering. Default 1 MiB.
    pub max_line_bytes: usize,
    /// An unfinished last line (no `\n` yet) is emitted (flag `partial`)
    /// when the file has not grown for this long; `None` waits for the
    /// newline (or the file's end for good). Default 1 s: Python's logging
    /// writes a record and its newline in one call, so a line still
    /// unfinished after a second comes from a writer that stopped or died.
    pub partial_line_timeout: Option<Duration>,
    /// Multiline grouping; `None` makes every line a record.
    pub multiline: Option<MultilineConfig>,
    /// Notification mode.
    pub watch: WatchMode,
    /// In `Poll` mode (or after falling back to it), how often open files
    /// are checked for new data. Default 250 ms.
    pub poll_interval: Duration,
    /// How often the globs are re-evaluated and every open file checked, in
    /// every mode, so a missed notification never loses data. Default 1 s.
    /// `Duration::ZERO` rescans on every poll step (tests).
    pub rescan_interval: Duration,
    /// A file that left the globs (renamed away, deleted) is closed once it
    /// was read to its end and neither left nor grew for this long. Default
    /// 5 s: long enough for a writer to finish its last write after a
    /// rename, short enough not to pin deleted files' disk space.
    pub close_grace: Duration,
    /// Acknowledged offsets are written at most this often. Default 1 s.
    pub checkpoint_interval: Duration,
    /// Closed files are remembered (for a rename back, or a restart that
    /// must finish them) this long after they were last seen. Default 24 h.
    pub forget_after: Duration,
    /// Most bytes read in one poll step, so a catch-up of a big file comes
    /// back in batches. Default 4 MiB.
    pub max_read_per_poll: usize,
    /// What the consumer wants from a catch-up, so that large reads skip
    /// the records nobody wants without framing them (see [`ScanFilter`]).
    /// `None` (default): every record is handed out.
    pub scan_filter: Option<ScanFilter>,
}

impl TailerConfig {
    /// Defaults for following `include`.
    pub fn new<I, S>(include: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TailerConfig {
            include: include.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
            start_at: StartAt::End,
            checkpoint_path: None,
            max_line_bytes: 1 << 20,
            partial_line_timeout: Some(Duration::from_secs(1)),
            multiline: None,
            watch: WatchMode::Notify,
            poll_interval: Duration::from_millis(250),
            rescan_interval: Duration::from_secs(1),
            close_grace: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            forget_after: Duration::from_secs(24 * 3600),
            max_read_per_poll: 4 << 20,
            scan_filter: None,
        }
    }
}
