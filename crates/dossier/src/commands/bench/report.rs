//! The benchmark's output: one table for people, one JSON object per job with `--json`.

use serde::Serialize;

/// One job's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: String,
    /// The stores the server ran on (`sqlite`, `postgres-s3`).
    pub stores: String,
    /// Where the jobs ran (`native`, `cluster`).
    pub engine: String,
    /// Why the cluster engine refused the job (`EXPORT-UNSUPPORTED-501`): such a row has no
    /// rows, peer or match.
    pub unsupported: Option<String>,
    pub rows: u64,
    pub ours_s: f64,
    /// The fastest peer's time; `None` with `--no-peer`.
    pub peer_s: Option<f64>,
    /// Ours over the fastest peer's.
    pub ratio: Option<f64>,
    /// Each peer's time (`None` for a peer not run or failed); `None` with `--no-peer`.
    pub peers: Option<PeerTimes>,
    /// The peer `peer_s` is of (`duckdb`, `polars`).
    pub fastest_peer: Option<String>,
    /// The server process's peak.
    pub peak_rss_bytes: u64,
    /// Each executor's peak during the job (`--engine cluster`; empty on native).
    pub executor_peak_rss_bytes: Vec<u64>,
    /// Same row count and checksum as every peer that ran; `None` with `--no-peer`.
    pub rows_match: Option<bool>,
    /// Our rows' order-independent checksum, as the peer computes it; `None` with `--no-peer`.
    pub checksum: Option<String>,
    /// Every run's time, for the medians' spread.
    pub ours_runs_s: Vec<f64>,
}

/// Each peer engine's median time for a job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerTimes {
    pub duckdb_s: Option<f64>,
    pub polars_s: Option<f64>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn print_table(reports: &[JobReport]) {
    if let Some(first) = reports.first() {
        println!("engine: {}", first.engine);
    }
    println!(
        "{:<26} {:>10} {:>9} {:>9} {:>9} {:>7} {:>10} {:>6} {:>16}",
        "job", "rows", "ours s", "duckdb s", "polars s", "ratio", "peak MiB", "match", "executors MiB"
    );
    for r in reports {
        if r.unsupported.is_some() {
            println!("{:<26} unsupported on the cluster (EXPORT-UNSUPPORTED-501)", r.job);
            continue;
        }
        let seconds = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.2}"));
        let peers = r.peers.clone().unwrap_or_default();
        let ratio = r.ratio.map_or("-".to_owned(), |x| format!("{x:.2}"));
        let matched = match r.rows_match {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let executors = match r.executor_peak_rss_bytes.is_empty() {
            true => "-".to_owned(),
            false => r
                .executor_peak_rss_bytes
                .iter()
                .map(|b| format!("{:.0}", mib(*b)))
                .collect::<Vec<_>>()
                .join("/"),
        };
        println!(
            "{:<26} {:>10} {:>9.2} {:>9} {:>9} {:>7} {:>10.0} {:>6} {:>16}",
            r.job,
            r.rows,
            r.ours_s,
            seconds(peers.duckdb_s),
            seconds(peers.polars_s),
            ratio,
            mib(r.peak_rss_bytes),
            matched,
            executors
        );
    }
}

/// Each later set of stores' times over the first's: ingestion, then every job both ran.
pub fn print_comparison(runs: &[super::run::StoresRun]) {
    let Some((base, others)) = runs.split_first() else {
        return;
    };
    for other in others {
        println!("{} over {} (ours):", other.kind.label(), base.kind.label());
        println!(
            "{:<26} {:>14} {:>14} {:>7}",
            "step",
            format!("{} s", base.kind.name()),
            format!("{} s", other.kind.name()),
            "ratio"
        );
        let mut lines = vec![("ingestion".to_owned(), base.ingest_s, other.ingest_s)];
        for job in other.reports.iter().filter(|r| r.unsupported.is_none()) {
            if let Some(first) = base
                .reports
                .iter()
                .find(|r| r.job == job.job && r.unsupported.is_none())
            {
                lines.push((job.job.clone(), first.ours_s, job.ours_s));
            }
        }
        for (step, first, second) in lines {
            println!(
                "{step:<26} {first:>14.2} {second:>14.2} {:>7.2}",
                second / first.max(1e-9)
            );
        }
    }
}

pub fn print_json(reports: &[JobReport]) -> anyhow::Result<()> {
    for r in reports {
        println!("{}", serde_json::to_string(r)?);
    }
    Ok(())
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
