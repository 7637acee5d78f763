//! Several `dossier serve` processes sharing one PostgreSQL store and one S3 lake — real
//! servers started by the tests (`dossier-testkit`): any node answers any request, jobs spread
//! over the nodes, a node killed -9 under a running export costs a retry (the job ends SUCCEEDED
//! elsewhere with the rows one node exports), and job ids stay per-sandbox sequential however
//! many nodes create jobs at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::MetaStore;
use dossier_storage::meta::{JobKey, JobState};
use dossier_testkit::postgres::PgDatabase;
use dossier_testkit::s3::S3Bucket;

use crate::support::*;

const JOBS: &str = "/data/core/ups/export/jobs";

/// The shared stores and the nodes' settings; the nodes themselves are started by the test.
struct Deployment {
    database: PgDatabase,
    bucket: S3Bucket,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Deployment {
    /// A PostgreSQL database, an S3 bucket and a config file with `settings`; `None` (the test
    /// skips, having said why) when a server is not installed outside CI.
    async fn new(settings: &str) -> Option<Self> {
        let database = tokio::task::spawn_blocking(dossier_testkit::postgres::database)
            .await
            .unwrap()?;
        let bucket = tokio::task::spawn_blocking(dossier_testkit::s3::bucket)
            .await
            .unwrap()?;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dossier.toml");
        std::fs::write(&config, settings).unwrap();
        Some(Self {
            database,
            bucket,
            dir,
            config,
        })
    }

    fn global_args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config.display().to_string(),
            "--metadata-url".into(),
            self.database.url.clone(),
            "--lake-url".into(),
            self.bucket.lake_url("lake"),
        ]
    }

    fn data_dir(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("node-{node}"))
    }

    /// Starts node `n` (its own data dir, the shared URLs).
    fn start_node(&self, n: usize) -> ServerProcess {
        let args = self.global_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerProcess::spawn_with(&self.data_dir(n), &args, &self.bucket.env())
    }

    /// The node's name in the job queue, as its first start kept it.
    fn node_name(&self, n: usize) -> String {
        std::fs::read_to_string(self.data_dir(n).join("node-id"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// An API client made with the command line against the shared store.
    fn create_client(&self) -> Credentials {
        let mut args = self.global_args();
        args.extend(["clients", "create", "--org", ORG, "--json"].map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let printed: Value = serde_json::from_str(&dossier(&self.dir.path().join("admin"), &args)).unwrap();
        Credentials {
            client_id: printed["clientId"].as_str().unwrap().to_owned(),
            secret: printed["clientSecret"].as_str().unwrap().to_owned(),
            org: ORG.to_owned(),
        }
    }

    async fn store(&self) -> MetaStore {
        MetaStore::open_postgres(&self.database.url).await.unwrap()
    }
}

fn prod() -> Tenant {
    Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    }
}

fn customer(n: usize) -> Value {
    json!({
        "_id": format!("r{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}],
                        "Email": [{"id": format!("p{}@example.com", n / 2)}]},
        "crm": {"tier": if n.is_multiple_of(3) { "gold" } else { "silver" }, "score": n % 97},
    })
}

fn crm_properties() -> Value {
    json!({"crm": {"type": "object", "properties": {
        "tier": {"type": "string"}, "score": {"type": "integer"}}}})
}

/// The export of every profile into a new dataset, created through `caller`.
async fn create_export(caller: &Caller) -> i64 {
    let target = caller.create_dataset("Export target").await;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}});
    let (status, job) = caller.send_json(Method::POST, JOBS, &body).await;
    assert_eq!(status, 200, "{job}");
    job["id"].as_i64().unwrap()
}

async fn wait_for_end(caller: &Caller, id: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, job) = caller.get(&format!("{JOBS}/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "export job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The exported rows of a finished job, downloaded through `caller`, sorted.
async fn rows_of(caller: &Caller, job: &Value, folder: &Path) -> Vec<String> {
    let batch = job["destination"]["batchId"].as_str().unwrap();
    caller.download_batch(batch, folder).await;
    let mut rows: Vec<String> = exported_rows(folder, &["identityMap", "crm"])
        .iter()
        .map(Value::to_string)
        .collect();
    rows.sort();
    rows
}

/// Waits until the job runs on some worker and returns that worker's name.
async fn running_worker(store: &MetaStore, id: i64) -> Option<String> {
    let key = JobKey::export(&prod(), id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match store.queue_entry(&key).await.unwrap() {
            Some(entry) if entry.state == JobState::Running => return entry.worker,
            Some(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            None => return None,
        }
    }
    panic!("export job {id} was never claimed");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_the_jobs_and_a_killed_nodes_export_ends_elsewhere_with_the_same_rows() {
    let settings = "export_workers = 1\njob_heartbeat_secs = 1\njob_lease_secs = 4\n";
    let Some(deployment) = Deployment::new(settings).await else {
        return;
    };
    let credentials = deployment.create_client();
    let mut nodes: Vec<Option<ServerProcess>> = (0..3).map(|n| Some(deployment.start_node(n))).collect();
    let mut callers = Vec::new();
    for node in nodes.iter().flatten() {
        callers.push(node.caller(&credentials).await);
    }
    let names: Vec<String> = (0..3).map(|n| deployment.node_name(n)).collect();
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>().len(),
        3,
        "each node has a name of its own"
    );

    // A population ingested through one node, the reference export read through another.
    let crm = callers[0]
        .create_ingest_dataset("CRM", "profile", crm_properties())
        .await;
    let records: Vec<Value> = (0..30_000).map(customer).collect();
    let batch = callers[0].ingest_json_lines(&crm, &records).await;
    assert_eq!(batch["status"], "success", "{batch}");
    let reference_id = create_export(&callers[1]).await;
    let reference = wait_for_end(&callers[2], reference_id, Duration::from_secs(120)).await;
    assert_eq!(reference["status"], "SUCCEEDED", "{reference}");
    let folders = tempfile::tempdir().unwrap();
    let expected = rows_of(&callers[0], &reference, &folders.path().join("reference")).await;
    assert_eq!(
        expected.len(),
        30_000,
        "the default policy does not stitch: a profile per record"
    );

    // Exports created on every node run on more than one node.
    let store = deployment.store().await;
    let mut ran_on = BTreeSet::new();
    let ids: Vec<i64> = futures::future::join_all((0..6).map(|n| create_export(&callers[n % 3]))).await;
    for &id in &ids {
        if let Some(worker) = running_worker(&store, id).await {
            ran_on.insert(worker.split('/').next().unwrap().to_owned());
        }
    }
    for &id in &ids {
        let job = wait_for_end(&callers[id as usize % 3], id, Duration::from_secs(180)).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
    }
    assert!(ran_on.len() >= 2, "jobs ran on one node only: {ran_on:?}");

    // The node running an export is killed -9 mid-run: another node takes the job over once
    // its lease expires and exports exactly the reference rows.
    let mut killed = None;
    for attempt in 0..5 {
        let id = create_export(&callers[attempt % 3]).await;
        let Some(worker) = running_worker(&store, id).await else {
            continue; // ended before it was seen running: try again
        };
        let victim = names
            .iter()
            .position(|name| worker.starts_with(&format!("{name}/")))
            .unwrap();
        nodes[victim].take().unwrap().kill();
        let survivor = &callers[(victim + 1) % 3];
        let (_, job) = survivor.get(&format!("{JOBS}/{id}")).await;
        if job["status"] == "PROCESSING" {
            killed = Some((id, victim));
            break;
        }
        // The export finished before the kill landed: bring the node back and try again.
        nodes[victim] = Some(deployment.start_node(victim));
        callers[victim] = nodes[victim].as_ref().unwrap().caller(&credentials).await;
    }
    let (id, victim) = killed.expect("an export was still running when its node was killed");
    let survivor = &callers[(victim + 1) % 3];
    let started = Instant::now();
    let job = wait_for_end(survivor, id, Duration::from_secs(180)).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "taken over only once the lease expired: {:?}",
        started.elapsed()
    );
    let again = rows_of(survivor, &job, &folders.path().join("taken-over")).await;
    assert_eq!(again, expected, "the taken-over job exports what one node exports");
    for node in nodes.into_iter().flatten() {
        node.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_jobs_created_at_once_across_three_nodes_get_unique_sequential_ids() {
    let settings = "export_workers = 0\nmax_queued_export_jobs = 1000\n";
    let Some(deployment) = Deployment::new(settings).await else {
        return;
    };
    let credentials = deployment.create_client();
    let nodes: Vec<ServerProcess> = (0..3).map(|n| deployment.start_node(n)).collect();
    let mut callers = Vec::new();
    for node in &nodes {
        callers.push(node.caller(&credentials).await);
    }
    let target = callers[0].create_dataset("Export target").await;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}});
    let created = futures::future::join_all((0..200).map(|n| {
        let caller = callers[n % 3].clone();
        let body = body.clone();
        async move {
            let (status, job) = caller.send_json(Method::POST, JOBS, &body).await;
            assert_eq!(status, 200, "{job}");
            job["id"].as_i64().unwrap()
        }
    }))
    .await;
    let ids: BTreeSet<i64> = created.iter().copied().collect();
    assert_eq!(ids.len(), 200, "no id given twice");
    assert_eq!(ids, (1..=200).collect(), "per-sandbox ids from 1 without a gap");
    // Another sandbox counts from 1 on its own.
    deployment_sandbox(&deployment, "dev");
    let dev = callers[1].in_sandbox("dev");
    let other = dev.create_dataset("Dev target").await;
    let body = json!({"destination": {"datasetId": other}, "schema": {"name": "_xdm.context.profile"}});
    let (status, job) = dev.send_json(Method::POST, JOBS, &body).await;
    assert_eq!((status, job["id"].as_i64()), (200, Some(1)), "{job}");
    for node in nodes {
        node.kill();
    }
}

/// Creates sandbox `name` with the command line against the shared store.
fn deployment_sandbox(deployment: &Deployment, name: &str) {
    let mut args = deployment.global_args();
    args.extend(["sandboxes", "create", "--org", ORG, name].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dossier(&deployment.dir.path().join("admin"), &args);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_whose_node_is_killed_is_resumed_by_another_node_once_its_lease_expires() {
    let settings = "job_heartbeat_secs = 1\njob_lease_secs = 4\n";
    let Some(deployment) = Deployment::new(settings).await else {
        return;
    };
    let credentials = deployment.create_client();
    let mut nodes: Vec<Option<ServerProcess>> = (0..2).map(|n| Some(deployment.start_node(n))).collect();
    let mut callers = Vec::new();
    for node in nodes.iter().flatten() {
        callers.push(node.caller(&credentials).await);
    }
    let crm = callers[0]
        .create_ingest_dataset("CRM", "profile", crm_properties())
        .await;
    let body: String = (0..60_000).map(|n| format!("{}\n", customer(n))).collect();
    let store = deployment.store().await;
    let mut interrupted = None;
    for _ in 0..5 {
        let batch = callers[0].create_batch(&crm).await;
        let (status, answer) = callers[0]
            .upload(&batch, &crm, "records.json", body.clone().into_bytes())
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(callers[0].batch_action(&batch, "COMPLETE").await.0, 200);
        // The COMPLETE runs on the node that accepted it, under its lease.
        let key = JobKey::ingest(&prod(), &dossier_model::ids::BatchId::from_string(batch.clone()));
        let entry = store.queue_entry(&key).await.unwrap();
        assert!(
            entry
                .as_ref()
                .is_none_or(|e| e.worker.as_deref() == Some(&format!("{}/ingest", deployment.node_name(0)))),
            "{entry:?}"
        );
        nodes[0].take().unwrap().kill();
        let (_, found) = callers[1]
            .get(&format!("/data/foundation/catalog/batches/{batch}"))
            .await;
        if found[&batch]["status"] == "processing" {
            interrupted = Some(batch);
            break;
        }
        nodes[0] = Some(deployment.start_node(0));
        callers[0] = nodes[0].as_ref().unwrap().caller(&credentials).await;
    }
    let batch = interrupted.expect("a COMPLETE was still converting when its node was killed");
    // Node 1 resumes the conversion once the lease expires; nothing of it is lost or doubled.
    let started = Instant::now();
    let done = callers[1].wait_for_batch(&batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["recordCount"], 60_000, "{done}");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    let key = JobKey::ingest(&prod(), &dossier_model::ids::BatchId::from_string(batch));
    assert_eq!(
        store.queue_entry(&key).await.unwrap(),
        None,
        "the commit dropped the lease"
    );
    for node in nodes.into_iter().flatten() {
        node.kill();
    }
}
