//! `dossier demo`: the whole product in one command. On an empty data dir it generates a demo
//! population, ingests it through the real ingestion API, starts the server, runs Adobe's export
//! tutorial over HTTP (dataset, export job, poll, list files, download), prints what was
//! exported, leaves an active schedule that repeats the export nightly (what changed since its
//! last run), and leaves the server running with the curl commands to do it again by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use dossier_api::ServerConfig;
use dossier_model::tenancy::OrgId;

use crate::config::Settings;
use crate::remote::{Remote, RemoteArgs};
use crate::workload::load_generated;

/// The organization of the demo, the one Adobe's tutorial headers show.
pub const DEMO_ORG: &str = "1BD6382559DF0C130A49422D@AdobeOrg";
const TUTORIAL_DATASET: &str = include_str!("../../assets/create-dataset.json");
const TUTORIAL_JOB: &str = include_str!("../../assets/create-export-job.json");
const STATE_FILE: &str = "demo.json";

/// The options of `dossier demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Customers in the generated population
    #[arg(long, default_value_t = 200_000)]
    pub profiles: u64,
    /// Seed of the generated population
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address to serve on
    #[arg(long, env = "DOSSIER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Stop after the summary instead of serving until Ctrl-C
    #[arg(long)]
    pub exit: bool,
}

/// What a demo data dir remembers between runs.
#[derive(Debug, Serialize, Deserialize)]
struct DemoState {
    client_id: String,
    client_secret: String,
    profiles: u64,
    expected_per_segment: Vec<u64>,
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Generates the population and loads it, on a fresh data dir.
async fn prepare(args: &DemoArgs, data_dir: &Path, remote: &Remote, state: &mut DemoState) -> anyhow::Result<()> {
    let input = data_dir.join("demo-input");
    let bar = ProgressBar::new(args.profiles);
    bar.set_style(
        ProgressStyle::with_template("generating {pos}/{len} customers [{bar:30}] {eta}")
            .expect("valid")
            .progress_chars("=> "),
    );
    let mut options = dossier_bench::GenerateOptions::new(args.profiles, args.seed, &input);
    options.overwrite = true;
    let generated = {
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || dossier_bench::generate(&options, |done| bar.set_position(done))).await??
    };
    bar.finish_and_clear();
    let manifest: Value = serde_json::to_value(&generated)?;
    state.expected_per_segment = manifest["expected"]["tutorialExport"]["perSegment"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    eprintln!("ingesting the population through the batch ingestion API");
    for loaded in load_generated(remote, &input).await? {
        eprintln!(
            "  {:<10} dataset {}: {} records",
            loaded.key, loaded.dataset_id, loaded.records
        );
    }
    Ok(())
}

/// Where the demo keeps the job body it sent, for the curl command that sends it again.
fn job_body_path() -> PathBuf {
    std::env::temp_dir().join("dossier-demo-create-export-job.json")
}

/// Runs the tutorial's two requests and follows the job; returns (dataset id, job).
async fn run_tutorial(remote: &Remote) -> anyhow::Result<(String, Value)> {
    let created = remote
        .post_json(
            "/data/foundation/catalog/dataSets",
            &serde_json::from_str(TUTORIAL_DATASET)?,
        )
        .await?;
    let dataset = created[0]
        .as_str()
        .context("no dataset reference")?
        .trim_start_matches("@/dataSets/")
        .to_owned();
    let policy = remote
        .post_json(
            "/data/core/ups/config/mergePolicies",
            &json!({"name": "Demo: stitched, latest wins", "schema": {"name": "_xdm.context.profile"},
                    "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}}),
        )
        .await?;
    let mut job: Value = serde_json::from_str(TUTORIAL_JOB)?;
    job["destination"]["datasetId"] = json!(dataset);
    job["mergePolicy"]["id"] = policy["id"].clone();
    std::fs::write(job_body_path(), serde_json::to_string_pretty(&job)?)?;
    let created = remote.post_json("/data/core/ups/export/jobs", &job).await?;
    let id = created["id"].as_i64().context("no job id")?;
    let bar = spinner(&format!("export job {id}"));
    loop {
        let job = remote.get_json(&format!("/data/core/ups/export/jobs/{id}")).await?;
        let status = job["status"].as_str().unwrap_or("?").to_owned();
        bar.set_message(format!(
            "export job {id}: {status} {}%",
            job["progress"]["percent"].as_u64().unwrap_or(0)
        ));
        if matches!(status.as_str(), "SUCCEEDED" | "FAILED" | "CANCELLED") {
            bar.finish_and_clear();
            return Ok((dataset, job));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Downloads the job's batches into `out`; returns per batch (batch id, rows, files, bytes).
async fn download(remote: &Remote, job: &Value, out: &Path) -> anyhow::Result<Vec<(String, i64, usize, u64)>> {
    let mut summary = Vec::new();
    for batch in job["destination"]["batches"].as_array().into_iter().flatten() {
        let batch_id = batch["batchId"].as_str().context("no batch id")?.to_owned();
        let catalog = remote
            .get_json(&format!("/data/foundation/catalog/batches/{batch_id}"))
            .await?;
        let rows = catalog[&batch_id]["recordCount"].as_i64().unwrap_or(0);
        let (files, bytes) = crate::commands::export::download_batch(remote, &batch_id, &out.join(&batch_id)).await?;
        summary.push((batch_id, rows, files, bytes));
    }
    Ok(summary)
}

/// The schedule the demo leaves behind: the tutorial's export every night at 02:00 UTC, each run
/// exporting what changed since the last one (`lastRun`). Made once per data dir.
const DEMO_SCHEDULE: &str = "Demo: nightly export of what changed";

/// Leaves an active export schedule carrying the tutorial's job; returns it.
async fn leave_schedule(remote: &Remote) -> anyhow::Result<Value> {
    let listed = remote.get_json("/data/core/ups/config/schedules?limit=1000").await?;
    if let Some(existing) = listed["children"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == DEMO_SCHEDULE)
    {
        return Ok(existing.clone());
    }
    let mut job: Value = serde_json::from_str(&std::fs::read_to_string(job_body_path())?)?;
    job["filter"]["fromIngestTimestamp"] = json!("lastRun");
    let body = json!({"name": DEMO_SCHEDULE, "type": "export", "schedule": "0 0 2 * * ?",
                      "state": "active", "properties": {"exportJob": job}});
    remote.post_json("/data/core/ups/config/schedules", &body).await
}

fn print_curl(base: &str, token: &str, client_id: &str, job: &Value, summary: &[(String, i64, usize, u64)]) {
    let id = &job["id"];
    let headers = format!(
        "-H \"Authorization: Bearer $TOKEN\" -H 'x-api-key: {client_id}' -H 'x-gw-ims-org-id: {DEMO_ORG}' -H 'x-sandbox-name: prod'"
    );
    println!("\nDo it again by hand (the token is valid for 24 hours):\n");
    println!("export TOKEN='{token}'");
    println!("curl -s {headers} '{base}/data/core/ups/export/jobs/{id}'");
    println!("curl -s {headers} '{base}/data/core/ups/export/jobs?limit=5'");
    println!("curl -s {headers} '{base}/data/core/ups/config/schedules'");
    if let Some((batch, ..)) = summary.first() {
        println!("curl -s {headers} '{base}/data/foundation/export/batches/{batch}/files'");
        println!(
            "curl -s {headers} '{base}/data/foundation/export/files/{batch}-1?path=part-00000.parquet' -o part-00000.parquet"
        );
    }
    println!(
        "curl -s {headers} -H 'Content-Type: application/json' -X POST '{base}/data/core/ups/export/jobs' -d @{}",
        job_body_path().display()
    );
}

pub async fn run(args: DemoArgs, settings: Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir: PathBuf = settings.options.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let state_path = data_dir.join(STATE_FILE);
    let existing: Option<DemoState> = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let fresh = existing.is_none();
    let mut state = match existing {
        Some(state) => state,
        None => {
            let meta = settings.storage.open_metadata().await?;
            let issued = meta.create_client(&OrgId::parse(DEMO_ORG)?, None).await?;
            meta.close().await;
            DemoState {
                client_id: issued.client.client_id.to_string(),
                client_secret: issued.secret,
                profiles: args.profiles,
                expected_per_segment: Vec::new(),
            }
        }
    };
    // The demo serves with every option of the settings, on its own listen address, and
    // without the config file's static tokens.
    let options = crate::config::serving_options(&settings, Some(args.listen), Default::default())?;
    let config = ServerConfig {
        options,
        static_tokens: Vec::new(),
    };
    let storage = settings.storage.open().await?;
    let server = dossier_api::start(config, storage)
        .await
        .with_context(|| format!("cannot serve on {} (use --listen)", args.listen))?;
    let base = format!("http://{}", server.local_addr());
    let remote = Remote::connect(RemoteArgs {
        url: base.clone(),
        client_id: state.client_id.clone(),
        client_secret: state.client_secret.clone(),
        org: DEMO_ORG.into(),
        sandbox: "prod".into(),
    })
    .await?;
    if fresh {
        prepare(&args, &data_dir, &remote, &mut state).await?;
        std::fs::write(&state_path, serde_json::to_string_pretty(&state)?)?;
    } else {
        eprintln!(
            "reusing the demo population of {} customers in {}",
            state.profiles,
            data_dir.display()
        );
    }

    let export_started = Instant::now();
    let (_, job) = run_tutorial(&remote).await?;
    if job["status"] != "SUCCEEDED" {
        anyhow::bail!("the export job ended {}: {}", job["status"], job["errors"]);
    }
    let export_seconds = export_started.elapsed().as_secs_f64();
    let out = data_dir.join("demo-export");
    let summary = download(&remote, &job, &out).await?;

    println!(
        "\nAdobe's export tutorial ran against {base}: job {} SUCCEEDED in {export_seconds:.1} s",
        job["id"]
    );
    println!("  profiles exported: {}", job["metrics"]["totalExportedProfileCounter"]);
    for (i, (batch, rows, files, bytes)) in summary.iter().enumerate() {
        let segment = &job["destination"]["batches"][i];
        let expected = state.expected_per_segment.get(i).map(|e| {
            if *e == *rows as u64 {
                " (as generated)".to_owned()
            } else {
                format!(" (generator expected {e})")
            }
        });
        println!(
            "  {}:{} {}: batch {batch}: {rows} rows{}, {files} file(s), {bytes} bytes",
            segment["segmentNs"].as_str().unwrap_or(""),
            segment["segmentId"].as_str().unwrap_or(""),
            segment["status"],
            expected.unwrap_or_default()
        );
    }
    println!("  files downloaded to {}", out.display());
    println!("  total time {:.1} s", started.elapsed().as_secs_f64());
    let schedule = leave_schedule(&remote).await?;
    println!(
        "  schedule {} ({}): the same export, of what changed since its last run, at \"{}\" (02:00 UTC daily)",
        schedule["id"].as_str().unwrap_or("?"),
        schedule["name"].as_str().unwrap_or("?"),
        schedule["schedule"].as_str().unwrap_or("?"),
    );
    print_curl(&base, remote.token(), &state.client_id, &job, &summary);
    println!(
        "\nOr open the web console: {base}/console/#/sign-in?clientId={}&org={DEMO_ORG} (client secret: {})",
        state.client_id, state.client_secret
    );

    if !args.exit {
        println!("\nServing on {base} until Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
    }
    server.shutdown().await
}
