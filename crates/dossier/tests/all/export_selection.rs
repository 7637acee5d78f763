//! Export selection boundaries (semantics.md "Export selection"), through the engine on data
//! ingested with the real API: strictly-after ingestion times, empty profiles both ways, the
//! event ingestion window, and the identity guardrail.

use crate::support::*;
use arrow::array::{AsArray, RecordBatch};
use dossier_engine::export::{ExportOutcome, ExportSettings};
use dossier_model::export_job::{EventListSpec, ExportSpec};
use serde_json::{Value, json};

struct Setup {
    server: TestServer,
    caller: Caller,
    crm: String,
    web: String,
    target: String,
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let ProfileAndEventDatasets { crm, web, .. } = profile_and_event_datasets(&caller).await;
    let target = caller.create_dataset("Profile Data Export").await;
    Setup {
        server,
        caller,
        crm,
        web,
        target,
    }
}

fn record(crm: &str) -> Value {
    json!({"_id": crm, "identityMap": {"CRMID": [{"id": crm, "primary": true}]}, "personalEmail": {"address": format!("{crm}@example.com")}})
}

fn event(id: &str, crm: &str) -> Value {
    json!({"_id": id, "timestamp": "2024-01-01T00:00:00Z", "identityMap": {"CRMID": [{"id": crm, "primary": true}]}})
}

fn spec(setup: &Setup) -> ExportSpec {
    export_spec(&setup.target, "timestampOrdered-none-mp")
}

/// Runs the export with the default settings, and again with pass one spilled (one profile per
/// shard, one identity per bucket): both must select the same profiles and rows.
async fn export(setup: &Setup, spec: ExportSpec) -> (ExportOutcome, Vec<RecordBatch>) {
    let spill = tempfile::tempdir().unwrap();
    let spilled_settings = spilled_settings(spill.path());
    let (outcome, rows) = run_export_in_process(&setup.server, spec.clone(), &ExportSettings::default()).await;
    let (spilled, spilled_rows) = run_export_in_process(&setup.server, spec, &spilled_settings).await;
    assert_eq!(spilled.exported_profiles, outcome.exported_profiles, "spilled export");
    assert_eq!(spilled.left_out, outcome.left_out, "spilled export");
    assert_eq!(spilled.by_namespace, outcome.by_namespace, "spilled export");
    assert_eq!(primary_ids(&spilled_rows), primary_ids(&rows), "spilled export");
    (outcome, rows)
}

fn primary_ids(rows: &[RecordBatch]) -> Vec<String> {
    let mut ids = Vec::new();
    for batch in rows {
        let map = batch.column_by_name("identityMap").unwrap().as_map();
        for r in 0..batch.num_rows() {
            let entries = map.value(r);
            let values = entries.column(1).as_list::<i32>().value(0);
            ids.push(
                values
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
async fn from_ingest_timestamp_is_strictly_after() {
    let s = setup().await;
    let first = s.caller.ingest_json_lines(&s.crm, &[record("c1")]).await;
    let second = s.caller.ingest_json_lines(&s.crm, &[record("c2")]).await;
    let first_time = first["completed"].as_i64().unwrap();
    let second_time = second["completed"].as_i64().unwrap();
    assert!(second_time > first_time);

    let at_first = ExportSpec {
        from_ingest: Some(first_time),
        ..spec(&s)
    };
    assert_eq!(
        primary_ids(&export(&s, at_first).await.1),
        ["c2"],
        "a profile updated exactly at the instant is excluded"
    );
    let just_before = ExportSpec {
        from_ingest: Some(first_time - 1),
        ..spec(&s)
    };
    assert_eq!(primary_ids(&export(&s, just_before).await.1), ["c1", "c2"]);
    let at_second = ExportSpec {
        from_ingest: Some(second_time),
        ..spec(&s)
    };
    let (outcome, rows) = export(&s, at_second).await;
    assert_eq!(outcome.exported_profiles, 0);
    assert_eq!(
        rows.iter().map(RecordBatch::num_rows).sum::<usize>(),
        0,
        "an empty batch still has one file with the columns"
    );
    assert!(rows.is_empty() || rows[0].column_by_name("identityMap").is_some());
}

#[tokio::test]
async fn empty_profiles_both_ways() {
    let s = setup().await;
    s.caller.ingest_json_lines(&s.crm, &[record("c1")]).await;
    s.caller
        .ingest_json_lines(&s.web, &[event("e1", "c1"), event("e2", "visitor-only")])
        .await;

    let (outcome, rows) = export(&s, spec(&s)).await;
    assert_eq!(primary_ids(&rows), ["c1"]);
    assert_eq!(outcome.exported_profiles, 1);

    let (outcome, rows) = export(
        &s,
        ExportSpec {
            empty_profiles: true,
            ..spec(&s)
        },
    )
    .await;
    assert_eq!(
        primary_ids(&rows),
        ["c1", "visitor-only"],
        "the events-only profile is exported with its events' identities"
    );
    assert_eq!(outcome.exported_profiles, 2);
}

#[tokio::test]
async fn the_event_window_is_after_from_and_up_to_to() {
    let s = setup().await;
    s.caller.ingest_json_lines(&s.crm, &[record("c1")]).await;
    let early = s.caller.ingest_json_lines(&s.web, &[event("early", "c1")]).await;
    let late = s.caller.ingest_json_lines(&s.web, &[event("late", "c1")]).await;
    let (early_time, late_time) = (
        early["completed"].as_i64().unwrap(),
        late["completed"].as_i64().unwrap(),
    );

    let events_of = |rows: &[RecordBatch]| -> Vec<String> {
        let list = rows[0].column_by_name("eventList").unwrap().as_list::<i32>().value(0);
        list.as_struct()
            .column_by_name("_id")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_owned())
            .collect()
    };
    let window = |from: Option<i64>, to: Option<i64>| ExportSpec {
        event_list: Some(EventListSpec {
            fields: None,
            from_ingest: from,
            to_ingest: to,
        }),
        ..spec(&s)
    };
    assert_eq!(events_of(&export(&s, window(None, None)).await.1), ["early", "late"]);
    assert_eq!(
        events_of(&export(&s, window(Some(early_time), None)).await.1),
        ["late"],
        "from is exclusive"
    );
    assert_eq!(
        events_of(&export(&s, window(None, Some(early_time))).await.1),
        ["early"],
        "to is inclusive"
    );
    assert_eq!(
        events_of(&export(&s, window(Some(early_time), Some(late_time))).await.1),
        ["late"],
        "consecutive windows tile"
    );
}

#[tokio::test]
async fn profiles_over_the_identity_guardrail_are_left_out_and_counted() {
    let s = setup().await;
    let mut crowded = record("crowd");
    crowded["identityMap"]["Email"] =
        Value::Array((0..50).map(|n| json!({"id": format!("e{n}@example.com")})).collect());
    s.caller.ingest_json_lines(&s.crm, &[record("c1"), crowded]).await;
    let (outcome, rows) = export(&s, spec(&s)).await;
    assert_eq!(primary_ids(&rows), ["c1"]);
    assert_eq!(outcome.left_out.get("identityGraphTooLarge"), Some(&1));
}
