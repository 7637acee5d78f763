//! `dossier bench generate`: writes the deterministic benchmark workload (see docs/generator.md).
//! `dossier bench segments`: loads a generated workload into a fresh server and times one
//! segment job evaluating three definitions (see BENCHMARKS.md "Segment evaluation").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use dossier_bench::{DEFAULT_RECORDS_PER_FILE, DatasetKind, GenerateOptions, Manifest, OutputFormat};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Write CRM and loyalty profile records, experience events and audience memberships for N
    /// customers, with their schemas and a manifest of expected export counts. The same N and seed
    /// always give byte-identical files.
    Generate(GenerateArgs),
    /// Load a generated workload (`bench generate`) into a fresh data directory, create three
    /// segment definitions (attribute-only, event count, occurs window) and time one segment
    /// job evaluating them; prints the time and the process's peak RSS.
    Segments(SegmentsArgs),
}

#[derive(Debug, clap::Args)]
pub struct SegmentsArgs {
    /// The folder `bench generate` wrote
    #[arg(long)]
    pub data: PathBuf,
    /// The server's data directory (created; must not hold an earlier run). Default: a
    /// directory under the system's temporary folder, removed at the end
    #[arg(long)]
    pub work: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// JSON lines (.jsonl), AEP's `json` input format
    Json,
    /// Parquet typed with the schemas' Arrow mapping (.parquet)
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Customers to generate; each is one profile once the identity graph stitches its records
    #[arg(long)]
    pub profiles: u64,
    /// Seed of every random choice
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The folder to write into (created if missing)
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
    /// Start a new file after this many records
    #[arg(long, default_value_t = DEFAULT_RECORDS_PER_FILE, value_parser = clap::value_parser!(u64).range(1..))]
    pub records_per_file: u64,
    /// Replace the output of an earlier run in the folder (only the files a run writes)
    #[arg(long)]
    pub overwrite: bool,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Generate(args) => generate(args).await,
        BenchCommand::Segments(args) => segments(args).await,
    }
}

fn progress_bar(profiles: u64) -> ProgressBar {
    let bar = ProgressBar::new(profiles);
    let style = ProgressStyle::with_template("generating [{bar:30}] {human_pos}/{human_len} profiles {per_sec} {eta}")
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let options = GenerateOptions {
        format: match args.format {
            FormatArg::Json => OutputFormat::JsonLines,
            FormatArg::Parquet => OutputFormat::Parquet,
        },
        records_per_file: args.records_per_file,
        overwrite: args.overwrite,
        ..GenerateOptions::new(args.profiles, args.seed, &args.out)
    };
    let started = Instant::now();
    let bar = progress_bar(args.profiles);
    let shown = bar.clone();
    // Generation is CPU and disk work: keep it off the async runtime's threads.
    let manifest =
        tokio::task::spawn_blocking(move || dossier_bench::generate(&options, |done| shown.set_position(done)))
            .await
            .context("the generator stopped unexpectedly")??;
    bar.finish_and_clear();
    print_summary(&manifest, &args.out, started.elapsed());
    Ok(())
}

fn print_summary(manifest: &Manifest, out: &std::path::Path, took: Duration) {
    let seconds = took.as_secs_f64();
    println!(
        "Generated {} profiles (seed {}) into {} in {seconds:.1} s ({:.0} profiles/s):",
        manifest.profiles,
        manifest.seed,
        out.display(),
        manifest.profiles as f64 / seconds.max(0.001)
    );
    for kind in DatasetKind::ALL {
        let dataset = &manifest.datasets[kind.key()];
        let bytes: u64 = dataset.files.iter().map(|file| file.bytes).sum();
        println!(
            "  {:<8} {:>11} records in {} file(s), {:.1} MiB",
            kind.key(),
            dataset.records,
            dataset.files.len(),
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    println!(
        "Schemas and identity descriptors are in {}; expected export counts in {}.",
        out.join("schemas").display(),
        out.join(dossier_bench::MANIFEST_FILE).display()
    );
}

/// The definitions `bench segments` evaluates: attribute-only, event count, occurs window.
const BENCH_SEGMENTS: [(&str, &str); 3] = [
    (
        "bench gold members",
        "loyalty.tier = \"gold\" and loyalty.points > 1000",
    ),
    (
        "bench repeat buyers",
        "xEvent[eventType = \"commerce.purchases\"].count() > 1",
    ),
    (
        "bench recently active",
        "loyalty.lastActivity occurs <= 10 years before now",
    ),
];

/// The process's peak resident set (`VmHWM`), in KiB, where /proc has it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn segments(args: SegmentsArgs) -> anyhow::Result<()> {
    let temporary = args.work.is_none();
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("dossier-bench-segments-{}", std::process::id())));
    let (meta, _) = dossier_api::open_storage(&work).await?;
    let org = dossier_model::tenancy::OrgId::parse(BENCH_ORG)?;
    let issued = meta.create_client(&org, None).await?;
    meta.close().await;
    let listen: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    let server = dossier_api::start(dossier_api::ServerConfig::new(&work, listen)).await?;
    let remote = crate::remote::Remote::connect(crate::remote::RemoteArgs {
        url: format!("http://{}", server.local_addr()),
        client_id: issued.client.client_id.to_string(),
        client_secret: issued.secret,
        org: BENCH_ORG.into(),
        sandbox: "prod".into(),
    })
    .await?;
    let load_started = Instant::now();
    crate::workload::load_generated(&remote, &args.data).await?;
    eprintln!(
        "loaded {} in {:.1} s",
        args.data.display(),
        load_started.elapsed().as_secs_f64()
    );
    let mut ids = Vec::new();
    for (name, pql) in BENCH_SEGMENTS {
        let body = serde_json::json!({"name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}});
        let created = remote.post_json("/data/core/ups/segment/definitions", &body).await?;
        ids.push(created["id"].as_str().context("a definition has an id")?.to_owned());
    }
    let body: Vec<serde_json::Value> = ids.iter().map(|id| serde_json::json!({"segmentId": id})).collect();
    let started = Instant::now();
    let job = remote
        .post_json("/data/core/ups/segment/jobs", &serde_json::Value::Array(body))
        .await?;
    let path = format!(
        "/data/core/ups/segment/jobs/{}",
        job["id"].as_str().context("a job has an id")?
    );
    let done = loop {
        let job = remote.get_json(&path).await?;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap_or_default()) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed().as_secs_f64();
    if done["status"] != "SUCCEEDED" {
        anyhow::bail!("the segment job ended {}: {}", done["status"], done["errors"]);
    }
    let metrics = &done["metrics"];
    println!(
        "Segment job over {} profiles, {} definitions: {took:.2} s (evaluation {} ms)",
        metrics["totalProfiles"],
        ids.len(),
        metrics["profileSegmentationTime"]["totalTimeInMs"]
    );
    for ((name, pql), id) in BENCH_SEGMENTS.iter().zip(&ids) {
        println!("  {name} [{pql}]: {} members", metrics["segmentedProfileCounter"][id]);
    }
    match peak_rss_kib() {
        Some(kib) => println!("  peak RSS {:.1} MiB", kib as f64 / 1024.0),
        None => println!("  peak RSS unknown (no /proc/self/status)"),
    }
    server.shutdown().await?;
    if temporary {
        std::fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    Ok(())
}

const BENCH_ORG: &str = super::demo::DEMO_ORG;
