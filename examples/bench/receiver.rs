//! The embedded test receiver: a real HTTP server that verifies every signature, records each
//! delivery's `webhook-id`, and measures ingest-to-receiver latency from the event's `benchsent`
//! extension (nanoseconds since the Unix epoch, set by the load generator).
//!
//! Paths say how to answer: `/ok/N` 200 at once, `/slow/N` after 2 s, `/fail/N` 500, `/hang/N`
//! never, `/stall/N` never until [`Receiver::release`], then 200. `/b3/N` is B3's: answered as
//! `/ok/N` is, with the same work, and counted apart so that a B3 measured between a router's
//! runs leaves their counts alone.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

pub const SECRET: &str = "whsec_YmVuY2htYXJrLXNlY3JldC1rZXktZm9yLWZhbm91dA==";

pub struct State {
    key: Vec<u8>,
    /// Unique webhook-ids of successful (`/ok`, `/slow`, released `/stall`) deliveries.
    pub delivered: Mutex<HashSet<String>>,
    /// Every successful request, duplicates included.
    pub requests: AtomicU64,
    /// B3's `delivered` and `requests`: never read, kept so that a B3 request costs the receiver
    /// what a delivery does.
    b3_delivered: Mutex<HashSet<String>>,
    b3_requests: AtomicU64,
    pub bad_signatures: AtomicU64,
    /// Successful requests to `/ok` paths (the healthy subscribers of the isolation scenario).
    pub ok_requests: AtomicU64,
    pub first_delivery_ns: AtomicU64,
    pub latency: Mutex<Histogram<u64>>,
    released: AtomicBool,
    release: Notify,
}

pub struct Receiver {
    pub base: String,
    pub state: Arc<State>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let key = base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let state = Arc::new(State {
            key,
            delivered: Mutex::new(HashSet::new()),
            requests: AtomicU64::new(0),
            b3_delivered: Mutex::new(HashSet::new()),
            b3_requests: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            ok_requests: AtomicU64::new(0),
            first_delivery_ns: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new_with_bounds(1_000, 600_000_000_000, 3).unwrap()),
            released: AtomicBool::new(false),
            release: Notify::new(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/{kind}/{subscriber}", web::post().to(receive))
        })
        .workers(1)
        .backlog(4096)
        .max_connections(100_000)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Receiver { base, state }
    }

    /// Forgets what was received (between runs).
    pub fn reset(&self) {
        self.state.delivered.lock().unwrap().clear();
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.b3_delivered.lock().unwrap().clear();
        self.state.b3_requests.store(0, Ordering::SeqCst);
        self.state.first_delivery_ns.store(0, Ordering::SeqCst);
        self.state.ok_requests.store(0, Ordering::SeqCst);
        self.state.latency.lock().unwrap().reset();
    }

    pub fn unique(&self) -> u64 {
        self.state.delivered.lock().unwrap().len() as u64
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn ok_requests(&self) -> u64 {
        self.state.ok_requests.load(Ordering::SeqCst)
    }

    pub fn first_delivery_ns(&self) -> u64 {
        self.state.first_delivery_ns.load(Ordering::SeqCst)
    }

    /// Connections open to the receiver now (established TCP sockets on its port, from
    /// `/proc/net/tcp`): the router's connection pool.
    pub fn connections(&self) -> usize {
        let port = self
            .base
            .rsplit(':')
            .next()
            .unwrap_or("0")
            .parse::<u16>()
            .unwrap_or(0);
        let local = format!(":{port:04X}");
        std::fs::read_to_string("/proc/net/tcp").map_or(0, |table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    // Fields: slot, local address, remote address, state (01: established).
                    let mut fields = line.split_whitespace().skip(1);
                    let address = fields.next().unwrap_or("");
                    address.ends_with(&local) && fields.nth(1) == Some("01")
                })
                .count()
        })
    }

    pub fn bad_signatures(&self) -> u64 {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// Lets `/stall` requests (held and future) answer 200.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
        self.state.release.notify_waiters();
    }

    pub fn stall(&self) {
        self.state.released.store(false, Ordering::SeqCst);
    }

    pub fn latency(&self) -> Histogram<u64> {
        self.state.latency.lock().unwrap().clone()
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn receive(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (kind, _) = path.into_inner();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    };
    let webhook_id = header("webhook-id").to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.key).unwrap();
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if !header("webhook-signature")
        .split(' ')
        .any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()))
    {
        state.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::Unauthorized().finish();
    }
    match kind.as_str() {
        "fail" => return HttpResponse::InternalServerError().finish(),
        "hang" => std::future::pending::<()>().await,
        "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        "stall" => {
            while !state.released.load(Ordering::SeqCst) {
                let notified = state.release.notified();
                if state.released.load(Ordering::SeqCst) {
                    break;
                }
                notified.await;
            }
        }
        _ => {}
    }
    let now = now_ns();
    if kind != "slow" {
        // Latency of the healthy paths only: `/slow` adds its own 2 s on purpose.
        if let Ok(sent) = header("ce-benchsent").parse::<u64>() {
            let _ = state
                .latency
                .lock()
                .unwrap()
                .record(now.saturating_sub(sent).max(1_000));
        }
    }
    if kind == "b3" {
        state.b3_requests.fetch_add(1, Ordering::Relaxed);
        state.b3_delivered.lock().unwrap().insert(webhook_id);
        return HttpResponse::Ok().finish();
    }
    if kind == "ok" {
        state.ok_requests.fetch_add(1, Ordering::Relaxed);
    }
    let _ = state
        .first_delivery_ns
        .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.delivered.lock().unwrap().insert(webhook_id);
    HttpResponse::Ok().finish()
}
