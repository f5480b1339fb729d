//! `/api/v1/subscribers`: the list with live state and statistics, one subscriber's detail (its
//! policy and last attempts, for the dashboard), pause and resume.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::api::{problem, store_error, time, PENDING_SCAN_LIMIT};
use super::AdminState;
use crate::config::{Mode, SubscriberConfig};
use crate::delivery::Control;
use crate::store::{self, Store, StoreError};

#[derive(Serialize)]
struct SubscriberView {
    name: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    url: String,
    /// Deliveries not attempted yet plus deliveries waiting for a retry.
    pending: u64,
    /// False when the log was too long to count to the end (`pending` is then a lower bound).
    pending_exact: bool,
    retrying: u64,
    in_flight: usize,
    /// Attempts that may be in flight now (adaptive concurrency moves it up to `concurrency`).
    concurrency_limit: usize,
    dead_letters: u64,
    delivered_total: u64,
    failed_attempts_total: u64,
    dead_lettered_total: u64,
    recent: crate::delivery::control::Recent,
    last_error: Option<LastErrorView>,
    next_retry_at: Option<String>,
    /// The circuit breaker: `closed`, `open` or `half_open`.
    circuit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit_open_until: Option<String>,
    /// Since when every attempt failed (what `disable_after` measures).
    failing_since: Option<String>,
    /// The webhook validation handshake: `granted`, `refused: ...` (absent: not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake: Option<String>,
}

#[derive(Serialize)]
struct LastErrorView {
    at: String,
    status: Option<u16>,
    error: String,
}

fn view(store: &Store, control: &Control) -> Result<SubscriberView, StoreError> {
    let pending = store.pending(control.id, PENDING_SCAN_LIMIT)?;
    let next_retry = control.next_retry_ms.load(Ordering::Relaxed);
    Ok(SubscriberView {
        name: control.name.clone(),
        state: control.state(),
        disabled_reason: control.disabled(),
        url: control.config().url.to_string(),
        pending: pending.fresh + pending.retries,
        pending_exact: pending.exact,
        retrying: pending.retries,
        in_flight: control.in_flight.load(Ordering::Relaxed),
        concurrency_limit: control.concurrency_limit.load(Ordering::Relaxed),
        dead_letters: store.dead_letter_count(control.id),
        delivered_total: control.delivered.load(Ordering::Relaxed),
        failed_attempts_total: control.failed_attempts.load(Ordering::Relaxed),
        dead_lettered_total: control.dead_lettered.load(Ordering::Relaxed),
        recent: control.recent(store::now_ms()),
        last_error: control.last_error().map(|last| LastErrorView {
            at: time(last.at_ms),
            status: last.status,
            error: last.error,
        }),
        next_retry_at: (next_retry != 0 && pending.retries > 0).then(|| time(next_retry)),
        circuit: control.circuit().name(),
        circuit_open_until: match control.circuit() {
            crate::delivery::breaker::State::Open { until_ms } => Some(time(until_ms)),
            _ => None,
        },
        failing_since: match control.failing_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(time(since)),
        },
        handshake: control.handshake(),
    })
}

pub(super) async fn list(state: web::Data<AdminState>) -> HttpResponse {
    let state = state.into_inner();
    let result = web::block(move || {
        state
            .dispatchers
            .controls()
            .iter()
            .map(|control| view(&state.store, control))
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    match result {
        Ok(Ok(views)) => HttpResponse::Ok().json(serde_json::json!({ "subscribers": views })),
        Ok(Err(error)) => store_error(&error),
        Err(error) => problem(500, error.to_string()),
    }
}

pub(super) async fn pause(state: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    let Some(control) = state.dispatchers.control(&name) else {
        return problem(404, format!("no subscriber named {name:?}"));
    };
    if let Err(error) = state.store.set_paused(control.id, true) {
        return store_error(&error);
    }
    control.set_paused(true);
    tracing::info!(subscriber = %control.name, "Subscriber paused by an operator.");
    HttpResponse::Ok().json(serde_json::json!({ "name": control.name, "state": control.state() }))
}

/// Resumes a paused subscriber, and re-enables one disabled (after a 410).
pub(super) async fn resume(state: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    let Some(control) = state.dispatchers.control(&name) else {
        return problem(404, format!("no subscriber named {name:?}"));
    };
    if let Err(error) = state
        .store
        .set_paused(control.id, false)
        .and_then(|()| state.store.set_disabled(control.id, None))
        .and_then(|()| state.store.set_failing_since(control.id, None))
    {
        return store_error(&error);
    }
    // A re-enabled subscriber starts a new failing streak for `disable_after`.
    control.failing_since_ms.store(0, Ordering::Relaxed);
    control.set_disabled(None);
    control.set_paused(false);
    tracing::info!(subscriber = %control.name, "Subscriber resumed by an operator.");
    HttpResponse::Ok().json(serde_json::json!({ "name": control.name, "state": control.state() }))
}

/// A subscriber's delivery policy as operators read it: secrets are counted, never shown, and
/// only the names of static headers are listed (their values may be credentials).
fn policy(config: &SubscriberConfig) -> serde_json::Value {
    let retry = &config.retry;
    let mut retry_on: Vec<String> = retry.retry_on.codes.iter().map(u16::to_string).collect();
    retry_on.extend(
        retry
            .retry_on
            .classes
            .iter()
            .map(|class| format!("{class}xx")),
    );
    serde_json::json!({
        "mode": match config.mode { Mode::Binary => "binary", Mode::Structured => "structured" },
        "timeout": humantime::format_duration(config.timeout).to_string(),
        "concurrency": config.concurrency,
        "adaptive_concurrency": config.adaptive_concurrency,
        "signing_secrets": config.secrets.len(),
        "rate_limit": config.rate_limit.map(|limit| serde_json::json!({
            "per_second": limit.per_second,
            "burst": limit.burst,
        })),
        "circuit_breaker": config.circuit_breaker.map(|breaker| serde_json::json!({
            "failures": breaker.failures,
            "failure_rate": breaker.failure_rate,
            "window": humantime::format_duration(breaker.window).to_string(),
            "min_requests": breaker.min_requests,
            "open_for": humantime::format_duration(breaker.open_for).to_string(),
        })),
        "disable_after": config.disable_after.map(|after| humantime::format_duration(after).to_string()),
        "ordering": config.ordering,
        "batch": config.batch.map(|batch| serde_json::json!({
            "max_events": batch.max_events,
            "max_wait": humantime::format_duration(batch.max_wait).to_string(),
        })),
        // The method only: credentials are never shown.
        "auth": config.auth.as_ref().map(|auth| match auth {
            crate::config::ReceiverAuth::Bearer { query: true, .. } => "bearer (access_token query)",
            crate::config::ReceiverAuth::Bearer { .. } => "bearer",
            crate::config::ReceiverAuth::Basic { .. } => "basic",
            crate::config::ReceiverAuth::OAuth2 { .. } => "oauth2 client credentials",
        }),
        "client_certificate": config.tls.as_ref().is_some_and(|tls| tls.identity_pem.is_some()),
        "header_names": config.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        "retry": {
            "max_attempts": retry.max_attempts,
            "initial_interval": humantime::format_duration(retry.initial_interval).to_string(),
            "multiplier": retry.multiplier,
            "max_interval": humantime::format_duration(retry.max_interval).to_string(),
            "jitter": retry.jitter,
            "max_age": humantime::format_duration(retry.max_age).to_string(),
            "retry_on": retry_on,
        },
    })
}

/// One subscriber: everything of the list, its policy, and its last attempts (newest first).
pub(super) async fn detail(state: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    let Some(control) = state.dispatchers.control(&name) else {
        return problem(404, format!("no subscriber named {name:?}"));
    };
    let state = state.into_inner();
    let result = web::block(move || view(&state.store, &control).map(|view| (view, control))).await;
    match result {
        Ok(Ok((view, control))) => {
            let attempts: Vec<serde_json::Value> = control
                .attempt_log()
                .into_iter()
                .map(|attempt| {
                    serde_json::json!({
                        "at": time(attempt.at_ms),
                        "event_id": attempt.event.id,
                        "source": attempt.event.source,
                        "type": attempt.event.event_type,
                        "webhook_id": crate::ids::webhook_id(attempt.seq, control.id),
                        "attempt": attempt.attempt,
                        "status": attempt.status,
                        "latency_ms": attempt.latency_us as f64 / 1000.0,
                        "ok": attempt.ok,
                        "error": attempt.error,
                    })
                })
                .collect();
            let mut body = serde_json::to_value(view).unwrap_or_default();
            body["policy"] = policy(&control.config());
            body["recent_attempts"] = attempts.into();
            HttpResponse::Ok().json(body)
        }
        Ok(Err(error)) => store_error(&error),
        Err(error) => problem(500, error.to_string()),
    }
}
