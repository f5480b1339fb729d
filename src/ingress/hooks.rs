//! `POST /hooks/{name}`: native webhooks from senders that do not speak CloudEvents. The request
//! is verified over its raw body bytes (see [`verify`]); a verified one becomes a CloudEvent
//! (`type` and `id` from a header or the body, the configured `source`) that is checked, routed,
//! deduplicated and stored like any published event. A request that is not verified gets a 401
//! that says no more than that, is counted, and stores nothing.

pub mod verify;

use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::config::sources::Field;
use crate::config::SourceConfig;
use crate::event::{self, AttrValue, Data, Event};
use crate::metrics::Metrics;

use super::problem::{FieldError, Problem};
use super::IngressState;

pub async fn receive(
    request: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
    state: web::Data<IngressState>,
) -> HttpResponse {
    let name = name.into_inner();
    let (label, result) = match handle(&request, &name, payload, &state).await {
        Ok(receipt) => ("accepted", Ok(receipt)),
        Err((label, problem)) => (label, Err(problem)),
    };
    // Only configured names are counted, so a scan of /hooks/* cannot grow the metrics.
    if label != UNKNOWN {
        state.metrics.count_hook(&name, label);
    }
    match result {
        Ok(receipt) => {
            receipt.count(&state.metrics);
            HttpResponse::Accepted().json(receipt)
        }
        Err(problem) => {
            if problem.status >= 500 {
                tracing::error!(source = %name, status = problem.status, detail = %problem.detail, "Webhook not stored.");
            } else {
                tracing::debug!(source = %name, status = problem.status, reason = label, detail = %problem.detail, "Webhook refused.");
            }
            problem.response()
        }
    }
}

type Refusal = (&'static str, Problem);

/// The outcome of a request to a source name that is not configured (never counted).
const UNKNOWN: &str = "unknown";

async fn handle(
    request: &HttpRequest,
    name: &str,
    payload: web::Payload,
    state: &IngressState,
) -> Result<super::Receipt, Refusal> {
    let invalid = |problem: Problem| ("invalid", problem);
    super::admission::check_headers(request.headers(), &state.limits).map_err(invalid)?;
    let admission = state.admission.load();
    let Some(source) = admission.sources.get(name).cloned() else {
        return Err((
            UNKNOWN,
            Problem::simple(
                "urn:fanout:problem:not-found",
                "Not found",
                404,
                format!("no webhook source named {name:?}"),
            ),
        ));
    };
    let body = super::read_body(request, payload, state.max_body_size)
        .await
        .map_err(invalid)?;
    let header = |wanted: &str| -> Option<String> {
        request
            .headers()
            .get(wanted)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let now = chrono::Utc::now();
    verify::verify(
        &source.verification,
        &source.secrets,
        &header,
        &body,
        now.timestamp(),
    )
    .map_err(|rejection| {
        (
            rejection.label(),
            Problem::unauthorized("the webhook signature could not be verified".into(), None),
        )
    })?;
    Metrics::add(&state.metrics.events_received, 1);
    let content_type = header("content-type");
    let event = to_event(&source, &header, content_type.as_deref(), &body, now)
        .map_err(|errors| invalid(Problem::invalid_event(errors)))?;
    let events = vec![event];
    admission.check(None, &events, false).map_err(invalid)?;
    super::store_events(events, state)
        .await
        .map_err(|problem| ("unavailable", problem))
}

/// Builds the CloudEvent of a verified request.
///
/// # Errors
/// An attribute's header or JSON pointer is missing, or the result breaks a CloudEvents rule.
pub fn to_event(
    source: &SourceConfig,
    header: &dyn Fn(&str) -> Option<String>,
    content_type: Option<&str>,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Event, Vec<FieldError>> {
    let json = content_type.is_none_or(event::is_json_media_type);
    let document: Option<serde_json::Value> = if json {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    let mut errors = Vec::new();
    let mut read = |attribute: &str, field: &Field, required: bool| -> Option<String> {
        let value = match field {
            Field::Header(name) => header(name),
            Field::Pointer(pointer) => document
                .as_ref()
                .and_then(|document| document.pointer(pointer))
                .and_then(|value| match value {
                    serde_json::Value::String(text) => Some(text.clone()),
                    serde_json::Value::Number(number) => Some(number.to_string()),
                    _ => None,
                }),
            Field::Value(value) => Some(value.clone()),
            Field::BodyHash => Some(
                Sha256::digest(body)
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect(),
            ),
        };
        let value = value.filter(|value| !value.is_empty());
        if value.is_none() && required {
            errors.push(FieldError {
                attribute: attribute.to_owned(),
                index: None,
                pointer: None,
                detail: match field {
                    Field::Header(name) => format!("the request has no {name} header"),
                    Field::Pointer(pointer) => {
                        format!("the JSON body has no string or number at {pointer:?}")
                    }
                    Field::Value(_) | Field::BodyHash => "is empty".into(),
                },
            });
        }
        value
    };
    let ty = read("type", &source.ty, true).map(|ty| match source.ty {
        Field::Value(_) => ty,
        _ => format!("{}{ty}", source.type_prefix),
    });
    let id = read("id", &source.id, true);
    let subject = source
        .subject
        .as_ref()
        .and_then(|field| read("subject", field, false));
    if !errors.is_empty() {
        return Err(errors);
    }
    let string = |value: String| AttrValue::String(value);
    let mut attributes = vec![
        ("specversion".to_owned(), string(event::SPEC_VERSION.into())),
        ("id".to_owned(), string(id.unwrap_or_default())),
        ("source".to_owned(), string(source.source.clone())),
        ("type".to_owned(), string(ty.unwrap_or_default())),
        (
            "time".to_owned(),
            string(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ),
    ];
    if let Some(subject) = subject {
        attributes.push(("subject".to_owned(), string(subject)));
    }
    let data = match (&document, body.is_empty()) {
        (_, true) => None,
        (Some(_), false) => Some(Data::Json(body.to_vec())),
        (None, false) => Some(Data::Binary(body.to_vec())),
    };
    if data.is_some() {
        let media_type = match (&document, content_type) {
            (_, Some(content_type)) => content_type.to_owned(),
            (Some(_), None) => "application/json".to_owned(),
            (None, None) => "application/octet-stream".to_owned(),
        };
        attributes.push(("datacontenttype".to_owned(), string(media_type)));
    }
    Event::from_attributes(attributes, data).map_err(|errors| {
        errors
            .into_iter()
            .map(|error| FieldError {
                attribute: error.attribute,
                index: None,
                pointer: None,
                detail: error.detail,
            })
            .collect()
    })
}
