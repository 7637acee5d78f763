//! Segment evaluation through the real server: segment jobs (`/data/core/ups/segment/jobs`),
//! the statuses they write (semantics.md "Segment membership"), the PQL constructs evaluated
//! against hand-computed profiles, exports filtered by evaluated segments, and a kill mid-job.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::*;
use arrow::array::AsArray;
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::Lake;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::Method;
use serde_json::{Value, json};

const JOBS: &str = "/data/core/ups/segment/jobs";
const DEFINITIONS: &str = "/data/core/ups/segment/definitions";
const ENTITIES: &str = "/data/core/ups/access/entities?schema.name=_xdm.context.profile";

fn crm_properties() -> Value {
    json!({"crm": {"type": "object", "properties": {
        "tier": {"type": "string"},
        "score": {"type": "integer"},
        "joined": {"type": "string", "format": "date-time"}
    }}})
}

async fn crm_dataset(caller: &Caller) -> String {
    caller
        .create_dataset_with_groups("CRM", "profile", &["profile-segmentation"], crm_properties())
        .await
}

fn record(crm_id: &str, crm: Value) -> Value {
    json!({"_id": format!("{crm_id}-{crm}"), "identityMap": {"CRMID": [{"id": crm_id, "primary": true}]}, "crm": crm})
}

/// POSTs `body` to `path`, which must answer 200, and returns the created object's id.
async fn created_id(caller: &Caller, path: &str, body: &Value) -> String {
    let (status, created) = caller.send_json(Method::POST, path, body).await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn define(caller: &Caller, name: &str, pql: &str) -> String {
    let body = json!({"name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}});
    created_id(caller, DEFINITIONS, &body).await
}

/// Defines "Gold" (tier gold) and "Engaged gold" (in Gold, score above 5, through `inSegment`);
/// returns their ids.
async fn gold_and_engaged(caller: &Caller) -> (String, String) {
    let gold = define(caller, "Gold", "crm.tier = \"gold\"").await;
    let engaged = define(
        caller,
        "Engaged gold",
        &format!("inSegment(\"{gold}\") and crm.score > 5"),
    )
    .await;
    (gold, engaged)
}

/// Creates a `pdg` merge policy and returns its id.
async fn pdg_policy(caller: &Caller) -> String {
    let body = json!({"name": "Graph", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
                      "schema": {"name": "_xdm.context.profile"}});
    created_id(caller, "/data/core/ups/config/mergePolicies", &body).await
}

async fn web_dataset(caller: &Caller) -> String {
    caller
        .create_dataset_with_groups("Web", "experienceevent", &[], json!({}))
        .await
}

fn prod() -> Tenant {
    Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    }
}

async fn wait_for_job(caller: &Caller, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = caller.get(&format!("{JOBS}/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "segment job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs a job over `segments` to its end; it must succeed.
async fn evaluate(caller: &Caller, segments: &[&str]) -> Value {
    let body: Vec<Value> = segments.iter().map(|s| json!({"segmentId": s})).collect();
    let (status, job) = caller.send_json(Method::POST, JOBS, &json!(body)).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "NEW");
    let done = wait_for_job(caller, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    done
}

/// The `ups` entry of a profile for a segment, `Null` when it has none.
async fn membership(caller: &Caller, crm_id: &str, segment: &str) -> Value {
    let (status, body) = caller
        .get(&format!("{ENTITIES}&entityIdNS=CRMID&entityId={crm_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, profile) = body.as_object().unwrap().iter().next().unwrap();
    profile["entity"]["segmentMembership"]["ups"][segment].clone()
}

fn time_of(entry: &Value) -> i64 {
    entry["lastQualificationTime"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond()
}

fn evaluation_time(job: &Value) -> i64 {
    job["metrics"]["totalTime"]["startTimeInMs"].as_i64().unwrap()
}

/// The `ups` entry of `crm_id` for `segment`, which must have `status` and the time of the
/// evaluation `job`.
async fn membership_from(caller: &Caller, crm_id: &str, segment: &str, status: &str, job: &Value) -> Value {
    let entry = membership(caller, crm_id, segment).await;
    assert_eq!(
        (entry["status"].as_str(), time_of(&entry)),
        (Some(status), evaluation_time(job)),
        "{entry}"
    );
    entry
}

#[tokio::test]
async fn statuses_go_realized_existing_exited_and_an_exit_keeps_its_time_until_reentry() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = crm_dataset(&caller).await;
    let segment = define(&caller, "High score", "crm.score >= 10").await;

    caller
        .ingest_json_lines(
            &crm,
            &[record("c1", json!({"score": 20})), record("c2", json!({"score": 5}))],
        )
        .await;
    let first = evaluate(&caller, &[&segment]).await;
    membership_from(&caller, "c1", &segment, "realized", &first).await;
    assert_eq!(membership(&caller, "c2", &segment).await, Value::Null);
    assert_eq!(
        first["metrics"]["segmentedProfileByStatusCounter"][&segment],
        json!({"realized": 1, "existing": 0, "exited": 0})
    );
    assert_eq!(first["metrics"]["segmentedProfileCounter"][&segment], 1);
    assert_eq!(
        first["metrics"]["segmentedProfileByNamespaceCounter"][&segment],
        json!({"CRMID": 1})
    );
    assert_eq!(first["metrics"]["totalProfiles"], 2);

    caller
        .ingest_json_lines(&crm, &[record("c2", json!({"score": 15}))])
        .await;
    let second = evaluate(&caller, &[&segment]).await;
    membership_from(&caller, "c1", &segment, "existing", &second).await;
    assert_eq!(membership(&caller, "c2", &segment).await["status"], "realized");

    caller
        .ingest_json_lines(&crm, &[record("c1", json!({"score": 1}))])
        .await;
    let third = evaluate(&caller, &[&segment]).await;
    let exited = membership_from(&caller, "c1", &segment, "exited", &third).await;
    assert_eq!(membership(&caller, "c2", &segment).await["status"], "existing");
    assert_eq!(
        third["metrics"]["segmentedProfileByStatusCounter"][&segment],
        json!({"realized": 0, "existing": 1, "exited": 1})
    );

    // Still out: the exited entry stays as it was, time included.
    evaluate(&caller, &[&segment]).await;
    assert_eq!(membership(&caller, "c1", &segment).await, exited);

    caller
        .ingest_json_lines(&crm, &[record("c1", json!({"score": 99}))])
        .await;
    let fifth = evaluate(&caller, &[&segment]).await;
    membership_from(&caller, "c1", &segment, "realized", &fifth).await;
}

#[tokio::test]
async fn every_supported_construct_selects_the_hand_computed_profiles() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = crm_dataset(&caller).await;
    let web = event_dataset(&caller).await;
    let now = jiff::Timestamp::now();
    let days_ago = |n: i64| (now - jiff::SignedDuration::from_hours(24 * n)).to_string();
    caller
        .ingest_json_lines(
            &crm,
            &[
                record("c1", json!({"tier": "Gold", "score": 20, "joined": days_ago(2)})),
                record("c2", json!({"tier": "silver", "score": 5, "joined": days_ago(40)})),
                record("c3", json!({"tier": "bronze"})),
                record("c4", json!({"score": 10, "joined": "2015-06-01T00:00:00Z"})),
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
            ],
        )
        .await;
    let cases: Vec<(&str, &[&str])> = vec![
        ("crm.score >= 10", &["c1", "c4"]),
        ("crm.score != 5", &["c1", "c4"]),
        ("10 < crm.score", &["c1"]),
        ("crm.score > 4.5 and crm.score < 10.5", &["c2", "c4"]),
        ("crm.tier = \"silver\" or crm.score = 10", &["c2", "c4"]),
        ("not (crm.tier = \"silver\")", &["c1", "c3", "c4"]),
        ("crm.tier in [\"silver\", \"bronze\"]", &["c2", "c3"]),
        ("crm.tier notIn [\"silver\"]", &["c1", "c3"]),
        ("not (crm.tier in [\"silver\"])", &["c1", "c3", "c4"]),
        ("crm.score.isNull()", &["c3"]),
        ("crm.tier.isNotNull()", &["c1", "c2", "c3"]),
        ("crm.tier.startsWith(\"go\", false)", &["c1"]),
        ("crm.tier.startsWith(\"go\")", &[]),
        ("crm.tier.endsWith(\"ver\")", &["c2"]),
        ("crm.tier.contains(\"ron\")", &["c3"]),
        ("crm.tier.equals(\"GOLD\", false)", &["c1"]),
        ("crm.tier like \"%l_er\"", &["c2"]),
        ("crm.tier.matches(\"^(b|s)\")", &["c2", "c3"]),
        ("crm.joined occurs <= 7 days before now", &["c1"]),
        ("crm.joined occurs before date(2020, 1, 1)", &["c4"]),
        (
            "crm.joined occurs between date(2015, 1, 1) and date(\"2015-06-01\")",
            &["c4"],
        ),
        ("crm.joined occurs after date(2020, 1, 1)", &["c1", "c2"]),
        ("xEvent[eventType = \"commerce.purchases\"]", &["c1", "c2"]),
        ("xEvent[eventType = \"commerce.purchases\"].count() > 1", &["c1"]),
        (
            "xEvent[eventType = \"commerce.purchases\" and timestamp occurs <= 7 days before now].count() >= 1",
            &["c1"],
        ),
        ("xEvent.count() = 0", &["c4"]),
        (
            "exists E from xEvent where E.environment.browserDetails.name = \"Firefox\"",
            &["c1", "c3"],
        ),
        (
            "crm.score > 1 and (select X from xEvent where X.eventType = \"commerce.purchases\")",
            &["c1", "c2"],
        ),
    ];
    let mut ids = Vec::new();
    for (n, (pql, _)) in cases.iter().enumerate() {
        ids.push(define(&caller, &format!("case {n}"), pql).await);
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    evaluate(&caller, &id_refs).await;
    for ((pql, expected), id) in cases.iter().zip(&ids) {
        let mut members = BTreeSet::new();
        for crm_id in ["c1", "c2", "c3", "c4"] {
            if membership(&caller, crm_id, id).await["status"] == "realized" {
                members.insert(crm_id);
            }
        }
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(members, expected, "{pql}");
    }
}

#[tokio::test]
async fn in_segment_reads_a_definition_evaluated_first_in_the_same_job() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = crm_dataset(&caller).await;
    caller
        .ingest_json_lines(
            &crm,
            &[
                record("c1", json!({"tier": "gold", "score": 10})),
                record("c2", json!({"tier": "gold", "score": 1})),
                record("c3", json!({"tier": "silver", "score": 10})),
            ],
        )
        .await;
    let (gold, engaged) = gold_and_engaged(&caller).await;
    // The dependent is named first; the job evaluates its dependency before it.
    let job = evaluate(&caller, &[&engaged, &gold]).await;
    assert_eq!(
        job["metrics"]["segmentedProfileCounter"],
        json!({gold.clone(): 2, engaged.clone(): 1})
    );
    assert_eq!(membership(&caller, "c1", &engaged).await["status"], "realized");
    assert_eq!(membership(&caller, "c2", &engaged).await, Value::Null);
    assert_eq!(membership(&caller, "c3", &engaged).await, Value::Null);

    // Alone, the dependent reads the stored memberships of its dependency.
    caller
        .ingest_json_lines(&crm, &[record("c2", json!({"score": 7}))])
        .await;
    evaluate(&caller, &[&engaged]).await;
    assert_eq!(membership(&caller, "c2", &engaged).await["status"], "realized");
    assert_eq!(membership(&caller, "c1", &engaged).await["status"], "existing");
}

#[tokio::test]
async fn the_jobs_api_validates_lists_gets_and_cancels() {
    let server = TestServer::start_with(|config| config.options.export_workers = 0).await;
    let caller = server.caller(ORG, "prod").await;
    crm_dataset(&caller).await;
    let segment = define(&caller, "Any score", "crm.score > 0").await;
    server.create_sandbox(ORG, "dev");
    let other = server.caller(ORG, "dev").await;

    for (body, named) in [
        (json!([]), "body"),
        (json!({"nothing": 1}), "segmentId"),
        (json!([{"segmentId": 3}]), "[0].segmentId"),
        (json!([{"segmentId": "not-a-definition"}]), "not-a-definition"),
    ] {
        let (status, answer) = caller.send_json(Method::POST, JOBS, &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer.to_string().contains(named), "{answer} should name {named}");
    }
    // A definition of another sandbox is not one of this sandbox.
    let (status, answer) = other
        .send_json(Method::POST, JOBS, &json!([{"segmentId": segment}]))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains(&segment));

    let (status, job) = caller
        .send_json(Method::POST, JOBS, &json!([{"segmentId": segment}]))
        .await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["status"], "NEW");
    assert_eq!(job["profileInstanceId"], "ups");
    assert_eq!(job["imsOrgId"], ORG);
    assert_eq!(job["sandbox"]["sandboxName"], "prod");
    assert_eq!(job["segments"][0]["segmentId"], segment);
    assert_eq!(job["segments"][0]["segment"]["expression"]["value"], "crm.score > 0");
    assert_eq!(job["segments"][0]["segment"]["mergePolicy"]["version"], 1);
    assert!(job["creationTime"].is_i64() && job["updateTime"].is_i64());

    let (status, listed) = caller.get(JOBS).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["_page"]["totalCount"], 1);
    assert_eq!(listed["children"][0], job);
    let (_, got) = caller.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(got, job);
    assert_eq!(other.get(&format!("{JOBS}/{id}")).await.0, 404);
    assert_eq!(caller.get(&format!("{JOBS}/unknown")).await.0, 404);
    assert_eq!(caller.get(&format!("{JOBS}?limit=0")).await.0, 400);

    assert_eq!(other.delete(&format!("{JOBS}/{id}")).await.0, 404);
    let (status, answer) = caller.delete(&format!("{JOBS}/{id}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], true);
    let (_, cancelled) = caller.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    // Cancelling an ended job changes nothing.
    assert_eq!(caller.delete(&format!("{JOBS}/{id}")).await.0, 200);
    let (_, still) = caller.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(still, cancelled);
    let (_, listed) = caller.get(&format!("{JOBS}?status=NEW")).await;
    assert_eq!(listed["_page"]["totalCount"], 0);
}

fn exported_ids(server: &TestServer, dataset: &str, batch: &str) -> BTreeSet<String> {
    let tenant = prod();
    let prefix = Lake::batch_prefix(&tenant, &DatasetId::from_string(dataset), &BatchId::from_string(batch));
    let folder = server.data_dir().join("lake").join(prefix.as_ref());
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
            let batch = batch.unwrap();
            let maps = batch.column_by_name("identityMap").unwrap().as_map();
            for row in 0..batch.num_rows() {
                let entries = maps.value(row);
                let lists = entries.column(1).as_list::<i32>();
                let first = lists.value(0);
                let id = first
                    .as_struct()
                    .column_by_name("id")
                    .unwrap()
                    .as_string::<i32>()
                    .value(0)
                    .to_owned();
                ids.insert(id);
            }
        }
    }
    ids
}

async fn export(caller: &Caller, body: Value) -> Value {
    let (status, job) = caller
        .send_json(Method::POST, "/data/core/ups/export/jobs", &body)
        .await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, job) = caller.get(&format!("/data/core/ups/export/jobs/{id}")).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            assert_eq!(job["status"], "SUCCEEDED", "{job}");
            return job;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn exports_filter_by_evaluated_segments_fresh_or_from_a_prior_job() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = crm_dataset(&caller).await;
    let target = caller.create_dataset("Export target").await;
    caller
        .ingest_json_lines(
            &crm,
            &[
                record("c1", json!({"score": 20})),
                record("c2", json!({"score": 5})),
                record("c3", json!({"score": 30})),
            ],
        )
        .await;
    let high = define(&caller, "High", "crm.score >= 10").await;
    let low = define(&caller, "Low", "crm.score < 10").await;
    evaluate(&caller, &[&high]).await;

    let body = |segment: &str, fresh: bool| {
        json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"},
               "filter": {"segments": [{"segmentId": segment, "segmentNs": "UPS"}]},
               "evaluationInfo": {"segmentation": fresh}})
    };
    let job = export(&caller, body(&high, false)).await;
    let batch = job["destination"]["batchId"].as_str().unwrap();
    assert_eq!(
        exported_ids(&server, &target, batch),
        BTreeSet::from(["c1".into(), "c3".into()])
    );

    // `Low` was never evaluated: without segmentation the export finds no member...
    let job = export(&caller, body(&low, false)).await;
    assert_eq!(job["metrics"]["totalExportedProfileCounter"], 0, "{job}");
    // ... with it, the job evaluates `Low` first, and the membership stays for later readers.
    let job = export(&caller, body(&low, true)).await;
    let batch = job["destination"]["batchId"].as_str().unwrap();
    assert_eq!(exported_ids(&server, &target, batch), BTreeSet::from(["c2".into()]));
    assert_eq!(membership(&caller, "c2", &low).await["status"], "realized");

    // A ups segment that is no definition cannot be evaluated.
    let (status, answer) = caller
        .send_json(
            Method::POST,
            "/data/core/ups/export/jobs",
            &body("no-such-segment", true),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("no-such-segment"), "{answer}");
}

#[tokio::test]
async fn a_segment_job_killed_mid_run_is_run_again_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = create_client_in(dir.path(), ORG);
    let server = ServerProcess::spawn(dir.path());
    let caller = server.caller(&credentials).await;
    let crm = crm_dataset(&caller).await;
    let records: Vec<Value> = (0..20_000)
        .map(|n| record(&format!("c{n}"), json!({"score": n % 20})))
        .collect();
    caller.ingest_json_lines(&crm, &records).await;
    let segment = define(&caller, "High", "crm.score >= 10").await;
    let first = evaluate(&caller, &[&segment]).await;
    let before = membership(&caller, "c10", &segment).await;
    assert_eq!(time_of(&before), evaluation_time(&first));

    let (status, job) = caller
        .send_json(Method::POST, JOBS, &json!([{"segmentId": segment}]))
        .await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = caller.get(&format!("{JOBS}/{id}")).await;
        if job["status"] == "PROCESSING" {
            break;
        }
        assert_eq!(job["status"], "NEW", "the job ended before the kill: {job}");
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();

    // The same data dir is the same node: its start takes the job over at once (no lease to
    // wait for), removes what the killed run wrote and runs it again.
    let server = ServerProcess::spawn(dir.path());
    let caller = server.caller(&credentials).await;
    let done = wait_for_job(&caller, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let after = membership(&caller, "c10", &segment).await;
    assert_eq!(after["status"], "existing", "still in the segment: {after}");
    assert_eq!(time_of(&after), evaluation_time(&done));
    assert!(time_of(&after) > time_of(&before));
    server.kill();
}

/// The `ups` entry for `segment` of every exported profile, by the profile's primary identity.
async fn exported_ups_entries(
    caller: &Caller,
    policy: &str,
    segment: &str,
) -> std::collections::BTreeMap<String, Value> {
    let target = caller.create_dataset(&format!("Export under {policy}")).await;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"},
                      "mergePolicy": {"id": policy, "version": 1}});
    let job = caller.run_export_job(&body).await;
    let batch = job["destination"]["batchId"].as_str().unwrap();
    let folder = tempfile::tempdir().unwrap();
    caller.download_batch(batch, folder.path()).await;
    let mut entries = std::collections::BTreeMap::new();
    for row in exported_rows(folder.path(), &["identityMap", "segmentMembership"]) {
        let primary = row["identityMap"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(namespace, items)| items.as_array().unwrap().iter().map(move |i| (namespace, i)))
            .find(|(_, item)| item["primary"] == true)
            .map(|(namespace, item)| format!("{namespace}:{}", item["id"].as_str().unwrap()))
            .unwrap();
        entries.insert(primary, row["segmentMembership"]["ups"][segment]["status"].clone());
    }
    entries
}

/// The status of the `ups` entry for `segment` of the profile `namespace:id` under `policy`.
async fn looked_up_status(caller: &Caller, namespace: &str, id: &str, policy: &str, segment: &str) -> Value {
    let entity = caller.looked_up_entity(namespace, id, policy).await;
    entity["segmentMembership"]["ups"][segment]["status"].clone()
}

#[tokio::test]
async fn an_evaluated_membership_reaches_only_its_own_profile_under_none_and_the_graph_under_pdg() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = crm_dataset(&caller).await;
    let loyalty = caller
        .create_dataset_with_groups("Loyalty", "profile", &["profile-segmentation"], json!({}))
        .await;
    let web = web_dataset(&caller).await;
    let rows = [
        (
            &crm,
            json!({"_id": "r1", "identityMap": {
                "CRMID": [{"id": "c1", "primary": true}], "Email": [{"id": "e1@example.com"}]}}),
        ),
        (
            &loyalty,
            json!({"_id": "r2", "identityMap": {
                "Email": [{"id": "e1@example.com", "primary": true}], "LoyaltyId": [{"id": "l1"}]}}),
        ),
        (
            &web,
            json!({"_id": "v1", "timestamp": jiff::Timestamp::now().to_string(),
                   "identityMap": {"CRMID": [{"id": "c1", "primary": true}]}}),
        ),
    ];
    for (dataset, row) in rows {
        caller.ingest_json_lines(dataset, &[row]).await;
    }
    let active = define(&caller, "Active", "xEvent.count() > 0").await;
    let job = evaluate(&caller, &[&active]).await;
    assert_eq!(job["metrics"]["segmentedProfileCounter"][&active], 1, "{job}");

    // `none`: two profiles, and only the CRM one qualified.
    const NONE: &str = "timestampOrdered-none-mp";
    assert_eq!(
        exported_ups_entries(&caller, NONE, &active).await,
        std::collections::BTreeMap::from([
            ("CRMID:c1".to_owned(), json!("realized")),
            ("Email:e1@example.com".to_owned(), Value::Null),
        ])
    );
    assert_eq!(
        looked_up_status(&caller, "CRMID", "c1", NONE, &active).await,
        "realized"
    );
    assert_eq!(
        looked_up_status(&caller, "Email", "e1@example.com", NONE, &active).await,
        Value::Null
    );

    // `pdg`: one profile, which has the entry whichever identity finds it.
    let pdg = &pdg_policy(&caller).await;
    let exported = exported_ups_entries(&caller, pdg, &active).await;
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported.values().next().unwrap(), "realized");
    for (namespace, id) in [("CRMID", "c1"), ("LoyaltyId", "l1")] {
        assert_eq!(looked_up_status(&caller, namespace, id, pdg, &active).await, "realized");
    }
}

/// A row of a membership file: identities (`namespace:id`), status and time.
pub(super) type MembershipRow = (Vec<String>, String, i64);

/// The rows of a membership file the evaluation wrote, sorted.
pub(super) fn membership_rows(data_dir: &std::path::Path, path: &str) -> Vec<MembershipRow> {
    let file = std::fs::File::open(data_dir.join("lake").join(path)).unwrap();
    let mut rows = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
        let batch = batch.unwrap();
        let lists = batch.column(0).as_list::<i32>();
        let statuses = batch.column(1).as_string::<i32>();
        let times = batch
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        for r in 0..batch.num_rows() {
            let identities = lists.value(r);
            let identities = identities.as_struct();
            let (namespaces, ids) = (
                identities.column(0).as_string::<i32>(),
                identities.column(1).as_string::<i32>(),
            );
            let identities = (0..arrow::array::Array::len(identities))
                .map(|i| format!("{}:{}", namespaces.value(i), ids.value(i)))
                .collect();
            rows.push((identities, statuses.value(r).to_owned(), times.value(r)));
        }
    }
    rows.sort();
    rows
}

/// Segment evaluation builds profiles as exports do, shard by shard: with one profile per shard
/// and one identity per bucket (keying spilled to disk), or a few of each, it writes the same
/// memberships and counts as with the whole population in one shard, under `none` and `pdg`,
/// with events, `inSegment`, previous entries and a profile made of events only.
#[tokio::test]
async fn evaluation_in_tiny_shards_writes_the_memberships_of_one_shard() {
    use dossier_engine::export::CancelFlag;
    use dossier_engine::jobs::segments_of;
    use dossier_engine::profiles::build::{BuildSettings, ComponentTables};
    use dossier_engine::segments::{Evaluation, evaluate_segments_with};

    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = crm_dataset(&caller).await;
    let web = web_dataset(&caller).await;
    let crm_with_email = |crm_id: &str, email: &str, crm: Value| {
        json!({"_id": format!("{crm_id}-{crm}"), "identityMap": {
            "CRMID": [{"id": crm_id, "primary": true}], "Email": [{"id": email}]}, "crm": crm})
    };
    caller
        .ingest_json_lines(
            &crm,
            &[
                crm_with_email("c1", "e1@example.com", json!({"tier": "gold", "score": 10})),
                record("c2", json!({"tier": "gold", "score": 1})),
                record("c3", json!({"tier": "silver", "score": 10})),
                crm_with_email("c4", "e1@example.com", json!({"tier": "silver", "score": 3})),
                record("c5", json!({"tier": "gold", "score": 8})),
            ],
        )
        .await;
    let now = jiff::Timestamp::now().to_string();
    let event = |id: &str, crm_id: &str| json!({"_id": id, "timestamp": now, "identityMap": {"CRMID": [{"id": crm_id, "primary": true}]}});
    caller
        .ingest_json_lines(
            &web,
            &[
                event("v1", "c1"),
                event("v2", "c3"),
                event("v3", "c9"),
                event("v4", "c9"),
            ],
        )
        .await;
    let pdg = pdg_policy(&caller).await;
    let (gold, engaged) = gold_and_engaged(&caller).await;
    let active = define(&caller, "Active", "xEvent.count() > 0").await;
    let body = json!({"name": "Active (graph)", "mergePolicyId": pdg,
                      "expression": {"type": "PQL", "format": "pql/text", "value": "xEvent.count() > 0 or crm.score > 5"}});
    let graph_active = created_id(&caller, DEFINITIONS, &body).await;
    // A first job leaves entries behind: the next evaluation sees existing and exited ones.
    evaluate(&caller, &[&gold, &active, &graph_active]).await;
    caller
        .ingest_json_lines(&crm, &[record("c2", json!({"tier": "silver"}))])
        .await;

    let (meta, lake) = open_storage(&server.data_dir()).await.unwrap();
    let tenant = prod();
    let ids = [engaged.clone(), gold.clone(), active.clone(), graph_active.clone()];
    let segments = segments_of(&meta, &tenant, &ids).await.unwrap().unwrap();
    let at = dossier_model::time::now_millis();
    // Tables kept from one evaluation to the next, as an exporter keeps them: a later
    // evaluation of the same graph version resolves stored memberships through them.
    let tables = ComponentTables::default();
    let run = |run_id: String, settings: BuildSettings| {
        let (meta, lake, tenant, segments, tables) = (&meta, &lake, &tenant, &segments, &tables);
        async move {
            let builder = (&settings, tables);
            evaluate_segments_with(
                meta,
                lake,
                tenant,
                segments,
                &run_id,
                at,
                &CancelFlag::default(),
                builder,
            )
            .await
            .unwrap()
        }
    };
    let rows = |evaluation: &Evaluation| -> Vec<(String, Vec<MembershipRow>)> {
        let mut files: Vec<_> = evaluation
            .files
            .iter()
            .map(|f| (f.segment_id.clone(), membership_rows(&server.data_dir(), &f.path)))
            .collect();
        files.sort();
        files
    };
    let whole = run("whole".into(), BuildSettings::default()).await;
    let expected = rows(&whole);
    let again = run("again".into(), BuildSettings::default()).await;
    assert_eq!(rows(&again), expected, "through the kept graph table");
    let of = |segment: &str| &expected.iter().find(|(s, _)| s == segment).unwrap().1;
    let statuses = |segment: &str| -> Vec<(String, String)> {
        of(segment)
            .iter()
            .map(|(ids, status, _)| (ids[0].clone(), status.clone()))
            .collect()
    };
    assert_eq!(
        statuses(&gold),
        [
            ("CRMID:c1", "existing"),
            ("CRMID:c2", "exited"),
            ("CRMID:c5", "existing")
        ]
        .map(|(i, s)| (i.to_owned(), s.to_owned()))
    );
    assert_eq!(
        statuses(&engaged),
        [("CRMID:c1", "realized"), ("CRMID:c5", "realized")].map(|(i, s)| (i.to_owned(), s.to_owned()))
    );
    // Under `pdg` c1 and c4 are one profile (one email); c9 is made of events only and keeps its
    // events' identity.
    let graph_rows = of(&graph_active);
    assert_eq!(graph_rows.len(), 4, "{graph_rows:?}");
    assert!(
        graph_rows
            .iter()
            .any(|(ids, status, _)| ids == &["CRMID:c9"] && status == "existing")
    );
    assert!(
        graph_rows
            .iter()
            .any(|(ids, _, _)| ids.len() == 3 && ids.contains(&"CRMID:c4".to_owned()))
    );

    for (shard_profiles, bucket_identities, partition_profiles) in [(1, 1, 1), (2, 3, 2)] {
        let spill = tempfile::tempdir().unwrap();
        let settings = BuildSettings {
            shard_profiles,
            bucket_identities,
            partition_profiles,
            spill_dir: Some(spill.path().to_path_buf()),
        };
        let tiny = run(format!("tiny-{shard_profiles}"), settings).await;
        assert_eq!(rows(&tiny), expected, "({shard_profiles}, {bucket_identities})");
        let (a, b) = (&tiny.metrics, &whole.metrics);
        assert_eq!(a.segmented_by_status, b.segmented_by_status);
        assert_eq!(a.segmented_by_namespace, b.segmented_by_namespace);
        assert_eq!(a.total_profiles_by_merge_policy, b.total_profiles_by_merge_policy);
        assert_eq!(kept_graph_versions(spill.path()), 1);
    }
}
