//! # faultline-grouping
//!
//! (docs written at the end)

pub mod cli;
mod error;
mod fingerprint;
mod grouper;
mod hash;
pub mod mask;
mod miner;
pub mod rules;
pub mod stack;
pub mod title;

pub use error::{RuleError, StateError};
pub use fingerprint::{EventInput, Fingerprint, FingerprintSource};
pub use grouper::{GroupRef, GroupResult, Grouper, GrouperConfig, GrouperState};
pub use mask::{Masker, Placeholder, mask};
pub use miner::{GroupId, Merge, MinerConfig, TemplateState};
pub use rules::{FingerprintRules, RawFingerprintRule, RawFingerprintRules};
pub use stack::{Exception, Frame, Language, StackTrace, find_exception_type, parse_stack};
pub use title::incident_title;
