//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::api::PENDING_SCAN_LIMIT;
use super::AdminState;
use crate::delivery::control::{Control, Histogram, LATENCY_BUCKETS};
use crate::metrics::Metrics;
use crate::store;

pub async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    let state = state.into_inner();
    match web::block(move || render(&state)).await {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

/// Reads one counter of a subscriber.
type ReadCounter = fn(&Control) -> u64;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, subscriber: &str, histogram: &Histogram) {
    let (buckets, count, sum) = histogram.snapshot();
    for (bound, cumulative) in LATENCY_BUCKETS.iter().zip(buckets) {
        let _ = writeln!(
            out,
            "{name}_bucket{{subscriber=\"{subscriber}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{subscriber=\"{subscriber}\",le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "{name}_sum{{subscriber=\"{subscriber}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{subscriber=\"{subscriber}\"}} {count}");
}

fn render(state: &AdminState) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let metrics = &state.metrics;
    let counters = [
        (
            "fanout_events_received_total",
            "Events received on POST /events.",
            &metrics.events_received,
        ),
        (
            "fanout_events_accepted_total",
            "Events stored (durably, under strict durability).",
            &metrics.events_accepted,
        ),
        (
            "fanout_events_duplicate_total",
            "Events already accepted within the dedupe window.",
            &metrics.events_duplicate,
        ),
        (
            "fanout_dead_letters_forwarded_total",
            "Dead letters posted to the dead-letter URL.",
            &metrics.dead_letters_forwarded,
        ),
    ];
    for (name, help, counter) in counters {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", Metrics::get(counter));
    }
    header(
        &mut out,
        "fanout_events_rejected_total",
        "counter",
        "Requests refused on POST /events (4xx, or 503 when the store failed), by reason.",
    );
    for (reason, counter) in crate::metrics::REJECT_REASONS
        .iter()
        .zip(&metrics.events_rejected_by_reason)
    {
        let _ = writeln!(
            out,
            "fanout_events_rejected_total{{reason=\"{reason}\"}} {}",
            Metrics::get(counter)
        );
    }
    header(
        &mut out,
        "fanout_hook_requests_total",
        "counter",
        "Requests to POST /hooks/{source}, by source and outcome (accepted, invalid, unavailable, signature_missing, signature_malformed, signature_mismatch, timestamp_stale).",
    );
    for ((source, outcome), count) in metrics.hook_requests.lock().expect("lock").iter() {
        let _ = writeln!(
            out,
            "fanout_hook_requests_total{{source=\"{source}\",outcome=\"{outcome}\"}} {count}"
        );
    }
    header(
        &mut out,
        "fanout_events_unrouted_total",
        "counter",
        "Stored events that matched no route, by reason.",
    );
    let _ = writeln!(
        out,
        "fanout_events_unrouted_total{{reason=\"no_matching_route\"}} {}",
        Metrics::get(&metrics.events_unrouted)
    );

    let controls = state.dispatchers.controls();
    let now = store::now_ms();
    let names: Vec<String> = controls
        .iter()
        .map(|control| label(&control.name))
        .collect();

    header(
        &mut out,
        "fanout_deliveries_total",
        "counter",
        "Deliveries by subscriber and final outcome.",
    );
    for (control, name) in controls.iter().zip(&names) {
        let _ = writeln!(
            out,
            "fanout_deliveries_total{{subscriber=\"{name}\",outcome=\"delivered\"}} {}",
            control.delivered.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "fanout_deliveries_total{{subscriber=\"{name}\",outcome=\"dead_lettered\"}} {}",
            control.dead_lettered.load(Ordering::Relaxed)
        );
    }
    let per_subscriber: [(&str, &str, ReadCounter); 3] = [
        (
            "fanout_attempts_failed_total",
            "Failed delivery attempts by subscriber.",
            |control| control.failed_attempts.load(Ordering::Relaxed),
        ),
        (
            "fanout_retries_scheduled_total",
            "Retries scheduled by subscriber.",
            |control| control.retries_scheduled.load(Ordering::Relaxed),
        ),
        (
            "fanout_circuit_opened_total",
            "Times the subscriber's circuit breaker opened.",
            |control| control.circuit_opened.load(Ordering::Relaxed),
        ),
    ];
    for (metric, help, value) in per_subscriber {
        header(&mut out, metric, "counter", help);
        for (control, name) in controls.iter().zip(&names) {
            let _ = writeln!(out, "{metric}{{subscriber=\"{name}\"}} {}", value(control));
        }
    }

    let mut depth = String::new();
    let mut oldest = String::new();
    let mut dead = String::new();
    let mut in_flight = String::new();
    let mut limits = String::new();
    let mut states = String::new();
    let mut circuits = String::new();
    for (control, name) in controls.iter().zip(&names) {
        let pending = state
            .store
            .pending(control.id, PENDING_SCAN_LIMIT)
            .unwrap_or_default();
        let _ = writeln!(
            depth,
            "fanout_queue_depth{{subscriber=\"{name}\"}} {}",
            pending.fresh + pending.retries
        );
        let age = pending
            .oldest_accepted_ms
            .map_or(0.0, |at| now.saturating_sub(at) as f64 / 1000.0);
        let _ = writeln!(
            oldest,
            "fanout_oldest_pending_age_seconds{{subscriber=\"{name}\"}} {age}"
        );
        let _ = writeln!(
            dead,
            "fanout_dead_letters{{subscriber=\"{name}\"}} {}",
            state.store.dead_letter_count(control.id)
        );
        let _ = writeln!(
            in_flight,
            "fanout_in_flight{{subscriber=\"{name}\"}} {}",
            control.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            limits,
            "fanout_concurrency_limit{{subscriber=\"{name}\"}} {}",
            control.concurrency_limit.load(Ordering::Relaxed)
        );
        for candidate in ["active", "paused", "disabled", "orphaned"] {
            let _ = writeln!(
                states,
                "fanout_subscriber_state{{subscriber=\"{name}\",state=\"{candidate}\"}} {}",
                u8::from(control.state() == candidate)
            );
        }
        for candidate in ["closed", "open", "half_open"] {
            let _ = writeln!(
                circuits,
                "fanout_circuit_state{{subscriber=\"{name}\",state=\"{candidate}\"}} {}",
                u8::from(control.circuit().name() == candidate)
            );
        }
    }
    header(
        &mut out,
        "fanout_queue_depth",
        "gauge",
        "Deliveries pending (not attempted yet or waiting for a retry).",
    );
    out.push_str(&depth);
    header(
        &mut out,
        "fanout_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending delivery.",
    );
    out.push_str(&oldest);
    header(
        &mut out,
        "fanout_dead_letters",
        "gauge",
        "Dead letters kept, by subscriber.",
    );
    out.push_str(&dead);
    header(
        &mut out,
        "fanout_in_flight",
        "gauge",
        "Attempts in flight, by subscriber.",
    );
    out.push_str(&in_flight);
    header(
        &mut out,
        "fanout_concurrency_limit",
        "gauge",
        "Attempts that may be in flight now, by subscriber (adaptive concurrency moves it up to `concurrency`).",
    );
    out.push_str(&limits);
    header(
        &mut out,
        "fanout_subscriber_state",
        "gauge",
        "1 for the subscriber's current state.",
    );
    out.push_str(&states);
    header(
        &mut out,
        "fanout_circuit_state",
        "gauge",
        "1 for the state of the subscriber's circuit breaker.",
    );
    out.push_str(&circuits);

    header(
        &mut out,
        "fanout_attempt_duration_seconds",
        "histogram",
        "Duration of delivery attempts.",
    );
    for (control, name) in controls.iter().zip(&names) {
        histogram(
            &mut out,
            "fanout_attempt_duration_seconds",
            name,
            &control.latency,
        );
    }
    header(
        &mut out,
        "fanout_delivery_latency_seconds",
        "histogram",
        "From ingest to successful first delivery.",
    );
    for (control, name) in controls.iter().zip(&names) {
        histogram(
            &mut out,
            "fanout_delivery_latency_seconds",
            name,
            &control.end_to_end,
        );
    }

    header(
        &mut out,
        "fanout_store_size_bytes",
        "gauge",
        "Bytes the store takes on disk.",
    );
    let _ = writeln!(
        out,
        "fanout_store_size_bytes {}",
        state.store.size_on_disk().unwrap_or(0)
    );
    header(
        &mut out,
        "fanout_dedupe_index_entries",
        "gauge",
        "Events the in-memory dedupe index holds (about 20 to 40 bytes each).",
    );
    let _ = writeln!(
        out,
        "fanout_dedupe_index_entries {}",
        state.store.dedupe_index_entries()
    );
    header(
        &mut out,
        "fanout_config_reloads_total",
        "counter",
        "Reloads of the routes file by result.",
    );
    let (successes, failures) = (
        state.reloader.successes.load(Ordering::Relaxed),
        state.reloader.failures.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "fanout_config_reloads_total{{result=\"success\"}} {successes}"
    );
    let _ = writeln!(
        out,
        "fanout_config_reloads_total{{result=\"failure\"}} {failures}"
    );
    header(
        &mut out,
        "fanout_config_reload_failures_total",
        "counter",
        "Reloads refused because the file was invalid.",
    );
    let _ = writeln!(out, "fanout_config_reload_failures_total {failures}");
    out
}
