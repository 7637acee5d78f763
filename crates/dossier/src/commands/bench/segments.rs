//! `dossier bench segments`: one segment job evaluating three definitions (attribute-only, an
//! event count, an `occurs` window) over a generated workload, with the server's time and peak
//! memory. Uses the same workload and child server as `bench run`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::run::{BenchServer, ensure_workload, wait_until_ended};
use crate::workload::load_generated;

#[derive(Debug, clap::Args)]
pub struct SegmentsArgs {
    /// Customers in the generated population
    #[arg(long)]
    pub profiles: u64,
    /// Seed of the generated population
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Work folder, shared with `bench run` (the generated data is reused)
    #[arg(long, default_value = "bench-work")]
    pub work: PathBuf,
}

/// The definitions evaluated: attribute-only, event count, occurs window.
const DEFINITIONS: [(&str, &str); 3] = [
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

pub async fn run(args: SegmentsArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.work)?;
    let work = std::fs::canonicalize(&args.work)?;
    let data = work.join(format!("data-{}-seed{}", args.profiles, args.seed));
    ensure_workload(args.profiles, args.seed, &data, dossier_bench::OutputFormat::Parquet).await?;
    let bench_server = BenchServer::create(&work.join(format!("segments-{}", args.profiles))).await?;
    let (server, remote) = bench_server.start().await?;
    let started = Instant::now();
    load_generated(&remote, &data).await?;
    eprintln!("loaded in {:.1} s", started.elapsed().as_secs_f64());
    let policy = remote
        .post_json(
            "/data/core/ups/config/mergePolicies",
            &json!({"name": "Bench: stitched, latest wins", "schema": {"name": "_xdm.context.profile"},
                    "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
                    "default": true}),
        )
        .await?;
    let mut ids = Vec::new();
    for (name, pql) in DEFINITIONS {
        let body = json!({"name": name, "mergePolicyId": policy["id"],
                          "expression": {"type": "PQL", "format": "pql/text", "value": pql}});
        let created = remote.post_json("/data/core/ups/segment/definitions", &body).await?;
        ids.push(created["id"].as_str().context("a definition has an id")?.to_owned());
    }
    let body: Vec<Value> = ids.iter().map(|id| json!({"segmentId": id})).collect();
    server.reset_peak()?;
    let started = Instant::now();
    let job = remote
        .post_json("/data/core/ups/segment/jobs", &Value::Array(body))
        .await?;
    let path = format!(
        "/data/core/ups/segment/jobs/{}",
        job["id"].as_str().context("a job has an id")?
    );
    let done = wait_until_ended(&remote, &path).await?;
    let took = started.elapsed().as_secs_f64();
    let peak = server.peak_rss_bytes()?;
    if done["status"] != "SUCCEEDED" {
        bail!("the segment job ended {}: {}", done["status"], done["errors"]);
    }
    let metrics = &done["metrics"];
    println!(
        "segment job over {} profiles, {} definitions: {took:.2} s (evaluation {} ms), server peak {:.0} MiB",
        metrics["totalProfiles"],
        ids.len(),
        metrics["profileSegmentationTime"]["totalTimeInMs"],
        peak as f64 / (1024.0 * 1024.0)
    );
    for ((name, pql), id) in DEFINITIONS.iter().zip(&ids) {
        println!("  {name} [{pql}]: {} members", metrics["segmentedProfileCounter"][id]);
    }
    Ok(())
}
