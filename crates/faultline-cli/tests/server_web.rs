//! The web UI's server side over plain HTTP: first-run setup, sessions,
//! CSRF and origin checks, users, the pages and assets with their security
//! headers, the dashboard overview, issue notices, issue links and
//! sparklines.

mod common;

use common::{Resp, Server, into_resp, wait_until};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "a long enough password";

/// A cookie-carrying client of one browser session.
struct Session {
    cookie: String,
    csrf: String,
}

fn cookie_of(r: &Resp) -> String {
    let set = r
        .headers
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    set.split(';').next().unwrap().to_string()
}

async fn request(
    server: &Server,
    method: Method,
    path: &str,
    session: Option<&Session>,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = server.http.request(method, server.url(path));
    if let Some(s) = session {
        req = req.header("cookie", &s.cookie);
    }
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_resp(req.send().await.unwrap()).await
}

async fn setup(server: &Server) -> Session {
    let r = request(
        server,
        Method::POST,
        "/api/v1/setup",
        None,
        None,
        Some(json!({"admin_token": server.admin, "username": "ana", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    Session {
        cookie: cookie_of(&r),
        csrf: r.json["csrf"].as_str().unwrap().to_string(),
    }
}

/// Whether requests with `session` are refused (401) within 5 s.
async fn session_ends(server: &Server, session: &Session) -> bool {
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            request(
                server,
                Method::GET,
                "/api/v1/projects",
                Some(session),
                None,
                None,
            )
            .await
            .status
                == 401
        },
    )
    .await
}

/// `POST /api/v1/session` with a name and a password.
async fn login(server: &Server, username: &str, password: &str) -> Resp {
    request(
        server,
        Method::POST,
        "/api/v1/session",
        None,
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

#[tokio::test]
async fn setup_login_sessions_and_csrf() {
    let server = Server::start_default().await;

    // Before setup: pages send to /setup, the API says setup is needed.
    let r = request(&server, Method::GET, "/api/v1/setup", None, None, None).await;
    assert_eq!(r.json, json!({"needed": true}));
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.get(server.url("/logs")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/setup");

    // Setup needs a valid admin token, a valid name and a long password.
    for (body, status, error) in [
        (
            json!({"admin_token": "fl_nope", "username": "ana", "password": PASSWORD}),
            401,
            "unauthorized",
        ),
        (
            json!({"admin_token": server.admin, "username": "a b", "password": PASSWORD}),
            400,
            "invalid username",
        ),
        (
            json!({"admin_token": server.admin, "username": "ana", "password": "short"}),
            400,
            "invalid password",
        ),
        (
            json!({"admin_token": server.admin, "username": "ana"}),
            400,
            "malformed json",
        ),
    ] {
        request(
            &server,
            Method::POST,
            "/api/v1/setup",
            None,
            None,
            Some(body),
        )
        .await
        .assert_error(status, error);
    }
    let read = server.read_token("studio");
    request(
        &server,
        Method::POST,
        "/api/v1/setup",
        None,
        None,
        Some(json!({"admin_token": read, "username": "ana", "password": PASSWORD})),
    )
    .await
    .assert_error(401, "unauthorized");

    let ana = setup(&server).await;
    // Only once.
    request(
        &server,
        Method::POST,
        "/api/v1/setup",
        None,
        None,
        Some(json!({"admin_token": server.admin, "username": "eve", "password": PASSWORD})),
    )
    .await
    .assert_error(409, "conflict");

    // The session reads the API like an admin token.
    let r = request(
        &server,
        Method::GET,
        "/api/v1/session",
        Some(&ana),
        None,
        None,
    )
    .await;
    assert_eq!(r.json["user"]["username"], "ana");
    assert_eq!(r.json["csrf"], ana.csrf.as_str());
    let r = request(
        &server,
        Method::GET,
        "/api/v1/projects",
        Some(&ana),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // State changes need the CSRF token...
    let create = json!({"name": "studio"});
    request(
        &server,
        Method::POST,
        "/api/v1/projects",
        Some(&ana),
        None,
        Some(create.clone()),
    )
    .await
    .assert_error(403, "forbidden");
    request(
        &server,
        Method::POST,
        "/api/v1/projects",
        Some(&ana),
        Some("fl_wrong"),
        Some(create.clone()),
    )
    .await
    .assert_error(403, "forbidden");
    let r = request(
        &server,
        Method::POST,
        "/api/v1/projects",
        Some(&ana),
        Some(&ana.csrf),
        Some(create),
    )
    .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    // ...and a foreign Origin is refused even for reads.
    let r = server
        .http
        .get(server.url("/api/v1/projects"))
        .header("cookie", &ana.cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A bearer token needs no CSRF token.
    let r = server
        .send(
            Method::POST,
            "/api/v1/projects",
            Some(&server.admin),
            &[],
            Some(json!({"name": "other"})),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);

    // Login: wrong password or user → 401; right → a new session.
    for body in [
        json!({"username": "ana", "password": "wrong password"}),
        json!({"username": "bob", "password": PASSWORD}),
    ] {
        request(
            &server,
            Method::POST,
            "/api/v1/session",
            None,
            None,
            Some(body),
        )
        .await
        .assert_error(401, "unauthorized");
    }
    let r = request(
        &server,
        Method::POST,
        "/api/v1/session",
        None,
        None,
        Some(json!({"username": "ana", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = Session {
        cookie: cookie_of(&r),
        csrf: r.json["csrf"].as_str().unwrap().to_string(),
    };
    assert_ne!(second.cookie, ana.cookie);

    // Users: list, create, duplicate, change password, delete.
    let r = request(
        &server,
        Method::GET,
        "/api/v1/users",
        Some(&ana),
        None,
        None,
    )
    .await;
    assert_eq!(r.json["users"].as_array().unwrap().len(), 1);
    let r = request(
        &server,
        Method::POST,
        "/api/v1/users",
        Some(&ana),
        Some(&ana.csrf),
        Some(json!({"username": "bob", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let bob_id = r.json["id"].as_i64().unwrap();
    request(
        &server,
        Method::POST,
        "/api/v1/users",
        Some(&ana),
        Some(&ana.csrf),
        Some(json!({"username": "bob", "password": PASSWORD})),
    )
    .await
    .assert_error(409, "conflict");
    let r = request(
        &server,
        Method::PUT,
        &format!("/api/v1/users/{bob_id}/password"),
        Some(&ana),
        Some(&ana.csrf),
        Some(json!({"password": "bob's new password"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = request(
        &server,
        Method::POST,
        "/api/v1/session",
        None,
        None,
        Some(json!({"username": "bob", "password": "bob's new password"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bob = Session {
        cookie: cookie_of(&r),
        csrf: r.json["csrf"].as_str().unwrap().to_string(),
    };
    request(
        &server,
        Method::PUT,
        "/api/v1/users/999/password",
        Some(&ana),
        Some(&ana.csrf),
        Some(json!({"password": PASSWORD})),
    )
    .await
    .assert_error(404, "not found");
    // Deleting bob ends his sessions.
    let r = request(
        &server,
        Method::DELETE,
        &format!("/api/v1/users/{bob_id}"),
        Some(&ana),
        Some(&ana.csrf),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(
        session_ends(&server, &bob).await,
        "a deleted user's session stops working"
    );
    // The last user cannot be deleted.
    let users = request(
        &server,
        Method::GET,
        "/api/v1/users",
        Some(&ana),
        None,
        None,
    )
    .await;
    let ana_id = users.json["users"][0]["id"].as_i64().unwrap();
    request(
        &server,
        Method::DELETE,
        &format!("/api/v1/users/{ana_id}"),
        Some(&ana),
        Some(&ana.csrf),
        None,
    )
    .await
    .assert_error(409, "conflict");
    // Ingest tokens cannot manage users.
    let ingest = server.ingest_token("studio", "render");
    let r = server.get("/api/v1/users", Some(&ingest), &[]).await;
    r.assert_error(403, "forbidden");

    // Logout ends the session; the cookie is cleared.
    let r = request(
        &server,
        Method::DELETE,
        "/api/v1/session",
        Some(&ana),
        Some(&ana.csrf),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = request(
        &server,
        Method::GET,
        "/api/v1/projects",
        Some(&ana),
        None,
        None,
    )
    .await;
    r.assert_error(401, "unauthorized");
    // The other session lives on.
    let r = request(
        &server,
        Method::GET,
        "/api/v1/projects",
        Some(&second),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let _ = second.csrf;
    let _ = bob.csrf;
}

#[tokio::test]
async fn pages_and_assets_are_served_with_strict_headers() {
    let server = Server::start_default().await;
    let ana = setup(&server).await;
    for path in ["/", "/logs", "/issues", "/issues/1", "/settings"] {
        let r = request(&server, Method::GET, path, Some(&ana), None, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(
            r.text.contains(&format!("content=\"{}\"", ana.csrf)),
            "the page carries the CSRF token"
        );
        assert!(r.text.contains("data-user=\"ana\""));
    }
    // Without a session: to the login page, remembering where to go.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(server.url("/issues/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/issues/7");
    let r = no_redirect.get(server.url("/setup")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/login", "setup is over");
    let r = request(&server, Method::GET, "/issues/abc", Some(&ana), None, None).await;
    assert_eq!(r.status, 404);

    for (name, ctype) in [
        ("app.js", "text/javascript"),
        ("logs.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = server.get(&format!("/ui/{name}"), None, &[]).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.headers["content-type"], ctype);
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        let etag = r.headers["etag"].to_str().unwrap().to_string();
        let again = server
            .http
            .get(server.url(&format!("/ui/{name}")))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    assert_eq!(server.get("/ui/nope.js", None, &[]).await.status, 404);
    assert_eq!(server.get("/ui/..%2Fsecret", None, &[]).await.status, 404);
}

#[tokio::test]
async fn overview_sparklines_links_and_live_notices() {
    let server = Server::start_default().await;
    let admin = server.admin.clone();
    let render = server.ingest_token("studio", "render");
    let comp = server.ingest_token("studio", "comp");
    let _idle = server.ingest_token("studio", "idle");

    // Notices stream before anything happens.
    let notices = server
        .http
        .get(server.url("/api/v1/issues/live"))
        .query(&[("project", "studio")])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(notices.status(), 200);
    assert!(
        notices.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = notices.bytes_stream();

    let mut batch = Vec::new();
    for i in 0..6 {
        batch.push(json!({"level": "info", "message": format!("frame {i} done")}));
    }
    batch.push(json!({"level": "error", "message": "TankError: no such shot sh010"}));
    batch.push(json!({"level": "error", "message": "TankError: no such shot sh020"}));
    server.ingest(&render, &Value::Array(batch)).await;
    server.ingest(&comp, &json!([{"level": "warn", "message": "slow"}, {"level": "critical", "message": "DiskFull: cache"}])).await;

    // Two new issues are announced.
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.matches("event: issue").count() >= 2 {
                break;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "two notices arrive: {seen}");
    assert!(
        seen.contains("\"kind\":\"new\"")
            && seen.contains("TankError")
            && seen.contains("DiskFull"),
        "{seen}"
    );

    // Wait for the issues to be recorded.
    let ok = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            server
                .get("/api/v1/issues", Some(&admin), &[("project", "studio")])
                .await
                .json["total"]
                == 2
        },
    )
    .await;
    assert!(ok);

    let ov = server
        .get("/api/v1/projects/studio/overview", Some(&admin), &[])
        .await;
    assert_eq!(ov.status, 200, "{}", ov.text);
    let hourly = ov.json["hourly"].as_array().unwrap();
    let daily = ov.json["daily"].as_array().unwrap();
    assert_eq!(hourly.len(), 24);
    assert_eq!(daily.len(), 30);
    let last = &hourly[23];
    assert_eq!(last["info"], 6, "{last}");
    assert_eq!(last["error"], 2);
    assert_eq!(last["warn"], 1);
    assert_eq!(last["critical"], 1);
    assert_eq!(daily[29]["info"], 6);
    assert_eq!(ov.json["issues"]["unresolved"], 2);
    assert_eq!(ov.json["issues"]["new_since"], 2);
    let services = ov.json["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["comp", "idle", "render"]);
    assert_eq!(services[2]["entries_24h"], 8);
    assert_eq!(services[2]["errors_24h"], 2);
    assert_eq!(services[2]["error_rate_24h"], 0.25);
    assert_eq!(services[1]["entries_24h"], 0);
    assert!(services[1]["last_seen"].is_null());

    // Sparklines: 24 hourly counts, the last one holding today's events.
    let list = server
        .get(
            "/api/v1/issues",
            Some(&admin),
            &[
                ("project", "studio"),
                ("sparkline", "24h"),
                ("sort", "count"),
            ],
        )
        .await;
    let first = &list.json["issues"][0];
    let spark = first["sparkline"].as_array().unwrap();
    assert_eq!(spark.len(), 24);
    assert_eq!(spark[23], 2, "{first}");
    assert_eq!(spark.iter().map(|v| v.as_u64().unwrap()).sum::<u64>(), 2);
    server
        .get("/api/v1/issues", Some(&admin), &[("sparkline", "7d")])
        .await
        .assert_error(400, "invalid parameter");

    // Log lines that became events carry their issue; issue-links says the same.
    let logs = server
        .get(
            "/api/v1/logs",
            Some(&admin),
            &[("project", "studio"), ("level", "error")],
        )
        .await;
    let entries = logs.json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for e in entries {
        assert!(e["issue_id"].is_i64(), "{e}");
    }
    let infos = server
        .get(
            "/api/v1/logs",
            Some(&admin),
            &[("project", "studio"), ("q", "frame")],
        )
        .await;
    assert!(infos.json["entries"][0].get("issue_id").is_none());
    let ids: Vec<String> = entries.iter().map(|e| e["id"].to_string()).collect();
    let info_id = infos.json["entries"][0]["id"].to_string();
    let links = server
        .get(
            "/api/v1/issue-links",
            Some(&admin),
            &[("log_ids", &format!("{},{info_id}", ids.join(",")))],
        )
        .await;
    assert_eq!(links.status, 200, "{}", links.text);
    let map = links.json["links"].as_object().unwrap();
    assert_eq!(map.len(), 3);
    assert!(!map.contains_key(&info_id));
    server
        .get("/api/v1/issue-links", Some(&admin), &[("log_ids", "1,x")])
        .await
        .assert_error(400, "invalid parameter");
    let many: Vec<String> = (1..=1001).map(|i| i.to_string()).collect();
    server
        .get(
            "/api/v1/issue-links",
            Some(&admin),
            &[("log_ids", &many.join(","))],
        )
        .await
        .assert_error(400, "invalid parameter");
    server
        .get("/api/v1/issue-links", Some(&render), &[("log_ids", "1")])
        .await
        .assert_error(403, "forbidden");

    // Overview errors.
    server
        .get("/api/v1/projects/nope/overview", Some(&admin), &[])
        .await
        .assert_error(404, "not found");
    server
        .get("/api/v1/projects/studio/overview", Some(&render), &[])
        .await
        .assert_error(403, "forbidden");
    let other = server.read_token("other");
    server
        .get("/api/v1/projects/studio/overview", Some(&other), &[])
        .await
        .assert_error(403, "forbidden");

    // Settings (read-only, from the config).
    let s = server.get("/api/v1/settings", Some(&admin), &[]).await;
    assert_eq!(s.status, 200);
    assert!(s.json["retention_days"]["info"].as_f64().unwrap() > 0.0);
    assert_eq!(s.json["issue_level"], "error");
}

#[tokio::test]
async fn logins_need_json_from_this_site_and_old_credentials_end_streams() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Server::start_with_config("[live]\nping_interval = \"200ms\"\n").await;
    let ana = setup(&server).await;

    // Login CSRF: only JSON, only from this site.
    let form = server
        .http
        .post(server.url("/api/v1/session"))
        .header("content-type", "text/plain")
        .body(format!(
            "{{\"username\":\"ana\",\"password\":\"{PASSWORD}\"}}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403);
    assert!(form.headers().get("set-cookie").is_none());
    let foreign = server
        .http
        .post(server.url("/api/v1/session"))
        .header("origin", "http://evil.example")
        .json(&json!({"username": "ana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    // API answers are never cached.
    let r = request(
        &server,
        Method::GET,
        "/api/v1/projects",
        Some(&ana),
        None,
        None,
    )
    .await;
    assert_eq!(r.headers["cache-control"], "no-store");

    // A live tail opened with the session ends when the session does.
    let mut req = server
        .ws_url("/api/v1/logs/live")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", ana.cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let notices = server
        .http
        .get(server.url("/api/v1/issues/live"))
        .header("cookie", &ana.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(notices.status(), 200);
    let r = request(
        &server,
        Method::DELETE,
        "/api/v1/session",
        Some(&ana),
        Some(&ana.csrf),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket closes after logout");
    let body = tokio::time::timeout(Duration::from_secs(5), notices.text()).await;
    assert!(body.is_ok(), "the notice stream ends after logout");

    // A bearer token's stream ends when the token is revoked.
    let read = server.read_token("studio");
    let id = server.token_id(&read).await;
    let sse = server
        .http
        .get(server.url("/api/v1/logs/live"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let r = server
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&server.admin),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = tokio::time::timeout(Duration::from_secs(5), sse.text()).await;
    assert!(body.is_ok(), "the SSE tail ends after the token is revoked");

    // A new password logs the user out everywhere.
    let r = request(
        &server,
        Method::POST,
        "/api/v1/session",
        None,
        None,
        Some(json!({"username": "ana", "password": PASSWORD})),
    )
    .await;
    let s1 = Session {
        cookie: cookie_of(&r),
        csrf: r.json["csrf"].as_str().unwrap().to_string(),
    };
    let users = request(&server, Method::GET, "/api/v1/users", Some(&s1), None, None).await;
    let ana_id = users.json["users"][0]["id"].as_i64().unwrap();
    let r = request(
        &server,
        Method::PUT,
        &format!("/api/v1/users/{ana_id}/password"),
        Some(&s1),
        Some(&s1.csrf),
        Some(json!({"password": "a brand new password"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    request(
        &server,
        Method::GET,
        "/api/v1/projects",
        Some(&s1),
        None,
        None,
    )
    .await
    .assert_error(401, "unauthorized");
    // Read tokens cannot map log ids to issues of any project.
    server
        .get(
            "/api/v1/issue-links",
            Some(&server.read_token("studio")),
            &[("log_ids", "1")],
        )
        .await
        .assert_error(403, "forbidden");
}

/// `faultline user ARGS --data-dir DIR` with `stdin`.
#[tokio::test]
async fn repeated_failed_logins_lock_the_name_for_a_while() {
    let server = Server::start_default().await;
    setup(&server).await;
    let out = user_cli(&server, &["create", "bob"], PASSWORD);
    assert!(out.status.success(), "{out:?}");
    // A right password clears earlier failures.
    for _ in 0..9 {
        login(&server, "ana", "wrong password")
            .await
            .assert_error(401, "unauthorized");
    }
    assert_eq!(login(&server, "ana", PASSWORD).await.status, 200);
    // Ten failures in a row (any spelling of the name): the name is refused,
    // even with the right password, and says for how long.
    for name in ["ana", "ANA"].into_iter().cycle().take(10) {
        login(&server, name, "wrong password")
            .await
            .assert_error(401, "unauthorized");
    }
    let r = login(&server, "ana", PASSWORD).await;
    r.assert_error(429, "too many requests");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=901).contains(&retry), "Retry-After {retry}");
    assert!(r.json["detail"].as_str().unwrap().contains("failed logins"));
    // Others are not affected, and the admin token still works.
    assert_eq!(login(&server, "bob", PASSWORD).await.status, 200);
    let r = request(&server, Method::GET, "/api/v1/projects", None, None, None).await;
    assert_eq!(r.status, 401);
    let r = server
        .http
        .get(server.url("/api/v1/projects"))
        .bearer_auth(&server.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn user_cli(server: &Server, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(&server.data_dir);
    common::run_with_stdin(
        cmd,
        Some(stdin.as_bytes().to_vec()),
        Duration::from_secs(30),
    )
    .0
}

#[tokio::test]
async fn the_cli_manages_users_while_the_server_runs() {
    let server = Server::start_default().await;
    let out = user_cli(&server, &["create", "bob"], "bob's password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login(&server, "bob", "bob's password").await.status, 200);
    let list = user_cli(&server, &["list"], "");
    assert!(String::from_utf8_lossy(&list.stdout).contains("bob"));

    // Bad input: one line on stderr, non-zero exit, nothing changed.
    for (args, stdin, says) in [
        (vec!["create", "bob"], "another password\n", "conflict"),
        (vec!["create", "a b"], "a long password\n", "username"),
        (vec!["create", "carol"], "short\n", "8 to 1024 characters"),
        (
            vec!["set-password", "nobody"],
            "a long password\n",
            "no user named",
        ),
        (vec!["delete", "nobody"], "", "no user named"),
    ] {
        let out = user_cli(&server, &args, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }

    // A new password from the CLI ends the sessions and works at once.
    let r = login(&server, "bob", "bob's password").await;
    let bob = Session {
        cookie: cookie_of(&r),
        csrf: r.json["csrf"].as_str().unwrap().to_string(),
    };
    let out = user_cli(&server, &["set-password", "bob"], "bob's new password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(session_ends(&server, &bob).await, "the old session ends");
    login(&server, "bob", "bob's password")
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        login(&server, "bob", "bob's new password").await.status,
        200
    );
    let out = user_cli(&server, &["delete", "bob"], "");
    assert!(out.status.success());
    login(&server, "bob", "bob's new password")
        .await
        .assert_error(401, "unauthorized");
    let _ = bob.csrf;
}
