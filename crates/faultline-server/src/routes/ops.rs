use super::State;
use crate::error::ApiError;
use axum::Json;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(state: State) -> Result<Json<Value>, ApiError> {
    if let Some(e) = state.sync_failed.get() {
        return Err(ApiError::Unavailable(format!(
            "a WAL sync failed ({e}): ingest refuses every batch until faultline is restarted"
        )));
    }
    state
        .with_store(|s| s.list_projects())
        .await
        .map_err(|e| ApiError::Unavailable(format!("store not answering: {e}")))?;
    Ok(Json(json!({"status": "ready"})))
}

pub async fn metrics(state: State) -> impl IntoResponse {
    metrics::gauge!("faultline_queue_depth").set(state.bus.depth() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
}

/// `GET /api/v1/settings` (admin): the server-wide settings that come from
/// the configuration file, for the settings page (read-only there).
pub async fn settings(state: State, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let c = &state.config;
    let days = |d: std::time::Duration| d.as_secs_f64() / 86_400.0;
    let retention: serde_json::Map<String, Value> = faultline_model::Level::ALL
        .iter()
        .map(|l| {
            (
                l.as_str().to_owned(),
                json!(days(c.retention[l.code() as usize - 1])),
            )
        })
        .collect();
    Ok(Json(json!({
        "public_url": c.public_url,
        "retention_days": retention,
        "event_retention_days": days(c.event_retention),
        "issue_level": c.issue_level,
        "limits": {
            "max_body_bytes": c.limits.max_body_bytes,
            "max_entries": c.limits.max_entries,
            "max_message_bytes": c.limits.max_message_bytes,
            "max_attributes": c.limits.max_attributes,
        },
    })))
}
