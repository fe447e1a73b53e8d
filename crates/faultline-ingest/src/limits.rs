use serde::{Deserialize, Serialize};

/// Ingest limits. Every limit is checked; exceeding one rejects the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body in bytes, after gzip decompression.
    pub max_body_bytes: usize,
    /// Most entries in one request.
    pub max_entries: usize,
    /// Longest message in bytes.
    pub max_message_bytes: usize,
    /// Most attributes on one entry (unknown top-level fields count too).
    pub max_attributes: usize,
    /// Longest attribute key, tag, service or host name in bytes.
    pub max_name_bytes: usize,
    /// Longest attribute string value in bytes.
    pub max_attribute_value_bytes: usize,
    /// Most tags on one entry.
    pub max_tags: usize,
    /// Timestamps further than this in the future are replaced by the
    /// receive time (seconds).
    pub max_future_secs: i64,
    /// Timestamps older than this are replaced by the receive time (seconds).
    pub max_past_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            max_entries: 10_000,
            max_message_bytes: 256 * 1024,
            max_attributes: 64,
            max_name_bytes: 256,
            max_attribute_value_bytes: 8 * 1024,
            max_tags: 32,
            max_future_secs: 3600,
            max_past_secs: 90 * 86_400,
        }
    }
}
