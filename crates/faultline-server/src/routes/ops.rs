use super::State;
use crate::error::ApiError;
use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(state: State) -> Result<Json<Value>, ApiError> {
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
