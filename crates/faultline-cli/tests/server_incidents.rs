//! `POST /api/v1/incidents` on a real `faultline server`: an agent's
//! incident becomes an event of its issue, once per idempotency key, with
//! its environment, context and attachments; and the ugly cases.

mod common;

use base64::Engine;
use common::{Resp, Server, gzip};
use serde_json::{Value, json};

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

const TRACE: &str = "Traceback (most recent call last):\n  File \"/opt/tk/core/engine.py\", line 88, in start\n    self._load()\n  File \"/opt/tk/core/engine.py\", line 130, in _load\n    raise TankError(\"no such shot %s\" % shot)\ntank.errors.TankError: no such shot sh010";

fn incident(key: &str, log: &[u8]) -> Value {
    json!({
        "idempotency_key": key,
        "service": "tk-maya",
        "level": "error",
        "timestamp": "2026-11-22T06:40:00.123Z",
        "message": TRACE,
        "title": "alice - TankError",
        "fingerprint": "0123456789abcdef",
        "logger": "sgtk.core",
        "pid": 4242,
        "engine": "tk-maya",
        "count": 1,
        "context": {"before": ["loading shot", "resolving paths"], "after": ["engine shut down"]},
        "environment": {"os": "Linux 6.1", "hostname": "ws-12", "user": "alice", "ram_mb": 65536},
        "tags": ["desktop"],
        "source": {"path": "/home/alice/.shotgun/logs/tk-maya.log", "offset": 1234},
        "attachments": [{
            "name": "tk-maya.log",
            "content_type": "text/plain",
            "encoding": "gzip",
            "size": log.len(),
            "data": b64(&gzip(log)),
        }],
    })
}

async fn post(s: &Server, token: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    let mut req = common::http_client()
        .post(s.url("/api/v1/incidents"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    common::into_resp(req.send().await.expect("request sent")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_become_events_once_with_attachments() {
    let s = Server::start_default().await;
    let token = s.ingest_token("studio", "tk-maya");
    let reader = s.read_token("studio");
    let log = "2026-11-22 06:39:59,001 [4242 INFO sgtk.core] loading shot\n".repeat(500);

    let r = post(&s, &token, &incident("file-1:1234", log.as_bytes()), &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["duplicate"], false);
    assert_eq!(r.json["new_issue"], true);
    let event_id = r.json["event_id"].as_i64().unwrap();
    let issue_id = r.json["issue_id"].as_i64().unwrap();

    // A retry after a lost reply: same ids, nothing new.
    let again = post(
        &s,
        &token,
        &incident("file-1:1234", log.as_bytes()),
        &[("idempotency-key", "file-1:1234")],
    )
    .await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.json["duplicate"], true);
    assert_eq!(again.json["event_id"], event_id);

    // The same error again, locally throttled into a count of 3.
    let mut third = incident("file-1:9999", b"other log");
    third["count"] = json!(3);
    third["message"] = json!(TRACE.replace("sh010", "sh020"));
    let r = post(&s, &token, &third, &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.json["issue_id"], issue_id,
        "same issue: values do not split it"
    );

    let r = s
        .get(&format!("/api/v1/issues/{issue_id}"), Some(&reader), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let issue = &r.json["issue"];
    assert_eq!(issue["count"], 4);
    assert_eq!(issue["title"], "alice - TankError");
    assert_eq!(issue["exception_type"], "tank.errors.TankError");
    assert_eq!(issue["users"], 1);
    assert_eq!(issue["hosts"], 1);

    let r = s
        .get(
            &format!("/api/v1/issues/{issue_id}/events"),
            Some(&reader),
            &[],
        )
        .await;
    let events = r.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let first = events.iter().find(|e| e["id"] == event_id).unwrap();
    assert_eq!(first["environment"]["os"], "Linux 6.1");
    assert_eq!(first["environment"]["ram_mb"], "65536");
    assert_eq!(first["context"]["before"][1], "resolving paths");
    assert_eq!(first["context"]["after"][0], "engine shut down");
    assert_eq!(first["host"], "ws-12");
    assert_eq!(first["user"], "alice");
    assert_eq!(first["attributes"]["logger"], "sgtk.core");
    assert_eq!(first["attributes"]["process.pid"], 4242);
    assert_eq!(first["attributes"]["source.offset"], 1234);
    assert_eq!(first["timestamp"], "2026-11-22T06:40:00.123000Z");
    assert!(first["log_id"].is_null());
    assert_eq!(first["frames"].as_array().unwrap().len(), 2);
    let att = &first["attachments"][0];
    assert_eq!(att["name"], "tk-maya.log");
    assert_eq!(att["size"], log.len());
    let sha = att["sha256"].as_str().unwrap();

    // Download: the original bytes.
    let url = format!("/api/v1/issues/{issue_id}/events/{event_id}/attachments/{sha}");
    let r = s.get(&url, Some(&reader), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, log);
    assert_eq!(r.headers["content-type"], "text/plain");
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"tk-maya.log\"")
    );
    let r = s.get(&url, Some(&reader), &[("inline", "1")]).await;
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    // A sender's file is never a page of this origin: inline is plain text,
    // and every download is sandboxed.
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        r.headers["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    let other_reader = s.read_token("elsewhere");
    s.get(&url, Some(&other_reader), &[])
        .await
        .assert_error(404, "not found");
    let wrong = format!(
        "/api/v1/issues/{issue_id}/events/{event_id}/attachments/{}",
        "0".repeat(64)
    );
    s.get(&wrong, Some(&reader), &[])
        .await
        .assert_error(404, "not found");

    // The same error as a log line lands in the same issue.
    s.ingest(&token, &json!({"level": "error", "message": TRACE}))
        .await;
    let ok = common::wait_until(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        async || {
            let r = s
                .get(&format!("/api/v1/issues/{issue_id}"), Some(&reader), &[])
                .await;
            r.json["issue"]["count"] == 5
        },
    )
    .await;
    assert!(ok, "the log line joined the incident's issue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_incidents_are_refused_clearly() {
    let s = Server::start_with_config("[issues]\nmax_attachment_bytes = 1000\n").await;
    let token = s.ingest_token("studio", "tk-maya");
    let other = s.ingest_token("studio", "tk-nuke");
    let reader = s.read_token("studio");
    let good = || incident("k1", b"small log");

    let mut no_key = good();
    no_key.as_object_mut().unwrap().remove("idempotency_key");
    post(&s, &token, &no_key, &[])
        .await
        .assert_error(400, "invalid incident");
    // The header alone is enough.
    let r = post(&s, &token, &no_key, &[("idempotency-key", "hdr-1")]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    post(&s, &token, &good(), &[("idempotency-key", "different")])
        .await
        .assert_error(400, "invalid incident");

    post(&s, &other, &good(), &[])
        .await
        .assert_error(403, "forbidden");
    post(&s, &reader, &good(), &[])
        .await
        .assert_error(403, "forbidden");
    post(&s, "fl_nope", &good(), &[])
        .await
        .assert_error(401, "unauthorized");

    let mut v = good();
    v["message"] = json!("   ");
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");
    let mut v = good();
    v["level"] = json!("apocalyptic");
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");
    let mut v = good();
    v["timestamp"] = json!("yesterday");
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");
    let mut v = good();
    v["attachments"][0]["data"] = json!("***not base64***");
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");
    let mut v = good();
    v["attachments"][0]["data"] = json!(b64(b"plain, not gzip"));
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");
    let mut v = good();
    v["attachments"][0]["size"] = json!(3);
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");
    let mut v = good();
    v["attachments"][0]["data"] = json!(b64(&gzip(&[b'x'; 5000])));
    v["attachments"][0]["size"] = json!(5000);
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "attachment too large");
    let mut v = good();
    v["attributes"] = json!({"nested": {"a": 1}});
    post(&s, &token, &v, &[])
        .await
        .assert_error(400, "invalid incident");

    let r = common::into_resp(
        common::http_client()
            .post(s.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "malformed json");

    // Gzip request bodies and identity-encoded attachments work.
    let mut v = incident("k-gz", b"");
    v["attachments"][0]["encoding"] = json!("identity");
    v["attachments"][0]["data"] = json!(b64(b"raw log text"));
    v["attachments"][0]["size"] = json!(12);
    let r = common::into_resp(
        common::http_client()
            .post(s.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .header("content-encoding", "gzip")
            .body(gzip(&serde_json::to_vec(&v).unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);

    // Nothing refused was recorded: two incidents made it.
    let r = s
        .get("/api/v1/issues", Some(&reader), &[("project", "studio")])
        .await;
    let total: u64 = r.json["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2, "{}", r.text);
}
