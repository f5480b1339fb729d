//! The load generator: closed loop (N connections sending back to back) for throughput, open
//! loop (a fixed arrival rate) for latency, with coordinated-omission correction: each request's
//! latency is measured from when it was due, not from when it could be sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::receiver::now_ns;

/// What a load run achieved.
pub struct LoadResult {
    pub accepted: u64,
    pub failed: u64,
    /// Why the first failed request failed.
    pub first_failure: Option<String>,
    pub elapsed: Duration,
    pub ack_latency: Histogram<u64>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    /// Acknowledgement latency at `quantile`, in milliseconds.
    pub fn ack_ms(&self, quantile: f64) -> f64 {
        ms(&self.ack_latency, quantile)
    }
}

/// A latency histogram (nanoseconds) at `quantile`, in milliseconds.
pub fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1e6
}

pub struct Load {
    pub client: reqwest::Client,
    pub url: String,
    pub size: usize,
    /// Events per request: 1 sends structured mode, more send batched mode.
    pub batch: usize,
    /// Distinguishes event ids between runs.
    pub run: String,
    pub first_failure: Mutex<Option<String>>,
}

/// Most requests an open loop has in flight.
pub const OPEN_LOOP_CONNECTIONS: usize = 512;

/// Holds a closed loop back while too many accepted deliveries have not arrived yet, so that it
/// measures the rate the router sustains end to end (ingest and delivery on one CPU) instead of
/// how fast a backlog can be piled up.
#[derive(Clone)]
pub struct Lag {
    /// Deliveries that have arrived so far.
    pub delivered: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub fanout: u64,
    /// Most deliveries accepted and not arrived.
    pub max: u64,
    /// How often a sender was held back: a figure measured while this did not grow is not a
    /// sustained rate (ingest was outrunning delivery and the lag still growing).
    pub held: Arc<AtomicU64>,
}

impl Lag {
    async fn wait(&self, accepted: &AtomicU64, until: Instant) {
        while Instant::now() < until
            && accepted.load(Ordering::Relaxed) * self.fanout > (self.delivered)() + self.max
        {
            self.held.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }

    /// Times a sender has been held back so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 600_000_000_000, 3).unwrap()
}

/// A structured-mode event of about `size` bytes in all.
pub fn event_body(id: &str, size: usize, sent_ns: u64) -> String {
    let head = format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/bench","type":"com.example.shop.order.created","benchsent":"{sent_ns}","datacontenttype":"application/json","data":{{"pad":""#
    );
    let pad = size.saturating_sub(head.len() + 3);
    let mut body = String::with_capacity(size + 8);
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str("\"}}");
    body
}

impl Load {
    fn failed(&self, failed: &AtomicU64, why: String) {
        failed.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().unwrap().get_or_insert(why);
    }

    /// Sends one request (of `batch` events, ids `id`, `id.1`, ...); why, unless it was accepted.
    async fn send(&self, id: &str, sent_ns: u64) -> Result<(), String> {
        let (content_type, body) = if self.batch <= 1 {
            (
                "application/cloudevents+json",
                event_body(id, self.size, sent_ns),
            )
        } else {
            let events: Vec<String> = (0..self.batch)
                .map(|index| event_body(&format!("{id}.{index}"), self.size, sent_ns))
                .collect();
            (
                "application/cloudevents-batch+json",
                format!("[{}]", events.join(",")),
            )
        };
        match self
            .client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
        {
            Ok(response) if response.status().as_u16() == 202 => Ok(()),
            Ok(response) => Err(format!("answered {}", response.status())),
            Err(error) => Err(format!("{error:?}")),
        }
    }

    /// `connections` senders back to back for `duration` (or until `limit` events are accepted).
    pub async fn closed_loop(
        self: &Arc<Self>,
        connections: usize,
        duration: Duration,
        limit: Option<u64>,
        lag: Option<Lag>,
    ) -> LoadResult {
        let accepted = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let issued = Arc::new(AtomicU64::new(0));
        let latency = Arc::new(Mutex::new(histogram()));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..connections {
            let (load, accepted, failed, issued, latency, lag) = (
                Arc::clone(self),
                Arc::clone(&accepted),
                Arc::clone(&failed),
                Arc::clone(&issued),
                Arc::clone(&latency),
                lag.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut local = histogram();
                let mut sequence = 0u64;
                while started.elapsed() < duration {
                    if let Some(limit) = limit {
                        if issued.fetch_add(load.batch.max(1) as u64, Ordering::Relaxed) >= limit {
                            break;
                        }
                    }
                    if let Some(lag) = &lag {
                        lag.wait(&accepted, started + duration).await;
                    }
                    sequence += 1;
                    let begin = Instant::now();
                    let id = format!("{}-{worker}-{sequence}", load.run);
                    match load.send(&id, now_ns()).await {
                        Ok(()) => {
                            accepted.fetch_add(load.batch.max(1) as u64, Ordering::Relaxed);
                            let _ = local.record((begin.elapsed().as_nanos() as u64).max(1_000));
                        }
                        Err(why) => load.failed(&failed, why),
                    }
                }
                latency.lock().unwrap().add(&local).unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed();
        let ack_latency = latency.lock().unwrap().clone();
        LoadResult {
            accepted: accepted.load(Ordering::SeqCst),
            failed: failed.load(Ordering::SeqCst),
            first_failure: self.first_failure.lock().unwrap().clone(),
            elapsed,
            ack_latency,
        }
    }

    /// Opens `count` connections at once (one request each, all sent together), so that the
    /// open loop that follows has its whole set ready, as wrk2 opens its connections before it
    /// starts the clock. Without them, a stall queues requests that the catch-up then sends on
    /// new connections, and the server accepts and sets up each one while it is behind.
    /// Returns the events accepted.
    pub async fn open_connections(self: &Arc<Self>, count: usize) -> anyhow::Result<u64> {
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..count {
            let load = Arc::clone(self);
            tasks.spawn(async move {
                let id = format!("{}-c-{index}", load.run);
                load.send(&id, now_ns()).await
            });
        }
        let mut accepted = 0;
        while let Some(sent) = tasks.join_next().await {
            match sent? {
                Ok(()) => accepted += self.batch.max(1) as u64,
                Err(why) => anyhow::bail!("opening the open loop's connections: {why}"),
            }
        }
        Ok(accepted)
    }

    /// A fixed arrival rate for `duration`; latency counts from each request's due time. At most
    /// [`OPEN_LOOP_CONNECTIONS`] requests are in flight (as wrk2 holds a fixed set of
    /// connections), so a stall of the router queues requests here, each still timed from when
    /// it was due, instead of opening thousands of connections.
    pub async fn open_loop(self: &Arc<Self>, rate: f64, duration: Duration) -> LoadResult {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(OPEN_LOOP_CONNECTIONS));
        let accepted = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let latency = Arc::new(Mutex::new(histogram()));
        let interval = Duration::from_secs_f64(1.0 / rate);
        let total = (rate * duration.as_secs_f64()) as u64;
        let started = Instant::now();
        let epoch_at_start = now_ns();
        let stalls = Stalls::from_env(duration).map(Arc::new);
        let mut tasks = tokio::task::JoinSet::new();
        let mut index = 0u64;
        while index < total {
            // Send everything that is due, then sleep a little; a late tick sends a burst, and
            // each request's latency still counts from its own due time.
            let now = started.elapsed();
            while index < total && interval * index as u32 <= now {
                let due = interval * index as u32;
                let (load, accepted, failed, latency, in_flight, stalls) = (
                    Arc::clone(self),
                    Arc::clone(&accepted),
                    Arc::clone(&failed),
                    Arc::clone(&latency),
                    Arc::clone(&in_flight),
                    stalls.clone(),
                );
                let id = format!("{}-o-{index}", self.run);
                let sent_ns = epoch_at_start + due.as_nanos() as u64;
                tasks.spawn(async move {
                    let _permit = in_flight.acquire().await.expect("never closed");
                    match load.send(&id, sent_ns).await {
                        Ok(()) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            let took = started.elapsed().saturating_sub(due);
                            if let Some(stalls) = &stalls {
                                stalls.record(due, took);
                            }
                            let _ = latency
                                .lock()
                                .unwrap()
                                .record((took.as_nanos() as u64).max(1_000));
                        }
                        Err(why) => load.failed(&failed, why),
                    }
                });
                index += 1;
            }
            while tasks.try_join_next().is_some() {}
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = started.elapsed();
        if let Some(stalls) = &stalls {
            stalls.print(epoch_at_start);
        }
        let ack_latency = latency.lock().unwrap().clone();
        LoadResult {
            accepted: accepted.load(Ordering::SeqCst),
            failed: failed.load(Ordering::SeqCst),
            first_failure: self.first_failure.lock().unwrap().clone(),
            elapsed,
            ack_latency,
        }
    }
}

/// The slowest answer in each 10 ms window of an open loop, by due time, printed to stderr when
/// `FANOUT_BENCH_STALLS` is set (windows over that many milliseconds), with the wall-clock time of
/// each window so that a stall can be matched with a trace of the machine (README, Benchmarks:
/// perf here takes `-k CLOCK_MONOTONIC`, not `CLOCK_REALTIME`, so the two clocks' offset is needed).
struct Stalls {
    /// Microseconds, per window.
    slowest: Vec<AtomicU64>,
    /// Windows slower than this are printed.
    over: Duration,
}

const STALL_WINDOW: Duration = Duration::from_millis(10);
const STALLS_ENV: &str = "FANOUT_BENCH_STALLS";

impl Stalls {
    /// `None` unless `FANOUT_BENCH_STALLS` is set to a number of milliseconds.
    fn from_env(duration: Duration) -> Option<Self> {
        let over_ms = std::env::var(STALLS_ENV).ok()?.parse::<u64>().ok()?;
        let windows = (duration.as_nanos() / STALL_WINDOW.as_nanos()) as usize + 1;
        Some(Self {
            slowest: (0..windows).map(|_| AtomicU64::new(0)).collect(),
            over: Duration::from_millis(over_ms),
        })
    }

    fn record(&self, due: Duration, took: Duration) {
        let window = (due.as_nanos() / STALL_WINDOW.as_nanos()) as usize;
        if let Some(slowest) = self.slowest.get(window) {
            slowest.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        }
    }

    fn print(&self, epoch_at_start: u64) {
        for (window, slowest) in self.slowest.iter().enumerate() {
            let micros = slowest.load(Ordering::Relaxed);
            if micros > self.over.as_micros() as u64 {
                let at = Duration::from_nanos(epoch_at_start) + STALL_WINDOW * window as u32;
                eprintln!(
                    "stall: due at +{} ms (epoch {:.3} s): slowest {:.2} ms",
                    window as u128 * STALL_WINDOW.as_millis(),
                    at.as_secs_f64(),
                    micros as f64 / 1000.0
                );
            }
        }
    }
}
