//! The HTTP front door: `POST /events` in the three CloudEvents HTTP modes, answered `202` only
//! once the events and their deliveries are durable, or with an `application/problem+json` body
//! that names what was wrong.

pub mod admission;
pub mod binary;
pub mod hooks;
pub mod problem;
pub mod structured;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use arc_swap::ArcSwap;
use futures_util::StreamExt;
use serde::Serialize;

use crate::config::Limits;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use crate::store::{self, Accepted, NewEvent, Store};

use admission::Admission;
use problem::Problem;

/// Media types of the CloudEvents JSON format.
pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// What the ingress handlers share.
pub struct IngressState {
    pub routing: Arc<ArcSwap<RoutingTable>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// API keys, inbound webhook sources and schemas; swapped on reload.
    pub admission: Arc<ArcSwap<Admission>>,
    pub max_body_size: usize,
    pub limits: Limits,
    /// Fired when shutdown begins (`/readyz` answers 503 from then on).
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Registers the ingress routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/events").route(web::post().to(publish)))
        .service(web::resource("/hooks/{name}").route(web::post().to(hooks::receive)))
        .service(web::resource("/healthz").route(web::get().to(health)))
        .service(web::resource("/readyz").route(web::get().to(ready)))
        .default_service(web::to(not_found));
}

/// The `202` body.
#[derive(Debug, Default, Serialize)]
pub struct Receipt {
    /// Events newly stored.
    pub accepted: usize,
    /// Events already accepted within the dedupe window.
    pub duplicates: usize,
    /// Stored events that matched no route.
    pub unrouted: usize,
    /// Deliveries queued in all.
    pub deliveries: usize,
}

impl Receipt {
    /// Adds what happened to the ingest counters.
    fn count(&self, metrics: &Metrics) {
        Metrics::add(&metrics.events_accepted, self.accepted as u64);
        Metrics::add(&metrics.events_duplicate, self.duplicates as u64);
        Metrics::add(&metrics.events_unrouted, self.unrouted as u64);
    }
}

enum Format {
    Binary,
    Structured,
    Batch,
}

async fn publish(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<IngressState>,
) -> HttpResponse {
    let metrics = &state.metrics;
    let result = accept(&request, payload, &state).await;
    match result {
        Ok(receipt) => {
            receipt.count(metrics);
            HttpResponse::Accepted().json(receipt)
        }
        Err(problem) => {
            Metrics::add(&metrics.events_rejected, 1);
            Metrics::add(
                &metrics.events_rejected_by_reason[crate::metrics::reject_reason(problem.kind)],
                1,
            );
            if problem.status >= 500 {
                tracing::error!(status = problem.status, detail = %problem.detail, "Ingest failed.");
            } else {
                tracing::debug!(status = problem.status, detail = %problem.detail, "Ingest rejected.");
            }
            problem.response()
        }
    }
}

async fn accept(
    request: &HttpRequest,
    payload: web::Payload,
    state: &IngressState,
) -> Result<Receipt, Problem> {
    admission::check_headers(request.headers(), &state.limits)?;
    let admission = state.admission.load();
    let publisher = admission.publisher(request.headers())?;
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .map(|value| value.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| {
            Problem::unsupported_media_type("the Content-Type header is not valid ASCII".into())
        })?;
    let format = detect(request, content_type.as_deref())?;
    let body = read_body(request, payload, state.max_body_size).await?;
    let events: Vec<Event> = match format {
        Format::Binary => vec![
            binary::parse(request.headers(), content_type.as_deref(), &body)
                .map_err(Problem::invalid_event)?,
        ],
        Format::Structured => vec![structured::parse_one(&body).map_err(Problem::invalid_event)?],
        Format::Batch => structured::parse_batch(&body, state.limits.max_batch_events)
            .map_err(Problem::invalid_event)?,
    };
    Metrics::add(&state.metrics.events_received, events.len() as u64);
    admission.check(publisher, &events, matches!(format, Format::Batch))?;
    store_events(events, state).await
}

/// Routes validated events and stores them: the one way into the store for `/events` and
/// `/hooks/{name}`.
async fn store_events(events: Vec<Event>, state: &IngressState) -> Result<Receipt, Problem> {
    if events.is_empty() {
        return Ok(Receipt::default());
    }
    let routing = state.routing.load();
    let new_events: Vec<NewEvent> = events
        .into_iter()
        .map(|event| NewEvent {
            subscribers: routing.subscribers_for(&event),
            event,
        })
        .collect();
    let outcomes = state
        .store
        .accept_relayed(
            new_events,
            store::now_ms(),
            Some(store::Relay::this_thread()),
        )
        .await
        .map_err(|error| match error {
            store::StoreError::Full { .. } => Problem {
                retry_after: Some(30),
                ..Problem::unavailable(format!("the event was not accepted: {error}"))
            },
            error => Problem::unavailable(format!("the event could not be stored: {error}")),
        })?;
    let mut receipt = Receipt::default();
    for outcome in outcomes {
        match outcome {
            Accepted::Stored { subscribers, .. } => {
                receipt.accepted += 1;
                receipt.deliveries += subscribers;
                if subscribers == 0 {
                    receipt.unrouted += 1;
                }
            }
            Accepted::Duplicate { .. } => receipt.duplicates += 1,
        }
    }
    Ok(receipt)
}

fn detect(request: &HttpRequest, content_type: Option<&str>) -> Result<Format, Problem> {
    let essence = content_type.map(|value| {
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some(STRUCTURED) => Ok(Format::Structured),
        Some(BATCH) => Ok(Format::Batch),
        Some(other) if other.starts_with("application/cloudevents") => Err(Problem::unsupported_media_type(format!(
            "event format {other} is not supported; use {STRUCTURED}, {BATCH} or binary mode"
        ))),
        _ if request.headers().keys().any(|name| name.as_str().starts_with("ce-")) => Ok(Format::Binary),
        _ => Err(Problem::unsupported_media_type(format!(
            "not a CloudEvent: send binary mode (ce-* headers) or a body of type {STRUCTURED} or {BATCH} (got {})",
            content_type.unwrap_or("no Content-Type")
        ))),
    }
}

/// Reads the whole body, refusing more than `limit` bytes.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, Problem> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(Problem::too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            Problem::simple(
                "urn:fanout:problem:bad-body",
                "Unreadable body",
                400,
                format!("the request body could not be read: {error}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Problem::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    Problem::not_found(request.path()).response()
}

async fn ready(state: web::Data<IngressState>) -> HttpResponse {
    crate::admin::readiness(&state.shutdown)
}
