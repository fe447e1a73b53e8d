//! HTTP routes. Handlers are thin: authenticate, validate, hand over to the
//! bus or a blocking store call, answer.

pub mod admin;
pub mod alerts;
pub mod body;
pub mod dashboard;
pub mod incidents;
pub mod ingest;
pub mod issues;
pub mod json;
pub mod live;
pub mod ops;
pub mod query;
pub mod session;
pub mod ui;

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::routing::{delete, get, post, put};
use std::sync::Arc;

pub type State = axum::extract::State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/logs", post(ingest::post_logs).get(query::get_logs))
        .route("/api/v1/logs/live", get(live::live))
        .route("/api/v1/services", get(query::get_services))
        .route(
            "/api/v1/projects",
            get(admin::list_projects).post(admin::create_project),
        )
        .route(
            "/api/v1/projects/{project}/services",
            post(admin::create_service),
        )
        .route(
            "/api/v1/tokens",
            get(admin::list_tokens).post(admin::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(admin::revoke_token))
        .route("/api/v1/issues", get(issues::list))
        .route(
            "/api/v1/issues/{id}",
            get(issues::detail)
                .patch(issues::update)
                .delete(issues::remove),
        )
        .route("/api/v1/issues/{id}/events", get(issues::events))
        .route(
            "/api/v1/issues/{id}/events/{event}/attachments/{sha256}",
            get(incidents::download),
        )
        .route("/api/v1/incidents", post(incidents::post_incident))
        .route(
            "/api/v1/projects/{project}/alert-channels",
            get(alerts::list_channels),
        )
        .route(
            "/api/v1/projects/{project}/alert-channels/{name}",
            put(alerts::put_channel).delete(alerts::delete_channel),
        )
        .route(
            "/api/v1/projects/{project}/alert-rules",
            get(alerts::list_rules).post(alerts::create_rule),
        )
        .route(
            "/api/v1/alert-rules/{id}",
            put(alerts::update_rule).delete(alerts::delete_rule),
        )
        .route("/api/v1/notifications", get(alerts::list_notifications))
        .route(
            "/api/v1/notifications/{id}",
            delete(alerts::discard_notification),
        )
        .route(
            "/api/v1/notifications/{id}/retry",
            post(alerts::retry_notification),
        )
        .route("/api/v1/issues/{id}/history", get(issues::history))
        .route("/api/v1/issues/{id}/merge", post(issues::merge))
        .route(
            "/api/v1/projects/{project}/fingerprint-rules",
            get(issues::get_rules).put(issues::put_rules),
        )
        .route(
            "/api/v1/session",
            get(session::current)
                .post(session::login)
                .delete(session::logout),
        )
        .route(
            "/api/v1/setup",
            get(session::setup_status).post(session::setup),
        )
        .route(
            "/api/v1/users",
            get(session::list_users).post(session::create_user),
        )
        .route("/api/v1/users/{id}", delete(session::delete_user))
        .route("/api/v1/users/{id}/password", put(session::set_password))
        .route(
            "/api/v1/projects/{project}/overview",
            get(dashboard::overview),
        )
        .route("/api/v1/issues/live", get(dashboard::live_issues))
        .route("/api/v1/issue-links", get(dashboard::issue_links))
        .route("/api/v1/settings", get(ops::settings))
        .route("/", get(ui::dashboard))
        .route("/logs", get(ui::logs))
        .route("/issues", get(ui::issues))
        .route("/issues/{id}", get(ui::issue))
        .route("/settings", get(ui::settings))
        .route("/login", get(ui::login))
        .route("/setup", get(ui::setup))
        .route("/ui/{name}", get(ui::asset))
        .route("/favicon.ico", get(ui::favicon))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::session::csrf_guard,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> impl axum::response::IntoResponse {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({
            "error": "method not allowed",
            "detail": format!("{method} is not allowed on {}", uri.path()),
        })),
    )
}
