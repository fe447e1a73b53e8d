//! # faultline-tail
//!
//! (crate docs below are completed at the end)

mod checkpoint;
mod config;
mod discover;
mod error;
mod identity;
mod lines;
mod multiline;
mod observe;
mod tailer;
mod watch;

pub use checkpoint::{CHECKPOINT_VERSION, CheckpointEntry, CheckpointError, CheckpointStore, write_atomic};
pub use config::{MultilineConfig, StartAt, TailerConfig, WatchMode};
pub use error::TailError;
pub use identity::{DevIno, FileId, HEAD_BYTES, Head, ParseFileIdError};
pub use lines::{Line, LineSplitter};
pub use multiline::{Aggregator, DEFAULT_START_PATTERN, Frame, MultilineRules};
pub use observe::{Counters, EventLog, OpenReason, TailEvent, TailObserver, TracingObserver};
pub use tailer::{Ack, FileKey, FileState, Record, Tailer};
