//! Issues in a real `faultline server`: a mixed stream becomes the expected
//! issues, regressions reopen, counts stay exact under concurrent ingest,
//! nothing is lost or doubled across a `kill -9`, and the API refuses what
//! it should.

mod common;

use common::{Server, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

fn python_trace(value: &str, line: u32) -> String {
    format!(
        "Traceback (most recent call last):\n  File \"/opt/studio/pipeline/publish.py\", line {line}, in publish\n    version = versions[key]\n  File \"/opt/studio/pipeline/lookup.py\", line 12, in find\n    return table[key]\nKeyError: '{value}'"
    )
}

fn java_trace(id: u32) -> String {
    format!(
        "java.lang.NullPointerException: asset {id} has no path\n\tat com.studio.render.Farm.submit(Farm.java:{})\n\tat com.studio.render.Queue.run(Queue.java:88)\n\tat java.base/java.lang.Thread.run(Thread.java:833)",
        100 + id
    )
}

/// Issues of a project, waiting until their counts add up to `events`.
async fn issues_when(s: &Server, token: &str, project: &str, events: u64) -> Vec<Value> {
    let mut last = Vec::new();
    let ok = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            let r = s
                .get(
                    "/api/v1/issues",
                    Some(token),
                    &[("project", project), ("limit", "500")],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            last = r.json["issues"].as_array().unwrap().clone();
            last.iter()
                .map(|i| i["count"].as_u64().unwrap())
                .sum::<u64>()
                == events
        },
    )
    .await;
    assert!(ok, "issues never added up to {events} events: {last:#?}");
    last
}

/// PATCH an issue with a JSON body.
async fn patch(s: &Server, path: &str, token: &str, body: Value) -> common::Resp {
    s.send(Method::PATCH, path, Some(token), &[], Some(body))
        .await
}

fn by_count(issues: &[Value]) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = issues
        .iter()
        .map(|i| {
            (
                i["count"].as_u64().unwrap(),
                i["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_stream_becomes_the_expected_issues() {
    let s = Server::start_default().await;
    let render = s.ingest_token("studio", "render");
    let pipeline = s.ingest_token("studio", "pipeline");
    let reader = s.read_token("studio");

    let mut render_batch = Vec::new();
    let mut pipeline_batch = Vec::new();
    for i in 0..200u32 {
        // Info and warn noise: never issues.
        render_batch.push(
            json!({"level": "info", "message": format!("frame {i} rendered in {} ms", 100 + i)}),
        );
        if i % 50 == 0 {
            render_batch.push(json!({"level": "warn", "message": format!("slow frame {i}")}));
        }
    }
    for i in 0..20u32 {
        render_batch.push(json!({
            "level": "error",
            "message": format!("Failed to render shot sh{:03}: timeout after {} ms", i * 10, 3000 + i),
            "host": format!("farm{:02}", i % 4),
        }));
    }
    for i in 0..10u32 {
        render_batch.push(json!({"level": "error", "message": java_trace(i)}));
    }
    for i in 0..5u32 {
        pipeline_batch.push(json!({
            "level": "error",
            "message": format!("connection refused to db-{i}.studio.lan:5432"),
        }));
    }
    for (i, shot) in [
        "sh010", "sh020", "sh030", "sh040", "sh050", "sh060", "sh070", "sh080", "sh090", "sh100",
    ]
    .iter()
    .enumerate()
    {
        pipeline_batch.push(json!({
            "level": "error",
            // Line numbers change between releases: still one issue.
            "message": python_trace(shot, 40 + i as u32 % 3),
            "attributes": {"user_login": format!("artist{}", i % 3)},
        }));
    }
    pipeline_batch.push(json!({"level": "critical", "message": "disk full on /dev/sdb1"}));
    s.ingest(&render, &Value::Array(render_batch)).await;
    s.ingest(&pipeline, &Value::Array(pipeline_batch)).await;

    let issues = issues_when(&s, &reader, "studio", 46).await;
    let got = by_count(&issues);
    let counts: Vec<u64> = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(counts, [20, 10, 10, 5, 1], "issues: {got:#?}");

    let find = |pred: &dyn Fn(&Value) -> bool| -> Value {
        issues.iter().find(|i| pred(i)).cloned().expect("issue")
    };
    let key_error = find(&|i| i["exception_type"] == "KeyError");
    assert_eq!(key_error["count"], 10);
    assert_eq!(key_error["service"], "pipeline");
    assert_eq!(key_error["users"], 3);
    assert_eq!(key_error["status"], "unresolved");
    let npe = find(&|i| i["exception_type"] == "java.lang.NullPointerException");
    assert_eq!(npe["count"], 10);
    let render_timeout = find(&|i| i["count"] == 20);
    assert!(
        render_timeout["title"]
            .as_str()
            .unwrap()
            .starts_with("Failed to render shot"),
        "{render_timeout}"
    );
    assert_eq!(render_timeout["hosts"], 4);
    let disk = find(&|i| i["count"] == 1);
    assert_eq!(disk["level"], "critical");

    // Events keep the whole entry and the parsed stack.
    let id = key_error["id"].as_i64().unwrap();
    let r = s
        .get(
            &format!("/api/v1/issues/{id}/events"),
            Some(&reader),
            &[("limit", "4")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    let ev = &events[0];
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("KeyError: 'sh100'")
    );
    assert_eq!(ev["exception_type"], "KeyError");
    let frames = ev["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 2, "{ev}");
    assert_eq!(frames[1]["function"], "find");
    assert!(ev["log_id"].as_i64().is_some());
    assert_eq!(ev["attributes"]["user_login"], "artist0");
    let next = r.json["next_before"].as_i64().expect("more pages");
    let r2 = s
        .get(
            &format!("/api/v1/issues/{id}/events"),
            Some(&reader),
            &[("limit", "50"), ("before", &next.to_string())],
        )
        .await;
    assert_eq!(r2.json["events"].as_array().unwrap().len(), 6);
    assert!(r2.json["next_before"].is_null());

    // Detail: histogram, latest/oldest events.
    let r = s
        .get(&format!("/api/v1/issues/{id}"), Some(&reader), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hourly = r.json["histogram"]["hourly"].as_array().unwrap();
    let total: u64 = hourly.iter().map(|b| b[1].as_u64().unwrap()).sum();
    assert_eq!(total, 10);
    assert!(
        r.json["oldest_event"]["message"]
            .as_str()
            .unwrap()
            .contains("sh010")
    );
    assert!(
        r.json["latest_event"]["message"]
            .as_str()
            .unwrap()
            .contains("sh100")
    );

    // Filters and sorts.
    let r = s
        .get(
            "/api/v1/issues",
            Some(&reader),
            &[("service", "pipeline"), ("sort", "count")],
        )
        .await;
    let titles: Vec<u64> = r.json["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["count"].as_u64().unwrap())
        .collect();
    assert_eq!(titles, [10, 5, 1]);
    let r = s
        .get("/api/v1/issues", Some(&reader), &[("level", "critical")])
        .await;
    assert_eq!(r.json["total"], 1);
    let r = s
        .get("/api/v1/issues", Some(&reader), &[("q", "nullpointer")])
        .await;
    assert_eq!(r.json["total"], 1);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("faultline_issues_created_total 5"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_regress_ignore_and_history() {
    let s = Server::start_default().await;
    let token = s.ingest_token("shop", "api");
    let reader = s.read_token("shop");
    let err =
        |n: u32| json!({"level": "error", "message": format!("payment {n} declined by gateway")});
    s.ingest(&token, &json!([err(1), err(2)])).await;
    let issue = issues_when(&s, &reader, "shop", 2).await[0].clone();
    let id = issue["id"].as_i64().unwrap();
    let path = format!("/api/v1/issues/{id}");

    let r = patch(&s, &path, &reader, json!({"status": "resolved"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "resolved");

    s.ingest(&token, &err(3)).await;
    let issue = issues_when(&s, &reader, "shop", 3).await[0].clone();
    assert_eq!(issue["status"], "unresolved");
    assert_eq!(issue["regressed"], true);

    // Ignore for two more events.
    let r = patch(
        &s,
        &path,
        &reader,
        json!({"status": "ignored", "ignore": {"count": 2}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ignore"]["count"], 2);
    s.ingest(&token, &err(4)).await;
    let issue = issues_when(&s, &reader, "shop", 4).await[0].clone();
    assert_eq!(issue["status"], "ignored");
    s.ingest(&token, &err(5)).await;
    let issue = issues_when(&s, &reader, "shop", 5).await[0].clone();
    assert_eq!(issue["status"], "unresolved");

    let r = s.get(&format!("{path}/history"), Some(&reader), &[]).await;
    let actions: Vec<&str> = r.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["resolved", "regressed", "ignored", "ignore_ended"]
    );
    let who = r.json["history"][0]["actor"].as_str().unwrap();
    assert!(who.starts_with("read token #"), "{who}");
    assert_eq!(r.json["history"][1]["actor"], "system");

    // Ignore until a time, given as a duration.
    let r = patch(
        &s,
        &path,
        &reader,
        json!({"status": "ignored", "ignore": {"until": "2h"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["ignore"]["until"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingest_keeps_exact_counts() {
    let s = Server::start_default().await;
    let reader = s.read_token("load");
    let tokens: Vec<String> = (0..3)
        .map(|i| s.ingest_token("load", &format!("svc{i}")))
        .collect();
    let kinds = [
        "cache node {} evicted while locked",
        "upload {} aborted: checksum mismatch",
        "worker {} lost its lease",
    ];
    let mut tasks = Vec::new();
    for c in 0..6usize {
        let token = tokens[c % 3].clone();
        let s = &s;
        tasks.push(async move {
            for b in 0..20usize {
                let batch: Vec<Value> = (0..10usize)
                    .map(|i| {
                        let n = c * 1000 + b * 10 + i;
                        json!({"level": "error", "message": kinds[n % 3].replace("{}", &n.to_string())})
                    })
                    .collect();
                s.ingest(&token, &Value::Array(batch)).await;
            }
        });
    }
    futures_util::future::join_all(tasks).await;
    let issues = issues_when(&s, &reader, "load", 1200).await;
    assert_eq!(
        issues.len(),
        3,
        "one issue per kind: {:#?}",
        by_count(&issues)
    );
    for i in &issues {
        assert_eq!(i["count"], 400, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_and_doubles_nothing() {
    let mut s = Server::start_default().await;
    let token = s.ingest_token("crash", "api");
    let reader = s.read_token("crash");
    let mut sent = 0u64;
    for b in 0..30u32 {
        let batch: Vec<Value> = (0..20u32)
            .map(|i| json!({"level": "error", "message": format!("job {} failed: exit code {}", b * 100 + i, i % 7)}))
            .collect();
        s.ingest(&token, &Value::Array(batch)).await;
        sent += 20;
    }
    // Killed right after the last 202: the processor may not have
    // recorded everything; the restart catches up from the store.
    s.kill9();
    s.restart().await;
    let issues = issues_when(&s, &reader, "crash", sent).await;
    assert_eq!(issues.len(), 1, "{:#?}", by_count(&issues));
    let id = issues[0]["id"].as_i64().unwrap();
    // Events are not doubled either.
    let mut seen: HashMap<i64, u32> = HashMap::new();
    let mut before: Option<i64> = None;
    for _ in 0..20 {
        let mut q = vec![("limit".to_string(), "500".to_string())];
        if let Some(b) = before {
            q.push(("before".into(), b.to_string()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let r = s
            .get(&format!("/api/v1/issues/{id}/events"), Some(&reader), &q)
            .await;
        for e in r.json["events"].as_array().unwrap() {
            *seen.entry(e["log_id"].as_i64().unwrap()).or_default() += 1;
        }
        match r.json["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, sent);
    assert!(seen.values().all(|&n| n == 1));
    // After the restart, the same message still finds its issue.
    s.ingest(
        &token,
        &json!({"level": "error", "message": "job 99999 failed: exit code 3"}),
    )
    .await;
    let issues = issues_when(&s, &reader, "crash", sent + 1).await;
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_rules_merge_delete_and_bad_requests() {
    let s = Server::start_default().await;
    let token = s.ingest_token("rules", "api");
    let other = s.ingest_token("elsewhere", "api");
    let reader = s.read_token("rules");
    let foreign_reader = s.read_token("elsewhere");
    let admin = s.admin_token();

    // Rules: group db timeouts by tenant.
    let rules = json!({"rules": [{"message": "*db timeout*", "fingerprint": ["{{ attributes.tenant }}", "db-timeout"]}]});
    let path = "/api/v1/projects/rules/fingerprint-rules";
    let r = s
        .send(Method::PUT, path, Some(&reader), &[], Some(rules.clone()))
        .await;
    assert_eq!(r.status, 403, "rules need an admin token");
    let r = s
        .send(
            Method::PUT,
            path,
            Some(&admin),
            &[],
            Some(json!({"rules": [{"nope": 1}]})),
        )
        .await;
    r.assert_error(400, "invalid fingerprint rules");
    let r = s
        .send(Method::PUT, path, Some(&admin), &[], Some(rules.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get(path, Some(&reader), &[]).await.json, rules);

    let timeout = |tenant: &str, n: u32| json!({"level": "error", "message": format!("db timeout after {n} ms"), "attributes": {"tenant": tenant}});
    s.ingest(
        &token,
        &json!([timeout("acme", 1), timeout("acme", 2), timeout("globex", 3)]),
    )
    .await;
    let issues = issues_when(&s, &reader, "rules", 3).await;
    assert_eq!(
        by_count(&issues).iter().map(|c| c.0).collect::<Vec<_>>(),
        [2, 1]
    );
    let ids: Vec<i64> = issues.iter().map(|i| i["id"].as_i64().unwrap()).collect();

    // Merge the two.
    let r = s
        .send(
            Method::POST,
            &format!("/api/v1/issues/{}/merge", ids[0]),
            Some(&reader),
            &[],
            Some(json!({"from": [ids[1]]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["count"], 3);
    s.ingest(&token, &timeout("globex", 4)).await;
    let issues = issues_when(&s, &reader, "rules", 4).await;
    assert_eq!(
        issues.len(),
        1,
        "later events of either go to the merged one"
    );

    // Another project's issue cannot be merged or seen.
    s.ingest(
        &other,
        &json!({"level": "error", "message": "elsewhere broke"}),
    )
    .await;
    let foreign = issues_when(&s, &foreign_reader, "elsewhere", 1).await[0]["id"]
        .as_i64()
        .unwrap();
    let r = s
        .get(&format!("/api/v1/issues/{foreign}"), Some(&reader), &[])
        .await;
    r.assert_error(404, "not found");
    let r = s
        .send(
            Method::POST,
            &format!("/api/v1/issues/{}/merge", ids[0]),
            Some(&admin),
            &[],
            Some(json!({"from": [foreign]})),
        )
        .await;
    r.assert_error(400, "invalid request");

    // Bad requests.
    let merged = ids[0];
    let p = format!("/api/v1/issues/{merged}");
    s.get("/api/v1/issues/abc", Some(&reader), &[])
        .await
        .assert_error(400, "invalid issue id");
    s.get("/api/v1/issues/999999", Some(&reader), &[])
        .await
        .assert_error(404, "not found");
    s.get("/api/v1/issues", Some(&token), &[])
        .await
        .assert_error(403, "forbidden");
    s.get("/api/v1/issues", None, &[])
        .await
        .assert_error(401, "unauthorized");
    s.get("/api/v1/issues", Some(&reader), &[("sort", "random")])
        .await
        .assert_error(400, "invalid parameter");
    s.get("/api/v1/issues", Some(&reader), &[("project", "elsewhere")])
        .await
        .assert_error(403, "forbidden");
    patch(&s, &p, &reader, json!({"status": "done"}))
        .await
        .assert_error(400, "invalid status");
    patch(
        &s,
        &p,
        &reader,
        json!({"status": "resolved", "ignore": {"count": 3}}),
    )
    .await
    .assert_error(400, "invalid ignore");
    patch(
        &s,
        &p,
        &reader,
        json!({"status": "ignored", "ignore": {"until": "someday"}}),
    )
    .await
    .assert_error(400, "invalid ignore");
    patch(&s, &p, &reader, json!({"status": "resolved", "extra": 1}))
        .await
        .assert_error(400, "malformed json");

    // Delete: admin only; then the fingerprint opens a new issue.
    s.send(Method::DELETE, &p, Some(&reader), &[], None)
        .await
        .assert_error(403, "forbidden");
    let r = s.send(Method::DELETE, &p, Some(&admin), &[], None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.get(&p, Some(&reader), &[])
        .await
        .assert_error(404, "not found");
    s.ingest(&token, &timeout("acme", 5)).await;
    let issues = issues_when(&s, &reader, "rules", 1).await;
    assert_ne!(issues[0]["id"].as_i64().unwrap(), merged);
}
