//! Running the peer engine: bench/peer_duckdb.py (embedded in the binary, so `dossier bench run`
//! works from any folder) with DuckDB's Python package.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::plan::PeerPlan;

const SCRIPT: &str = include_str!("../../../../../bench/peer_duckdb.py");

/// What the peer script reports for one job.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerResult {
    pub job: String,
    pub peer_s: f64,
    pub peer_rows: u64,
    pub peer_checksum: String,
    pub our_rows: u64,
    pub our_checksum: String,
}

/// Checks that the peer can run before spending time on ingestion.
pub fn check_available(python: &str) -> anyhow::Result<()> {
    let output = Command::new(python)
        .args(["-c", "import duckdb, pyarrow; print(duckdb.__version__)"])
        .output()
        .with_context(|| format!("cannot run {python}; install Python 3 or pass --python"))?;
    if !output.status.success() {
        bail!(
            "the peer engine needs DuckDB and pyarrow for {python}: run `{python} -m pip install duckdb pyarrow` \
             (bench/run.sh does it), or pass --no-peer"
        );
    }
    Ok(())
}

/// Runs every job of `plan` in DuckDB; one result per job, in order.
pub fn run_peer(python: &str, work: &Path, plan: &PeerPlan) -> anyhow::Result<Vec<PeerResult>> {
    let script = work.join("peer_duckdb.py");
    std::fs::write(&script, SCRIPT)?;
    let plan_path = work.join("peer-plan.json");
    std::fs::write(&plan_path, serde_json::to_string_pretty(plan)?)?;
    std::fs::create_dir_all(&plan.out_dir)?;
    let output = Command::new(python)
        .arg(&script)
        .arg(&plan_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run the peer script")?;
    if !output.status.success() {
        bail!(
            "the peer script failed ({}); its plan is {}",
            output.status,
            plan_path.display()
        );
    }
    String::from_utf8(output.stdout)?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).with_context(|| format!("unexpected peer output: {line}")))
        .collect()
}
