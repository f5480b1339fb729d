//! The markdown report: every figure a median of several runs with its min-max, and each headline
//! also stated as a ratio to the baseline measured in the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

const START: &str = "<!-- results:start -->";
const END: &str = "<!-- results:end -->";
/// Most deliveries the end-to-end and isolation scenarios let be accepted and not yet arrived:
/// about a tenth of a second of deliveries at the rates measured here, so a run reaches it
/// within its first second and is measured in the steady state it holds, ingest no faster
/// than delivery. With 20,000 (until 2026-12-07) fan-out 1 never reached it in a 5 s run: ingest
/// outran delivery all the way, the lag still growing, and that transient was reported.
pub const E2E_MAX_LAG: u64 = 2_000;

/// Median with min and max of several runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 0 {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        Stat {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }

    /// `12,345/s (12,001-12,800)` style, with `digits` decimals.
    fn show(&self, digits: usize, unit: &str) -> String {
        format!(
            "{}{unit} ({}-{})",
            number(self.median, digits),
            number(self.min, digits),
            number(self.max, digits)
        )
    }
}

/// One B3 measurement: requests/s and its process's CPU time per request.
#[derive(Clone, Copy, Debug)]
pub struct B3 {
    pub rate: f64,
    pub cpu_us: f64,
}

impl B3 {
    /// The mean of the B3s just before and just after a run: a drift of the machine's speed
    /// during the run (this VM's drifts within minutes) cancels out as far as it is steady.
    pub fn mean(before: B3, after: B3) -> B3 {
        B3 {
            rate: (before.rate + after.rate) / 2.0,
            cpu_us: (before.cpu_us + after.cpu_us) / 2.0,
        }
    }
}

/// The runs of a deliveries figure, each with the mean of the B3s measured just before and just
/// after it (same body size, same CPU split): the machine's speed drifts within minutes, so a run
/// is compared with the B3s nearest to it in time, not with the baselines measured at the start.
#[derive(Default)]
pub struct Runs {
    rates: Vec<f64>,
    cpus: Vec<f64>,
    b3: Vec<f64>,
    of_b3: Vec<f64>,
    of_b3_cpu: Vec<f64>,
    /// Runs whose closed loop was never held back at the lag bound while measured.
    unsustained: usize,
}

impl Runs {
    /// Marks the last run as not sustained: its publishing was never held back at the lag bound
    /// while it was measured, so ingest outran delivery and the lag was still growing.
    pub fn unsustained(&mut self) {
        self.unsustained += 1;
    }

    /// One run: deliveries/s and router CPU µs per delivery, and its B3 (none where the figure
    /// is not reported, only its rate used).
    pub fn push(&mut self, rate: f64, cpu_us: f64, b3: Option<B3>) {
        self.rates.push(rate);
        self.cpus.push(cpu_us);
        if let Some(b3) = b3 {
            self.b3.push(b3.rate);
            self.of_b3
                .push(100.0 * rate / b3.rate.max(f64::MIN_POSITIVE));
            self.of_b3_cpu
                .push(100.0 * b3.cpu_us / cpu_us.max(f64::MIN_POSITIVE));
        }
    }

    pub fn rate(&self) -> Stat {
        Stat::of(&self.rates)
    }

    fn stats(&self) -> Deliveries {
        Deliveries {
            rate: self.rate(),
            cpu: Stat::of(&self.cpus),
            b3: Stat::of(&self.b3),
            of_b3: Stat::of(&self.of_b3),
            of_b3_cpu: Stat::of(&self.of_b3_cpu),
            unsustained: (self.unsustained, self.rates.len()),
        }
    }
}

/// A deliveries figure: rate, router CPU per delivery, the paired B3s, and the ratios to them
/// (each run's ratio, then their median).
struct Deliveries {
    rate: Stat,
    cpu: Stat,
    b3: Stat,
    /// Percent of the paired B3's requests/s.
    of_b3: Stat,
    /// The paired B3's CPU time per request, in percent of the router's per delivery.
    of_b3_cpu: Stat,
    /// Runs not held at the lag bound while measured, of all runs.
    unsustained: (usize, usize),
}

/// The header of a deliveries table after its first two columns.
const DELIVERIES_COLUMNS: &str =
    "deliveries/s | B3 around each run | of B3 | of B3 by CPU time | router CPU per delivery";

/// One row of a deliveries table: fan-out, what, deliveries/s, the paired B3, the ratios, CPU per
/// delivery, target.
fn delivery_row(out: &mut String, fanout: usize, what: &str, figure: &Deliveries, target: &str) {
    let _ = writeln!(
        out,
        "| {fanout} | {what} | {} | {} | {} | {} | {} | {target} |",
        figure.rate.show(0, ""),
        figure.b3.show(0, "/s"),
        figure.of_b3.show(0, " %"),
        figure.of_b3_cpu.show(0, " %"),
        figure.cpu.show(1, " µs"),
    );
}

/// The deliveries target of a fan-out: >= 20,000/s at 1; >= 40,000/s and >= 70 % of B3 at 16.
fn deliveries_target(fanout: usize, figure: &Deliveries) -> String {
    match fanout {
        1 => format!(">= 20,000/s: {}", verdict(figure.rate.median >= 20_000.0)),
        16 => format!(
            ">= 40,000/s: {}; >= 70 % of B3: {}",
            verdict(figure.rate.median >= 40_000.0),
            verdict(figure.of_b3.median >= 70.0)
        ),
        _ => String::new(),
    }
}

/// Thousands separators for large numbers; `digits` decimals otherwise.
fn number(value: f64, digits: usize) -> String {
    if value.abs() >= 1000.0 {
        let whole = format!("{:.0}", value);
        let mut out = String::new();
        for (index, digit) in whole.chars().enumerate() {
            if index > 0 && (whole.len() - index) % 3 == 0 && digit != '-' {
                out.push(',');
            }
            out.push(digit);
        }
        out
    } else {
        format!("{value:.digits$}")
    }
}

fn percent(value: f64, of: f64) -> String {
    if of > 0.0 {
        format!("{:.0} %", 100.0 * value / of)
    } else {
        "n/a".into()
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// Backlog and recovery measurements (scenarios 4 and 5).
pub struct Backlog {
    pub events: u64,
    pub size: usize,
    pub ingest_rate: f64,
    /// (seconds since start, RSS bytes, data directory bytes) sampled while the backlog built up.
    pub samples: Vec<(f64, u64, u64)>,
    pub rss_end: u64,
    pub rss_drain: u64,
    pub disk_during: u64,
    pub disk_after: u64,
    /// Of `disk_after`, the event log's files.
    pub log_after: u64,
    pub logical: u64,
    pub time_to_listen: Duration,
    pub first_delivery: Duration,
    pub time_to_full: Option<Duration>,
    pub drain_rate: f64,
    /// The router's CPU time (user + system) per delivery while draining.
    pub drain_cpu_us: f64,
    pub steady_rate: f64,
    pub duplicates: u64,
}

struct Baseline {
    id: &'static str,
    description: &'static str,
    stat: Stat,
}

#[derive(Default)]
pub struct Report {
    command: String,
    baselines: Vec<Baseline>,
    ingest: Vec<(usize, usize, Stat, Stat, Stat, Stat)>,
    /// (rate, p99 ack, B2's p99 at that rate) of fan-out 1, 1 KiB at half the target's rate.
    ingest_at_target: Option<(f64, Stat, Stat)>,
    /// (fan-out, events per publish request, figure).
    deliveries: Vec<(usize, usize, Deliveries)>,
    /// (fan-out, event bytes, figure, connections in the pool at the end) of the drain after
    /// scenario 1: delivery alone, no ingest beside it.
    drain: Vec<(usize, usize, Deliveries, Stat)>,
    latency: Vec<(u32, f64, Stat, Stat, Stat)>,
    isolation: Vec<(String, Stat, f64, Stat)>,
    backlog: Option<Backlog>,
    notes: Vec<String>,
}

impl Report {
    pub fn new(command: &str) -> Report {
        Report {
            command: command.to_owned(),
            ..Report::default()
        }
    }

    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    pub fn baseline(&mut self, id: &'static str, description: &'static str, stat: Stat) {
        self.baselines.push(Baseline {
            id,
            description,
            stat,
        });
    }

    pub fn ingest(
        &mut self,
        fanout: usize,
        size: usize,
        rate: Stat,
        p99_full: Stat,
        p99_half: Stat,
        b2_p99: Stat,
    ) {
        self.ingest
            .push((fanout, size, rate, p99_full, p99_half, b2_p99));
    }

    pub fn ingest_at_target(&mut self, rate: f64, p99: Stat, b2_p99: Stat) {
        self.ingest_at_target = Some((rate, p99, b2_p99));
    }

    pub fn deliveries(&mut self, fanout: usize, batch: usize, runs: &Runs) {
        self.deliveries.push((fanout, batch, runs.stats()));
    }

    /// Also the connections open to the receiver at the end of the drain.
    pub fn drain(&mut self, fanout: usize, size: usize, runs: &Runs, connections: Stat) {
        self.drain.push((fanout, size, runs.stats(), connections));
    }

    pub fn latency(&mut self, percent: u32, rate: f64, p50: Stat, p99: Stat, p999: Stat) {
        self.latency.push((percent, rate, p50, p99, p999));
    }

    pub fn isolation(&mut self, name: &str, throughput: Stat, rate: f64, p99: Stat) {
        self.isolation
            .push((name.to_owned(), throughput, rate, p99));
    }

    pub fn backlog(&mut self, backlog: Backlog) {
        self.backlog = Some(backlog);
    }

    fn baseline_of(&self, id: &str) -> f64 {
        self.baselines
            .iter()
            .find(|baseline| baseline.id == id)
            .map_or(0.0, |baseline| baseline.stat.median)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Measured {} on {}.\n", chrono_now(), machine());
        let _ = writeln!(
            out,
            "Command: `{}`. Each figure: median of the runs (min-max).\n",
            self.command
        );
        self.render_baselines(&mut out);
        self.render_ingest(&mut out);
        self.render_deliveries(&mut out);
        self.render_isolation(&mut out);
        self.render_backlog(&mut out);
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "{note}");
            }
        }
        out
    }

    fn render_baselines(&self, out: &mut String) {
        if self.baselines.is_empty() {
            return;
        }
        let _ = writeln!(out, "### Baselines\n\n| | what | rate |\n|---|---|---|");
        for baseline in &self.baselines {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                baseline.id,
                baseline.description,
                baseline.stat.show(0, "/s")
            );
        }
        out.push('\n');
    }

    fn render_ingest(&self, out: &mut String) {
        if self.ingest.is_empty() {
            return;
        }
        let b2 = self.baseline_of("B2");
        let fanout1 = self
            .ingest
            .iter()
            .find(|row| row.0 == 1 && row.1 == 1024)
            .map_or(0.0, |row| row.2.median);
        let _ = writeln!(
            out,
            "### 1. Durable ingest (ack after fdatasync)\n\n| fan-out | size | events/s | of B2 | of fan-out 1 | p99 ack at max (ms) | p99 ack at half rate (ms) | B2 p99 at that rate (ms) |\n|---|---|---|---|---|---|---|---|"
        );
        for (fanout, size, rate, p99_full, p99_half, b2_p99) in &self.ingest {
            let _ = writeln!(
                out,
                "| {fanout} | {size} B | {} | {} | {} | {} | {} | {} |",
                rate.show(0, ""),
                percent(rate.median, b2),
                if *size == 1024 {
                    percent(rate.median, fanout1)
                } else {
                    "".into()
                },
                p99_full.show(2, ""),
                p99_half.show(2, ""),
                b2_p99.show(2, ""),
            );
        }
        let half = self
            .ingest
            .iter()
            .find(|row| row.0 == 1 && row.1 == 1024)
            .map_or(f64::MAX, |row| row.4.median);
        let fanout16 = self
            .ingest
            .iter()
            .find(|row| row.0 == 16)
            .map_or(0.0, |row| row.2.median);
        let mut half_verdict = format!("at half the maximum: {}", verdict(half <= 5.0));
        if let Some((rate, p99, b2_p99)) = &self.ingest_at_target {
            let _ = writeln!(
                out,
                "\nFan-out 1, 1024 B, also at {} events/s (half the 25,000/s target): p99 ack {} ms; B2's p99 at that rate {} ms.",
                number(*rate, 0),
                p99.show(2, ""),
                b2_p99.show(2, ""),
            );
            half_verdict = format!(
                "at half the 25,000/s target: {}; {half_verdict}",
                verdict(p99.median <= 5.0)
            );
        }
        let _ = writeln!(
            out,
            "\nTargets: >= 25,000/s at fan-out 1: {} ({} of B2, target >= 30 %: {}); p99 ack <= 5 ms {half_verdict}; fan-out 16 >= 60 % of fan-out 1: {} ({}).\n",
            verdict(fanout1 >= 25_000.0),
            percent(fanout1, b2),
            verdict(fanout1 >= 0.3 * b2),
            verdict(fanout16 >= 0.6 * fanout1),
            percent(fanout16, fanout1),
        );
    }

    fn render_deliveries(&self, out: &mut String) {
        if self.deliveries.is_empty() && self.latency.is_empty() && self.drain.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### 2. Deliveries and end to end\n\nEach run is compared with B3 measured around it: once just before and once just after (the router stopped), with the same body size (3 s, 64 connections, pinned as the router is), and the two averaged, since this VM's speed drifts within minutes. `of B3` is the median of the runs' ratios of deliveries/s to that B3's requests/s; `of B3 by CPU time` the same for B3's CPU time per request against the router's per delivery (a second view, which does not need the router's CPU to be full).\n"
        );
        if !self.drain.is_empty() {
            let _ = writeln!(
                out,
                "Delivery alone, as B3 measures it: the events accepted in scenario 1 (subscribers stalled, `--ingest-concurrency` attempts in flight each, 16 by default) are delivered once the subscribers are released, with no ingest beside it. Deliveries/s over the drain (at most one run's duration), and the connections in the router's pool at its end (open to the receiver, idle ones included: the most the subscribers ever had in flight at once, give or take the pool's reuse).\n\n| fan-out | size, pool connections | {DELIVERIES_COLUMNS} | target |\n|---|---|---|---|---|---|---|---|"
            );
            for (fanout, size, figure, connections) in &self.drain {
                let target = if *size == 1024 {
                    deliveries_target(*fanout, figure)
                } else {
                    String::new()
                };
                let what = format!("{size} B, {}", connections.show(0, ""));
                delivery_row(out, *fanout, &what, figure, &target);
            }
            out.push('\n');
        }
        if self.deliveries.is_empty() {
            return self.render_latency(out);
        }
        let _ = writeln!(
            out,
            "Sustained end to end: closed-loop publishing held to at most {} deliveries accepted and not yet arrived beyond what one round of its requests carries (connections x events per request x fan-out), so each figure is a rate that ingest and delivery sustain together on the router's one CPU (its CPU time per delivery includes the ingest). A run whose publishing the bound never held back while it was measured is marked: ingest was outrunning delivery, a transient and not a sustained rate.\n\n| fan-out | published as | {DELIVERIES_COLUMNS} | target |\n|---|---|---|---|---|---|---|---|",
            number(E2E_MAX_LAG as f64, 0)
        );
        for (fanout, batch, figure) in &self.deliveries {
            let published = if *batch <= 1 {
                "single events".to_owned()
            } else {
                format!("batches of {batch}")
            };
            let mut target = deliveries_target(*fanout, figure);
            if figure.unsustained.0 > 0 {
                let _ = write!(
                    target,
                    " (lag bound not reached in {} of {} runs: not a sustained rate)",
                    figure.unsustained.0, figure.unsustained.1
                );
            }
            delivery_row(out, *fanout, &published, figure, &target);
        }
        out.push('\n');
        self.render_latency(out);
    }

    fn render_latency(&self, out: &mut String) {
        if self.latency.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Ingest-to-receiver latency, open loop at a fixed rate (fan-out 1), from each event's due time:\n\n| load | events/s | p50 (ms) | p99 (ms) | p99.9 (ms) |\n|---|---|---|---|---|"
        );
        for (percent, rate, p50, p99, p999) in &self.latency {
            let _ = writeln!(
                out,
                "| {percent} % of max | {} | {} | {} | {} |",
                number(*rate, 0),
                p50.show(2, ""),
                p99.show(2, ""),
                p999.show(2, "")
            );
        }
        if let Some((_, _, p50, p99, _)) = self.latency.iter().find(|row| row.0 == 50) {
            let _ = writeln!(
                out,
                "\nTargets at 50 %: p50 <= 2 ms: {}; p99 <= 10 ms: {}.\n",
                verdict(p50.median <= 2.0),
                verdict(p99.median <= 10.0)
            );
        }
    }

    fn render_isolation(&self, out: &mut String) {
        let Some((healthy, mixed)) = self.isolation.split_first() else {
            return;
        };
        let _ = writeln!(
            out,
            "### 3. Isolation (fan-out 4)\n\nThe healthy subscriber's sustained deliveries/s (closed loop held to a bounded lag of its deliveries), and its p99 at a fixed rate.\n\n| subscribers | healthy deliveries/s per subscriber | of all healthy | p99 at {}/s per subscriber (ms) | targets (>= 95 %; p99 within 20 %) |\n|---|---|---|---|---|",
            number(healthy.2, 0)
        );
        let _ = writeln!(
            out,
            "| {} | {} | 100 % | {} | |",
            healthy.0,
            healthy.1.show(0, ""),
            healthy.3.show(2, "")
        );
        for (name, throughput, _, p99) in mixed {
            let kept = throughput.median / healthy.1.median.max(f64::MIN_POSITIVE);
            let p99_growth = p99.median / healthy.3.median.max(f64::MIN_POSITIVE);
            let _ = writeln!(
                out,
                "| {name} | {} | {:.0} % | {} ({:+.0} %) | {}; {} |",
                throughput.show(0, ""),
                kept * 100.0,
                p99.show(2, ""),
                (p99_growth - 1.0) * 100.0,
                verdict(kept >= 0.95),
                verdict(p99_growth <= 1.2),
            );
        }
        out.push('\n');
    }

    fn render_backlog(&self, out: &mut String) {
        let Some(backlog) = &self.backlog else { return };
        let peak_rss = backlog
            .samples
            .iter()
            .map(|sample| sample.1)
            .max()
            .unwrap_or(0)
            .max(backlog.rss_end);
        let _ = writeln!(
            out,
            "### 4. Backlog of {} events of {} B (subscriber stalled), then 5. SIGKILL and recovery\n",
            number(backlog.events as f64, 0),
            backlog.size
        );
        let _ = writeln!(out, "| measure | value | target |\n|---|---|---|");
        let rows = [
            (
                "ingest rate while building the backlog",
                format!("{}/s", number(backlog.ingest_rate, 0)),
                String::new(),
            ),
            (
                "peak RSS while building",
                mib(peak_rss),
                format!("<= 256 MiB: {}", verdict(peak_rss <= 256 << 20)),
            ),
            (
                "RSS at the end of ingest / after the drain",
                format!("{} / {}", mib(backlog.rss_end), mib(backlog.rss_drain)),
                String::new(),
            ),
            (
                "logical bytes (events x size)",
                mib(backlog.logical),
                String::new(),
            ),
            (
                "disk during the backlog",
                format!(
                    "{} ({:.2}x logical)",
                    mib(backlog.disk_during),
                    ratio(backlog.disk_during, backlog.logical)
                ),
                format!(
                    "<= 1.6x: {}",
                    verdict(ratio(backlog.disk_during, backlog.logical) <= 1.6)
                ),
            ),
            (
                "disk after the drain",
                format!(
                    "{} ({:.2}x logical)",
                    mib(backlog.disk_after),
                    ratio(backlog.disk_after, backlog.logical)
                ),
                format!(
                    "<= 1.1x: {}",
                    verdict(ratio(backlog.disk_after, backlog.logical) <= 1.1)
                ),
            ),
            (
                "of it the event log / sled",
                format!(
                    "{} ({:.2}x) / {} ({:.2}x)",
                    mib(backlog.log_after),
                    ratio(backlog.log_after, backlog.logical),
                    mib(backlog.disk_after.saturating_sub(backlog.log_after)),
                    ratio(
                        backlog.disk_after.saturating_sub(backlog.log_after),
                        backlog.logical
                    )
                ),
                String::new(),
            ),
            (
                "restart after SIGKILL: time to listening",
                format!("{:.2} s", backlog.time_to_listen.as_secs_f64()),
                format!(
                    "<= 3 s: {}",
                    verdict(backlog.time_to_listen <= Duration::from_secs(3))
                ),
            ),
            (
                "time to first delivery",
                format!("{:.2} s", backlog.first_delivery.as_secs_f64()),
                format!(
                    "<= 3 s: {}",
                    verdict(backlog.first_delivery <= Duration::from_secs(3))
                ),
            ),
            (
                "time to full rate (90 % of steady)",
                backlog.time_to_full.map_or("never".into(), |time| {
                    format!("{:.2} s", time.as_secs_f64())
                }),
                String::new(),
            ),
            (
                "drain rate",
                format!(
                    "{}/s ({} of steady {}/s)",
                    number(backlog.drain_rate, 0),
                    percent(backlog.drain_rate, backlog.steady_rate),
                    number(backlog.steady_rate, 0)
                ),
                format!(
                    ">= 100 %: {}",
                    verdict(backlog.drain_rate >= backlog.steady_rate)
                ),
            ),
            (
                "router CPU per delivery while draining",
                format!("{} µs", number(backlog.drain_cpu_us, 1)),
                String::new(),
            ),
            (
                "acknowledged events lost",
                "0 (checked)".into(),
                "0: met".into(),
            ),
            (
                "duplicates after the restart",
                number(backlog.duplicates as f64, 0),
                "<= in flight".into(),
            ),
        ];
        for (measure, value, target) in rows {
            let _ = writeln!(out, "| {measure} | {value} | {target} |");
        }
        if !backlog.samples.is_empty() {
            let _ = writeln!(out, "\nRSS and disk while the backlog built up (every ~10th sample):\n\n| s | RSS | disk |\n|---|---|---|");
            let step = (backlog.samples.len() / 10).max(1);
            for (seconds, rss, disk) in backlog.samples.iter().step_by(step) {
                let _ = writeln!(out, "| {seconds:.0} | {} | {} |", mib(*rss), mib(*disk));
            }
        }
        out.push('\n');
    }
}

fn ratio(value: u64, of: u64) -> f64 {
    value as f64 / of.max(1) as f64
}

fn chrono_now() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        .unwrap_or_else(|| "an unknown date".into())
}

/// CPU model, core count, memory and kernel, as the machine reports them.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split(':').nth(1))
        })
        .map_or("an unknown CPU".to_owned(), |model| model.trim().to_owned());
    let cpus = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = crate::router::proc_kib(&meminfo, "MemTotal").map_or("unknown".into(), |bytes| {
        format!("{:.0} GiB", bytes as f64 / (1u64 << 30) as f64)
    });
    let kernel = command_output("uname", &["-r"]).unwrap_or_default();
    format!("{cpus} x {model}, {memory} RAM, Linux {kernel}")
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Puts `results` between the markers of `path`, keeping the hand-written text around them.
pub fn write(path: &Path, results: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(START), existing.find(END)) {
        (Some(start), Some(end)) if start < end => {
            format!(
                "{}{START}\n{results}\n{}",
                &existing[..start],
                &existing[end..]
            )
        }
        _ => format!("# fanout benchmarks\n\n{START}\n{results}\n{END}\n{existing}"),
    };
    std::fs::write(path, text)
}
