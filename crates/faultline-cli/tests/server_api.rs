//! The HTTP API of a real `faultline server`: ingest, validation, limits,
//! authentication and authorization, queries and paging, services, admin API.

mod common;

use common::{Server, gzip, marker, now_micros, parse_rfc3339, rfc3339, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Messages of entries, in response order.
fn messages(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// Sorted messages.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_object_array_ndjson_and_gzip() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let m = marker("shapes");

    // One object.
    let r = s
        .post_json(&token, &json!({"message": format!("{m} object")}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"accepted": 1}));

    // An array.
    let r = s
        .post_json(
            &token,
            &json!([{"message": format!("{m} array one")}, {"message": format!("{m} array two")}]),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"accepted": 2}));

    // NDJSON, with blank lines and a trailing newline.
    let nd = format!(
        "{{\"message\":\"{m} nd one\"}}\n\n{{\"message\":\"{m} nd two\",\"level\":\"warning\"}}\r\n{{\"message\":\"{m} nd three\"}}\n"
    );
    let r = s
        .post_raw(
            Some(&token),
            nd.clone(),
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"accepted": 3}));

    // Any content type: the body is sniffed.
    let r = s
        .post_raw(
            Some(&token),
            format!("{{\"message\":\"{m} plain one\"}}\n{{\"message\":\"{m} plain two\"}}"),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"accepted": 2}));

    // Gzip NDJSON and gzip array.
    let gz = gzip(
        format!("{{\"message\":\"{m} gz nd one\"}}\n{{\"message\":\"{m} gz nd two\"}}\n")
            .as_bytes(),
    );
    let r = s
        .post_raw(
            Some(&token),
            gz,
            &[
                ("content-type", "application/x-ndjson"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"accepted": 2}));
    let gz = gzip(
        serde_json::to_string(&json!([{"message": format!("{m} gz array"), "level": "fatal"}]))
            .unwrap()
            .as_bytes(),
    );
    let r = s
        .post_raw(
            Some(&token),
            gz,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"accepted": 1}));

    let got = s.entries(&s.admin, &[("q", &m), ("limit", "1000")]).await;
    let want: Vec<String> = [
        "object",
        "array one",
        "array two",
        "nd one",
        "nd two",
        "nd three",
        "plain one",
        "plain two",
        "gz nd one",
        "gz nd two",
        "gz array",
    ]
    .iter()
    .map(|w| format!("{m} {w}"))
    .collect();
    assert_eq!(sorted(messages(&got)), sorted(want));
    let level_of = |suffix: &str| {
        got.iter()
            .find(|e| e["message"] == format!("{m} {suffix}"))
            .unwrap()["level"]
            .clone()
    };
    assert_eq!(level_of("nd two"), "warn");
    assert_eq!(level_of("gz array"), "critical");
    assert_eq!(level_of("object"), "info", "default level is info");
    for e in &got {
        assert_eq!(e["project"], "shop");
        assert_eq!(e["service"], "api", "default service is the token's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_round_trips() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let ts = now_micros() / 1_000_000 * 1_000_000 - 3_600_000_000 + 123_456;
    let before = now_micros();
    s.ingest(
        &token,
        &json!({
            "service": "api",
            "level": "ERROR",
            "message": "disk full on /var (errno 28)",
            "tag": "db",
            "tags": ["storage", "db"],
            "timestamp": rfc3339(ts),
            "host": "web-1",
            "attributes": {"user": "bob", "n": 3, "ok": true, "f": 1.5, "neg": -7},
            "trace_id": "0123456789ABCDEF0123456789abcdef",
            "span_id": "0123456789abcdef",
            "extra": "kept",
            "retries": 2
        }),
    )
    .await;
    // Aliases: service_name, severity (syslog number), msg, time (epoch ms),
    // hostname, attrs.
    let ts2_ms = ts / 1000 + 5_000;
    s.ingest(
        &token,
        &json!({
            "service_name": "api",
            "severity": 4,
            "msg": "alias entry",
            "time": ts2_ms,
            "hostname": "web-2",
            "attrs": {"k": "v"}
        }),
    )
    .await;
    // An offset is converted to UTC.
    let local = rfc3339(ts - 10_000_000 + 2 * 3600 * 1_000_000).replace('Z', "+02:00");
    s.ingest(
        &token,
        &json!({"message": "offset entry", "timestamp": local}),
    )
    .await;
    let after = now_micros();

    let offset = s.entries(&s.admin, &[("q", "offset")]).await;
    assert_eq!(offset[0]["timestamp"], rfc3339(ts - 10_000_000), "{local}");
    let got = s
        .entries(
            &s.admin,
            &[
                ("until", &rfc3339(ts + 3_600_000_000)),
                ("since", &rfc3339(ts)),
            ],
        )
        .await;
    assert_eq!(got.len(), 2, "{got:#?}");
    // Newest first by timestamp.
    let alias = &got[0];
    let e = &got[1];
    // `issue_id` appears once the issue processor recorded the error.
    let mut keys: Vec<&str> = e
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .filter(|k| *k != "issue_id")
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attributes",
            "host",
            "id",
            "level",
            "message",
            "project",
            "received_at",
            "service",
            "span_id",
            "tags",
            "timestamp",
            "trace_id"
        ]
    );
    assert!(e["id"].is_i64());
    assert_eq!(e["project"], "shop");
    assert_eq!(e["service"], "api");
    assert_eq!(e["level"], "error");
    assert_eq!(e["message"], "disk full on /var (errno 28)");
    assert_eq!(
        e["tags"],
        json!(["db", "storage"]),
        "merged and deduplicated"
    );
    assert_eq!(e["timestamp"], rfc3339(ts));
    let received = parse_rfc3339(e["received_at"].as_str().unwrap());
    assert!(
        (before - 1_000..=after + 1_000).contains(&received),
        "received_at is the receive time"
    );
    assert_eq!(e["host"], "web-1");
    assert_eq!(
        e["attributes"],
        json!({"user": "bob", "n": 3, "ok": true, "f": 1.5, "neg": -7, "extra": "kept", "retries": 2})
    );
    assert_eq!(e["trace_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(e["span_id"], "0123456789abcdef");

    assert_eq!(alias["service"], "api");
    assert_eq!(alias["level"], "warn");
    assert_eq!(alias["message"], "alias entry");
    assert_eq!(alias["timestamp"], rfc3339(ts2_ms * 1000));
    assert_eq!(alias["host"], "web-2");
    assert_eq!(alias["attributes"], json!({"k": "v"}));
    assert_eq!(alias["tags"], json!([]));
    assert!(
        alias.get("trace_id").is_none() && alias.get("span_id").is_none(),
        "absent optional fields are omitted: {alias}"
    );
    assert!(alias["id"].as_i64() > e["id"].as_i64(), "ids grow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_entry_stores_nothing() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let m = marker("aon");
    let body = json!([
        {"message": format!("{m} good one")},
        {"message": format!("{m} bad level"), "level": "loud"},
        {"message": format!("{m} good two")},
        {"message": format!("{m} nested"), "attributes": {"a": {"b": 1}}},
        {"level": "info"},
        7
    ]);
    let r = s.post_json(&token, &body).await;
    r.assert_error(400, "invalid entries");
    let errs = r.json["entries"].as_array().expect("entries list");
    let got: Vec<(u64, &str)> = errs
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [(1, "level"), (3, "attributes.a"), (4, "message"), (5, "")],
        "{}",
        r.text
    );
    for e in errs {
        assert!(!e["reason"].as_str().unwrap().is_empty());
    }
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was stored")
    );

    // The same as NDJSON: also all or nothing.
    let nd = format!(
        "{{\"message\":\"{m} nd good\"}}\n{{\"message\":\"{m} nd bad\",\"trace_id\":\"xyz\"}}\n"
    );
    let r = s.post_raw(Some(&token), nd, &[]).await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["index"], 1);
    assert_eq!(r.json["entries"][0]["field"], "trace_id");

    // Only the error report is capped, never the check.
    let many: Vec<Value> = (0..500).map(|_| json!({"message": ""})).collect();
    let r = s.post_json(&token, &Value::Array(many)).await;
    r.assert_error(400, "invalid entries");
    let n = r.json["entries"].as_array().unwrap().len();
    assert!(
        (1..=100).contains(&n),
        "at most 100 errors reported, got {n}"
    );

    assert!(s.entries(&s.admin, &[("q", &m)]).await.is_empty());
    assert!(s.entries(&s.admin, &[]).await.is_empty(), "nothing stored");
    let svc = s.services(&s.admin, &[]).await;
    assert_eq!(svc[0]["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_json() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");

    let r = s.post_raw(Some(&token), "{\"message\":", &[]).await;
    r.assert_error(400, "malformed json");
    assert_eq!(r.json["index"], 0);

    let r = s
        .post_raw(Some(&token), "{\"message\":\"a\"}\n{\"message\":\n", &[])
        .await;
    r.assert_error(400, "malformed json");
    assert_eq!(r.json["index"], 1, "names the broken NDJSON entry");

    let r = s.post_raw(Some(&token), "[{\"message\":\"a\"},", &[]).await;
    r.assert_error(400, "malformed json");

    let r = s.post_raw(Some(&token), "not json at all", &[]).await;
    r.assert_error(400, "malformed json");

    // Invalid UTF-8 inside a string.
    let r = s
        .post_raw(Some(&token), b"{\"message\":\"a\xff\xfe\"}".to_vec(), &[])
        .await;
    r.assert_error(400, "malformed json");

    for empty in ["", "   \n\n ", "[]"] {
        let r = s.post_raw(Some(&token), empty, &[]).await;
        r.assert_error(400, "empty body");
    }

    // Wrong types.
    for (body, field) in [
        (json!({"message": 5}), "message"),
        (json!({"message": ""}), "message"),
        (json!({"message": "a", "level": true}), "level"),
        (json!({"message": "a", "level": 9}), "level"),
        (json!({"message": "a", "tags": [1]}), "tags"),
        (json!({"message": "a", "tag": ["x"]}), "tag"),
        (json!({"message": "a", "timestamp": "soon"}), "timestamp"),
        (json!({"message": "a", "timestamp": true}), "timestamp"),
        (json!({"message": "a", "host": 1}), "host"),
        (json!({"message": "a", "attributes": [1]}), "attributes"),
        (
            json!({"message": "a", "attributes": {"x": [1]}}),
            "attributes.x",
        ),
        (json!({"message": "a", "extra": {"nested": 1}}), "extra"),
        (json!({"message": "a", "span_id": "0123"}), "span_id"),
        (json!({"message": "a", "service": 3}), "service"),
        (json!("just a string"), ""),
    ] {
        let r = s.post_json(&token, &body).await;
        r.assert_error(400, "invalid entries");
        assert_eq!(r.json["entries"][0]["field"], field, "{body}: {}", r.text);
        assert_eq!(r.json["entries"][0]["index"], 0);
    }
    // Gzip that is not gzip.
    let r = s
        .post_raw(
            Some(&token),
            "{\"message\":\"a\"}",
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json["error"].is_string(), "JSON error: {}", r.text);

    assert!(s.entries(&s.admin, &[]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_and_entry_count_limits_are_413() {
    let s = Server::start_with_config("[limits]\nmax_body_bytes = 4096\nmax_entries = 5\n").await;
    let token = s.ingest_token("shop", "api");
    let long = "x".repeat(5000);

    // Content-Length over the limit.
    let r = s.post_json(&token, &json!({"message": long})).await;
    r.assert_error(413, "body too large");

    // Chunked (no Content-Length), over the limit.
    let body = serde_json::to_vec(&json!({"message": long})).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let r = s
        .post_raw(
            Some(&token),
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
            &[],
        )
        .await;
    r.assert_error(413, "body too large");

    // Gzip: small on the wire, too large once decompressed.
    let bomb = gzip(
        serde_json::to_string(&json!({"message": "a".repeat(200_000)}))
            .unwrap()
            .as_bytes(),
    );
    assert!(bomb.len() < 4096, "the compressed body is within the limit");
    let r = s
        .post_raw(Some(&token), bomb, &[("content-encoding", "gzip")])
        .await;
    r.assert_error(413, "body too large");

    // Within the limit, compressed or not.
    let ok = serde_json::to_string(&json!({"message": "y".repeat(3000)})).unwrap();
    let r = s.post_raw(Some(&token), ok.clone(), &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = s
        .post_raw(
            Some(&token),
            gzip(ok.as_bytes()),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);

    // Too many entries, as an array and as NDJSON.
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"message": format!("six {i}")}))
        .collect();
    let r = s.post_json(&token, &Value::Array(six)).await;
    r.assert_error(413, "too many entries");
    let nd: String = (0..6)
        .map(|i| format!("{{\"message\":\"nd {i}\"}}\n"))
        .collect();
    let r = s.post_raw(Some(&token), nd, &[]).await;
    r.assert_error(413, "too many entries");
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"message": format!("five {i}")}))
        .collect();
    s.ingest(&token, &Value::Array(five)).await;

    let all = s.entries(&s.admin, &[("limit", "1000")]).await;
    assert_eq!(all.len(), 7, "only the accepted requests were stored");
    assert!(
        all.iter()
            .all(|e| !e["message"].as_str().unwrap().starts_with("six")
                && !e["message"].as_str().unwrap().starts_with("nd")
                && !e["message"].as_str().unwrap().starts_with('x')
                && !e["message"].as_str().unwrap().starts_with('a'))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_entry_limits_are_400() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");

    // 256 KiB message is fine, one byte more is not.
    s.ingest(&token, &json!({"message": "m".repeat(256 * 1024)}))
        .await;
    let r = s
        .post_json(&token, &json!({"message": "m".repeat(256 * 1024 + 1)}))
        .await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["field"], "message");

    // 64 attributes are fine, 65 are not; unknown top-level fields count.
    let attrs = |n: usize| -> serde_json::Map<String, Value> {
        (0..n).map(|i| (format!("k{i}"), json!(i))).collect()
    };
    s.ingest(
        &token,
        &json!({"message": "64 attrs", "attributes": attrs(64)}),
    )
    .await;
    let r = s
        .post_json(
            &token,
            &json!({"message": "65 attrs", "attributes": attrs(65)}),
        )
        .await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["field"], "attributes");
    let mut top = attrs(60);
    top.insert("message".into(), json!("60+5 attrs"));
    top.insert("attributes".into(), Value::Object(attrs(5)));
    let r = s.post_json(&token, &Value::Object(top)).await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["field"], "attributes");

    // A huge attribute map is refused quickly and reported briefly.
    let started = Instant::now();
    let r = s
        .post_json(
            &token,
            &json!({"message": "huge", "attributes": attrs(20_000)}),
        )
        .await;
    r.assert_error(400, "invalid entries");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        r.text.len() < 20_000,
        "a short report: {} bytes",
        r.text.len()
    );

    // Attribute values, keys, tags, hosts.
    let r = s
        .post_json(
            &token,
            &json!({"message": "a", "attributes": {"big": "v".repeat(8 * 1024 + 1)}}),
        )
        .await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["field"], "attributes.big");
    s.ingest(
        &token,
        &json!({"message": "8k value", "attributes": {"big": "v".repeat(8 * 1024)}}),
    )
    .await;
    let mut long_key = serde_json::Map::new();
    long_key.insert("k".repeat(257), json!(1));
    let r = s
        .post_json(&token, &json!({"message": "a", "attributes": long_key}))
        .await;
    r.assert_error(400, "invalid entries");
    let tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let r = s
        .post_json(&token, &json!({"message": "a", "tags": tags}))
        .await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["field"], "tags");
    let r = s
        .post_json(&token, &json!({"message": "a", "host": "h".repeat(300)}))
        .await;
    r.assert_error(400, "invalid entries");
    assert_eq!(r.json["entries"][0]["field"], "host");
    let r = s
        .post_json(&token, &json!({"message": "a", "tags": ["bad\u{1f}tag"]}))
        .await;
    r.assert_error(400, "invalid entries");

    let stored = messages(&s.entries(&s.admin, &[("limit", "1000")]).await);
    assert_eq!(
        stored.len(),
        3,
        "only the three valid entries: {:?}",
        stored.iter().map(|m| m.len()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_unknown_and_malformed_tokens_are_401() {
    let s = Server::start_default().await;
    let body = "{\"message\":\"x\"}";
    let unknown = format!("fl_{}", "A".repeat(43));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("unknown", Some(format!("Bearer {unknown}"))),
        ("not a faultline token", Some("Bearer notatoken".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("wrong scheme", Some(format!("Basic {}", s.admin))),
        ("no scheme", Some(s.admin.clone())),
        ("huge", Some(format!("Bearer fl_{}", "x".repeat(10_000)))),
    ];
    for (what, header) in cases {
        let mut req = s.http.post(s.url("/api/v1/logs")).body(body);
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized", "{what}");
        assert!(v["detail"].is_string());

        let mut req = s.http.get(s.url("/api/v1/logs"));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{what} (query)");
    }
    for path in ["/api/v1/services", "/api/v1/projects", "/api/v1/tokens"] {
        let r = s.get(path, None, &[]).await;
        r.assert_error(401, "unauthorized");
    }
    assert!(s.entries(&s.admin, &[]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revoked_by_the_cli_is_refused_within_seconds() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let read = s.read_token("shop");
    s.ingest(&token, &json!({"message": "before revocation"}))
        .await;
    assert_eq!(s.get("/api/v1/logs", Some(&read), &[]).await.status, 200);
    let id = s.token_id(&token).await;
    let read_id = s.token_id(&read).await;

    for id in [id, read_id] {
        let out = s.cli(&["token", "revoke", &id.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let revoked_at = Instant::now();
    let mut refused = false;
    let mut answers = 0;
    while revoked_at.elapsed() < Duration::from_secs(3) && answers < 300 {
        let r = s
            .post_raw(Some(&token), "{\"message\":\"probe\"}", &[])
            .await;
        answers += 1;
        if r.status == 401 {
            r.assert_error(401, "unauthorized");
            refused = true;
            break;
        }
        assert_eq!(r.status, 202, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a CLI revocation is noticed within 3 s");
    // It stays refused, for reading too.
    let r = s
        .post_raw(Some(&token), "{\"message\":\"after\"}", &[])
        .await;
    r.assert_error(401, "unauthorized");
    let ok = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(50),
        async || s.get("/api/v1/logs", Some(&read), &[]).await.status == 401,
    )
    .await;
    assert!(ok, "the revoked read token is refused");
    let list = s.cli(&["token", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{id} ")) && l.ends_with("revoked")),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revoked_by_the_api_is_refused_at_once() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    // Warm the server's token cache.
    s.ingest(&token, &json!({"message": "before"})).await;
    let id = s.token_id(&token).await;
    let r = s
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&s.admin),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], id);
    assert_eq!(r.json["kind"], "ingest");
    assert_eq!(r.json["project"], "shop");
    assert_eq!(r.json["service"], "api");
    assert!(r.json["revoked_at"].is_string(), "{}", r.text);
    let r = s
        .post_raw(Some(&token), "{\"message\":\"after\"}", &[])
        .await;
    r.assert_error(401, "unauthorized");
    assert_eq!(s.entries(&s.admin, &[]).await.len(), 1);

    // Revoking an unknown token is a 404, a bad id a 400.
    let r = s
        .send(
            Method::DELETE,
            "/api/v1/tokens/999999",
            Some(&s.admin),
            &[],
            None,
        )
        .await;
    r.assert_error(404, "not found");
    let r = s
        .send(
            Method::DELETE,
            "/api/v1/tokens/abc",
            Some(&s.admin),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_limited_to_their_scope_403() {
    let s = Server::start_default().await;
    let api = s.ingest_token("shop", "api");
    let other = s.ingest_token("blog", "web");
    let read_shop = s.read_token("shop");
    s.ingest(&api, &json!({"message": "shop entry"})).await;
    s.ingest(&other, &json!({"message": "blog entry"})).await;

    // Another service's entries: the whole batch is refused.
    let r = s
        .post_json(
            &api,
            &json!([{"message": "fine"}, {"message": "sneaky", "service": "web"}]),
        )
        .await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.json["index"], 1);
    let r = s
        .post_json(
            &api,
            &json!({"message": "sneaky", "service_name": "billing"}),
        )
        .await;
    r.assert_error(403, "forbidden");

    // Ingest tokens cannot read.
    for path in ["/api/v1/logs", "/api/v1/services"] {
        let r = s.get(path, Some(&api), &[]).await;
        r.assert_error(403, "forbidden");
        let r = s.get(path, Some(&api), &[("project", "shop")]).await;
        r.assert_error(403, "forbidden");
    }
    // Read tokens read their own project only.
    let r = s
        .get("/api/v1/logs", Some(&read_shop), &[("project", "blog")])
        .await;
    r.assert_error(403, "forbidden");
    let r = s
        .get("/api/v1/services", Some(&read_shop), &[("project", "blog")])
        .await;
    r.assert_error(403, "forbidden");
    let mine = s.entries(&read_shop, &[]).await;
    assert_eq!(messages(&mine), ["shop entry"], "no project: its own");
    let mine = s.entries(&read_shop, &[("project", "shop")]).await;
    assert_eq!(messages(&mine), ["shop entry"]);
    let svc = s.services(&read_shop, &[]).await;
    assert!(svc.iter().all(|v| v["project"] == "shop"), "{svc:?}");
    // Read tokens cannot write; non-admin tokens cannot administer.
    let r = s.post_json(&read_shop, &json!({"message": "x"})).await;
    r.assert_error(403, "forbidden");
    for t in [&api, &read_shop] {
        for (m, path, body) in [
            (Method::GET, "/api/v1/projects", None),
            (Method::POST, "/api/v1/projects", Some(json!({"name": "x"}))),
            (Method::GET, "/api/v1/tokens", None),
            (
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"kind": "admin"})),
            ),
            (Method::DELETE, "/api/v1/tokens/1", None),
        ] {
            let r = s.send(m.clone(), path, Some(t), &[], body).await;
            r.assert_error(403, "forbidden");
        }
    }
    // Nothing of the refused requests was stored.
    let all = s.entries(&s.admin, &[]).await;
    assert_eq!(sorted(messages(&all)), ["blog entry", "shop entry"]);
    // An admin reads every project, or one.
    let blog = s.entries(&s.admin, &[("project", "blog")]).await;
    assert_eq!(messages(&blog), ["blog entry"]);
}

/// docs/API.md: "an admin token may also send, with the entries' `service`
/// and the `project` query parameter naming the target, default project
/// `default`".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_may_ingest_as_documented() {
    let s = Server::start_default().await;
    let r = s
        .http
        .post(s.url("/api/v1/logs"))
        .query(&[("project", "billing")])
        .bearer_auth(&s.admin)
        .json(&json!({"service": "invoicer", "message": "sent by an admin"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 202, "admin ingest with ?project=: {text}");
    let e = s.entries(&s.admin, &[("project", "billing")]).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["service"], "invoicer");

    let r = s
        .post_json(
            &s.admin,
            &json!({"service": "cron", "message": "default project"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let e = s.entries(&s.admin, &[("project", "default")]).await;
    assert_eq!(messages(&e), ["default project"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_timestamps_are_replaced_by_receive_time() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let now = now_micros();
    let soon = now + 30 * 60 * 1_000_000;
    let later = now + 2 * 3600 * 1_000_000;
    let before = now_micros();
    s.ingest(
        &token,
        &json!([
            {"message": "future", "timestamp": "2999-01-01T00:00:00Z"},
            {"message": "past", "timestamp": "1990-01-01T00:00:00Z"},
            {"message": "epoch one", "timestamp": 1},
            {"message": "two hours ahead", "timestamp": rfc3339(later)},
            {"message": "half an hour ahead", "timestamp": rfc3339(soon)},
            {"message": "89 days ago", "timestamp": rfc3339(now - 89 * 86_400 * 1_000_000)}
        ]),
    )
    .await;
    let after = now_micros();
    let got = s.entries(&s.admin, &[]).await;
    let by: HashMap<String, &Value> = got
        .iter()
        .map(|e| (e["message"].as_str().unwrap().to_string(), e))
        .collect();
    for (msg, original) in [
        ("future", "2999-01-01T00:00:00.000000Z".to_string()),
        ("past", "1990-01-01T00:00:00.000000Z".to_string()),
        ("epoch one", "1970-01-01T00:00:01.000000Z".to_string()),
        ("two hours ahead", rfc3339(later)),
    ] {
        let e = by[msg];
        let ts = parse_rfc3339(e["timestamp"].as_str().unwrap());
        assert!(
            (before - 1000..=after + 1000).contains(&ts),
            "{msg}: stored with the receive time, got {}",
            e["timestamp"]
        );
        assert_eq!(e["timestamp"], e["received_at"], "{msg}");
        assert_eq!(
            e["attributes"]["faultline.original_timestamp"], original,
            "{msg}"
        );
    }
    for (msg, ts) in [
        ("half an hour ahead", rfc3339(soon)),
        ("89 days ago", rfc3339(now - 89 * 86_400 * 1_000_000)),
    ] {
        let e = by[msg];
        assert_eq!(e["timestamp"], ts, "{msg} is kept");
        assert!(
            e["attributes"]
                .get("faultline.original_timestamp")
                .is_none()
        );
    }
}

/// Services api, web, worker, cron in project shop with known entries.
async fn filter_fixture(s: &Server) -> i64 {
    let t = now_micros() - 3600 * 1_000_000;
    let sec = 1_000_000;
    let api = s.ingest_token("shop", "api");
    let web = s.ingest_token("shop", "web");
    let worker = s.ingest_token("shop", "worker");
    let cron = s.ingest_token("shop", "cron");
    s.ingest(
        &api,
        &json!([
            {"message": "user login ok", "level": "info", "tag": "auth", "timestamp": rfc3339(t + sec)},
            {"message": "Connection refused to db", "level": "error", "tag": "db", "timestamp": rfc3339(t + 2 * sec)}
        ]),
    )
    .await;
    s.ingest(
        &web,
        &json!([
            {"message": "slow request, connection pool busy", "level": "warn", "tag": "http", "timestamp": rfc3339(t + 3 * sec)},
            {"message": "refused: connection by upstream", "level": "critical", "tags": ["http", "db"], "timestamp": rfc3339(t + 4 * sec)}
        ]),
    )
    .await;
    s.ingest(
        &worker,
        &json!([
            {"message": "job done", "level": "debug", "timestamp": rfc3339(t + 5 * sec)},
            {"message": "job failed: connection reset", "level": "error", "tag": "db", "timestamp": rfc3339(t + 6 * sec)}
        ]),
    )
    .await;
    let now = now_micros();
    s.ingest(
        &cron,
        &json!([
            {"message": "tick 30", "timestamp": rfc3339(now - 30 * 60 * sec)},
            {"message": "tick 10", "timestamp": rfc3339(now - 10 * 60 * sec)},
            {"message": "tick 1", "timestamp": rfc3339(now - 60 * sec)}
        ]),
    )
    .await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters() {
    let s = Server::start_default().await;
    let t = filter_fixture(&s).await;
    let sec = 1_000_000;
    let q = async |query: &[(&str, &str)]| -> Vec<String> {
        let mut full = vec![("project", "shop")];
        full.extend_from_slice(query);
        messages(&s.entries(&s.admin, &full).await)
    };

    let all = q(&[]).await;
    assert_eq!(
        all,
        [
            "tick 1",
            "tick 10",
            "tick 30",
            "job failed: connection reset",
            "job done",
            "refused: connection by upstream",
            "slow request, connection pool busy",
            "Connection refused to db",
            "user login ok"
        ],
        "newest first"
    );

    let api_web = [
        "refused: connection by upstream",
        "slow request, connection pool busy",
        "Connection refused to db",
        "user login ok",
    ];
    assert_eq!(q(&[("service", "api"), ("service", "web")]).await, api_web);
    assert_eq!(q(&[("service", "api,web")]).await, api_web);
    assert_eq!(q(&[("service", "web, api")]).await, api_web);
    assert_eq!(q(&[("service", "nope")]).await, Vec::<String>::new());

    assert_eq!(
        q(&[("level", "warn")]).await,
        [
            "job failed: connection reset",
            "refused: connection by upstream",
            "slow request, connection pool busy",
            "Connection refused to db"
        ]
    );
    assert_eq!(
        q(&[("level", "ERROR")]).await,
        [
            "job failed: connection reset",
            "refused: connection by upstream",
            "Connection refused to db"
        ]
    );
    assert_eq!(
        q(&[("level", "fatal")]).await,
        ["refused: connection by upstream"]
    );
    assert_eq!(
        q(&[("level", "debug")]).await.len(),
        9,
        "info default counts"
    );

    assert_eq!(
        q(&[("tag", "db")]).await,
        [
            "job failed: connection reset",
            "refused: connection by upstream",
            "Connection refused to db"
        ]
    );
    assert_eq!(q(&[("tag", "d")]).await, Vec::<String>::new(), "exact tags");

    assert_eq!(
        q(&[("q", "connection")]).await,
        [
            "job failed: connection reset",
            "refused: connection by upstream",
            "slow request, connection pool busy",
            "Connection refused to db"
        ]
    );
    assert_eq!(
        q(&[("q", "connection refused")]).await,
        [
            "refused: connection by upstream",
            "Connection refused to db"
        ],
        "every word, any order"
    );
    assert_eq!(
        q(&[("q", "REFUSED  Connection")]).await,
        [
            "refused: connection by upstream",
            "Connection refused to db"
        ]
    );
    assert_eq!(
        q(&[("q", "conn")]).await,
        Vec::<String>::new(),
        "whole words"
    );
    assert_eq!(
        q(&[("q", "connection \"OR\" NEAR(")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        q(&[("q", "refused"), ("service", "web"), ("level", "error")]).await,
        ["refused: connection by upstream"]
    );
    assert_eq!(
        q(&[("q", "connection"), ("tag", "db"), ("level", "critical")]).await,
        ["refused: connection by upstream"]
    );

    // since inclusive, until exclusive (RFC 3339).
    let (a, b) = (rfc3339(t + 2 * sec), rfc3339(t + 4 * sec));
    assert_eq!(
        q(&[("since", &a), ("until", &b)]).await,
        [
            "slow request, connection pool busy",
            "Connection refused to db"
        ]
    );
    // Durations ago.
    assert_eq!(q(&[("since", "15m")]).await, ["tick 1", "tick 10"]);
    assert_eq!(
        q(&[("since", "45m"), ("until", "5m")]).await,
        ["tick 10", "tick 30"]
    );
    assert_eq!(q(&[("until", "20m")]).await.len(), 7);
    assert_eq!(q(&[("since", "1h30m"), ("until", "50m")]).await.len(), 6);
    // Epoch seconds and milliseconds.
    let secs = ((t + 5 * sec) / sec).to_string();
    let got = q(&[("since", &secs), ("service", "worker")]).await;
    assert_eq!(got, ["job failed: connection reset", "job done"]);
    let ms = ((t + 6 * sec) / 1000).to_string();
    assert_eq!(
        q(&[("until", &ms), ("service", "worker")]).await,
        ["job done"]
    );

    // limit
    let v = s
        .logs(&s.admin, &[("project", "shop"), ("limit", "3")])
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);
    assert!(v["next_cursor"].is_string());
    let v = s
        .logs(&s.admin, &[("project", "shop"), ("limit", "9")])
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 9);
    assert!(
        v["next_cursor"].is_null(),
        "no more pages: {}",
        v["next_cursor"]
    );
    let v = s.logs(&s.admin, &[("project", "elsewhere")]).await;
    assert_eq!(v["entries"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_paging_is_stable_under_concurrent_inserts() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let base = now_micros() - 2 * 3600 * 1_000_000;
    // 1200 entries, ten per timestamp, so ties are broken by id across pages.
    for chunk in 0..4 {
        let batch: Vec<Value> = (0..300)
            .map(|i| {
                let n = chunk * 300 + i;
                json!({"message": format!("initial {n}"), "timestamp": rfc3339(base + (n / 10) * 1_000_000)})
            })
            .collect();
        s.ingest(&token, &Value::Array(batch)).await;
    }

    // Another task keeps inserting new entries (now) and old ones (before
    // everything) while the walk goes on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inserter = {
        let stop = stop.clone();
        let token = token.clone();
        let base_url = s.url("/api/v1/logs");
        let http = s.http.clone();
        tokio::spawn(async move {
            let mut batches = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && batches < 2000 {
                let old = rfc3339(base - 3600 * 1_000_000 + i64::from(batches));
                let body = json!([
                    {"message": format!("concurrent new {batches}")},
                    {"message": format!("concurrent old {batches}"), "timestamp": old}
                ]);
                let r = http
                    .post(&base_url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                batches += 1;
            }
            batches
        })
    };

    let mut seen: Vec<(i64, i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 500, "bounded walk");
        let mut q = vec![("service", "api"), ("limit", "37")];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let v = s.logs(&s.admin, &q).await;
        for e in v["entries"].as_array().unwrap() {
            seen.push((
                parse_rfc3339(e["timestamp"].as_str().unwrap()),
                e["id"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            ));
        }
        // Give the inserter room between pages.
        tokio::time::sleep(Duration::from_millis(5)).await;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let inserted = inserter.await.unwrap();
    assert!(inserted > 0, "the inserter ran during the walk");

    let ids: HashSet<i64> = seen.iter().map(|x| x.1).collect();
    assert_eq!(ids.len(), seen.len(), "no entry was returned twice");
    for w in seen.windows(2) {
        assert!(
            (w[0].0, w[0].1) > (w[1].0, w[1].1),
            "strictly newest first: {w:?}"
        );
    }
    let initial: HashSet<&str> = seen
        .iter()
        .map(|x| x.2.as_str())
        .filter(|m| m.starts_with("initial "))
        .collect();
    assert_eq!(initial.len(), 1200, "every initial entry exactly once");
    // Old entries inserted during the walk land behind the cursor: the walk
    // saw some of them (it ended after they were inserted).
    assert!(seen.iter().any(|x| x.2.starts_with("concurrent old")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_mode() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "paged");
    let base = now_micros() - 3600 * 1_000_000;
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"message": format!("p{i}"), "timestamp": rfc3339(base + i * 1000)}))
        .collect();
    s.ingest(&token, &Value::Array(batch)).await;
    let mut all = Vec::new();
    for (page, n) in [("1", 10), ("2", 10), ("3", 5), ("4", 0)] {
        let e = s
            .entries(&s.admin, &[("page", page), ("limit", "10")])
            .await;
        assert_eq!(e.len(), n, "page {page}");
        all.extend(messages(&e));
    }
    let want: Vec<String> = (0..25).rev().map(|i| format!("p{i}")).collect();
    assert_eq!(all, want);
    // Pages and the cursor walk agree.
    let mut walked = Vec::new();
    let pages = s
        .walk(&s.admin, &[("limit", "10")], 10, |e| {
            walked.push(e["message"].as_str().unwrap().to_string())
        })
        .await;
    assert_eq!(pages, 3);
    assert_eq!(walked, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_400() {
    let s = Server::start_default().await;
    for query in [
        vec![("foo", "1")],
        vec![("level", "loud")],
        vec![("level", "")],
        vec![("cursor", "garbage")],
        vec![("cursor", "1_x")],
        vec![("limit", "0")],
        vec![("limit", "5000")],
        vec![("limit", "1001")],
        vec![("limit", "ten")],
        vec![("limit", "-1")],
        vec![("page", "0")],
        vec![("page", "x")],
        vec![("cursor", "1_1"), ("page", "1")],
        vec![("since", "later")],
        vec![("until", "-5")],
        vec![("since", "3 days")],
    ] {
        let r = s.get("/api/v1/logs", Some(&s.admin), &query).await;
        r.assert_error(400, "invalid parameter");
        assert!(
            !r.json["detail"].as_str().unwrap().is_empty(),
            "{query:?}: {}",
            r.text
        );
    }
    let r = s
        .get("/api/v1/services", Some(&s.admin), &[("foo", "1")])
        .await;
    r.assert_error(400, "invalid parameter");
    let r = s
        .get("/api/v1/tokens", Some(&s.admin), &[("foo", "1")])
        .await;
    r.assert_error(400, "invalid parameter");
    // Boundaries that are fine.
    for query in [
        vec![("limit", "1")],
        vec![("limit", "1000")],
        vec![("page", "1")],
    ] {
        let r = s.get("/api/v1/logs", Some(&s.admin), &query).await;
        assert_eq!(r.status, 200, "{query:?}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_report_counts_and_last_seen() {
    let s = Server::start_default().await;
    let api = s.ingest_token("shop", "api");
    let web = s.ingest_token("shop", "web");
    let _idle = s.ingest_token("shop", "idle");
    let other = s.ingest_token("blog", "web");
    let before = now_micros();
    s.ingest(
        &api,
        &json!([
            {"message": "a", "level": "info"},
            {"message": "b", "level": "error"},
            {"message": "c", "level": "critical"},
            {"message": "d", "level": "warn"},
            // Event time in the past: last_seen is the receive time.
            {"message": "e", "level": "debug", "timestamp": rfc3339(before - 3600 * 1_000_000)}
        ]),
    )
    .await;
    s.ingest(
        &web,
        &json!([{"message": "x"}, {"message": "y", "level": "fatal"}]),
    )
    .await;
    s.ingest(&other, &json!({"message": "z"})).await;
    let after = now_micros();

    let svc = s.services(&s.admin, &[("project", "shop")]).await;
    let names: Vec<&str> = svc.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["api", "idle", "web"]);
    let get = |n: &str| svc.iter().find(|v| v["name"] == n).unwrap();
    assert_eq!(get("api")["project"], "shop");
    assert_eq!(get("api")["count"], 5);
    assert_eq!(get("api")["error_count"], 2);
    assert_eq!(get("web")["count"], 2);
    assert_eq!(get("web")["error_count"], 1);
    assert_eq!(get("idle")["count"], 0);
    assert_eq!(get("idle")["error_count"], 0);
    assert!(get("idle")["last_seen"].is_null());
    for n in ["api", "web"] {
        let seen = parse_rfc3339(get(n)["last_seen"].as_str().unwrap());
        assert!(
            (before - 1000..=after + 1000).contains(&seen),
            "{n}: last_seen is the newest receive time"
        );
    }
    let all = s.services(&s.admin, &[]).await;
    assert_eq!(all.len(), 4, "admin without project: every project");
    assert_eq!(all[0]["project"], "blog", "sorted by project, then name");

    // Counts keep adding up.
    s.ingest(&web, &json!({"message": "w", "level": "error"}))
        .await;
    let svc = s.services(&s.admin, &[("project", "shop")]).await;
    let web = svc.iter().find(|v| v["name"] == "web").unwrap();
    assert_eq!(web["count"], 3);
    assert_eq!(web["error_count"], 2);
    assert!(parse_rfc3339(web["last_seen"].as_str().unwrap()) >= after - 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_projects_services_and_tokens() {
    let s = Server::start_default().await;
    let admin = Some(s.admin.as_str());
    let r = s
        .send(
            Method::POST,
            "/api/v1/projects",
            admin,
            &[],
            Some(json!({"name": "billing"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["name"], "billing");
    assert!(r.json["id"].is_i64() && r.json["created_at"].is_string());
    let r2 = s
        .send(
            Method::POST,
            "/api/v1/projects",
            admin,
            &[],
            Some(json!({"name": "billing"})),
        )
        .await;
    assert_eq!(r2.status, 200, "existing project: {}", r2.text);
    assert_eq!(r2.json["id"], r.json["id"]);

    let r = s
        .send(
            Method::POST,
            "/api/v1/projects/billing/services",
            admin,
            &[],
            Some(json!({"name": "invoicer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["project"], "billing");
    assert_eq!(r.json["name"], "invoicer");

    let r = s.get("/api/v1/projects", admin, &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json["projects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "billing")
    );

    // Ingest token over HTTP, then used.
    let r = s
        .send(
            Method::POST,
            "/api/v1/tokens",
            admin,
            &[],
            Some(json!({"kind": "ingest", "project": "billing", "service": "invoicer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ingest = r.json["token"].as_str().unwrap().to_string();
    assert!(ingest.starts_with("fl_") && ingest.len() == 46);
    let info = &r.json["info"];
    assert_eq!(info["kind"], "ingest");
    assert_eq!(info["project"], "billing");
    assert_eq!(info["service"], "invoicer");
    assert!(ingest.starts_with(info["prefix"].as_str().unwrap()));
    assert!(info["last_used"].is_null() && info["revoked_at"].is_null());
    let ingest_id = info["id"].as_i64().unwrap();
    s.ingest(&ingest, &json!({"message": "invoice sent"})).await;

    // A service that does not exist yet is created with its token.
    let r = s
        .send(
            Method::POST,
            "/api/v1/tokens",
            admin,
            &[],
            Some(json!({"kind": "ingest", "project": "billing", "service": "mailer"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mailer = r.json["token"].as_str().unwrap().to_string();
    s.ingest(&mailer, &json!({"message": "mail sent"})).await;

    // Read token over HTTP.
    let r = s
        .send(
            Method::POST,
            "/api/v1/tokens",
            admin,
            &[],
            Some(json!({"kind": "read", "project": "billing"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["info"]["kind"], "read");
    let read = r.json["token"].as_str().unwrap().to_string();
    assert_eq!(
        sorted(messages(&s.entries(&read, &[]).await)),
        ["invoice sent", "mail sent"]
    );

    // Admin token over HTTP.
    let r = s
        .send(
            Method::POST,
            "/api/v1/tokens",
            admin,
            &[],
            Some(json!({"kind": "admin"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let admin2 = r.json["token"].as_str().unwrap().to_string();
    assert_eq!(
        s.get("/api/v1/projects", Some(&admin2), &[]).await.status,
        200
    );

    // Listing shows prefixes and use, never secrets.
    let ok = wait_until(
        Duration::from_secs(6),
        Duration::from_millis(200),
        async || {
            let r = s
                .get("/api/v1/tokens", admin, &[("project", "billing")])
                .await;
            r.json["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == ingest_id && t["last_used"].is_string())
        },
    )
    .await;
    assert!(ok, "last_used is recorded within a few seconds");
    let r = s
        .get("/api/v1/tokens", admin, &[("project", "billing")])
        .await;
    let tokens = r.json["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        3,
        "two ingest tokens and one read token: {}",
        r.text
    );
    assert!(!r.text.contains(&ingest) && !r.text.contains(&read));
    assert!(tokens.iter().all(|t| t["project"] == "billing"));

    // Bad requests.
    for body in [
        json!({"kind": "ingest", "project": "billing"}),
        json!({"kind": "read"}),
        json!({"kind": "admin", "project": "billing"}),
        json!({"kind": "root"}),
    ] {
        let r = s
            .send(
                Method::POST,
                "/api/v1/tokens",
                admin,
                &[],
                Some(body.clone()),
            )
            .await;
        r.assert_error(400, "invalid token request");
    }
    let r = s
        .send(
            Method::POST,
            "/api/v1/projects",
            admin,
            &[],
            Some(json!({"name": "a/b"})),
        )
        .await;
    r.assert_error(400, "invalid name");
    let r = s
        .send(
            Method::POST,
            "/api/v1/projects",
            admin,
            &[],
            Some(json!({"name": ""})),
        )
        .await;
    r.assert_error(400, "invalid name");
    let r = s
        .send(
            Method::POST,
            "/api/v1/projects",
            admin,
            &[],
            Some(json!({"nom": "x"})),
        )
        .await;
    r.assert_error(400, "malformed json");
    let r = s
        .http
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_404_and_wrong_methods_405_as_json() {
    let s = Server::start_default().await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/logs",
        "/api/v1/logs/extra",
    ] {
        let r = s.get(path, Some(&s.admin), &[]).await;
        r.assert_error(404, "not found");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    for (m, path) in [
        (Method::PUT, "/api/v1/logs"),
        (Method::DELETE, "/api/v1/logs"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/api/v1/services"),
        (Method::GET, "/api/v1/tokens/1"),
        (Method::POST, "/api/v1/logs/live"),
    ] {
        let r = s.send(m.clone(), path, Some(&s.admin), &[], None).await;
        r.assert_error(405, "method not allowed");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{m} {path}"
        );
    }
}

/// docs/API.md: "Every error is a JSON object {"error", "detail"}".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_content_encoding_is_a_json_error() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    // An encoding the server does not decode.
    let r = s
        .post_raw(
            Some(&token),
            "{\"message\":\"a\"}",
            &[("content-encoding", "br")],
        )
        .await;
    assert!(
        r.status == 415 || r.status == 400,
        "unsupported encoding is refused: {}",
        r.status
    );
    assert!(
        r.json["error"].is_string() && r.json["detail"].is_string(),
        "unsupported Content-Encoding: status {} with body {:?} (content-type {:?})",
        r.status,
        r.text,
        r.headers.get("content-type")
    );
}

/// docs/API.md: "Every error is a JSON object {"error", "detail"}".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_admin_body_is_a_json_error() {
    let s = Server::start_default().await;
    // An admin request body over axum's default body limit (2 MB).
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(3 * 1024 * 1024));
    let r = s
        .http
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").cloned();
    let text = r.text().await.unwrap();
    assert!(status.is_client_error(), "{status}");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        v["error"].is_string() && v["detail"].is_string(),
        "oversized admin body: status {status} with body {text:?} (content-type {ct:?})"
    );
}

/// Every query plan (all entries, one service, several services, full
/// text, level, tag, time range) pages with cursors and with page numbers to
/// exactly the entries the filter selects, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_agrees_with_filters_across_query_plans() {
    let s = Server::start_default().await;
    let base = now_micros() - 3600 * 1_000_000;
    const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
    let levels = LEVELS;
    for (si, svc) in ["a", "b", "c"].iter().enumerate() {
        let token = s.ingest_token("plans", svc);
        let batch: Vec<Value> = (0..300)
            .map(|i: i64| {
                let word = if i % 3 == 0 { "alpha" } else { "beta" };
                json!({
                    "message": format!("{word} {svc} {i}"),
                    "level": levels[(i as usize + si) % 4],
                    "tags": if i % 5 == 0 { vec!["x"] } else { vec![] },
                    // Timestamps shared across services and within one.
                    "timestamp": rfc3339(base + (i / 4) * 1_000_000),
                })
            })
            .collect();
        s.ingest(&token, &Value::Array(batch)).await;
    }
    // Everything, newest first, as the reference.
    let mut all: Vec<Value> = Vec::new();
    s.walk(&s.admin, &[("project", "plans")], 100, |e| {
        all.push(e.clone())
    })
    .await;
    assert_eq!(all.len(), 900);
    let key = |e: &Value| {
        (
            parse_rfc3339(e["timestamp"].as_str().unwrap()),
            e["id"].as_i64().unwrap(),
        )
    };
    for w in all.windows(2) {
        assert!(key(&w[0]) > key(&w[1]), "newest first, then id");
    }
    let rank = |l: &str| LEVELS.iter().position(|x| *x == l).unwrap();
    let mid_since = rfc3339(base + 20 * 1_000_000);
    let mid_until = rfc3339(base + 50 * 1_000_000);
    type Pred = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Vec<(&str, &str)>, Pred)> = vec![
        (vec![], Box::new(|_| true)),
        (vec![("service", "a")], Box::new(|e| e["service"] == "a")),
        (
            vec![("service", "a,c")],
            Box::new(|e| e["service"] == "a" || e["service"] == "c"),
        ),
        (
            vec![("q", "alpha")],
            Box::new(|e| e["message"].as_str().unwrap().starts_with("alpha")),
        ),
        (
            vec![("q", "alpha"), ("service", "b,c")],
            Box::new(|e| {
                e["message"].as_str().unwrap().starts_with("alpha") && e["service"] != "a"
            }),
        ),
        (
            vec![("level", "warn")],
            Box::new(move |e| rank(e["level"].as_str().unwrap()) >= 2),
        ),
        (
            vec![("tag", "x"), ("service", "a,b")],
            Box::new(|e| e["tags"] == json!(["x"]) && e["service"] != "c"),
        ),
        (
            vec![
                ("since", &mid_since),
                ("until", &mid_until),
                ("service", "b"),
            ],
            {
                let (lo, hi) = (base + 20 * 1_000_000, base + 50 * 1_000_000);
                Box::new(move |e| {
                    let t = parse_rfc3339(e["timestamp"].as_str().unwrap());
                    e["service"] == "b" && t >= lo && t < hi
                })
            },
        ),
    ];
    for (query, pred) in cases {
        let want: Vec<i64> = all
            .iter()
            .filter(|e| pred(e))
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(!want.is_empty(), "{query:?}");
        let mut q = query.clone();
        q.push(("project", "plans"));
        q.push(("limit", "37"));
        let mut walked = Vec::new();
        s.walk(&s.admin, &q, 100, |e| {
            walked.push(e["id"].as_i64().unwrap())
        })
        .await;
        assert_eq!(walked, want, "cursor walk of {query:?}");
        let mut paged = Vec::new();
        for page in 1..=100 {
            let mut q = q.clone();
            let p = page.to_string();
            q.push(("page", &p));
            let e = s.entries(&s.admin, &q).await;
            if e.is_empty() {
                break;
            }
            paged.extend(e.iter().map(|e| e["id"].as_i64().unwrap()));
        }
        assert_eq!(paged, want, "page walk of {query:?}");
    }
}

/// The HTTP layer reads with a 16 KiB buffer (`faultline-server/src/http.rs`):
/// a request head longer than that is refused with 431 and the server goes
/// on serving; a body many times that size is read in pieces, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_request_heads_are_431_and_big_bodies_arrive_whole() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");

    let padding = "p".repeat(20 * 1024);
    let r = s
        .post_raw(
            Some(&token),
            r#"{"message":"behind a long head"}"#,
            &[("x-padding", padding.as_str())],
        )
        .await;
    assert_eq!(r.status, 431, "{}", r.text);

    // A head just within the buffer still passes.
    let padding = "p".repeat(12 * 1024);
    let r = s
        .post_raw(
            Some(&token),
            r#"{"message":"behind a long but fitting head"}"#,
            &[("x-padding", padding.as_str())],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);

    // ~1.2 MB in one request: 2,000 entries of distinct 600-byte messages.
    let batch: Vec<Value> = (0..2000)
        .map(|i| json!({"message": format!("{i:05} {}", "m".repeat(600))}))
        .collect();
    let body = serde_json::to_vec(&Value::Array(batch)).unwrap();
    assert!(body.len() > 1_000_000);
    let r = s
        .post_raw(Some(&token), body, &[("content-type", "application/json")])
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["accepted"], 2000);

    let mut got: Vec<String> = Vec::new();
    s.walk(&s.admin, &[], 10, |e| {
        let m = e["message"].as_str().unwrap();
        if !m.starts_with("behind") {
            got.push(m.to_string());
        }
    })
    .await;
    got.sort();
    let want: Vec<String> = (0..2000)
        .map(|i| format!("{i:05} {}", "m".repeat(600)))
        .collect();
    assert_eq!(got, want, "every entry of the big body, intact");
}
