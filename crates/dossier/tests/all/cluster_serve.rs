//! `dossier serve --export-engine cluster` end to end (issue 15, items 2 and 5): the real server
//! process, its export jobs run as plans on one `dossier cluster scheduler` and two executor
//! processes on loopback ports, over the data dir's lake. The same jobs, posted over HTTP to a
//! native server on the same data, give the same rows (count and order-independent checksum per
//! batch); with one executor killed -9 before the jobs run (the scheduler still counts it alive
//! until its heartbeat expires), the jobs still SUCCEED with the same rows.

use std::path::Path;

use serde_json::{Value, json};

use dossier_model::ids::BatchId;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_testkit::ballista::BallistaCluster;

use crate::cluster_export::{AAM, batch_rows, checksum, define, evaluate, seed};
use crate::support::*;

pub(super) const ORG: &str = "cluster-org";

/// The jobs both engines run: every profile with `fields`; the tutorial's segment filter with
/// its qualification window, one batch per status set; what changed after the first batch; the
/// tutorial's `ups` filter on the segment `gold` a segment job evaluated; Adobe's tutorial request
/// (`assets/create-export-job.json`, ../shared/tutorial's: eventList with fields and a window, a
/// `UPS` filter, emptyProfiles off) with the sandbox's default merge policy and this target; every
/// profile with its events and the empty profiles. (Not `evaluationInfo.segmentation`: it would
/// move the evaluated times the whole profiles of the other jobs carry between the runs;
/// `cluster_export` compares it.)
fn bodies(target: &str, mid: i64, gold: &str) -> Vec<Value> {
    let since = jiff::Timestamp::from_millisecond(mid).unwrap().to_string();
    let destination = json!({"datasetId": target});
    let schema = json!({"name": "_xdm.context.profile"});
    vec![
        json!({"fields": "identities.id,personalEmail.address,crm.tier",
               "destination": destination, "schema": schema}),
        json!({"fields": "identities.id,personalEmail.address",
               "filter": {"segments": [
                   {"segmentId": AAM, "segmentNs": "AAM", "status": ["realized"]},
                   {"segmentId": AAM, "segmentNs": "AAM", "status": ["existing", "exited"]}],
                   "segmentQualificationTime": {"startTime": "2019-09-01T00:00:00Z", "endTime": "2019-09-02T00:00:00Z"}},
               "destination": {"datasetId": target, "segmentPerBatch": true}, "schema": schema}),
        json!({"filter": {"fromIngestTimestamp": since}, "destination": destination, "schema": schema}),
        json!({"fields": "identities.id,crm.tier,segmentMembership",
               "filter": {"segments": [{"segmentId": gold, "segmentNs": "ups", "status": ["realized", "existing"]}]},
               "destination": destination, "schema": schema}),
        tutorial(target),
        json!({"filter": {"emptyProfiles": true}, "additionalFields": {"eventList": {}},
               "destination": destination, "schema": schema}),
    ]
}

/// The tutorial's request as Adobe gives it, but for its merge policy (the sandbox's default)
/// and its target dataset (this test's).
fn tutorial(target: &str) -> Value {
    let text = include_str!("../../assets/create-export-job.json");
    let mut body: Value = serde_json::from_str(text).unwrap();
    let body_object = body.as_object_mut().unwrap();
    body_object.remove("mergePolicy");
    body["destination"]["datasetId"] = json!(target);
    body
}

/// Per job and batch: row count and checksum of the rows, and the rows themselves.
pub(super) type Exported = Vec<Vec<(usize, u64, Vec<String>)>>;

pub(super) async fn export_all(caller: &Caller, data_dir: &Path, target: &str, bodies: &[Value]) -> Exported {
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let mut exported = Vec::new();
    for body in bodies {
        let job = caller.run_export_job(body).await;
        let destination = &job["destination"];
        let batches: Vec<String> = match destination["batches"].as_array() {
            Some(batches) => batches
                .iter()
                .map(|b| b["batchId"].as_str().unwrap().to_owned())
                .collect(),
            None => vec![destination["batchId"].as_str().unwrap().to_owned()],
        };
        exported.push(
            batches
                .iter()
                .map(|batch| {
                    let rows = batch_rows(data_dir, &tenant, target, &BatchId::from_string(batch));
                    (rows.len(), checksum(&rows), rows)
                })
                .collect(),
        );
    }
    exported
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_a_cluster_exports_the_native_rows_even_with_an_executor_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let credentials = create_client_in(&data_dir, ORG);

    // The data and the native engine's rows, through a native server.
    let native = ServerProcess::spawn(&data_dir);
    let caller = native.caller(&credentials).await;
    let seeded = seed(&caller).await;
    let gold = define(&caller, "Gold", "crm.tier = \"gold\"").await;
    evaluate(&caller, &[&gold]).await;
    let bodies = bodies(&seeded.target, seeded.mid, &gold);
    let expected = export_all(&caller, &data_dir, &seeded.target, &bodies).await;
    native.kill();
    // The tutorial's `UPS` batch is empty (no evaluated memberships here); every job has rows.
    assert!(
        expected.iter().all(|job| job.iter().any(|(rows, ..)| *rows > 0)),
        "every job has rows to compare: {expected:?}"
    );
    let listed =
        |job: &[(usize, u64, Vec<String>)]| job.iter().flat_map(|b| &b.2).any(|r| r.contains("\"eventList\":[{"));
    // The tutorial's job and the emptyProfiles one (the last two bodies) list events.
    let [.., tutorial, empty_profiles] = expected.as_slice() else {
        unreachable!("bodies() gives more than two jobs")
    };
    assert!(
        listed(tutorial) && listed(empty_profiles),
        "events are listed: {expected:?}"
    );

    // The same jobs on a cluster of two executors, one of them killed before the jobs run.
    let lake_url = format!("file://{}", data_dir.join("lake").display());
    let binary = Path::new(env!("CARGO_BIN_EXE_dossier"));
    let mut cluster = BallistaCluster::start(binary, &lake_url, 2).expect("the cluster starts");
    let served = ServerProcess::spawn_with(
        &data_dir,
        &[],
        &[
            ("DOSSIER_EXPORT_ENGINE", "cluster".into()),
            ("DOSSIER_CLUSTER_URL", cluster.url()),
        ],
    );
    let caller = served.caller(&credentials).await;
    let on_cluster = export_all(&caller, &data_dir, &seeded.target, &bodies).await;
    for (job, (got, want)) in on_cluster.iter().zip(&expected).enumerate() {
        for (batch, (got, want)) in got.iter().zip(want).enumerate() {
            let only_got: Vec<_> = got.2.iter().filter(|r| !want.2.contains(r)).collect();
            let only_want: Vec<_> = want.2.iter().filter(|r| !got.2.contains(r)).collect();
            if !(only_got.is_empty() && only_want.is_empty()) {
                eprintln!("differs: job {job}, batch {batch}: cluster only {only_got:#?}\nnative only {only_want:#?}");
            }
        }
    }
    assert_eq!(on_cluster, expected, "the cluster's rows are the native engine's");
    let ran: Value = serde_json::from_str(&cluster.jobs().unwrap()).unwrap();
    eprintln!("scheduler jobs: {ran}");
    assert!(
        ran.as_array().is_some_and(|jobs| !jobs.is_empty()),
        "the exports ran as jobs of the cluster's scheduler: {ran}"
    );

    cluster.kill_executor(0).unwrap();
    let with_one_lost = export_all(&caller, &data_dir, &seeded.target, &bodies).await;
    assert_eq!(
        with_one_lost,
        expected,
        "an executor lost costs retries, not rows\n{}",
        cluster.logs()
    );
}
