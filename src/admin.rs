//! The operator side, on its own listener (`admin.listen`, loopback by default) so the public
//! ingest port never exposes it: the JSON API under `/api/v1`, Prometheus `/metrics`, and
//! `/healthz` and `/readyz`, and the dashboard at `/ui`. Everything but the health checks and the
//! dashboard's static files needs `Authorization: Bearer <admin.token>` when a token is
//! configured, compared in constant time (the dashboard sends it from its login form).
//!
//! The handlers only translate HTTP to calls on the store, the dispatchers' controls and the
//! reloader; they never bypass the store's API.

mod api;
mod archive;
pub mod openapi;
mod prometheus;
mod routes;
pub mod stats;
mod subscribers;
mod ui;

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};
use tokio_util::sync::CancellationToken;

use crate::config::TokenDigest;
use crate::delivery::Dispatchers;
use crate::ingress::problem::Problem;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::store::Store;

pub use api::Jobs;

/// What the admin handlers share.
pub struct AdminState {
    pub store: Store,
    pub dispatchers: Arc<Dispatchers>,
    pub reloader: Arc<Reloader>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the token: comparing digests takes the same time whatever the input length.
    pub token_digest: Option<TokenDigest>,
    pub shutdown: CancellationToken,
    pub jobs: Jobs,
    /// The last minutes of counters, for the dashboard's chart.
    pub sampler: Arc<stats::Sampler>,
}

impl AdminState {
    pub fn token_digest(token: Option<&str>) -> Option<TokenDigest> {
        token.map(TokenDigest::of)
    }
}

/// Registers the admin routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/healthz").route(web::get().to(health)))
        .service(web::resource("/readyz").route(web::get().to(ready)))
        .configure(ui::configure)
        .service(
            web::scope("")
                .wrap(from_fn(authorize))
                .service(web::resource("/metrics").route(web::get().to(prometheus::metrics)))
                .configure(api::configure),
        );
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready: the store is open (it is, while this process serves), the config is loaded, and
/// shutdown has not begun.
async fn ready(state: web::Data<AdminState>) -> HttpResponse {
    readiness(&state.shutdown)
}

/// The `/readyz` answer for both listeners.
pub fn readiness(shutdown: &CancellationToken) -> HttpResponse {
    if shutdown.is_cancelled() {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "shutting down" }))
    } else {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    }
}

async fn authorize(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let expected = request
        .app_data::<web::Data<AdminState>>()
        .and_then(|state| state.token_digest);
    if let Some(expected) = expected {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| TokenDigest::of(token.trim()));
        let matches = given.is_some_and(|given| given.matches(&expected));
        if !matches {
            let problem = Problem::simple(
                "urn:fanout:problem:unauthorized",
                "Unauthorized",
                401,
                "a valid admin token is required: Authorization: Bearer <admin.token>".into(),
            );
            let mut response = problem.response();
            response.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
            let (request, _) = request.into_parts();
            return Ok(ServiceResponse::new(
                request,
                response.map_into_boxed_body(),
            ));
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}
