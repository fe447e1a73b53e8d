//! The web UI in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against a real `faultline server`.
//!
//! Screenshots of every page land in `target/ui-screenshots/` (override
//! with `FAULTLINE_SCREENSHOTS`).

mod common;

use base64::Engine;
use common::{Server, free_port, wait_until};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";

/// A chromedriver process and a browser session through it.
struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("FAULTLINE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
        })
}

impl Browser {
    async fn start() -> Browser {
        Browser::start_with(&[]).await
    }

    /// With extra Chromium flags.
    async fn start_with(extra: &[&str]) -> Browser {
        let port = free_port();
        // Its own process group: dropping the browser ends chromedriver and
        // every Chromium process it started, even after a failed test.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (scripts/test.sh installs chromium-driver)");
        let http = common::http_client();
        let status = format!("http://127.0.0.1:{port}/status");
        let up = wait_until(WAIT, Duration::from_millis(50), async || {
            http.get(&status).send().await.is_ok()
        })
        .await;
        assert!(up, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1360,1000",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            driver,
            shots,
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `expr` (a JS expression) is truthy.
    async fn until(&self, what: &str, expr: &str) {
        let script = format!("return !!({expr});");
        let ok = wait_until(WAIT, Duration::from_millis(100), async || {
            matches!(
                self.client.execute(&script, vec![]).await,
                Ok(Value::Bool(true))
            )
        })
        .await;
        if !ok {
            let body = self.js("return document.body.innerText;").await;
            let net = self
                .js("return performance.getEntriesByType('resource').map(e => `${e.name} ${Math.round(e.startTime)}-${Math.round(e.responseEnd)}`).join('\\n');")
                .await;
            eprintln!("resources:\n{}", net.as_str().unwrap_or_default());
            let url = self.client.current_url().await.map(|u| u.to_string());
            self.shot(&format!("failed-{}", what.replace(' ', "-")))
                .await;
            panic!("timed out waiting for {what} ({expr}) on {url:?}; page text:\n{body}");
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn shot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// Whether the navigation's "new activity" dot is hidden.
    async fn dot_hidden(&self) -> bool {
        self.js("return document.querySelector('#nav-dot').hidden;")
            .await
            .as_bool()
            .expect("a boolean")
    }

    /// No injected script ran.
    async fn assert_no_xss(&self, page: &str) {
        let v = self
            .js("return window.__xss === undefined ? null : String(window.__xss);")
            .await;
        assert_eq!(v, Value::Null, "injected script ran on {page}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn send(server: &Server, token: &str, entries: Value) {
    let r = server
        .http
        .post(server.url("/api/v1/logs"))
        .bearer_auth(token)
        .json(&entries)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// First-run setup, then log in as that user (the cookie stays in the
/// browser session).
async fn set_up_admin(b: &Browser, server: &Server) {
    set_up_admin_at(b, server, &server.url("")).await;
}

/// [`set_up_admin`] with the server reached at `base` (`http://host:port`).
async fn set_up_admin_at(b: &Browser, server: &Server, base: &str) {
    b.goto(&format!("{base}/")).await;
    b.until(
        "setup page",
        "location.pathname === '/setup' && document.querySelector('#f-admin_token')",
    )
    .await;
    b.shot("01-setup").await;
    b.type_into("#f-admin_token", &server.admin).await;
    b.type_into("#f-username", "ana").await;
    b.type_into("#f-password", PASSWORD).await;
    b.type_into("#f-password2", PASSWORD).await;
    b.click("#login-submit").await;
    b.until(
        "settings after setup",
        "location.pathname === '/settings' && document.querySelector('#settings-body table')",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_watches_logs_live_and_triages_issues() {
    let mut server = Server::start_default().await;
    let b = Browser::start().await;
    set_up_admin(&b, &server).await;

    // Log out, fail to log in, log in.
    b.click("#logout").await;
    b.until(
        "login page",
        "location.pathname === '/login' && document.querySelector('#f-username')",
    )
    .await;
    b.type_into("#f-username", "ana").await;
    b.type_into("#f-password", "wrong password").await;
    b.click("#login-submit").await;
    b.until(
        "login error",
        "document.querySelector('[role=alert]')?.innerText.includes('Wrong username or password')",
    )
    .await;
    b.shot("02-login").await;
    b.type_into("#f-password", PASSWORD).await;
    b.click("#login-submit").await;
    b.until(
        "dashboard",
        "location.pathname === '/' && document.querySelector('main h1')",
    )
    .await;

    // Create an ingest token in the settings: shown once, with a copy button.
    b.goto(&server.url("/settings#tokens")).await;
    b.until("token form", "document.querySelector('#token-form')")
        .await;
    b.type_into("#s-token-project", "studio").await;
    b.type_into("#s-token-service", "render").await;
    b.click("#token-form button[type=submit]").await;
    b.until(
        "new token",
        "document.querySelector('#new-token')?.innerText.startsWith('fl_')",
    )
    .await;
    let token = b.text("#new-token").await;
    assert!(
        b.text("#snippet-curl").await.contains(&token),
        "snippets carry the token"
    );
    b.click("#copy-token").await;
    b.shot("03-settings-tokens").await;

    // The token works; the project now exists for the project picker.
    send(
        &server,
        &token,
        json!({"level": "info", "message": "first line"}),
    )
    .await;

    // Logs: history, then live lines as they are ingested.
    b.goto(&server.url("/logs?project=studio")).await;
    b.until("history", "[...document.querySelectorAll('#loglines li')].some(li => li.innerText.includes('first line'))").await;
    b.until(
        "live",
        "document.querySelector('#conn').dataset.state === 'live'",
    )
    .await;
    send(
        &server,
        &token,
        json!([
            {"level": "info", "message": "live line one"},
            {"level": "warn", "message": "live line two"},
        ]),
    )
    .await;
    b.until(
        "live lines",
        "document.querySelector('#loglines').innerText.includes('live line two')",
    )
    .await;
    // Newest first.
    let first = b
        .js("return document.querySelector('#loglines li').innerText;")
        .await;
    assert!(first.as_str().unwrap().contains("live line two"), "{first}");

    // Pause: lines are buffered and counted, not shown; resume shows them.
    b.click("#pause").await;
    send(
        &server,
        &token,
        json!([
            {"level": "info", "message": "while paused 1"},
            {"level": "info", "message": "while paused 2"},
            {"level": "info", "message": "while paused 3"},
        ]),
    )
    .await;
    b.until(
        "paused counter",
        "document.querySelector('#buffered').innerText.startsWith('3 new lines')",
    )
    .await;
    assert!(
        !b.text("#loglines").await.contains("while paused"),
        "paused lines stay out of the list"
    );
    b.shot("04-logs-paused").await;
    b.click("#pause").await;
    b.until(
        "resumed",
        "document.querySelector('#loglines').innerText.includes('while paused 3')",
    )
    .await;
    assert_eq!(b.text("#buffered").await, "");

    // Raw line on demand.
    b.js("document.querySelector('#loglines li .line').click(); return 1;")
        .await;
    b.until("raw line", "document.querySelector('#loglines li pre.raw')?.innerText.includes('\"service\": \"render\"')").await;

    // The connection indicator shows the outage and recovers by itself.
    server.restart_same_addr().await;
    b.until(
        "reconnected",
        "document.querySelector('#conn').dataset.state === 'live'",
    )
    .await;
    send(
        &server,
        &token,
        json!({"level": "info", "message": "after the restart"}),
    )
    .await;
    b.until(
        "line after restart",
        "document.querySelector('#loglines').innerText.includes('after the restart')",
    )
    .await;

    // Filter by level.
    b.select("#f-level", "warn").await;
    b.click("#log-filters button[type=submit]").await;
    b.until("filtered", "document.querySelector('#loglines').innerText.includes('live line two') && !document.querySelector('#loglines').innerText.includes('first line')").await;
    b.shot("05-logs-filtered").await;

    // An error becomes an issue; its log line links to it.
    send(
        &server,
        &token,
        json!({"level": "error", "message": "TankError: no such shot sh010", "tags": ["nuke"]}),
    )
    .await;
    b.until(
        "issue link on the live line",
        "document.querySelector('#loglines a.issue-link')",
    )
    .await;
    b.shot("06-logs-live").await;
    b.click("#loglines a.issue-link").await;
    b.until(
        "issue page",
        "document.querySelector('#issue-title')?.innerText.includes('TankError')",
    )
    .await;
    assert!(b.text("#issue-status").await.contains("unresolved"));

    // Resolve it; a new event reopens it as a regression, live.
    b.click("#resolve").await;
    b.until("resolved", "document.querySelector('#issue-status').innerText.includes('resolved') && !document.querySelector('#issue-status').innerText.includes('unresolved')").await;
    send(
        &server,
        &token,
        json!({"level": "error", "message": "TankError: no such shot sh010"}),
    )
    .await;
    b.until("regressed", "document.querySelector('#issue-status').innerText.includes('unresolved') && document.querySelector('#issue-regressed')").await;
    b.until(
        "toast",
        "document.querySelector('#toasts').innerText.includes('Regression')",
    )
    .await;
    b.until(
        "history",
        "document.querySelector('#history').innerText.includes('ana')",
    )
    .await;
    b.shot("07-issue").await;
    // Two events: step to the older one and back.
    let latest = b
        .js("return document.querySelector('#event').dataset.event;")
        .await;
    b.click("#event-older").await;
    b.until(
        "older event",
        &format!(
            "document.querySelector('#event').dataset.event !== '{}'",
            latest.as_str().unwrap()
        ),
    )
    .await;
    assert!(b.text("#eventBox, #event").await.contains("TankError"));
    b.click("#event-newer").await;
    b.until(
        "newer event",
        &format!(
            "document.querySelector('#event').dataset.event === '{}'",
            latest.as_str().unwrap()
        ),
    )
    .await;

    // Issues list: the issue with its sparkline; bulk resolve.
    b.goto(&server.url("/issues?project=studio")).await;
    b.until(
        "issue list",
        "document.querySelector('#issues-table a.issue-title')",
    )
    .await;
    assert_eq!(
        b.js("return document.querySelectorAll('#issues-table svg.spark').length;")
            .await,
        json!(1)
    );
    b.shot("08-issues").await;
    b.click("#select-all").await;
    b.click("#bulk-resolve").await;
    b.until("bulk resolved", "document.querySelector('#no-issues')")
        .await;

    // The regression happened while the user was not on the dashboard: the
    // red dot says so on every page until the dashboard is seen.
    assert!(!b.dot_hidden().await);
    b.goto(&server.url("/")).await;
    b.until("dashboard", "document.querySelector('#count-unresolved')")
        .await;
    b.goto(&server.url("/logs?project=studio")).await;
    b.until(
        "live again",
        "document.querySelector('#conn').dataset.state === 'live'",
    )
    .await;
    assert!(b.dot_hidden().await);

    // A new issue while on another page: a notification and the red dot.
    send(
        &server,
        &token,
        json!({"level": "critical", "message": "DiskFull: /render/cache is full"}),
    )
    .await;
    b.until("nav dot", "!document.querySelector('#nav-dot').hidden")
        .await;
    b.until(
        "toast for the new issue",
        "document.querySelector('#toasts').innerText.includes('DiskFull')",
    )
    .await;
    b.shot("09-nav-dot").await;

    // The dashboard clears the dot and shows notices as they come.
    b.goto(&server.url("/")).await;
    b.until(
        "dashboard loaded",
        "document.querySelector('#count-unresolved')",
    )
    .await;
    assert!(b.dot_hidden().await);
    send(
        &server,
        &token,
        json!({"level": "error", "message": "PermissionError: cannot write /mnt/out"}),
    )
    .await;
    b.until(
        "dashboard notice",
        "document.querySelector('#notices .banner')?.innerText.includes('PermissionError')",
    )
    .await;
    b.until(
        "counts refreshed",
        "document.querySelector('#count-unresolved .n').innerText === '2'",
    )
    .await;
    b.until(
        "charts",
        "document.querySelectorAll('svg.chart').length === 2",
    )
    .await;
    b.until(
        "services table",
        "document.querySelector('#services').innerText.includes('render')",
    )
    .await;
    b.shot("10-dashboard").await;

    // "/" focuses the search field.
    b.goto(&server.url("/issues?project=studio")).await;
    b.until("issues page", "document.querySelector('#f-q')")
        .await;
    b.js("document.body.dispatchEvent(new KeyboardEvent('keydown', {key: '/', bubbles: true})); return 1;").await;
    assert_eq!(
        b.js("return document.activeElement.id;").await,
        json!("f-q")
    );

    // Settings pages render.
    for (tab, ready) in [
        ("users", "#users"),
        ("alerts", "#channel-form"),
        ("deliveries", "#s-delivery-status"),
        ("retention", "#retention"),
        ("setup", "#snippets"),
        ("projects", "#project-form"),
    ] {
        b.goto(&server.url(&format!("/settings#{tab}"))).await;
        b.until(tab, &format!("document.querySelector('{ready}')"))
            .await;
        b.shot(&format!("11-settings-{tab}")).await;
    }
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_markup_is_shown_as_text_and_never_runs() {
    let server = Server::start_default().await;
    // This browser prefers a dark theme: the pages follow it.
    let b = Browser::start_with(&["--force-dark-mode"]).await;
    set_up_admin(&b, &server).await;
    let token = server.ingest_token("studio", "render");
    let payloads = [
        "<script>window.__xss='script'</script>",
        "\"><img src=x onerror=\"window.__xss='img'\">",
        "<svg onload=\"window.__xss='svg'\"></svg>",
        "javascript:window.__xss='href'",
        "</pre><iframe srcdoc=\"<script>parent.__xss='iframe'</script>\"></iframe>",
    ];
    for (i, p) in payloads.iter().enumerate() {
        send(
            &server,
            &token,
            json!({
                "level": "error",
                "message": format!("Boom{i}Error: {p}"),
                "tags": [p],
                "host": p,
                "attributes": {"payload": p, "k": i},
            }),
        )
        .await;
    }
    // Pages that show the payloads.
    b.goto(&server.url("/logs?project=studio")).await;
    b.until(
        "log lines",
        "document.querySelectorAll('#loglines li').length >= 5",
    )
    .await;
    b.js("document.querySelectorAll('#loglines li .line').forEach(s => s.click()); return 1;")
        .await;
    b.until(
        "raw lines",
        "document.querySelectorAll('#loglines pre.raw').length >= 5",
    )
    .await;
    let text = b.text("#loglines").await;
    assert!(
        text.contains("<script>window.__xss='script'</script>"),
        "shown literally: {text}"
    );
    b.assert_no_xss("logs").await;
    b.shot("20-xss-logs").await;

    b.goto(&server.url("/issues?project=studio&status=")).await;
    b.until(
        "issues",
        "document.querySelectorAll('#issues-table a.issue-title').length === 5",
    )
    .await;
    b.assert_no_xss("issues").await;
    let first = b
        .js("return document.querySelector('#issues-table a.issue-title').getAttribute('href');")
        .await;
    b.goto(&server.url(first.as_str().unwrap())).await;
    b.until("issue", "document.querySelector('#event-message')")
        .await;
    b.assert_no_xss("issue").await;
    assert_eq!(
        b.js("return document.querySelectorAll('iframe, img[src=x], main script').length;")
            .await,
        json!(0)
    );
    b.goto(&server.url("/")).await;
    b.until("dashboard", "document.querySelector('#count-unresolved')")
        .await;
    b.assert_no_xss("dashboard").await;
    // After logging in, `next` only leads somewhere on this site.
    let nexts = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/ui/login.js').then(m => done([
               '?next=/%5Cevil.example/x', '?next=/%09/evil.example', '?next=https://evil.example/',
               '?next=javascript:alert(1)', '?next=/issues/3%3Fx%3D1%23h',
             ].map(q => m.safeNext(q))));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(nexts, json!(["/", "/", "/", "/", "/issues/3?x=1#h"]));
    let dark = b
        .js("return [matchMedia('(prefers-color-scheme: dark)').matches, getComputedStyle(document.body).backgroundColor];")
        .await;
    assert_eq!(
        dark,
        json!([true, "rgb(15, 17, 21)"]),
        "the dark theme follows the OS"
    );
    b.shot("21-xss-dashboard").await;
    b.client.clone().close().await.unwrap();
}

/// Every form control has an accessible name.
async fn assert_labelled(b: &Browser, page: &str) {
    let unlabelled = b
        .js("return [...document.querySelectorAll('input, select, textarea')].filter(e => e.type !== 'hidden' && !e.closest('label') && !e.getAttribute('aria-label') && !(e.id && document.querySelector(`label[for=\"${e.id}\"]`))).map(e => e.outerHTML);")
        .await;
    assert_eq!(unlabelled, json!([]), "unlabelled controls on {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_details_settings_alerts_and_deliveries() {
    // Deliveries fail fast so the dead-letter queue fills within the test.
    let server =
        Server::start_with_config("[alerts]\nretry_base = \"50ms\"\nmax_attempts = 1\n").await;
    let b = Browser::start().await;
    set_up_admin(&b, &server).await;
    assert_labelled(&b, "settings").await;
    // Projects and services are made here too.
    b.type_into("#project-form input[name=name]", "pipeline")
        .await;
    b.click("#project-form button[type=submit]").await;
    b.until(
        "project listed",
        "document.querySelector('#settings-body table').innerText.includes('pipeline')",
    )
    .await;
    b.type_into("#service-form input[name=service]", "farm")
        .await;
    b.select("#service-form select", "pipeline").await;
    b.click("#service-form button[type=submit]").await;
    b.until(
        "service listed",
        "document.querySelector('#settings-body table').innerText.includes('farm')",
    )
    .await;

    // An agent's incident: stack trace, context, environment, attachment.
    let tk = server.ingest_token("studio", "tk-maya");
    let log = "2026-11-22 06:39:58 [4242 INFO sgtk] loading shot\n<b>not bold</b>\n2026-11-22 06:40:00 [4242 ERROR sgtk] TankError: no such shot sh010\n";
    let incident = json!({
        "idempotency_key": "browser-1",
        "service": "tk-maya",
        "level": "error",
        "message": "Traceback (most recent call last):\n  File \"/opt/tk/core/engine.py\", line 88, in start\n    self._load()\n  File \"/usr/lib/python3/json/decoder.py\", line 130, in _load\n    raise TankError(\"no such shot %s\" % shot)\ntank.errors.TankError: no such shot sh010",
        "title": "alice - TankError",
        "fingerprint": "0123456789abcdef",
        "context": {"before": ["loading shot", "resolving paths"], "after": ["engine shut down"]},
        "environment": {"os": "Linux 6.1", "hostname": "ws-12", "user": "alice"},
        "tags": ["desktop"],
        "attachments": [{
            "name": "tk-maya.log",
            "content_type": "text/plain",
            "encoding": "identity",
            "size": log.len(),
            "data": base64::engine::general_purpose::STANDARD.encode(log),
        }],
    });
    let r = server
        .http
        .post(server.url("/api/v1/incidents"))
        .bearer_auth(&tk)
        .json(&incident)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    b.goto(&server.url("/issues?project=studio")).await;
    b.until(
        "issue row",
        "document.querySelector('#issues-table a.issue-title')",
    )
    .await;
    assert_labelled(&b, "issues").await;
    b.click("#issues-table a.issue-title").await;
    b.until("event", "document.querySelector('#event-context')")
        .await;
    assert!(b.text("#event-context").await.contains("resolving paths"));
    assert!(
        b.text("#event").await.contains("ws-12"),
        "environment table"
    );
    b.click("#attachments button").await;
    b.until(
        "preview",
        "document.querySelector('.attachment-preview')?.innerText.includes('<b>not bold</b>')",
    )
    .await;
    let href = b
        .js("return document.querySelector('#attachments a').getAttribute('href');")
        .await;
    let download = server
        .http
        .get(server.url(href.as_str().unwrap()))
        .bearer_auth(&server.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(download.text().await.unwrap(), log);
    b.shot("12-incident").await;

    // Settings → Alerts: a webhook channel whose receiver fails, a rule.
    let receiver = common::Receiver::start().await;
    receiver.answer(500);
    b.goto(&server.url("/settings#alerts")).await;
    b.until("channel form", "document.querySelector('#channel-form')")
        .await;
    assert_labelled(&b, "alerts").await;
    b.type_into("#channel-form input[name=name]", "hook").await;
    b.type_into("#channel-form input[name=url]", &receiver.url("/hook"))
        .await;
    b.click("#channel-form button[type=submit]").await;
    b.until(
        "channel listed",
        "document.querySelector('#channels')?.innerText.includes('hook')",
    )
    .await;
    b.type_into("#rule-form input[name=name]", "every new issue")
        .await;
    b.select("#s-condition", "new_issue").await;
    b.click("#rule-form button[type=submit]").await;
    b.until(
        "rule listed",
        "document.querySelector('#rules')?.innerText.includes('every new issue')",
    )
    .await;
    b.shot("13-settings-alerts").await;
    // A bad channel is refused with the server's reason.
    b.type_into("#channel-form input[name=name]", "broken")
        .await;
    b.type_into("#channel-form input[name=url]", "not a url")
        .await;
    b.click("#channel-form button[type=submit]").await;
    b.until(
        "channel error",
        "document.querySelector('#channel-form [role=alert]')",
    )
    .await;

    // A new issue fires the rule; the delivery fails and is dead-lettered.
    send(
        &server,
        &tk,
        json!({"level": "error", "message": "KeyError: 'frame_range'"}),
    )
    .await;
    b.goto(&server.url("/settings#deliveries")).await;
    b.until(
        "deliveries page",
        "document.querySelector('#s-delivery-status')",
    )
    .await;
    let dead = wait_until(WAIT, Duration::from_millis(200), async || {
        let r = server
            .get(
                "/api/v1/notifications",
                Some(&server.admin),
                &[("status", "dead")],
            )
            .await;
        r.json["notifications"]
            .as_array()
            .is_some_and(|n| !n.is_empty())
    })
    .await;
    assert!(dead, "the notification is dead-lettered");
    b.client.refresh().await.unwrap();
    b.until(
        "dead letter shown",
        "document.querySelector('#deliveries')?.innerText.includes('hook')",
    )
    .await;
    b.shot("14-settings-deliveries").await;
    // Retry sends it again (and it fails again).
    assert_eq!(receiver.received().len(), 1);
    b.click("#deliveries button").await;
    let retried = wait_until(WAIT, Duration::from_millis(100), async || {
        receiver.received().len() == 2
    })
    .await;
    assert!(retried, "retried from the UI");
    let dead_again = wait_until(WAIT, Duration::from_millis(100), async || {
        let r = server
            .get(
                "/api/v1/notifications",
                Some(&server.admin),
                &[("status", "dead")],
            )
            .await;
        r.json["notifications"]
            .as_array()
            .is_some_and(|n| n.len() == 1)
    })
    .await;
    assert!(dead_again);
    b.client.refresh().await.unwrap();
    b.until("dead letter again", "document.querySelector('#deliveries')")
        .await;
    b.click("#deliveries button.danger").await;
    b.until("discarded", "document.querySelector('#no-deliveries')")
        .await;

    // Tokens: revoke one (after confirming); it stops working.
    b.goto(&server.url("/settings#tokens")).await;
    b.until(
        "tokens",
        "document.querySelector('#tokens tbody tr button.danger')",
    )
    .await;
    let id = b
        .js("return [...document.querySelectorAll('#tokens tbody tr')].find(r => r.innerText.includes('tk-maya')).dataset.token;")
        .await;
    let row = format!("#tokens tr[data-token=\"{}\"]", id.as_str().unwrap());
    b.click(&format!("{row} button.danger")).await;
    b.client.accept_alert().await.unwrap();
    b.until(
        "revoked",
        &format!("document.querySelector('{row}')?.innerText.includes('revoked')"),
    )
    .await;
    let r = server
        .post_json(&tk, &json!({"message": "after revoke"}))
        .await;
    r.assert_error(401, "unauthorized");

    // Users: add one from the UI; they can log in.
    b.goto(&server.url("/settings#users")).await;
    b.until("user form", "document.querySelector('#user-form')")
        .await;
    b.type_into("#user-form input[name=username]", "bob").await;
    b.type_into("#user-form input[name=password]", "bob's password")
        .await;
    b.click("#user-form button[type=submit]").await;
    b.until(
        "bob listed",
        "document.querySelector('#users').innerText.includes('bob')",
    )
    .await;
    let login = server
        .http
        .post(server.url("/api/v1/session"))
        .json(&json!({"username": "bob", "password": "bob's password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    // History pagination: 100 lines per page, "Load older" for more.
    let render = server.ingest_token("studio", "render");
    let lines: Vec<Value> = (0..150)
        .map(|i| json!({"level": "info", "message": format!("bulk line {i:03}")}))
        .collect();
    send(&server, &render, Value::Array(lines)).await;
    b.goto(&server.url("/logs?project=studio&service=render&live=off"))
        .await;
    b.until(
        "first page",
        "document.querySelectorAll('#loglines li').length === 100",
    )
    .await;
    assert_labelled(&b, "logs").await;
    b.click("#older").await;
    b.until(
        "second page",
        "document.querySelectorAll('#loglines li').length === 150",
    )
    .await;
    assert!(b.text("#loglines").await.contains("bulk line 000"));
    b.client.clone().close().await.unwrap();
}

/// A browser opens at most six connections to one host, and a
/// notification stream holds one for as long as its page is open: the tabs
/// share one stream, so an eighth tab still loads, and every tab hears of a
/// new issue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tabs_load_and_share_one_notification_stream() {
    let server = Server::start_default().await;
    let b = Browser::start().await;
    eight_tabs(&b, &server, &server.url(""), true).await;
}

/// The same over plain HTTP to a host name (not localhost), where browsers
/// offer no Web Locks: each visible tab has a stream, hidden tabs let
/// theirs go, so the eighth tab still loads and hears of the new issue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tabs_over_plain_http_to_a_host_name_still_load() {
    let server = Server::start_default().await;
    let b = Browser::start_with(&["--host-resolver-rules=MAP faultline.test 127.0.0.1"]).await;
    let base = server.url("").replace("127.0.0.1", "faultline.test");
    eight_tabs(&b, &server, &base, false).await;
}

/// Opens the dashboard in eight tabs of `b` (the server at `base`, where
/// the browser offers Web Locks or not: `locks`), then sends an error:
/// every tab that keeps a stream hears of it.
async fn eight_tabs(b: &Browser, server: &Server, base: &str, locks: bool) {
    let token = server.ingest_token("studio", "render");
    send(server, &token, json!({"level": "info", "message": "hello"})).await;
    set_up_admin_at(b, server, base).await;
    let secure = b.js("return !!navigator.locks;").await == json!(true);
    assert_eq!(secure, locks, "Web Locks at {base}");
    let listen = "window.__heard = []; document.addEventListener('faultline:issue', (e) => window.__heard.push(e.detail.title)); return 1;";
    let mut tabs = vec![b.client.window().await.unwrap()];
    for i in 0..8 {
        if i > 0 {
            let w = b.client.new_window(true).await.unwrap();
            b.client.switch_to_window(w.handle.clone()).await.unwrap();
            tabs.push(w.handle);
        }
        b.goto(&format!("{base}/?project=studio")).await;
        b.until(
            &format!("dashboard in tab {}", i + 1),
            "document.querySelector('#count-unresolved')",
        )
        .await;
        b.js(listen).await;
    }
    send(
        server,
        &token,
        json!({"level": "error", "message": "QuotaExceeded: render farm quota used up"}),
    )
    .await;
    // With Web Locks every tab hears it (one stream, relayed); without,
    // the tab in front does (the others listen again when shown).
    let hearing = if secure { tabs.len() } else { 1 };
    for (i, tab) in tabs.iter().enumerate().rev().take(hearing) {
        b.client.switch_to_window(tab.clone()).await.unwrap();
        b.until(
            &format!("notice in tab {}", i + 1),
            "window.__heard.some((t) => t.includes('QuotaExceeded'))",
        )
        .await;
        let heard = b.js("return window.__heard.length;").await;
        assert_eq!(heard, json!(1), "tab {} heard the issue once", i + 1);
    }
    // A page that still loads with all of them open.
    b.goto(&format!("{base}/issues?project=studio")).await;
    b.until(
        "issue list in the last tab",
        "document.body.innerText.includes('QuotaExceeded')",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_lines_a_second_stay_in_a_capped_list() {
    let server = Server::start_default().await;
    let b = Browser::start().await;
    set_up_admin(&b, &server).await;
    let token = server.ingest_token("studio", "render");
    b.goto(&server.url("/logs?project=studio")).await;
    b.until(
        "live",
        "document.querySelector('#conn').dataset.state === 'live'",
    )
    .await;
    // Long main-thread tasks while the lines arrive, for the report.
    b.js("window.__long = []; new PerformanceObserver(l => l.getEntries().forEach(e => window.__long.push(e.duration))).observe({type: 'longtask', buffered: false}); return 1;").await;
    // 5 s at 1,000 lines/s, in 100-line batches every 100 ms.
    let start = std::time::Instant::now();
    for batch in 0..50u32 {
        let lines: Vec<Value> = (0..100)
            .map(|i| json!({"level": if i % 10 == 0 { "error" } else { "info" }, "message": format!("storm {batch:02}-{i:03} rendering frame")}))
            .collect();
        send(&server, &token, Value::Array(lines)).await;
        let due = start + Duration::from_millis(100 * u64::from(batch + 1));
        tokio::time::sleep_until(due.into()).await;
    }
    b.until(
        "last line",
        "document.querySelector('#loglines').innerText.includes('storm 49-099')",
    )
    .await;
    let rows = b
        .js("return document.querySelectorAll('#loglines li').length;")
        .await;
    let rows = rows.as_u64().unwrap();
    assert!(rows <= 1000, "the list is capped: {rows} rows");
    assert!(rows >= 900, "the newest lines are all there: {rows} rows");
    // Newest first, nothing lost among the kept lines.
    let ids = b.js("return [...document.querySelectorAll('#loglines li[data-id]')].map(li => Number(li.dataset.id));").await;
    let ids: Vec<u64> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids.len(), sorted.len(), "no line twice");
    let long = b.js("return window.__long;").await;
    let long: Vec<f64> = long
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let worst = long.iter().cloned().fold(0.0, f64::max);
    let frames = b.js("return window.__faultlineRenderMs;").await;
    let mut frames: Vec<f64> = frames
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    frames.sort_by(f64::total_cmp);
    let pct = |p: f64| frames[((frames.len() - 1) as f64 * p) as usize];
    eprintln!(
        "1,000 lines/s for 5 s: {rows} rows kept; {} render frames, ms per frame p50 {:.1} p99 {:.1} max {:.1}; {} long tasks (> 50 ms) on the main thread, longest {worst:.0} ms",
        frames.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        long.len()
    );
    // The page still answers at once.
    b.click("#pause").await;
    assert!(b.text("#pause").await.starts_with("Resume"));
    b.shot("15-logs-storm").await;
    b.client.clone().close().await.unwrap();
}
