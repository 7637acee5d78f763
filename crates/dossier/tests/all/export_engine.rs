//! The export engine on data ingested through the real API: the tutorial's selection (two
//! segments, a qualification window with inclusive edges, fields through an array, eventList,
//! one batch per segment), read back from the lake with the parquet crate.

use std::collections::BTreeMap;

use crate::support::*;
use arrow::array::{AsArray, RecordBatch};
use dossier_engine::export::{
    CancelFlag, ExportOutcome, ExportProgress, ExportRequest, ExportSettings, run_export, run_export_with,
};
use dossier_model::export_job::{
    EventListSpec, ExportBatchTarget, ExportSpec, MembershipStatus, QualificationWindow, SegmentFilter,
};
use dossier_model::ids::{BatchId, DatasetId, MergePolicyId};
use dossier_storage::{Lake, MetaStore};
use reqwest::Method;
use serde_json::{Value, json};

const AAM_SEGMENT: &str = "4edc8488-2c35-4f6d-b4c6-9075c68d2df4";
const UPS_SEGMENT: &str = "1rfe8422-334d-12f4-3sd4-12cf6g990g51";

fn customer(n: u32, memberships: Value) -> Value {
    json!({
        "_id": format!("crm-{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
        "identities": [{"id": format!("c{n}"), "namespace": {"code": "CRMID"}, "primary": true}],
        "personalEmail": {"address": format!("c{n}@example.com"), "type": "personal"},
        "crm": {"tier": "gold"},
        "segmentMembership": memberships,
    })
}

fn event(id: &str, crm: &str, time: &str, browser: &str) -> Value {
    json!({
        "_id": id, "timestamp": time, "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"ECID": [{"id": format!("ecid-{crm}"), "primary": true}], "CRMID": [{"id": crm}]},
        "environment": {"browserDetails": {"name": browser, "version": "1"}},
    })
}

/// A batch's rows as one record batch.
fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}

/// Runs `request` again into two fresh batches (segments 0 and 1) with `settings`; gives the
/// outcome and the two batch ids.
async fn export_again(
    meta: &MetaStore,
    lake: &Lake,
    request: &ExportRequest,
    settings: &ExportSettings,
) -> (ExportOutcome, BatchId, BatchId) {
    let batches = [BatchId::generate(), BatchId::generate()];
    let again = ExportRequest {
        batches: batches
            .iter()
            .enumerate()
            .map(|(segment, batch_id)| ExportBatchTarget {
                batch_id: batch_id.clone(),
                segment: Some(segment),
            })
            .collect(),
        ..request.clone()
    };
    let outcome = run_export_with(
        meta,
        lake,
        &again,
        &ExportProgress::default(),
        &CancelFlag::default(),
        settings,
    )
    .await
    .unwrap();
    let [first, second] = batches;
    (outcome, first, second)
}

/// The rows of `batches` in one batch, ordered by CRM id: shards write profiles in another order.
fn sorted_by_crm_id(batches: &[RecordBatch]) -> RecordBatch {
    let ids = crm_ids(batches);
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| ids[i as usize].clone());
    arrow::compute::take_record_batch(&concat(batches), &arrow::array::UInt32Array::from(order)).unwrap()
}

fn crm_ids(batches: &[RecordBatch]) -> Vec<String> {
    let mut ids = Vec::new();
    for rows in batches {
        let identities = rows.column_by_name("identities").unwrap().as_list::<i32>();
        for r in 0..rows.num_rows() {
            let items = identities.value(r);
            ids.push(
                items
                    .as_struct()
                    .column_by_name("id")
                    .unwrap()
                    .as_string::<i32>()
                    .value(0)
                    .to_owned(),
            );
        }
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn the_tutorial_selection_with_inclusive_windows_and_one_batch_per_segment() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let ProfileAndEventDatasets { crm, web, .. } = profile_and_event_datasets(&caller).await;
    let realized = |time: &str| json!({"status": "realized", "lastQualificationTime": time});
    let exited = |time: &str| json!({"status": "exited", "lastQualificationTime": time});
    caller
        .ingest_json_lines(
            &crm,
            &[
                customer(1, json!({"AAM": {AAM_SEGMENT: realized("2019-09-01T10:00:00Z")}, "ups": {UPS_SEGMENT: exited("2019-09-01T00:00:00Z")}})),
                customer(2, json!({"AAM": {AAM_SEGMENT: realized("2019-09-02T00:00:01Z")}})),
                customer(3, json!({"AAM": {AAM_SEGMENT: {"status": "existing", "lastQualificationTime": "2019-09-01T12:00:00Z"}},
                                   "ups": {UPS_SEGMENT: exited("2019-09-02T00:00:00Z")}})),
                customer(4, json!({})),
            ],
        )
        .await;
    caller
        .ingest_json_lines(
            &web,
            &[
                event("ev-2", "c1", "2024-01-02T00:00:00Z", "Firefox"),
                event("ev-1", "c1", "2024-01-01T00:00:00Z", "Chrome"),
                event("ev-3", "c3", "2024-01-01T00:00:00Z", "Safari"),
            ],
        )
        .await;
    let body = json!({"name": "stitched", "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}});
    let (_, policy) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;

    let target = caller.create_dataset("Profile Data Export").await;
    let tenant = prod_tenant();
    let millis = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let (aam_batch, ups_batch) = (BatchId::generate(), BatchId::generate());
    let spec = ExportSpec {
        fields: Some(vec!["identities.id".into(), "personalEmail.address".into()]),
        segments: vec![
            SegmentFilter {
                segment_id: AAM_SEGMENT.into(),
                segment_ns: "AAM".into(),
                statuses: vec![MembershipStatus::Realized],
            },
            SegmentFilter {
                segment_id: UPS_SEGMENT.into(),
                segment_ns: "UPS".into(),
                statuses: vec![MembershipStatus::Exited],
            },
        ],
        qualification: QualificationWindow {
            start: Some(millis("2019-09-01T00:00:00Z")),
            end: Some(millis("2019-09-02T00:00:00Z")),
        },
        from_ingest: Some(millis("2018-10-25T13:22:04-07:00")),
        empty_profiles: false,
        event_list: Some(EventListSpec {
            fields: Some(vec![
                "environment.browserDetails.name".into(),
                "environment.browserDetails.version".into(),
            ]),
            from_ingest: Some(millis("2018-10-25T13:22:04-07:00")),
            to_ingest: None,
        }),
        dataset_id: DatasetId::from_string(target.clone()),
        segment_per_batch: true,
        merge_policy_id: MergePolicyId::from_string(policy["id"].as_str().unwrap()),
        merge_policy_version: 1,
        evaluate_segments: false,
    };
    let request = ExportRequest {
        tenant: tenant.clone(),
        job_id: 1,
        spec,
        batches: vec![
            ExportBatchTarget {
                batch_id: aam_batch.clone(),
                segment: Some(0),
            },
            ExportBatchTarget {
                batch_id: ups_batch.clone(),
                segment: Some(1),
            },
        ],
    };
    let (meta, lake) = crate::support::open_storage(&server.data_dir()).await.unwrap();
    let progress = ExportProgress::default();
    let outcome = run_export(&meta, &lake, &request, &progress, &CancelFlag::default())
        .await
        .unwrap();

    assert_eq!(
        outcome.exported_profiles, 2,
        "c1 and c3; c2 qualified one second after the window, c4 is in no segment"
    );
    assert_eq!(outcome.by_namespace, BTreeMap::from([("CRMID".to_owned(), 2)]));
    assert_eq!(outcome.batches[0].records, 1);
    assert_eq!(outcome.batches[1].records, 2, "both inclusive edges of the window");

    let aam_rows = exported_batch(&server, &target, &aam_batch);
    assert_eq!(crm_ids(&aam_rows), ["c1"]);
    assert_eq!(crm_ids(&exported_batch(&server, &target, &ups_batch)), ["c1", "c3"]);

    let rows = &aam_rows[0];
    let columns: Vec<String> = rows.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(columns, ["identityMap", "identities", "personalEmail", "eventList"]);
    let email = rows.column_by_name("personalEmail").unwrap().as_struct();
    assert_eq!(email.num_columns(), 1, "only personalEmail.address");
    assert_eq!(email.column(0).as_string::<i32>().value(0), "c1@example.com");
    let events = rows.column_by_name("eventList").unwrap().as_list::<i32>().value(0);
    let events = events.as_struct();
    let ids: Vec<&str> = events
        .column_by_name("_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(ids, ["ev-1", "ev-2"], "ordered by timestamp");
    let names = events
        .column_by_name("environment")
        .unwrap()
        .as_struct()
        .column_by_name("browserDetails")
        .unwrap()
        .as_struct();
    assert_eq!(
        names.column_by_name("name").unwrap().as_string::<i32>().value(0),
        "Chrome"
    );
    assert!(events.column_by_name("timestamp").is_some());
    assert_eq!(progress.snapshot().3, 100);

    // Partitions only bound memory: the same export one profile per partition writes the same
    // rows (each partition re-reads the files for its own profiles).
    let settings = ExportSettings {
        partition_profiles: 1,
        ..ExportSettings::default()
    };
    let (small_outcome, small_aam, small_ups) = export_again(&meta, &lake, &request, &settings).await;
    assert_eq!(small_outcome.exported_profiles, 2);
    assert_eq!(small_outcome.by_namespace, outcome.by_namespace);
    for (big, tiny) in [(&aam_batch, &small_aam), (&ups_batch, &small_ups)] {
        let expected = exported_batch(&server, &target, big);
        let got = exported_batch(&server, &target, tiny);
        assert_eq!(crm_ids(&got), crm_ids(&expected));
        let (expected, got) = (concat(&expected), concat(&got));
        assert_eq!(got, expected, "every column of every row");
    }

    // Shards and buckets only bound memory too: with pass one spilled to disk (one profile per
    // shard, one identity per bucket, or a few of each) the export writes the same rows. It
    // leaves nothing in the spill folder but the graph version's buckets, which the next export
    // of the version reads instead of the snapshot, to the same rows.
    for (shard_profiles, bucket_identities) in [(1, 1), (2, 3)] {
        let spill = tempfile::tempdir().unwrap();
        let settings = ExportSettings {
            shard_profiles,
            bucket_identities,
            spill_dir: Some(spill.path().to_path_buf()),
            ..ExportSettings::default()
        };
        for run in ["scanned", "kept"] {
            let (spilled_outcome, spilled_aam, spilled_ups) = export_again(&meta, &lake, &request, &settings).await;
            assert_eq!(spilled_outcome.exported_profiles, 2);
            assert_eq!(spilled_outcome.by_namespace, outcome.by_namespace);
            assert_eq!(spilled_outcome.identity_graph_version, outcome.identity_graph_version);
            for (big, sharded) in [(&aam_batch, &spilled_aam), (&ups_batch, &spilled_ups)] {
                let expected = sorted_by_crm_id(&exported_batch(&server, &target, big));
                let got = sorted_by_crm_id(&exported_batch(&server, &target, sharded));
                assert_eq!(
                    got, expected,
                    "every column of every row ({shard_profiles}, {bucket_identities}, {run} graph)"
                );
            }
            assert_eq!(kept_graph_versions(spill.path()), 1, "one version kept ({run})");
        }
    }

    // Other readers see the same schema and rows: pyarrow and DuckDB, as a data engineer would.
    let folder = server
        .data_dir()
        .join("lake")
        .join(Lake::batch_prefix(&tenant, &DatasetId::from_string(target.as_str()), &ups_batch).as_ref());
    let script = r#"
import sys, pyarrow.parquet as pq, duckdb
folder = sys.argv[1]
table = pq.read_table(folder)
assert table.num_rows == 2, table.num_rows
import pyarrow as pa
identity_map = table.schema.field("identityMap").type
assert pa.types.is_map(identity_map) and pa.types.is_list(identity_map.item_type), identity_map
assert pa.types.is_list(table.schema.field("eventList").type), table.schema.field("eventList").type
rows = duckdb.sql(f"SELECT personalEmail.address AS email, len(eventList) AS events FROM read_parquet('{folder}/*.parquet') ORDER BY email").fetchall()
assert rows == [("c1@example.com", 2), ("c3@example.com", 1)], rows
print("ok")
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&folder)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "pyarrow/duckdb check failed (CI installs them with .ci/run): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
