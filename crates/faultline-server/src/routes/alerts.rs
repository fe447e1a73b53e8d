//! Alerting API: channels and rules per project, and the outbox with its
//! dead-letter queue. Changing channels and rules, retrying and discarding
//! need an admin token; read tokens may list their project's rules and
//! notifications (channels hold webhook secrets: admin only).

use super::State;
use super::admin::parse_json;
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use faultline_alerts::{ChannelSpec, RuleSpec};
use faultline_model::{format_rfc3339_micros, now_micros};
use faultline_store::{Notification, NotificationStatus, Store, StoredRule};
use serde_json::{Value, json};

/// Checks a channel spec; returns it with its name.
pub fn check_channel(name: &str, mut body: Value) -> Result<ChannelSpec, String> {
    if let Some(m) = body.as_object_mut() {
        m.insert("name".into(), Value::String(name.to_owned()));
    }
    let spec: ChannelSpec = serde_json::from_value(body).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

/// Checks a rule spec against the project's channels.
pub fn check_rule(store: &dyn Store, project: &str, body: Value) -> Result<RuleSpec, String> {
    let spec: RuleSpec = serde_json::from_value(body).map_err(|e| e.to_string())?;
    let spec = spec.validate(0, project).map_err(|e| e.to_string())?.spec;
    let channels = store
        .list_channels(Some(project))
        .map_err(|e| e.to_string())?;
    for c in &spec.channels {
        if !channels.iter().any(|x| &x.name == c) {
            return Err(format!(
                "channel {c:?} does not exist in project {project:?}; create it first"
            ));
        }
    }
    Ok(spec)
}

/// Creates or updates the channels and rules of the config file.
pub fn apply_config(store: &dyn Store, config: &crate::Config) -> Result<(), String> {
    for (project, body) in &config.alert_channels {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or("alerts.channels: every channel needs a name")?
            .to_owned();
        let spec = check_channel(&name, body.clone())
            .map_err(|e| format!("alerts.channels {project}/{name}: {e}"))?;
        let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        store
            .put_channel(project, &name, &json)
            .map_err(|e| e.to_string())?;
    }
    for (project, body) in &config.alert_rules {
        let spec = check_rule(store, project, body.clone())
            .map_err(|e| format!("alerts.rules ({project}): {e}"))?;
        let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        match store
            .find_rule(project, &spec.name)
            .map_err(|e| e.to_string())?
        {
            Some(r) => store.update_rule(r.id, &spec.name, &json),
            None => store.create_rule(project, &spec.name, &json),
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn rule_json(r: &StoredRule) -> Value {
    json!({
        "id": r.id,
        "project": r.project,
        "name": r.name,
        "spec": serde_json::from_str::<Value>(&r.spec).unwrap_or(Value::Null),
    })
}

fn notification_json(n: &Notification) -> Value {
    json!({
        "id": n.id,
        "project": n.project,
        "rule_id": n.rule_id,
        "channel": n.channel,
        "status": n.status,
        "attempts": n.attempts,
        "next_attempt_at": format_rfc3339_micros(n.next_attempt_at),
        "last_error": n.last_error,
        "created_at": format_rfc3339_micros(n.created_at),
        "delivered_at": n.delivered_at.map(format_rfc3339_micros),
        "trigger": serde_json::from_str::<Value>(&n.trigger).unwrap_or(Value::Null),
    })
}

pub async fn list_channels(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let channels = state
        .with_store(move |s| s.list_channels(Some(&project)))
        .await?;
    let list: Vec<Value> = channels
        .iter()
        .map(|c| serde_json::from_str::<Value>(&c.spec).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({ "channels": list })))
}

pub async fn put_channel(
    state: State,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let value: Value = parse_json(&state, &headers, body).await?;
    let spec = check_channel(&name, value).map_err(|e| ApiError::bad("invalid channel", e))?;
    let text = serde_json::to_string(&spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .with_store(move |s| s.put_channel(&project, &name, &text))
        .await?;
    Ok(Json(serde_json::to_value(&spec).unwrap_or(Value::Null)))
}

pub async fn delete_channel(
    state: State,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    state
        .with_store(move |s| s.delete_channel(&project, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_rules(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let project = principal.readable_project(Some(project))?;
    let rules = state
        .with_store(move |s| s.list_rules(project.as_deref()))
        .await?;
    Ok(Json(
        json!({ "rules": rules.iter().map(rule_json).collect::<Vec<_>>() }),
    ))
}

pub async fn create_rule(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let value: Value = parse_json(&state, &headers, body).await?;
    let rule = state
        .with_store(move |s| {
            let spec =
                check_rule(s, &project, value).map_err(faultline_store::StoreError::Invalid)?;
            let text = serde_json::to_string(&spec)
                .map_err(|e| faultline_store::StoreError::Invalid(e.to_string()))?;
            s.create_rule(&project, &spec.name, &text)
        })
        .await
        .map_err(invalid_rule)?;
    state.issues.alert_rules_changed();
    Ok((StatusCode::CREATED, Json(rule_json(&rule))))
}

/// A store `Invalid` here is a bad rule.
fn invalid_rule(e: ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { detail, .. } => ApiError::bad("invalid rule", detail),
        other => other,
    }
}

fn parse_id(what: &'static str, id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError::bad("invalid id", format!("{id:?} is not a {what} id")))
}

pub async fn update_rule(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id = parse_id("rule", &id)?;
    let value: Value = parse_json(&state, &headers, body).await?;
    let rule = state
        .with_store(move |s| {
            let current = s.list_rules(None)?.into_iter().find(|r| r.id == id).ok_or(
                faultline_store::StoreError::NotFound {
                    what: "rule",
                    name: id.to_string(),
                },
            )?;
            let spec = check_rule(s, &current.project, value)
                .map_err(faultline_store::StoreError::Invalid)?;
            let text = serde_json::to_string(&spec)
                .map_err(|e| faultline_store::StoreError::Invalid(e.to_string()))?;
            s.update_rule(id, &spec.name, &text)
        })
        .await
        .map_err(invalid_rule)?;
    state.issues.alert_rules_changed();
    Ok(Json(rule_json(&rule)))
}

pub async fn delete_rule(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id = parse_id("rule", &id)?;
    state.with_store(move |s| s.delete_rule(id)).await?;
    state.issues.alert_rules_changed();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_notifications(
    state: State,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let mut project = None;
    let mut status = None;
    let mut limit = 100;
    for (k, v) in params {
        match k.as_str() {
            "project" => project = Some(v),
            "status" => {
                status = Some(NotificationStatus::parse(&v).ok_or_else(|| {
                    ApiError::bad(
                        "invalid parameter",
                        "status must be pending, delivered or dead",
                    )
                })?)
            }
            "limit" => limit = super::query::parse_limit(Some(v), 100, 1000)?,
            other => {
                return Err(ApiError::bad(
                    "invalid parameter",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    let project = principal.readable_project(project)?;
    let list = state
        .with_store(move |s| s.list_notifications(project.as_deref(), status, limit))
        .await?;
    Ok(Json(json!({
        "notifications": list.iter().map(notification_json).collect::<Vec<_>>(),
    })))
}

pub async fn retry_notification(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id = parse_id("notification", &id)?;
    let n = state
        .with_store(move |s| s.retry_notification(id, now_micros()))
        .await?;
    state.deliveries.notify_one();
    Ok(Json(notification_json(&n)))
}

pub async fn discard_notification(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id = parse_id("notification", &id)?;
    state
        .with_store(move |s| s.discard_notification(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
