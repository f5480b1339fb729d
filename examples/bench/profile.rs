//! Flame graphs of the router (`--flamegraphs DIR`): `perf record` with DWARF call graphs
//! (Rust's std and the C allocator have no frame pointers) attached to the router for one
//! extra, unreported run of a case, folded and drawn by inferno. One SVG per case, its stacks
//! rooted at the router's threads: the actix worker (ingest), the tokio worker (delivery) and
//! the commit thread, so each thread's share is the width of its root. Widths are in ns of CPU
//! time (perf's `cpu-clock` period), the sampled share of the window.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use inferno::collapse::Collapse;

/// Samples per second: enough for about 1,500 stacks over a 3 s window, little enough that
/// copying each sampled stack (16 KiB) costs the router's CPU about 1 %.
const FREQUENCY: u32 = 499;
const STACK_BYTES: u32 = 16_384;

/// A `perf record` running on the router.
pub struct Recording {
    child: Child,
    data: PathBuf,
    svg: PathBuf,
    title: String,
}

/// Starts recording process `pid` for `window`, into `dir/name.svg` once finished.
pub fn start(
    pid: u32,
    window: Duration,
    dir: &Path,
    name: &str,
    title: String,
) -> anyhow::Result<Recording> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = dir.join(format!("{name}.perf.data"));
    let child = Command::new("perf")
        .args(["record", "--quiet", "-F", &FREQUENCY.to_string()])
        .arg(format!("--call-graph=dwarf,{STACK_BYTES}"))
        .args(["-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &format!("{:.3}", window.as_secs_f64())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("perf (Debian's linux-perf) is needed for --flamegraphs")?;
    Ok(Recording {
        child,
        data,
        svg: dir.join(format!("{name}.svg")),
        title,
    })
}

impl Recording {
    /// Waits for the recording, draws its flame graph (with `subtitle`, the run's figures) and
    /// removes the raw data; returns the SVG's path.
    pub fn finish(self, subtitle: String) -> anyhow::Result<PathBuf> {
        let output = self.child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "perf record failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let mut script = Command::new("perf")
            .args(["script", "--no-inline", "-i"])
            .arg(&self.data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut folded = Vec::new();
        let stdout = script.stdout.take().context("perf script's output")?;
        let mut options = inferno::collapse::perf::Options::default();
        options.annotate_kernel = true;
        inferno::collapse::perf::Folder::from(options)
            .collapse(BufReader::new(stdout), &mut folded)
            .context("folding perf script's stacks")?;
        let status = script.wait()?;
        if !status.success() || folded.is_empty() {
            bail!(
                "perf script of {} gave no stacks ({status})",
                self.data.display()
            );
        }
        let mut options = inferno::flamegraph::Options::default();
        options.title = self.title;
        options.subtitle = Some(subtitle);
        options.count_name = "ns of CPU".into();
        options.deterministic = true;
        let svg = BufWriter::new(File::create(&self.svg)?);
        inferno::flamegraph::from_reader(&mut options, folded.as_slice(), svg)
            .context("drawing the flame graph")?;
        std::fs::remove_file(&self.data)?;
        Ok(self.svg)
    }
}
