//! Error types of the library boundary.

/// Why an exported state could not be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// The state was written by an incompatible version of this crate.
    #[error("grouper state version {found} is not supported (expected {expected})")]
    Version { found: u32, expected: u32 },
}

/// Why fingerprint rules were rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    /// A rule sets an empty fingerprint.
    #[error("rule {rule}: fingerprint is empty")]
    EmptyFingerprint { rule: usize },
    /// A fingerprint part names a variable that does not exist.
    #[error("rule {rule}: unknown fingerprint variable {{{{ {variable} }}}}")]
    UnknownVariable { rule: usize, variable: String },
    /// A matcher is the empty string.
    #[error("rule {rule}: matcher `{field}` is empty")]
    EmptyMatcher { rule: usize, field: &'static str },
}
