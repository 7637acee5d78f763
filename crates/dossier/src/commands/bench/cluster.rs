//! `bench run --engine cluster`: the bench's own Ballista cluster. One `dossier cluster
//! scheduler` and N executors, child processes of the bench on free loopback ports, over the
//! lake the bench's server uses; the bench server then runs with `export_engine = cluster`.

use anyhow::{Context, bail};
use dossier_testkit::ballista::BallistaCluster;

use super::stores::BenchStores;

/// Where the bench's export jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchEngine {
    /// In the server process (`export_engine = native`).
    Native,
    /// On a Ballista cluster the bench starts (`export_engine = cluster`); needs a binary built
    /// with the `cluster` feature.
    Cluster,
}

impl BenchEngine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Cluster => "cluster",
        }
    }

    /// Refuses `cluster` in a binary built without the cluster engine, before any work.
    pub fn check_built(self) -> anyhow::Result<()> {
        if self == Self::Cluster && !cfg!(feature = "cluster") {
            bail!(
                "--engine cluster: this dossier binary was built without the cluster engine; build it with \
                 `cargo build --release -p dossier --features cluster`, or use --engine native"
            );
        }
        Ok(())
    }
}

/// The setting that sets how many partitions (and so tasks) each stage of a plan has.
const TARGET_PARTITIONS: &str = "datafusion.execution.target_partitions";

/// A running bench cluster: stopped (killed) when dropped.
pub struct BenchCluster {
    cluster: BallistaCluster,
    /// Tasks the cluster runs at once: its executors times each one's concurrent tasks.
    slots: usize,
}

impl BenchCluster {
    /// Starts a scheduler and `executors` executors over the lake of `stores`, each taking the
    /// machine's cores divided by `executors` tasks at once (at least one), so the cluster uses
    /// the cores the native engine would.
    pub fn start(stores: &BenchStores, executors: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the dossier executable")?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let tasks = u16::try_from((cores / executors.max(1)).max(1)).unwrap_or(u16::MAX);
        let env: Vec<(&str, String)> = stores.env.iter().map(|(k, v)| (*k, v.clone())).collect();
        let lake_url = stores.locations.lake.url();
        eprintln!("starting a cluster: 1 scheduler, {executors} executors of {tasks} tasks, lake {lake_url}");
        let cluster = BallistaCluster::start_configured(&exe, &lake_url, executors, tasks, &env)?;
        Ok(Self {
            cluster,
            slots: executors.max(1) * usize::from(tasks),
        })
    }

    /// `df://127.0.0.1:<port>`, the server's `--cluster-url`.
    pub fn url(&self) -> String {
        self.cluster.url()
    }

    /// [`Self::url`] with `settings` (`KEY=VALUE`) as its query: what `connect` applies to every
    /// job of the server's session. Unless `settings` name it, a plan's partitions are the
    /// cluster's task slots, as docs/cluster.md advises an operator (Ballista's default of 16
    /// spends more on tasks than on work on a small cluster: BENCHMARKS.md).
    pub fn url_with(&self, settings: &[String]) -> String {
        let mut query = settings.to_vec();
        if !settings.iter().any(|s| s.starts_with(TARGET_PARTITIONS)) {
            query.insert(0, format!("{TARGET_PARTITIONS}={}", self.slots));
        }
        format!("{}?{}", self.url(), query.join("&"))
    }

    /// Starts a new peak-memory measurement of every executor.
    pub fn reset_peaks(&self) -> anyhow::Result<()> {
        for pid in self.cluster.executor_pids() {
            super::server::reset_peak(pid).context("cannot reset an executor's peak memory")?;
        }
        Ok(())
    }

    /// Each executor's peak resident memory since the last reset, in bytes, in start order.
    pub fn peaks(&self) -> anyhow::Result<Vec<u64>> {
        let peaks = self
            .cluster
            .executor_pids()
            .into_iter()
            .map(super::server::peak_rss_bytes)
            .collect::<anyhow::Result<Vec<u64>>>();
        peaks.with_context(|| format!("an executor is gone; logs:\n{}", self.cluster.logs()))
    }
}

impl BenchCluster {
    /// Every job the scheduler ran, with its stages (`/api/jobs`, `/api/job/<id>/stages`), as
    /// one JSON array: where a cluster job's time went, saved beside the report.
    pub fn jobs_with_stages(&self) -> anyhow::Result<serde_json::Value> {
        let jobs: serde_json::Value = serde_json::from_str(&self.cluster.jobs()?)?;
        let mut out = Vec::new();
        for job in jobs.as_array().into_iter().flatten() {
            let id = job["job_id"].as_str().unwrap_or_default();
            let stages = self
                .cluster
                .api(&format!("/api/job/{id}/stages"))
                .and_then(|body| Ok(serde_json::from_str::<serde_json::Value>(&body)?))
                .unwrap_or(serde_json::Value::Null);
            out.push(serde_json::json!({"job": job, "stages": stages}));
        }
        Ok(serde_json::Value::Array(out))
    }
}
