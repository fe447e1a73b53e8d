//! `POST /api/v1/logs`.

use super::State;
use super::body::read_body;
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use faultline_bus::BusError;
use faultline_ingest::{DecodeContext, IngestError, decode_body};
use faultline_model::{TokenKind, now_micros};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Instant;

/// Project of entries sent with an admin token and no `?project=`.
pub const DEFAULT_PROJECT: &str = "default";

/// Bodies larger than this are decoded on the blocking pool. Smaller ones
/// are decoded inline: a few milliseconds on the worker, and allocations stay
/// in the workers' malloc arenas instead of one arena per blocking thread
/// (which kept ~30 MB more resident after bursts of 1,000-entry requests).
const INLINE_DECODE_BYTES: usize = 1024 * 1024;

pub async fn post_logs(
    state: State,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let result = accept(&state, &params, &headers, body).await;
    match &result {
        Ok(n) => {
            metrics::counter!("faultline_entries_accepted_total").increment(*n as u64);
            metrics::histogram!("faultline_ingest_request_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Err((e, n)) => {
            metrics::counter!("faultline_entries_rejected_total", "reason" => e.reason())
                .increment((*n).max(1) as u64);
        }
    }
    let n = result.map_err(|(e, _)| e)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": n }))))
}

/// Returns the number of entries made durable, or the error and how many
/// entries it concerned (0 when the body could not be decoded).
async fn accept(
    state: &State,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, (ApiError, usize)> {
    let principal = state.auth.authenticate(headers).await.map_err(|e| (e, 0))?;
    if let Some(k) = params.keys().find(|k| k.as_str() != "project") {
        return Err((
            ApiError::bad(
                "invalid parameter",
                format!("unknown query parameter {k:?}"),
            ),
            0,
        ));
    }
    let (project, service) = match principal.kind {
        TokenKind::Ingest { project, service } => {
            if let Some(p) = params.get("project")
                && p != &project
            {
                return Err((
                    ApiError::Forbidden(format!("this token may only send to project {project:?}")),
                    0,
                ));
            }
            (project, Some(service))
        }
        TokenKind::Admin => (
            params
                .get("project")
                .cloned()
                .unwrap_or_else(|| DEFAULT_PROJECT.to_string()),
            None,
        ),
        TokenKind::Read { .. } => {
            return Err((
                ApiError::Forbidden(
                    "read tokens cannot send logs; use an ingest token (faultline token create --project P --service S)".into(),
                ),
                0,
            ));
        }
    };
    let bytes = read_body(
        headers,
        body,
        state.config.limits.max_body_bytes,
        state.config.body_timeout,
    )
    .await
    .map_err(|e| (e, 0))?;
    let big = bytes.len() > INLINE_DECODE_BYTES;
    let now = now_micros();
    let limits = state.config.limits.clone();
    let store = state.store.clone();
    // The store's share of the append that needs no writer (encoding,
    // tokenizing) is done here too, in parallel with the single writer.
    let decode = move || {
        decode_body(
            &bytes,
            &DecodeContext {
                project: &project,
                service: service.as_deref(),
                now,
                limits: &limits,
            },
        )
        .map(|entries| {
            let prepared = store.prepare(&entries);
            (entries, prepared)
        })
    };
    let decoded = if big {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|e| (ApiError::Internal(e.to_string()), 0))?
    } else {
        decode()
    };
    let (entries, prepared) = decoded.map_err(|e: IngestError| {
        let n = match &e {
            IngestError::Invalid(errs) => errs.len(),
            _ => 0,
        };
        (ApiError::Ingest(e), n)
    })?;
    let n = entries.len();
    state
        .bus
        .publish_prepared(entries, prepared)
        .await
        .map_err(|e| {
            let api = match e {
                BusError::Overloaded => {
                    ApiError::Overloaded("the ingest queue is full; retry shortly".into())
                }
                BusError::Closed => {
                    ApiError::Unavailable("the server is shutting down; retry shortly".into())
                }
                BusError::Failed(m) => {
                    ApiError::Unavailable(format!("the batch could not be stored: {m}"))
                }
            };
            (api, n)
        })?;
    Ok(n)
}
