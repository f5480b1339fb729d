//! `/api/v1`: registers every operation (subscribers, stats and routes live in their own files)
//! and serves the rest: events (with every delivery and attempt), dead letters (list, replay,
//! purge; with filters, pagination and dry runs), background jobs, and reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::openapi::OPERATIONS;
use super::AdminState;
use crate::ids::{parse_webhook_id, webhook_id, EventSeq, SubscriberId};
use crate::ingress::problem::Problem;
use crate::store::{self, DeadLetter, DeliveryState, Store, StoreError};

/// Log records looked at when counting a subscriber's pending deliveries.
pub const PENDING_SCAN_LIMIT: usize = 100_000;
/// Log records looked at when an event is no longer in the dedupe index.
const FIND_SCAN_LIMIT: usize = 1_000_000;
/// Replays and purges larger than this run in the background.
const INLINE_LIMIT: usize = 1_000;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// Registers every operation of [`OPERATIONS`] (the OpenAPI document is generated from the same
/// table), grouped by path so that a wrong method gets 405.
pub fn configure(config: &mut web::ServiceConfig) {
    let mut paths: Vec<&str> = Vec::new();
    for operation in OPERATIONS {
        if !paths.contains(&operation.path) {
            paths.push(operation.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path);
        for operation in OPERATIONS.iter().filter(|operation| operation.path == path) {
            resource = resource.route(route(operation.method, operation.path));
        }
        config.service(resource);
    }
    config.default_service(web::to(not_found));
}

/// The handler of one documented operation.
fn route(method: &str, path: &str) -> actix_web::Route {
    match (method, path) {
        ("get", "/api/v1/openapi.json") => web::get().to(openapi),
        ("get", "/api/v1/subscribers") => web::get().to(super::subscribers::list),
        ("get", "/api/v1/subscribers/{name}") => web::get().to(super::subscribers::detail),
        ("post", "/api/v1/subscribers/{name}/pause") => web::post().to(super::subscribers::pause),
        ("post", "/api/v1/subscribers/{name}/resume") => web::post().to(super::subscribers::resume),
        ("get", "/api/v1/stats") => web::get().to(super::stats::stats),
        ("get", "/api/v1/routes") => web::get().to(super::routes::table),
        ("post", "/api/v1/routes/test") => web::post().to(super::routes::test),
        ("get", "/api/v1/events") => web::get().to(super::archive::search),
        ("get", "/api/v1/events/{id}") => web::get().to(event),
        ("post", "/api/v1/replay") => web::post().to(super::archive::replay),
        ("get", "/api/v1/dead-letters") => web::get().to(dead_letters),
        ("delete", "/api/v1/dead-letters") => web::delete().to(purge_dead_letters),
        ("post", "/api/v1/dead-letters/replay") => web::post().to(replay_dead_letters),
        ("post", "/api/v1/dead-letters/purge") => web::post().to(purge_selected_dead_letters),
        ("get", "/api/v1/jobs/{id}") => web::get().to(job),
        ("get", "/api/v1/reload") => web::get().to(reload_status),
        ("post", "/api/v1/reload") => web::post().to(reload),
        // A documented operation without a handler: caught by the unit test below.
        _ => web::route().to(not_found),
    }
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

pub(super) fn problem(status: u16, detail: String) -> HttpResponse {
    let (kind, title) = match status {
        400 => ("urn:fanout:problem:bad-request", "Bad request"),
        404 => ("urn:fanout:problem:not-found", "Not found"),
        422 => ("urn:fanout:problem:invalid-config", "Invalid configuration"),
        _ => ("urn:fanout:problem:internal", "Internal error"),
    };
    Problem::simple(kind, title, status, detail).response()
}

/// The answer of a store job run with `web::block`: its JSON, or a problem.
pub(super) fn json_answer(
    result: Result<Result<serde_json::Value, StoreError>, actix_web::error::BlockingError>,
) -> HttpResponse {
    match result {
        Ok(Ok(value)) => HttpResponse::Ok().json(value),
        Ok(Err(error)) => store_error(&error),
        Err(error) => problem(500, error.to_string()),
    }
}

pub(super) fn store_error(error: &StoreError) -> HttpResponse {
    tracing::error!(error = %error, "Admin request failed in the store.");
    problem(500, format!("the store failed: {error}"))
}

async fn not_found(request: actix_web::HttpRequest) -> HttpResponse {
    problem(
        404,
        format!(
            "no admin endpoint at {} {}",
            request.method(),
            request.path()
        ),
    )
}

/// RFC 3339 with milliseconds, UTC.
pub(super) fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `since` and `until` (RFC 3339) as a half-open range of milliseconds; open ends when absent.
pub(super) fn time_range(since: Option<&str>, until: Option<&str>) -> Result<(u64, u64), String> {
    Ok((
        since
            .map(|text| parse_time("since", text))
            .transpose()?
            .unwrap_or(0),
        until
            .map(|text| parse_time("until", text))
            .transpose()?
            .unwrap_or(u64::MAX),
    ))
}

fn parse_time(field: &str, text: &str) -> Result<u64, String> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(store::millis)
        .ok_or_else(|| {
            format!("{field}: {text:?} is not an RFC 3339 time like 2026-11-24T10:00:00Z")
        })
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    source: String,
}

async fn event(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    query: Result<web::Query<EventQuery>, actix_web::Error>,
) -> HttpResponse {
    let Ok(query) = query else {
        return problem(
            400,
            "source: required query parameter (an event is identified by source and id)".into(),
        );
    };
    let (id, source) = (id.into_inner(), query.into_inner().source);
    let state = state.into_inner();
    let result = web::block(move || event_view(&state, &source, &id)).await;
    match result {
        Ok(Ok(Some(view))) => HttpResponse::Ok().json(view),
        Ok(Ok(None)) => problem(404, "no retained event with this source and id".into()),
        Ok(Err(error)) => store_error(&error),
        Err(error) => problem(500, error.to_string()),
    }
}

fn event_view(
    state: &AdminState,
    source: &str,
    id: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(stored) = state.store.find_event(source, id, FIND_SCAN_LIMIT)? else {
        return Ok(None);
    };
    let names = names(state);
    let mut deliveries = Vec::new();
    for subscriber in &stored.subscribers {
        let delivery_state = state.store.delivery_state(*subscriber, stored.seq)?;
        let attempts: Vec<serde_json::Value> = state
            .store
            .attempts(*subscriber, stored.seq)?
            .into_iter()
            .enumerate()
            .map(|(index, attempt)| {
                serde_json::json!({
                    "number": index + 1,
                    "at": time(attempt.at_ms),
                    "status": attempt.status,
                    "latency_ms": attempt.latency_us as f64 / 1000.0,
                    "error": attempt.error,
                    "response_excerpt": attempt.response_excerpt,
                    "response_headers": attempt
                        .response_headers
                        .iter()
                        .map(|(name, value)| (name.clone(), serde_json::Value::from(value.clone())))
                        .collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        let mut delivery = serde_json::json!({
            "subscriber": names.get(subscriber).cloned().unwrap_or_else(|| format!("#{subscriber}")),
            "webhook_id": webhook_id(stored.seq, *subscriber),
            "attempts": attempts,
        });
        let fields = delivery.as_object_mut().expect("an object");
        match delivery_state {
            DeliveryState::Pending => {
                fields.insert("state".into(), "pending".into());
            }
            DeliveryState::Delivered => {
                fields.insert("state".into(), "delivered".into());
            }
            DeliveryState::Retrying(retry) => {
                fields.insert("state".into(), "retrying".into());
                fields.insert("next_attempt_at".into(), time(retry.next_attempt_ms).into());
                fields.insert("last_error".into(), retry.last_error.into());
            }
            DeliveryState::Dead(letter) => {
                fields.insert("state".into(), "dead".into());
                fields.insert("reason".into(), letter.reason.into());
                fields.insert("dead_at".into(), time(letter.dead_at_ms).into());
            }
        }
        deliveries.push(delivery);
    }
    let event: serde_json::Value = serde_json::from_slice(&stored.event.to_structured_json())
        .unwrap_or(serde_json::Value::Null);
    Ok(Some(serde_json::json!({
        "seq": stored.seq.0,
        "accepted_at": time(stored.accepted_at_ms),
        "event": event,
        "deliveries": deliveries,
    })))
}

pub(super) fn names(state: &AdminState) -> HashMap<SubscriberId, String> {
    state
        .dispatchers
        .controls()
        .iter()
        .map(|control| (control.id, control.name.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Dead letters

/// Filters shared by listing, replaying and purging dead letters.
#[derive(Debug, Default)]
struct Filter {
    subscriber: Option<String>,
    /// Dead at or after (RFC 3339).
    since: Option<String>,
    /// Dead before (RFC 3339).
    until: Option<String>,
    /// Last HTTP status.
    status: Option<u16>,
    /// A substring of the reason.
    reason: Option<String>,
}

/// A compiled [`Filter`].
struct Matcher {
    subscriber: Option<SubscriberId>,
    since: u64,
    until: u64,
    status: Option<u16>,
    reason: Option<String>,
}

impl Matcher {
    /// # Errors
    /// What is wrong with the filter, naming the field.
    fn new(filter: &Filter, state: &AdminState) -> Result<Matcher, String> {
        let subscriber = match &filter.subscriber {
            Some(name) => Some(
                state
                    .dispatchers
                    .control(name)
                    .map(|control| control.id)
                    .ok_or_else(|| format!("subscriber: no subscriber named {name:?}"))?,
            ),
            None => None,
        };
        let (since, until) = time_range(filter.since.as_deref(), filter.until.as_deref())?;
        Ok(Matcher {
            subscriber,
            since,
            until,
            status: filter.status,
            reason: filter.reason.clone(),
        })
    }

    fn matches(&self, subscriber: SubscriberId, letter: &DeadLetter) -> bool {
        self.subscriber.is_none_or(|wanted| wanted == subscriber)
            && letter.dead_at_ms >= self.since
            && letter.dead_at_ms < self.until
            && self
                .status
                .is_none_or(|status| letter.last_status == Some(status))
            && self
                .reason
                .as_ref()
                .is_none_or(|reason| letter.reason.contains(reason.as_str()))
    }

    /// The (subscriber, seq) of every matching dead letter.
    fn select(&self, store: &Store) -> Result<Vec<(SubscriberId, EventSeq)>, StoreError> {
        let mut found = Vec::new();
        for entry in store.scan_dead_letters(None) {
            let (subscriber, seq, letter) = entry?;
            if self.matches(subscriber, &letter) {
                found.push((subscriber, seq));
            }
        }
        Ok(found)
    }
}

/// Query strings are flat (no `flatten`: serde_urlencoded cannot type flattened numbers).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    subscriber: Option<String>,
    since: Option<String>,
    until: Option<String>,
    status: Option<u16>,
    reason: Option<String>,
    limit: Option<usize>,
    /// The `next` of the previous page.
    after: Option<String>,
}

fn letter_view(
    names: &HashMap<SubscriberId, String>,
    subscriber: SubscriberId,
    seq: EventSeq,
    letter: &DeadLetter,
) -> serde_json::Value {
    serde_json::json!({
        "webhook_id": webhook_id(seq, subscriber),
        "subscriber": names.get(&subscriber).cloned().unwrap_or_else(|| format!("#{subscriber}")),
        "event": {
            "id": letter.event.id,
            "source": letter.event.source,
            "type": letter.event.ty,
            "subject": letter.event.attribute("subject"),
        },
        "reason": letter.reason,
        "last_status": letter.last_status,
        "attempts": letter.attempts,
        "first_attempt_at": time(letter.first_attempt_ms),
        "dead_at": time(letter.dead_at_ms),
    })
}

async fn dead_letters(
    state: web::Data<AdminState>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
) -> HttpResponse {
    let query = match query {
        Ok(query) => query.into_inner(),
        Err(error) => return problem(400, format!("query: {error}")),
    };
    let filter = Filter {
        subscriber: query.subscriber.clone(),
        since: query.since.clone(),
        until: query.until.clone(),
        status: query.status,
        reason: query.reason.clone(),
    };
    let matcher = match Matcher::new(&filter, &state) {
        Ok(matcher) => matcher,
        Err(detail) => return problem(400, detail),
    };
    let after = match query.after.as_deref().map(parse_webhook_id) {
        Some(None) => return problem(400, "after: not a cursor from a previous page".into()),
        Some(Some((seq, subscriber))) => Some((subscriber, seq)),
        None => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let state = state.into_inner();
    let result = web::block(move || -> Result<serde_json::Value, StoreError> {
        let names = names(&state);
        let mut items = Vec::new();
        let mut next = None;
        for entry in state.store.scan_dead_letters(after) {
            let (subscriber, seq, letter) = entry?;
            if !matcher.matches(subscriber, &letter) {
                continue;
            }
            if items.len() == limit {
                next = items.last().and_then(|item: &serde_json::Value| {
                    item["webhook_id"].as_str().map(str::to_owned)
                });
                break;
            }
            items.push(letter_view(&names, subscriber, seq, &letter));
        }
        Ok(serde_json::json!({ "items": items, "next": next }))
    })
    .await;
    json_answer(result)
}

/// The body of a replay, or of a purge by POST: filters and/or explicit ids.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    subscriber: Option<String>,
    since: Option<String>,
    until: Option<String>,
    status: Option<u16>,
    reason: Option<String>,
    /// Explicit deliveries by `webhook-id` (with the filters, both must hold).
    ids: Option<Vec<String>>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeQuery {
    subscriber: Option<String>,
    since: Option<String>,
    until: Option<String>,
    status: Option<u16>,
    reason: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Clone, Copy)]
enum Action {
    Replay,
    Purge,
}

async fn replay_dead_letters(
    state: web::Data<AdminState>,
    body: Result<web::Json<ActionBody>, actix_web::Error>,
) -> HttpResponse {
    body_action(state, body, Action::Replay).await
}

/// Purge by a JSON body: the same filters and `ids` as a replay (the dashboard's selection).
async fn purge_selected_dead_letters(
    state: web::Data<AdminState>,
    body: Result<web::Json<ActionBody>, actix_web::Error>,
) -> HttpResponse {
    body_action(state, body, Action::Purge).await
}

async fn body_action(
    state: web::Data<AdminState>,
    body: Result<web::Json<ActionBody>, actix_web::Error>,
    action: Action,
) -> HttpResponse {
    let body = match body {
        Ok(body) => body.into_inner(),
        Err(error) => return problem(400, format!("body: {error}")),
    };
    let ids = match body.ids.as_ref() {
        Some(ids) => {
            let mut parsed = Vec::new();
            for id in ids {
                match parse_webhook_id(id) {
                    Some((seq, subscriber)) => parsed.push((subscriber, seq)),
                    None => {
                        return problem(
                            400,
                            format!(
                            "ids: {id:?} is not a webhook-id of fanout (msg_<seq>_<subscriber>)"
                        ),
                        )
                    }
                }
            }
            Some(parsed)
        }
        None => None,
    };
    let filter = Filter {
        subscriber: body.subscriber,
        since: body.since,
        until: body.until,
        status: body.status,
        reason: body.reason,
    };
    run_action(state, &filter, ids, body.dry_run, action).await
}

async fn purge_dead_letters(
    state: web::Data<AdminState>,
    query: Result<web::Query<PurgeQuery>, actix_web::Error>,
) -> HttpResponse {
    let query = match query {
        Ok(query) => query.into_inner(),
        Err(error) => return problem(400, format!("query: {error}")),
    };
    let filter = Filter {
        subscriber: query.subscriber,
        since: query.since,
        until: query.until,
        status: query.status,
        reason: query.reason,
    };
    run_action(state, &filter, None, query.dry_run, Action::Purge).await
}

async fn run_action(
    state: web::Data<AdminState>,
    filter: &Filter,
    ids: Option<Vec<(SubscriberId, EventSeq)>>,
    dry_run: bool,
    action: Action,
) -> HttpResponse {
    let matcher = match Matcher::new(filter, &state) {
        Ok(matcher) => matcher,
        Err(detail) => return problem(400, detail),
    };
    let state = state.into_inner();
    let selecting = Arc::clone(&state);
    let selected = web::block(
        move || -> Result<Vec<(SubscriberId, EventSeq)>, StoreError> {
            let mut selected = matcher.select(&selecting.store)?;
            if let Some(ids) = ids {
                selected.retain(|delivery| ids.contains(delivery));
            }
            Ok(selected)
        },
    )
    .await;
    let selected = match selected {
        Ok(Ok(selected)) => selected,
        Ok(Err(error)) => return store_error(&error),
        Err(error) => return problem(500, error.to_string()),
    };
    let verb = match action {
        Action::Replay => "replay",
        Action::Purge => "purge",
    };
    if dry_run {
        return HttpResponse::Ok().json(
            serde_json::json!({ "dry_run": true, "action": verb, "matched": selected.len() }),
        );
    }
    let total = selected.len();
    // Only a background job is registered (and reported under /api/v1/jobs).
    let job = if total <= INLINE_LIMIT {
        Arc::new(Job::new(0, verb, total as u64))
    } else {
        state.jobs.create(verb, total as u64)
    };
    let worker_state = Arc::clone(&state);
    let worker_job = Arc::clone(&job);
    let work = move || apply_action(&worker_state, &selected, action, &worker_job);
    if total <= INLINE_LIMIT {
        match web::block(work).await {
            Ok(Ok(done)) => HttpResponse::Ok().json(serde_json::json!({ "dry_run": false, "action": verb, "matched": total, "done": done })),
            Ok(Err(error)) => store_error(&error),
            Err(error) => problem(500, error.to_string()),
        }
    } else {
        let job_id = job.id;
        tokio::task::spawn_blocking(move || {
            if let Err(error) = work() {
                tracing::error!(error = %error, "Background dead-letter job failed.");
                *job.error.lock().expect("lock") = Some(error.to_string());
                job.finished.store(true, Ordering::SeqCst);
            }
        });
        HttpResponse::Accepted().json(serde_json::json!({
            "dry_run": false,
            "action": verb,
            "matched": total,
            "job": format!("/api/v1/jobs/{job_id}"),
        }))
    }
}

fn apply_action(
    state: &AdminState,
    selected: &[(SubscriberId, EventSeq)],
    action: Action,
    job: &Job,
) -> Result<u64, StoreError> {
    let now = store::now_ms();
    let mut done = 0u64;
    for (subscriber, seq) in selected {
        let changed = match action {
            Action::Replay => state.store.replay_dead_letter(*subscriber, *seq, now)?,
            Action::Purge => state.store.purge_dead_letter(*subscriber, *seq)?,
        };
        done += u64::from(changed);
        job.done.fetch_add(1, Ordering::Relaxed);
    }
    state.store.flush()?;
    if matches!(action, Action::Replay) {
        // The replayed retries are due now.
        state.dispatchers.wake_all();
    }
    job.finished.store(true, Ordering::SeqCst);
    Ok(done)
}

// ---------------------------------------------------------------------------------------------
// Background jobs

/// A replay or purge, with its progress.
pub struct Job {
    id: u64,
    action: &'static str,
    total: u64,
    done: AtomicU64,
    finished: AtomicBool,
    error: Mutex<Option<String>>,
}

/// Jobs of this process (kept until restart; they are small).
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Job {
    fn new(id: u64, action: &'static str, total: u64) -> Job {
        Job {
            id,
            action,
            total,
            done: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }
}

impl Jobs {
    /// A background job, registered so that its progress can be asked for.
    fn create(&self, action: &'static str, total: u64) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job::new(id, action, total));
        self.jobs.lock().expect("lock").insert(id, Arc::clone(&job));
        job
    }
}

async fn job(state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    let Some(job) = state.jobs.jobs.lock().expect("lock").get(&id).cloned() else {
        return problem(404, format!("no job {id}"));
    };
    HttpResponse::Ok().json(serde_json::json!({
        "id": job.id,
        "action": job.action,
        "total": job.total,
        "done": job.done.load(Ordering::Relaxed),
        "finished": job.finished.load(Ordering::SeqCst),
        "error": job.error.lock().expect("lock").clone(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Reload

async fn reload_status(state: web::Data<AdminState>) -> HttpResponse {
    let status = state.reloader.status().map(|status| {
        serde_json::json!({ "at": time(status.at_ms), "ok": status.ok, "errors": status.errors })
    });
    HttpResponse::Ok().json(serde_json::json!({ "last": status }))
}

async fn reload(state: web::Data<AdminState>) -> HttpResponse {
    let reloader = Arc::clone(&state.reloader);
    match web::block(move || reloader.reload()).await {
        Ok(Ok(diff)) => {
            HttpResponse::Ok().json(serde_json::json!({ "reloaded": true, "diff": diff }))
        }
        Ok(Err(errors)) => Problem {
            errors: errors
                .iter()
                .map(|error| crate::ingress::problem::FieldError {
                    attribute: "routes.yaml".into(),
                    index: None,
                    pointer: None,
                    detail: error.clone(),
                })
                .collect(),
            ..Problem::simple(
                "urn:fanout:problem:invalid-config",
                "Invalid configuration",
                422,
                format!(
                    "the routes file was not applied; the previous routes stay in force: {}",
                    errors.join("; ")
                ),
            )
        }
        .response(),
        Err(error) => problem(500, error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented operation has its handler (and the table has no duplicate).
    #[test]
    fn every_documented_operation_is_served() {
        for (index, operation) in OPERATIONS.iter().enumerate() {
            let known = matches!(
                (operation.method, operation.path),
                ("get", "/api/v1/openapi.json")
                    | ("get", "/api/v1/subscribers")
                    | ("get", "/api/v1/subscribers/{name}")
                    | ("post", "/api/v1/subscribers/{name}/pause")
                    | ("post", "/api/v1/subscribers/{name}/resume")
                    | ("get", "/api/v1/events")
                    | ("get", "/api/v1/events/{id}")
                    | ("post", "/api/v1/replay")
                    | ("get", "/api/v1/dead-letters")
                    | ("delete", "/api/v1/dead-letters")
                    | ("post", "/api/v1/dead-letters/replay")
                    | ("post", "/api/v1/dead-letters/purge")
                    | ("get", "/api/v1/jobs/{id}")
                    | ("get", "/api/v1/stats")
                    | ("get", "/api/v1/routes")
                    | ("post", "/api/v1/routes/test")
                    | ("get", "/api/v1/reload")
                    | ("post", "/api/v1/reload")
            );
            assert!(
                known,
                "{} {} has no handler",
                operation.method, operation.path
            );
            assert!(
                !OPERATIONS[..index]
                    .iter()
                    .any(|other| other.method == operation.method && other.path == operation.path),
                "{} {} twice",
                operation.method,
                operation.path
            );
        }
    }
}
