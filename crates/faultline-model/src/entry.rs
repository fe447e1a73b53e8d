use crate::{Attributes, Level};
use serde::{Deserialize, Serialize};

/// A short string (name, tag, host, attribute) kept inline up to 24 bytes:
/// a decoded entry holds a dozen of them, and allocating each on the heap
/// was a fifth of the ingest decode time.
pub type Name = compact_str::CompactString;

/// A flat attribute value: string, number or bool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Name),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> AttrValue {
        AttrValue::Str(s.into())
    }
}

/// A validated entry ready to be stored: what ingest hands to the bus.
///
/// The project and service are resolved names; `idempotency` is set by
/// clients that retry (the agent) so a replayed batch is not stored twice.
///
/// `Default` is an empty entry that owns no heap memory (level `Info`,
/// timestamps 0), for building entries field by field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    pub project: Name,
    pub service: Name,
    pub level: Level,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Name>,
    /// Event time, microseconds since the epoch.
    pub timestamp: i64,
    /// Receive time, microseconds since the epoch.
    pub received_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Name>,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

/// An entry as the store returns it: a [`NewEntry`] plus its id.
///
/// Ids grow with insertion order; they are unique per store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewEntry,
}
