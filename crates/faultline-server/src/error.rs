//! The one API error type: every failure maps to a status and a JSON body
//! `{"error": …, "detail": …}` (plus extra fields for some variants).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_ingest::{EntryError, IngestError};
use faultline_store::StoreError;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized(&'static str),
    #[error("forbidden")]
    Forbidden(String),
    #[error("not found")]
    NotFound(String),
    #[error("conflict")]
    Conflict(String),
    #[error("bad request")]
    BadRequest { error: &'static str, detail: String },
    #[error("body too large")]
    BodyTooLarge { limit: usize },
    #[error("ingest rejected")]
    Ingest(IngestError),
    #[error("body timeout")]
    BodyTimeout(std::time::Duration),
    #[error("unsupported media type")]
    Unsupported(String),
    #[error("overloaded")]
    Overloaded(String),
    #[error("unavailable")]
    Unavailable(String),
    #[error("too many requests")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad(error: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            error,
            detail: detail.into(),
        }
    }

    /// Label for the rejected-entries metric.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::Ingest(IngestError::Malformed { .. }) => "malformed",
            ApiError::Ingest(IngestError::Empty) => "empty",
            ApiError::Ingest(IngestError::TooManyEntries { .. }) => "too_many_entries",
            ApiError::Ingest(IngestError::Invalid(_)) => "invalid",
            ApiError::Ingest(IngestError::ServiceMismatch { .. }) => "forbidden",
            ApiError::Unsupported(_) => "unsupported_encoding",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, name } => ApiError::NotFound(format!("{what} {name:?}")),
            StoreError::Invalid(m) => ApiError::bad("invalid request", m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            e @ StoreError::Backend { .. } => {
                tracing::error!(error = %e, "store failure");
                ApiError::Internal(e.to_string())
            }
        }
    }
}

fn body(error: &str, detail: impl Into<Value>) -> Value {
    json!({ "error": error, "detail": detail.into() })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, value) = match self {
            ApiError::Unauthorized(detail) => {
                (StatusCode::UNAUTHORIZED, body("unauthorized", detail))
            }
            ApiError::Forbidden(detail) => (StatusCode::FORBIDDEN, body("forbidden", detail)),
            ApiError::NotFound(detail) => (StatusCode::NOT_FOUND, body("not found", detail)),
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, body("conflict", detail)),
            ApiError::BadRequest { error, detail } => {
                (StatusCode::BAD_REQUEST, body(error, detail))
            }
            ApiError::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body(
                    "body too large",
                    format!("the request body exceeds {limit} bytes (after decompression)"),
                ),
            ),
            ApiError::Ingest(e) => ingest_error(e),
            ApiError::BodyTimeout(t) => (
                StatusCode::REQUEST_TIMEOUT,
                body(
                    "body timeout",
                    format!("the request body did not arrive within {t:?}"),
                ),
            ),
            ApiError::Unsupported(detail) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body("unsupported content encoding", detail),
            ),
            ApiError::Overloaded(detail) => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(body("overloaded", detail)),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            ApiError::Unavailable(detail) => {
                (StatusCode::SERVICE_UNAVAILABLE, body("unavailable", detail))
            }
            ApiError::TooManyRequests {
                detail,
                retry_after_secs,
            } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(body("too many requests", detail)),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return r;
            }
            ApiError::Internal(detail) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body("internal error", detail),
            ),
        };
        (status, axum::Json(value)).into_response()
    }
}

fn ingest_error(e: IngestError) -> (StatusCode, Value) {
    match e {
        IngestError::Malformed { index, detail } => {
            let mut v = body("malformed json", format!("entry {index}: {detail}"));
            v["index"] = json!(index);
            (StatusCode::BAD_REQUEST, v)
        }
        IngestError::Empty => (
            StatusCode::BAD_REQUEST,
            body("empty body", "the request contains no entries"),
        ),
        IngestError::TooManyEntries { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            body(
                "too many entries",
                format!("a request may carry at most {limit} entries"),
            ),
        ),
        IngestError::Invalid(errors) => {
            let detail = summarize(&errors);
            let mut v = body("invalid entries", detail);
            v["entries"] = json!(errors);
            (StatusCode::BAD_REQUEST, v)
        }
        IngestError::ServiceMismatch {
            index,
            service,
            allowed,
        } => {
            let mut v = body(
                "forbidden",
                format!(
                    "entry {index} names service {service:?} but this token may only send for {allowed:?}"
                ),
            );
            v["index"] = json!(index);
            (StatusCode::FORBIDDEN, v)
        }
    }
}

fn summarize(errors: &[EntryError]) -> String {
    let first = &errors[0];
    let field = if first.field.is_empty() {
        String::new()
    } else {
        format!(" field {}", first.field)
    };
    let more = if errors.len() > 1 {
        format!(" (and {} more)", errors.len() - 1)
    } else {
        String::new()
    };
    format!(
        "entry {}{}: {}{}; nothing was stored",
        first.index, field, first.reason, more
    )
}
