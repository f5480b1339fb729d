//! The archive: accepted events are retained for `storage.retention`. Search them by type,
//! source, subject and accept time, and replay a time range to a subscriber or a route.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::api::{json_answer, names, problem, store_error, time, time_range};
use super::AdminState;
use crate::ids::{EventSeq, SubscriberId};
use crate::store::{self, StoreError};

/// Log records looked at per search page (the answer's `next` continues from there).
const SEARCH_SCAN_LIMIT: usize = 100_000;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;
/// Log records looked at by one replay.
const REPLAY_SCAN_LIMIT: usize = 10_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    #[serde(rename = "type")]
    ty: Option<String>,
    /// A prefix of the type.
    type_prefix: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    /// Accepted at or after (RFC 3339).
    since: Option<String>,
    /// Accepted before (RFC 3339).
    until: Option<String>,
    limit: Option<usize>,
    /// The `next` of the previous page.
    after: Option<u64>,
}

pub async fn search(
    state: web::Data<AdminState>,
    query: Result<web::Query<SearchQuery>, actix_web::Error>,
) -> HttpResponse {
    let query = match query {
        Ok(query) => query.into_inner(),
        Err(error) => return problem(400, format!("query: {error}")),
    };
    let range = match time_range(query.since.as_deref(), query.until.as_deref()) {
        Ok(range) => range,
        Err(detail) => return problem(400, detail),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let state = state.into_inner();
    let result = web::block(move || -> Result<serde_json::Value, StoreError> {
        let names = names(&state);
        let (events, last) = state
            .store
            .scan_events(EventSeq(query.after.unwrap_or(0)), SEARCH_SCAN_LIMIT)?;
        let mut items = Vec::new();
        let mut next = last.map(|seq| seq.0);
        for stored in events {
            let event = &stored.event;
            let matches = query.ty.as_ref().is_none_or(|ty| *ty == event.ty)
                && query
                    .type_prefix
                    .as_ref()
                    .is_none_or(|prefix| event.ty.starts_with(prefix.as_str()))
                && query
                    .source
                    .as_ref()
                    .is_none_or(|source| *source == event.source)
                && query
                    .subject
                    .as_ref()
                    .is_none_or(|subject| event.subject.as_ref() == Some(subject))
                && (range.0..range.1).contains(&stored.accepted_at_ms);
            if !matches {
                continue;
            }
            if items.len() == limit {
                next = Some(stored.seq.0 - 1);
                break;
            }
            items.push(serde_json::json!({
                "seq": stored.seq.0,
                "id": event.id,
                "source": event.source,
                "type": event.ty,
                "subject": event.subject,
                "accepted_at": time(stored.accepted_at_ms),
                "subscribers": stored
                    .subscribers
                    .iter()
                    .map(|id| names.get(id).cloned().unwrap_or_else(|| format!("#{id}")))
                    .collect::<Vec<_>>(),
            }));
        }
        Ok(serde_json::json!({ "items": items, "next": next }))
    })
    .await;
    json_answer(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    since: String,
    until: String,
    /// Replay what this subscriber was sent...
    subscriber: Option<String>,
    /// ...or what this route (as it is now) matches, to its subscribers.
    route: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// Re-delivers retained events of a time range as new deliveries under their `webhook-id`.
pub async fn replay(
    state: web::Data<AdminState>,
    body: Result<web::Json<ReplayBody>, actix_web::Error>,
) -> HttpResponse {
    let body = match body {
        Ok(body) => body.into_inner(),
        Err(error) => return problem(400, format!("body: {error}")),
    };
    let range = match time_range(Some(&body.since), Some(&body.until)) {
        Ok(range) => range,
        Err(detail) => return problem(400, detail),
    };
    let target = match (&body.subscriber, &body.route) {
        (Some(name), None) => match state.dispatchers.control(name) {
            Some(control) => Target::Subscriber(control.id),
            None => return problem(400, format!("subscriber: no subscriber named {name:?}")),
        },
        (None, Some(route)) => {
            if !state.reloader.routing().has_route(route) {
                return problem(400, format!("route: no route named {route:?}"));
            }
            Target::Route(route.clone())
        }
        _ => return problem(400, "subscriber, route: give exactly one of them".into()),
    };
    let dry_run = body.dry_run;
    let state = state.into_inner();
    let result = web::block(move || replay_range(&state, &target, range, dry_run)).await;
    match result {
        Ok(Ok((matched, queued))) => HttpResponse::Ok().json(serde_json::json!({
            "dry_run": dry_run,
            "matched": matched,
            "queued": queued,
        })),
        Ok(Err(error)) => store_error(&error),
        Err(error) => problem(500, error.to_string()),
    }
}

enum Target {
    Subscriber(SubscriberId),
    Route(String),
}

/// (deliveries matched, deliveries queued).
fn replay_range(
    state: &AdminState,
    target: &Target,
    (since, until): (u64, u64),
    dry_run: bool,
) -> Result<(u64, u64), StoreError> {
    let routing = state.reloader.routing();
    let now = store::now_ms();
    let (mut matched, mut queued) = (0u64, 0u64);
    let mut after = EventSeq(0);
    let mut looked = 0usize;
    while looked < REPLAY_SCAN_LIMIT {
        let (events, last) = state.store.scan_events(after, 10_000)?;
        let Some(last) = last else { break };
        looked += events.len();
        after = last;
        for stored in events {
            if !(since..until).contains(&stored.accepted_at_ms) {
                continue;
            }
            let subscribers = match target {
                Target::Subscriber(id) => {
                    if stored.subscribers.contains(id) {
                        vec![*id]
                    } else {
                        Vec::new()
                    }
                }
                Target::Route(name) => routing
                    .route_subscribers(name, &stored.event)
                    .unwrap_or_default(),
            };
            for subscriber in subscribers {
                matched += 1;
                if !dry_run && state.store.requeue(subscriber, stored.seq, now)? {
                    queued += 1;
                }
            }
        }
    }
    if !dry_run {
        state.store.flush()?;
        state.dispatchers.wake_all();
    }
    Ok((matched, queued))
}
