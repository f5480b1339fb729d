//! The dashboard's live chart: a sampler reads the process counters every second and keeps the
//! last ten minutes, so a page opened now shows the recent past at once; `GET /api/v1/stats`
//! turns the samples into rates.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::AdminState;
use crate::metrics::Metrics;
use crate::store;

/// How often the counters are read.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: ten minutes at one a second.
const SAMPLES: usize = 600;

/// The process totals at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub unrouted: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
}

impl Totals {
    fn read(metrics: &Metrics) -> Totals {
        Totals {
            received: Metrics::get(&metrics.events_received),
            accepted: Metrics::get(&metrics.events_accepted),
            rejected: Metrics::get(&metrics.events_rejected),
            unrouted: Metrics::get(&metrics.events_unrouted),
            delivered: Metrics::get(&metrics.deliveries_succeeded),
            failed_attempts: Metrics::get(&metrics.attempts_failed),
            dead_lettered: Metrics::get(&metrics.dead_lettered),
        }
    }
}

/// Rates per second between two samples, stamped with the later one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    pub at_ms: u64,
    /// Events accepted per second.
    pub events_in: f64,
    /// Successful deliveries per second.
    pub deliveries_out: f64,
    pub failed_attempts: f64,
    pub dead_lettered: f64,
}

/// The last [`SAMPLES`] totals, oldest first.
#[derive(Debug, Default)]
pub struct Sampler {
    samples: Mutex<VecDeque<(u64, Totals)>>,
}

impl Sampler {
    pub fn record(&self, at_ms: u64, totals: Totals) {
        let mut samples = self.samples.lock().expect("lock");
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back((at_ms, totals));
    }

    /// The rates between consecutive samples.
    pub fn series(&self) -> Vec<Point> {
        let samples = self.samples.lock().expect("lock");
        rates(samples.iter().copied())
    }

    /// Samples the counters every `interval` until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        metrics: Arc<Metrics>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.record(store::now_ms(), Totals::read(&metrics)),
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// Rates per second between consecutive samples; pairs without elapsed time are skipped.
fn rates(samples: impl Iterator<Item = (u64, Totals)>) -> Vec<Point> {
    let mut points = Vec::new();
    let mut previous: Option<(u64, Totals)> = None;
    for (at_ms, totals) in samples {
        if let Some((before_ms, before)) = previous {
            if at_ms > before_ms {
                let seconds = (at_ms - before_ms) as f64 / 1000.0;
                let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
                points.push(Point {
                    at_ms,
                    events_in: rate(totals.accepted, before.accepted),
                    deliveries_out: rate(totals.delivered, before.delivered),
                    failed_attempts: rate(totals.failed_attempts, before.failed_attempts),
                    dead_lettered: rate(totals.dead_lettered, before.dead_lettered),
                });
            }
        }
        previous = Some((at_ms, totals));
    }
    points
}

/// `GET /api/v1/stats`: the totals now and the per-second rates of the last ten minutes.
pub(super) async fn stats(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "at_ms": store::now_ms(),
        "interval_ms": SAMPLE_INTERVAL.as_millis() as u64,
        "totals": Totals::read(&state.metrics),
        "series": state.sampler.series(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_between_samples() {
        let totals = |accepted: u64, delivered: u64| Totals {
            accepted,
            delivered,
            ..Totals::default()
        };
        let points = rates(
            [
                (1_000, totals(0, 0)),
                (2_000, totals(10, 4)),
                (2_000, totals(10, 4)), // no time passed: skipped
                (4_000, totals(30, 4)),
            ]
            .into_iter(),
        );
        assert_eq!(points.len(), 2);
        assert_eq!((points[0].events_in, points[0].deliveries_out), (10.0, 4.0));
        assert_eq!((points[1].at_ms, points[1].events_in), (4_000, 10.0));
        assert_eq!(points[1].deliveries_out, 0.0);
    }

    #[test]
    fn keeps_ten_minutes() {
        let sampler = Sampler::default();
        for second in 0..(SAMPLES as u64 + 50) {
            sampler.record(second * 1000, Totals::default());
        }
        let series = sampler.series();
        assert_eq!(series.len(), SAMPLES - 1);
        assert_eq!(series[0].at_ms, 51_000);
    }
}
