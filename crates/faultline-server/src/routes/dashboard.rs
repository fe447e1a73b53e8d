//! What the dashboard shows beyond the issue list: a project's activity
//! overview, the stream of new issues and regressions, and which log entries
//! became issue events.

use super::State;
use crate::error::ApiError;
use crate::issues::IssueNotice;
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use faultline_model::{format_rfc3339_micros, now_micros};
use faultline_store::{Bucket, LogCount};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

/// Counts as `[{"t": RFC 3339 bucket start, "<level>": n, …}]`, one object
/// per bucket from `start`, `n` buckets (empty buckets included).
fn series(counts: &[LogCount], start: i64, width: i64, n: i64) -> Vec<Value> {
    let mut by_bucket: HashMap<i64, serde_json::Map<String, Value>> = HashMap::new();
    for c in counts {
        let m = by_bucket.entry(c.bucket).or_default();
        let prev = m.get(c.level.as_str()).and_then(Value::as_u64).unwrap_or(0);
        m.insert(c.level.as_str().to_owned(), json!(prev + c.count));
    }
    (0..n)
        .map(|i| {
            let t = start + i * width;
            let mut m = by_bucket.remove(&t).unwrap_or_default();
            m.insert("t".into(), json!(format_rfc3339_micros(t)));
            Value::Object(m)
        })
        .collect()
}

/// `GET /api/v1/projects/{project}/overview`: entries per hour (24 h) and
/// per day (30 d) by level, each service's last 24 h (entries, errors, error
/// rate, last seen), and the issue counts (unresolved, new in 24 h,
/// regressed).
pub async fn overview(
    state: State,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    principal.readable_project(Some(project.clone()))?;
    let now = now_micros();
    let hour_start = now - now.rem_euclid(HOUR) - 23 * HOUR;
    let day_start = now - now.rem_euclid(DAY) - 29 * DAY;
    let since = now - DAY;
    let (hourly, daily, activity, services, issues) = state
        .with_store(move |s| {
            Ok((
                s.log_counts(&project, None, Bucket::Hour, hour_start)?,
                s.log_counts(&project, None, Bucket::Day, day_start)?,
                s.service_activity(&project, since)?,
                s.list_services(Some(&project))?,
                s.project_overview(&project, since)?,
            ))
        })
        .await?;
    let services: Vec<Value> = activity
        .iter()
        .map(|a| {
            let last_seen = services
                .iter()
                .find(|s| s.name == a.service)
                .and_then(|s| s.last_seen);
            json!({
                "name": a.service,
                "entries_24h": a.total,
                "errors_24h": a.errors,
                "error_rate_24h": if a.total == 0 { 0.0 } else { a.errors as f64 / a.total as f64 },
                "last_seen": last_seen.map(format_rfc3339_micros),
            })
        })
        .collect();
    Ok(Json(json!({
        "hourly": series(&hourly, hour_start, HOUR, 24),
        "daily": series(&daily, day_start, DAY, 30),
        "services": services,
        "issues": issues,
    })))
}

/// `GET /api/v1/issues/live[?project=P]`: Server-Sent Events, one `issue`
/// event (`{"kind": "new"|"regression", "issue_id", "project", "service",
/// "title", "level"}`) per new issue or regression as it is committed.
pub async fn live_issues(
    state: State,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let project = super::query::readable_project_param(params, &principal)?;
    let rx = state.notices.subscribe();
    let stop = state.shutdown.clone();
    let mut ticker = tokio::time::interval(state.config.ping_interval);
    ticker.reset();
    let access = super::live::Access {
        auth: state.auth.clone(),
        headers,
    };
    let stream = futures_util::stream::unfold(
        (rx, stop, project, ticker, access),
        |(mut rx, mut stop, project, mut ticker, access)| async move {
            loop {
                let notice: IssueNotice = tokio::select! {
                    r = rx.recv() => match r {
                        Ok(n) => n,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = ticker.tick() => {
                        // Logged out or revoked since: end the stream.
                        if !access.still_valid().await {
                            return None;
                        }
                        continue;
                    }
                    _ = stop.changed() => return None,
                };
                if project.as_ref().is_some_and(|p| *p != notice.project) {
                    continue;
                }
                let data = serde_json::to_string(&notice).expect("notices serialize");
                let event = Event::default().event("issue").data(data);
                return Some((Ok(event), (rx, stop, project, ticker, access)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(state.config.ping_interval)
            .text("ping"),
    ))
}

/// Most log ids one `issue-links` call may ask about.
const MAX_LINK_IDS: usize = 1000;

/// `GET /api/v1/issue-links?log_ids=1,2,3` (admin): `{"links": {"<log id>":
/// <issue id>}}` for the entries that became issue events (the live view
/// asks for the error lines it shows).
pub async fn issue_links(
    state: State,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    // Issue ids of any project: for administrators (the UI). Read tokens
    // see `issue_id` on the entries of their own project's queries.
    state.auth.authenticate(&headers).await?.require_admin()?;
    let mut ids = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "log_ids" => {
                for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    ids.push(id.parse::<i64>().map_err(|_| {
                        ApiError::bad("invalid parameter", format!("log_ids: {id:?} is not an id"))
                    })?);
                }
            }
            other => {
                return Err(ApiError::bad(
                    "invalid parameter",
                    format!("unknown query parameter {other:?}"),
                ));
            }
        }
    }
    if ids.len() > MAX_LINK_IDS {
        return Err(ApiError::bad(
            "invalid parameter",
            format!("at most {MAX_LINK_IDS} log_ids per request"),
        ));
    }
    let links = state.with_store(move |s| s.issues_for_logs(&ids)).await?;
    let map: serde_json::Map<String, Value> = links
        .into_iter()
        .map(|(log, issue)| (log.to_string(), json!(issue)))
        .collect();
    Ok(Json(json!({ "links": map })))
}
