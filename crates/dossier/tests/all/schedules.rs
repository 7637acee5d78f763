//! Schedules through the real server (`/data/core/ups/config/schedules`): CRUD in AEP's shapes
//! and every refusal; a schedule firing every second starts one job per tick, also with two
//! servers on one PostgreSQL database; a restart after missed ticks starts one job for them;
//! an export schedule with `lastRun` exports only what changed since its last successful run.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use dossier_api::{ServerConfig, Storage};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::now_millis;
use dossier_storage::meta::ScheduleRun;
use dossier_storage::{Lake, MetaStore};

use crate::support::*;

const SCHEDULES: &str = "/data/core/ups/config/schedules";
const SEGMENT_JOBS: &str = "/data/core/ups/segment/jobs";
const EXPORT_JOBS: &str = "/data/core/ups/export/jobs";

fn prod() -> Tenant {
    Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    }
}

fn segmentation(segments: Value, cron: &str, state: &str) -> Value {
    json!({"name": "Nightly segmentation", "type": "batch_segmentation",
           "properties": {"segments": segments}, "schedule": cron, "state": state})
}

/// A profile dataset with a `crm.tier` field and one segment definition on it; returns the
/// definition's id.
async fn one_definition(caller: &Caller) -> String {
    let properties = json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}});
    caller
        .create_dataset_with_groups("CRM", "profile", &["profile-segmentation"], properties)
        .await;
    let body =
        json!({"name": "Gold", "expression": {"type": "PQL", "format": "pql/text", "value": "crm.tier = \"gold\""}});
    id_of(&caller.create_at("/data/core/ups/segment/definitions", &body).await)
}

async fn set_state(caller: &Caller, id: &str, state: &str) {
    let patch = json!([{"op": "add", "path": "/state", "value": state}]);
    let (status, body) = caller
        .send_json(Method::PATCH, &format!("{SCHEDULES}/{id}"), &patch)
        .await;
    assert_eq!(status, 204, "{body}");
}

/// The ids of the sandbox's jobs of one kind (segment or export).
async fn job_ids(caller: &Caller, path: &str) -> BTreeSet<String> {
    let (status, body) = caller.get(&format!("{path}?limit=1000")).await;
    assert_eq!(status, 200, "{body}");
    let jobs = body["children"].as_array().unwrap();
    jobs.iter()
        .map(|job| job["id"].to_string().trim_matches('"').to_owned())
        .collect()
}

/// Waits until the schedule has recorded at least `count` runs; returns them, newest first.
async fn runs_at_least(meta: &MetaStore, id: &str, count: usize) -> Vec<ScheduleRun> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = meta.schedule_runs(&prod(), id, 1000).await.unwrap();
        if runs.len() >= count {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "schedule {id} ran {} times, not {count}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One job per tick: ticks are distinct whole seconds, and the jobs they name are exactly the
/// jobs the sandbox has.
fn assert_one_job_per_tick(runs: &[ScheduleRun], jobs: &BTreeSet<String>) {
    let ticks: BTreeSet<i64> = runs.iter().map(|r| r.tick).collect();
    assert_eq!(ticks.len(), runs.len(), "a tick started two jobs: {runs:?}");
    assert!(
        ticks.iter().all(|t| t % 1000 == 0),
        "ticks are whole seconds: {ticks:?}"
    );
    let started: BTreeSet<String> = runs.iter().map(|r| r.job_id.clone()).collect();
    assert_eq!(&started, jobs, "every job was started by one tick, and only those");
}

#[tokio::test]
async fn schedules_are_created_read_listed_patched_and_deleted_in_aeps_shapes() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let created = caller
        .create_at(SCHEDULES, &segmentation(json!(["*"]), "0 0 1 * * ?", "inactive"))
        .await;
    let id = id_of(&created);
    assert_eq!(created["imsOrgId"], ORG);
    assert_eq!(created["sandbox"]["sandboxName"], "prod");
    assert_eq!(created["type"], "batch_segmentation");
    assert_eq!(created["properties"], json!({"segments": ["*"]}));
    assert_eq!(
        (&created["schedule"], &created["state"]),
        (&json!("0 0 1 * * ?"), &json!("inactive"))
    );
    assert!(created["createEpoch"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(created["createEpoch"], created["updateEpoch"]);
    assert_eq!(
        created["nextRunEpoch"],
        Value::Null,
        "an inactive schedule waits for no tick"
    );
    let (status, read) = caller.get(&format!("{SCHEDULES}/{id}")).await;
    assert_eq!((status, &read), (200, &created));

    let second = id_of(
        &caller
            .create_at(
                SCHEDULES,
                &segmentation(json!(["a", "b"]), "0 15 10 ? * MON-FRI", "inactive"),
            )
            .await,
    );
    let (_, page) = caller.get(&format!("{SCHEDULES}?limit=1")).await;
    assert_eq!(page["_page"], json!({"totalCount": 2, "pageSize": 1}));
    assert_eq!(page["children"][0]["id"], json!(id), "oldest first");
    assert_eq!(page["_links"]["next"]["href"], "@/config/schedules?start=1&limit=1");
    let (_, rest) = caller.get(&format!("{SCHEDULES}?start=1")).await;
    assert_eq!(rest["children"][0]["id"], json!(second));
    assert_eq!(rest["_links"]["next"]["href"], "");

    let patch = json!([{"op": "add", "path": "/state", "value": "active"},
                       {"op": "replace", "path": "/schedule", "value": "0 30 2 * * ?"}]);
    let (status, body) = caller
        .send_json(Method::PATCH, &format!("{SCHEDULES}/{id}"), &patch)
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, patched) = caller.get(&format!("{SCHEDULES}/{id}")).await;
    assert_eq!(
        (&patched["state"], &patched["schedule"]),
        (&json!("active"), &json!("0 30 2 * * ?"))
    );
    let next = patched["nextRunEpoch"].as_i64().unwrap();
    assert_eq!(next % 86_400, 2 * 3600 + 30 * 60, "the next tick is 02:30 UTC");
    assert!(next > now_millis() / 1000 && next <= now_millis() / 1000 + 86_400);

    let (status, _) = caller.delete(&format!("{SCHEDULES}/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = caller.get(&format!("{SCHEDULES}/{id}")).await;
    assert_eq!(ups_error(status, &body).0, "DOSSIER-SCHEDULE-404");
}

#[tokio::test]
async fn every_refusal_names_the_field_the_value_and_the_fix() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let valid = segmentation(json!(["*"]), "0 0 1 * * ?", "active");
    let with = |pointer: &str, value: Value| {
        let mut body = valid.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let cases = [
        (json!([]), "body", "[]"),
        (with("/name", json!("")), "name", ""),
        (with("/type", json!("streaming")), "type", "streaming"),
        (with("/schedule", json!("0 0 1 * *")), "schedule", "0 0 1 * *"),
        (
            with("/schedule", json!("0 0 1 * * FUNDAY")),
            "schedule",
            "0 0 1 * * FUNDAY",
        ),
        (with("/state", json!("paused")), "state", "paused"),
        (
            with("/properties", json!({"segments": []})),
            "properties.segments",
            "[]",
        ),
        (
            json!({"name": "e", "type": "export", "schedule": "0 0 1 * * ?", "properties": {"exportJob": {"schema": {"name": "_xdm.context.profile"}}}}),
            "properties.exportJob.destination",
            "",
        ),
    ];
    for (body, field, value) in cases {
        let (status, answer) = caller.send_json(Method::POST, SCHEDULES, &body).await;
        let (code, message) = ups_error(status, &answer);
        assert_eq!((status, code.as_str()), (400, "DOSSIER-SCHEDULE-400"), "{body}");
        assert!(message.contains(&format!("'{field}'")), "{field}: {message}");
        assert!(message.contains(value), "{value}: {message}");
    }

    let id = id_of(&caller.create_at(SCHEDULES, &with("/state", json!("inactive"))).await);
    let path = format!("{SCHEDULES}/{id}");
    for (patch, field) in [
        (json!([]), "body"),
        (json!({"state": "active"}), "body"),
        (json!([{"op": "add", "path": "/type", "value": "export"}]), "[0].path"),
        (json!([{"op": "move", "path": "/state", "value": "active"}]), "[0].op"),
        (json!([{"op": "remove", "path": "/schedule"}]), "[0].op"),
        (json!([{"op": "add", "path": "/state", "value": "on"}]), "state"),
        (
            json!([{"op": "add", "path": "/schedule", "value": "daily"}]),
            "schedule",
        ),
    ] {
        let (status, answer) = caller.send_json(Method::PATCH, &path, &patch).await;
        let (code, message) = ups_error(status, &answer);
        assert_eq!((status, code.as_str()), (400, "DOSSIER-SCHEDULE-PATCH-400"), "{patch}");
        assert!(message.contains(&format!("'{field}'")), "{field}: {message}");
    }
    for query in ["limit=0", "start=-1", "limit=many"] {
        let (status, answer) = caller.get(&format!("{SCHEDULES}?{query}")).await;
        assert_eq!(ups_error(status, &answer).0, "DOSSIER-SCHEDULE-QUERY-400", "{query}");
    }

    // Another sandbox's schedule, and one that never existed, are not found.
    server.create_sandbox(ORG, "dev");
    let dev = server.caller(ORG, "dev").await;
    let unknown = format!("{SCHEDULES}/00000000-0000-0000-0000-000000000000");
    let patch = json!([{"op": "add", "path": "/state", "value": "active"}]);
    for (who, path) in [(&dev, &path), (&caller, &unknown)] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(&patch)),
            (Method::DELETE, None),
        ] {
            let request = who.request(method.clone(), path);
            let request = match body {
                Some(body) => request.json(body),
                None => request,
            };
            let (status, answer) = into_parts(request.send().await.unwrap()).await;
            let (code, message) = ups_error(status, &answer);
            assert_eq!(
                (status, code.as_str()),
                (404, "DOSSIER-SCHEDULE-404"),
                "{method} {path}"
            );
            assert!(message.contains("GET /data/core/ups/config/schedules"), "{message}");
        }
    }
    let (_, still) = caller.get(&path).await;
    assert_eq!(still["state"], "inactive");
}

#[tokio::test]
async fn a_schedule_firing_every_second_starts_one_segment_job_per_tick() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let gold = one_definition(&caller).await;
    let id = id_of(
        &caller
            .create_at(SCHEDULES, &segmentation(json!([gold]), "* * * * * ?", "active"))
            .await,
    );
    let (meta, _) = open_storage(&server.data_dir()).await.unwrap();
    runs_at_least(&meta, &id, 3).await;
    set_state(&caller, &id, "inactive").await;
    let runs = meta.schedule_runs(&prod(), &id, 1000).await.unwrap();
    let jobs = job_ids(&caller, SEGMENT_JOBS).await;
    assert_one_job_per_tick(&runs, &jobs);
    let (_, job) = caller.get(&format!("{SEGMENT_JOBS}/{}", runs[0].job_id)).await;
    assert_eq!(job["segments"][0]["segmentId"], json!(gold), "{job}");
    // Inactive: no tick is waited for, no job starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(job_ids(&caller, SEGMENT_JOBS).await, jobs);
}

#[tokio::test]
async fn a_restart_after_missed_ticks_starts_one_job_for_them() {
    let mut server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    one_definition(&caller).await;
    let id = id_of(
        &caller
            .create_at(SCHEDULES, &segmentation(json!(["*"]), "* * * * * ?", "active"))
            .await,
    );
    let (meta, _) = open_storage(&server.data_dir()).await.unwrap();
    runs_at_least(&meta, &id, 1).await;
    let stopped_at = now_millis();
    server.restart_after(Duration::from_millis(4000)).await;
    let caller = Caller {
        base: server.base.clone(),
        ..caller
    };
    let before = meta.schedule_runs(&prod(), &id, 1000).await.unwrap().len();
    runs_at_least(&meta, &id, before + 1).await;
    set_state(&caller, &id, "inactive").await;
    let runs = meta.schedule_runs(&prod(), &id, 1000).await.unwrap();
    // About four ticks passed while no server ran. A run on time starts within a poll of its
    // tick; the new server's first poll claimed the oldest missed tick, seconds late, and moved
    // on to the next future tick: one late run, not one per missed tick.
    let late: Vec<&ScheduleRun> = runs.iter().filter(|r| r.started - r.tick > 2500).collect();
    assert_eq!(late.len(), 1, "the missed ticks start one job: {runs:?}");
    assert!(
        late[0].tick > stopped_at && late[0].started > stopped_at + 4000,
        "{runs:?}"
    );
    assert_one_job_per_tick(&runs, &job_ids(&caller, SEGMENT_JOBS).await);
}

/// Two servers in this process on one PostgreSQL database and one lake folder, each with its
/// own data dir (its own node name).
async fn two_nodes(url: &str, lake: &std::path::Path, dir: &std::path::Path) -> Vec<dossier_api::RunningServer> {
    let mut nodes = Vec::new();
    for n in 0..2 {
        let mut config = ServerConfig::new(dir.join(format!("node-{n}")), "127.0.0.1:0".parse().unwrap());
        config.static_tokens = vec![static_token(
            "schedules-token-0123456789abcdef",
            "schedules-client",
            ORG,
        )];
        let storage = Storage {
            meta: MetaStore::open_postgres(url).await.unwrap(),
            lake: Lake::local(lake).unwrap(),
        };
        nodes.push(dossier_api::start(config, storage).await.unwrap());
    }
    nodes
}

fn static_caller(node: &dossier_api::RunningServer) -> Caller {
    Caller {
        base: format!("http://{}", node.local_addr()),
        http: reqwest::Client::new(),
        token: "schedules-token-0123456789abcdef".into(),
        credentials: Credentials {
            client_id: "schedules-client".into(),
            secret: String::new(),
            org: ORG.into(),
        },
        sandbox: "prod".into(),
    }
}

#[tokio::test]
async fn two_servers_on_one_postgres_start_one_job_per_tick() {
    let Some(database) = tokio::task::spawn_blocking(dossier_testkit::postgres::database)
        .await
        .unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nodes = two_nodes(&database.url, &dir.path().join("lake"), dir.path()).await;
    let (first, second) = (static_caller(&nodes[0]), static_caller(&nodes[1]));
    let gold = one_definition(&first).await;
    let id = id_of(
        &second
            .create_at(SCHEDULES, &segmentation(json!([gold]), "* * * * * ?", "active"))
            .await,
    );
    let meta = MetaStore::open_postgres(&database.url).await.unwrap();
    runs_at_least(&meta, &id, 4).await;
    set_state(&first, &id, "inactive").await;
    let runs = meta.schedule_runs(&prod(), &id, 1000).await.unwrap();
    let late: Vec<i64> = runs.iter().rev().map(|r| r.started - r.tick).collect();
    eprintln!(
        "two nodes: {} ticks, each started this many ms after its tick: {late:?}",
        runs.len()
    );
    assert_one_job_per_tick(&runs, &job_ids(&second, SEGMENT_JOBS).await);
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

fn customer(n: usize, tier: &str) -> Value {
    json!({"_id": format!("r{n}-{tier}"), "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
           "crm": {"tier": tier}})
}

/// Activates the schedule until it started one more export, then waits for that export.
async fn one_scheduled_export(caller: &Caller, meta: &MetaStore, id: &str) -> Value {
    let before = meta.schedule_runs(&prod(), id, 1000).await.unwrap().len();
    set_state(caller, id, "active").await;
    let runs = runs_at_least(meta, id, before + 1).await;
    set_state(caller, id, "inactive").await;
    assert_eq!(runs.len(), before + 1, "one tick while active: {runs:?}");
    let job_id = runs[0].job_id.parse::<i64>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, job) = caller.get(&format!("{EXPORT_JOBS}/{job_id}")).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            assert_eq!(job["status"], "SUCCEEDED", "{job}");
            return job;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_export_schedule_with_last_run_exports_only_what_changed_since_its_last_success() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let properties = json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}});
    let source = caller
        .create_dataset_with_groups("CRM", "profile", &["profile-segmentation"], properties)
        .await;
    let target = caller.create_dataset("Daily export").await;
    caller
        .ingest_json_lines(
            &source,
            &[customer(1, "gold"), customer(2, "silver"), customer(3, "gold")],
        )
        .await;
    let body = json!({
        "name": "Daily changes", "type": "export", "schedule": "* * * * * ?", "state": "inactive",
        "properties": {"exportJob": {
            "fields": "identityMap,crm", "destination": {"datasetId": target},
            "schema": {"name": "_xdm.context.profile"}, "filter": {"fromIngestTimestamp": "lastRun"}}},
    });
    let created = caller.create_at(SCHEDULES, &body).await;
    assert_eq!(
        created["properties"]["exportJob"]["filter"]["fromIngestTimestamp"],
        "lastRun"
    );
    let id = id_of(&created);
    let (meta, _) = open_storage(&server.data_dir()).await.unwrap();

    let first = one_scheduled_export(&caller, &meta, &id).await;
    assert_eq!(
        first["metrics"]["totalExportedProfileCounter"], 3,
        "the first run exports all: {first}"
    );
    assert_eq!(first["filter"].get("fromIngestTimestamp"), None, "{first}");

    caller
        .ingest_json_lines(&source, &[customer(2, "gold"), customer(4, "silver")])
        .await;
    let second = one_scheduled_export(&caller, &meta, &id).await;
    assert_eq!(
        second["metrics"]["totalExportedProfileCounter"], 2,
        "only the changed and the new profile: {second}"
    );
    let since: jiff::Timestamp = second["filter"]["fromIngestTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let runs = meta.schedule_runs(&prod(), &id, 10).await.unwrap();
    assert_eq!(
        since.as_millisecond(),
        runs[1].started,
        "lastRun is the first run's start"
    );

    let third = one_scheduled_export(&caller, &meta, &id).await;
    assert_eq!(
        third["metrics"]["totalExportedProfileCounter"], 0,
        "nothing changed: {third}"
    );
}
