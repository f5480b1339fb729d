//! fanout as a separate process, pinned to the router's CPU, with its routes file written for
//! each scenario; plus what is measured about it from outside (RSS, disk).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::receiver::SECRET;

/// Runs this binary instead of the one built beside the benchmark (no build is made then).
pub const BINARY_ENV: &str = "FANOUT_BENCH_BINARY";

pub struct Router {
    child: Child,
    pub url: String,
    /// How long from spawn to the "listening on" line.
    pub time_to_listen: Duration,
}

/// One subscriber of a scenario: the receiver path kind and its concurrency.
#[derive(Clone, Copy)]
pub struct Sub {
    pub kind: &'static str,
    pub concurrency: usize,
}

/// The binary built next to this example, or `FANOUT_BENCH_BINARY` (to compare two builds).
pub fn fanout_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("fanout")
}

pub fn write_config(dir: &Path, receiver: &str, subscribers: &[Sub], durability: &str) -> PathBuf {
    write_config_with(dir, receiver, subscribers, durability, "")
}

/// [`write_config`] with `extra` (indented YAML lines) added to every subscriber.
pub fn write_config_with(
    dir: &Path,
    receiver: &str,
    subscribers: &[Sub],
    durability: &str,
    extra: &str,
) -> PathBuf {
    // sled's cache as fanout's default sets it; `FANOUT_BENCH_CACHE` tries another size.
    let cache = std::env::var("FANOUT_BENCH_CACHE").unwrap_or_else(|_| "64MiB".into());
    // More `storage` settings to compare two configurations of one build: `key: value` pairs
    // separated by `;`, e.g. `FANOUT_BENCH_STORAGE="commit_delay: 0s"`.
    let storage: String = std::env::var("FANOUT_BENCH_STORAGE")
        .unwrap_or_default()
        .split(';')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| format!("  {}\n", pair.trim()))
        .collect();
    // Longer than the load generator's idle timeouts, so that it closes idle connections first.
    let keep_alive = crate::SERVER_KEEP_ALIVE.as_secs();
    let mut text = format!(
        "storage:\n  durability: {durability}\n  cache_capacity: {cache}\n{storage}server:\n  max_body_size: 1MiB\n  workers: 1\n  keep_alive: {keep_alive}s\noutbound:\n  allow_networks: [127.0.0.0/8]\nsubscribers:\n"
    );
    for (index, sub) in subscribers.iter().enumerate() {
        text.push_str(&format!(
            "  s{index}:\n    url: {receiver}/{}/{index}\n    secret: {SECRET}\n    concurrency: {}\n    timeout: 1h\n    retry: {{ initial_interval: 1s, max_interval: 5s, max_attempts: 100000, max_age: 24h }}\n",
            sub.kind, sub.concurrency
        ));
        text.push_str(extra);
    }
    let names: Vec<String> = (0..subscribers.len())
        .map(|index| format!("s{index}"))
        .collect();
    text.push_str(&format!(
        "routes:\n  - name: all\n    to: [{}]\n",
        names.join(", ")
    ));
    let path = dir.join("routes.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A command that runs `program` pinned to `cpu` with `taskset`, or unpinned.
pub fn pinned(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["-c", &cpu.to_string()]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

impl Router {
    pub fn start(config: &Path, data: &Path, cpu: Option<usize>) -> Router {
        let binary = fanout_binary();
        let mut command = pinned(&binary, cpu);
        let started = Instant::now();
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .arg("--data")
            .arg(data)
            .env(
                "RUST_LOG",
                std::env::var("FANOUT_BENCH_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fanout starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let address = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("fanout prints its address");
        Router {
            child,
            url: format!("http://{address}/events"),
            time_to_listen: started.elapsed(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.pid()).unwrap_or(0)
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stop(mut self) {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.pid())])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes under `path`.
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A `key:   123 kB` line of a /proc file, in bytes.
pub fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
}

/// Resident memory of a process in bytes (`None` once it is gone).
pub fn rss_of(pid: u32) -> Option<u64> {
    proc_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS",
    )
}

/// CPU time (user + system) the process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Clock ticks: USER_HZ, 100 on every Linux this runs on (`getconf CLK_TCK`).
    Some(Duration::from_millis(ticks * 10))
}
