//! Running the peer engines: bench/peer_duckdb.py (DuckDB) and bench/peer_polars.py (Polars),
//! embedded in the binary so `dossier bench run` works from any folder. Both read the same plan
//! and print the same lines: the plan's helpers, the checksum and the report are
//! bench/peer_common.py's, written beside them whichever runs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::plan::PeerPlan;

const DUCKDB_SCRIPT: &str = include_str!("../../../../../bench/peer_duckdb.py");
const POLARS_SCRIPT: &str = include_str!("../../../../../bench/peer_polars.py");
const COMMON_MODULE: &str = include_str!("../../../../../bench/peer_common.py");

/// A peer engine the bench compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerEngine {
    Duckdb,
    Polars,
}

impl PeerEngine {
    pub fn name(self) -> &'static str {
        match self {
            PeerEngine::Duckdb => "duckdb",
            PeerEngine::Polars => "polars",
        }
    }

    fn script(self) -> &'static str {
        match self {
            PeerEngine::Duckdb => "peer_duckdb.py",
            PeerEngine::Polars => "peer_polars.py",
        }
    }

    /// The Python modules its script imports (the Polars script checks rows with DuckDB).
    fn modules(self) -> &'static str {
        match self {
            PeerEngine::Duckdb => "duckdb, pyarrow",
            PeerEngine::Polars => "polars, duckdb, pyarrow",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            PeerEngine::Duckdb => "duckdb pyarrow",
            PeerEngine::Polars => "polars duckdb pyarrow",
        }
    }
}

/// What a peer script reports for one job.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerResult {
    pub job: String,
    pub peer_s: f64,
    pub peer_rows: u64,
    pub peer_checksum: String,
    pub our_rows: u64,
    pub our_checksum: String,
    /// The formulation (DuckDB) or engine (Polars) that was fastest.
    #[serde(default)]
    pub formulation: Option<String>,
}

/// Checks that every peer can run before spending time on ingestion.
pub fn check_available(python: &str, peers: &[PeerEngine]) -> anyhow::Result<()> {
    for peer in peers {
        let output = Command::new(python)
            .args(["-c", &format!("import {}", peer.modules())])
            .output()
            .with_context(|| format!("cannot run {python}; install Python 3 or pass --python"))?;
        if !output.status.success() {
            bail!(
                "the {} peer needs {} for {python}: run `{python} -m pip install {}` (bench/run.sh \
                 does it), pass --peers without it, or pass --no-peer",
                peer.name(),
                peer.modules(),
                peer.install_hint()
            );
        }
    }
    Ok(())
}

/// Runs every job of `plan` in `peer`; one result per job, in order.
pub fn run_peer(python: &str, work: &Path, plan: &PeerPlan, peer: PeerEngine) -> anyhow::Result<Vec<PeerResult>> {
    std::fs::write(work.join(PeerEngine::Duckdb.script()), DUCKDB_SCRIPT)?;
    std::fs::write(work.join(PeerEngine::Polars.script()), POLARS_SCRIPT)?;
    std::fs::write(work.join("peer_common.py"), COMMON_MODULE)?;
    let plan_path = work.join("peer-plan.json");
    std::fs::write(&plan_path, serde_json::to_string_pretty(plan)?)?;
    std::fs::create_dir_all(&plan.out_dir)?;
    let output = Command::new(python)
        .arg(work.join(peer.script()))
        .arg(&plan_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run the {} peer script", peer.name()))?;
    if !output.status.success() {
        bail!(
            "the {} peer script failed ({}); its plan is {}",
            peer.name(),
            output.status,
            plan_path.display()
        );
    }
    String::from_utf8(output.stdout)?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("unexpected {} peer output: {line}", peer.name()))
        })
        .collect()
}
