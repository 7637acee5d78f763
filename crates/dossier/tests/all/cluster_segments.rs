//! Segment evaluation on the cluster engine (feature `cluster`) against the native one, over the
//! same lake: every PQL construct the native evaluator supports decides the same profiles and
//! writes the same membership rows, and a segment job run through the cluster's evaluation
//! writes the memberships a native evaluation writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::segment_jobs::{MembershipRow, membership_rows};
use crate::support::*;
use dossier_cluster::node::connect;
use dossier_cluster::segments::evaluate_on_with;
use dossier_cluster::session::local_context;
use dossier_engine::export::{CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest};
use dossier_engine::jobs::{EngineExporter, Exporter, segments_of};
use dossier_engine::profiles::build::{BuildSettings, ComponentTables};
use dossier_engine::segments::{Evaluation, SegmentError, evaluate_segments};
use dossier_model::segment_job::SegmentJob;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::now_millis;
use dossier_testkit::ballista::BallistaCluster;
use reqwest::Method;
use serde_json::{Value, json};

const JOBS: &str = "/data/core/ups/segment/jobs";
const DEFINITIONS: &str = "/data/core/ups/segment/definitions";

fn prod() -> Tenant {
    Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    }
}

fn crm_properties() -> Value {
    json!({"crm": {"type": "object", "properties": {
        "tier": {"type": "string"},
        "score": {"type": "integer"},
        "ratio": {"type": "number"},
        "vip": {"type": "boolean"},
        "born": {"type": "string", "format": "date"},
        "joined": {"type": "string", "format": "date-time"},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "string"}}
    }}})
}

fn record(crm_id: &str, crm: Value) -> Value {
    json!({"_id": format!("{crm_id}-{crm}"), "identityMap": {"CRMID": [{"id": crm_id, "primary": true}]}, "crm": crm})
}

async fn define(caller: &Caller, name: &str, pql: &str) -> String {
    let body = json!({"name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}});
    let (status, created) = caller.send_json(Method::POST, DEFINITIONS, &body).await;
    assert_eq!(status, 200, "{pql}: {created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Runs a segment job over `ids` to its end; it must succeed.
async fn run_job(caller: &Caller, ids: &[String]) -> Value {
    let body: Vec<Value> = ids.iter().map(|s| json!({"segmentId": s})).collect();
    let (status, job) = caller.send_json(Method::POST, JOBS, &json!(body)).await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, job) = caller.get(&format!("{JOBS}/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            assert_eq!(job["status"], "SUCCEEDED", "{job}");
            return job;
        }
        assert!(Instant::now() < deadline, "segment job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each segment's rows in an evaluation's files.
fn rows_by_segment(data_dir: &std::path::Path, evaluation: &Evaluation) -> BTreeMap<String, Vec<MembershipRow>> {
    evaluation
        .files
        .iter()
        .map(|f| (f.segment_id.clone(), membership_rows(data_dir, &f.path)))
        .collect()
}

/// Every construct of the supported subset (docs/segments.md), over the fields of
/// [`crm_properties`] and the events of [`ingest_population`].
const CASES: &[&str] = &[
    // Comparisons: integers, numbers, mixed, booleans, strings, two fields.
    "crm.score >= 10",
    "crm.score != 5",
    "10 < crm.score",
    "crm.score > 4.5 and crm.score < 10.5",
    "crm.score = 10",
    "crm.ratio > 0.5",
    "crm.ratio <= 1",
    "crm.ratio = 10",
    "crm.score < crm.ratio",
    "crm.vip = true",
    "crm.vip != true",
    "crm.tier = \"gold\"",
    "crm.tier > \"h\"",
    "crm.tier = crm.address.city",
    // Booleans.
    "crm.tier = \"silver\" or crm.score = 10",
    "not (crm.tier = \"silver\")",
    "not (crm.vip = true) and crm.score > 0",
    "!(crm.score > 5 or crm.tier.isNull())",
    "(crm.score > 0 and crm.vip = true) or (crm.ratio < 1 and not (crm.tier.isNull()))",
    // in / notIn.
    "crm.tier in [\"silver\", \"bronze\"]",
    "crm.tier notIn [\"silver\"]",
    "not (crm.tier in [\"silver\"])",
    "crm.score in [5, 10, 20]",
    "crm.ratio in [0.75, 1.5]",
    "crm.score notIn [5, 10]",
    // Nulls, on values, objects and arrays.
    "crm.score.isNull()",
    "crm.tier.isNotNull()",
    "crm.address.isNull()",
    "crm.address.zip.isNotNull()",
    "crm.address.city.isNull()",
    "crm.tags.isNotNull()",
    "crm.isNull()",
    // Strings.
    "crm.tier.startsWith(\"go\", false)",
    "crm.tier.startsWith(\"go\")",
    "crm.tier.endsWith(\"ver\")",
    "crm.tier.endsWith(\"VER\", false)",
    "crm.tier.contains(\"ron\")",
    "crm.tier.contains(\"%_\", false)",
    "crm.tier.equals(\"GOLD\", false)",
    "crm.tier.equals(\"gold\")",
    "crm.tier like \"%l_er\"",
    "crm.tier like \"50%\"",
    "crm.tier.matches(\"^(b|s)\")",
    "crm.address.city.matches(\"aris$\")",
    // Dates and date-times.
    "crm.joined occurs <= 7 days before now",
    "crm.joined occurs before date(2020, 1, 1)",
    "crm.joined occurs between date(2015, 1, 1) and date(\"2015-06-01\")",
    "crm.joined occurs after date(2020, 1, 1)",
    "crm.joined occurs this month",
    "crm.joined occurs last year",
    "crm.joined occurs today",
    "crm.joined occurs > 1 months before now",
    "crm.joined > date(\"2020-03-14T10:00:00Z\")",
    "crm.born occurs before date(1990, 1, 1)",
    "crm.born < date(\"2000-01-01\")",
    "crm.born = date(1980, 5, 17)",
    // Events: exists, counts, windows, nested fields, combined with profile conditions.
    "xEvent[eventType = \"commerce.purchases\"]",
    "xEvent[eventType = \"commerce.purchases\"].count() > 1",
    "xEvent[eventType = \"commerce.purchases\" and timestamp occurs <= 7 days before now].count() >= 1",
    "xEvent.count() = 0",
    "exists E from xEvent where E.environment.browserDetails.name = \"Firefox\"",
    "crm.score > 1 and (select X from xEvent where X.eventType = \"commerce.purchases\")",
    "xEvent[environment.browserDetails.name.startsWith(\"Chr\")].count() <= 1 and xEvent.count() >= 1",
    "not (xEvent[eventType = \"web.webpagedetails.pageViews\"])",
    "xEvent[timestamp occurs last week or eventType in [\"web.webpagedetails.pageViews\"]]",
];

/// Profiles c1..c7 (records with every kind of value and of missing value) and c8 (events only),
/// and events of c1, c2, c3 and c8; returns the CRM dataset.
async fn ingest_population(caller: &Caller) -> String {
    let crm = caller
        .create_dataset_with_groups("CRM", "profile", &["profile-segmentation"], crm_properties())
        .await;
    let web = event_dataset(caller).await;
    let now = jiff::Timestamp::now();
    let days_ago = |n: i64| (now - jiff::SignedDuration::from_hours(24 * n)).to_string();
    caller
        .ingest_json_lines(
            &crm,
            &[
                record(
                    "c1",
                    json!({"tier": "Gold", "score": 20, "ratio": 0.75, "vip": true, "born": "1980-05-17",
                       "joined": days_ago(2), "address": {"city": "Paris", "zip": "75001"}, "tags": ["a", "b"]}),
                ),
                record(
                    "c2",
                    json!({"tier": "silver", "score": 5, "ratio": 1.5, "vip": false, "born": "1999-12-31",
                       "joined": days_ago(40), "address": {"city": "paris"}, "tags": []}),
                ),
                record("c3", json!({"tier": "bronze"})),
                record(
                    "c4",
                    json!({"score": 10, "joined": "2015-06-01T00:00:00Z", "born": "2015-06-01"}),
                ),
                record(
                    "c5",
                    json!({"tier": "50%_off", "score": -3, "ratio": 0.0, "address": {"zip": "10001"}}),
                ),
                record(
                    "c6",
                    json!({"tier": "gold", "vip": true, "ratio": 10.0, "joined": days_ago(0)}),
                ),
                record(
                    "c7",
                    json!({"tags": ["x"], "address": {"city": "gold"}, "tier": "gold"}),
                ),
            ],
        )
        .await;
    let event = |id: &str, crm: &str, kind: &str, days: i64, browser: &str| {
        json!({"_id": id, "timestamp": days_ago(days), "eventType": kind,
               "identityMap": {"CRMID": [{"id": crm, "primary": true}]},
               "environment": {"browserDetails": {"name": browser}}})
    };
    caller
        .ingest_json_lines(
            &web,
            &[
                event("e1", "c1", "commerce.purchases", 1, "Firefox"),
                event("e2", "c1", "commerce.purchases", 3, "Chrome"),
                event("e3", "c1", "web.webpagedetails.pageViews", 1, "Chrome"),
                event("e4", "c2", "commerce.purchases", 20, "Safari"),
                event("e5", "c3", "web.webpagedetails.pageViews", 0, "Firefox"),
                event("e6", "c8", "commerce.purchases", 8, "Chrome"),
                event("e7", "c8", "commerce.purchases", 9, "Chromium"),
            ],
        )
        .await;
    crm
}

/// The state both engines evaluate: the population, the cases defined, a first job's entries,
/// then changed data; and the native evaluation of it at `at`.
struct Prepared {
    server: TestServer,
    ids: Vec<String>,
    pql: Vec<String>,
    segments: Vec<dossier_model::segment_job::SegmentJobSegment>,
    meta: dossier_storage::MetaStore,
    lake: dossier_storage::Lake,
    at: i64,
    native: Evaluation,
}

async fn prepared() -> Prepared {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = ingest_population(&caller).await;
    let mut ids = Vec::new();
    for (n, pql) in CASES.iter().enumerate() {
        ids.push(define(&caller, &format!("case {n}"), pql).await);
    }
    // inSegment, of a definition of the same job and of an earlier one.
    let gold = ids[11].clone();
    let engaged = define(&caller, "engaged", &format!("inSegment(\"{gold}\") or crm.score > 15")).await;
    let not_engaged = define(&caller, "not engaged", &format!("not (inSegment(\"{engaged}\"))")).await;
    let mut pql: Vec<String> = CASES.iter().map(|c| (*c).to_owned()).collect();
    pql.extend([
        format!("inSegment(\"{gold}\") or crm.score > 15"),
        "not (inSegment(engaged))".to_owned(),
    ]);
    ids.extend([engaged, not_engaged]);
    run_job(&caller, &ids).await;
    caller
        .ingest_json_lines(
            &crm,
            &[
                record("c2", json!({"tier": "gold", "score": 30})),
                record("c3", json!({"score": 7, "vip": true})),
            ],
        )
        .await;
    let (meta, lake) = open_storage(&server.data_dir()).await.unwrap();
    let segments = segments_of(&meta, &prod(), &ids).await.unwrap().unwrap();
    let at = now_millis();
    let native = evaluate_segments(&meta, &lake, &prod(), &segments, "native", at, &CancelFlag::default())
        .await
        .unwrap();
    Prepared {
        server,
        ids,
        pql,
        segments,
        meta,
        lake,
        at,
        native,
    }
}

impl Prepared {
    /// Evaluates on `ctx` as run `run_id`, building profiles with `settings`, and checks every
    /// segment's rows and the metrics against the native evaluation's.
    async fn check_on(
        &self,
        ctx: &dossier_cluster::datafusion::prelude::SessionContext,
        run_id: &str,
        settings: BuildSettings,
    ) {
        let cancel = CancelFlag::default();
        let started = Instant::now();
        let (meta, lake, segments) = (&self.meta, &self.lake, &self.segments);
        let build = (&settings, &ComponentTables::default());
        let cluster = evaluate_on_with(ctx, meta, lake, &prod(), segments, run_id, self.at, &cancel, build)
            .await
            .unwrap();
        eprintln!(
            "{run_id}: {} definitions decided by DataFusion plans in {:?}",
            self.ids.len(),
            started.elapsed()
        );
        let data_dir = self.server.data_dir();
        let (expected, got) = (
            rows_by_segment(&data_dir, &self.native),
            rows_by_segment(&data_dir, &cluster),
        );
        let mut differences = Vec::new();
        for (id, text) in self.ids.iter().zip(&self.pql) {
            if expected[id] != got[id] {
                differences.push(format!(
                    "{text}\n  native:  {:?}\n  cluster: {:?}",
                    expected[id], got[id]
                ));
            }
        }
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        let (native, cluster) = (&self.native.metrics, &cluster.metrics);
        assert_eq!(native.segmented_by_status, cluster.segmented_by_status);
        assert_eq!(native.segmented_by_namespace, cluster.segmented_by_namespace);
        // The cases are not vacuous: most select someone, and every status occurs.
        let selecting = expected
            .values()
            .filter(|rows| rows.iter().any(|(_, s, _)| s != "exited"))
            .count();
        let total = self.ids.len();
        assert!(selecting * 3 > total * 2, "{selecting} of {total} select someone");
        for status in ["realized", "existing", "exited"] {
            assert!(
                expected.values().flatten().any(|(_, s, _)| s == status),
                "no {status} entry"
            );
        }
        // The decisions' scratch inputs are gone.
        let scratch = data_dir.join("lake").join(ORG).join("prod").join("segment-decisions");
        let left: Vec<_> = walk(&scratch);
        assert!(left.is_empty(), "scratch files left: {left:?}");
    }
}

/// The files under `dir` (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every supported construct decides the same on the cluster engine (DataFusion plans on a
/// session of this process) as on the native one: each of the cases writes the same membership
/// rows, statuses included (a first job leaves entries, then the data changes, so that
/// realized, existing and exited all occur).
#[tokio::test]
async fn every_construct_decides_the_same_on_the_cluster_engine() {
    let prepared = prepared().await;
    let ctx = local_context(&prepared.lake).unwrap();
    prepared.check_on(&ctx, "local", BuildSettings::default()).await;
    // Partitions of two profiles, shards of three: decisions per partition, rows put back in
    // place.
    let spill = tempfile::tempdir().unwrap();
    let tiny = BuildSettings {
        shard_profiles: 3,
        bucket_identities: 2,
        partition_profiles: 2,
        spill_dir: Some(spill.path().to_path_buf()),
    };
    prepared.check_on(&ctx, "local-tiny", tiny).await;
}

/// The same on a Ballista cluster of real processes (one scheduler, two executors on loopback):
/// the decisions' inputs reach the executors through the lake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_construct_decides_the_same_on_a_ballista_cluster() {
    let prepared = prepared().await;
    let lake_url = format!("file://{}", prepared.server.data_dir().join("lake").display());
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        BallistaCluster::start(std::path::Path::new(env!("CARGO_BIN_EXE_dossier")), &lake_url, 2)
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| panic!("{error:#}"));
    eprintln!("cluster of 2 executors ready in {:?}", started.elapsed());
    let ctx = connect(&cluster.url(), &prepared.lake).await.unwrap();
    prepared.check_on(&ctx, "ballista", BuildSettings::default()).await;
    let jobs = cluster.jobs().unwrap();
    assert!(jobs.matches("\"job_id\"").count() >= prepared.ids.len() - 1, "{jobs}");
}

/// Jobs run through segment evaluation on the cluster engine, and the engine's export.
struct ClusterSegments {
    engine: EngineExporter,
}

impl Exporter for ClusterSegments {
    async fn export(
        &self,
        request: &ExportRequest,
        progress: &ExportProgress,
        cancel: &CancelFlag,
    ) -> Result<ExportOutcome, ExportError> {
        self.engine.export(request, progress, cancel).await
    }

    async fn evaluate(&self, job: &SegmentJob, cancel: &CancelFlag) -> Result<Evaluation, SegmentError> {
        let now = job.metrics.start.unwrap_or_else(now_millis);
        let (meta, lake) = (&self.engine.meta, &self.engine.lake);
        let build = (&self.engine.settings, &self.engine.tables);
        let ctx = local_context(lake).map_err(|error| SegmentError::Failed {
            code: "SEGMENT-EVALUATION-500",
            message: error.to_string(),
        })?;
        evaluate_on_with(
            &ctx,
            meta,
            lake,
            &job.tenant,
            &job.segments,
            &job.id,
            now,
            cancel,
            build,
        )
        .await
    }
}

/// A segment job whose evaluation runs on the cluster engine succeeds and makes current the
/// memberships a native evaluation of the same state writes (statuses from the job before it,
/// `inSegment`, events, `pdg`), its entries timed at the job's start.
#[tokio::test]
async fn a_segment_job_on_the_cluster_engine_writes_the_native_memberships() {
    let server = TestServer::start_with_exporter(|_| {}, |engine: EngineExporter| ClusterSegments { engine }).await;
    let caller = server.caller(ORG, "prod").await;
    let crm = ingest_population(&caller).await;
    let gold = define(&caller, "Gold", "crm.tier.equals(\"gold\", false)").await;
    let engaged = define(
        &caller,
        "Engaged",
        &format!("inSegment(\"{gold}\") and xEvent[eventType = \"commerce.purchases\"].count() > 1"),
    )
    .await;
    let active = define(&caller, "Active", "xEvent.count() > 0").await;
    let body = json!({"name": "Graph", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
                      "schema": {"name": "_xdm.context.profile"}});
    let (status, policy) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &body)
        .await;
    assert_eq!(status, 200, "{policy}");
    let body = json!({"name": "Scored (graph)", "mergePolicyId": policy["id"],
                      "expression": {"type": "PQL", "format": "pql/text", "value": "crm.score > 6 or xEvent.count() > 1"}});
    let (status, created) = caller.send_json(Method::POST, DEFINITIONS, &body).await;
    assert_eq!(status, 200, "{created}");
    let graph = created["id"].as_str().unwrap().to_owned();
    let ids = vec![engaged, gold, active, graph];
    run_job(&caller, &ids).await;
    caller
        .ingest_json_lines(
            &crm,
            &[
                record("c1", json!({"tier": "silver"})),
                record("c3", json!({"tier": "GOLD", "score": 9})),
            ],
        )
        .await;

    let (meta, lake) = open_storage(&server.data_dir()).await.unwrap();
    let tenant = prod();
    let segments = segments_of(&meta, &tenant, &ids).await.unwrap().unwrap();
    let at = now_millis();
    let native = evaluate_segments(&meta, &lake, &tenant, &segments, "native", at, &CancelFlag::default())
        .await
        .unwrap();
    let job = run_job(&caller, &ids).await;
    let job_time = job["metrics"]["totalTime"]["startTimeInMs"].as_i64().unwrap();
    let current: BTreeMap<String, Vec<MembershipRow>> = meta
        .membership_files(&tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.segment_id.clone(), membership_rows(&server.data_dir(), &f.path)))
        .collect();
    // Entries of this run carry its time; exited entries of the job before keep theirs.
    let retimed = |rows: &[MembershipRow], from: i64| -> Vec<MembershipRow> {
        let mut rows: Vec<MembershipRow> = rows
            .iter()
            .map(|(ids, status, time)| (ids.clone(), status.clone(), if *time == from { 0 } else { *time }))
            .collect();
        rows.sort();
        rows
    };
    let expected = rows_by_segment(&server.data_dir(), &native);
    for id in &ids {
        assert_eq!(
            retimed(&current[id], job_time),
            retimed(&expected[id], at),
            "segment {id}"
        );
    }
    let all: Vec<&MembershipRow> = expected.values().flatten().collect();
    for status in ["realized", "existing", "exited"] {
        assert!(all.iter().any(|(_, s, _)| s == status), "no {status} entry: {all:?}");
    }
}
