//! `dossier bench generate`: writes the deterministic benchmark workload (see docs/generator.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use dossier_bench::{DEFAULT_RECORDS_PER_FILE, DatasetKind, GenerateOptions, Manifest, OutputFormat};

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

fn progress_bar(profiles: u64) -> ProgressBar {
    let bar = ProgressBar::new(profiles);
    let style = ProgressStyle::with_template("generating [{bar:30}] {human_pos}/{human_len} profiles {per_sec} {eta}")
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
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
