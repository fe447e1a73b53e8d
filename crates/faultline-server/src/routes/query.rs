//! `GET /api/v1/logs` and `GET /api/v1/services`.

use super::State;
use super::json::{ApiEntry, ApiService};
use crate::auth::Principal;
use crate::error::ApiError;
use axum::Json;
use axum::extract::Query;
use axum::http::HeaderMap;
use faultline_model::{Level, LogFilter, now_micros, parse_time_bound};
use faultline_store::{Cursor, LogQuery, Paging};
use serde_json::{Value, json};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Query parameters as pairs, so `service` may repeat.
pub type Params = Query<Vec<(String, String)>>;

/// Parameters other than the filter's.
#[derive(Debug, Default)]
pub struct Extra {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub page: Option<String>,
}

/// Builds the filter shared by the query and the live tail, checking the
/// principal may read the project. `allow_paging` admits limit/cursor/page.
pub fn parse_filter(
    params: Vec<(String, String)>,
    principal: &Principal,
    allow_paging: bool,
) -> Result<(LogFilter, Extra), ApiError> {
    let now = now_micros();
    let mut f = LogFilter::default();
    let mut project = None;
    let mut extra = Extra::default();
    for (k, v) in params {
        match k.as_str() {
            "project" => project = Some(v),
            "service" | "service_name" => f.services.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "level" => {
                f.min_level = Some(
                    v.parse::<Level>()
                        .map_err(|e| ApiError::bad("invalid parameter", format!("level: {e}")))?,
                )
            }
            "tag" => f.tag = Some(v),
            "q" => {
                if !v.trim().is_empty() {
                    f.q = Some(v)
                }
            }
            "since" | "until" => {
                let t = parse_time_bound(&v, now).ok_or_else(|| {
                    ApiError::bad(
                        "invalid parameter",
                        format!(
                            "{k}: {v:?} is not RFC 3339, epoch seconds/ms, or a duration like 15m"
                        ),
                    )
                })?;
                if k == "since" {
                    f.since = Some(t)
                } else {
                    f.until = Some(t)
                }
            }
            "limit" if allow_paging => extra.limit = Some(v),
            "cursor" if allow_paging => extra.cursor = Some(v),
            "page" if allow_paging => extra.page = Some(v),
            other => {
                return Err(ApiError::bad(
                    "invalid parameter",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    f.project = principal.readable_project(project)?;
    Ok((f, extra))
}

/// A `limit` parameter: `default` when absent, else 1..=`max`.
pub fn parse_limit(v: Option<String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match v {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad("invalid parameter", format!("limit must be 1-{max}"))),
    }
}

pub async fn get_logs(
    state: State,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let (filter, extra) = parse_filter(params, &principal, true)?;
    let limit = parse_limit(extra.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let paging = match (extra.cursor, extra.page) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "invalid parameter",
                "use either cursor or page, not both",
            ));
        }
        (Some(c), None) => {
            Paging::Cursor(Some(c.parse::<Cursor>().map_err(|e| {
                ApiError::bad("invalid parameter", format!("cursor: {e}"))
            })?))
        }
        (None, Some(p)) => Paging::Page(
            p.parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| ApiError::bad("invalid parameter", "page must be a number ≥ 1"))?,
        ),
        (None, None) => Paging::Cursor(None),
    };
    let query = LogQuery {
        filter,
        limit,
        paging,
    };
    let issue_level = state.issues.min_level();
    let (page, links) = state
        .with_store(move |s| {
            let page = s.query_logs(&query)?;
            // Which of the entries became issue events (the UI links them).
            let ids: Vec<i64> = page
                .entries
                .iter()
                .filter(|e| e.entry.level >= issue_level)
                .map(|e| e.id)
                .collect();
            let links = if ids.is_empty() {
                Vec::new()
            } else {
                s.issues_for_logs(&ids)?
            };
            Ok((page, links))
        })
        .await?;
    let links: std::collections::HashMap<i64, i64> = links.into_iter().collect();
    let entries: Vec<ApiEntry<'_>> = page
        .entries
        .iter()
        .map(|e| ApiEntry(e, links.get(&e.id).copied()))
        .collect();
    Ok(Json(json!({
        "entries": entries,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// The only parameter a request takes is `project`: the project the
/// principal may read (see [`Principal::readable_project`]).
pub fn readable_project_param(
    params: Vec<(String, String)>,
    principal: &Principal,
) -> Result<Option<String>, ApiError> {
    let mut project = None;
    for (k, v) in params {
        match k.as_str() {
            "project" => project = Some(v),
            other => {
                return Err(ApiError::bad(
                    "invalid parameter",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    principal.readable_project(project)
}

pub async fn get_services(
    state: State,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let project = readable_project_param(params, &principal)?;
    let services = state
        .with_store(move |s| s.list_services(project.as_deref()))
        .await?;
    let list: Vec<ApiService<'_>> = services.iter().map(ApiService).collect();
    Ok(Json(json!({ "services": list })))
}
