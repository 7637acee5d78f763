//! `dossier cluster rebuild-graph` end to end (issue 15, item 4): a sandbox's identity graph
//! rebuilt as a connected-components job on one scheduler and two executor processes, written
//! as the fold's next version; a `pdg` export after it gives the rows it gave after the fold.

use std::path::Path;

use serde_json::json;

use dossier_testkit::ballista::BallistaCluster;

use crate::cluster_export::{merge_policy, seed};
use crate::cluster_serve::{ORG, export_all};
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_rebuilt_on_the_cluster_exports_the_folds_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let credentials = create_client_in(&data_dir, ORG);

    let server = ServerProcess::spawn(&data_dir);
    let caller = server.caller(&credentials).await;
    let seeded = seed(&caller).await;
    let policy = merge_policy(&caller, "stitched", "pdg", json!({"type": "timestampOrdered"})).await;
    let body = json!({
        "mergePolicy": {"id": policy.to_string(), "version": 1},
        "destination": {"datasetId": seeded.target}, "schema": {"name": "_xdm.context.profile"},
    });
    let after_fold = export_all(&caller, &data_dir, &seeded.target, std::slice::from_ref(&body)).await;
    server.kill();

    let lake_url = format!("file://{}", data_dir.join("lake").display());
    let binary = Path::new(env!("CARGO_BIN_EXE_dossier"));
    let cluster = BallistaCluster::start(binary, &lake_url, 2).expect("the cluster starts");
    let printed = dossier(
        &data_dir,
        &[
            "cluster",
            "rebuild-graph",
            "--cluster-url",
            &cluster.url(),
            "--org",
            ORG,
            "--sandbox",
            "prod",
        ],
    );
    assert!(printed.contains("Identity graph version"), "{printed}");
    assert!(
        cluster.jobs().unwrap().contains("Completed"),
        "the rebuild ran on the cluster: {}",
        cluster.jobs().unwrap()
    );
    // The links were extracted by the executors: a job of the rebuild scans the fragments with
    // the link function (the client extracted them before), and it counted what it wrote.
    assert!(
        stage_plans(&cluster).contains("dossier_identity_links"),
        "no link extraction among the cluster's jobs"
    );
    assert!(!printed.contains(" 0 links)"), "{printed}");

    let server = ServerProcess::spawn(&data_dir);
    let caller = server.caller(&credentials).await;
    let after_rebuild = export_all(&caller, &data_dir, &seeded.target, std::slice::from_ref(&body)).await;
    assert_eq!(after_rebuild, after_fold, "the rebuilt graph stitches as the fold's");
    assert!(after_fold[0][0].0 > 1, "the export has stitched profiles to compare");
}

/// The stage plans of every job the scheduler ran (`/api/job/<id>/stages`), as one text.
fn stage_plans(cluster: &BallistaCluster) -> String {
    let jobs: serde_json::Value = serde_json::from_str(&cluster.jobs().unwrap()).unwrap();
    let mut plans = String::new();
    for job in jobs.as_array().into_iter().flatten() {
        let id = job["job_id"].as_str().unwrap_or_default();
        plans.push_str(&cluster.api(&format!("/api/job/{id}/stages")).unwrap());
    }
    plans
}
