//! Benchmark: folding one ingested batch into a sandbox's persisted identity graph.
//!
//! ```text
//! cargo run --release -p dossier-engine --example identity_graph_fold [PROFILES] [BATCH]
//! ```
//!
//! Setup (not timed): a snapshot of PROFILES customers with two identities each (CRMID and
//! Email; 500,000 by default, so 1M identities) and a fragment file of BATCH profile records
//! (100,000 by default) written the way ingestion writes them. Half of the batch's records link
//! a new CRMID to an existing customer's email, half are new customers.
//!
//! Timed: the steps of a fold in the order `identity::store::fold_pending` runs them — load the
//! latest snapshot into the union-find, read the batch's identity columns, link, write the next
//! snapshot — and then what a `pdg` reader pays to load that snapshot. The metadata work of a
//! fold (a few SQLite rows) is left out. Peak memory is the process's resident high-water mark
//! over the fold alone (reset after setup through /proc/self/clear_refs, Linux).

use std::sync::Arc;
use std::time::Instant;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use serde_json::json;

use dossier_engine::identity::snapshot::{ComponentIndex, load_graph, write_snapshot};
use dossier_engine::identity::{Identity, IdentityGraph, read_file_identities};
use dossier_engine::ingest::{FileLimits, FragmentWriter};
use dossier_model::xdm::XdmSchema;
use dossier_storage::Lake;

fn arg(position: usize, default: usize) -> usize {
    std::env::args()
        .nth(position)
        .map(|a| a.replace('_', "").parse().expect("a whole number"))
        .unwrap_or(default)
}

/// A `/proc/self/status` value in MiB (Linux), 0 elsewhere.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn write_initial_snapshot(lake: &Lake, location: &ObjectPath, profiles: usize) {
    let mut graph = IdentityGraph::new();
    for n in 0..profiles {
        graph.link(&[
            Identity::new("CRMID", format!("crm-{n:08}")),
            Identity::new("Email", format!("customer{n}@example.com")),
        ]);
    }
    write_snapshot(lake, location, &mut graph)
        .await
        .expect("initial snapshot");
}

async fn write_batch(lake: &Lake, schema: &XdmSchema, profiles: usize, records: usize) -> ObjectPath {
    let mut writer = FragmentWriter::new(
        lake.store().clone(),
        ObjectPath::from("batch"),
        "bench-batch",
        schema.arrow_schema(),
        FileLimits::default(),
    )
    .expect("writer");
    for n in 0..records {
        // Even rows stitch a new CRMID to an existing customer; odd rows are new customers.
        let email = if n % 2 == 0 {
            format!("customer{}@example.com", (n * 7) % profiles)
        } else {
            format!("new{n}@example.com")
        };
        let record = json!({
            "_id": format!("r{n}"),
            "identityMap": {
                "CRMID": [{"id": format!("batch-{n:08}"), "primary": true}],
                "Email": [{"id": email}],
            },
        });
        writer.push(record).await.expect("record");
    }
    let files = writer.finish().await.expect("batch file");
    files[0].location.clone()
}

#[tokio::main]
async fn main() {
    let profiles = arg(1, 500_000);
    let batch_records = arg(2, 100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::with_store(Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("lake")));
    // The batch carries only what a fold reads: its records' ids and identities.
    let mut schema = XdmSchema::builtin_profile();
    schema
        .fields
        .retain(|field| field.name == "_id" || field.name == "identityMap");
    let previous = ObjectPath::from("graph/v1.parquet");
    let next = ObjectPath::from("graph/v2.parquet");

    write_initial_snapshot(&lake, &previous, profiles).await;
    let batch = write_batch(&lake, &schema, profiles, batch_records).await;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_mib("VmRSS:");

    let started = Instant::now();
    let mut graph = load_graph(&lake, &previous).await.expect("load");
    let loaded = started.elapsed();
    let (fragments, _) = read_file_identities(&lake, &batch, &schema)
        .await
        .expect("batch identities");
    let read = started.elapsed();
    for fragment in &fragments {
        graph.link(&fragment.all);
    }
    let linked = started.elapsed();
    let counts = write_snapshot(&lake, &next, &mut graph).await.expect("next snapshot");
    let written = started.elapsed();
    drop(graph);
    let fold_peak = status_mib("VmHWM:");

    let reading = Instant::now();
    let index = ComponentIndex::load(&lake, &next).await.expect("reader");
    let reader = reading.elapsed();
    let snapshot_bytes = std::fs::metadata(dir.path().join("graph/v2.parquet")).map_or(0, |m| m.len());

    println!(
        "identity graph fold: {profiles} profiles ({} identities) + a batch of {batch_records} records",
        profiles * 2
    );
    println!("  load snapshot v1        {:>8.0} ms", loaded.as_secs_f64() * 1e3);
    println!(
        "  read batch identities   {:>8.0} ms",
        (read - loaded).as_secs_f64() * 1e3
    );
    println!(
        "  link                    {:>8.0} ms",
        (linked - read).as_secs_f64() * 1e3
    );
    println!(
        "  write snapshot v2       {:>8.0} ms",
        (written - linked).as_secs_f64() * 1e3
    );
    println!("  fold total              {:>8.0} ms", written.as_secs_f64() * 1e3);
    println!("  fold peak RSS           {fold_peak:>8.0} MiB (RSS before the fold {rss_before:.0} MiB)");
    println!(
        "  v2: {} identities, {} components, {:.1} MiB on disk",
        counts.nodes,
        counts.components,
        snapshot_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  reader: load v2 as a component index {:>6.0} ms ({} identities)",
        reader.as_secs_f64() * 1e3,
        index.len()
    );
}
