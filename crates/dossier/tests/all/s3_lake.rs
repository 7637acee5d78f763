//! The real `dossier serve` on an S3 lake (`--lake-url s3://...`, SeaweedFS from
//! `dossier_testkit::s3`) with SQLite metadata: ingestion, export jobs (under the identity graph,
//! filtered by an evaluated segment) and Data Access downloads give the rows the same run gives on
//! the local lake; a lake that cannot open stops the server with the setting, the value and the
//! fix.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const PROFILES: usize = 300;

fn customer(n: usize) -> Value {
    json!({
        "_id": format!("r{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
        "crm": {"tier": if n.is_multiple_of(3) { "gold" } else { "silver" }, "points": n as i64 * 7},
    })
}

/// A later batch changes some profiles: the export must merge fragments read from the lake.
fn upgrade(n: usize) -> Value {
    json!({
        "_id": format!("u{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
        "crm": {"tier": "platinum"},
    })
}

/// The id of what `body` created at `path`.
async fn created_id(caller: &Caller, path: &str, body: &Value) -> String {
    let (status, created) = caller.send_json(Method::POST, path, body).await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Runs a segment job over `segment` to its end; it must succeed.
async fn evaluate(caller: &Caller, segment: &str) {
    const JOBS: &str = "/data/core/ups/segment/jobs";
    let id = created_id(caller, JOBS, &json!([{"segmentId": segment}])).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, job) = caller.get(&format!("{JOBS}/{id}")).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            assert_eq!(job["status"], "SUCCEEDED", "{job}");
            return;
        }
        assert!(Instant::now() < deadline, "segment job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs the export `body` and returns its rows as Data Access serves them, sorted by identity.
async fn exported(caller: &Caller, body: &Value, folder: &Path) -> Vec<Value> {
    let job = caller.run_export_job(body).await;
    let batch = job["destination"]["batchId"].as_str().unwrap().to_owned();
    caller.download_batch(&batch, folder).await;
    let mut rows = exported_rows(folder, &["identityMap", "crm"]);
    rows.sort_by_key(|row| row["identityMap"]["CRMID"][0]["id"].as_str().unwrap().to_owned());
    rows
}

/// Ingests the population on a fresh server over `data_dir` (with `args` and `env`), exports it
/// twice (every profile; then under the identity graph, the members of an evaluated segment) and
/// returns both exports' rows.
async fn export_rows(data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> (Vec<Value>, Vec<Value>) {
    let credentials = create_client_in(data_dir, ORG);
    let server = ServerProcess::spawn_with(data_dir, args, env);
    let caller = server.caller(&credentials).await;
    let properties = json!({"crm": {"type": "object", "properties": {
        "tier": {"type": "string"},
        "points": {"type": "integer"},
    }}});
    let crm = caller.create_ingest_dataset("CRM", "profile", properties).await;
    let first = caller
        .ingest_json_lines(&crm, &(0..PROFILES).map(customer).collect::<Vec<_>>())
        .await;
    assert_eq!(first["status"], "success", "{first}");
    let second = caller
        .ingest_json_lines(&crm, &(0..PROFILES).step_by(10).map(upgrade).collect::<Vec<_>>())
        .await;
    assert_eq!(second["status"], "success", "{second}");
    let target = caller.create_dataset("Export target").await;
    let every = exported(
        &caller,
        &json!({
            "fields": "crm.tier,crm.points",
            "destination": {"datasetId": target},
            "schema": {"name": "_xdm.context.profile"},
        }),
        &data_dir.join("every"),
    )
    .await;

    // The identity graph's snapshots and the segment job's membership files live in the lake too.
    let pdg = created_id(
        &caller,
        "/data/core/ups/config/mergePolicies",
        &json!({"name": "Graph", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
                "schema": {"name": "_xdm.context.profile"}}),
    )
    .await;
    let high = created_id(
        &caller,
        "/data/core/ups/segment/definitions",
        &json!({"name": "High", "expression": {"type": "PQL", "format": "pql/text", "value": "crm.points >= 1400"}}),
    )
    .await;
    evaluate(&caller, &high).await;
    let members = exported(
        &caller,
        &json!({
            "fields": "crm.tier,crm.points",
            "mergePolicy": {"id": pdg},
            "destination": {"datasetId": target},
            "schema": {"name": "_xdm.context.profile"},
            "filter": {"segments": [{"segmentId": high, "segmentNs": "UPS"}]},
        }),
        &data_dir.join("members"),
    )
    .await;
    let looked_up = caller.looked_up_entity("CRMID", "c250", &pdg).await;
    assert_eq!(
        looked_up["crm"],
        json!({"tier": "platinum", "points": 1750}),
        "{looked_up}"
    );
    server.kill();
    (every, members)
}

#[tokio::test]
async fn an_export_on_the_s3_lake_downloads_the_rows_of_the_local_lake() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let on_s3 = tempfile::tempdir().unwrap();
    let lake_url = bucket.lake_url("tenants/lake");
    let (s3_rows, s3_members) = export_rows(on_s3.path(), &["--lake-url", &lake_url], &bucket.env()).await;
    assert!(
        !on_s3.path().join("lake").exists(),
        "nothing of the lake is on local disk when the lake is on S3"
    );
    let on_disk = tempfile::tempdir().unwrap();
    let (local_rows, local_members) = export_rows(on_disk.path(), &[], &[]).await;
    assert!(on_disk.path().join("lake").is_dir());

    assert_eq!(s3_rows.len(), PROFILES);
    assert_eq!(s3_rows[0]["crm"], json!({"tier": "platinum", "points": 0}));
    let platinum = s3_rows.iter().filter(|row| row["crm"]["tier"] == "platinum").count();
    assert_eq!(
        platinum,
        PROFILES / 10,
        "the later batch wins for the profiles it touches"
    );
    assert_eq!(s3_rows, local_rows);
    // points = 7 n >= 1400: n from 200 to 299.
    assert_eq!(s3_members.len(), 100);
    assert_eq!(s3_members[0]["identityMap"]["CRMID"][0]["id"], "c200");
    assert_eq!(s3_members, local_members);
}

/// Runs `dossier serve` expecting it to fail at start; returns what it printed.
fn failed_start(data_dir: &Path, lake_url: &str, env: &[(&str, String)], without: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dossier"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--lake-url", lake_url, "serve", "--listen", "127.0.0.1:0"])
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in without {
        command.env_remove(name);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("dossier serve --lake-url {lake_url} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_bucket_or_refused_credentials_stop_the_server_with_the_fix() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = failed_start(dir.path(), "s3://dossier-no-such-bucket/lake", &bucket.env(), &[]);
    for expected in [
        "lake_url",
        "--lake-url",
        "DOSSIER_LAKE_URL",
        "s3://dossier-no-such-bucket/lake",
        "does not exist",
        "aws s3 mb s3://dossier-no-such-bucket",
    ] {
        assert!(missing.contains(expected), "{expected:?} missing from: {missing}");
    }

    let mut wrong = bucket.env();
    wrong.retain(|(key, _)| *key != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()));
    let refused = failed_start(dir.path(), &bucket.lake_url("lake"), &wrong, &[]);
    for expected in [
        "lake_url",
        &bucket.lake_url("lake"),
        "did not accept the credentials",
        "AWS_ACCESS_KEY_ID",
    ] {
        assert!(refused.contains(expected), "{expected:?} missing from: {refused}");
    }
    assert!(
        !refused.contains("not-the-secret"),
        "the secret is never printed: {refused}"
    );
}
