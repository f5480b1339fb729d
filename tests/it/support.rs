//! Test harness: `TestRouter` runs fanout in-process on port 0 with a temp store; `TestReceiver`
//! is a real HTTP server that records what it gets and answers as scripted.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use fanout::app::{self, Running};
use fanout::ids::SubscriberId;
use fanout::store::Store;

/// How long a test waits for a condition before failing.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Waits until `condition` holds, polling, failing the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An HTTP client for the tests (reqwest is built without a bundled crypto provider).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// fanout running in this process.
pub struct TestRouter {
    pub url: String,
    /// Base URL of the admin listener.
    pub admin: String,
    pub client: reqwest::Client,
    running: Option<Running>,
    shutdown: ShutdownOnDrop,
    pub store: Store,
    pub metrics: Arc<fanout::metrics::Metrics>,
    pub subscribers: HashMap<String, SubscriberId>,
    pub dir: tempfile::TempDir,
}

impl TestRouter {
    /// Starts fanout with this routes file (server.listen and data_dir are set by the harness).
    pub async fn start(yaml: &str) -> TestRouter {
        let dir = tempfile::tempdir().unwrap();
        TestRouter::start_in(yaml, dir).await
    }

    /// Starts fanout on an existing data directory. The routes file is written to
    /// `routes.yaml` in it, so that reloads read it from there.
    pub async fn start_in(yaml: &str, dir: tempfile::TempDir) -> TestRouter {
        let env = |_: &str| None;
        let path = dir.path().join("routes.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut config =
            fanout::config::parse(yaml, &path, &env).unwrap_or_else(|errors| panic!("{errors}"));
        config.server.data_dir = dir.path().join("data");
        // The test receivers are on loopback, which the SSRF guard refuses by default; a test
        // that writes its own `outbound` section gets exactly that.
        if !yaml.contains("outbound:") {
            config
                .outbound
                .allow_networks
                .push("127.0.0.0/8".parse().unwrap());
        }
        config.server.workers = Some(1);
        config.server.shutdown_grace = Duration::from_secs(2);
        let listeners = app::Listeners {
            ingest: TcpListener::bind("127.0.0.1:0").unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").unwrap(),
        };
        let shutdown = CancellationToken::new();
        let running = app::start(config, listeners, shutdown.clone())
            .await
            .unwrap();
        TestRouter {
            url: format!("http://{}", running.addr),
            admin: format!("http://{}", running.admin_addr),
            client: client(),
            store: running.store.clone(),
            metrics: Arc::clone(&running.metrics),
            subscribers: running.subscribers.clone(),
            running: Some(running),
            shutdown: ShutdownOnDrop(shutdown),
            dir,
        }
    }

    /// The router's reloader (for its counters and status).
    pub fn reloader(&self) -> Arc<fanout::reload::Reloader> {
        Arc::clone(&self.running.as_ref().expect("running").reloader)
    }

    /// Replaces the routes file (a reload picks it up).
    pub fn write_routes(&self, yaml: &str) {
        std::fs::write(self.dir.path().join("routes.yaml"), yaml).unwrap();
    }

    /// An admin API request with the given bearer token.
    pub fn admin_request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.admin));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GET on the admin API with `token`, expecting 200 and JSON.
    pub async fn admin_get(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self
            .admin_request(reqwest::Method::GET, path, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Polls GET `path` on the admin API until its JSON satisfies `condition`, failing the test
    /// after [`DEADLINE`] with `what` and the last answer.
    pub async fn wait_admin(
        &self,
        path: &str,
        token: &str,
        what: &str,
        condition: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.admin_get(path, token).await;
            if condition(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: GET {path} gave {value}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// DELETE on the admin API with `token`: (status, JSON body).
    pub async fn admin_delete(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .admin_request(reqwest::Method::DELETE, path, Some(token))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// POST of JSON on the admin API with `token`: (status, JSON body).
    pub async fn admin_post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .admin_request(reqwest::Method::POST, path, Some(token))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// POST `/api/v1/subscribers/{name}/{action}` (`pause`, `resume`): (status, JSON body).
    pub async fn subscriber_action(
        &self,
        token: &str,
        name: &str,
        action: &str,
    ) -> (u16, serde_json::Value) {
        self.admin_post(
            &format!("/api/v1/subscribers/{name}/{action}"),
            token,
            serde_json::Value::Null,
        )
        .await
    }

    pub fn id(&self, name: &str) -> SubscriberId {
        self.subscribers[name]
    }

    /// POSTs a body with a content type to /events.
    pub async fn post(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.post_with_key(None, content_type, body).await
    }

    /// POSTs a body with a content type to /events, with a publisher key when given.
    pub async fn post_with_key(
        &self,
        key: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let request = self
            .client
            .post(format!("{}/events", self.url))
            .header("content-type", content_type)
            .body(body);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
        .send()
        .await
        .unwrap()
    }

    /// POSTs events in batched mode, accepted together.
    pub async fn publish_batch(&self, events: Vec<serde_json::Value>) -> reqwest::Response {
        self.post(
            "application/cloudevents-batch+json",
            serde_json::Value::Array(events).to_string(),
        )
        .await
    }

    /// The Prometheus text of the admin listener's `/metrics`.
    pub async fn metrics(&self, token: &str) -> String {
        self.admin_request(reqwest::Method::GET, "/metrics", Some(token))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POSTs one structured-mode event.
    pub async fn publish(&self, event: serde_json::Value) -> reqwest::Response {
        self.post("application/cloudevents+json", event.to_string())
            .await
    }

    /// POSTs a binary-mode event.
    pub async fn publish_binary(
        &self,
        headers: &[(&str, &str)],
        body: &'static [u8],
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/events", self.url)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Stops it the way SIGTERM does and waits for the shutdown to complete.
    pub async fn stop(self) -> tempfile::TempDir {
        let TestRouter {
            running,
            shutdown,
            store,
            dir,
            ..
        } = self;
        shutdown.0.cancel();
        if let Some(running) = running {
            running.wait().await.unwrap();
        }
        drop(store);
        dir
    }
}

/// Cancels a router's shutdown token when the test drops it.
struct ShutdownOnDrop(CancellationToken);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A minimal valid structured event.
pub fn event(ty: &str, id: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/shop/eu",
        "type": ty,
        "datacontenttype": "application/json",
        "data": { "order": id, "total": 42.5 }
    })
}

/// What the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query of the request.
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The CloudEvent id, in binary or structured mode.
    pub fn event_id(&self) -> String {
        match self.header("ce-id") {
            Some(id) => id.to_owned(),
            None => serde_json::from_slice::<serde_json::Value>(&self.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }
}

/// How the receiver answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body (default: `answered <status>`).
    pub body: Option<String>,
    /// Never answer (the request hangs until the client gives up).
    pub hang: bool,
    /// Answer after this long.
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            hang: false,
            delay: None,
        }
    }
    pub fn ok() -> Reply {
        Reply::status(200)
    }
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::ok()
        }
    }
    /// A JSON body.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            body: Some(body.to_string()),
            ..Reply::status(status).with_header("content-type", "application/json")
        }
    }
    /// The same answer, after `delay`.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Script = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

struct ReceiverState {
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// A subscriber: a real HTTP server on 127.0.0.1.
pub struct TestReceiver {
    pub url: String,
    state: Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

impl TestReceiver {
    /// A receiver that answers 200.
    pub async fn start() -> TestReceiver {
        TestReceiver::scripted(|_, _| Reply::ok()).await
    }

    /// A receiver whose answer to the n-th request (0-based) is `script(n, request)`.
    pub async fn scripted(
        script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> TestReceiver {
        TestReceiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), script).await
    }

    /// The same on a given listener (to bring a subscriber up on a known port).
    pub async fn on(
        listener: TcpListener,
        script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> TestReceiver {
        let state = Arc::new(ReceiverState {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(Arc::new(script)),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        });
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let shared = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        TestReceiver { url, state, handle }
    }

    /// Replaces the script.
    pub fn answer(&self, script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) {
        *self.state.script.lock().unwrap() = Arc::new(script);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The most requests that were being answered at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Waits until at least `count` requests have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        wait_until(
            &format!("{count} requests at {}", self.url),
            DEADLINE,
            || self.count() >= count,
        )
        .await;
        self.received()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Counts a request out of `in_flight` however its handler ends (a hung one when the client
/// gives up).
struct Answered<'a>(&'a AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let received = Received {
        method: request.method().to_string(),
        path: request.uri().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or("<binary>").to_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    let index = {
        let mut all = state.received.lock().unwrap();
        all.push(received.clone());
        all.len() - 1
    };
    let script = Arc::clone(&state.script.lock().unwrap());
    let reply = script(index, &received);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    let _answered = Answered(&state.in_flight);
    if reply.hang {
        std::future::pending::<()>().await;
    }
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in reply.headers {
        response.insert_header((name, value));
    }
    let body = reply
        .body
        .unwrap_or_else(|| format!("answered {}", reply.status));
    response.body(body)
}

/// Verifies a Standard Webhooks signature from the spec, independently of fanout's signer:
/// HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the base64-decoded secret,
/// matched against any `v1,` entry of the space-separated header.
pub fn verify_signature(secret: &str, received: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let (Some(id), Some(timestamp), Some(header)) = (
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        received.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&received.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}
