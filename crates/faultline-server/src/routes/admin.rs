//! Admin API: projects, services, tokens.

use super::State;
use super::body::read_body;
use super::json::ApiToken;
use crate::auth;
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use faultline_model::{TokenKind, now_micros};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Longest project or service name.
const MAX_NAME: usize = 128;

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(ApiError::bad(
            "invalid name",
            format!("{what} names must be 1-{MAX_NAME} bytes without control characters or '/'"),
        ));
    }
    Ok(())
}

/// Admin request bodies are small.
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub(crate) async fn parse_json<T: serde::de::DeserializeOwned>(
    state: &State,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = read_body(headers, body, MAX_ADMIN_BODY, state.config.body_timeout).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad("malformed json", e.to_string()))
}

pub async fn list_projects(state: State, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let projects = state.with_store(|s| s.list_projects()).await?;
    let list: Vec<Value> = projects
        .iter()
        .map(|p| json!({"id": p.id, "name": p.name, "created_at": faultline_model::format_rfc3339_micros(p.created_at)}))
        .collect();
    Ok(Json(json!({ "projects": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

pub async fn create_project(
    state: State,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let NameBody { name } = parse_json(&state, &headers, body).await?;
    check_name("project", &name)?;
    let (existed, p) = state
        .with_store(move |s| {
            let existed = s.list_projects()?.iter().any(|p| p.name == name);
            Ok((existed, s.ensure_project(&name)?))
        })
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(
            json!({"id": p.id, "name": p.name, "created_at": faultline_model::format_rfc3339_micros(p.created_at)}),
        ),
    ))
}

pub async fn create_service(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let NameBody { name } = parse_json(&state, &headers, body).await?;
    check_name("project", &project)?;
    check_name("service", &name)?;
    let s = state
        .with_store(move |s| s.ensure_service(&project, &name))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": s.id, "project": s.project, "name": s.name, "created_at": faultline_model::format_rfc3339_micros(s.created_at)}),
        ),
    ))
}

pub async fn list_tokens(
    state: State,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    if let Some(k) = params.keys().find(|k| k.as_str() != "project") {
        return Err(ApiError::bad(
            "invalid parameter",
            format!("unknown query parameter {k:?}"),
        ));
    }
    let project = params.get("project").cloned();
    let tokens = state
        .with_store(move |s| s.list_tokens(project.as_deref()))
        .await?;
    let list: Vec<ApiToken<'_>> = tokens.iter().map(ApiToken).collect();
    Ok(Json(json!({ "tokens": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    kind: String,
    project: Option<String>,
    service: Option<String>,
}

pub async fn create_token(
    state: State,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let b: TokenBody = parse_json(&state, &headers, body).await?;
    let kind = match (b.kind.as_str(), b.project, b.service) {
        ("admin", None, None) => TokenKind::Admin,
        ("read", Some(project), None) => {
            check_name("project", &project)?;
            TokenKind::Read { project }
        }
        ("ingest", Some(project), Some(service)) => {
            check_name("project", &project)?;
            check_name("service", &service)?;
            TokenKind::Ingest { project, service }
        }
        _ => {
            return Err(ApiError::bad(
                "invalid token request",
                "expected {\"kind\":\"ingest\",\"project\":P,\"service\":S}, {\"kind\":\"read\",\"project\":P} or {\"kind\":\"admin\"}",
            ));
        }
    };
    let (token, info) = state
        .with_store(move |s| auth::create_token(s, &kind))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "info": ApiToken(&info)})),
    ))
}

pub async fn revoke_token(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad("invalid parameter", "token id must be a number"))?;
    let info = state
        .with_store(move |s| s.revoke_token(id, now_micros()))
        .await?;
    state.auth.invalidate();
    Ok(Json(json!(ApiToken(&info))))
}
