//! Adobe's export tutorial (../shared/tutorial), word for word: the request bodies (kept in the
//! crate's `assets/` as byte-identical copies, so a clone builds anywhere) are sent as
//! written, with only the ids the server must issue replaced (the dataset id and the merge
//! policy id); every documented response field is checked, then the listing, the DELETE, and the
//! downloaded rows.

use std::time::Duration;

use crate::support::*;
use arrow::array::{AsArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::Method;
use serde_json::{Value, json};

const TUTORIAL_JOB: &str = include_str!("../../assets/create-export-job.json");
const AAM_SEGMENT: &str = "4edc8488-2c35-4f6d-b4c6-9075c68d2df4";
const UPS_SEGMENT: &str = "1rfe8422-334d-12f4-3sd4-12cf6g990g51";
const JOBS: &str = "/data/core/ups/export/jobs";

fn customer(n: u32, memberships: Value) -> Value {
    json!({
        "_id": format!("crm-{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}], "Email": [{"id": format!("c{n}@example.com")}]},
        "identities": [{"id": format!("c{n}"), "namespace": {"code": "CRMID"}, "primary": true}],
        "personalEmail": {"address": format!("c{n}@example.com")},
        "segmentMembership": memberships,
    })
}

async fn populate(caller: &Caller) {
    let ProfileAndEventDatasets { crm, web, .. } = profile_and_event_datasets(caller).await;
    let q = |status: &str, time: &str| json!({"status": status, "lastQualificationTime": time});
    caller
        .ingest_json_lines(
            &crm,
            &[
                customer(1, json!({"AAM": {AAM_SEGMENT: q("realized", "2019-09-01T08:00:00Z")}})),
                customer(2, json!({"ups": {UPS_SEGMENT: q("exited", "2019-09-01T20:00:00Z")}})),
                customer(3, json!({"AAM": {AAM_SEGMENT: q("realized", "2019-09-01T09:00:00Z")}, "ups": {UPS_SEGMENT: q("exited", "2019-09-01T10:00:00Z")}})),
                customer(4, json!({"AAM": {AAM_SEGMENT: q("realized", "2019-08-15T00:00:00Z")}})),
                customer(5, json!({"AAM": {AAM_SEGMENT: q("existing", "2019-09-01T09:00:00Z")}})),
            ],
        )
        .await;
    let event = |id: &str, crm: &str, time: &str, browser: &str| {
        json!({"_id": id, "timestamp": time, "identityMap": {"CRMID": [{"id": crm, "primary": true}]},
               "environment": {"browserDetails": {"name": browser, "version": "118"}}})
    };
    caller
        .ingest_json_lines(
            &web,
            &[
                event("e1", "c1", "2024-05-01T10:00:00Z", "Chrome"),
                event("e2", "c3", "2024-05-02T10:00:00Z", "Firefox"),
            ],
        )
        .await;
}

fn read_rows(bytes: bytes::Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The exported personalEmail.address values of a batch, downloaded through Data Access.
async fn exported_emails(caller: &Caller, batch: &str) -> Vec<String> {
    let (status, listing) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/files"))
        .await;
    assert_eq!(status, 200, "{listing}");
    let mut emails = Vec::new();
    for file in listing["data"].as_array().unwrap() {
        let id = file["dataSetFileId"].as_str().unwrap();
        let (_, described) = caller.get(&format!("/data/foundation/export/files/{id}")).await;
        let name = described["data"][0]["name"].as_str().unwrap();
        let bytes = caller
            .request(Method::GET, &format!("/data/foundation/export/files/{id}?path={name}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for rows in read_rows(bytes) {
            let email = rows.column_by_name("personalEmail").unwrap().as_struct();
            assert_eq!(email.num_columns(), 1, "fields keeps only personalEmail.address");
            let addresses = email.column(0).as_string::<i32>();
            emails.extend(addresses.iter().map(|a| a.unwrap().to_owned()));
            assert!(rows.column_by_name("identityMap").is_some());
            assert!(rows.column_by_name("identities").is_some());
            assert!(rows.column_by_name("eventList").is_some());
        }
    }
    emails.sort();
    emails
}

#[tokio::test]
async fn adobes_export_tutorial_works_word_for_word() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    populate(&caller).await;

    // Step 1: the target dataset, with the tutorial's body verbatim.
    let (status, created) = caller
        .send_json(
            Method::POST,
            "/data/foundation/catalog/dataSets",
            &serde_json::from_str(TUTORIAL_DATASET).unwrap(),
        )
        .await;
    assert_eq!(status, 201);
    let dataset = dataset_id_of(&created);

    // The tutorial names a merge policy of its own org; ours issues its own id.
    let policy_body = json!({"name": "tutorial", "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}});
    let (_, policy) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &policy_body)
        .await;
    let policy_id = policy["id"].as_str().unwrap().to_owned();

    // Step 2: the export job, as written, with only those two ids replaced.
    let mut body: Value = serde_json::from_str(TUTORIAL_JOB).unwrap();
    body["destination"]["datasetId"] = json!(dataset);
    body["mergePolicy"]["id"] = json!(policy_id);
    let (status, job) = caller.send_json(Method::POST, JOBS, &body).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["profileInstanceId"], "ups");
    assert_eq!(job["jobType"], "BATCH");
    assert!(job["id"].is_i64());
    assert_eq!(job["schema"], json!({"name": "_xdm.context.profile"}));
    assert_eq!(job["mergePolicy"], json!({"id": policy_id, "version": 1}));
    assert!(["NEW", "PROCESSING", "SUCCEEDED"].contains(&job["status"].as_str().unwrap()));
    assert!(job["requestId"].is_string());
    assert_eq!(job["computeGatewayJobId"], json!({}));
    assert!(job["metrics"]["totalTime"]["startTimeInMs"].is_i64());
    assert!(job["creationTime"].is_i64() && job["updateTime"].is_i64());
    assert_eq!(job["imsOrgId"], ORG);
    assert_eq!(job["filter"]["segments"], body["filter"]["segments"]);
    assert_eq!(job["destination"]["segmentPerBatch"], true);
    let batches = job["destination"]["batches"].as_array().unwrap().clone();
    assert_eq!(batches.len(), 2);
    for (batch, entry) in batches.iter().zip(body["filter"]["segments"].as_array().unwrap()) {
        assert_eq!(batch["segmentId"], entry["segmentId"]);
        assert_eq!(batch["segmentNs"], entry["segmentNs"]);
        assert_eq!(batch["status"], entry["status"]);
        assert!(batch["batchId"].is_string());
    }
    let id = job["id"].as_i64().unwrap();

    // Poll until it ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let job = loop {
        let (_, job) = caller.get(&format!("{JOBS}/{id}")).await;
        if job["status"] == "SUCCEEDED" || job["status"] == "FAILED" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let metrics = &job["metrics"];
    for span in ["totalTime", "profileExportTime", "aCPDatasetWriteTime"] {
        assert!(metrics[span]["totalTimeInMs"].is_i64(), "{span}: {metrics}");
    }
    assert_eq!(metrics["totalExportedProfileCounter"], 3, "c1, c2, c3: {metrics}");

    // The rows: AAM realized in the window → c1, c3; UPS (matched case-insensitively) exited → c2, c3.
    let aam = batches[0]["batchId"].as_str().unwrap();
    let ups = batches[1]["batchId"].as_str().unwrap();
    assert_eq!(
        exported_emails(&caller, aam).await,
        ["c1@example.com", "c3@example.com"]
    );
    assert_eq!(
        exported_emails(&caller, ups).await,
        ["c2@example.com", "c3@example.com"]
    );
    let (_, catalog_batch) = caller.get(&format!("/data/foundation/catalog/batches/{aam}")).await;
    assert_eq!(catalog_batch[aam]["status"], "success");
    assert_eq!(catalog_batch[aam]["recordCount"], 2);

    // Listing with limit and offset, as the tutorial shows.
    let (status, list) = caller.get(&format!("{JOBS}?limit=4")).await;
    assert_eq!(status, 200);
    assert_eq!(list["records"][0]["id"], id);
    let (status, _) = caller.get(&format!("{JOBS}?offset=2")).await;
    assert_eq!(status, 200);
    let (status, list) = caller.get(&format!("{JOBS}/")).await;
    assert_eq!(status, 200);
    assert!(list["link"].is_object());

    // DELETE of a finished job: marked, and nothing changes.
    let (status, answer) = caller.delete(&format!("{JOBS}/{id}")).await;
    assert_eq!(
        (status, answer),
        (
            200,
            json!({"status": true, "message": "Export job has been marked for cancelling"})
        )
    );
    let (_, after) = caller.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(after["status"], "SUCCEEDED");
}
