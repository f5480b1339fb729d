//! The dashboard end to end, in a real headless Chromium driven through chromedriver: sign in,
//! find the dead letters of a failing subscriber, replay them once it recovers and see them
//! delivered; pause and resume; the route tester; phone width; and no console errors.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test fails and says how to install them: it never passes without having looked.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::{event, wait_until, Reply, TestReceiver, TestRouter, DEADLINE};

const TOKEN: &str = "dashboard-admin-token-0123456789";
const INSTALL: &str = "the dashboard test needs Chromium and chromedriver: \
     `apt-get install chromium chromium-driver` (Debian), or run `.ci/run`, which installs them; \
     FANOUT_CHROMIUM and FANOUT_CHROMEDRIVER name other paths";

/// A program from an environment variable or the first of `paths` that exists.
fn program(variable: &str, paths: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    paths
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{INSTALL} (looked for {})", paths.join(", ")))
}

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_browser() -> (Driver, Client) {
    let chromedriver = program(
        "FANOUT_CHROMEDRIVER",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let chromium = program(
        "FANOUT_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "{INSTALL}: cannot start {}: {error}",
                chromedriver.display()
            )
        });
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: profile,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ready = http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()
            .filter(|response| response.status().is_success());
        if ready.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start: {INSTALL}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:loggingPrefs": { "browser": "ALL" },
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot start Chromium through chromedriver ({error}): {INSTALL}")
        });
    (driver, client)
}

/// Runs `script` (a function body that returns a value) until it returns `expected`.
async fn wait_for(client: &Client, what: &str, script: &str, expected: serde_json::Value) {
    let deadline = Instant::now() + DEADLINE;
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        match client.execute(script, Vec::new()).await {
            Ok(value) if value == expected => return,
            Ok(value) => last = value,
            Err(error) => last = serde_json::Value::String(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}: {script} gave {last}, not {expected}");
}

/// Clicks the element `css` once it is there.
async fn click(client: &Client, css: &str) {
    let element = client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css}: {error}"));
    element
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {css}: {error}"));
}

/// Clicks a dead-letter action, checks the dry run's confirmation and that it changed nothing
/// (`unchanged`), confirms, and waits for the result line.
async fn confirm_action(
    client: &Client,
    button: &str,
    confirmation: &str,
    unchanged: impl Fn() -> bool,
    result: &str,
) {
    click(client, button).await;
    wait_for(
        client,
        "the dry-run count",
        &text_of("#confirm-text"),
        confirmation.into(),
    )
    .await;
    assert!(unchanged(), "a dry run changes nothing");
    click(client, "#confirm-yes").await;
    wait_for(
        client,
        "the result",
        &text_of("#action-result"),
        result.into(),
    )
    .await;
}

/// Waits until the admin API reports erp in `state`.
async fn wait_for_state(router: &TestRouter, state: &str) {
    router
        .wait_admin("/api/v1/subscribers/erp", TOKEN, state, |subscriber| {
            subscriber["state"] == state
        })
        .await;
}

/// Text of the element `css`, or null.
fn text_of(css: &str) -> String {
    format!("const node = document.querySelector({css:?}); return node ? node.textContent : null;")
}

#[tokio::test]
async fn the_dashboard_finds_and_replays_dead_letters() {
    let healthy = Arc::new(AtomicBool::new(false));
    let answer = Arc::clone(&healthy);
    let erp = TestReceiver::scripted(move |_, _| {
        if answer.load(Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(503)
        }
    })
    .await;
    let crm = TestReceiver::start().await;
    let router = TestRouter::start(&format!(
        "
admin:
  token: {TOKEN}
  watch_interval: 0s
subscribers:
  erp: {{ url: '{}', retry: {{ initial_interval: 20ms, max_interval: 50ms, jitter: 0, max_attempts: 2 }} }}
  crm: {{ url: '{}' }}
routes:
  - name: orders
    filters: [{{ prefix: {{ type: com.example.shop.order. }} }}]
    to: [erp, crm]
",
        erp.url, crm.url
    ))
    .await;
    for id in ["o-1", "o-2", "o-3"] {
        let response = router
            .publish(event("com.example.shop.order.created", id))
            .await;
        assert_eq!(response.status(), 202);
    }
    crm.wait_for(3).await;
    let dead = |router: &TestRouter| router.store.dead_letter_count(router.id("erp"));
    wait_until("three dead letters", DEADLINE, || dead(&router) == 3).await;

    let (_driver, client) = start_browser().await;
    client.goto(&format!("{}/ui", router.admin)).await.unwrap();

    // Sign in: the token goes into session storage, never into the URL.
    let token = client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    token.send_keys(TOKEN).await.unwrap();
    click(&client, "#login-form button[type=submit]").await;

    // The overview: the failing subscriber stands out, first in the table.
    wait_for(
        &client,
        "erp flagged first",
        "const row = document.querySelector('#subscribers tbody tr'); \
         return row ? [row.dataset.subscriber, row.classList.contains('problem')] : null;",
        serde_json::json!(["erp", true]),
    )
    .await;
    wait_for(
        &client,
        "the chart",
        "return document.querySelector('#chart svg polyline') !== null",
        serde_json::json!(true),
    )
    .await;
    assert!(!client.current_url().await.unwrap().as_str().contains(TOKEN));

    // Dead letters of erp: three rows.
    click(&client, "nav a[data-nav=dead-letters]").await;
    client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#filter-subscriber"))
        .await
        .unwrap()
        .select_by_value("erp")
        .await
        .unwrap();
    click(&client, "#dead-letter-filters button[type=submit]").await;
    wait_for(
        &client,
        "three dead letters listed",
        // The page rendered for the new filter (not the one before it).
        "return document.querySelectorAll('section[data-query=\"subscriber=erp\"] #dead-letters tbody tr').length",
        serde_json::json!(3),
    )
    .await;

    // The subscriber recovers; select all matching, dry run, confirm.
    healthy.store(true, Ordering::SeqCst);
    let before = erp.count();
    click(&client, "#select-all-matching").await;
    confirm_action(
        &client,
        "#replay",
        "Replay 3 dead letters? They go back to their queues with a fresh retry budget, due now.",
        || dead(&router) == 3,
        "Replayed 3 dead letters.",
    )
    .await;
    erp.wait_for(before + 3).await;
    wait_until("no dead letters", DEADLINE, || dead(&router) == 0).await;
    wait_for(
        &client,
        "an empty list after the replay",
        "return document.querySelector('#no-dead-letters') !== null",
        serde_json::json!(true),
    )
    .await;

    // The event page shows the delivery as delivered, with its attempt timeline.
    client
        .goto(&format!(
            "{}/ui/#/event?source=%2Fshop%2Feu&id=o-2",
            router.admin
        ))
        .await
        .unwrap();
    wait_for(
        &client,
        "erp delivered on the event page",
        "const section = document.querySelector('section.delivery[data-subscriber=erp]'); \
         return section ? [section.querySelector('.badge').textContent, \
           section.querySelectorAll('.timeline li').length, \
           section.querySelectorAll('.timeline li.fail').length] : null;",
        serde_json::json!(["delivered", 3, 2]),
    )
    .await;
    wait_for(
        &client,
        "the pretty-printed data",
        &text_of("#data"),
        serde_json::json!("{\n  \"order\": \"o-2\",\n  \"total\": 42.5\n}"),
    )
    .await;

    // A new failure: select its row alone and purge it, after the dry run's confirmation.
    healthy.store(false, Ordering::SeqCst);
    router
        .publish(event("com.example.shop.order.created", "o-4"))
        .await;
    wait_until("a new dead letter", DEADLINE, || dead(&router) == 1).await;
    client
        .goto(&format!(
            "{}/ui/#/dead-letters?subscriber=erp",
            router.admin
        ))
        .await
        .unwrap();
    click(&client, "#dead-letters tbody input[type=checkbox]").await;
    wait_for(
        &client,
        "one row selected",
        &text_of("#selection"),
        serde_json::json!("1 selected"),
    )
    .await;
    confirm_action(
        &client,
        "#purge",
        "Purge 1 dead letter? They are deleted for good.",
        || dead(&router) == 1,
        "Purged 1 dead letter.",
    )
    .await;
    assert_eq!(dead(&router), 0);

    // Pause and resume from the subscriber page.
    client
        .goto(&format!("{}/ui/#/subscribers/erp", router.admin))
        .await
        .unwrap();
    click(&client, "#pause").await;
    wait_for_state(&router, "paused").await;
    click(&client, "#resume").await;
    wait_for_state(&router, "active").await;
    wait_for(
        &client,
        "the policy",
        "const policy = document.querySelector('#policy'); \
         return policy ? policy.textContent.includes('2 attempts, 20ms') : null;",
        serde_json::json!(true),
    )
    .await;

    // The route tester.
    click(&client, "nav a[data-nav=routes]").await;
    client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#route-tester button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &client,
        "the tester's answer",
        &text_of("#reached"),
        serde_json::json!("Reaches: erp, crm"),
    )
    .await;

    // Phone width: the page itself does not scroll sideways.
    client.set_window_size(390, 844).await.unwrap();
    click(&client, "nav a[data-nav=overview]").await;
    wait_for(
        &client,
        "the overview at phone width",
        "return document.querySelector('#subscribers') !== null \
         && document.documentElement.scrollWidth <= window.innerWidth",
        serde_json::json!(true),
    )
    .await;
    if let Some(path) = std::env::var_os("FANOUT_SCREENSHOT") {
        client.set_window_size(1280, 800).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await; // one refresh, for the picture only
        std::fs::write(path, client.screenshot().await.unwrap()).unwrap();
    }

    // No console errors on any page visited.
    let session = client.session_id().await.unwrap().unwrap();
    let logs: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/session/{session}/se/log", _driver.url))
        .json(&serde_json::json!({ "type": "browser" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let errors: Vec<&serde_json::Value> = logs["value"]
        .as_array()
        .expect("browser log entries")
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // An invalid file on disk: Reload shows every error and the table in force stays. (Last,
    // because the browser logs the expected 422 as a console error.)
    router.write_routes("subscribers:\n  erp: { url: 'not a url' }\nroutes: []\n");
    click(&client, "nav a[data-nav=routes]").await;
    click(&client, "#reload").await;
    wait_for(
        &client,
        "the reload errors",
        "const box = document.querySelector('#reload-status .error li'); \
         return box ? box.textContent.includes('subscribers.erp.url') : null;",
        serde_json::json!(true),
    )
    .await;
    wait_for(
        &client,
        "the old table",
        "return document.querySelectorAll('#routes tbody tr').length",
        serde_json::json!(1),
    )
    .await;
    client.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// What the dashboard reads, through plain HTTP.

fn api_routes(erp: &str, crm: &str) -> String {
    format!(
        "
admin:
  token: {TOKEN}
  watch_interval: 0s
subscribers:
  erp:
    url: '{erp}'
    secret: [whsec_ZXJwLWV4YW1wbGUtc2VjcmV0LWtleQ==, whsec_ZXJwLW5leHQtZXhhbXBsZS1zZWNyZXQ=]
    headers: {{ X-Api-Key: do-not-show-this }}
    concurrency: 3
    retry: {{ initial_interval: 20ms, max_interval: 50ms, jitter: 0, max_attempts: 2 }}
  crm: {{ url: '{crm}' }}
routes:
  - name: orders
    filters: [{{ prefix: {{ type: com.example.shop.order. }} }}, {{ not: {{ exact: {{ source: /test }} }} }}]
    to: [erp, crm]
  - name: everything
    to: [crm]
"
    )
}

#[tokio::test]
async fn the_dashboard_files_are_served_without_a_token_under_a_strict_policy() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&api_routes(&receiver.url, &receiver.url)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = client
        .get(format!("{}/ui", router.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/ui/");
    for (path, media, needle) in [
        ("/ui/", "text/html", "<script src=\"/ui/app.js\""),
        ("/ui/app.js", "text/javascript", "sessionStorage"),
        ("/ui/app.css", "text/css", ".panel"),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = client
            .get(format!("{}{path}", router.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(media),
            "{path}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"));
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    let auth: serde_json::Value = client
        .get(format!("{}/ui/auth", router.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(auth["token_required"], true);
    // The data behind the page still needs the token.
    let refused = client
        .get(format!("{}/api/v1/stats", router.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn a_subscriber_detail_shows_its_policy_and_last_attempts_but_no_secret() {
    let erp =
        TestReceiver::scripted(|index, _| Reply::status(if index == 0 { 503 } else { 200 })).await;
    let crm = TestReceiver::start().await;
    let router = TestRouter::start(&api_routes(&erp.url, &crm.url)).await;
    router
        .publish(event("com.example.shop.order.created", "d-1"))
        .await;
    erp.wait_for(2).await;
    let detail = router
        .wait_admin(
            "/api/v1/subscribers/erp",
            TOKEN,
            "two attempts listed",
            |detail| detail["recent_attempts"].as_array().unwrap().len() == 2,
        )
        .await;
    let policy = &detail["policy"];
    assert_eq!(policy["concurrency"], 3);
    assert_eq!(policy["signing_secrets"], 2);
    assert_eq!(policy["header_names"], serde_json::json!(["X-Api-Key"]));
    assert_eq!(policy["retry"]["max_attempts"], 2);
    assert_eq!(policy["retry"]["initial_interval"], "20ms");
    let text = detail.to_string();
    assert!(
        !text.contains("do-not-show-this") && !text.contains("whsec_"),
        "{text}"
    );
    let attempts = detail["recent_attempts"].as_array().unwrap();
    assert_eq!(
        (
            &attempts[0]["attempt"],
            &attempts[0]["ok"],
            &attempts[0]["status"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(true),
            &serde_json::json!(200)
        ),
        "newest first"
    );
    assert_eq!(attempts[1]["status"], 503);
    assert_eq!(attempts[1]["event_id"], "d-1");
    assert_eq!(attempts[1]["source"], "/shop/eu");
    assert_eq!(attempts[1]["type"], "com.example.shop.order.created");
    assert_eq!(attempts[1]["webhook_id"], attempts[0]["webhook_id"]);
    assert_eq!(detail["delivered_total"], 1);
    let missing = router
        .admin_request(
            reqwest::Method::GET,
            "/api/v1/subscribers/nobody",
            Some(TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn stats_give_totals_and_per_second_rates() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&api_routes(&receiver.url, &receiver.url)).await;
    for id in ["s-1", "s-2"] {
        router
            .publish(event("com.example.shop.order.created", id))
            .await;
    }
    receiver.wait_for(4).await;
    // The sampler reads the counters once a second; wait for a sample that saw the deliveries.
    let stats = router
        .wait_admin("/api/v1/stats", TOKEN, "a delivery rate", |stats| {
            assert_eq!(stats["totals"]["accepted"], 2);
            let delivered: f64 = stats["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|point| point["deliveries_out"].as_f64().unwrap())
                .sum();
            stats["totals"]["delivered"] == 4 && delivered > 0.0
        })
        .await;
    let at_ms = stats["at_ms"].as_u64().unwrap();
    assert!(stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .all(|point| point["at_ms"].as_u64().unwrap() <= at_ms));
}

#[tokio::test]
async fn routes_are_listed_and_the_tester_explains_each_verdict() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&api_routes(&receiver.url, &receiver.url)).await;
    let table = router.admin_get("/api/v1/routes", TOKEN).await;
    assert_eq!(table["routes"][0]["name"], "orders");
    assert_eq!(
        table["routes"][0]["filter"],
        serde_json::json!({ "all": [
            { "prefix": { "type": "com.example.shop.order." } },
            { "not": { "exact": { "source": "/test" } } },
        ]})
    );
    assert_eq!(table["routes"][1]["filter"], serde_json::Value::Null);
    assert_eq!(table["routes"][0]["to"], serde_json::json!(["erp", "crm"]));
    assert!(table["last_reload"].is_null());

    let mut test_event = event("com.example.shop.order.created", "t-1");
    test_event["source"] = "/test".into();
    let (status, answer) = router
        .admin_post("/api/v1/routes/test", TOKEN, test_event)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["subscribers"], serde_json::json!(["crm"]));
    assert_eq!(answer["routes"][0]["matched"], false);
    assert_eq!(
        answer["routes"][0]["reasons"],
        serde_json::json!([
            "✗ all",
            "  ✓ prefix type \"com.example.shop.order.\" (event has \"com.example.shop.order.created\")",
            "  ✗ not",
            "    ✓ exact source \"/test\" (event has \"/test\")",
        ])
    );
    assert_eq!(answer["routes"][1]["matched"], true);

    let (status, problem) = router
        .admin_post(
            "/api/v1/routes/test",
            TOKEN,
            serde_json::json!({ "specversion": "1.0", "id": "x", "source": "/s" }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["attribute"], "type", "{problem}");
    // Nothing was stored.
    let page = router.admin_get("/api/v1/events", TOKEN).await;
    assert_eq!(page["items"], serde_json::json!([]));

    // A failed reload shows up with its errors.
    router.write_routes("subscribers: [not, a, map]\n");
    let (status, _) = router
        .admin_post("/api/v1/reload", TOKEN, serde_json::Value::Null)
        .await;
    assert_eq!(status, 422);
    let table = router.admin_get("/api/v1/routes", TOKEN).await;
    assert_eq!(table["last_reload"]["ok"], false);
    assert!(table["last_reload"]["errors"][0]
        .as_str()
        .unwrap()
        .contains("routes.yaml"));
    assert_eq!(table["routes"][0]["name"], "orders", "the old table stays");
}

#[tokio::test]
async fn selected_dead_letters_are_purged_by_id_after_a_dry_run() {
    let erp = TestReceiver::scripted(|_, _| Reply::status(503)).await;
    let crm = TestReceiver::start().await;
    let router = TestRouter::start(&api_routes(&erp.url, &crm.url)).await;
    for id in ["p-1", "p-2"] {
        router
            .publish(event("com.example.shop.order.created", id))
            .await;
    }
    let erp_id = router.id("erp");
    wait_until("two dead letters", DEADLINE, || {
        router.store.dead_letter_count(erp_id) == 2
    })
    .await;
    let page = router
        .admin_get("/api/v1/dead-letters?subscriber=erp", TOKEN)
        .await;
    let chosen = page["items"][0]["webhook_id"].clone();
    let body = serde_json::json!({ "ids": [chosen], "dry_run": true });
    let (status, answer) = router
        .admin_post("/api/v1/dead-letters/purge", TOKEN, body)
        .await;
    assert_eq!((status, &answer["matched"]), (200, &serde_json::json!(1)));
    assert_eq!(router.store.dead_letter_count(erp_id), 2);
    let body = serde_json::json!({ "ids": [chosen] });
    let (status, answer) = router
        .admin_post("/api/v1/dead-letters/purge", TOKEN, body)
        .await;
    assert_eq!((status, &answer["done"]), (200, &serde_json::json!(1)));
    assert_eq!(router.store.dead_letter_count(erp_id), 1);
    let (status, problem) = router
        .admin_post(
            "/api/v1/dead-letters/purge",
            TOKEN,
            serde_json::json!({ "ids": ["nonsense"] }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().starts_with("ids:"));
}
