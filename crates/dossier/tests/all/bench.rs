//! `dossier bench generate` end to end: the generated schemas register, their descriptors are
//! accepted, every generated file ingests without a row error in both formats, and the identity
//! graph stitches a customer's CRM and loyalty records.

use std::path::Path;

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

fn generate(out: &Path, format: &str) -> Value {
    let printed = dossier(
        out,
        &[
            "bench",
            "generate",
            "--profiles",
            "200",
            "--seed",
            "9",
            "--out",
            out.to_str().unwrap(),
            "--format",
            format,
            "--records-per-file",
            "150",
        ],
    );
    assert!(printed.contains("Generated 200 profiles"), "{printed}");
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Registers the dataset's schema and descriptors as docs/generator.md says, and creates a
/// profile-enabled dataset on it; returns the dataset id.
async fn register(caller: &Caller, out: &Path, entry: &Value) -> String {
    let schema = read_json(&out.join(entry["schema"].as_str().unwrap()));
    let (status, created) = caller
        .send_json(Method::POST, "/data/foundation/schemaregistry/tenant/schemas", &schema)
        .await;
    assert_eq!(status, 201, "{created}");
    let schema_id = created["$id"].as_str().unwrap();
    for mut descriptor in read_json(&out.join(entry["descriptors"].as_str().unwrap()))
        .as_array()
        .unwrap()
        .clone()
    {
        assert_eq!(descriptor["xdm:sourceSchema"], "{SCHEMA_ID}");
        descriptor["xdm:sourceSchema"] = json!(schema_id);
        let (status, body) = caller
            .send_json(
                Method::POST,
                "/data/foundation/schemaregistry/tenant/descriptors",
                &descriptor,
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let body = json!({
        "name": entry["name"],
        "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "tags": {"unifiedProfile": ["enabled:true"]},
    });
    let (status, created) = caller
        .send_json(Method::POST, "/data/foundation/catalog/dataSets", &body)
        .await;
    assert_eq!(status, 201, "{created}");
    dataset_id_of(&created)
}

async fn ingest_files(caller: &Caller, out: &Path, dataset: &str, entry: &Value, format: &str) {
    let batch = caller
        .create_batch_with(dataset, json!({"format": format}), false)
        .await;
    for file in entry["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let name = path.replace('/', "-");
        let (status, body) = caller
            .upload(&batch, dataset, &name, std::fs::read(out.join(path)).unwrap())
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["status"], "success", "{} {done}", entry["name"]);
    assert_eq!(done["recordCount"], entry["records"], "{}", entry["name"]);
}

/// A loyalty member id whose email is also in a CRM record.
fn stitched_loyalty_id(out: &Path, manifest: &Value) -> String {
    let lines = |dataset: &str| -> Vec<Value> {
        manifest["datasets"][dataset]["files"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(out.join(f["path"].as_str().unwrap())).unwrap();
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<Value>>()
            })
            .collect()
    };
    let crm_emails: Vec<Value> = lines("crm")
        .iter()
        .map(|r| r["personalEmail"]["address"].clone())
        .collect();
    let member = lines("loyalty")
        .into_iter()
        .find(|r| crm_emails.contains(&r["personalEmail"]["address"]))
        .expect("some customer is in both sources");
    member["loyalty"]["memberId"].as_str().unwrap().to_owned()
}

async fn pdg_policy(caller: &Caller) -> String {
    let body = json!({"name": "graph", "schema": {"name": "_xdm.context.profile"},
                      "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}});
    let (status, created) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn generated_data_registers_ingests_and_stitches_in_both_formats() {
    let server = TestServer::start().await;
    for (sandbox, format) in [("prod", "json"), ("parquet", "parquet")] {
        if sandbox != "prod" {
            server.create_sandbox(ORG, sandbox);
        }
        let caller = server.caller(ORG, sandbox).await;
        let out = tempfile::tempdir().unwrap();
        let manifest = generate(out.path(), format);
        for key in ["crm", "loyalty", "events"] {
            let entry = &manifest["datasets"][key];
            assert!(
                entry["files"].as_array().unwrap().len() >= 2,
                "split at 150 records: {entry}"
            );
            let dataset = register(&caller, out.path(), entry).await;
            ingest_files(&caller, out.path(), &dataset, entry, format).await;
        }
        if format == "json" {
            let member = stitched_loyalty_id(out.path(), &manifest);
            let policy = pdg_policy(&caller).await;
            let path = format!(
                "/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityIdNS=LoyaltyID&entityId={member}&mergePolicyId={policy}"
            );
            let (status, body) = caller.get(&path).await;
            assert_eq!(status, 200, "{body}");
            let (_, profile) = body.as_object().unwrap().iter().next().unwrap();
            let entity = &profile["entity"];
            assert!(entity["crm"]["crmId"].is_string(), "{entity}");
            assert!(entity["loyalty"]["points"].is_i64(), "{entity}");
        }
    }
}

/// `dossier bench run` end to end on a small population: every job succeeds, both peers (DuckDB
/// and Polars, installed by .ci/run) export the same rows, and `--json` prints one object per job
/// with the keys the issues name: `peer_s` is the fastest peer's time, `peers` has each one's.
/// A wrong merge, filter or event list on any side fails the row check.
#[test]
fn bench_run_exports_the_same_rows_as_duckdb_and_polars_for_every_job() {
    let work = tempfile::tempdir().unwrap();
    let printed = dossier(
        work.path(),
        &[
            "bench",
            "run",
            "--profiles",
            "400",
            "--runs",
            "1",
            "--json",
            "--work",
            work.path().to_str().unwrap(),
        ],
    );
    let reports: Vec<Value> = printed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = reports.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "all-profiles-all-fields",
            "one-segment-8-fields",
            "one-segment-eventlist",
            "segment-per-batch-3",
            "incremental-8-fields",
            "incremental-1pct"
        ]
    );
    for report in &reports {
        for key in [
            "job",
            "rows",
            "ours_s",
            "peer_s",
            "ratio",
            "peak_rss_bytes",
            "rows_match",
            "peers",
        ] {
            assert!(report.get(key).is_some(), "{key} missing in {report}");
        }
        assert_eq!(report["rows_match"], true, "{report}");
        assert!(report["rows"].as_u64().unwrap() > 0, "{report}");
        assert!(report["peak_rss_bytes"].as_u64().unwrap() > 0, "{report}");
        let duckdb = report["peers"]["duckdb_s"].as_f64().expect("DuckDB ran");
        let polars = report["peers"]["polars_s"].as_f64().expect("Polars ran");
        assert_eq!(report["peer_s"].as_f64().unwrap(), duckdb.min(polars), "{report}");
        let fastest = if duckdb <= polars { "duckdb" } else { "polars" };
        assert_eq!(report["fastest_peer"], fastest, "{report}");
        let ratio = report["ours_s"].as_f64().unwrap() / duckdb.min(polars);
        assert!((report["ratio"].as_f64().unwrap() - ratio).abs() < 1e-9, "{report}");
    }
    assert_eq!(reports[0]["rows"], 400, "every profile has a record: {}", reports[0]);
    assert_eq!(
        reports[5]["rows"], 4,
        "1 % of the profiles were touched: {}",
        reports[5]
    );
}

/// A Python for the bench that runs the real python3, except that Polars' checksums get a 9 in
/// front on their way out.
const POLARS_DISAGREES: &str = r#"#!/usr/bin/env bash
set -o pipefail
case "$1" in
  *peer_polars.py) python3 "$@" | sed 's/"peer_checksum": "/"peer_checksum": "9/' ;;
  *) exec python3 "$@" ;;
esac
"#;

/// A peer that disagrees fails the row even when the other agrees: here Polars' checksum is
/// changed on its way out by the Python the bench is given (a real script in front of the real
/// one), so its rows differ from ours while DuckDB's match. `--peers` picks the peers, and
/// `--no-peer` still skips them all.
#[test]
fn bench_run_fails_the_row_when_one_peer_disagrees() {
    let work = tempfile::tempdir().unwrap();
    let python = work.path().join("python-polars-disagrees");
    std::fs::write(&python, POLARS_DISAGREES).unwrap();
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--data-dir",
            work.path().to_str().unwrap(),
            "bench",
            "run",
            "--profiles",
            "200",
            "--runs",
            "1",
            "--json",
            "--jobs",
            "one-segment-8-fields",
            "--work",
            work.path().to_str().unwrap(),
            "--python",
            python.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
            .args(&args)
            .output()
            .unwrap();
        let printed = String::from_utf8(output.stdout).unwrap();
        let reports: Vec<Value> = printed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (
            output.status.success(),
            reports,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (succeeded, reports, stderr) = run(&[]);
    assert!(!succeeded, "a peer's different rows fail the command: {stderr}");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["rows_match"], false, "{}", reports[0]);
    assert!(reports[0]["peers"]["polars_s"].is_f64(), "{}", reports[0]);
    assert!(stderr.contains("different rows"), "{stderr}");
    assert!(stderr.contains("polars exported"), "{stderr}");

    let (succeeded, reports, stderr) = run(&["--reuse-load", "--peers", "duckdb"]);
    assert!(succeeded, "{stderr}");
    assert_eq!(reports[0]["rows_match"], true, "{}", reports[0]);
    assert!(reports[0]["peers"]["duckdb_s"].is_f64(), "{}", reports[0]);
    assert_eq!(reports[0]["peers"]["polars_s"], Value::Null, "{}", reports[0]);
    assert_eq!(reports[0]["fastest_peer"], "duckdb", "{}", reports[0]);

    let (succeeded, reports, stderr) = run(&["--reuse-load", "--no-peer"]);
    assert!(succeeded, "{stderr}");
    assert_eq!(reports[0]["rows_match"], Value::Null, "{}", reports[0]);
    assert_eq!(reports[0]["peers"], Value::Null, "{}", reports[0]);
    assert_eq!(reports[0]["peer_s"], Value::Null, "{}", reports[0]);
}

/// `dossier bench run --stores sqlite,postgres-s3` on a tiny population: the bench starts its own
/// PostgreSQL and SeaweedFS, and on both sets of stores every job exports the rows DuckDB
/// exports. The postgres-s3 server's data dir stays without `meta.sqlite` or `lake/`, so those
/// rows did not come from the SQLite setup.
#[test]
fn bench_run_on_postgres_and_s3_exports_the_same_rows_as_duckdb() {
    if !dossier_testkit::postgres::available() || !dossier_testkit::s3::available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let printed = dossier(
        work.path(),
        &[
            "bench",
            "run",
            "--profiles",
            "300",
            "--runs",
            "1",
            "--json",
            "--stores",
            "sqlite,postgres-s3",
            "--work",
            work.path().to_str().unwrap(),
        ],
    );
    let reports: Vec<Value> = printed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 12, "six jobs on each set of stores: {printed}");
    let (sqlite, postgres_s3) = reports.split_at(6);
    for (on_sqlite, on_s3) in sqlite.iter().zip(postgres_s3) {
        assert_eq!(on_sqlite["stores"], "sqlite", "{on_sqlite}");
        assert_eq!(on_s3["stores"], "postgres-s3", "{on_s3}");
        assert_eq!(on_sqlite["job"], on_s3["job"]);
        assert_eq!(on_s3["rows_match"], true, "{on_s3}");
        assert_eq!(on_sqlite["rows_match"], true, "{on_sqlite}");
        assert_eq!(on_sqlite["rows"], on_s3["rows"], "{on_sqlite} {on_s3}");
        assert!(on_s3["rows"].as_u64().unwrap() > 0, "{on_s3}");
    }
    assert_eq!(
        postgres_s3[0]["rows"], 300,
        "every profile has a record: {}",
        postgres_s3[0]
    );
    let data_dir = work.path().join("server-300-postgres-s3").join("data");
    assert!(data_dir.is_dir());
    assert!(!data_dir.join("meta.sqlite").exists());
    assert!(!data_dir.join("lake").exists());
    assert!(work.path().join("results-300-postgres-s3.json").is_file());
}

/// `dossier bench run --engine cluster --executors 2` on a tiny population, after a native run
/// over the same load: the bench starts its own scheduler and two executors, and every job the
/// cluster engine runs exports the native run's rows (same count, same checksum, DuckDB's too),
/// with each executor's peak memory. A job the cluster engine refuses (EXPORT-UNSUPPORTED-501)
/// is a row saying so, neither a failure nor left out.
#[cfg(feature = "cluster")]
#[test]
fn bench_run_on_a_cluster_of_two_executors_exports_the_native_rows() {
    let work = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec![
            "bench",
            "run",
            "--profiles",
            "300",
            "--runs",
            "1",
            "--json",
            "--work",
            work.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let printed = dossier(work.path(), &args);
        printed.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let native = run(&[]);
    let cluster = run(&["--reuse-load", "--engine", "cluster", "--executors", "2"]);
    assert_eq!(native.len(), 6, "{native:?}");
    assert_eq!(cluster.len(), native.len(), "every job has a row: {cluster:?}");
    let mut supported = 0;
    for (on_native, on_cluster) in native.iter().zip(&cluster) {
        assert_eq!(on_native["job"], on_cluster["job"]);
        assert_eq!(on_native["engine"], "native", "{on_native}");
        assert_eq!(on_cluster["engine"], "cluster", "{on_cluster}");
        assert_eq!(on_native["rows_match"], true, "{on_native}");
        if let Some(reason) = on_cluster["unsupported"].as_str() {
            assert!(reason.contains("not supported by the cluster"), "{on_cluster}");
            assert_eq!(on_cluster["rows_match"], Value::Null, "{on_cluster}");
            continue;
        }
        supported += 1;
        assert_eq!(on_cluster["rows_match"], true, "{on_cluster}");
        assert_eq!(on_cluster["rows"], on_native["rows"], "{on_native} {on_cluster}");
        assert_eq!(
            on_cluster["checksum"], on_native["checksum"],
            "{on_native} {on_cluster}"
        );
        assert!(on_cluster["checksum"].is_string(), "{on_cluster}");
        let peaks = on_cluster["executor_peak_rss_bytes"].as_array().unwrap();
        assert_eq!(peaks.len(), 2, "{on_cluster}");
        assert!(peaks.iter().all(|p| p.as_u64().unwrap() > 0), "{on_cluster}");
    }
    // All profiles, one segment, segments per batch and incremental run on the cluster today.
    assert!(supported >= 4, "{cluster:?}");
    assert_eq!(cluster[0]["rows"], 300, "{}", cluster[0]);
}
