//! `POST /api/v1/incidents`: an agent reports an error with its context,
//! environment and attachments (wire format: docs/AGENT.md). It becomes an
//! event of its issue, idempotently on its key; attachments are stored
//! content-addressed and compressed. And the attachment download.

use super::State;
use super::body::read_body;
use super::issues::visible_issue_of;
use crate::error::ApiError;
use crate::issues::Incident;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use faultline_model::{
    AttachmentRef, AttrValue, Attributes, EventContext, EventDetails, Level, Name, NewEntry,
    StoredEntry, TokenKind, now_micros, parse_rfc3339_micros,
};
use faultline_store::Attachment;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

/// Longest idempotency key.
const MAX_KEY: usize = 256;
/// Most context lines kept on each side, and their longest line.
const MAX_CONTEXT_LINES: usize = 500;
const MAX_CONTEXT_LINE: usize = 8 * 1024;
/// Most environment entries and attachments.
const MAX_ENVIRONMENT: usize = 256;
const MAX_ATTACHMENTS: usize = 16;

#[derive(Deserialize)]
struct RawContext {
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
}

#[derive(Deserialize)]
struct RawSource {
    path: Option<String>,
    offset: Option<u64>,
}

#[derive(Deserialize)]
struct RawAttachment {
    name: String,
    #[serde(default = "text_plain")]
    content_type: String,
    /// `gzip` (default) or `identity`.
    #[serde(default = "gzip")]
    encoding: String,
    /// Size of the original content, checked when given.
    size: Option<u64>,
    /// Base64 of the (encoded) bytes.
    data: String,
}

fn text_plain() -> String {
    "text/plain".into()
}

fn gzip() -> String {
    "gzip".into()
}

/// The incident as sent. Unknown fields are ignored, so newer agents can
/// talk to older servers.
#[derive(Deserialize)]
struct RawIncident {
    idempotency_key: Option<String>,
    service: Option<String>,
    level: Option<String>,
    timestamp: Option<Value>,
    message: String,
    title: Option<String>,
    /// The agent's own fingerprint: kept as an attribute; the server's
    /// engine decides the issue.
    fingerprint: Option<String>,
    logger: Option<String>,
    pid: Option<i64>,
    engine: Option<String>,
    count: Option<u64>,
    dropped_before: Option<u64>,
    context: Option<RawContext>,
    #[serde(default)]
    environment: BTreeMap<String, Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
    source: Option<RawSource>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
    host: Option<String>,
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::bad("invalid incident", detail)
}

fn timestamp(v: &Option<Value>, now: i64) -> Result<i64, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(now),
        Some(Value::String(s)) => {
            parse_rfc3339_micros(s).ok_or_else(|| bad(format!("timestamp {s:?} is not RFC 3339")))
        }
        Some(Value::Number(n)) => {
            let x = n.as_f64().ok_or_else(|| bad("timestamp is not a number"))?;
            // Seconds below 1e11, else milliseconds (as for log entries).
            Ok(if x.abs() < 1e11 {
                (x * 1e6) as i64
            } else {
                (x * 1e3) as i64
            })
        }
        Some(_) => Err(bad("timestamp must be RFC 3339 or epoch seconds/ms")),
    }
}

fn attr_value(v: &Value) -> Option<AttrValue> {
    match v {
        Value::Bool(b) => Some(AttrValue::Bool(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => AttrValue::Int(i),
            None => AttrValue::Float(n.as_f64()?),
        }),
        Value::String(s) => Some(AttrValue::from(s.as_str())),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Decodes, checks and hashes one attachment.
fn attachment(a: &RawAttachment, max: usize) -> Result<(AttachmentRef, Attachment), ApiError> {
    if a.name.trim().is_empty() || a.name.len() > 255 {
        return Err(bad("an attachment needs a name of 1-255 bytes"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(a.data.as_bytes())
        .map_err(|e| bad(format!("attachment {:?}: data is not base64: {e}", a.name)))?;
    let (content, gz) = match a.encoding.as_str() {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("attachment {:?}: not gzip: {e}", a.name)))?;
            (out, raw)
        }
        "identity" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &raw)
                .and_then(|_| enc.finish())
                .map(|gz| (raw, gz))
                .map_err(|e| ApiError::Internal(e.to_string()))?
        }
        other => {
            return Err(bad(format!(
                "attachment {:?}: encoding {other:?} is not gzip or identity",
                a.name
            )));
        }
    };
    if content.len() > max {
        return Err(ApiError::BadRequest {
            error: "attachment too large",
            detail: format!(
                "attachment {:?} is larger than {max} bytes uncompressed",
                a.name
            ),
        });
    }
    if let Some(size) = a.size
        && size != content.len() as u64
    {
        return Err(bad(format!(
            "attachment {:?}: size says {size} bytes, the data has {}",
            a.name,
            content.len()
        )));
    }
    let sha256 = hex::encode(Sha256::digest(&content));
    Ok((
        AttachmentRef {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: content.len() as u64,
            sha256: sha256.clone(),
        },
        Attachment {
            sha256,
            content_type: a.content_type.clone(),
            size: content.len() as u64,
            gzip: gz,
        },
    ))
}

pub async fn post_incident(
    state: State,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let TokenKind::Ingest { project, service } = principal.kind else {
        return Err(ApiError::Forbidden(
            "incidents are sent with an ingest token (faultline token create --project P --service S)"
                .into(),
        ));
    };
    let bytes = read_body(
        &headers,
        body,
        state.config.max_incident_bytes,
        state.config.body_timeout,
    )
    .await?;
    let raw: RawIncident = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad("malformed json", e.to_string()))?;
    drop(bytes);

    let header_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| bad("the Idempotency-Key header is not text"))?;
    let key = match (header_key, raw.idempotency_key.clone()) {
        (Some(h), Some(b)) if h != b => {
            return Err(bad("the Idempotency-Key header and idempotency_key differ"));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(bad(
                "an incident needs an idempotency key (Idempotency-Key header or idempotency_key)",
            ));
        }
    };
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(bad(format!(
            "the idempotency key must be 1-{MAX_KEY} bytes"
        )));
    }
    if let Some(s) = &raw.service
        && s != &service
    {
        return Err(ApiError::Forbidden(format!(
            "the incident names service {s:?} but this token may only send for {service:?}"
        )));
    }
    let level = match &raw.level {
        None => Level::Error,
        Some(l) => l.parse::<Level>().map_err(|e| bad(e.to_string()))?,
    };
    if raw.message.trim().is_empty() {
        return Err(bad("message must not be empty"));
    }
    let limits = &state.config.limits;
    if raw.message.len() > limits.max_message_bytes {
        return Err(bad(format!(
            "message is longer than {} bytes",
            limits.max_message_bytes
        )));
    }
    let now = now_micros();
    let ts = timestamp(&raw.timestamp, now)?;
    if raw.environment.len() > MAX_ENVIRONMENT {
        return Err(bad(format!(
            "at most {MAX_ENVIRONMENT} environment entries"
        )));
    }
    if raw.attachments.len() > MAX_ATTACHMENTS {
        return Err(bad(format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    if raw.attributes.len() > limits.max_attributes {
        return Err(bad(format!("at most {} attributes", limits.max_attributes)));
    }
    let environment: BTreeMap<String, String> = raw
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    let mut attributes = Attributes::new();
    for (k, v) in &raw.attributes {
        let v = attr_value(v)
            .ok_or_else(|| bad(format!("attribute {k:?} must be a string, number or bool")))?;
        attributes.insert(k.into(), v);
    }
    let mut put = |k: &str, v: Option<AttrValue>| {
        if let Some(v) = v {
            attributes.insert(k.into(), v);
        }
    };
    put("logger", raw.logger.as_deref().map(AttrValue::from));
    put("process.pid", raw.pid.map(AttrValue::Int));
    put("engine", raw.engine.as_deref().map(AttrValue::from));
    put(
        "agent.fingerprint",
        raw.fingerprint.as_deref().map(AttrValue::from),
    );
    if let Some(src) = &raw.source {
        put("source.path", src.path.as_deref().map(AttrValue::from));
        put(
            "source.offset",
            src.offset
                .and_then(|o| i64::try_from(o).ok())
                .map(AttrValue::Int),
        );
    }
    if let Some(d) = raw.dropped_before.filter(|d| *d > 0) {
        metrics::counter!("faultline_agent_dropped_incidents_total").increment(d);
        put(
            "agent.dropped_before",
            i64::try_from(d).ok().map(AttrValue::Int),
        );
    }
    let context = raw.context.map(|c| {
        let clip = |v: Vec<String>, from_end: bool| -> Vec<String> {
            let n = v.len();
            let keep: Vec<String> = if from_end && n > MAX_CONTEXT_LINES {
                v.into_iter().skip(n - MAX_CONTEXT_LINES).collect()
            } else {
                v.into_iter().take(MAX_CONTEXT_LINES).collect()
            };
            keep.into_iter()
                .map(|mut l| {
                    if l.len() > MAX_CONTEXT_LINE {
                        let mut end = MAX_CONTEXT_LINE;
                        while !l.is_char_boundary(end) {
                            end -= 1;
                        }
                        l.truncate(end);
                    }
                    l
                })
                .collect()
        };
        EventContext {
            before: clip(c.before, true),
            after: clip(c.after, false),
        }
    });

    // Attachments first (decoding is CPU work: off the async workers), so
    // an event never refers to a missing one.
    let max_attachment = state.config.max_attachment_bytes;
    let raw_attachments = raw.attachments;
    let decoded = tokio::task::spawn_blocking(move || {
        raw_attachments
            .iter()
            .map(|a| attachment(a, max_attachment))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let (refs, blobs): (Vec<AttachmentRef>, Vec<Attachment>) = decoded.into_iter().unzip();
    if !blobs.is_empty() {
        state
            .with_store(move |s| {
                for b in &blobs {
                    s.put_attachment(b)?;
                }
                Ok(())
            })
            .await?;
    }

    let user = environment
        .get("user")
        .or_else(|| environment.get("user_login"))
        .cloned();
    let host = raw.host.or_else(|| environment.get("hostname").cloned());
    let incident = Incident {
        entry: StoredEntry {
            id: 0,
            entry: NewEntry {
                project: project.into(),
                service: service.into(),
                level,
                message: raw.message,
                tags: raw.tags.into_iter().map(Name::from).collect(),
                timestamp: ts,
                received_at: now,
                host: host.map(Name::from),
                attributes,
                trace_id: None,
                span_id: None,
            },
        },
        title: raw.title,
        user,
        details: EventDetails {
            context,
            environment,
            attachments: refs,
            count: raw.count.unwrap_or(1).max(1),
            ..Default::default()
        },
        key,
    };
    let outcome = state.issues.incident(incident).await?;
    metrics::counter!("faultline_incidents_total", "duplicate" => if outcome.duplicate { "true" } else { "false" })
        .increment(1);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "event_id": outcome.event_id,
            "issue_id": outcome.issue_id,
            "duplicate": outcome.duplicate,
            "new_issue": outcome.new_issue,
        })),
    ))
}

#[derive(Deserialize)]
pub struct DownloadParams {
    /// `inline=1`: shown in the browser rather than downloaded.
    #[serde(default)]
    inline: Option<String>,
}

/// `GET /api/v1/issues/{id}/events/{event}/attachments/{sha256}`: the
/// original bytes of an attachment of that event.
pub async fn download(
    state: State,
    headers: HeaderMap,
    Path((id, event, sha)): Path<(String, String, String)>,
    Query(params): Query<DownloadParams>,
) -> Result<Response, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let issue = visible_issue_of(&state, &principal, &id).await?;
    let event: i64 = event
        .parse()
        .map_err(|_| ApiError::bad("invalid event id", format!("{event:?}")))?;
    let issue_id = issue.id;
    let found = state
        .with_store(move |s| Ok(s.issue_events(issue_id, Some(event + 1), 1)?.pop()))
        .await?
        .filter(|e| e.id == event)
        .ok_or_else(|| ApiError::NotFound(format!("event {event} of issue {issue_id}")))?;
    let r = found
        .details
        .attachments
        .iter()
        .find(|a| a.sha256 == sha)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("attachment {sha} of event {event}")))?;
    let blob = state
        .with_store(move |s| s.get_attachment(&sha))
        .await?
        .ok_or_else(|| ApiError::NotFound("the attachment's content is gone".into()))?;
    let content = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(blob.size as usize);
        flate2::read::GzDecoder::new(&blob.gzip[..])
            .read_to_end(&mut out)
            .map(|_| out)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("a stored attachment does not decompress: {e}")))?;
    // Attachments come from senders (ingest tokens): never let one be a
    // page of this origin. Inline only as plain text; always sandboxed.
    let inline = params.inline.is_some();
    let filename: String = r
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut resp = content.into_response();
    let h = resp.headers_mut();
    let content_type = if inline {
        HeaderValue::from_static("text/plain; charset=utf-8")
    } else {
        HeaderValue::from_str(&r.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    h.insert(header::CONTENT_TYPE, content_type);
    let disposition = if inline { "inline" } else { "attachment" };
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
