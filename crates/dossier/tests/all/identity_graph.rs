//! The persisted identity graph (semantics.md "Identity graph", design.md "Storage"): folded
//! after each committed batch, versioned, read one version at a time, collected down to the
//! latest two snapshots, and caught up at startup after a crash between commit and fold.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::*;
use dossier_engine::export::{CancelFlag, ExportProgress, ExportRequest, run_export};
use dossier_engine::identity::{Identity, pin_latest};
use dossier_engine::profiles::fragments::SandboxFragments;
use dossier_model::export_job::{ExportBatchTarget, ExportSpec, QualificationWindow};
use dossier_model::ids::{BatchId, DatasetId, MergePolicyId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::meta::IdentityGraphVersion;
use dossier_storage::{Lake, MetaStore};
use reqwest::Method;
use serde_json::{Value, json};

const ENTITIES: &str = "/data/core/ups/access/entities?schema.name=_xdm.context.profile";

fn prod() -> Tenant {
    Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    }
}

/// A CRM dataset and a loyalty dataset whose records both carry an Email identity.
async fn two_profile_datasets(caller: &Caller) -> (String, String) {
    let crm = caller
        .create_ingest_dataset(
            "CRM",
            "profile",
            json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}}),
        )
        .await;
    let loyalty = caller
        .create_ingest_dataset(
            "Loyalty",
            "profile",
            json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}}),
        )
        .await;
    (crm, loyalty)
}

fn crm_record(crm_id: &str, email: &str) -> Value {
    json!({"_id": crm_id, "identityMap": {"CRMID": [{"id": crm_id, "primary": true}], "Email": [{"id": email}]}, "crm": {"tier": "gold"}})
}

fn loyalty_record(loyalty_id: &str, email: &str) -> Value {
    json!({"_id": loyalty_id, "identityMap": {"LoyaltyID": [{"id": loyalty_id, "primary": true}], "Email": [{"id": email}]}, "loyalty": {"points": 70}})
}

/// Ingests one batch and returns its id, checking it committed.
async fn ingest(caller: &Caller, dataset: &str, records: &[Value]) -> BatchId {
    let batch = caller.ingest_json_lines(dataset, records).await;
    assert_eq!(batch["status"], "success", "{batch}");
    BatchId::from_string(batch["id"].as_str().unwrap())
}

async fn pdg_policy(caller: &Caller) -> String {
    let body = json!({"name": "stitched", "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}});
    let (status, created) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn entity(caller: &Caller, ns: &str, id: &str, policy: Option<&str>) -> (u16, Value) {
    let mut path = format!("{ENTITIES}&entityIdNS={ns}&entityId={id}");
    if let Some(policy) = policy {
        path.push_str(&format!("&mergePolicyId={policy}"));
    }
    let (status, body) = caller.get(&path).await;
    if status != 200 {
        return (status, body);
    }
    let (_, profile) = body.as_object().unwrap().iter().next().unwrap();
    (status, profile.clone())
}

/// Waits until the latest graph version covers every one of `batches` (folds run in the
/// background after each commit) and returns that version.
async fn wait_until_covered(meta: &MetaStore, batches: &[&BatchId]) -> IdentityGraphVersion {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(latest) = meta.latest_identity_graph_version(&prod()).await.unwrap() {
            let covered: HashSet<BatchId> = meta
                .identity_graph_covered_batches(&prod(), latest.version)
                .await
                .unwrap()
                .into_iter()
                .collect();
            if batches.iter().all(|b| covered.contains(*b)) {
                return latest;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the identity graph never covered {batches:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn snapshot_files(server: &TestServer) -> Vec<String> {
    let folder = server
        .data_dir()
        .join("lake")
        .join(Lake::identity_graph_prefix(&prod()).as_ref());
    sorted_file_names(&folder)
}

/// The kept versions, newest first, and the names of every file they name (manifests and
/// bucket files), sorted.
async fn kept_files(server: &TestServer, meta: &MetaStore) -> (Vec<IdentityGraphVersion>, Vec<String>) {
    let versions = meta.identity_graph_versions(&prod()).await.unwrap();
    let lake = server.data_dir().join("lake");
    let mut names = std::collections::BTreeSet::new();
    for version in &versions {
        names.insert(version.path.rsplit('/').next().unwrap().to_owned());
        let manifest: Value = serde_json::from_slice(&std::fs::read(lake.join(&version.path)).unwrap()).unwrap();
        for bucket in ["components", "identities"]
            .iter()
            .flat_map(|k| manifest[k].as_array().unwrap())
        {
            if let Some(path) = bucket["path"].as_str() {
                names.insert(path.rsplit('/').next().unwrap().to_owned());
            }
        }
    }
    (versions, names.into_iter().collect())
}

#[tokio::test]
async fn pdg_lookup_stitches_datasets_ingested_in_separate_batches() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (crm, loyalty) = two_profile_datasets(&caller).await;
    let first = ingest(&caller, &crm, &[crm_record("c1", "ana@example.com")]).await;
    let second = ingest(&caller, &loyalty, &[loyalty_record("L-1", "ana@example.com")]).await;

    let (meta, _) = crate::support::open_storage(&server.data_dir()).await.unwrap();
    let graph = wait_until_covered(&meta, &[&first, &second]).await;
    assert_eq!(
        (graph.nodes, graph.components),
        (3, 1),
        "CRMID, Email and LoyaltyID in one component"
    );

    let pdg = pdg_policy(&caller).await;
    let (status, stitched) = entity(&caller, "LoyaltyID", "L-1", Some(&pdg)).await;
    assert_eq!(status, 200, "{stitched}");
    assert_eq!(
        stitched["entityId"], "CRMID:c1",
        "the component's key is its smallest identity"
    );
    assert_eq!(stitched["entity"]["crm"]["tier"], "gold");
    assert_eq!(stitched["entity"]["loyalty"]["points"], 70);
    let (_, by_email) = entity(&caller, "Email", "ana@example.com", Some(&pdg)).await;
    assert_eq!(by_email["entityId"], "CRMID:c1");

    // The default policy (`none`) does not read the graph: the loyalty record stays alone.
    let (_, alone) = entity(&caller, "LoyaltyID", "L-1", None).await;
    assert!(alone["entity"].get("crm").is_none(), "{alone}");
}

#[tokio::test]
async fn old_snapshots_are_collected_and_the_latest_two_kept() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (crm, _) = two_profile_datasets(&caller).await;
    let (meta, _) = crate::support::open_storage(&server.data_dir()).await.unwrap();
    let mut batches = Vec::new();
    for n in 1..=4 {
        let batch = ingest(
            &caller,
            &crm,
            &[crm_record(&format!("c{n}"), &format!("{n}@example.com"))],
        )
        .await;
        // Waiting for each fold makes one version per batch.
        wait_until_covered(&meta, &[&batch]).await;
        batches.push(batch);
    }
    // The collection runs just after a version commits: give the last one time to finish.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut versions, mut named) = kept_files(&server, &meta).await;
    while (versions.len() > 2 || snapshot_files(&server) != named) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        (versions, named) = kept_files(&server, &meta).await;
    }
    let numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [4, 3]);
    assert_eq!((versions[0].nodes, versions[0].components), (8, 4));
    // Exactly the files the kept versions name: their manifests and buckets, some written by
    // the collected versions and never rewritten since.
    assert_eq!(snapshot_files(&server), named);
    assert!(named.iter().any(|f| f.starts_with("v1-")), "{named:?}");
    let covered = meta.identity_graph_covered_batches(&prod(), 4).await.unwrap();
    assert_eq!(
        covered.len(),
        4,
        "older folds stay covered after their versions are collected"
    );
}

#[tokio::test]
async fn a_pinned_version_reads_only_the_batches_it_covers() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (crm, loyalty) = two_profile_datasets(&caller).await;
    let (meta, lake) = crate::support::open_storage(&server.data_dir()).await.unwrap();
    let first = ingest(&caller, &crm, &[crm_record("c1", "ana@example.com")]).await;
    wait_until_covered(&meta, &[&first]).await;
    let pinned = pin_latest(&meta, &lake, &prod()).await.unwrap();

    // Ingestion goes on after the pin.
    let second = ingest(&caller, &loyalty, &[loyalty_record("L-1", "ana@example.com")]).await;
    let latest = wait_until_covered(&meta, &[&first, &second]).await;
    assert!(latest.version > pinned.version_number().unwrap());

    assert!(pinned.covers(&first) && !pinned.covers(&second));
    let fragments = SandboxFragments::load(&meta, &lake, &prod(), Some(&pinned))
        .await
        .unwrap();
    let rows: usize = fragments
        .datasets
        .iter()
        .flat_map(|d| &d.rows)
        .map(|r| r.num_rows())
        .sum();
    assert_eq!(rows, 1, "the loyalty batch is not part of the pinned version");
    assert_eq!(pinned.components.key_of(&Identity::new("LoyaltyID", "L-1")), None);
    let now = pin_latest(&meta, &lake, &prod()).await.unwrap();
    assert_eq!(
        now.components.key_of(&Identity::new("LoyaltyID", "L-1")),
        Some(&Identity::new("CRMID", "c1"))
    );

    // An export reports the version it keyed profiles with.
    let target = caller.create_dataset("Profile Data Export").await;
    let request = ExportRequest {
        tenant: prod(),
        job_id: 1,
        spec: ExportSpec {
            fields: None,
            segments: Vec::new(),
            qualification: QualificationWindow { start: None, end: None },
            from_ingest: None,
            empty_profiles: false,
            event_list: None,
            dataset_id: DatasetId::from_string(target),
            segment_per_batch: false,
            merge_policy_id: MergePolicyId::from_string(pdg_policy(&caller).await),
            merge_policy_version: 1,
            evaluate_segments: false,
        },
        batches: vec![ExportBatchTarget {
            batch_id: BatchId::generate(),
            segment: None,
        }],
    };
    let outcome = run_export(
        &meta,
        &lake,
        &request,
        &ExportProgress::default(),
        &CancelFlag::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.identity_graph_version, Some(latest.version));
    assert_eq!(outcome.exported_profiles, 1, "one stitched profile");
}

#[tokio::test]
async fn a_committed_batch_whose_fold_was_lost_is_folded_at_the_next_start() {
    let mut server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (crm, loyalty) = two_profile_datasets(&caller).await;
    let first = ingest(&caller, &crm, &[crm_record("c1", "ana@example.com")]).await;
    let (meta, _) = crate::support::open_storage(&server.data_dir()).await.unwrap();
    wait_until_covered(&meta, &[&first]).await;
    let second = ingest(&caller, &loyalty, &[loyalty_record("L-1", "ana@example.com")]).await;
    let folded = wait_until_covered(&meta, &[&first, &second]).await;

    // A crash between the commit of the loyalty batch and its fold: the batch is committed,
    // the version that folded it never was.
    assert!(
        meta.discard_identity_graph_version(&prod(), folded.version)
            .await
            .unwrap()
    );
    let before = meta.latest_identity_graph_version(&prod()).await.unwrap();
    let still_covered = match &before {
        Some(v) => meta.identity_graph_covered_batches(&prod(), v.version).await.unwrap(),
        None => Vec::new(),
    };
    assert!(!still_covered.contains(&second), "the loyalty batch is uncovered");

    // Nothing reads or ingests after the restart: only startup recovery can fold it.
    server.restart().await;
    let recovered = wait_until_covered(&meta, &[&first, &second]).await;
    assert_eq!(recovered.version, folded.version, "the lost version is written again");
    assert_eq!((recovered.nodes, recovered.components), (3, 1));

    let caller = server.caller(ORG, "prod").await;
    let pdg = pdg_policy(&caller).await;
    let (status, stitched) = entity(&caller, "LoyaltyID", "L-1", Some(&pdg)).await;
    assert_eq!(status, 200, "{stitched}");
    assert_eq!(stitched["entity"]["crm"]["tier"], "gold");
}
