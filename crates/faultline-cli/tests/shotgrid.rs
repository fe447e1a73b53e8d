//! ShotGrid tickets from a real `faultline server`, against a fake ShotGrid
//! site that implements the documented REST calls and checks them (auth
//! form, bearer tokens that expire, the array-filter content type, JSON
//! shapes, the three-step upload): the first incident of a signature
//! creates one ticket with the log attached; more of the same create none
//! (a later one adds at most a note); another signature creates a second
//! ticket; an open ticket with the signature is reused; expired tokens are
//! renewed.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use common::{Server, gzip, wait_until};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROJECT: i64 = 190;
const TOKEN_LIFE: u64 = 2;

#[derive(Default)]
struct Site {
    addr: String,
    tokens: HashMap<String, Instant>,
    auth_calls: u32,
    /// (id, title, status, description)
    tickets: Vec<(i64, String, String, String)>,
    /// ticket id → (filename, bytes)
    attachments: HashMap<i64, Vec<(String, Vec<u8>)>>,
    /// upload key → bytes put there
    uploaded: HashMap<String, Vec<u8>>,
    notes: Vec<(i64, String)>,
    /// Requests that broke the documented protocol.
    violations: Vec<String>,
    rejected_expired: u32,
}

type Fake = Arc<Mutex<Site>>;

fn fail(site: &Fake, what: String) -> Response {
    site.lock().unwrap().violations.push(what.clone());
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"errors": [{"title": what}]})),
    )
        .into_response()
}

/// The answer to a request whose bearer token is unknown or expired.
fn unauthorized(site: &Fake, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut s = site.lock().unwrap();
    match token.and_then(|t| s.tokens.get(&t).copied()) {
        Some(expires) if Instant::now() < expires => None,
        Some(_) => {
            s.rejected_expired += 1;
            Some((StatusCode::UNAUTHORIZED, "token expired").into_response())
        }
        None => {
            s.violations.push("request without a valid token".into());
            Some((StatusCode::UNAUTHORIZED, "no token").into_response())
        }
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn auth(State(site): State<Fake>, headers: HeaderMap, body: String) -> Response {
    if !content_type(&headers).starts_with("application/x-www-form-urlencoded") {
        return fail(&site, format!("auth body is {:?}", content_type(&headers)));
    }
    let form: HashMap<&str, &str> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if form.get("grant_type") != Some(&"client_credentials")
        || form.get("client_id") != Some(&"faultline")
        || form.get("client_secret") != Some(&"k3y")
    {
        return fail(&site, format!("bad auth form {body:?}"));
    }
    let mut s = site.lock().unwrap();
    s.auth_calls += 1;
    let token = format!("tok-{}", s.auth_calls);
    s.tokens.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(TOKEN_LIFE),
    );
    axum::Json(json!({
        "token_type": "Bearer", "access_token": token,
        "expires_in": TOKEN_LIFE, "refresh_token": "unused",
    }))
    .into_response()
}

async fn search(State(site): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = unauthorized(&site, &headers) {
        return r;
    }
    if content_type(&headers) != "application/vnd+shotgun.api3_array+json" {
        return fail(
            &site,
            format!("search content type {:?}", content_type(&headers)),
        );
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let filters = v["filters"].as_array().cloned().unwrap_or_default();
    let mut title = None;
    let mut project_ok = false;
    let mut excludes_closed = false;
    for f in &filters {
        match (f[0].as_str(), f[1].as_str()) {
            (Some("title"), Some("is")) => title = f[2].as_str().map(str::to_owned),
            (Some("project"), Some("is")) => {
                project_ok = f[2] == json!({"type": "Project", "id": PROJECT})
            }
            (Some("sg_status_list"), Some("is_not")) => excludes_closed = f[2] == "clsd",
            _ => {}
        }
    }
    if title.is_none() || !project_ok || !excludes_closed {
        return fail(&site, format!("unexpected search filters {filters:?}"));
    }
    let s = site.lock().unwrap();
    let data: Vec<Value> = s
        .tickets
        .iter()
        .filter(|t| Some(&t.1) == title.as_ref() && t.2 != "clsd")
        .map(|t| json!({"type": "Ticket", "id": t.0, "attributes": {"title": t.1, "sg_status_list": t.2}}))
        .collect();
    axum::Json(json!({"data": data, "links": {"self": "/api/v1/entity/tickets/_search"}}))
        .into_response()
}

async fn create(State(site): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = unauthorized(&site, &headers) {
        return r;
    }
    if !content_type(&headers).starts_with("application/json") {
        return fail(&site, "create content type".into());
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let title = v["title"].as_str().unwrap_or("").to_string();
    if v["project"] != json!({"type": "Project", "id": PROJECT})
        || title.is_empty()
        || v["description"].as_str().is_none()
    {
        return fail(&site, format!("bad ticket {v}"));
    }
    let mut s = site.lock().unwrap();
    let id = 1000 + s.tickets.len() as i64;
    s.tickets.push((
        id,
        title.clone(),
        "opn".into(),
        v["description"].as_str().unwrap().to_string(),
    ));
    (
        StatusCode::CREATED,
        axum::Json(json!({"data": {"type": "Ticket", "id": id, "attributes": {"title": title}}})),
    )
        .into_response()
}

async fn start_upload(
    State(site): State<Fake>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = unauthorized(&site, &headers) {
        return r;
    }
    let Some(filename) = q.get("filename") else {
        return fail(&site, "upload without filename".into());
    };
    let addr = site.lock().unwrap().addr.clone();
    let key = format!("{id}-{filename}");
    axum::Json(json!({
        "data": {"timestamp": "2026-11-22T00:00:00Z", "upload_type": "Attachment", "upload_id": null,
                 "storage_service": "sg", "original_filename": filename, "multipart_upload": false,
                 "key": key},
        "links": {"upload": format!("http://{addr}/storage/{key}"),
                  "complete_upload": format!("/api/v1/entity/tickets/{id}/_upload")},
    }))
    .into_response()
}

async fn put_bytes(
    State(site): State<Fake>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&site, &headers) {
        return r;
    }
    site.lock().unwrap().uploaded.insert(key, body.to_vec());
    StatusCode::OK.into_response()
}

async fn complete_upload(
    State(site): State<Fake>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&site, &headers) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = v["upload_info"]["key"].as_str().unwrap_or("").to_string();
    let name = v["upload_data"]["display_name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut s = site.lock().unwrap();
    let Some(bytes) = s.uploaded.remove(&key) else {
        drop(s);
        return fail(&site, format!("complete_upload without an upload: {v}"));
    };
    s.attachments.entry(id).or_default().push((name, bytes));
    StatusCode::CREATED.into_response()
}

async fn note(State(site): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = unauthorized(&site, &headers) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ticket) = v["note_links"][0]["id"].as_i64() else {
        return fail(&site, format!("note without a ticket link {v}"));
    };
    if v["note_links"][0]["type"] != "Ticket" || v["project"]["id"] != PROJECT {
        return fail(&site, format!("bad note {v}"));
    }
    site.lock()
        .unwrap()
        .notes
        .push((ticket, v["content"].as_str().unwrap_or("").to_string()));
    (
        StatusCode::CREATED,
        axum::Json(json!({"data": {"type": "Note", "id": 1}})),
    )
        .into_response()
}

async fn fake_site() -> (Fake, String) {
    let site: Fake = Arc::default();
    let app = Router::new()
        .route("/api/v1/auth/access_token", post(auth))
        .route("/api/v1/entity/tickets/_search", post(search))
        .route("/api/v1/entity/tickets", post(create))
        .route(
            "/api/v1/entity/tickets/{id}/_upload",
            get(start_upload).post(complete_upload),
        )
        .route("/storage/{key}", put(put_bytes))
        .route("/api/v1/entity/notes", post(note))
        .with_state(site.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    site.lock().unwrap().addr = addr.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (site, format!("http://{addr}"))
}

fn incident(key: &str, title: &str, error: &str, log: &[u8]) -> Value {
    json!({
        "idempotency_key": key,
        "level": "error",
        "message": format!("Traceback (most recent call last):\n  File \"/opt/tk/app.py\", line 9, in run\n    go()\n{error}: it broke"),
        "title": title,
        "environment": {"hostname": "ws-07", "user": "alice"},
        "attachments": [{"name": "tk-maya.log", "content_type": "text/plain", "encoding": "gzip",
                         "size": log.len(), "data": base64::engine::general_purpose::STANDARD.encode(gzip(log))}],
    })
}

async fn post_incident(s: &Server, token: &str, body: &Value) {
    let r = common::into_resp(
        common::http_client()
            .post(s.url("/api/v1/incidents"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
}

async fn delivered(s: &Server, admin: &str, n: usize) {
    let mut last = Value::Null;
    let ok = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            let r = s
                .get(
                    "/api/v1/notifications",
                    Some(admin),
                    &[("project", "studio")],
                )
                .await;
            last = r.json["notifications"].clone();
            let list = last.as_array().cloned().unwrap_or_default();
            list.len() >= n && list.iter().all(|x| x["status"] == "delivered")
        },
    )
    .await;
    assert!(ok, "expected {n} delivered notifications: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_become_one_shotgrid_ticket_per_signature() {
    let (site, url) = fake_site().await;
    // An open ticket filed by hand earlier, with a signature an incident
    // will have.
    site.lock().unwrap().tickets.push((
        999,
        "bob - KeyError".into(),
        "opn".into(),
        "filed by hand".into(),
    ));
    let s = Server::start_with_config("[alerts]\nretry_base = \"200ms\"\n").await;
    let admin = s.admin_token();
    let token = s.ingest_token("studio", "tk-maya");
    s.alert_channel_and_rule(
        &admin,
        "studio",
        "pms",
        json!({"type": "shotgrid", "site": url, "script_name": "faultline",
               "script_key": "k3y", "project_id": PROJECT, "note_interval": "1h"}),
        json!({"name": "tickets", "channels": ["pms"], "cooldown": "1s",
               "condition": {"type": "frequency", "count": 1, "window": "1m"}}),
    )
    .await;

    // First incident: one ticket, log attached.
    let log = b"2026-11-22 06:00:00,000 [1 ERROR sgtk] TankError: it broke\n".repeat(100);
    post_incident(
        &s,
        &token,
        &incident("k-0", "alice - TankError", "TankError", &log),
    )
    .await;
    delivered(&s, &admin, 1).await;
    {
        let site = site.lock().unwrap();
        assert_eq!(site.tickets.len(), 2, "{:?}", site.tickets);
        let t = &site.tickets[1];
        assert_eq!(t.1, "alice - TankError");
        assert!(t.3.contains("Matched line:"), "{}", t.3);
        assert!(t.3.contains("TankError: it broke"));
        assert!(t.3.contains("Host: ws-07"));
        assert!(t.3.contains("/api/v1/issues/"));
        let files = &site.attachments[&t.0];
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "tk-maya.log");
        assert_eq!(files[0].1, log);
    }
    // The issue shows its ticket.
    let issues = s
        .get("/api/v1/issues", Some(&admin), &[("project", "studio")])
        .await;
    let issue_id = issues.json["issues"][0]["id"].as_i64().unwrap();
    let detail = s
        .get(&format!("/api/v1/issues/{issue_id}"), Some(&admin), &[])
        .await;
    assert_eq!(detail.json["ticket"]["tracker"], "shotgrid");
    assert_eq!(detail.json["ticket"]["id"], "1001");
    assert!(
        detail.json["ticket"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/detail/Ticket/1001")
    );

    // 50 more of the same signature, in a burst: no new ticket.
    for i in 1..=50 {
        post_incident(
            &s,
            &token,
            &incident(&format!("k-{i}"), "alice - TankError", "TankError", b"x"),
        )
        .await;
    }
    // Past the token's life and the rule's cooldown: a later occurrence
    // adds one note (with a renewed token), the next one none (1 h).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    post_incident(
        &s,
        &token,
        &incident("k-later", "alice - TankError", "TankError", b"x"),
    )
    .await;
    delivered(&s, &admin, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    post_incident(
        &s,
        &token,
        &incident("k-later2", "alice - TankError", "TankError", b"x"),
    )
    .await;
    delivered(&s, &admin, 3).await;

    // Another signature: a second ticket. One that matches an open ticket:
    // linked, not created.
    post_incident(
        &s,
        &token,
        &incident("o-1", "alice - ValueError", "ValueError", b"v"),
    )
    .await;
    post_incident(
        &s,
        &token,
        &incident("b-1", "bob - KeyError", "KeyError", b"k"),
    )
    .await;
    delivered(&s, &admin, 5).await;

    let site = site.lock().unwrap();
    let titles: Vec<&str> = site.tickets.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(
        titles,
        ["bob - KeyError", "alice - TankError", "alice - ValueError"],
        "one ticket per signature"
    );
    assert_eq!(site.notes.len(), 1, "{:?}", site.notes);
    assert_eq!(site.notes[0].0, 1001);
    assert!(site.notes[0].1.starts_with("Seen again"));
    assert!(
        !site.attachments.contains_key(&999),
        "nothing uploaded to a linked ticket"
    );
    assert!(site.auth_calls >= 2, "the expired token was renewed");
    assert!(site.violations.is_empty(), "{:?}", site.violations);
}
