use std::path::PathBuf;

use crate::checkpoint::CheckpointError;

/// Errors that stop a [`crate::Tailer`] from starting, or that an explicit
/// request ([`crate::Tailer::checkpoint_now`]) reports. Problems with
/// individual files while running are never errors: they are reported
/// through the [`crate::TailObserver`] and the [`crate::Counters`].
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// No include pattern.
    #[error("no include pattern given")]
    NoInclude,
    /// A glob pattern does not parse.
    #[error("invalid glob pattern {pattern:?}: {source}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The cause.
        source: glob::PatternError,
    },
    /// A multiline regex does not compile.
    #[error("invalid multiline pattern {pattern:?}: {source}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The cause.
        source: regex::Error,
    },
    /// The current directory is needed for a relative pattern.
    #[error("cannot resolve relative pattern {pattern:?}: {source}")]
    CurrentDir {
        /// The pattern.
        pattern: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Loading or saving the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A scan filter needle is empty or holds a line break or U+FFFD.
    #[error("invalid scan filter: {0}")]
    ScanFilter(String),
    /// The checkpoint path has no file name.
    #[error("checkpoint path {0} has no file name")]
    CheckpointPath(PathBuf),
}
