//! `POST /api/v1/logs`.

use super::State;
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use faultline_bus::BusError;
use faultline_ingest::{DecodeContext, IngestError, decode_body};
use faultline_model::{TokenKind, now_micros};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Instant;

/// Bodies larger than this are decoded on the blocking pool.
const INLINE_DECODE_BYTES: usize = 64 * 1024;

pub async fn post_logs(
    state: State,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let result = accept(&state, &headers, body).await;
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
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, (ApiError, usize)> {
    let principal = state.auth.authenticate(headers).await.map_err(|e| (e, 0))?;
    let TokenKind::Ingest { project, service } = principal.kind else {
        return Err((
            ApiError::Forbidden("sending logs needs an ingest token (faultline token create --project P --service S)".into()),
            0,
        ));
    };
    let limit = state.config.limits.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
        && !headers.contains_key(header::CONTENT_ENCODING)
    {
        return Err((ApiError::BodyTooLarge { limit }, 0));
    }
    let bytes = read_limited(body, limit).await.map_err(|e| (e, 0))?;
    let big = bytes.len() > INLINE_DECODE_BYTES;
    let now = now_micros();
    let limits = state.config.limits.clone();
    let decode = move || {
        decode_body(
            &bytes,
            &DecodeContext {
                project: &project,
                service: &service,
                now,
                limits: &limits,
            },
        )
    };
    let decoded = if big {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|e| (ApiError::Internal(e.to_string()), 0))?
    } else {
        decode()
    };
    let entries = decoded.map_err(|e: IngestError| {
        let n = match &e {
            IngestError::Invalid(errs) => errs.len(),
            _ => 0,
        };
        (ApiError::Ingest(e), n)
    })?;
    let n = entries.len();
    state.bus.publish(entries).await.map_err(|e| {
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

/// Reads the (decompressed) body, failing with 413 past `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad(
                "unreadable body",
                format!("the request body could not be read: {e}"),
            )
        })?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
