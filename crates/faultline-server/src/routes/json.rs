//! JSON shapes of the API (timestamps as RFC 3339 strings).

use faultline_model::{ServiceSummary, StoredEntry, TokenInfo, TokenKind, format_rfc3339_micros};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// An entry as the API shows it, with the issue it became an event of when
/// known (stored entries; live ones are sent before grouping).
pub struct ApiEntry<'a>(pub &'a StoredEntry, pub Option<i64>);

impl Serialize for ApiEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &self.0.entry;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.0.id)?;
        m.serialize_entry("project", &e.project)?;
        m.serialize_entry("service", &e.service)?;
        m.serialize_entry("level", &e.level)?;
        m.serialize_entry("message", &e.message)?;
        m.serialize_entry("tags", &e.tags)?;
        m.serialize_entry("timestamp", &format_rfc3339_micros(e.timestamp))?;
        m.serialize_entry("received_at", &format_rfc3339_micros(e.received_at))?;
        if let Some(h) = &e.host {
            m.serialize_entry("host", h)?;
        }
        m.serialize_entry("attributes", &e.attributes)?;
        if let Some(t) = &e.trace_id {
            m.serialize_entry("trace_id", t)?;
        }
        if let Some(t) = &e.span_id {
            m.serialize_entry("span_id", t)?;
        }
        if let Some(issue) = self.1 {
            m.serialize_entry("issue_id", &issue)?;
        }
        m.end()
    }
}

/// A service summary as the API shows it.
pub struct ApiService<'a>(pub &'a ServiceSummary);

impl Serialize for ApiService<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("project", &v.project)?;
        m.serialize_entry("name", &v.name)?;
        m.serialize_entry("last_seen", &v.last_seen.map(format_rfc3339_micros))?;
        m.serialize_entry("count", &v.count)?;
        m.serialize_entry("error_count", &v.error_count)?;
        m.end()
    }
}

/// A token as the API lists it (never the secret).
pub struct ApiToken<'a>(pub &'a TokenInfo);

impl Serialize for ApiToken<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &t.id)?;
        match &t.kind {
            TokenKind::Admin => m.serialize_entry("kind", "admin")?,
            TokenKind::Read { project } => {
                m.serialize_entry("kind", "read")?;
                m.serialize_entry("project", project)?;
            }
            TokenKind::Ingest { project, service } => {
                m.serialize_entry("kind", "ingest")?;
                m.serialize_entry("project", project)?;
                m.serialize_entry("service", service)?;
            }
        }
        m.serialize_entry("prefix", &t.prefix)?;
        m.serialize_entry("created_at", &format_rfc3339_micros(t.created_at))?;
        m.serialize_entry("last_used", &t.last_used.map(format_rfc3339_micros))?;
        m.serialize_entry("revoked_at", &t.revoked_at.map(format_rfc3339_micros))?;
        m.end()
    }
}
