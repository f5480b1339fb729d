//! `/api/v1/routes`: the routing table in force (each route's filters in the routes file's own
//! form and its subscribers), with the last reload's result; and the route tester, which says
//! for a pasted event which routes and subscribers it reaches and why.

use actix_web::{web, HttpResponse};

use super::api::time;
use super::AdminState;
use crate::ingress::problem::Problem;
use crate::ingress::structured;
use crate::routing;

/// `GET /api/v1/routes`.
pub(super) async fn table(state: web::Data<AdminState>) -> HttpResponse {
    let routes: Vec<serde_json::Value> = state
        .reloader
        .routes()
        .into_iter()
        .map(|route| {
            serde_json::json!({
                "name": route.name,
                "filter": route.filter,
                "to": route.to,
                "operational": route.operational,
            })
        })
        .collect();
    let reload = state.reloader.status().map(|status| {
        serde_json::json!({
            "at": time(status.at_ms),
            "ok": status.ok,
            "errors": status.errors,
        })
    });
    HttpResponse::Ok().json(serde_json::json!({
        "file": state.reloader.path().display().to_string(),
        "routes": routes,
        "last_reload": reload,
    }))
}

/// `POST /api/v1/routes/test`: the body is one event in the CloudEvents JSON format. Nothing is
/// stored or delivered.
pub(super) async fn test(state: web::Data<AdminState>, body: web::Bytes) -> HttpResponse {
    let event = match structured::parse_one(&body) {
        Ok(event) => event,
        Err(errors) => return Problem::invalid_event(errors).response(),
    };
    let (verdicts, reached) = routing::explain(&state.reloader.routes(), &event);
    HttpResponse::Ok().json(serde_json::json!({
        "routes": verdicts,
        "subscribers": reached,
    }))
}
