//! `dossier bench run`: the side-by-side benchmark. Generates (or reuses) a workload, loads it
//! into a fresh `dossier serve` child process through the API, runs the fixed export jobs of
//! [`super::plan`] a few times each, then has DuckDB do the same selections over the same files
//! and compares the rows. Times are medians; peak memory is the server process's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use dossier_model::tenancy::OrgId;

use super::peer::{check_available, run_peer};
use super::plan::{JOB_NAMES, PeerPlan, PeerSource, jobs};
use super::report::{JobReport, median, print_json, print_table};
use super::server::ChildServer;
use crate::commands::demo::DEMO_ORG;
use crate::remote::{Remote, RemoteArgs};
use crate::storage::{LakeLocation, StorageLocations};
use crate::workload::{LoadedDataset, load_generated};

const TARGET_DATASET: &str = include_str!("../../../assets/create-dataset.json");

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Customers in the generated population
    #[arg(long)]
    pub profiles: u64,
    /// Seed of the generated population
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Work folder: the generated data (kept and reused by later runs), the server's data dir
    /// (fresh every run) and the outputs
    #[arg(long, default_value = "bench-work")]
    pub work: PathBuf,
    /// Runs of each job, ours and DuckDB's; the report shows medians
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Only these jobs (comma-separated names)
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(JOB_NAMES))]
    pub jobs: Vec<String>,
    /// One JSON object per job instead of the table
    #[arg(long)]
    pub json: bool,
    /// Skip DuckDB (no ratio, no row check)
    #[arg(long)]
    pub no_peer: bool,
    /// The Python that has the duckdb and pyarrow packages
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The format Dossier ingests: the Parquet files DuckDB reads, or the same records as JSON
    /// lines (AEP's usual input; measures parsing too)
    #[arg(long, value_enum, default_value = "parquet")]
    pub ingest: super::generate::FormatArg,
    /// Threads DuckDB may use (default: the machine's cores, like Dossier)
    #[arg(long)]
    pub peer_threads: Option<usize>,
    /// Reuse the loaded server data dir of an earlier run of the same workload (its
    /// `bench-load.json`) instead of ingesting again: for repeating export measurements at a
    /// size whose load takes a quarter of an hour. The ingestion figures are the saved ones.
    #[arg(long)]
    pub reuse_load: bool,
}

/// What a finished load leaves in the server's data dir, so a later run can skip it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SavedLoad {
    profiles: u64,
    seed: u64,
    ingest: String,
    client_id: String,
    client_secret: String,
    loaded: Vec<LoadedDataset>,
    ingest_peak_bytes: u64,
    policy: Value,
    dataset: String,
}

const SAVED_LOAD: &str = "bench-load.json";

/// The primary identity namespace of each generated dataset: what keys its rows to profiles.
fn primary_namespace(key: &str) -> &'static str {
    match key {
        "crm" => "CRMID",
        "loyalty" => "LoyaltyID",
        _ => "ECID",
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Generates the workload unless `dir` already holds this one (same size, seed and format).
pub(super) async fn ensure_workload(
    profiles: u64,
    seed: u64,
    dir: &Path,
    format: dossier_bench::OutputFormat,
) -> anyhow::Result<Value> {
    let manifest_path = dir.join(dossier_bench::MANIFEST_FILE);
    let format_name = match format {
        dossier_bench::OutputFormat::Parquet => "parquet",
        dossier_bench::OutputFormat::JsonLines => "json",
    };
    if let Ok(manifest) = read_json(&manifest_path)
        && manifest["profiles"] == json!(profiles)
        && manifest["seed"] == json!(seed)
        && manifest["format"] == format_name
    {
        eprintln!("reusing the workload in {}", dir.display());
        return Ok(manifest);
    }
    eprintln!("generating {profiles} profiles into {}", dir.display());
    let mut options = dossier_bench::GenerateOptions::new(profiles, seed, dir);
    options.format = format;
    options.overwrite = true;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || dossier_bench::generate(&options, |_| {})).await??;
    eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
    read_json(&manifest_path)
}

/// A server data dir with the benchmark's API client, started as often as needed.
pub(super) struct BenchServer {
    dir: PathBuf,
    client_id: String,
    client_secret: String,
}

impl BenchServer {
    /// A data dir loaded by an earlier run, with its client.
    fn existing(dir: &Path, saved: &SavedLoad) -> Self {
        Self {
            dir: dir.to_path_buf(),
            client_id: saved.client_id.clone(),
            client_secret: saved.client_secret.clone(),
        }
    }

    /// Empties `dir` and creates the client.
    pub(super) async fn create(dir: &Path) -> anyhow::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        let meta = StorageLocations::in_data_dir(dir).open_metadata().await?;
        let issued = meta.create_client(&OrgId::parse(DEMO_ORG)?, None).await?;
        meta.close().await;
        Ok(Self {
            dir: dir.to_path_buf(),
            client_id: issued.client.client_id.to_string(),
            client_secret: issued.secret,
        })
    }

    /// Starts a `dossier serve` process on the data dir and connects to it.
    pub(super) async fn start(&self) -> anyhow::Result<(ChildServer, Remote)> {
        let server = ChildServer::spawn(&self.dir)?;
        let remote = Remote::connect(RemoteArgs {
            url: server.base.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            org: DEMO_ORG.into(),
            sandbox: "prod".into(),
        })
        .await?;
        Ok((server, remote))
    }
}

fn print_ingestion(loaded: &[LoadedDataset], peak: u64) {
    let records: i64 = loaded.iter().map(|d| d.records).sum();
    let seconds: f64 = loaded.iter().map(|d| d.seconds).sum();
    eprintln!("ingestion (upload, validate, convert, commit, identity graph):");
    for d in loaded {
        eprintln!(
            "  {:<8} {:>10} records {:>8.1} s {:>10.0} records/s",
            d.key,
            d.records,
            d.seconds,
            d.records as f64 / d.seconds.max(1e-9)
        );
    }
    eprintln!(
        "  {:<8} {:>10} records {:>8.1} s {:>10.0} records/s, server peak {:.0} MiB",
        "total",
        records,
        seconds,
        records as f64 / seconds.max(1e-9),
        peak as f64 / (1024.0 * 1024.0)
    );
}

/// Files under `root` whose name ends with `suffix`, sorted.
fn files_under(root: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The lake folder of the bench sandbox (`<lake>/<org>/prod`), however the store encodes the org.
/// The bench's server always runs on its data dir's default lake (see `ChildServer::spawn`).
fn sandbox_dir(server_dir: &Path) -> anyhow::Result<PathBuf> {
    let LakeLocation::Local(lake) = StorageLocations::in_data_dir(server_dir).lake else {
        unreachable!("the default lake is a local folder")
    };
    std::fs::read_dir(&lake)?
        .flatten()
        .map(|e| e.path().join("prod"))
        .find(|p| p.is_dir())
        .with_context(|| format!("no sandbox folder in {}", lake.display()))
}

/// The newest identity graph snapshot: the components the exports keyed profiles by.
fn latest_snapshot(sandbox: &Path) -> anyhow::Result<PathBuf> {
    files_under(&sandbox.join("_profile").join("identity-graph"), ".parquet")
        .into_iter()
        .max_by_key(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.trim_start_matches('v')
                .split('-')
                .next()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(-1)
        })
        .context("the server wrote no identity graph snapshot")
}

struct JobRun {
    seconds: f64,
    peak: u64,
    job: Value,
}

/// Polls the job at `path` (an export or a segment job) until it has ended.
pub(super) async fn wait_until_ended(remote: &Remote, path: &str) -> anyhow::Result<Value> {
    loop {
        let job = remote.get_json(path).await?;
        if matches!(job["status"].as_str(), Some("SUCCEEDED" | "FAILED" | "CANCELLED")) {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_job(server: &ChildServer, remote: &Remote, body: &Value) -> anyhow::Result<JobRun> {
    server.reset_peak()?;
    let started = Instant::now();
    let created = remote.post_json("/data/core/ups/export/jobs", body).await?;
    let id = created["id"].as_i64().context("the job answer has no id")?;
    let job = wait_until_ended(remote, &format!("/data/core/ups/export/jobs/{id}")).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = server.peak_rss_bytes()?;
    if job["status"] != "SUCCEEDED" {
        bail!("export job {id} ended {}: {}", job["status"], job["errors"]);
    }
    Ok(JobRun { seconds, peak, job })
}

/// The job's batches: `destination.batchId`, or one per segment under `destination.batches`.
fn batch_ids(job: &Value) -> Vec<String> {
    let destination = &job["destination"];
    match destination["batches"].as_array() {
        Some(batches) => batches
            .iter()
            .filter_map(|b| b["batchId"].as_str())
            .map(str::to_owned)
            .collect(),
        None => destination["batchId"].as_str().map(str::to_owned).into_iter().collect(),
    }
}

async fn batch_records(remote: &Remote, job: &Value) -> anyhow::Result<u64> {
    let mut rows = 0;
    for id in batch_ids(job) {
        let id = id.as_str();
        let catalog = remote
            .get_json(&format!("/data/foundation/catalog/batches/{id}"))
            .await?;
        rows += catalog[id]["recordCount"].as_u64().unwrap_or(0);
    }
    Ok(rows)
}

fn peer_sources(data: &Path, manifest: &Value, loaded: &[LoadedDataset]) -> anyhow::Result<Vec<PeerSource>> {
    let mut sources = Vec::new();
    for (order, dataset) in loaded.iter().enumerate() {
        let entry = &manifest["datasets"][&dataset.key];
        let files = entry["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["path"].as_str())
            .map(|p| data.join(p).to_string_lossy().into_owned())
            .collect();
        let descriptors = read_json(&data.join(entry["descriptors"].as_str().unwrap_or_default()))?;
        let identity_fields = descriptors
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let path = d["xdm:sourceProperty"]
                    .as_str()?
                    .trim_start_matches('/')
                    .replace('/', ".");
                Some((path, d["xdm:namespace"].as_str()?.to_owned()))
            })
            .collect();
        let events = entry["class"].as_str().is_some_and(|c| c.ends_with("experienceevent"));
        sources.push(PeerSource {
            key: dataset.key.clone(),
            kind: if events { "events" } else { "records" },
            files,
            ingested_ms: dataset.completed_ms,
            order,
            primary_namespace: primary_namespace(&dataset.key),
            identity_fields,
        });
    }
    Ok(sources)
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !args.no_peer {
        check_available(&args.python)?;
    }
    std::fs::create_dir_all(&args.work)?;
    let work = std::fs::canonicalize(&args.work)?;
    let data = work.join(format!("data-{}-seed{}", args.profiles, args.seed));
    let manifest = ensure_workload(args.profiles, args.seed, &data, dossier_bench::OutputFormat::Parquet).await?;
    // The same seed gives the same records in either format, so DuckDB can read the Parquet
    // files while Dossier ingests JSON lines.
    let ingested = match args.ingest {
        super::generate::FormatArg::Parquet => data.clone(),
        super::generate::FormatArg::Json => {
            let dir = work.join(format!("data-{}-seed{}-json", args.profiles, args.seed));
            ensure_workload(args.profiles, args.seed, &dir, dossier_bench::OutputFormat::JsonLines).await?;
            dir
        }
    };
    let server_dir = work.join(format!("server-{}", args.profiles));
    let ingest_name = format!("{:?}", args.ingest).to_lowercase();
    let saved = match args.reuse_load {
        true => read_json(&server_dir.join(SAVED_LOAD))
            .ok()
            .and_then(|v| serde_json::from_value::<SavedLoad>(v).ok())
            .filter(|s| s.profiles == args.profiles && s.seed == args.seed && s.ingest == ingest_name),
        false => None,
    };
    let (bench_server, loaded, policy, dataset) = match saved {
        Some(saved) => {
            eprintln!(
                "reusing the loaded data dir {} (saved ingestion figures):",
                server_dir.display()
            );
            print_ingestion(&saved.loaded, saved.ingest_peak_bytes);
            let server = BenchServer::existing(&server_dir, &saved);
            (server, saved.loaded, saved.policy, saved.dataset)
        }
        None => {
            let (server, saved) = load_fresh(&server_dir, &ingested, (args.profiles, args.seed, &ingest_name)).await?;
            (server, saved.loaded, saved.policy, saved.dataset)
        }
    };
    let incremental_from = {
        // The incremental job exports what the last loaded dataset touched.
        let mut completions: Vec<i64> = loaded.iter().map(|d| d.completed_ms).collect();
        completions.sort_unstable();
        completions[completions.len().saturating_sub(2)]
    };
    let sandbox = sandbox_dir(&server_dir)?;
    let mut reports = Vec::new();
    let mut peer_jobs = Vec::new();
    run_jobs(
        &args,
        &bench_server,
        &policy,
        &dataset,
        incremental_from,
        &sandbox,
        &mut reports,
        &mut peer_jobs,
    )
    .await?;
    finish_run(&args, &work, &data, &manifest, &loaded, &sandbox, reports, peer_jobs)
}

/// Creates the server data dir, loads the workload, creates the merge policy and the target
/// dataset, waits for the identity graph, and saves what a `--reuse-load` run needs.
async fn load_fresh(
    server_dir: &Path,
    ingested: &Path,
    (profiles, seed, ingest): (u64, u64, &str),
) -> anyhow::Result<(BenchServer, SavedLoad)> {
    let bench_server = BenchServer::create(server_dir).await?;
    let (server, remote) = bench_server.start().await?;

    server.reset_peak()?;
    let loaded = load_generated(&remote, ingested).await?;
    let ingest_peak = server.peak_rss_bytes()?;
    print_ingestion(&loaded, ingest_peak);

    let policy = remote
        .post_json(
            "/data/core/ups/config/mergePolicies",
            &json!({"name": "Bench: stitched, latest wins", "schema": {"name": "_xdm.context.profile"},
                    "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
                    "default": true}),
        )
        .await?;
    let created = remote
        .post_json(
            "/data/foundation/catalog/dataSets",
            &serde_json::from_str(TARGET_DATASET)?,
        )
        .await?;
    let dataset = created[0]
        .as_str()
        .context("no dataset reference")?
        .trim_start_matches("@/dataSets/")
        .to_owned();

    // The identity graph folds each batch after its commit, in the background: a first export
    // (selecting nothing) waits for the last fold, so no measured job pays for ingestion.
    let settle = Instant::now();
    let warm_up = json!({"filter": {"segments": [{"segmentNs": "bench", "segmentId": "warm-up"}]},
                             "mergePolicy": {"id": policy["id"], "version": policy["version"]},
                             "destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"}});
    run_job(&server, &remote, &warm_up).await?;
    eprintln!(
        "  identity graph settled {:.1} s after the last batch (a first export selecting nothing)",
        settle.elapsed().as_secs_f64()
    );
    // Jobs run on servers of their own (below): this one must not claim them.
    server.stop()?;
    let saved = SavedLoad {
        profiles,
        seed,
        ingest: ingest.to_owned(),
        client_id: bench_server.client_id.clone(),
        client_secret: bench_server.client_secret.clone(),
        loaded,
        ingest_peak_bytes: ingest_peak,
        policy,
        dataset,
    };
    std::fs::write(server_dir.join(SAVED_LOAD), serde_json::to_string_pretty(&saved)?)?;
    Ok((bench_server, saved))
}

/// Runs each export job of the plan on a server of its own, `--runs` times.
#[allow(clippy::too_many_arguments)]
async fn run_jobs(
    args: &RunArgs,
    bench_server: &BenchServer,
    policy: &Value,
    dataset: &str,
    incremental_from: i64,
    sandbox: &Path,
    reports: &mut Vec<JobReport>,
    peer_jobs: &mut Vec<super::plan::PeerJob>,
) -> anyhow::Result<()> {
    for mut bench_job in jobs(incremental_from) {
        let name = bench_job.peer.name.clone();
        if !args.jobs.is_empty() && !args.jobs.contains(&name) {
            continue;
        }
        let mut body = bench_job.body.clone();
        body["mergePolicy"] = json!({"id": policy["id"], "version": policy["version"]});
        body["destination"]["datasetId"] = json!(dataset);
        body["schema"] = json!({"name": "_xdm.context.profile"});
        // Each job gets a fresh server process, so its peak memory is its own and not what an
        // earlier job or the ingestion left allocated. Its first run loads the identity graph.
        let (server, remote) = bench_server.start().await?;
        let mut times = Vec::new();
        let mut peak = 0;
        let mut last = None;
        for _ in 0..args.runs {
            let run = run_job(&server, &remote, &body).await?;
            times.push(run.seconds);
            peak = peak.max(run.peak);
            last = Some(run.job);
        }
        let job = last.expect("at least one run");
        eprintln!("{name}: ours {:.2} s (runs {times:.2?})", median(&times));
        bench_job.peer.our_batches = batch_ids(&job)
            .into_iter()
            .map(|batch| {
                let folder = sandbox.join("datasets").join(dataset).join("batches").join(batch);
                files_under(&folder, ".parquet")
                    .into_iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect()
            })
            .collect();
        reports.push(JobReport {
            job: name,
            rows: batch_records(&remote, &job).await?,
            ours_s: median(&times),
            peer_s: None,
            ratio: None,
            peak_rss_bytes: peak,
            rows_match: None,
            ours_runs_s: times,
        });
        peer_jobs.push(bench_job.peer);
        server.stop()?;
    }
    Ok(())
}

/// Runs DuckDB's side, compares, saves and prints the report.
#[allow(clippy::too_many_arguments)]
fn finish_run(
    args: &RunArgs,
    work: &Path,
    data: &Path,
    manifest: &Value,
    loaded: &[LoadedDataset],
    sandbox: &Path,
    mut reports: Vec<JobReport>,
    peer_jobs: Vec<super::plan::PeerJob>,
) -> anyhow::Result<()> {
    let mut peer_failure = None;
    if !args.no_peer {
        let plan = PeerPlan {
            threads: args
                .peer_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            runs: args.runs as usize,
            identity_graph: latest_snapshot(sandbox)?.to_string_lossy().into_owned(),
            out_dir: work.join("peer-out").to_string_lossy().into_owned(),
            sources: peer_sources(data, manifest, loaded)?,
            jobs: peer_jobs,
        };
        // Our figures are reported even when DuckDB fails (at 10 M it can run out of memory).
        let results = match run_peer(&args.python, work, &plan) {
            Ok(results) => results,
            Err(error) => {
                peer_failure = Some(error);
                Vec::new()
            }
        };
        for result in results {
            let Some(report) = reports.iter_mut().find(|r| r.job == result.job) else {
                continue;
            };
            report.peer_s = Some(result.peer_s);
            report.ratio = Some(report.ours_s / result.peer_s.max(1e-9));
            report.rows_match = Some(
                result.our_rows == report.rows
                    && result.peer_rows == result.our_rows
                    && result.peer_checksum == result.our_checksum,
            );
        }
    }
    std::fs::write(
        work.join(format!("results-{}.json", args.profiles)),
        serde_json::to_string_pretty(&reports)?,
    )?;
    if args.json {
        print_json(&reports)?;
    } else {
        print_table(&reports);
    }
    if let Some(error) = peer_failure {
        return Err(error.context("DuckDB did not finish: the report has no peer columns"));
    }
    if reports.iter().any(|r| r.rows_match == Some(false)) {
        bail!("Dossier and DuckDB exported different rows for some job (see the match column)");
    }
    Ok(())
}
