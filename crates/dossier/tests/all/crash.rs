//! A crash at any moment leaves whole batches or none: the server process is killed with
//! SIGKILL between upload and COMPLETE, and during COMPLETE, then restarted on the same data.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

fn records(count: u32) -> Vec<u8> {
    let mut body = String::new();
    for n in 0..count {
        let record = json!({
            "_id": format!("r{n}"),
            "identityMap": {"CRMID": [{"id": format!("crm-{n}"), "primary": true}]},
            "loyalty": {"points": n, "tier": "gold"}
        });
        body.push_str(&record.to_string());
        body.push('\n');
    }
    body.into_bytes()
}

async fn loyalty_dataset(caller: &Caller) -> String {
    let properties = json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}, "tier": {"type": "string"}}}});
    caller.create_ingest_dataset("Loyalty", "profile", properties).await
}

async fn batch_status(caller: &Caller, batch: &str) -> Value {
    caller.get(&format!("/data/foundation/catalog/batches/{batch}")).await.1[batch].clone()
}

#[tokio::test]
async fn a_kill_between_upload_and_complete_keeps_the_open_batch_and_its_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = create_client_in(dir.path(), ORG);
    let server = ServerProcess::spawn(dir.path());
    let caller = server.caller(&credentials).await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;
    assert_eq!(
        caller.upload(&batch, &dataset, "part-1.json", records(100)).await.0,
        200
    );
    server.kill();

    let server = ServerProcess::spawn(dir.path());
    let caller = server.caller(&credentials).await;
    assert_eq!(batch_status(&caller, &batch).await["status"], "loading");
    assert_eq!(caller.upload(&batch, &dataset, "part-2.json", records(50)).await.0, 200);
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(
        done["recordCount"], 150,
        "the upload from before the crash is loaded too"
    );
}

#[tokio::test]
async fn a_kill_during_complete_is_resumed_and_nothing_is_half_visible() {
    killed_during_complete_resumes(&[], &[]).await;
}

/// The same on an S3 lake, where promotion is a copy then a delete, not a rename.
#[tokio::test]
async fn a_kill_during_complete_on_the_s3_lake_is_resumed_and_nothing_is_half_visible() {
    let Some(bucket) = dossier_testkit::s3::bucket() else {
        return;
    };
    let lake_url = bucket.lake_url("lake");
    killed_during_complete_resumes(&["--lake-url", &lake_url], &bucket.env()).await;
}

/// Kills the server (started with `args` and `env`) while COMPLETE converts a batch, restarts it,
/// and checks the batch resumes to a whole success with no file readable before.
async fn killed_during_complete_resumes(args: &[&str], env: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let credentials = create_client_in(dir.path(), ORG);
    let server = ServerProcess::spawn_with(dir.path(), args, env);
    let caller = server.caller(&credentials).await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;
    for part in 0..4 {
        assert_eq!(
            caller
                .upload(&batch, &dataset, &format!("part-{part}.json"), records(20_000))
                .await
                .0,
            200
        );
    }
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    // Kill while the batch is being converted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = batch_status(&caller, &batch).await["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "processing" {
            break;
        }
        assert!(
            status == "loading" && std::time::Instant::now() < deadline,
            "batch went {status} before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();

    let server = ServerProcess::spawn_with(dir.path(), args, env);
    let caller = server.caller(&credentials).await;
    let files = format!("/data/foundation/export/batches/{batch}/files");
    let mut seen_statuses = Vec::new();
    let done = loop {
        // Files first, status after: files readable at any moment means the batch had committed.
        let files_status = caller.get(&files).await.0;
        let batch_object = batch_status(&caller, &batch).await;
        let status = batch_object["status"].as_str().unwrap().to_owned();
        if files_status == 200 {
            assert_eq!(status, "success", "files of an uncommitted batch were readable");
        } else {
            assert_eq!(files_status, 404);
        }
        seen_statuses.push(status.clone());
        if status != "processing" {
            break batch_object;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        done["status"], "success",
        "resumed after the restart: {done} (seen {seen_statuses:?})"
    );
    assert_eq!(done["recordCount"], 80_000, "whole, not partial");
    let (status, listing) = caller.get(&files).await;
    assert_eq!(status, 200);
    let records: i64 = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["records"].as_i64().unwrap())
        .sum();
    assert_eq!(records, 80_000);
}
