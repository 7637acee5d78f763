//! Batch ingestion over HTTP (api.md section 7) and reading the result through Data Access
//! (section 6): every format, every kind of bad row, retries, aborts, limits, ranges.

use std::sync::Arc;

use crate::support::*;
use arrow::array::{Array, Int64Array, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::Method;
use serde_json::{Value, json};

fn loyalty_properties() -> Value {
    json!({
        "loyalty": {"type": "object", "properties": {
            "points": {"type": "integer"},
            "tier": {"type": "string"},
            "joined": {"type": "string", "format": "date-time"}
        }}
    })
}

fn member(n: u32) -> Value {
    json!({
        "_id": format!("r{n}"),
        "identityMap": {"CRMID": [{"id": format!("crm-{n}"), "primary": true}]},
        "loyalty": {"points": n * 10, "tier": if n.is_multiple_of(2) { "gold" } else { "silver" }, "joined": "2024-03-01T10:00:00+02:00"}
    })
}

async fn loyalty_dataset(caller: &Caller) -> String {
    caller
        .create_ingest_dataset("Loyalty", "profile", loyalty_properties())
        .await
}

/// Reads the data files of a committed batch through Data Access and returns every row's
/// `loyalty.points`, plus the files' JSON listing.
async fn download_points(caller: &Caller, batch: &str) -> (Vec<i64>, Value) {
    let (status, listing) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/files"))
        .await;
    assert_eq!(status, 200, "{listing}");
    let mut points = Vec::new();
    for file in listing["data"].as_array().unwrap() {
        let id = file["dataSetFileId"].as_str().unwrap();
        let (_, described) = caller.get(&format!("/data/foundation/export/files/{id}")).await;
        let name = described["data"][0]["name"].as_str().unwrap();
        let response = caller
            .request(Method::GET, &format!("/data/foundation/export/files/{id}?path={name}"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status != 200 {
            panic!("download: {status} {}", response.text().await.unwrap());
        }
        assert_eq!(response.headers()["content-type"], "application/octet-stream");
        let bytes = response.bytes().await.unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let loyalty = batch
                .column_by_name("loyalty")
                .unwrap()
                .as_any()
                .downcast_ref::<StructArray>()
                .unwrap();
            let column = loyalty
                .column_by_name("points")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            points.extend(column.iter().map(|v| v.unwrap_or(-1)));
            assert!(batch.column_by_name("_acp_system_metadata").is_some());
        }
    }
    (points, listing)
}

#[tokio::test]
async fn json_lines_are_loaded_and_readable_through_data_access() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;

    let first: String = (1..=3).map(|n| format!("{}\n", member(n))).collect();
    let second: String = (4..=5).map(|n| format!("{}\n", member(n))).collect();
    assert_eq!(
        caller
            .upload(&batch, &dataset, "part-a.json", first.into_bytes())
            .await
            .0,
        200
    );
    assert_eq!(
        caller
            .upload(&batch, &dataset, "part-b.json", second.into_bytes())
            .await
            .0,
        200
    );

    // Nothing is readable before COMPLETE.
    assert_eq!(
        caller
            .get(&format!("/data/foundation/export/batches/{batch}/files"))
            .await
            .0,
        404
    );

    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["recordCount"], 5);
    assert_eq!(done["metrics"], json!({"recordsRead": 5, "recordsWritten": 5}));
    assert!(done["completed"].as_i64().unwrap() >= done["created"].as_i64().unwrap());
    assert!(done["size"].as_i64().unwrap() > 0);

    let (mut points, listing) = download_points(&caller, &batch).await;
    points.sort();
    assert_eq!(points, [10, 20, 30, 40, 50]);
    assert_eq!(listing["_page"]["count"], 1);
    let entry = &listing["data"][0];
    assert_eq!(entry["dataSetViewId"], dataset);
    assert_eq!(entry["records"], 5);
    assert!(entry["created"].is_string(), "Data Access gives times as strings");
    assert!(entry["_links"]["self"]["href"].as_str().unwrap().starts_with("http://"));

    let (status, preview) = caller
        .get(&format!("/data/foundation/export/datasets/{dataset}/preview"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(preview["data"].as_array().unwrap().len(), 5);
    assert_eq!(preview["data"][0]["identityMap"]["CRMID"][0]["id"], "crm-1");

    let (_, catalog) = caller
        .get(&format!("/data/foundation/catalog/dataSets/{dataset}"))
        .await;
    assert_eq!(catalog[&dataset]["lastBatchStatus"], "success");
}

#[tokio::test]
async fn multi_line_json_csv_and_parquet_uploads_load_the_same_rows() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;

    // A JSON array spread over many lines.
    let array = serde_json::to_string_pretty(&json!([member(1), member(2)])).unwrap();
    let batch = caller
        .create_batch_with(&dataset, json!({"format": "json", "isMultiLineJson": true}), false)
        .await;
    caller
        .upload(&batch, &dataset, "members.json", array.into_bytes())
        .await;
    caller.batch_action(&batch, "COMPLETE").await;
    assert_eq!(caller.wait_for_batch(&batch).await["status"], "success");
    assert_eq!(download_points(&caller, &batch).await.0, [10, 20]);

    // Flat CSV whose header is dot paths; identities come from an identity field.
    let csv_dataset = caller
        .create_ingest_dataset(
            "Loyalty CSV",
            "profile",
            json!({"loyalty": {"type": "object", "properties": {
            "memberId": {"type": "string"}, "points": {"type": "integer"}, "tier": {"type": "string"}}}}),
        )
        .await;
    let (_, schemas) = caller.get("/data/foundation/schemaregistry/tenant/schemas").await;
    let schema_id = schemas["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "Loyalty CSV")
        .unwrap()["$id"]
        .clone();
    let descriptor = json!({"@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema_id, "xdm:sourceVersion": 1,
        "xdm:sourceProperty": "/loyalty/memberId", "xdm:namespace": "LoyaltyID", "xdm:property": "xdm:code", "xdm:isPrimary": true});
    let (status, body) = caller
        .send_json(
            Method::POST,
            "/data/foundation/schemaregistry/tenant/descriptors",
            &descriptor,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let csv = "_id,loyalty.memberId,loyalty.points,loyalty.tier\nc1,L1,7,gold\nc2,L2,8,\n";
    let batch = caller
        .create_batch_with(&csv_dataset, json!({"format": "csv"}), false)
        .await;
    caller
        .upload(&batch, &csv_dataset, "members.csv", csv.as_bytes().to_vec())
        .await;
    caller.batch_action(&batch, "COMPLETE").await;
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(download_points(&caller, &batch).await.0, [7, 8]);

    // Parquet written by another tool, with a subset of the schema's columns.
    let points = Field::new("points", DataType::Int64, true);
    let loyalty_type = DataType::Struct(vec![points.clone()].into());
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, true),
        Field::new("loyalty", loyalty_type, true),
        Field::new("identityMap", DataType::Utf8, true),
    ]));
    let loyalty = StructArray::new(
        vec![points].into(),
        vec![Arc::new(Int64Array::from(vec![3, 4])) as Arc<dyn Array>],
        None,
    );
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["p1", "p2"])),
            Arc::new(loyalty),
            Arc::new(StringArray::from(vec![None::<&str>, None])),
        ],
    )
    .unwrap();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, None).unwrap();
    writer.write(&rows).unwrap();
    writer.close().unwrap();
    let batch = caller
        .create_batch_with(&dataset, json!({"format": "parquet"}), false)
        .await;
    caller.upload(&batch, &dataset, "members.parquet", buffer).await;
    caller.batch_action(&batch, "COMPLETE").await;
    let done = caller.wait_for_batch(&batch).await;
    // identityMap given as a plain string column is not a map: every row is refused, by field.
    assert_eq!(done["status"], "failed", "{done}");
    let (_, failed) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/failed"))
        .await;
    assert_eq!(failed["data"][0]["records"], 2, "{failed}");
}

#[tokio::test]
async fn bad_rows_fail_the_batch_and_are_listed_row_by_row() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let lines = [
        member(1).to_string(),
        json!({"_id": "x", "identityMap": {"CRMID": [{"id": "crm-x"}]}, "loyalty": {"points": "many"}}).to_string(),
        json!({"_id": "no-identity", "loyalty": {"points": 1}}).to_string(),
        json!({"_id": "u", "identityMap": {"CRMID": [{"id": "crm-u"}]}, "shoeSize": 42}).to_string(),
        "{not json".to_owned(),
        json!({"_id": "d", "identityMap": {"CRMID": [{"id": "crm-d"}]}, "loyalty": {"joined": "yesterday"}})
            .to_string(),
    ];
    let batch = caller.create_batch(&dataset).await;
    caller
        .upload(&batch, &dataset, "mixed.json", (lines.join("\n") + "\n").into_bytes())
        .await;
    caller.batch_action(&batch, "COMPLETE").await;
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["recordCount"], 0);
    let summary = done["errors"][0]["description"].as_str().unwrap();
    assert!(summary.contains("5 of 6 rows"), "{summary}");

    // Nothing of a failed batch is readable; its row errors are.
    assert_eq!(
        caller
            .get(&format!("/data/foundation/export/batches/{batch}/files"))
            .await
            .0,
        404
    );
    let errors = caller.failed_rows(&batch).await;
    let by_row = |row: u64| errors.iter().filter(|e| e["row"] == row).cloned().collect::<Vec<_>>();
    assert!(by_row(1).is_empty());
    assert_eq!(by_row(2)[0]["field"], "loyalty.points", "{errors:?}");
    assert_eq!(by_row(3)[0]["field"], "identityMap");
    assert_eq!(by_row(4)[0]["field"], "shoeSize");
    assert!(by_row(5)[0]["reason"].as_str().unwrap().contains("not valid JSON"));
    assert_eq!(by_row(6)[0]["field"], "loyalty.joined");
    assert!(errors.iter().all(|e| e["file"] == "mixed.json"));
    let (_, preview) = caller
        .get(&format!("/data/foundation/export/datasets/{dataset}/preview"))
        .await;
    assert_eq!(preview["data"], json!([]));
}

#[tokio::test]
async fn partial_ingestion_keeps_the_good_rows_and_reports_the_rest() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller
        .create_batch_with(&dataset, json!({"format": "json"}), true)
        .await;
    let body = format!("{}\n{}\n{}\n", member(1), json!({"_id": "bad"}), member(2));
    caller.upload(&batch, &dataset, "m.json", body.into_bytes()).await;
    caller.batch_action(&batch, "COMPLETE").await;
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["recordCount"], 2);
    assert!(
        done["errors"][0]["description"]
            .as_str()
            .unwrap()
            .contains("1 of 3 rows were skipped")
    );
    assert_eq!(download_points(&caller, &batch).await.0, [10, 20]);
    let (_, failed) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/failed"))
        .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn complete_is_safe_to_retry_and_abort_discards() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;
    caller
        .upload(&batch, &dataset, "a.json", format!("{}\n", member(1)).into_bytes())
        .await;
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["recordCount"], 1);
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    assert_eq!(
        caller.wait_for_batch(&batch).await,
        done,
        "a retried COMPLETE changes nothing"
    );

    let (status, body) = caller.upload(&batch, &dataset, "late.json", b"{}".to_vec()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("success"));

    let aborted = caller.create_batch(&dataset).await;
    caller
        .upload(&aborted, &dataset, "a.json", format!("{}\n", member(2)).into_bytes())
        .await;
    assert_eq!(caller.batch_action(&aborted, "ABORT").await.0, 200);
    assert_eq!(caller.wait_for_batch(&aborted).await["status"], "aborted");
    assert_eq!(caller.batch_action(&aborted, "COMPLETE").await.0, 409);
    assert_eq!(
        caller
            .get(&format!("/data/foundation/export/batches/{aborted}/files"))
            .await
            .0,
        404
    );

    let (status, body) = caller.batch_action(&batch, "FINISH").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("'action'"));

    let empty = caller.create_batch(&dataset).await;
    caller.batch_action(&empty, "COMPLETE").await;
    let done = caller.wait_for_batch(&empty).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["errors"][0]["code"], "INGEST-EMPTY-400");
}

#[tokio::test]
async fn upload_errors_name_the_problem() {
    let server = TestServer::start_with(|config| config.options.max_upload_bytes = 1024).await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;

    let (status, body) = caller.upload(&batch, &dataset, "big.json", vec![b' '; 4096]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("1024"));
    let (status, _) = caller.upload(&batch, &dataset, ".hidden", b"{}".to_vec()).await;
    assert_eq!(status, 400);
    let (status, body) = caller
        .upload(&batch, "000000000000000000000000", "a.json", b"{}".to_vec())
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = caller
        .upload("ffffffffffffffffffffffffffffffff", &dataset, "a.json", b"{}".to_vec())
        .await;
    assert_eq!(status, 404);

    // The union dataset receives exports, not ingestion.
    let export_target = caller.create_dataset("Profile Data Export").await;
    let body = json!({"datasetId": export_target, "inputFormat": {"format": "json"}});
    let (status, body) = caller
        .send_json(Method::POST, "/data/foundation/import/batches", &body)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("union"));
}

#[tokio::test]
async fn downloads_honour_ranges_and_head() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let records: Vec<Value> = (1..=200).map(member).collect();
    let done = caller.ingest_json_lines(&dataset, &records).await;
    let batch = done["id"].as_str().unwrap();
    let (_, listing) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/files"))
        .await;
    let id = listing["data"][0]["dataSetFileId"].as_str().unwrap().to_owned();
    let (_, described) = caller.get(&format!("/data/foundation/export/files/{id}")).await;
    let name = described["data"][0]["name"].as_str().unwrap().to_owned();
    let length: usize = described["data"][0]["length"].as_str().unwrap().parse().unwrap();
    let path = format!("/data/foundation/export/files/{id}?path={name}");

    let whole = caller
        .request(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.len(), length);

    // A download resumed in three sequential ranges gives the same bytes.
    let mut resumed = Vec::new();
    let cuts = [0, length / 3, 2 * length / 3, length];
    for pair in cuts.windows(2) {
        let response = caller
            .request(Method::GET, &path)
            .header("range", format!("bytes={}-{}", pair[0], pair[1] - 1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206);
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {}-{}/{length}", pair[0], pair[1] - 1)
        );
        resumed.extend_from_slice(&response.bytes().await.unwrap());
    }
    assert_eq!(Bytes::from(resumed), whole);

    let head = caller.request(Method::HEAD, &path).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], length.to_string());
    assert_eq!(head.headers()["accept-ranges"], "bytes");

    let response = caller
        .request(Method::GET, &path)
        .header("range", format!("bytes={length}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], format!("bytes */{length}"));

    let (status, _) = caller
        .get(&format!("/data/foundation/export/files/{id}?path=other.parquet"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn files_of_another_sandbox_are_not_found() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let prod = server.caller(ORG, "prod").await;
    let dev = prod.in_sandbox("dev");
    let dataset = loyalty_dataset(&dev).await;
    let done = dev.ingest_json_lines(&dataset, &[member(1)]).await;
    let batch = done["id"].as_str().unwrap();
    let (_, listing) = dev.get(&format!("/data/foundation/export/batches/{batch}/files")).await;
    let id = listing["data"][0]["dataSetFileId"].as_str().unwrap();

    assert_eq!(
        prod.get(&format!("/data/foundation/export/batches/{batch}/files"))
            .await
            .0,
        404
    );
    assert_eq!(prod.get(&format!("/data/foundation/export/files/{id}")).await.0, 404);
    assert_eq!(
        prod.get(&format!("/data/foundation/export/batches/{batch}/failed"))
            .await
            .0,
        404
    );
    assert_eq!(
        prod.get(&format!("/data/foundation/export/datasets/{dataset}/preview"))
            .await
            .0,
        404
    );
    assert_eq!(prod.batch_action(batch, "ABORT").await.0, 404);
}

/// Every file still under the batch's staging folder on disk, temp files (`name#1`) included.
fn staged_files(server: &TestServer, batch: &str) -> Vec<std::path::PathBuf> {
    let staging = server
        .data_dir()
        .join("lake")
        .join(ORG)
        .join("prod")
        .join("_staging")
        .join(batch);
    let mut found = Vec::new();
    let mut dirs = vec![staging];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

#[tokio::test]
async fn an_upload_still_streaming_when_complete_commits_is_refused_not_dropped() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;
    let first: String = (1..=10).map(|n| format!("{}\n", member(n))).collect();
    assert_eq!(
        caller
            .upload(&batch, &dataset, "first.json", first.into_bytes())
            .await
            .0,
        200
    );

    // A throttled upload: half its rows now, the rest only once COMPLETE has run its course.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let head: String = (11..=15).map(|n| format!("{}\n", member(n))).collect();
    let tail: String = (16..=20).map(|n| format!("{}\n", member(n))).collect();
    let chunks = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) }).chain(
        futures::stream::once(async move {
            let _ = released.await;
            Ok::<_, std::io::Error>(Bytes::from(tail))
        }),
    );
    let path = format!("/data/foundation/import/batches/{batch}/datasets/{dataset}/files/slow.json");
    let slow = caller
        .request(Method::PUT, &path)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let slow = tokio::spawn(async move { into_parts(slow.await.unwrap()).await });
    // The upload is in the handler (past its status check) before COMPLETE is sent.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&batch).await;
    let _ = release.send(());
    let (status, body) = slow.await.unwrap();

    assert_eq!(done["status"], "success", "{done}");
    match status {
        409 => {
            assert_eq!(done["recordCount"], 10, "{done}");
            let message = body["detail"].as_str().unwrap_or_default();
            assert!(
                message.contains(&batch)
                    && (message.contains("is success") || message.contains("is processing"))
                    && message.contains("new batch"),
                "the 409 names the batch, its status and the fix: {body}"
            );
            assert!(body.to_string().contains("INGEST-BATCH-409"), "{body}");
            assert!(
                staged_files(&server, &batch).is_empty(),
                "the refused upload's bytes are removed: {:?}",
                staged_files(&server, &batch)
            );
        }
        200 => assert_eq!(done["recordCount"], 20, "an accepted upload is ingested: {done}"),
        other => panic!("unexpected {other}: {body}"),
    }
}

/// Leaves a temp file of the local object store (`name#n`, what a write cut short by a crash
/// leaves) in the batch's staging folder; returns its path.
fn leave_temp_file(server: &TestServer, batch: &str, name: &str) -> std::path::PathBuf {
    let folder = server
        .data_dir()
        .join("lake")
        .join(ORG)
        .join("prod")
        .join("_staging")
        .join(batch)
        .join("uploads")
        .join("00000000deadbeef");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, b"{\"half\": ").unwrap();
    path
}

#[tokio::test]
async fn temp_files_under_staging_go_with_complete_and_with_a_restart() {
    let mut server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;

    // COMPLETE removes the batch's staging folder, temp files included.
    let completed = caller.create_batch(&dataset).await;
    let body = format!("{}\n", member(1)).into_bytes();
    assert_eq!(caller.upload(&completed, &dataset, "a.json", body).await.0, 200);
    leave_temp_file(&server, &completed, "cut.json#1");
    assert_eq!(caller.batch_action(&completed, "COMPLETE").await.0, 200);
    assert_eq!(caller.wait_for_batch(&completed).await["recordCount"], 1);
    assert!(
        staged_files(&server, &completed).is_empty(),
        "{:?}",
        staged_files(&server, &completed)
    );

    // A restart sweeps temp files: all of a committed batch's, and those of an open batch that
    // went a lease without a write (a dead node's upload), whose recorded uploads stay. A fresh
    // one may be another node's upload in flight: it stays.
    let committed_leftover = leave_temp_file(&server, &completed, "late.json#2");
    let open = caller.create_batch(&dataset).await;
    let body = format!("{}\n{}\n", member(2), member(3)).into_bytes();
    assert_eq!(caller.upload(&open, &dataset, "b.json", body).await.0, 200);
    let open_leftover = leave_temp_file(&server, &open, "b.json#1");
    let a_lease_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(31);
    std::fs::File::options()
        .write(true)
        .open(&open_leftover)
        .and_then(|file| file.set_modified(a_lease_ago))
        .unwrap();
    let in_flight = leave_temp_file(&server, &open, "c.json#1");
    server.restart().await;
    assert!(
        !committed_leftover.exists(),
        "{committed_leftover:?} survived the restart"
    );
    assert!(!open_leftover.exists(), "{open_leftover:?} survived the restart");
    assert!(in_flight.exists(), "a fresh temp file may be an upload in flight");
    let caller = Caller {
        base: server.base.clone(),
        ..caller
    };
    assert_eq!(caller.batch_action(&open, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&open).await;
    assert_eq!(done["recordCount"], 2, "the open batch's upload was kept: {done}");
    assert!(staged_files(&server, &open).is_empty());
}

#[tokio::test]
async fn uploads_staged_by_an_older_version_are_still_ingested() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let batch = caller.create_batch(&dataset).await;
    // An older version staged uploads at `uploads/<name>` without recording them.
    let uploads = server
        .data_dir()
        .join("lake")
        .join(ORG)
        .join("prod")
        .join("_staging")
        .join(&batch)
        .join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let old: String = (1..=3).map(|n| format!("{}\n", member(n))).collect();
    std::fs::write(uploads.join("old.json"), old).unwrap();
    let new = format!("{}\n", member(4)).into_bytes();
    assert_eq!(caller.upload(&batch, &dataset, "new.json", new).await.0, 200);
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let done = caller.wait_for_batch(&batch).await;
    assert_eq!(done["recordCount"], 4, "{done}");
    let (mut points, _) = download_points(&caller, &batch).await;
    points.sort();
    assert_eq!(points, vec![10, 20, 30, 40]);
}

/// The loyalty dataset's columns in its own Arrow types, as a writer using the dataset's schema
/// (the bench generator, for one) writes them: such a file is checked on Arrow, not via JSON.
fn loyalty_parquet(records: &[Value]) -> Vec<u8> {
    use arrow::datatypes::TimeUnit;
    let loyalty = DataType::Struct(
        vec![
            Field::new("points", DataType::Int64, true),
            Field::new("tier", DataType::Utf8, true),
            Field::new(
                "joined",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]
        .into(),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, true),
        Field::new("identityMap", dossier_model::xdm::identity_map_type(), true),
        Field::new("loyalty", loyalty, true),
    ]));
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone()).build_decoder().unwrap();
    decoder.serialize(records).unwrap();
    let rows = decoder.flush().unwrap().unwrap();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, None).unwrap();
    writer.write(&rows).unwrap();
    writer.close().unwrap();
    buffer
}

#[tokio::test]
async fn parquet_in_the_datasets_types_loads_and_reports_exactly_what_its_json_lines_do() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let dataset = loyalty_dataset(&caller).await;
    let records = [
        member(1),
        json!({"_id": "no-identity", "loyalty": {"points": 1}}),
        json!({"_id": "s", "identityMap": {"CRMID": [{"id": "crm-s"}, {"id": "crm-t", "authenticatedState": "AUTHENTICATED"}]}}),
        json!({"_id": "e", "identityMap": {"CRMID": [{"id": ""}]}}),
        member(4),
        member(5),
    ];
    let mut outcomes = Vec::new();
    // Both uploads have the same name, so that the reports can be compared as they are.
    for (format, name, body) in [
        ("parquet", "m.parquet", loyalty_parquet(&records)),
        (
            "json",
            "m.parquet",
            records
                .iter()
                .map(|r| format!("{r}\n"))
                .collect::<String>()
                .into_bytes(),
        ),
    ] {
        let batch = caller
            .create_batch_with(&dataset, json!({"format": format}), true)
            .await;
        caller.upload(&batch, &dataset, name, body).await;
        caller.batch_action(&batch, "COMPLETE").await;
        let done = caller.wait_for_batch(&batch).await;
        assert_eq!(done["status"], "success", "{format}: {done}");
        assert_eq!(done["recordCount"], 3, "{format}: {done}");
        let (points, _) = download_points(&caller, &batch).await;
        let errors = caller.failed_rows(&batch).await;
        let summary = done["errors"].to_string().replace(&batch, "<batch>");
        outcomes.push((points, errors, summary));
    }
    assert_eq!(outcomes[0].0, [10, 40, 50], "rows kept in order");
    let rows: Vec<&Value> = outcomes[0].1.iter().map(|e| &e["row"]).collect();
    assert_eq!(rows, [2, 3, 4], "{:?}", outcomes[0].1);
    assert_eq!(
        outcomes[0], outcomes[1],
        "Parquet on Arrow and JSON lines agree word for word"
    );
}
