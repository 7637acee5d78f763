//! Key sidecars (profiles.md "Keys"): every committed fragment file gets one, and an export
//! keyed from sidecars writes exactly the rows of one keyed from the files themselves, whether
//! the sidecars are all there, some are missing (files committed before them, a crash after a
//! commit), unreadable, or written for other identity fields than the schema has now.

use std::path::{Path, PathBuf};

use crate::support::*;
use dossier_engine::export::ExportSettings;
use dossier_engine::profiles::build::shards::write_key_sidecar;
use dossier_engine::schemas::dataset_schema;
use dossier_model::export_job::{EventListSpec, ExportSpec};
use dossier_model::ids::DatasetId;
use dossier_model::xdm::{IdentityField, XdmSchema};
use dossier_storage::MetaStore;
use object_store::path::Path as ObjectPath;
use reqwest::Method;
use serde_json::{Value, json};

/// CRM and loyalty records sharing emails (so `pdg` stitches some of them), some without a
/// primary flag (the first identity is then primary), and events of both.
async fn load(caller: &Caller) -> String {
    let ProfileAndEventDatasets { crm, loyalty, web } = profile_and_event_datasets(caller).await;
    let crm_rows: Vec<Value> = (0..40)
        .map(|i| {
            json!({"_id": format!("c{i}"), "identityMap": {
                "Email": [{"id": format!("p{}@example.com", i % 25)}],
                "CRMID": [{"id": format!("c{i}"), "primary": i % 3 != 0}]},
                "personalEmail": {"address": format!("c{i}@example.com")}})
        })
        .collect();
    caller.ingest_json_lines(&crm, &crm_rows).await;
    let loyalty_rows: Vec<Value> = (0..30)
        .map(|i| {
            json!({"_id": format!("l{i}"), "identityMap": {
                "LoyaltyID": [{"id": format!("L{i}"), "primary": true}],
                "Email": [{"id": format!("p{}@example.com", i + 10)}]},
                "personalEmail": {"address": format!("l{i}@example.com")}})
        })
        .collect();
    caller.ingest_json_lines(&loyalty, &loyalty_rows).await;
    let events: Vec<Value> = (0..60)
        .map(|i| {
            let owner = if i % 2 == 0 {
                json!({"CRMID": [{"id": format!("c{}", i % 40), "primary": true}]})
            } else {
                json!({"ECID": [{"id": format!("e{i}"), "primary": true}], "LoyaltyID": [{"id": format!("L{}", i % 30)}]})
            };
            json!({"_id": format!("ev{i}"), "timestamp": "2024-01-01T00:00:00Z", "identityMap": owner})
        })
        .collect();
    caller.ingest_json_lines(&web, &events).await;
    let body = json!({"name": "stitched", "schema": {"name": "_xdm.context.profile"},
                      "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}});
    let (status, created) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Every file under `folder` whose name ends with `suffix`.
fn files_ending(folder: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn datasets_folder(server: &TestServer) -> PathBuf {
    let tenant = prod_tenant();
    server
        .data_dir()
        .join("lake")
        .join(tenant.org.as_str())
        .join(tenant.sandbox.as_str())
        .join("datasets")
}

/// The schema of the dataset whose batch folder holds the data file at `path`.
async fn schema_of(meta: &MetaStore, path: &Path) -> XdmSchema {
    let parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let at = parts.iter().position(|p| p == "datasets").unwrap();
    let dataset = meta
        .get_dataset(&prod_tenant(), &DatasetId::from_string(parts[at + 1].clone()))
        .await
        .unwrap()
        .unwrap();
    dataset_schema(meta, &prod_tenant(), &dataset).await.unwrap()
}

/// Every exported row as a JSON line, sorted: what two exports must agree on.
async fn exported(server: &TestServer, target: &str, policy: &str, settings: &ExportSettings) -> Vec<String> {
    let spec = ExportSpec {
        empty_profiles: true,
        event_list: Some(EventListSpec {
            fields: None,
            from_ingest: None,
            to_ingest: None,
        }),
        ..export_spec(target, policy)
    };
    let (outcome, batches) = run_export_in_process(server, spec, settings).await;
    assert!(outcome.exported_profiles > 0);
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write_batches(&batches.iter().collect::<Vec<_>>()).unwrap();
    writer.finish().unwrap();
    let mut lines: Vec<String> = String::from_utf8(writer.into_inner())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The exports of both policies, with pass one in memory and spilled (one profile a shard,
/// one identity a bucket); with `strip`, every sidecar is removed before each (an export
/// writes the sidecars of the files it keyed from their data).
async fn every_export(server: &TestServer, target: &str, pdg: &str, strip: bool) -> Vec<Vec<String>> {
    let spill = tempfile::tempdir().unwrap();
    let spilled = spilled_settings(spill.path());
    let mut all = Vec::new();
    for policy in ["timestampOrdered-none-mp", pdg] {
        for settings in [&ExportSettings::default(), &spilled] {
            if strip {
                for sidecar in files_ending(&datasets_folder(server), ".keys") {
                    std::fs::remove_file(sidecar).unwrap();
                }
            }
            all.push(exported(server, target, policy, settings).await);
        }
    }
    all
}

#[tokio::test]
async fn exports_keyed_from_sidecars_and_from_the_files_write_the_same_rows() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let pdg = load(&caller).await;
    let target = caller.create_dataset("Profile Data Export").await;
    let datasets = datasets_folder(&server);

    // Every committed fragment file has its sidecar beside it, outside the `*.parquet` glob.
    let data = files_ending(&datasets, ".parquet");
    let sidecars = files_ending(&datasets, ".parquet.keys");
    assert_eq!(data.len(), 3, "{data:?}");
    let expected: Vec<PathBuf> = data
        .iter()
        .map(|d| PathBuf::from(format!("{}.keys", d.display())))
        .collect();
    assert_eq!(sidecars, expected);
    let from_sidecars = every_export(&server, &target, &pdg, false).await;

    // A stale sidecar (written for other identity fields) is not used.
    let (meta, lake) = open_storage(&server.data_dir()).await.unwrap();
    let lake_root = server.data_dir().join("lake");
    let location = |path: &Path| ObjectPath::from(path.strip_prefix(&lake_root).unwrap().to_str().unwrap());
    let mut other_fields = schema_of(&meta, &data[0]).await;
    other_fields.identities.push(IdentityField {
        path: "personalEmail.address".into(),
        namespace: "Email".into(),
        primary: true,
    });
    write_key_sidecar(&lake, &other_fields, &location(&data[0]))
        .await
        .unwrap();
    // An unreadable one is not either.
    std::fs::write(&sidecars[1], b"not parquet").unwrap();
    assert_eq!(
        every_export(&server, &target, &pdg, false).await,
        from_sidecars,
        "stale and broken sidecars"
    );
    // The export that found them wrote them again, for the schema's identity fields.
    assert_eq!(files_ending(&datasets, ".parquet.keys"), expected);

    // Files without sidecars (committed before them, or a crash after the commit).
    assert_eq!(
        every_export(&server, &target, &pdg, true).await,
        from_sidecars,
        "no sidecars"
    );

    // Some with, some without.
    for sidecar in &sidecars[..2] {
        std::fs::remove_file(sidecar).unwrap();
    }
    write_key_sidecar(&lake, &schema_of(&meta, &data[2]).await, &location(&data[2]))
        .await
        .unwrap();
    assert_eq!(
        every_export(&server, &target, &pdg, false).await,
        from_sidecars,
        "mixed"
    );
    meta.close().await;
}

/// Ingestion keys the rows it encodes: an export uses those sidecars as they are (it rewrites
/// only the sidecars of files it had to key from their data), and each is byte for byte the one
/// the fallback writes after keying the committed file.
#[tokio::test]
async fn sidecars_written_at_ingestion_are_used_and_equal_those_keyed_from_the_files() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let pdg = load(&caller).await;
    let target = caller.create_dataset("Profile Data Export").await;
    let sidecars = files_ending(&datasets_folder(&server), ".parquet.keys");
    assert_eq!(sidecars.len(), 3, "{sidecars:?}");
    let written = |path: &PathBuf| {
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        (std::fs::read(path).unwrap(), modified)
    };
    let at_ingestion: Vec<_> = sidecars.iter().map(written).collect();

    every_export(&server, &target, &pdg, false).await;
    for (path, ingested) in sidecars.iter().zip(&at_ingestion) {
        assert!(written(path) == *ingested, "{path:?} was keyed again from its data");
    }

    every_export(&server, &target, &pdg, true).await;
    for (path, (bytes, _)) in sidecars.iter().zip(&at_ingestion) {
        assert!(
            std::fs::read(path).unwrap() == *bytes,
            "{path:?} differs from the fallback's"
        );
    }
}
