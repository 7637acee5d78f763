//! Benchmark: folding one ingested batch into a sandbox's persisted identity graph.
//!
//! ```text
//! cargo run --release -p dossier-engine --example identity_graph_fold [PROFILES] [BATCH] [BUCKETS]
//! ```
//!
//! Setup: a single-file snapshot (an earlier release's format) of PROFILES customers with two
//! identities each (CRMID and Email; 500,000 by default, so 1M identities), converted into a
//! bucketed version v1 of BUCKETS buckets (256 by default; the conversion, which is the earlier
//! release's two-pass fold writing buckets, is timed and reported apart), and a fragment file of
//! BATCH profile records (100,000 by default) written the way ingestion writes them. Half of the
//! batch's records link a new CRMID to an existing customer's email, half are new customers.
//!
//! Timed: the steps of a fold in the order `identity::store::fold_pending` runs them — read the
//! batch's identity columns and link them, then fold them into v1 as v2 (`identity::fold`: read
//! the buckets the batch touches, rewrite those) — and then what a `pdg` reader pays to load
//! v2 whole. The metadata work of a fold (a few
//! SQLite rows) is left out. Peak memory is the process's resident high-water mark over the fold
//! alone (reset after setup through /proc/self/clear_refs, Linux); the setup streams its
//! snapshot, so it leaves little behind.

use std::sync::Arc;
use std::time::Instant;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use serde_json::json;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use dossier_engine::identity::fold::fold_into_version;
use dossier_engine::identity::snapshot::{ComponentIndex, SnapshotWriter};
use dossier_engine::identity::{IdentityGraph, read_file_identities};
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

/// PROFILES customers of two identities, streamed in the snapshot's order: customer `n`'s key
/// is its CRMID (`CRMID` sorts before `Email`), and the zero-padded ids sort as `n` does.
async fn write_initial_snapshot(lake: &Lake, location: &ObjectPath, profiles: usize) {
    let schema = Arc::new(Schema::new(
        ["namespace", "id", "component_namespace", "component_id"]
            .map(|name| Field::new(name, DataType::Utf8, false))
            .to_vec(),
    ));
    let mut writer = SnapshotWriter::create(lake, location).expect("writer");
    for first in (0..profiles).step_by(32 * 1024) {
        let customers = first..(first + 32 * 1024).min(profiles);
        let rows: Vec<[String; 4]> = customers
            .flat_map(|n| {
                let key = format!("crm-{n:08}");
                [
                    ["CRMID".into(), key.clone(), "CRMID".into(), key.clone()],
                    ["Email".into(), format!("customer{n}@example.com"), "CRMID".into(), key],
                ]
            })
            .collect();
        let columns = (0..4)
            .map(|c| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[c].as_str()))) as _)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("rows");
        writer.write(&batch).await.expect("initial snapshot");
    }
    writer.finish().await.expect("initial snapshot");
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
    let buckets = arg(3, 256) as u32;
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::with_store(Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("lake")));
    // The batch carries only what a fold reads: its records' ids and identities.
    let mut schema = XdmSchema::builtin_profile();
    schema
        .fields
        .retain(|field| field.name == "_id" || field.name == "identityMap");
    let single = ObjectPath::from("graph/v0.parquet");
    let previous = ObjectPath::from("graph/v1.json");
    let next = ObjectPath::from("graph/v2.json");

    write_initial_snapshot(&lake, &single, profiles).await;
    let converting = Instant::now();
    fold_into_version(&lake, Some(single.as_ref()), &previous, IdentityGraph::new(), buckets)
        .await
        .expect("converted v1");
    let converted = converting.elapsed();
    let batch = write_batch(&lake, &schema, profiles, batch_records).await;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_mib("VmRSS:");

    let started = Instant::now();
    let (fragments, _) = read_file_identities(&lake, &batch, &schema)
        .await
        .expect("batch identities");
    let read = started.elapsed();
    let mut graph = IdentityGraph::new();
    for fragment in &fragments {
        graph.link(&fragment.all);
    }
    drop(fragments);
    let linked = started.elapsed();
    let (manifest, stats) = fold_into_version(&lake, Some(previous.as_ref()), &next, graph, buckets)
        .await
        .expect("next snapshot");
    let written = started.elapsed();
    let fold_peak = status_mib("VmHWM:");

    let reading = Instant::now();
    let index = ComponentIndex::load(&lake, &next).await.expect("reader");
    let reader = reading.elapsed();
    let snapshot_bytes: u64 = manifest
        .paths()
        .map(|p| std::fs::metadata(dir.path().join(p)).map_or(0, |m| m.len()))
        .sum();

    println!(
        "identity graph fold: {profiles} profiles ({} identities) + a batch of {batch_records} records",
        profiles * 2
    );
    println!(
        "  (setup) convert the single file into {buckets} buckets {:>8.0} ms",
        converted.as_secs_f64() * 1e3
    );
    println!("  read batch identities   {:>8.0} ms", read.as_secs_f64() * 1e3);
    println!(
        "  link the batch          {:>8.0} ms",
        (linked - read).as_secs_f64() * 1e3
    );
    println!(
        "  fold into v1 as v2      {:>8.0} ms ({} identities loaded, {} components of v1 touched, {} bucket files read, {} written)",
        (written - linked).as_secs_f64() * 1e3,
        stats.loaded_identities,
        stats.touched_components,
        stats.read_files,
        stats.written_files
    );
    println!("  fold total              {:>8.0} ms", written.as_secs_f64() * 1e3);
    println!("  fold peak RSS           {fold_peak:>8.0} MiB (RSS before the fold {rss_before:.0} MiB)");
    println!(
        "  v2: {} identities, {} components, {:.1} MiB on disk",
        stats.counts.nodes,
        stats.counts.components,
        snapshot_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  reader: load v2 as a component index {:>6.0} ms ({} identities)",
        reader.as_secs_f64() * 1e3,
        index.len()
    );
}
