//! `dossier bench run`: the side-by-side benchmark. Generates (or reuses) a workload, loads it
//! into a fresh `dossier serve` child process through the API, runs the fixed export jobs of
//! [`super::plan`] a few times each, then has the peer engines (DuckDB, Polars) do the same
//! selections over the same files and compares the rows. Times are medians (the ratio is against
//! the fastest peer); peak memory is the server process's.
//!
//! `--stores sqlite,postgres-s3` does all of it once per set of stores (see [`super::stores`])
//! over the same generated files, then compares our times on each with the first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use dossier_model::tenancy::OrgId;

use super::cluster::{BenchCluster, BenchEngine};
use super::peer::{PeerEngine, PeerResult, check_available, run_peer};
use super::plan::{JOB_NAMES, PeerPlan, PeerSource, TOUCH_JOB, jobs};
use super::report::{JobReport, PeerTimes, median, print_comparison, print_json, print_table};
use super::server::ChildServer;
use super::stores::{BenchStores, LakeFiles, StoresKind};
use super::touch::TouchBatch;
use crate::commands::demo::DEMO_ORG;
use crate::remote::{Remote, RemoteArgs};
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
    /// Runs of each job, ours and each peer's; the report shows medians
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Only these jobs (comma-separated names)
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(JOB_NAMES))]
    pub jobs: Vec<String>,
    /// One JSON object per job instead of the table
    #[arg(long)]
    pub json: bool,
    /// Skip every peer engine (no ratio, no row check)
    #[arg(long)]
    pub no_peer: bool,
    /// The peer engines, comma-separated: each runs the same selections over the same files and
    /// must export our rows; the ratio is against the fastest
    #[arg(long, value_enum, value_delimiter = ',', default_value = "duckdb,polars")]
    pub peers: Vec<PeerEngine>,
    /// The Python that has the peers' packages (duckdb and pyarrow; polars for Polars)
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The format Dossier ingests: the Parquet files the peers read, or the same records as JSON
    /// lines (AEP's usual input; measures parsing too)
    #[arg(long, value_enum, default_value = "parquet")]
    pub ingest: super::generate::FormatArg,
    /// Threads each peer engine may use (default: the machine's cores, like Dossier)
    #[arg(long)]
    pub peer_threads: Option<usize>,
    /// Reuse the loaded server data dir of an earlier run of the same workload (its
    /// `bench-load.json`) instead of ingesting again: for repeating export measurements at a
    /// size whose load takes a quarter of an hour. The ingestion figures are the saved ones.
    /// SQLite only: a postgres-s3 run's servers are removed at its end.
    #[arg(long)]
    pub reuse_load: bool,
    /// The stores the server runs on, comma-separated; each gets its own fresh load and jobs
    /// over the same generated files, and with several the report compares our times on each
    /// with the first
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite")]
    pub stores: Vec<StoresKind>,
    /// Where the export jobs run: in the server (native), or on a Ballista cluster the bench
    /// starts over the server's lake (cluster: needs a binary built with the cluster feature)
    #[arg(long, value_enum, default_value = "native")]
    pub engine: BenchEngine,
    /// Executors of the bench's cluster (--engine cluster); each runs cores / N tasks at once
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub executors: u64,
    /// A DataFusion or Ballista setting for every job on the bench's cluster (--engine cluster),
    /// as KEY=VALUE (repeatable); added to the server's cluster_url query, as an operator would
    #[arg(long = "cluster-setting", value_name = "KEY=VALUE")]
    pub cluster_settings: Vec<String>,
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

/// A server's stores with the benchmark's API client, started as often as needed.
pub(super) struct BenchServer {
    stores: BenchStores,
    client_id: String,
    client_secret: String,
}

impl BenchServer {
    /// A SQLite data dir loaded by an earlier run, with its client.
    fn existing(dir: &Path, saved: &SavedLoad) -> Self {
        Self {
            stores: BenchStores::existing_sqlite(dir),
            client_id: saved.client_id.clone(),
            client_secret: saved.client_secret.clone(),
        }
    }

    /// Empties the SQLite data dir `dir` and creates the client.
    pub(super) async fn create(dir: &Path) -> anyhow::Result<Self> {
        Self::create_on(BenchStores::fresh(StoresKind::Sqlite, dir)?).await
    }

    /// Creates the client in fresh `stores`.
    async fn create_on(stores: BenchStores) -> anyhow::Result<Self> {
        let meta = stores.locations.open_metadata().await?;
        let issued = meta.create_client(&OrgId::parse(DEMO_ORG)?, None).await?;
        meta.close().await;
        Ok(Self {
            stores,
            client_id: issued.client.client_id.to_string(),
            client_secret: issued.secret,
        })
    }

    /// Starts a `dossier serve` process on the stores and connects to it.
    pub(super) async fn start(&self) -> anyhow::Result<(ChildServer, Remote)> {
        self.start_on(None).await
    }

    /// [`BenchServer::start`], with the jobs on the cluster at `cluster_url` when given.
    async fn start_on(&self, cluster_url: Option<&str>) -> anyhow::Result<(ChildServer, Remote)> {
        let server = ChildServer::spawn(&self.stores, cluster_url)?;
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

struct JobRun {
    seconds: f64,
    peak: u64,
    job: Value,
}

/// The code a job fails with when the cluster engine cannot run it yet (the native engine can).
const UNSUPPORTED_ON_CLUSTER: &str = "EXPORT-UNSUPPORTED-501";

/// Why the cluster engine refused `job`, if it did: such a job is a row of its own in the
/// report, neither a failure nor left out.
fn unsupported_reason(job: &Value) -> Option<String> {
    if job["status"] != "FAILED" || !job["errors"].to_string().contains(UNSUPPORTED_ON_CLUSTER) {
        return None;
    }
    let message = job["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["code"] == UNSUPPORTED_ON_CLUSTER)
        .and_then(|e| e["msg"].as_str().map(str::to_owned));
    Some(message.unwrap_or_else(|| job["errors"].to_string()))
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
    if job["status"] != "SUCCEEDED" && unsupported_reason(&job).is_none() {
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
    args.engine.check_built()?;
    let mut kinds = args.stores.clone();
    kinds.dedup();
    if args.reuse_load && kinds.iter().any(|k| *k != StoresKind::Sqlite) {
        bail!(
            "--reuse-load works with --stores sqlite only: a postgres-s3 run's PostgreSQL and SeaweedFS \
             are stopped and removed at its end, so every such run loads again"
        );
    }
    if !args.no_peer {
        check_available(&args.python, &args.peers)?;
    }
    std::fs::create_dir_all(&args.work)?;
    let work = std::fs::canonicalize(&args.work)?;
    let data = work.join(format!("data-{}-seed{}", args.profiles, args.seed));
    let manifest = ensure_workload(args.profiles, args.seed, &data, dossier_bench::OutputFormat::Parquet).await?;
    // The same seed gives the same records in either format, so the peers can read the Parquet
    // files while Dossier ingests JSON lines.
    let ingested = match args.ingest {
        super::generate::FormatArg::Parquet => data.clone(),
        super::generate::FormatArg::Json => {
            let dir = work.join(format!("data-{}-seed{}-json", args.profiles, args.seed));
            ensure_workload(args.profiles, args.seed, &dir, dossier_bench::OutputFormat::JsonLines).await?;
            dir
        }
    };
    let inputs = Inputs {
        work: &work,
        data: &data,
        ingested: &ingested,
        manifest: &manifest,
    };
    let several = kinds.len() > 1;
    let mut done = Vec::new();
    let mut failure = None;
    for kind in kinds {
        if several {
            eprintln!("== {} ==", kind.label());
        }
        let (result, problem) = run_on(&args, kind, &inputs).await?;
        if several && !args.json {
            println!("{}:", kind.label());
        }
        if args.json {
            print_json(&result.reports)?;
        } else {
            print_table(&result.reports);
        }
        if several && !args.json {
            println!();
        }
        failure = failure.or(problem);
        done.push(result);
    }
    if several && !args.json {
        print_comparison(&done);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// What every store's run shares: the work folder and the generated workload.
struct Inputs<'a> {
    work: &'a Path,
    /// The Parquet files the peers read.
    data: &'a Path,
    /// The files Dossier ingests.
    ingested: &'a Path,
    manifest: &'a Value,
}

/// One set of stores' figures.
pub(super) struct StoresRun {
    pub kind: StoresKind,
    /// Seconds of the whole ingestion.
    pub ingest_s: f64,
    pub reports: Vec<JobReport>,
}

/// Loads (or reuses) and exports on one set of stores, then has the peers check the rows. The
/// second value is what went wrong on the peer's side, if anything: reported after the tables.
async fn run_on(
    args: &RunArgs,
    kind: StoresKind,
    inputs: &Inputs<'_>,
) -> anyhow::Result<(StoresRun, Option<anyhow::Error>)> {
    let server_dir = match kind {
        StoresKind::Sqlite => inputs.work.join(format!("server-{}", args.profiles)),
        _ => inputs.work.join(format!("server-{}-{}", args.profiles, kind.name())),
    };
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
            let stores = BenchStores::fresh(kind, &server_dir)?;
            let (server, saved) = load_fresh(
                stores,
                &server_dir,
                inputs.ingested,
                (args.profiles, args.seed, &ingest_name),
            )
            .await?;
            (server, saved.loaded, saved.policy, saved.dataset)
        }
    };
    let incremental_from = {
        // The incremental job exports what the last loaded dataset touched.
        let mut completions: Vec<i64> = loaded.iter().map(|d| d.completed_ms).collect();
        completions.sort_unstable();
        completions[completions.len().saturating_sub(2)]
    };
    let lake_files = LakeFiles::new(&bench_server.stores, &inputs.work.join("lake-copy")).await?;
    let mut reports = Vec::new();
    let mut peer_jobs = Vec::new();
    // Started after the load (ingestion does not depend on the engine), stopped when dropped
    // below, before the stores.
    let cluster = match args.engine {
        BenchEngine::Native => None,
        BenchEngine::Cluster => Some(BenchCluster::start(&bench_server.stores, args.executors as usize)?),
    };
    run_jobs(
        args,
        (&bench_server, cluster.as_ref()),
        (&policy, &dataset),
        (inputs, &loaded, incremental_from),
        &lake_files,
        &mut reports,
        &mut peer_jobs,
    )
    .await?;
    let identity_graph = match args.no_peer {
        true => None,
        false => Some(lake_files.latest_snapshot().await?),
    };
    if let Some(cluster) = cluster {
        save_cluster_jobs(
            &cluster,
            &inputs.work.join(format!("cluster-jobs-{}.json", args.profiles)),
        );
    }
    // The peers read files: what they need from the lake is copied out by now.
    bench_server.stores.stop()?;
    let problem = finish_run(
        args,
        kind,
        inputs,
        &loaded,
        identity_graph.as_deref(),
        &mut reports,
        peer_jobs,
    )?;
    let run = StoresRun {
        kind,
        ingest_s: loaded.iter().map(|d| d.seconds).sum(),
        reports,
    };
    Ok((run, problem))
}

/// Saves the scheduler's jobs and stages (their times) to `path`; a bench whose numbers are in
/// does not fail for want of them.
fn save_cluster_jobs(cluster: &BenchCluster, path: &Path) {
    let saved = cluster
        .jobs_with_stages()
        .and_then(|jobs| Ok(std::fs::write(path, serde_json::to_string_pretty(&jobs)?)?));
    match saved {
        Ok(()) => eprintln!("the cluster's jobs and stages: {}", path.display()),
        Err(error) => eprintln!("could not save the cluster's jobs and stages: {error:#}"),
    }
}

/// Creates the server data dir, loads the workload, creates the merge policy and the target
/// dataset, waits for the identity graph, and saves what a `--reuse-load` run needs.
async fn load_fresh(
    stores: BenchStores,
    server_dir: &Path,
    ingested: &Path,
    (profiles, seed, ingest): (u64, u64, &str),
) -> anyhow::Result<(BenchServer, SavedLoad)> {
    let bench_server = BenchServer::create_on(stores).await?;
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
    run_job(&server, &remote, &warm_up(&policy, &dataset)).await?;
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

/// An export selecting nothing: it waits for the identity graph to fold every committed batch.
fn warm_up(policy: &Value, dataset: &str) -> Value {
    json!({"filter": {"segments": [{"segmentNs": "bench", "segmentId": "warm-up"}]},
           "mergePolicy": {"id": policy["id"], "version": policy["version"]},
           "destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"}})
}

/// Before `incremental-1pct`: ingests its batch (1 % of the profiles) on a server of its own,
/// lets the graph fold it, and points the job (ours and the peers') at just before it.
async fn touch_one_percent(
    args: &RunArgs,
    bench_server: &BenchServer,
    (inputs, loaded): (&Inputs<'_>, &[LoadedDataset]),
    (policy, dataset): (&Value, &str),
    bench_job: &mut super::plan::BenchJob,
) -> anyhow::Result<()> {
    let touch = TouchBatch::prepare(inputs.work, inputs.data, inputs.manifest, args.profiles)?;
    let (server, remote) = bench_server.start().await?;
    let completed = touch.ingest(&remote, loaded).await?;
    run_job(&server, &remote, &warm_up(policy, dataset)).await?;
    server.stop()?;
    let from = completed - 1;
    let from_text = jiff::Timestamp::from_millisecond(from)?.to_string();
    bench_job.body["filter"]["fromIngestTimestamp"] = json!(from_text);
    bench_job.peer.from_ingest_ms = Some(from);
    let sources = peer_sources(inputs.data, inputs.manifest, loaded)?;
    let loyalty = sources
        .iter()
        .find(|s| s.key == "loyalty")
        .context("the load has no loyalty dataset")?;
    bench_job.peer.extra_sources = vec![touch.peer_source(loyalty, completed, sources.len())];
    eprintln!(
        "{}: ingested {} records of loyalty (1 % of the profiles), exporting from just before them",
        bench_job.peer.name, touch.records
    );
    Ok(())
}

/// Runs each export job of the plan on a server of its own, `--runs` times, its jobs on
/// `cluster` when there is one.
#[allow(clippy::too_many_arguments)]
async fn run_jobs(
    args: &RunArgs,
    (bench_server, cluster): (&BenchServer, Option<&BenchCluster>),
    (policy, dataset): (&Value, &str),
    (inputs, loaded, incremental_from): (&Inputs<'_>, &[LoadedDataset], i64),
    lake_files: &LakeFiles,
    reports: &mut Vec<JobReport>,
    peer_jobs: &mut Vec<super::plan::PeerJob>,
) -> anyhow::Result<()> {
    let cluster_url = cluster.map(|cluster| cluster.url_with(&args.cluster_settings));
    if let Some(url) = &cluster_url {
        eprintln!("the server's cluster_url: {url}");
    }
    for mut bench_job in jobs(incremental_from) {
        let name = bench_job.peer.name.clone();
        if !args.jobs.is_empty() && !args.jobs.contains(&name) {
            continue;
        }
        if name == TOUCH_JOB {
            touch_one_percent(args, bench_server, (inputs, loaded), (policy, dataset), &mut bench_job).await?;
        }
        let mut body = bench_job.body.clone();
        body["mergePolicy"] = json!({"id": policy["id"], "version": policy["version"]});
        body["destination"]["datasetId"] = json!(dataset);
        body["schema"] = json!({"name": "_xdm.context.profile"});
        // Each job gets a fresh server process, so its peak memory is its own and not what an
        // earlier job or the ingestion left allocated. Its first run loads the identity graph.
        let (server, remote) = bench_server.start_on(cluster_url.as_deref()).await?;
        let measured = measure_job(args.runs, (&server, &remote), cluster, &body).await?;
        let mut report = JobReport {
            job: name.clone(),
            stores: bench_server.stores.kind.name().to_owned(),
            engine: args.engine.name().to_owned(),
            unsupported: None,
            rows: 0,
            ours_s: median(&measured.times),
            peer_s: None,
            ratio: None,
            peers: None,
            fastest_peer: None,
            peak_rss_bytes: measured.peak,
            executor_peak_rss_bytes: measured.executor_peaks,
            rows_match: None,
            checksum: None,
            ours_runs_s: measured.times,
        };
        if let Some(reason) = unsupported_reason(&measured.job) {
            // Not a failure, and not dropped: the peers have nothing to compare it with.
            eprintln!("{name}: unsupported on the cluster ({reason})");
            report.unsupported = Some(reason);
            reports.push(report);
            server.stop()?;
            continue;
        }
        eprintln!("{name}: ours {:.2} s (runs {:.2?})", report.ours_s, report.ours_runs_s);
        let mut our_batches = Vec::new();
        for batch in batch_ids(&measured.job) {
            let files = lake_files.batch_files(dataset, &batch).await?;
            our_batches.push(files.iter().map(|p| p.to_string_lossy().into_owned()).collect());
        }
        bench_job.peer.our_batches = our_batches;
        report.rows = batch_records(&remote, &measured.job).await?;
        reports.push(report);
        peer_jobs.push(bench_job.peer);
        server.stop()?;
    }
    Ok(())
}

/// One job's runs: their times, the server's and each executor's peak memory, the last job.
struct Measured {
    times: Vec<f64>,
    peak: u64,
    executor_peaks: Vec<u64>,
    job: Value,
}

/// Runs the job `runs` times (once when the cluster refuses it: every run would).
async fn measure_job(
    runs: u64,
    (server, remote): (&ChildServer, &Remote),
    cluster: Option<&BenchCluster>,
    body: &Value,
) -> anyhow::Result<Measured> {
    let mut measured = Measured {
        times: Vec::new(),
        peak: 0,
        executor_peaks: Vec::new(),
        job: Value::Null,
    };
    for _ in 0..runs {
        if let Some(cluster) = cluster {
            cluster.reset_peaks()?;
        }
        let run = run_job(server, remote, body).await?;
        measured.times.push(run.seconds);
        measured.peak = measured.peak.max(run.peak);
        if let Some(cluster) = cluster {
            let peaks = cluster.peaks()?;
            measured.executor_peaks.resize(peaks.len(), 0);
            for (kept, peak) in measured.executor_peaks.iter_mut().zip(peaks) {
                *kept = (*kept).max(peak);
            }
        }
        measured.job = run.job;
        if unsupported_reason(&measured.job).is_some() {
            break;
        }
    }
    Ok(measured)
}

/// Runs the peers' side, compares and saves the report; what went wrong on a peer's side, or
/// rows that differ, is returned for the caller to report after the tables.
fn finish_run(
    args: &RunArgs,
    kind: StoresKind,
    inputs: &Inputs<'_>,
    loaded: &[LoadedDataset],
    identity_graph: Option<&[PathBuf]>,
    reports: &mut [JobReport],
    peer_jobs: Vec<super::plan::PeerJob>,
) -> anyhow::Result<Option<anyhow::Error>> {
    let mut peer_failure = None;
    if let Some(identity_graph) = identity_graph {
        let plan = PeerPlan {
            threads: args
                .peer_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            runs: args.runs as usize,
            identity_graph: identity_graph
                .iter()
                .map(|f| f.to_string_lossy().into_owned())
                .collect(),
            out_dir: inputs.work.join("peer-out").to_string_lossy().into_owned(),
            sources: peer_sources(inputs.data, inputs.manifest, loaded)?,
            jobs: peer_jobs,
        };
        for report in reports.iter_mut() {
            report.peers = Some(PeerTimes::default());
        }
        let mut peers = args.peers.clone();
        peers.dedup();
        for peer in peers {
            // One after the other, never together: each has the machine's cores to itself.
            // Our figures are reported even when a peer fails (at 10 M one can run out of memory).
            match run_peer(&args.python, inputs.work, &plan, peer) {
                Ok(results) => apply_peer_results(peer, &results, reports),
                Err(error) => {
                    let error = error.context(format!(
                        "{} did not finish on the {} run: its column is empty",
                        peer.name(),
                        kind.name()
                    ));
                    eprintln!("{error:#}");
                    peer_failure = peer_failure.or(Some(error));
                }
            }
        }
    }
    let results_file = match kind {
        StoresKind::Sqlite => format!("results-{}.json", args.profiles),
        _ => format!("results-{}-{}.json", args.profiles, kind.name()),
    };
    std::fs::write(inputs.work.join(results_file), serde_json::to_string_pretty(&reports)?)?;
    if peer_failure.is_some() {
        return Ok(peer_failure);
    }
    if reports.iter().any(|r| r.rows_match == Some(false)) {
        return Ok(Some(anyhow::anyhow!(
            "Dossier on {} and a peer exported different rows for some job (see the match column)",
            kind.name()
        )));
    }
    Ok(None)
}

/// Files one peer's results into the reports: its time, the fastest peer's time and our ratio to
/// it, and the row check, which every peer must pass (one mismatch fails the row).
fn apply_peer_results(peer: PeerEngine, results: &[PeerResult], reports: &mut [JobReport]) {
    for result in results {
        let Some(report) = reports.iter_mut().find(|r| r.job == result.job) else {
            continue;
        };
        let times = report.peers.get_or_insert_with(PeerTimes::default);
        match peer {
            PeerEngine::Duckdb => times.duckdb_s = Some(result.peer_s),
            PeerEngine::Polars => times.polars_s = Some(result.peer_s),
        }
        if let Some(formulation) = &result.formulation {
            eprintln!("{}: {} {:.2} s ({formulation})", result.job, peer.name(), result.peer_s);
        }
        if report.peer_s.is_none_or(|fastest| result.peer_s < fastest) {
            report.peer_s = Some(result.peer_s);
            report.fastest_peer = Some(peer.name().to_owned());
            report.ratio = Some(report.ours_s / result.peer_s.max(1e-9));
        }
        let matched = result.our_rows == report.rows
            && result.peer_rows == result.our_rows
            && result.peer_checksum == result.our_checksum;
        if !matched {
            eprintln!(
                "{}: {} exported {} rows (checksum {}), ours {} rows (checksum {})",
                result.job,
                peer.name(),
                result.peer_rows,
                result.peer_checksum,
                result.our_rows,
                result.our_checksum
            );
        }
        report.checksum = Some(result.our_checksum.clone());
        report.rows_match = Some(report.rows_match.unwrap_or(true) && matched);
    }
}
