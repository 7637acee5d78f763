//! Times the generator without the `dossier` binary (which needs DataFusion built in release):
//! `cargo run --release -p dossier-bench --example generate -- PROFILES SEED OUT [json|parquet]`.
//! Prints the wall time and the rate; BENCHMARKS.md records what it printed.

use std::time::Instant;

use dossier_bench::{GenerateOptions, OutputFormat, generate};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [profiles, seed, out, rest @ ..] = args.as_slice() else {
        eprintln!("usage: generate PROFILES SEED OUT [json|parquet]");
        std::process::exit(2);
    };
    let mut options = GenerateOptions::new(
        profiles.parse().expect("PROFILES is a number"),
        seed.parse().expect("SEED is a number"),
        out,
    );
    options.format = rest.first().map_or(OutputFormat::JsonLines, |f| {
        OutputFormat::from_name(f).expect("json or parquet")
    });
    options.overwrite = true;
    let started = Instant::now();
    let manifest = generate(&options, |_| {}).expect("generation succeeds");
    let seconds = started.elapsed().as_secs_f64();
    let records: u64 = manifest.datasets.values().map(|d| d.records).sum();
    let bytes: u64 = manifest.datasets.values().flat_map(|d| &d.files).map(|f| f.bytes).sum();
    println!(
        "{} profiles, {records} records, {:.1} MiB, {:.1} s: {:.0} profiles/s, {:.0} records/s",
        manifest.profiles,
        bytes as f64 / 1048576.0,
        seconds,
        manifest.profiles as f64 / seconds,
        records as f64 / seconds
    );
}
