//! The fanout benchmark: runs the release binary as a separate process pinned to one CPU, drives
//! it from a load generator and an embedded receiver pinned to the other, and reports every
//! figure with a baseline measured in the same run (these machines are shared and noisy).
//!
//! ```text
//! cargo run --release --example bench -- --all            # everything, writes BENCHMARKS.md
//! cargo run --release --example bench -- --quick --all    # shorter runs, 100k backlog
//! cargo run --release --example bench -- --scenarios baselines,ingest --runs 5
//! ```
//! Correctness is part of the run: it fails if an accepted event is not delivered to every
//! subscriber it was routed to, or if a signature does not verify.

mod baselines;
mod load;
mod profile;
mod receiver;
mod report;
mod router;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

use load::{Load, OPEN_LOOP_CONNECTIONS};
use receiver::Receiver;
use report::{Report, Stat, B3};
use router::{Router, Sub};

/// The longest the load generator waits for one answer (a stalled router answers in well under
/// a second; the backlog scenario's ingest included).
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The ingest case the targets name (fan-out 1, 1 KiB), and half the target's 25,000 events/s:
/// besides half its own maximum, that case is also measured at this rate, the target's reading
/// of "p99 ack <= 5 ms at half that rate".
const TARGET_CASE: (usize, usize) = (1, 1024);
const TARGET_HALF_RATE: f64 = 12_500.0;
/// Below the router's request-head timeout (5 s) and keep-alive ([`SERVER_KEEP_ALIVE`]), with
/// margin.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The ack-latency open loops' own client keeps its connections this long: all of them, for the
/// whole loop, as wrk2 keeps its fixed set. With [`POOL_IDLE_TIMEOUT`] the pool (which hands out
/// the most recently used connection first) closed most of the 512 opened before the clock
/// started after 2 s, so that a hiccup later in the loop had to open new ones while it caught up
/// (traced on 2026-12-07: the new connections came in the stalls, and the router's CPU was not
/// full). The router and B2 keep an idle connection for [`SERVER_KEEP_ALIVE`], longer than this.
const OPEN_LOOP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The router's (`server.keep_alive`) and B2's keep-alive: longer than any client's idle timeout
/// here, so that the client always closes an idle connection first.
pub const SERVER_KEEP_ALIVE: Duration = Duration::from_secs(120);

/// The router's allocator (`src/main.rs`), so that B2 and B3, which run in this binary, are the
/// ceilings of the same code the router runs: with glibc's malloc B3 made about 6 % fewer
/// requests per second (2026-12-06, three alternating rounds).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Clone)]
#[command(about = "fanout benchmark")]
struct Args {
    /// Run every scenario.
    #[arg(long)]
    all: bool,
    /// Shorter runs and a 100k backlog, for a quick look.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run: baselines, ingest, e2e, isolation, backlog.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Runs per figure (the median is reported with min-max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Event size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Length of each measurement.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent connections of the closed-loop load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Events in the backlog scenario.
    #[arg(long)]
    backlog: Option<u64>,
    /// Where the report goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Ingest cases as FANOUTxBYTES (default 1x1024,4x1024,16x1024,1x256,1x16384).
    #[arg(long, value_delimiter = ',')]
    ingest_cases: Vec<String>,
    /// Fan-outs of the end-to-end scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    e2e_fanouts: Vec<usize>,
    /// Events per request of the end-to-end scenario's batched publishing (0: single events only).
    #[arg(long, default_value_t = 64)]
    e2e_batch: usize,
    /// Attempts in flight per subscriber in the ingest scenario (and so in its drain, delivery
    /// alone): fanout's default is 16.
    #[arg(long, default_value_t = 16)]
    ingest_concurrency: usize,
    /// Draw a flame graph of the router for each sustained end-to-end case into this folder, from
    /// one extra run of the case with `perf record` attached (not part of the reported figures).
    #[arg(long)]
    flamegraphs: Option<PathBuf>,
    #[arg(long, hide = true)]
    serve_b2: bool,
    #[arg(long, hide = true)]
    b3: Option<String>,
}

/// CPUs: the router (and B2, B3) on one, the load generator and receiver on the other. The
/// router's is this one unless the disk's interrupts go to another ([`disk_interrupt_cpu`]);
/// `FANOUT_BENCH_ROUTER_CPU` chooses it.
const ROUTER_CPU: usize = 0;
const ROUTER_CPU_ENV: &str = "FANOUT_BENCH_ROUTER_CPU";
/// Why the router runs where it does, handed down with [`ROUTER_CPU_ENV`] for the report.
const ROUTER_CPU_WHY_ENV: &str = "FANOUT_BENCH_ROUTER_CPU_WHY";

/// The router's CPU, as the unpinned process chose it (and handed it down), and the load's.
fn cpus_for_router() -> (usize, usize) {
    let router = std::env::var(ROUTER_CPU_ENV)
        .ok()
        .and_then(|cpu| cpu.parse().ok())
        .unwrap_or(ROUTER_CPU);
    (router, load_cpu(router))
}

/// The load generator's and receiver's CPU: the other one of the first two.
fn load_cpu(router: usize) -> usize {
    usize::from(router == 0)
}

/// The CPU that takes the interrupts of the disk under `dir`, if one clearly does: found by
/// syncing a small file 100 times and seeing which CPU's device interrupts grew. The router goes
/// there, so that the completions of its own `fdatasync`s (interrupt, softirq, waking the
/// commit thread) are its CPU's work and not the load generator's: with the router on the other
/// CPU, the open loops of 2026-12-07 had four times the stalls (BENCHMARKS.md).
fn disk_interrupt_cpu(dir: &Path, cpus: usize) -> Option<usize> {
    use std::io::Write as _;
    let before = device_interrupts(cpus)?;
    let path = dir.join(format!("fanout-bench-irq-probe-{}", std::process::id()));
    let probe = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&path)?;
        for _ in 0..100 {
            file.write_all(&[0u8; 512])?;
            file.sync_data()?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    probe.ok()?;
    let after = device_interrupts(cpus)?;
    let grown: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|(after, before)| after.saturating_sub(*before))
        .collect();
    let (cpu, most) = grown.iter().enumerate().max_by_key(|(_, count)| **count)?;
    let rest = grown.iter().sum::<u64>() - most;
    (*most >= 50 && *most > 4 * rest).then_some(cpu)
}

/// Per CPU, the sum of `/proc/interrupts`' numbered lines (devices; not the timer's and the
/// inter-processor lines, which are named).
fn device_interrupts(cpus: usize) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string("/proc/interrupts").ok()?;
    let mut sums = vec![0u64; cpus];
    for line in text.lines().skip(1) {
        let Some((irq, counts)) = line.trim_start().split_once(':') else {
            continue;
        };
        if irq.is_empty() || !irq.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        for (sum, count) in sums.iter_mut().zip(counts.split_whitespace()) {
            *sum += count.parse::<u64>().unwrap_or(0);
        }
    }
    Some(sums)
}

const PINNED_ENV: &str = "FANOUT_BENCH_PINNED";

/// Sets the fan-out-1 maximum the end-to-end latency rates are taken from, instead of the
/// measured one: for comparing two builds at the same rates.
const E2E_MAX_ENV: &str = "FANOUT_BENCH_E2E_MAX";
/// How long B2 is loaded before its latency is measured, as the router is by its closed loop.
const B2_WARM_UP: Duration = Duration::from_millis(500);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_b2 {
        return Ok(baselines::serve_b2()?);
    }
    if let Some(url) = &args.b3 {
        baselines::run_b3(
            url,
            args.duration.as_secs_f64(),
            args.connections,
            args.size,
        );
        return Ok(());
    }
    // Counted before pinning: once pinned, this process sees only its own CPU.
    let cpus = match std::env::var(PINNED_ENV) {
        Ok(count) => count.parse().unwrap_or(1),
        Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
    };
    if std::env::var_os(PINNED_ENV).is_none() {
        // Build the router (which may rebuild this example too), then run the fresh build of
        // this program on the load CPU; the router and the baselines go to the other one.
        if std::env::var_os(router::BINARY_ENV).is_none() {
            build_router()?;
        }
        let exe = std::env::current_exe()?.with_file_name("bench");
        let (router_cpu, why) = match std::env::var(ROUTER_CPU_ENV) {
            Ok(cpu) => (
                cpu.parse()
                    .with_context(|| format!("{ROUTER_CPU_ENV} is a CPU number"))?,
                "chosen with FANOUT_BENCH_ROUTER_CPU",
            ),
            Err(_) => match (cpus == 2)
                .then(|| disk_interrupt_cpu(&std::env::temp_dir(), cpus))
                .flatten()
            {
                Some(cpu) => (cpu, "the CPU that takes the disk's interrupts"),
                None => (ROUTER_CPU, "no CPU takes most of the disk's interrupts"),
            },
        };
        if cpus >= 2 && router_cpu >= cpus {
            bail!("{ROUTER_CPU_ENV} is {router_cpu}, but this machine has {cpus} CPUs");
        }
        let mut command = router::pinned(&exe, (cpus >= 2).then_some(load_cpu(router_cpu)));
        let status = command
            .args(std::env::args_os().skip(1))
            .env(PINNED_ENV, cpus.to_string())
            .env(ROUTER_CPU_ENV, router_cpu.to_string())
            .env(ROUTER_CPU_WHY_ENV, why)
            .status()
            .context("taskset (util-linux) is needed to pin the benchmark")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let pinned = (cpus >= 2).then_some(cpus_for_router().0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args, pinned))
}

/// `cargo run --example` builds the example, not the binary it drives.
fn build_router() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    // What `cargo run` sets for the program it runs describes this package, not the build: ring's
    // build script reruns when CARGO_MANIFEST_DIR changes, so with it inherited, this build and
    // `cargo run`'s own rebuilt ring and all above it (rustls, reqwest, actix-web, fanout) in
    // turn, about two minutes each time.
    for (name, _) in std::env::vars_os() {
        let run_var = name.to_str().is_some_and(|name| {
            name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "OUT_DIR"
                )
        });
        if run_var {
            command.env_remove(name);
        }
    }
    let status = command
        // With the example in the same build, features unify as in `cargo run --example bench`
        // and neither build invalidates the other.
        .args([
            "build",
            "--release",
            "--bin",
            "fanout",
            "--example",
            "bench",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?;
    if !status.success() {
        bail!("building the fanout binary failed");
    }
    Ok(())
}

struct Bench {
    args: Args,
    cpu: Option<usize>,
    receiver: Receiver,
    client: reqwest::Client,
    report: Report,
    run_counter: std::sync::atomic::AtomicU64,
}

/// The load generator's HTTP client, dropping a pooled connection after `idle`.
fn load_client(idle: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(idle)
        .tcp_nodelay(true)
        .timeout(LOAD_REQUEST_TIMEOUT)
        .build()
}

async fn run(args: Args, cpu: Option<usize>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A request never waits longer than LOAD_REQUEST_TIMEOUT: a run that cannot go on fails with
    // the first failure's reason instead of waiting for ever.
    // A pooled connection is dropped after POOL_IDLE_TIMEOUT idle, before the router's own
    // timers (5 s for a first request head, SERVER_KEEP_ALIVE idle) close it: otherwise a
    // connection the pool opened but did not use, or left idle between phases, is taken just as
    // the router answers it 408 or closes it, and the request fails (the usual race of a client
    // idle timeout longer than the server's).
    let client = load_client(POOL_IDLE_TIMEOUT)?;
    let all = args.all || args.scenarios.is_empty();
    let wants = |name: &str| all || args.scenarios.iter().any(|scenario| scenario == name);
    let mut bench = Bench {
        receiver: Receiver::start(),
        client,
        report: Report::default(),
        cpu,
        run_counter: Default::default(),
        args: args.clone(),
    };
    if args.quick {
        bench.args.duration = bench.args.duration.min(Duration::from_secs(3));
        bench.args.runs = bench.args.runs.min(2);
    }
    bench.report = Report::new(&args_line(&bench.args));
    let started = Instant::now();
    if wants("baselines") || wants("ingest") || wants("e2e") || wants("isolation") {
        bench.baselines().await?;
    }
    if wants("ingest") {
        bench.ingest().await?;
    }
    let mut max_events = None;
    if wants("e2e") || wants("isolation") || wants("backlog") {
        max_events = Some(bench.end_to_end(wants("e2e")).await?);
    }
    if wants("isolation") {
        bench.isolation(max_events.unwrap_or(1000.0)).await?;
    }
    if wants("backlog") {
        bench.backlog(max_events.unwrap_or(1000.0)).await?;
    }
    bench.report.note(match cpu {
        Some(cpu) => format!(
            "fanout, B2 and B3 ran pinned to CPU {cpu} ({}); the load generator and the receiver to CPU {}.",
            std::env::var(ROUTER_CPU_WHY_ENV).unwrap_or_default(),
            cpus_for_router().1
        ),
        None => "One CPU: nothing was pinned.".to_owned(),
    });
    bench.report.note(format!(
        "Total benchmark time: {:.0} s.",
        started.elapsed().as_secs_f64()
    ));
    let text = bench.report.render();
    println!("{text}");
    report::write(&args.out, &text)?;
    println!("written to {}", args.out.display());
    Ok(())
}

fn args_line(args: &Args) -> String {
    let mut line = String::from("cargo run --release --example bench --");
    if args.all {
        line.push_str(" --all");
    }
    if args.quick {
        line.push_str(" --quick");
    }
    if !args.scenarios.is_empty() {
        line.push_str(&format!(" --scenarios {}", args.scenarios.join(",")));
    }
    line.push_str(&format!(
        " --runs {} --duration {}",
        args.runs,
        humantime::format_duration(args.duration)
    ));
    line
}

impl Bench {
    fn load(&self, url: &str, size: usize) -> Arc<Load> {
        self.load_batched(url, size, 1)
    }

    fn load_batched(&self, url: &str, size: usize, batch: usize) -> Arc<Load> {
        self.load_on(self.client.clone(), url, size, batch)
    }

    /// A load for an ack-latency open loop, on a client of its own that keeps every connection
    /// for the whole loop ([`OPEN_LOOP_IDLE_TIMEOUT`]); dropped with the load.
    fn open_loop_load(&self, url: &str, size: usize) -> anyhow::Result<Arc<Load>> {
        Ok(self.load_on(load_client(OPEN_LOOP_IDLE_TIMEOUT)?, url, size, 1))
    }

    fn load_on(&self, client: reqwest::Client, url: &str, size: usize, batch: usize) -> Arc<Load> {
        let run = self
            .run_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(Load {
            client,
            url: url.to_owned(),
            size,
            batch,
            run: format!("r{run}-{}", receiver::now_ns() % 1_000_000),
            first_failure: std::sync::Mutex::new(None),
        })
    }

    fn start_router(&self, subscribers: &[Sub]) -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().unwrap();
        let config = router::write_config(dir.path(), &self.receiver.base, subscribers, "strict");
        let router = Router::start(&config, &dir.path().join("data"), self.cpu);
        (dir, router)
    }

    /// Holds a closed loop of `connections` requests of `batch` events each to
    /// [`report::E2E_MAX_LAG`] deliveries not yet arrived, as counted by `counter` of the
    /// receiver, beyond what one round of its requests carries (which it could not go below).
    fn lag(
        &self,
        counter: fn(&receiver::State) -> &std::sync::atomic::AtomicU64,
        fanout: u64,
        connections: usize,
        batch: usize,
    ) -> load::Lag {
        let state = Arc::clone(&self.receiver.state);
        load::Lag {
            delivered: Arc::new(move || counter(&state).load(std::sync::atomic::Ordering::Relaxed)),
            fanout,
            max: report::E2E_MAX_LAG + (connections * batch.max(1)) as u64 * fanout,
            held: Arc::default(),
        }
    }

    /// Waits until the receiver holds `expected` unique deliveries, failing after `timeout`.
    async fn expect_delivered(&self, expected: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.receiver.unique() < expected {
            if Instant::now() > deadline {
                bail!(
                    "correctness: {} of {expected} accepted deliveries arrived within {timeout:?}",
                    self.receiver.unique()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.receiver.bad_signatures() > 0 {
            bail!(
                "correctness: {} signatures did not verify",
                self.receiver.bad_signatures()
            );
        }
        Ok(())
    }

    async fn baselines(&mut self) -> anyhow::Result<()> {
        println!("== baselines");
        let dir = tempfile::tempdir()?;
        let short = self.args.duration.min(Duration::from_secs(3));
        let (mut b0, mut b1, mut b2, mut b3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.args.runs {
            b0.push(baselines::b0_fdatasync(dir.path(), short));
            b1.push(baselines::b1_sled(dir.path(), self.args.size, short));
            b2.push(self.b2().await?);
            b3.push(self.b3(self.args.size)?.rate);
        }
        let b = &mut self.report;
        b.baseline("B0", "1 KiB write + fdatasync, per second", Stat::of(&b0));
        b.baseline("B1", "raw sled inserts/s, flush per 64", Stat::of(&b1));
        b.baseline(
            "B2",
            "bare actix-web 202 handler, requests/s (same client, same CPU split)",
            Stat::of(&b2),
        );
        b.baseline(
            "B3",
            "fanout's HTTP client straight to the receiver, requests/s",
            Stat::of(&b3),
        );
        Ok(())
    }

    /// B2's child process (pinned like the router) and the URL it serves.
    fn spawn_b2(&self) -> anyhow::Result<(std::process::Child, String)> {
        let exe = std::env::current_exe()?;
        let mut command = router::pinned(&exe, self.cpu);
        let mut child = command
            .arg("--serve-b2")
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )?;
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .context("B2 server address")?
            .to_owned();
        Ok((child, format!("http://{address}/events")))
    }

    async fn b2(&self) -> anyhow::Result<f64> {
        let (mut child, url) = self.spawn_b2()?;
        let load = self.load(&url, self.args.size);
        let result = load
            .closed_loop(self.args.connections, self.args.duration, None, None)
            .await;
        let _ = child.kill();
        let _ = child.wait();
        Ok(result.rate())
    }

    /// An ack-latency open loop at `rate` to the router at `url` (new event ids, on a client of
    /// its own), its connections opened first, then B2 at the same rate: the loop's result, the
    /// events accepted while opening the connections, and B2's p99.
    async fn ack_loop(
        &self,
        url: &str,
        rate: f64,
        size: usize,
    ) -> anyhow::Result<(load::LoadResult, u64, f64)> {
        let load = self.open_loop_load(url, size)?;
        let warm = load.open_connections(OPEN_LOOP_CONNECTIONS).await?;
        let open = load.open_loop(rate, self.args.duration).await;
        let b2 = self.b2_open_p99(rate, size).await?;
        Ok((open, warm, b2))
    }

    /// B2's p99 ack latency under the same open-loop rate: what the load generator and HTTP
    /// alone cost, so that fanout's p99 can be read against it.
    async fn b2_open_p99(&self, rate: f64, size: usize) -> anyhow::Result<f64> {
        let (mut child, url) = self.spawn_b2()?;
        // The router's open loop follows its closed loop; B2's follows a short one too (without
        // it, B2's open loop had started with a 40-100 ms stall in some runs, measured with
        // FANOUT_BENCH_STALLS). Then, as for the router, the open loop's whole set of
        // connections is opened before its clock starts, on a client that keeps them.
        self.load(&url, size)
            .closed_loop(self.args.connections, B2_WARM_UP, None, None)
            .await;
        let load = self.open_loop_load(&url, size)?;
        load.open_connections(OPEN_LOOP_CONNECTIONS).await?;
        let result = load.open_loop(rate, self.args.duration).await;
        let _ = child.kill();
        let _ = child.wait();
        Ok(result.ack_ms(0.99))
    }

    /// B3 with `size`-byte bodies, in a child process pinned like the router: requests/s and
    /// that process's CPU time per request.
    fn b3(&self, size: usize) -> anyhow::Result<B3> {
        let exe = std::env::current_exe()?;
        let url = format!("{}/b3/0", self.receiver.base);
        let seconds = self.args.duration.as_secs_f64().min(3.0).to_string();
        let mut command = router::pinned(&exe, self.cpu);
        let output = command
            .args([
                "--b3",
                &url,
                "--duration",
                &format!("{seconds}s"),
                "--connections",
                "64",
                "--size",
                &size.to_string(),
            ])
            .env(PINNED_ENV, "1")
            .output()?;
        if !output.status.success() {
            bail!("B3 failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let parse = || -> Option<B3> {
            let (rate, cpu_us) = text.trim().split_once(' ')?;
            Some(B3 {
                rate: rate.parse().ok()?,
                cpu_us: cpu_us.parse().ok()?,
            })
        };
        let b3 = parse().with_context(|| format!("B3 output {text:?}"))?;
        println!(
            "   B3 ({size} B): {:.0} requests/s, {:.1} µs of CPU time each",
            b3.rate, b3.cpu_us
        );
        Ok(b3)
    }

    /// Scenario 1: durable ingest throughput and ack latency, by fan-out and event size.
    async fn ingest(&mut self) -> anyhow::Result<()> {
        let mut configs: Vec<(usize, usize)> = vec![
            (1, self.args.size),
            (4, self.args.size),
            (16, self.args.size),
        ];
        if self.args.size == 1024 {
            configs.push((1, 256));
            configs.push((1, 16 * 1024));
        }
        if !self.args.ingest_cases.is_empty() {
            configs = self
                .args
                .ingest_cases
                .iter()
                .map(|case| {
                    let (fanout, size) = case
                        .split_once('x')
                        .context("an ingest case is FANOUTxBYTES")?;
                    Ok((fanout.parse()?, size.parse()?))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        for (fanout, size) in configs {
            println!("== ingest: fan-out {fanout}, {size} B");
            let (mut rates, mut p99_full, mut p99_half, mut b2_p99) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut drain, mut connections) = (report::Runs::default(), Vec::new());
            let (mut at_target, mut b2_at_target) = (Vec::new(), Vec::new());
            for run in 0..self.args.runs {
                self.receiver.reset();
                self.receiver.stall();
                let subscribers = vec![
                    Sub {
                        kind: "stall",
                        concurrency: self.args.ingest_concurrency,
                    };
                    fanout
                ];
                let (_dir, router) = self.start_router(&subscribers);
                let load = self.load(&router.url, size);
                let closed = load
                    .closed_loop(self.args.connections, self.args.duration, None, None)
                    .await;
                rates.push(closed.rate());
                p99_full.push(closed.ack_ms(0.99));
                let (open, warm, b2) = self
                    .ack_loop(&router.url, closed.rate() * 0.5, size)
                    .await?;
                p99_half.push(open.ack_ms(0.99));
                b2_p99.push(b2);
                let mut accepted = closed.accepted + warm + open.accepted;
                let mut failures = vec![closed, open];
                if (fanout, size) == TARGET_CASE {
                    // The target's own reading of "half that rate": half of 25,000/s (new event
                    // ids: the same ones would be answered as duplicates).
                    let (open, warm, b2) =
                        self.ack_loop(&router.url, TARGET_HALF_RATE, size).await?;
                    at_target.push(open.ack_ms(0.99));
                    b2_at_target.push(b2);
                    accepted += warm + open.accepted;
                    failures.push(open);
                }
                let failed: u64 = failures.iter().map(|result| result.failed).sum();
                if failed > 0 {
                    bail!(
                        "ingest: {failed} requests failed, the first: {}",
                        failures
                            .into_iter()
                            .find_map(|result| result.first_failure)
                            .unwrap_or_default()
                    );
                }
                // Delivery alone: release the subscribers and time the drain of what was
                // accepted, with no ingest beside it (what B3 measures).
                let expected = accepted * fanout as u64;
                let before = self.b3(size)?;
                let (rate, cpu) = self.drain(router.pid(), expected).await;
                connections.push(self.receiver.connections() as f64);
                if run + 1 == self.args.runs {
                    // Correctness on the last run: everything arrives.
                    self.expect_delivered(expected, Duration::from_secs(300))
                        .await?;
                }
                router.stop();
                drain.push(rate, cpu, Some(B3::mean(before, self.b3(size)?)));
            }
            self.report
                .drain(fanout, size, &drain, Stat::of(&connections));
            self.report.ingest(
                fanout,
                size,
                Stat::of(&rates),
                Stat::of(&p99_full),
                Stat::of(&p99_half),
                Stat::of(&b2_p99),
            );
            if !at_target.is_empty() {
                self.report.ingest_at_target(
                    TARGET_HALF_RATE,
                    Stat::of(&at_target),
                    Stat::of(&b2_at_target),
                );
            }
        }
        Ok(())
    }

    /// Releases the stalled subscribers and measures deliveries/s and the router's CPU per
    /// delivery until `expected` have arrived or the run's duration is over.
    async fn drain(&self, pid: u32, expected: u64) -> (f64, f64) {
        let (first, at) = (self.receiver.requests(), Instant::now());
        let cpu = router::cpu_of(pid).unwrap_or_default();
        self.receiver.release();
        let deadline = at + self.args.duration;
        while self.receiver.requests() - first < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let delivered = (self.receiver.requests() - first) as f64;
        let cpu = router::cpu_of(pid).unwrap_or_default().saturating_sub(cpu);
        (
            delivered / at.elapsed().as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / delivered.max(1.0),
        )
    }

    /// Scenario 2: end-to-end deliveries per second and ingest-to-receiver latency.
    /// Returns the fan-out-1 maximum in events per second.
    async fn end_to_end(&mut self, report: bool) -> anyhow::Result<f64> {
        let mut max_fanout1 = 0.0;
        let mut cases: Vec<(usize, usize)> = self
            .args
            .e2e_fanouts
            .iter()
            .map(|fanout| (*fanout, 1))
            .collect();
        if report && self.args.e2e_batch > 1 {
            let batched: Vec<(usize, usize)> = cases
                .iter()
                .map(|(fanout, _)| (*fanout, self.args.e2e_batch))
                .collect();
            cases.extend(batched);
        }
        for (fanout, batch) in cases {
            println!("== end-to-end: fan-out {fanout}, {batch} event(s) per request");
            let mut runs_of = report::Runs::default();
            let runs = if report { self.args.runs } else { 1 };
            // With `--flamegraphs`, one more run with perf attached, reported apart.
            let profiled = self.args.flamegraphs.clone().filter(|_| report);
            for run in 0..runs + usize::from(profiled.is_some()) {
                let profiling = profiled.as_deref().filter(|_| run == runs);
                self.receiver.reset();
                // The B3s this run is compared with, just before and just after it (not needed
                // unreported or profiled).
                let before = if report && profiling.is_none() {
                    Some(self.b3(self.args.size)?)
                } else {
                    None
                };
                // 64 attempts in flight in all at fan-out 1 (as B3 has); with more subscribers,
                // each keeps fanout's default of 16.
                let concurrency = if fanout == 1 { 64 } else { 16 };
                let subscribers = vec![
                    Sub {
                        kind: "ok",
                        concurrency
                    };
                    fanout
                ];
                let (_dir, router) = self.start_router(&subscribers);
                let load = self.load_batched(&router.url, self.args.size, batch);
                let window = self.args.duration;
                let pid = router.pid();
                // Batches carry many events per request: fewer connections keep the lag bound.
                let connections = if batch > 1 { 8 } else { self.args.connections };
                let lag = self.lag(|state| &state.requests, fanout as u64, connections, batch);
                let measure = async {
                    tokio::time::sleep(window / 5).await;
                    let (first, at) = (self.receiver.requests(), Instant::now());
                    let cpu = router::cpu_of(pid).unwrap_or_default();
                    let held = lag.held();
                    let recording = profiling.map(|dir| {
                        let name = format!("e2e-fanout{fanout}-batch{batch}");
                        let title = format!(
                            "fanout, sustained end to end: fan-out {fanout}, {batch} event(s) per request, {} B events",
                            self.args.size
                        );
                        profile::start(pid, window * 3 / 5, dir, &name, title)
                    });
                    tokio::time::sleep(window * 3 / 5).await;
                    let delivered = (self.receiver.requests() - first) as f64;
                    let cpu = router::cpu_of(pid).unwrap_or_default().saturating_sub(cpu);
                    let figures = (
                        delivered / at.elapsed().as_secs_f64(),
                        cpu.as_secs_f64() * 1e6 / delivered.max(1.0),
                        lag.held() - held,
                    );
                    // After the window's clock is read: reading /proc/net/tcp is no part of it.
                    println!(
                        "   connections to the receiver at the window's end: {}",
                        self.receiver.connections()
                    );
                    (figures, recording)
                };
                let (closed, ((rate, cpu, held), recording)) = tokio::join!(
                    load.closed_loop(connections, window, None, Some(lag.clone())),
                    measure
                );
                println!("   senders held back at the lag bound in the window: {held} times");
                self.expect_delivered(closed.accepted * fanout as u64, Duration::from_secs(300))
                    .await?;
                router.stop();
                if let Some(recording) = recording {
                    let subtitle = format!(
                        "{rate:.0} deliveries/s with perf attached, {cpu:.1} µs of the router's CPU per delivery"
                    );
                    let svg = recording?.finish(subtitle)?;
                    println!("   flame graph (this run not reported): {}", svg.display());
                    continue;
                }
                if held == 0 {
                    runs_of.unsustained();
                }
                let b3 = match before {
                    Some(before) => Some(B3::mean(before, self.b3(self.args.size)?)),
                    None => None,
                };
                runs_of.push(rate, cpu, b3);
            }
            if fanout == 1 && batch == 1 {
                max_fanout1 = runs_of.rate().median;
            }
            if report {
                self.report.deliveries(fanout, batch, &runs_of);
            }
        }
        // The latency runs are set by the fan-out-1 maximum (not measured: no latency runs), or
        // by `FANOUT_BENCH_E2E_MAX`, so that two builds compared are loaded alike. Only they are:
        // the isolation and backlog scenarios still take the measured maximum.
        let latency_max = match std::env::var(E2E_MAX_ENV) {
            Ok(fixed) => fixed
                .parse()
                .with_context(|| format!("{E2E_MAX_ENV} is a rate in events/s"))?,
            Err(_) => max_fanout1,
        };
        if report && latency_max > 0.0 {
            for percent in [25u32, 50, 75] {
                println!("== end-to-end latency at {percent} % of max");
                let rate = latency_max * f64::from(percent) / 100.0;
                let (mut p50, mut p99, mut p999) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..self.args.runs {
                    self.receiver.reset();
                    let (_dir, router) = self.start_router(&[Sub {
                        kind: "ok",
                        concurrency: 64,
                    }]);
                    let load = self.load(&router.url, self.args.size);
                    let open = load.open_loop(rate, self.args.duration).await;
                    self.expect_delivered(open.accepted, Duration::from_secs(120))
                        .await?;
                    let latency = self.receiver.latency();
                    p50.push(load::ms(&latency, 0.5));
                    p99.push(load::ms(&latency, 0.99));
                    p999.push(load::ms(&latency, 0.999));
                    router.stop();
                }
                self.report.latency(
                    percent,
                    rate,
                    Stat::of(&p50),
                    Stat::of(&p99),
                    Stat::of(&p999),
                );
            }
        }
        Ok(max_fanout1)
    }

    /// Scenario 3: one healthy subscriber beside a slow (2 s), a failing (500) and a silent one.
    async fn isolation(&mut self, max_events: f64) -> anyhow::Result<()> {
        let healthy = Sub {
            kind: "ok",
            concurrency: 64,
        };
        let unhealthy = [
            healthy,
            Sub {
                kind: "slow",
                concurrency: 64,
            },
            Sub {
                kind: "fail",
                concurrency: 64,
            },
            Sub {
                kind: "hang",
                concurrency: 64,
            },
        ];
        // The circuit breaker is off by default; the third layout turns it on (defaults).
        let layouts: [(&str, [Sub; 4], &str); 3] = [
            ("all healthy", [healthy; 4], ""),
            ("1 healthy + slow, 500, silent", unhealthy, ""),
            (
                "1 healthy + slow, 500, silent, circuit breakers on",
                unhealthy,
                "    circuit_breaker: {}\n",
            ),
        ];
        let rate = max_events * 0.5 / 4.0;
        for (name, subscribers, extra) in layouts {
            println!("== isolation: {name}");
            let (mut throughput, mut p99) = (Vec::new(), Vec::new());
            for _ in 0..self.args.runs {
                self.receiver.reset();
                let dir = tempfile::tempdir()?;
                let config = router::write_config_with(
                    dir.path(),
                    &self.receiver.base,
                    &subscribers,
                    "strict",
                    extra,
                );
                let router = Router::start(&config, &dir.path().join("data"), self.cpu);
                let load = self.load(&router.url, self.args.size);
                let healthy_count =
                    subscribers.iter().filter(|sub| sub.kind == "ok").count() as u64;
                // The healthy subscribers' sustained rate: a closed loop held to a bounded lag
                // of their deliveries, measured over the middle of the run.
                let lag = self.lag(
                    |state| &state.ok_requests,
                    healthy_count,
                    self.args.connections,
                    1,
                );
                let window = self.args.duration;
                let measure = async {
                    tokio::time::sleep(window / 5).await;
                    let (first, at, held) =
                        (self.receiver.ok_requests(), Instant::now(), lag.held());
                    tokio::time::sleep(window * 3 / 5).await;
                    println!(
                        "   senders held back at the lag bound in the window: {} times",
                        lag.held() - held
                    );
                    (self.receiver.ok_requests() - first) as f64
                        / healthy_count as f64
                        / at.elapsed().as_secs_f64()
                };
                let (closed, rate_seen) = tokio::join!(
                    load.closed_loop(self.args.connections, window, None, Some(lag.clone())),
                    measure
                );
                self.wait_ok(closed.accepted * healthy_count).await?;
                throughput.push(rate_seen);
                self.receiver.reset();
                // Its p99 under a fixed rate (all healthy: half its maximum).
                let open = load.open_loop(rate, self.args.duration).await;
                self.wait_ok(open.accepted * healthy_count).await?;
                p99.push(load::ms(&self.receiver.latency(), 0.99));
                router.stop();
            }
            self.report
                .isolation(name, Stat::of(&throughput), rate, Stat::of(&p99));
        }
        Ok(())
    }

    async fn wait_ok(&self, expected: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.receiver.ok_requests() < expected {
            if Instant::now() > deadline {
                bail!(
                    "correctness: {} of {expected} deliveries to healthy subscribers arrived",
                    self.receiver.ok_requests()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Scenarios 4 and 5: a backlog while the subscriber is down, SIGKILL, recovery and drain.
    async fn backlog(&mut self, steady_rate: f64) -> anyhow::Result<()> {
        let total = self
            .args
            .backlog
            .unwrap_or(if self.args.quick { 100_000 } else { 1_000_000 });
        println!("== backlog: {total} events of {} B", self.args.size);
        self.receiver.reset();
        self.receiver.stall();
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let config = router::write_config(
            dir.path(),
            &self.receiver.base,
            &[Sub {
                kind: "stall",
                concurrency: 16,
            }],
            "strict",
        );
        let router = Router::start(&config, &data, self.cpu);
        let load = self.load(&router.url, self.args.size);
        let pid = router.pid();
        let sampler = tokio::spawn({
            let data = data.clone();
            async move {
                let mut samples = Vec::new();
                let started = Instant::now();
                loop {
                    let rss = router::rss_of(pid);
                    let Some(rss) = rss else { break };
                    samples.push((
                        started.elapsed().as_secs_f64(),
                        rss,
                        router::dir_size(&data),
                    ));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                samples
            }
        });
        let ingest = load
            .closed_loop(
                self.args.connections,
                Duration::from_secs(3600),
                Some(total),
                None,
            )
            .await;
        let logical = ingest.accepted * self.args.size as u64;
        let disk_during = router::dir_size(&data);
        let rss_end = router.rss();
        // Recovery: SIGKILL with the backlog in place.
        router.kill9();
        let samples = sampler.await?;
        let restart = Instant::now();
        let router = Router::start(&config, &data, self.cpu);
        let time_to_listen = router.time_to_listen;
        let restart_ns = receiver::now_ns() - time_to_listen.as_nanos() as u64;
        let before = self.receiver.requests();
        let cpu_before = router::cpu_of(router.pid()).unwrap_or_default();
        self.receiver.release();
        let mut windows = Vec::new();
        let mut time_to_full = None;
        let mut last = (Instant::now(), self.receiver.requests());
        let deadline = Instant::now() + Duration::from_secs(1800);
        while self.receiver.unique() < ingest.accepted {
            if Instant::now() > deadline {
                bail!(
                    "backlog: only {} of {} delivered after the restart",
                    self.receiver.unique(),
                    ingest.accepted
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = (Instant::now(), self.receiver.requests());
            let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
            windows.push(rate);
            if time_to_full.is_none() && rate >= 0.9 * steady_rate {
                time_to_full = Some(restart.elapsed());
            }
            last = now;
        }
        let drain_time = restart.elapsed();
        let drain_cpu = router::cpu_of(router.pid())
            .unwrap_or_default()
            .saturating_sub(cpu_before);
        let first_delivery =
            Duration::from_nanos(self.receiver.first_delivery_ns().saturating_sub(restart_ns));
        self.expect_delivered(ingest.accepted, Duration::from_secs(1))
            .await?;
        let duplicates = (self.receiver.requests() - before).saturating_sub(ingest.accepted);
        let disk_after = router::dir_size(&data);
        let log_after = router::dir_size(&data.join("log"));
        let rss_drain = router.rss();
        router.stop();
        self.report.backlog(report::Backlog {
            events: ingest.accepted,
            size: self.args.size,
            ingest_rate: ingest.rate(),
            samples,
            rss_end,
            rss_drain,
            disk_during,
            disk_after,
            log_after,
            logical,
            time_to_listen,
            first_delivery,
            time_to_full,
            drain_rate: ingest.accepted as f64 / drain_time.as_secs_f64(),
            drain_cpu_us: drain_cpu.as_secs_f64() * 1e6 / ingest.accepted as f64,
            steady_rate,
            duplicates,
        });
        Ok(())
    }
}
