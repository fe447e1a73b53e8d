use serde::{Deserialize, Serialize};

/// A project groups services, tokens and (later) issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// A service of a project: what sends logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub created_at: i64,
}

/// A service with its traffic, for `GET /api/v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub project: String,
    pub name: String,
    /// Receive time of the newest entry, µs (None: never seen).
    pub last_seen: Option<i64>,
    /// Entries stored for this service.
    pub count: i64,
    /// Entries at error level or above.
    pub error_count: i64,
}

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TokenKind {
    /// Full access to every project and the admin API.
    Admin,
    /// Read access to one project's logs and issues.
    Read { project: String },
    /// Write-only: may send entries for exactly one service.
    Ingest { project: String, service: String },
}

/// A token as listed (never the secret; only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    #[serde(flatten)]
    pub kind: TokenKind,
    /// First characters of the token, to recognise it in a list.
    pub prefix: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub revoked_at: Option<i64>,
}
