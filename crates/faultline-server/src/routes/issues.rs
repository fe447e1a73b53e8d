//! Issues API: list, detail, events, status, merge, delete, history, and a
//! project's fingerprint rules.
//!
//! Reading needs a read token of the issue's project or an admin token.
//! Triage (status changes, merges) is what people do with read ("user")
//! tokens too; deleting an issue and changing fingerprint rules need an
//! admin token.

use super::State;
use super::admin::parse_json;
use crate::auth::Principal;
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use faultline_model::{
    IgnoreUntil, Issue, IssueStatus, Level, StatusChange, StoredEvent, TokenKind,
    format_rfc3339_micros, now_micros, parse_time_bound,
};
use faultline_store::{Bucket, IssueQuery, IssueSort, StatusUpdate};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

fn time(t: i64) -> String {
    format_rfc3339_micros(t)
}

/// An issue as the API shows it.
pub fn issue_json(i: &Issue) -> Value {
    json!({
        "id": i.id,
        "project": i.project,
        "service": i.service,
        "fingerprint": i.fingerprint,
        "title": i.title,
        "culprit": i.culprit,
        "exception_type": i.exception_type,
        "level": i.level,
        "status": i.status,
        "ignore": i.ignore.map(|g| json!({
            "count": g.count,
            "until": g.until.map(time),
        })),
        "regressed": i.regressed,
        "first_seen": time(i.first_seen),
        "last_seen": time(i.last_seen),
        "count": i.count,
        "hosts": i.hosts,
        "users": i.users,
        "count_24h": i.count_24h,
        "count_prev_24h": i.count_prev_24h,
        "trend": i.count_24h as i64 - i.count_prev_24h as i64,
    })
}

/// An event as the API shows it.
pub fn event_json(e: &StoredEvent) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("timestamp".into(), time(e.timestamp).into());
        m.insert("received_at".into(), time(e.received_at).into());
        m.insert("count".into(), e.details.count.into());
    }
    v
}

fn change_json(c: &StatusChange) -> Value {
    json!({
        "at": time(c.at),
        "actor": c.actor,
        "action": c.action,
        "from": c.from,
        "to": c.to,
        "detail": c.detail,
    })
}

pub fn actor(p: &Principal) -> String {
    if let Some(user) = &p.user {
        return user.clone();
    }
    let kind = match p.kind {
        TokenKind::Admin => "admin",
        TokenKind::Read { .. } => "read",
        TokenKind::Ingest { .. } => "ingest",
    };
    format!("{kind} token #{}", p.token_id)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad("invalid issue id", format!("{id:?} is not an issue id")))
}

fn parse_limit(v: Option<String>) -> Result<usize, ApiError> {
    super::query::parse_limit(v, DEFAULT_LIMIT, MAX_LIMIT)
}

/// The issue, if the principal may see it (404 either way otherwise, so
/// ids of other projects are not revealed).
async fn visible_issue(state: &State, principal: &Principal, id: i64) -> Result<Issue, ApiError> {
    let now = now_micros();
    let issue = state
        .with_store(move |s| s.get_issue(id, now))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("issue {id}")))?;
    match principal.readable_project(Some(issue.project.clone())) {
        Ok(_) => Ok(issue),
        Err(ApiError::Forbidden(_)) if matches!(principal.kind, TokenKind::Read { .. }) => {
            Err(ApiError::NotFound(format!("issue {id}")))
        }
        Err(e) => Err(e),
    }
}

/// [`visible_issue`] of an id as given in a path.
pub async fn visible_issue_of(
    state: &State,
    principal: &Principal,
    id: &str,
) -> Result<Issue, ApiError> {
    visible_issue(state, principal, parse_id(id)?).await
}

pub async fn list(
    state: State,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let mut q = IssueQuery {
        limit: DEFAULT_LIMIT,
        page: 1,
        now: now_micros(),
        ..Default::default()
    };
    let mut project = None;
    let mut sparkline = false;
    for (k, v) in params {
        match k.as_str() {
            "project" => project = Some(v),
            "sparkline" => {
                sparkline = match v.as_str() {
                    "24h" => true,
                    "" | "none" => false,
                    _ => {
                        return Err(ApiError::bad(
                            "invalid parameter",
                            "sparkline: the only sparkline is 24h",
                        ));
                    }
                }
            }
            "service" => q.service = Some(v),
            "status" => {
                q.status = Some(
                    v.parse::<IssueStatus>()
                        .map_err(|e| ApiError::bad("invalid parameter", format!("status: {e}")))?,
                )
            }
            "level" => {
                q.min_level = Some(
                    v.parse::<Level>()
                        .map_err(|e| ApiError::bad("invalid parameter", format!("level: {e}")))?,
                )
            }
            "q" => q.q = Some(v).filter(|s| !s.trim().is_empty()),
            "sort" => {
                q.sort = v
                    .parse::<IssueSort>()
                    .map_err(|e| ApiError::bad("invalid parameter", format!("sort: {e}")))?
            }
            "limit" => q.limit = parse_limit(Some(v))?,
            "page" => {
                q.page = v.parse::<u32>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                    ApiError::bad("invalid parameter", "page must be a number ≥ 1")
                })?
            }
            other => {
                return Err(ApiError::bad(
                    "invalid parameter",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    q.project = principal.readable_project(project)?;
    let (limit, page, now) = (q.limit, q.page, q.now);
    let (result, counts) = state
        .with_store(move |s| {
            let result = s.list_issues(&q)?;
            let counts = if sparkline {
                let ids: Vec<i64> = result.issues.iter().map(|i| i.id).collect();
                s.issue_counts(&ids, sparkline_start(now))?
            } else {
                Vec::new()
            };
            Ok((result, counts))
        })
        .await?;
    let issues: Vec<Value> = result
        .issues
        .iter()
        .map(|i| {
            let mut v = issue_json(i);
            if sparkline {
                v["sparkline"] = json!(sparkline_of(i.id, &counts, now));
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "issues": issues,
        "total": result.total,
        "page": page,
        "limit": limit,
    })))
}

/// Start of the first of the 24 hourly sparkline buckets ending with the
/// current hour.
fn sparkline_start(now: i64) -> i64 {
    let hour = Bucket::Hour.micros();
    now - now.rem_euclid(hour) - 23 * hour
}

/// The 24 hourly counts of one issue, oldest first.
fn sparkline_of(issue: i64, counts: &[(i64, i64, u64)], now: i64) -> [u64; 24] {
    let start = sparkline_start(now);
    let mut out = [0u64; 24];
    for (_, hour, n) in counts.iter().filter(|(id, ..)| *id == issue) {
        let i = (hour - start) / Bucket::Hour.micros();
        if (0..24).contains(&i) {
            out[i as usize] += n;
        }
    }
    out
}

pub async fn detail(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let id = parse_id(&id)?;
    let issue = visible_issue(&state, &principal, id).await?;
    let now = now_micros();
    let (hourly, daily, latest, oldest, history, ticket) = state
        .with_store(move |s| {
            Ok((
                s.issue_histogram(id, Bucket::Hour, now - 24 * Bucket::Hour.micros())?,
                s.issue_histogram(id, Bucket::Day, now - 30 * Bucket::Day.micros())?,
                s.issue_events(id, None, 1)?.pop(),
                s.first_event(id)?,
                s.issue_history(id)?,
                s.issue_ticket(id)?,
            ))
        })
        .await?;
    let buckets =
        |v: &[(i64, u64)]| -> Vec<Value> { v.iter().map(|(t, n)| json!([time(*t), n])).collect() };
    Ok(Json(json!({
        "issue": issue_json(&issue),
        "histogram": {"hourly": buckets(&hourly), "daily": buckets(&daily)},
        "latest_event": latest.as_ref().map(event_json),
        "oldest_event": oldest.as_ref().map(event_json),
        "history": history.iter().map(change_json).collect::<Vec<_>>(),
        "ticket": ticket.map(|t| json!({
            "tracker": t.tracker,
            "id": t.external_id,
            "url": t.url,
        })),
    })))
}

pub async fn events(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let id = parse_id(&id)?;
    let mut limit = DEFAULT_LIMIT;
    let mut before = None;
    for (k, v) in params {
        match k.as_str() {
            "limit" => limit = parse_limit(Some(v))?,
            "before" => {
                before = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::bad("invalid parameter", "before must be an event id")
                })?)
            }
            other => {
                return Err(ApiError::bad(
                    "invalid parameter",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    visible_issue(&state, &principal, id).await?;
    // One more than asked tells whether there is an older page.
    let mut evs = state
        .with_store(move |s| s.issue_events(id, before, limit + 1))
        .await?;
    let more = evs.len() > limit;
    evs.truncate(limit);
    Ok(Json(json!({
        "events": evs.iter().map(event_json).collect::<Vec<_>>(),
        "next_before": if more { evs.last().map(|e| e.id) } else { None },
    })))
}

pub async fn history(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let id = parse_id(&id)?;
    visible_issue(&state, &principal, id).await?;
    let history = state.with_store(move |s| s.issue_history(id)).await?;
    Ok(Json(json!({
        "history": history.iter().map(change_json).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgnore {
    count: Option<u64>,
    /// RFC 3339, epoch, or a duration from now (`2h`, `7d`).
    until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
    ignore: Option<RawIgnore>,
}

pub async fn update(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let id = parse_id(&id)?;
    let StatusBody { status, ignore } = parse_json(&state, &headers, body).await?;
    let status = status
        .parse::<IssueStatus>()
        .map_err(|e| ApiError::bad("invalid status", e))?;
    let now = now_micros();
    let ignore = match (status, ignore) {
        (IssueStatus::Ignored, Some(raw)) => {
            if raw.count == Some(0) {
                return Err(ApiError::bad("invalid ignore", "count must be at least 1"));
            }
            let until = match raw.until {
                None => None,
                Some(u) => Some(future_time(&u, now)?),
            };
            Some(IgnoreUntil {
                count: raw.count,
                until,
            })
        }
        (IssueStatus::Ignored, None) => None,
        (_, Some(_)) => {
            return Err(ApiError::bad(
                "invalid ignore",
                "ignore conditions only go with status \"ignored\"",
            ));
        }
        (_, None) => None,
    };
    visible_issue(&state, &principal, id).await?;
    let update = StatusUpdate {
        status,
        ignore,
        actor: actor(&principal),
        at: now,
    };
    let issue = state
        .with_store(move |s| s.set_issue_status(id, &update))
        .await?;
    Ok(Json(issue_json(&issue)))
}

/// A time bound that may be a duration from now (`2h`) or an absolute time.
fn future_time(v: &str, now: i64) -> Result<i64, ApiError> {
    if let Some(d) = faultline_model::parse_duration(v) {
        return Ok(now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    }
    parse_time_bound(v, now).ok_or_else(|| {
        ApiError::bad(
            "invalid ignore",
            format!("until: {v:?} is not RFC 3339, epoch seconds/ms, or a duration like 2h"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    from: Vec<i64>,
}

pub async fn merge(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let into = parse_id(&id)?;
    let MergeBody { from } = parse_json(&state, &headers, body).await?;
    if from.is_empty() {
        return Err(ApiError::bad(
            "invalid merge",
            "from must name at least one issue",
        ));
    }
    visible_issue(&state, &principal, into).await?;
    for &f in &from {
        visible_issue(&state, &principal, f).await?;
    }
    let who = actor(&principal);
    let issue = state
        .with_store(move |s| {
            let now = now_micros();
            let mut issue = None;
            for f in from {
                issue = Some(s.merge_issues(into, f, &who, now)?);
            }
            Ok(issue)
        })
        .await?
        .ok_or_else(|| ApiError::Internal("merge returned nothing".into()))?;
    Ok(Json(issue_json(&issue)))
}

pub async fn remove(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    principal.require_admin()?;
    let id = parse_id(&id)?;
    state.with_store(move |s| s.delete_issue(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_rules(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    principal.readable_project(Some(project.clone()))?;
    let rules = state
        .with_store(move |s| s.fingerprint_rules(&project))
        .await?;
    let value = match rules {
        Some(json) => serde_json::from_str(&json).unwrap_or(json!({"rules": []})),
        None => json!({"rules": []}),
    };
    Ok(Json(value))
}

pub async fn put_rules(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    state.auth.authenticate(&headers).await?.require_admin()?;
    let value: Value = parse_json(&state, &headers, body).await?;
    let text = value.to_string();
    faultline_issues::parse_rules(&text)
        .map_err(|e| ApiError::bad("invalid fingerprint rules", e.to_string()))?;
    let p = project.clone();
    state
        .with_store(move |s| s.set_fingerprint_rules(&p, &text))
        .await?;
    state.issues.rules_changed(&project);
    Ok(Json(value))
}
