//! The server under test: `dossier serve` as a child process, so that its memory is its own and
//! can be measured per job (the benchmark's client and the peers run in other processes).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use super::stores::BenchStores;

pub struct ChildServer {
    child: Child,
    pub base: String,
}

impl ChildServer {
    /// Starts `dossier serve` on an ephemeral port over `stores` and waits until it listens.
    /// Metadata and lake are given as flags so that storage URLs in the environment cannot
    /// point the server elsewhere than where the benchmark loaded; an S3 lake's credentials and
    /// endpoint are the stores' (over any AWS variables of this process). With `cluster_url`,
    /// its jobs run on that Ballista cluster (`--export-engine cluster`).
    pub fn spawn(stores: &BenchStores, cluster_url: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the dossier executable")?;
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(&stores.data_dir)
            .args(["--metadata-url", &stores.metadata_arg()])
            .args(["--lake-url", &stores.locations.lake.url()])
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(cluster_url.map_or(Vec::new(), |url| {
                vec!["--export-engine", "cluster", "--cluster-url", url]
            }))
            .envs(stores.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", server_log().map_or("warn", |_| "info"))
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start dossier serve")?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let base = loop {
            match lines.next() {
                Some(line) => {
                    if let Some(rest) = line?.strip_prefix("dossier listening on ") {
                        break rest.to_owned();
                    }
                }
                None => bail!("dossier serve stopped before listening"),
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe; keep it where asked.
        let mut log = match server_log() {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {path} (DOSSIER_BENCH_SERVER_LOG)"))?,
            ),
            None => None,
        };
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
            }
        });
        Ok(Self { child, base })
    }

    /// Stops the server gracefully (SIGTERM, as an operator would) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("could not signal dossier serve");
        }
        self.child.wait()?;
        Ok(())
    }

    /// Starts a new peak-memory measurement (Linux: writing 5 to `clear_refs` resets VmHWM).
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        reset_peak(self.child.id()).context("cannot reset the server's peak memory (needs Linux /proc)")
    }

    /// The server's peak resident memory since the last reset, in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        peak_rss_bytes(self.child.id())
    }
}

/// Starts a new peak-memory measurement of process `pid` (Linux: writing 5 to `clear_refs`
/// resets VmHWM).
pub fn reset_peak(pid: u32) -> anyhow::Result<()> {
    Ok(std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?)
}

/// Process `pid`'s peak resident memory since its last reset, in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM in /proc status")?;
    Ok(kib * 1024)
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DOSSIER_BENCH_SERVER_LOG=<file>`: the servers' `info` log is appended there (where each
/// phase of an export spent its time), instead of their warnings being dropped.
fn server_log() -> Option<String> {
    std::env::var("DOSSIER_BENCH_SERVER_LOG")
        .ok()
        .filter(|path| !path.is_empty())
}
