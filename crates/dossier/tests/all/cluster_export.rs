//! The differential test of exports on DataFusion (issue 15, item 5, the local half): the same
//! export requests run on the native engine (`run_export`) and as plans on a local DataFusion
//! session (`run_export_on`) over the same data, ingested through the real API, give the same
//! rows: equal counts and equal order-independent checksums (sorted canonical JSON rows) per
//! batch, the same counters and the same graph version.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use crate::support::*;
use arrow::array::RecordBatch;
use dossier_cluster::export::{ClusterExporter, run_export_on};
use dossier_cluster::session::local_context;
use dossier_engine::export::{
    CancelFlag, ComponentTables, ExportError, ExportOutcome, ExportProgress, ExportRequest, ExportSettings, run_export,
};
use dossier_engine::jobs::{EngineExporter, Exporter};
use dossier_model::export_job::{
    EventListSpec, ExportBatchTarget, ExportSpec, MembershipStatus, QualificationWindow, SegmentFilter,
};
use dossier_model::ids::{BatchId, DatasetId, MergePolicyId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::now_millis;
use dossier_storage::{Lake, MetaStore};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::Method;
use serde_json::{Value, json};

pub(super) const AAM: &str = "4edc8488-2c35-4f6d-b4c6-9075c68d2df4";
const OTHER: &str = "9abc8488-2c35-4f6d-b4c6-9075c68d2df4";

fn member(status: &str, time: &str) -> Value {
    json!({"status": status, "lastQualificationTime": time})
}

fn customer(n: u32, tier: &str, email: &str, memberships: Value) -> Value {
    json!({
        "_id": format!("crm-{n}-{tier}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true, "authenticatedState": "authenticated"}]},
        "identities": [{"id": format!("c{n}"), "namespace": {"code": "CRMID"}, "primary": true}],
        "personalEmail": {"address": email, "type": "personal"},
        "crm": {"tier": tier},
        "segmentMembership": memberships,
    })
}

/// A loyalty record keyed by email, linked to CRM id `n` when `n` is given.
fn loyalty(email: &str, crm: Option<u32>, tier: &str, memberships: Value) -> Value {
    let mut identities = json!({"Email": [{"id": email, "primary": true}]});
    if let Some(n) = crm {
        identities["CRMID"] = json!([{"id": format!("c{n}")}]);
    }
    json!({
        "_id": format!("loyalty-{email}"),
        "identityMap": identities,
        "crm": {"tier": tier},
        "segmentMembership": memberships,
    })
}

fn event(id: &str, crm: &str) -> Value {
    event_at(id, crm, "2024-01-01T00:00:00Z")
}

/// An event whose primary identity is the CRM id: under `none` it falls in the CRM profile.
fn crm_event(id: &str, crm: &str, timestamp: &str) -> Value {
    let mut event = event_at(id, crm, timestamp);
    event["identityMap"] = json!({"CRMID": [{"id": crm, "primary": true}]});
    event
}

fn event_at(id: &str, crm: &str, timestamp: &str) -> Value {
    json!({
        "_id": id, "timestamp": timestamp, "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"ECID": [{"id": format!("ecid-{crm}"), "primary": true}], "CRMID": [{"id": crm}]},
        "environment": {"browserDetails": {"name": "Firefox", "version": "1"}},
    })
}

/// The sandbox the test exports: two record datasets and one event dataset, ingested in five
/// batches; `mid` falls between the first two (records, then events) and the others. Events of
/// one profile come in both event batches, out of timestamp order, with equal timestamps (then
/// ordered by `_id`); `c9`'s events make a profile without a record.
pub(super) struct Seeded {
    crm: String,
    loyalty: String,
    pub(super) target: String,
    pub(super) mid: i64,
}

pub(super) async fn seed(caller: &Caller) -> Seeded {
    let ProfileAndEventDatasets {
        crm,
        loyalty: loyalty_set,
        web,
    } = profile_and_event_datasets(caller).await;
    // One profile over the guardrail: 55 identities.
    let mut crowded = customer(6, "bronze", "c6@example.com", json!({}));
    crowded["identityMap"]["ECID"] = Value::Array((0..55).map(|i| json!({"id": format!("crowd-{i}")})).collect());
    caller
        .ingest_json_lines(
            &crm,
            &[
                customer(1, "gold", "c1@example.com", json!({"AAM": {AAM: member("realized", "2019-09-01T10:00:00Z")}, "ups": {OTHER: member("exited", "2019-09-01T00:00:00Z")}})),
                customer(2, "gold", "c2@example.com", json!({"AAM": {AAM: member("realized", "2019-09-02T00:00:01Z")}})),
                customer(3, "silver", "c3@example.com", json!({"AAM": {AAM: member("existing", "2019-09-01T12:00:00Z")}})),
                customer(4, "gold", "c4@example.com", json!({})),
                customer(5, "gold", "c5@example.com", json!({"aam": {AAM: member("exited", "2019-09-01T05:00:00Z")}})),
                crowded,
            ],
        )
        .await;
    caller
        .ingest_json_lines(
            &web,
            &[
                crm_event("ev-0", "c1", "2024-02-01T00:00:00Z"),
                event_at("ev-3", "c4", "2023-12-31T00:00:00Z"),
                event_at("ev-4", "c9", "2024-01-01T00:00:00Z"),
                event_at("ev-5", "c4", "2024-03-01T00:00:00Z"),
                crm_event("ev-7", "c3", "2024-01-01T00:00:00Z"),
            ],
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mid = now_millis();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    caller
        .ingest_json_lines(
            &loyalty_set,
            &[
                loyalty(
                    "c1@example.com",
                    Some(1),
                    "platinum",
                    json!({"AAM": {AAM: member("exited", "2019-09-01T20:00:00Z")}}),
                ),
                loyalty("c3@example.com", Some(3), "bronze", json!({})),
                loyalty(
                    "c7@example.com",
                    None,
                    "gold",
                    json!({"AAM": {AAM: member("realized", "2019-09-01T08:00:00Z")}}),
                ),
            ],
        )
        .await;
    caller
        .ingest_json_lines(
            &crm,
            &[customer(
                2,
                "platinum",
                "c2-new@example.com",
                json!({"AAM": {AAM: member("existing", "2019-09-01T23:00:00Z")}}),
            )],
        )
        .await;
    caller
        .ingest_json_lines(
            &web,
            &[
                event("ev-1", "c4"),
                event("ev-2", "c9"),
                crm_event("ev-6", "c3", "2024-01-01T00:00:00Z"),
            ],
        )
        .await;
    let target = caller.create_dataset("Profile Data Export").await;
    Seeded {
        crm,
        loyalty: loyalty_set,
        target,
        mid,
    }
}

pub(super) async fn merge_policy(caller: &Caller, name: &str, graph: &str, merge: Value) -> MergePolicyId {
    let body = json!({"name": name, "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": graph}, "attributeMerge": merge});
    let (status, policy) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    assert_eq!(status, 200, "{policy}");
    MergePolicyId::from_string(policy["id"].as_str().unwrap())
}

/// The files of one batch of the target dataset, every row as canonical JSON, sorted.
pub(super) fn batch_rows(data_dir: &Path, tenant: &Tenant, dataset: &str, batch: &BatchId) -> Vec<String> {
    let prefix = Lake::batch_prefix(tenant, &DatasetId::from_string(dataset), batch);
    let folder = data_dir.join("lake").join(prefix.as_ref());
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return rows;
    };
    for path in entries.map(|e| e.unwrap().path()) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            rows.extend(json_rows(&batch.unwrap()));
        }
    }
    rows.sort();
    rows
}

fn json_rows(batch: &RecordBatch) -> Vec<String> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&writer.into_inner()).unwrap_or_default();
    // Through `Value`: one spelling of every row, whatever order its object keys were written in.
    rows.iter().map(|row| serde_json::to_string(row).unwrap()).collect()
}

pub(super) fn checksum(rows: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    rows.hash(&mut hasher);
    hasher.finish()
}

/// What one run of a request gives, comparable between engines.
#[derive(Debug, PartialEq)]
struct Result {
    exported: u64,
    by_namespace: BTreeMap<String, u64>,
    left_out: BTreeMap<String, u64>,
    graph_version: Option<i64>,
    /// The `profilesScanned` counter.
    scanned: u64,
    /// Per batch: records, row count, checksum.
    batches: Vec<(i64, usize, u64)>,
}

struct Context<'a> {
    meta: &'a MetaStore,
    lake: &'a Lake,
    data_dir: &'a Path,
    tenant: &'a Tenant,
    target: &'a str,
}

/// Runs `spec` into fresh batches (one per segment filter with `segment_per_batch`), natively
/// or on DataFusion; gives the result and every batch's rows.
async fn run(context: &Context<'_>, spec: &ExportSpec, cluster: bool) -> (Result, Vec<Vec<String>>) {
    let batches: Vec<ExportBatchTarget> = match spec.segment_per_batch {
        true => (0..spec.segments.len())
            .map(|i| ExportBatchTarget {
                batch_id: BatchId::generate(),
                segment: Some(i),
            })
            .collect(),
        false => vec![ExportBatchTarget {
            batch_id: BatchId::generate(),
            segment: None,
        }],
    };
    let request = ExportRequest {
        tenant: context.tenant.clone(),
        job_id: 1,
        spec: spec.clone(),
        batches: batches.clone(),
    };
    let (progress, cancel) = (ExportProgress::default(), CancelFlag::default());
    let outcome: ExportOutcome = match cluster {
        false => run_export(context.meta, context.lake, &request, &progress, &cancel).await,
        // Through the exporter the server uses for `export_engine = "cluster"`.
        true => {
            let engine = EngineExporter {
                meta: context.meta.clone(),
                lake: context.lake.clone(),
                settings: ExportSettings::default(),
                tables: ComponentTables::default(),
            };
            let exporter = ClusterExporter::new(engine, local_context(context.lake).unwrap());
            exporter.export(&request, &progress, &cancel).await
        }
    }
    .unwrap_or_else(|e| panic!("cluster={cluster}: {e}"));
    let rows: Vec<Vec<String>> = batches
        .iter()
        .map(|b| batch_rows(context.data_dir, context.tenant, context.target, &b.batch_id))
        .collect();
    let result = Result {
        exported: outcome.exported_profiles,
        by_namespace: outcome.by_namespace,
        left_out: outcome.left_out,
        graph_version: outcome.identity_graph_version,
        scanned: progress.snapshot().0,
        batches: outcome
            .batches
            .iter()
            .zip(&rows)
            .map(|(b, rows)| (b.records, rows.len(), checksum(rows)))
            .collect(),
    };
    assert_eq!(
        progress.snapshot().1,
        result.exported,
        "cluster={cluster}: profiles_exported"
    );
    (result, rows)
}

fn spec(target: &str, policy: &MergePolicyId) -> ExportSpec {
    export_spec(target, policy.as_str())
}

fn filter(statuses: &[MembershipStatus]) -> SegmentFilter {
    SegmentFilter {
        segment_id: AAM.into(),
        segment_ns: "AAM".into(),
        statuses: statuses.to_vec(),
    }
}

/// Every kind of request, under one policy.
fn requests(seeded: &Seeded, policy: &MergePolicyId) -> Vec<(&'static str, ExportSpec)> {
    let millis = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let base = spec(&seeded.target, policy);
    let fields = ExportSpec {
        fields: Some(vec![
            "identities.id".into(),
            "personalEmail.address".into(),
            "crm.tier".into(),
        ]),
        ..base.clone()
    };
    let windowed = ExportSpec {
        segments: vec![
            filter(&[MembershipStatus::Realized]),
            filter(&[MembershipStatus::Existing, MembershipStatus::Exited]),
        ],
        qualification: QualificationWindow {
            start: Some(millis("2019-09-01T00:00:00Z")),
            end: Some(millis("2019-09-02T00:00:00Z")),
        },
        segment_per_batch: true,
        ..base.clone()
    };
    let one_batch = ExportSpec {
        segments: vec![filter(&[MembershipStatus::Realized, MembershipStatus::Existing])],
        fields: Some(vec!["segmentMembership".into(), "crm".into()]),
        ..base.clone()
    };
    let recent = ExportSpec {
        from_ingest: Some(seeded.mid),
        ..base.clone()
    };
    let events = ExportSpec {
        event_list: Some(EventListSpec::default()),
        ..base.clone()
    };
    let recent_events = ExportSpec {
        fields: Some(vec!["crm.tier".into()]),
        event_list: Some(EventListSpec {
            fields: Some(vec!["environment.browserDetails.name".into()]),
            from_ingest: Some(seeded.mid),
            to_ingest: None,
        }),
        ..base.clone()
    };
    let early_events = ExportSpec {
        event_list: Some(EventListSpec {
            fields: Some(vec!["eventType".into(), "environment.browserDetails".into()]),
            from_ingest: None,
            to_ingest: Some(seeded.mid),
        }),
        segments: vec![filter(&[MembershipStatus::Realized, MembershipStatus::Existing])],
        ..base.clone()
    };
    let empty = ExportSpec {
        empty_profiles: true,
        ..base.clone()
    };
    let empty_with_events = ExportSpec {
        empty_profiles: true,
        fields: Some(vec!["personalEmail.address".into()]),
        from_ingest: Some(seeded.mid),
        event_list: Some(EventListSpec {
            fields: Some(vec!["eventType".into()]),
            from_ingest: Some(seeded.mid),
            to_ingest: Some(now_millis()),
        }),
        ..base.clone()
    };
    vec![
        ("all profiles", base),
        ("fields", fields),
        ("segments per batch, windowed", windowed),
        ("segments in one batch", one_batch),
        ("fromIngestTimestamp", recent),
        ("eventList", events),
        ("eventList from a time, fields", recent_events),
        ("eventList up to a time, segment filter", early_events),
        ("emptyProfiles", empty),
        ("emptyProfiles, eventList windowed, fields", empty_with_events),
    ]
}

#[tokio::test]
async fn exports_on_datafusion_write_the_native_engines_rows() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let seeded = seed(&caller).await;
    let policies = [
        ("pdg, timestampOrdered", "pdg", json!({"type": "timestampOrdered"})),
        ("none, timestampOrdered", "none", json!({"type": "timestampOrdered"})),
        (
            "pdg, dataSetPrecedence",
            "pdg",
            json!({"type": "dataSetPrecedence", "order": [seeded.crm, seeded.loyalty]}),
        ),
        (
            "none, dataSetPrecedence (loyalty only)",
            "none",
            json!({"type": "dataSetPrecedence", "order": [seeded.loyalty]}),
        ),
    ];
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let data_dir = server.data_dir();
    let (meta, lake) = open_storage(&data_dir).await.unwrap();
    let context = Context {
        meta: &meta,
        lake: &lake,
        data_dir: &data_dir,
        tenant: &tenant,
        target: &seeded.target,
    };
    let mut compared = 0;
    let mut listing: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, graph, merge) in policies {
        let policy = merge_policy(&caller, name, graph, merge).await;
        let mut with_records = 0;
        for (what, spec) in requests(&seeded, &policy) {
            let (native, native_rows) = run(&context, &spec, false).await;
            let (cluster, cluster_rows) = run(&context, &spec, true).await;
            assert_eq!(cluster_rows, native_rows, "{name}, {what}: the rows");
            assert_eq!(cluster, native, "{name}, {what}: counts and checksums");
            compared += native.exported;
            // The cases compare something: events are listed, empty profiles are exported.
            let rows = native_rows.concat();
            if spec.event_list.is_some() {
                let listed = rows.iter().filter(|r| r.contains("\"eventList\":[{")).count();
                *listing.entry(what).or_default() += listed;
            }
            match (
                spec.segments.is_empty() && spec.from_ingest.is_none(),
                spec.empty_profiles,
            ) {
                (true, false) => with_records = native.exported,
                (true, true) => assert!(native.exported > with_records, "{name}, {what}: no empty profile"),
                _ => {}
            }
        }
    }
    assert!(compared > 20, "the requests export profiles ({compared})");
    for (what, listed) in listing {
        assert!(listed > 0, "{what}: no profile lists events under any policy");
    }
}

const SEGMENT_JOBS: &str = "/data/core/ups/segment/jobs";

fn ups(segment: &str, statuses: &[MembershipStatus]) -> SegmentFilter {
    SegmentFilter {
        segment_id: segment.into(),
        segment_ns: "ups".into(),
        statuses: statuses.to_vec(),
    }
}

/// Defines a segment of `pql` and returns its id.
pub(super) async fn define(caller: &Caller, name: &str, pql: &str) -> String {
    let body = json!({"name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}});
    let (status, created) = caller
        .send_json(Method::POST, "/data/core/ups/segment/definitions", &body)
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Runs a segment job over `segments` on the server (the native engine) to its success: its
/// memberships become current.
pub(super) async fn evaluate(caller: &Caller, segments: &[&str]) {
    let body: Vec<Value> = segments.iter().map(|s| json!({"segmentId": s})).collect();
    let (status, job) = caller.send_json(Method::POST, SEGMENT_JOBS, &json!(body)).await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (_, job) = caller.get(&format!("{SEGMENT_JOBS}/{id}")).await;
        match job["status"].as_str().unwrap() {
            "SUCCEEDED" => return,
            "FAILED" | "CANCELLED" => panic!("segment job {id}: {job}"),
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "segment job {id} never ended");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Requests whose rows evaluated (`ups`) memberships change: `ups` filters with statuses and
/// windows, beside a fragment's own `ups` entries and `AAM` ones, and `segmentMembership` in
/// the output.
fn ups_requests(
    seeded: &Seeded,
    policy: &MergePolicyId,
    gold: &str,
    platinum: &str,
) -> Vec<(&'static str, ExportSpec)> {
    let base = spec(&seeded.target, policy);
    let since = now_millis() - 3_600_000;
    vec![
        (
            "ups filters per batch, windowed",
            ExportSpec {
                segments: vec![
                    ups(gold, &[MembershipStatus::Realized]),
                    ups(platinum, &[MembershipStatus::Realized, MembershipStatus::Existing]),
                    ups(OTHER, &[MembershipStatus::Exited]),
                    filter(&[MembershipStatus::Realized]),
                ],
                qualification: QualificationWindow {
                    start: Some(since),
                    end: None,
                },
                segment_per_batch: true,
                ..base.clone()
            },
        ),
        (
            "ups filters in one batch, memberships written",
            ExportSpec {
                segments: vec![
                    ups(gold, &[MembershipStatus::Realized, MembershipStatus::Existing]),
                    ups(OTHER, &[MembershipStatus::Exited]),
                ],
                fields: Some(vec!["segmentMembership".into(), "crm".into()]),
                ..base.clone()
            },
        ),
        (
            "an exited status only",
            ExportSpec {
                segments: vec![ups(gold, &[MembershipStatus::Exited])],
                ..base.clone()
            },
        ),
        (
            "every profile, memberships written",
            ExportSpec {
                fields: Some(vec!["segmentMembership".into(), "identities.id".into()]),
                ..base.clone()
            },
        ),
        ("every profile, whole", base),
    ]
}

/// With evaluated memberships in the sandbox (a segment job ran), `ups` filters and written
/// `segmentMembership` give the native engine's rows on DataFusion; and
/// `evaluationInfo.segmentation` evaluates on DataFusion and makes the memberships current
/// before exporting, so a native export right after reads the same memberships.
#[tokio::test]
async fn evaluated_memberships_on_datafusion_write_the_native_engines_rows() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let seeded = seed(&caller).await;
    let gold = define(&caller, "Gold", "crm.tier = \"gold\"").await;
    let platinum = define(&caller, "Platinum", "crm.tier = \"platinum\"").await;
    evaluate(&caller, &[&gold, &platinum]).await;
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let data_dir = server.data_dir();
    let (meta, lake) = open_storage(&data_dir).await.unwrap();
    let context = Context {
        meta: &meta,
        lake: &lake,
        data_dir: &data_dir,
        tenant: &tenant,
        target: &seeded.target,
    };
    let policies = [
        ("pdg, timestampOrdered", "pdg", json!({"type": "timestampOrdered"})),
        ("none, timestampOrdered", "none", json!({"type": "timestampOrdered"})),
        (
            "none, dataSetPrecedence (loyalty only)",
            "none",
            json!({"type": "dataSetPrecedence", "order": [seeded.loyalty]}),
        ),
    ];
    let mut compared = 0;
    for (name, graph, merge) in policies {
        let policy = merge_policy(&caller, name, graph, merge).await;
        for (what, spec) in ups_requests(&seeded, &policy, &gold, &platinum) {
            let (native, native_rows) = run(&context, &spec, false).await;
            let (cluster, cluster_rows) = run(&context, &spec, true).await;
            assert_eq!(cluster_rows, native_rows, "{name}, {what}: the rows");
            assert_eq!(cluster, native, "{name}, {what}: counts and checksums");
            compared += native.exported;
        }
        // Segmentation first on DataFusion, then the same export natively, without.
        let fresh = ExportSpec {
            segments: vec![ups(&gold, &[MembershipStatus::Existing])],
            fields: Some(vec!["segmentMembership".into()]),
            evaluate_segments: true,
            ..spec(&seeded.target, &policy)
        };
        let before = meta.membership_files(&tenant).await.unwrap();
        let (cluster, cluster_rows) = run(&context, &fresh, true).await;
        let after = meta.membership_files(&tenant).await.unwrap();
        let gold_file = |files: &[dossier_storage::meta::MembershipFile]| {
            files.iter().find(|f| f.segment_id == gold).unwrap().path.clone()
        };
        assert_ne!(
            gold_file(&before),
            gold_file(&after),
            "{name}: the export's evaluation is current"
        );
        let (native, native_rows) = run(
            &context,
            &ExportSpec {
                evaluate_segments: false,
                ..fresh
            },
            false,
        )
        .await;
        assert!(native.exported > 0, "{name}: re-evaluated gold profiles are existing");
        assert_eq!(cluster_rows, native_rows, "{name}, segmentation: the rows");
        assert_eq!(cluster, native, "{name}, segmentation: counts and checksums");
    }
    assert!(compared > 20, "the requests export profiles ({compared})");
}

/// A cancelled job stops with `Cancelled` and writes nothing.
#[tokio::test]
async fn a_cancelled_export_on_datafusion_stops_without_writing() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let seeded = seed(&caller).await;
    let policy = merge_policy(&caller, "stitched", "pdg", json!({"type": "timestampOrdered"})).await;
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let (meta, lake) = open_storage(&server.data_dir()).await.unwrap();
    let ctx = local_context(&lake).unwrap();
    let batch = BatchId::generate();
    let request = ExportRequest {
        tenant: tenant.clone(),
        job_id: 1,
        spec: spec(&seeded.target, &policy),
        batches: vec![ExportBatchTarget {
            batch_id: batch.clone(),
            segment: None,
        }],
    };
    let cancel = CancelFlag::default();
    cancel.cancel();
    let error = run_export_on(&ctx, &meta, &lake, &request, &ExportProgress::default(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::Cancelled), "{error:?}");
    assert!(batch_rows(&server.data_dir(), &tenant, &seeded.target, &batch).is_empty());
}

/// Times both engines on `DOSSIER_CLUSTER_EXPORT_PROFILES` (default 20 000) CRM profiles with a
/// linked loyalty record each: a measurement, not a check of speed (run with `--ignored
/// --nocapture`).
#[tokio::test]
#[ignore = "a measurement; run by hand"]
async fn time_both_engines() {
    let profiles: u32 = std::env::var("DOSSIER_CLUSTER_EXPORT_PROFILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let ProfileAndEventDatasets {
        crm,
        loyalty: loyalty_set,
        ..
    } = profile_and_event_datasets(&caller).await;
    let membership = json!({"AAM": {AAM: member("realized", "2019-09-01T10:00:00Z")}});
    let customers: Vec<Value> = (0..profiles)
        .map(|n| customer(n, "gold", &format!("c{n}@example.com"), membership.clone()))
        .collect();
    caller.ingest_json_lines(&crm, &customers).await;
    let records: Vec<Value> = (0..profiles)
        .map(|n| loyalty(&format!("c{n}@example.com"), Some(n), "silver", json!({})))
        .collect();
    caller.ingest_json_lines(&loyalty_set, &records).await;
    let target = caller.create_dataset("Profile Data Export").await;
    let policy = merge_policy(&caller, "stitched", "pdg", json!({"type": "timestampOrdered"})).await;
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let data_dir = server.data_dir();
    let (meta, lake) = open_storage(&data_dir).await.unwrap();
    let context = Context {
        meta: &meta,
        lake: &lake,
        data_dir: &data_dir,
        tenant: &tenant,
        target: &target,
    };
    let spec = spec(&target, &policy);
    for cluster in [false, true, false, true] {
        let started = std::time::Instant::now();
        let (result, _) = run(&context, &spec, cluster).await;
        eprintln!(
            "cluster={cluster}: {} profiles in {} ms",
            result.exported,
            started.elapsed().as_millis()
        );
    }
}

/// The merged profiles plan survives what Ballista does to it: the logical plan and the physical
/// plan encoded with DataFusion's protobuf codec, decoded in another session (functions and lake
/// registered, as a scheduler and an executor have them) and run, give the same rows.
#[tokio::test]
async fn the_plan_survives_serialization_to_another_session() {
    use dossier_cluster::datafusion::physical_plan::collect;
    use dossier_cluster::datafusion::prelude::DataFrame;
    use dossier_cluster::datafusion_proto::bytes::{
        logical_plan_from_bytes, logical_plan_to_bytes, physical_plan_from_bytes, physical_plan_to_bytes,
    };
    use dossier_cluster::profiles::{Wanted, merged_profiles};
    use dossier_engine::profiles::build::keys::EventScan;

    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let seeded = seed(&caller).await;
    let policy_id = merge_policy(&caller, "stitched", "pdg", json!({"type": "timestampOrdered"})).await;
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let (meta, lake) = open_storage(&server.data_dir()).await.unwrap();
    let policy = meta.merge_policy(&tenant, &policy_id, Some(1)).await.unwrap().unwrap();
    let union = meta.profile_union(&tenant).await.unwrap().arrow_schema();
    // Evaluated memberships too: their files unnested and keyed through the graph snapshot.
    let gold = define(&caller, "Gold", "crm.tier = \"gold\"").await;
    evaluate(&caller, &[&gold]).await;
    let evaluated = meta.membership_files(&tenant).await.unwrap();
    let segments = [
        filter(&[MembershipStatus::Realized]),
        ups(&gold, &[MembershipStatus::Realized]),
    ];
    let wanted = Wanted {
        events: EventScan::IngestedAfter(seeded.mid),
        segments: &segments,
        evaluated: &evaluated,
        listing: None,
        empty_profiles: false,
    };
    let client = local_context(&lake).unwrap();
    let merged = merged_profiles(&client, &meta, &lake, &tenant, &policy, &union, wanted)
        .await
        .unwrap();
    let expected: usize = merged
        .frame
        .clone()
        .collect()
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert!(expected > 0);
    assert!(merged.frame.schema().field_with_unqualified_name("evaluated").is_ok());

    let scheduler = local_context(&lake).unwrap();
    let logical = logical_plan_to_bytes(merged.frame.logical_plan()).unwrap();
    let decoded = logical_plan_from_bytes(&logical, &scheduler.task_ctx()).unwrap();
    let rows: usize = DataFrame::new(scheduler.state(), decoded)
        .collect()
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, expected, "the logical plan, decoded");

    let executor = local_context(&lake).unwrap();
    let physical = physical_plan_to_bytes(merged.frame.create_physical_plan().await.unwrap()).unwrap();
    let decoded = physical_plan_from_bytes(&physical, &executor.task_ctx()).unwrap();
    let rows: usize = collect(decoded, executor.task_ctx())
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, expected, "the physical plan, decoded");
}

/// A sandbox without fragments exports nothing on both engines (the empty plan runs).
#[tokio::test]
async fn an_empty_sandbox_exports_nothing_on_both_engines() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Profile Data Export").await;
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let data_dir = server.data_dir();
    let (meta, lake) = open_storage(&data_dir).await.unwrap();
    let context = Context {
        meta: &meta,
        lake: &lake,
        data_dir: &data_dir,
        tenant: &tenant,
        target: &target,
    };
    for graph in ["pdg", "none"] {
        let policy = merge_policy(&caller, graph, graph, json!({"type": "timestampOrdered"})).await;
        let spec = spec(&target, &policy);
        let (native, _) = run(&context, &spec, false).await;
        let (cluster, _) = run(&context, &spec, true).await;
        assert_eq!(cluster, native, "{graph}");
        assert_eq!(native.exported, 0);
    }
}
