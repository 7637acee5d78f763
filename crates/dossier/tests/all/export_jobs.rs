//! The export jobs API (`/data/core/ups/export/jobs`, api.md section 4) over HTTP against the
//! real server: validation, defaults, Idempotency-Key, paging, cancel, the queue limit,
//! recovery after a stop, and real exports end to end.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

use dossier_model::ids::DatasetId;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::{Lake, MetaStore};

const JOBS: &str = "/data/core/ups/export/jobs";

/// A server whose jobs stay NEW: no worker runs them.
async fn server_without_workers() -> TestServer {
    TestServer::start_with(|config| config.options.export_workers = 0).await
}

fn job_body(dataset: &str) -> Value {
    json!({"destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"}})
}

/// `body` with `value` set at the slash-separated `pointer`, creating objects on the way.
fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    let mut node = &mut body;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        node = node.as_object_mut().unwrap().entry(part).or_insert_with(|| json!({}));
    }
    node.as_object_mut().unwrap().insert(name.to_owned(), value);
    body
}

async fn create_job(caller: &Caller, body: &Value) -> Value {
    let (status, job) = caller.send_json(Method::POST, JOBS, body).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn get_job(caller: &Caller, id: i64) -> Value {
    let (status, job) = caller.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn wait_for_end(caller: &Caller, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = get_job(caller, id).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn batch_status(caller: &Caller, batch: &str) -> String {
    let (status, body) = caller.get(&format!("/data/foundation/catalog/batches/{batch}")).await;
    assert_eq!(status, 200, "{body}");
    body[batch]["status"].as_str().unwrap().to_owned()
}

/// The UPS error's status, code and message.
fn ups_error(status: u16, body: &Value) -> (String, String) {
    let entry = &body["errors"][status.to_string()][0];
    assert_eq!(body["status"], status, "{body}");
    assert!(body["requestId"].is_string(), "{body}");
    (
        entry["code"].as_str().unwrap().to_owned(),
        entry["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn every_invalid_request_answers_400_with_its_own_code_and_queues_nothing() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let crm = caller
        .create_ingest_dataset("CRM", "profile", crm_tier_properties())
        .await;
    let base = job_body(&target);
    let no_schema = {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove("schema");
        body
    };
    // (body, the field the message names, the value it names)
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!(["not", "an", "object"]), "body", "not"),
        (with(base.clone(), "/fields", json!(42)), "fields", "42"),
        (
            with(base.clone(), "/fields", json!("crm.tier,loyalty.points")),
            "fields",
            "loyalty.points",
        ),
        (
            with(base.clone(), "/mergePolicy", json!({"version": 1})),
            "mergePolicy.id",
            "",
        ),
        (
            with(base.clone(), "/mergePolicy", json!({"id": "no-such-policy"})),
            "mergePolicy.id",
            "no-such-policy",
        ),
        (
            with(
                base.clone(),
                "/mergePolicy",
                json!({"id": "timestampOrdered-none-mp", "version": 7}),
            ),
            "mergePolicy.version",
            "7",
        ),
        (with(base.clone(), "/filter", json!([])), "filter", "[]"),
        (
            with(base.clone(), "/filter/segments", json!("s1")),
            "filter.segments",
            "s1",
        ),
        (
            with(base.clone(), "/filter/segments", json!([{"segmentNs": "ups"}])),
            "filter.segments[0].segmentId",
            "",
        ),
        (
            with(
                base.clone(),
                "/filter/segments",
                json!([{"segmentId": "s1", "segmentNs": ""}]),
            ),
            "filter.segments[0].segmentNs",
            "",
        ),
        (
            with(
                base.clone(),
                "/filter/segments",
                json!([{"segmentId": "s1", "status": "realized"}]),
            ),
            "filter.segments[0].status",
            "realized",
        ),
        (
            with(
                base.clone(),
                "/filter/segments",
                json!([{"segmentId": "s1", "status": ["qualified"]}]),
            ),
            "filter.segments[0].status[0]",
            "qualified",
        ),
        (
            with(base.clone(), "/filter/fromIngestTimestamp", json!("yesterday")),
            "filter.fromIngestTimestamp",
            "yesterday",
        ),
        (
            with(
                base.clone(),
                "/filter/segmentQualificationTime",
                json!({"startTime": "2019-09-02T00:00:00Z", "endTime": "2019-09-01T00:00:00+02:00"}),
            ),
            "filter.segmentQualificationTime.endTime",
            "2019-09-01T00:00:00+02:00",
        ),
        (
            with(base.clone(), "/filter/emptyProfiles", json!("sometimes")),
            "filter.emptyProfiles",
            "sometimes",
        ),
        (
            with(base.clone(), "/additionalFields/eventList", json!("all")),
            "additionalFields.eventList",
            "all",
        ),
        (
            with(base.clone(), "/additionalFields/eventList/fields", json!("a..b")),
            "additionalFields.eventList.fields",
            "a..b",
        ),
        (
            with(
                base.clone(),
                "/additionalFields/eventList/fields",
                json!("environment.nothing"),
            ),
            "additionalFields.eventList.fields",
            "environment.nothing",
        ),
        (
            with(
                base.clone(),
                "/additionalFields/eventList/filter",
                json!({"fromIngestTimestamp": "2024-02-01T00:00:00Z", "toIngestTimestamp": "2024-01-01T00:00:00Z"}),
            ),
            "additionalFields.eventList.filter.toIngestTimestamp",
            "2024-01-01T00:00:00Z",
        ),
        (json!({"schema": {"name": "_xdm.context.profile"}}), "destination", ""),
        (
            with(base.clone(), "/destination", json!({"datasetId": 5})),
            "destination.datasetId",
            "5",
        ),
        (
            with(
                base.clone(),
                "/destination/datasetId",
                json!("5b020a27e7040801dedba61b"),
            ),
            "destination.datasetId",
            "5b020a27e7040801dedba61b",
        ),
        (
            with(base.clone(), "/destination/datasetId", json!(crm)),
            "destination.datasetId",
            &crm,
        ),
        (
            with(base.clone(), "/destination/segmentPerBatch", json!("one")),
            "destination.segmentPerBatch",
            "one",
        ),
        (
            with(base.clone(), "/destination/segmentPerBatch", json!(true)),
            "destination.segmentPerBatch",
            "true",
        ),
        (no_schema, "schema.name", ""),
        (
            with(base.clone(), "/schema/name", json!("_xdm.context.experienceevent")),
            "schema.name",
            "_xdm.context.experienceevent",
        ),
        (
            with(base.clone(), "/evaluationInfo", json!({"segmentation": 1})),
            "evaluationInfo.segmentation",
            "1",
        ),
    ];
    let mut codes = HashSet::new();
    for (body, field, value) in &cases {
        let (status, answer) = caller.send_json(Method::POST, JOBS, body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let (code, message) = ups_error(400, &answer);
        assert_eq!(answer["type"], format!("https://ns.adobe.com/aep/errors/{code}"));
        assert!(message.contains(&format!("'{field}'")), "{message} should name {field}");
        assert!(message.contains(value), "{message} should name {value}");
        assert!(codes.insert(code.clone()), "code {code} is used twice ({message})");
    }
    assert_eq!(codes.len(), cases.len());

    let (_, list) = caller.get(JOBS).await;
    assert_eq!(list["records"], json!([]), "nothing was queued");
    let (_, batches) = caller
        .get(&format!("/data/foundation/catalog/batches?dataSet={target}"))
        .await;
    assert_eq!(batches, json!({}), "no batch was created");
}

#[tokio::test]
async fn a_new_job_echoes_the_request_with_its_defaults() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let body = with(
        job_body(&target),
        "/filter/segments",
        json!([{"segmentId": "s1"}, {"segmentId": "s2", "segmentNs": "AAM", "status": ["exited"]}]),
    );
    let response = caller
        .request(Method::POST, JOBS)
        .header("x-request-id", "my-request-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, job) = into_parts(response).await;
    assert_eq!(status, 200, "{job}");

    assert!(job["id"].as_i64().unwrap() >= 1);
    assert_eq!(job["jobType"], "BATCH");
    assert_eq!(job["status"], "NEW");
    assert_eq!(job["profileInstanceId"], "ups");
    assert_eq!(job["imsOrgId"], ORG);
    assert_eq!(job["requestId"], "my-request-1");
    assert_eq!(
        job["filter"],
        json!({"segments": [{"segmentId": "s1", "segmentNs": "ups", "status": ["realized", "existing"]},
                            {"segmentId": "s2", "segmentNs": "AAM", "status": ["exited"]}],
               "emptyProfiles": false})
    );
    assert!(job.get("fields").is_none() && job.get("additionalFields").is_none());
    // No merge policy named and the segments carry none: the sandbox's default, at its version.
    assert_eq!(
        job["mergePolicy"],
        json!({"id": "timestampOrdered-none-mp", "version": 1})
    );
    assert_eq!(job["schema"], json!({"name": "_xdm.context.profile"}));
    assert_eq!(job["destination"]["datasetId"], target);
    assert_eq!(job["destination"]["segmentPerBatch"], false);
    let batch = job["destination"]["batchId"].as_str().unwrap();
    assert_eq!(job["computeGatewayJobId"], json!({}));
    assert_eq!(
        job["metrics"],
        json!({"totalTime": {"startTimeInMs": job["creationTime"]}})
    );
    assert!(job["updateTime"].as_i64().unwrap() >= job["creationTime"].as_i64().unwrap());
    assert!(job.get("progress").is_none() && job.get("errors").is_none());
    // The batch exists from creation, `loading`, and is not readable.
    assert_eq!(batch_status(&caller, batch).await, "loading");
    let (status, _) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/files"))
        .await;
    assert_eq!(status, 404);

    assert_eq!(get_job(&caller, job["id"].as_i64().unwrap()).await, job);
    let (status, same) = caller.get(&format!("{JOBS}/{}/", job["id"])).await;
    assert_eq!((status, &same), (200, &job), "a trailing slash is the same route");

    // segmentPerBatch: one batch per segment entry, echoed under destination.batches.
    let per_segment = create_job(&caller, &with(body, "/destination/segmentPerBatch", json!(true))).await;
    let batches = per_segment["destination"]["batches"].as_array().unwrap();
    assert_eq!(per_segment["destination"]["segmentPerBatch"], true);
    assert!(per_segment["destination"].get("batchId").is_none());
    assert_eq!(batches.len(), 2);
    assert_eq!(
        (
            &batches[1]["segmentId"],
            &batches[1]["segmentNs"],
            &batches[1]["status"]
        ),
        (&json!("s2"), &json!("AAM"), &json!(["exited"]))
    );
    assert_ne!(batches[0]["batchId"], batches[1]["batchId"]);
    assert_eq!(per_segment["id"].as_i64(), job["id"].as_i64().map(|id| id + 1));
}

#[tokio::test]
async fn the_job_records_the_merge_policy_version_it_uses() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let policy = json!({"name": "pdg", "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": "pdg"}});
    let (_, created) = caller
        .send_json(Method::POST, "/data/core/ups/config/mergePolicies", &policy)
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let patch = json!({"op": "replace", "path": "/name", "value": "pdg, renamed"});
    let (status, _) = caller
        .send_json(
            Method::PATCH,
            &format!("/data/core/ups/config/mergePolicies/{id}"),
            &patch,
        )
        .await;
    assert_eq!(status, 200);

    let latest = create_job(&caller, &with(job_body(&target), "/mergePolicy", json!({"id": id}))).await;
    assert_eq!(latest["mergePolicy"], json!({"id": id, "version": 2}));
    let pinned = create_job(
        &caller,
        &with(job_body(&target), "/mergePolicy", json!({"id": id, "version": 1})),
    )
    .await;
    assert_eq!(pinned["mergePolicy"], json!({"id": id, "version": 1}));
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_job_and_refuses_another_body() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let body = with(job_body(&target), "/fields", json!("identityMap"));
    let post = |key: &str, body: &Value| {
        caller
            .request(Method::POST, JOBS)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let (status, first) = into_parts(post("key-1", &body).await.unwrap()).await;
    assert_eq!(status, 200, "{first}");

    // The same body, keys in another order: a retry.
    let reordered: Value = serde_json::from_str(
        &format!(r#"{{"schema": {{"name": "_xdm.context.profile"}}, "fields": "identityMap", "destination": {{"datasetId": "{target}"}}}}"#),
    )
    .unwrap();
    let (status, again) = into_parts(post("key-1", &reordered).await.unwrap()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    assert_eq!(again["destination"]["batchId"], first["destination"]["batchId"]);

    let (status, refused) = into_parts(post("key-1", &job_body(&target)).await.unwrap()).await;
    assert_eq!(status, 409, "{refused}");
    let (code, message) = ups_error(409, &refused);
    assert_eq!(code, "DOSSIER-EXPORTJOB-IDEMPOTENCY-409");
    assert!(
        message.contains("key-1") && message.contains(&first["id"].to_string()),
        "{message}"
    );

    let (status, other) = into_parts(post("key-2", &body).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_ne!(other["id"], first["id"]);
    let (_, list) = caller.get(JOBS).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 2);
}

/// Follows `link.next` from the first page of `query`; returns the ids of every page.
async fn walk_pages(caller: &Caller, query: &str) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut path = format!("{JOBS}?{query}");
    loop {
        let (status, page) = caller.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<i64> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(page["page"]["sortField"], "createdTime");
        assert_eq!(page["page"]["sort"], "desc");
        assert_eq!(page["page"]["pageSize"], ids.len());
        assert!(page["link"].is_object(), "link is never null: {page}");
        if let Some(&last) = ids.last() {
            let created = page["records"][ids.len() - 1]["creationTime"].as_i64().unwrap();
            assert_eq!(page["page"]["pageOffset"], format!("{created}_{last}"));
        }
        pages.push(ids);
        match page["link"]["next"].as_str() {
            None => {
                assert_eq!(page["link"], json!({}));
                return pages;
            }
            Some(next) => {
                assert!(next.starts_with("/export/jobs/?limit="), "{next}");
                path = format!("/data/core/ups{next}");
            }
        }
    }
}

#[tokio::test]
async fn the_listing_pages_newest_first_to_an_empty_link() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let (_, empty) = caller.get(JOBS).await;
    assert_eq!(empty["records"], json!([]));
    assert_eq!(empty["link"], json!({}));

    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create_job(&caller, &job_body(&target)).await["id"].as_i64().unwrap());
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    let pages = walk_pages(&caller, "limit=2&start=0&page=1&sort=desc").await;
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| !p.is_empty()), "never an empty page: {pages:?}");
    assert_eq!(pages.concat(), newest_first);
    // Exactly a page's worth: the last full page has no next link (no empty page after it).
    assert_eq!(
        walk_pages(&caller, "limit=5").await,
        std::slice::from_ref(&newest_first)
    );
    // The tutorial's numeric offset skips that many jobs.
    assert_eq!(
        walk_pages(&caller, "offset=2&limit=10").await,
        [newest_first[2..].to_vec()]
    );

    for id in &ids[..2] {
        assert_eq!(caller.delete(&format!("{JOBS}/{id}")).await.0, 200);
    }
    let cancelled = walk_pages(&caller, "status=CANCELLED&limit=1").await;
    assert_eq!(cancelled.concat(), [ids[1], ids[0]]);
    let (_, page) = caller.get(&format!("{JOBS}?status=CANCELLED&limit=1")).await;
    assert!(page["link"]["next"].as_str().unwrap().ends_with("&status=CANCELLED"));
    assert_eq!(walk_pages(&caller, "status=new").await.concat(), newest_first[..3]);

    for query in ["limit=0", "limit=many", "offset=yesterday", "status=DONE"] {
        let (status, answer) = caller.get(&format!("{JOBS}?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(ups_error(400, &answer).0, "DOSSIER-EXPORTJOB-QUERY-400");
    }
}

#[tokio::test]
async fn jobs_of_another_sandbox_or_org_are_not_found() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let id = create_job(&caller, &job_body(&target)).await["id"].as_i64().unwrap();
    server.create_sandbox(ORG, "dev");
    let dev = caller.in_sandbox("dev");
    let other_org = server.caller(OTHER_ORG, "prod").await;
    for other in [&dev, &other_org] {
        let (status, answer) = other.get(&format!("{JOBS}/{id}")).await;
        assert_eq!(status, 404, "{answer}");
        let (code, message) = ups_error(404, &answer);
        assert_eq!(code, "DOSSIER-EXPORTJOB-404");
        assert!(message.contains(&id.to_string()));
        assert_eq!(other.delete(&format!("{JOBS}/{id}")).await.0, 404);
        assert_eq!(other.get(JOBS).await.1["records"], json!([]));
    }
    // Ids count per sandbox: the first job of dev is 1 too.
    let dev_target = dev.create_dataset("Dev target").await;
    assert_eq!(create_job(&dev, &job_body(&dev_target)).await["id"], id);
    assert_eq!(get_job(&caller, id).await["status"], "NEW", "untouched");
    for missing in ["999", "abc"] {
        assert_eq!(caller.get(&format!("{JOBS}/{missing}")).await.0, 404);
    }
}

#[tokio::test]
async fn cancelling_a_new_job_is_immediate_and_a_finished_job_does_not_change() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let job = create_job(&caller, &job_body(&target)).await;
    let id = job["id"].as_i64().unwrap();
    let marked = json!({"status": true, "message": "Export job has been marked for cancelling"});

    assert_eq!(caller.delete(&format!("{JOBS}/{id}")).await, (200, marked.clone()));
    let cancelled = get_job(&caller, id).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(cancelled["metrics"]["totalTime"]["totalTimeInMs"].is_i64());
    let batch = job["destination"]["batchId"].as_str().unwrap();
    assert_eq!(batch_status(&caller, batch).await, "failed");

    // Again, on a terminal job: the same answer, nothing changes.
    assert_eq!(caller.delete(&format!("{JOBS}/{id}/")).await, (200, marked));
    assert_eq!(get_job(&caller, id).await, cancelled);
    assert_eq!(caller.delete(&format!("{JOBS}/4242")).await.0, 404);
}

#[tokio::test]
async fn a_full_queue_answers_429_until_a_job_leaves_it() {
    let server = TestServer::start_with(|config| {
        config.options.export_workers = 0;
        config.options.max_queued_export_jobs = 1;
    })
    .await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let first = create_job(&caller, &job_body(&target)).await;
    let (status, answer) = caller.send_json(Method::POST, JOBS, &job_body(&target)).await;
    assert_eq!(status, 429, "{answer}");
    let (code, message) = ups_error(429, &answer);
    assert_eq!(code, "DOSSIER-EXPORTJOB-QUEUE-429");
    assert!(message.contains("max_queued_export_jobs"), "{message}");
    assert_eq!(caller.delete(&format!("{JOBS}/{}", first["id"])).await.0, 200);
    create_job(&caller, &job_body(&target)).await;
}

#[tokio::test]
async fn a_dataset_cannot_be_deleted_while_a_job_writes_into_it() {
    let server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let id = create_job(&caller, &job_body(&target)).await["id"].as_i64().unwrap();
    let path = format!("/data/foundation/catalog/dataSets/{target}");
    let (status, answer) = caller.delete(&path).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["title"], "ConflictError");
    assert!(answer["detail"].as_str().unwrap().contains(&format!("export job {id}")));
    caller.delete(&format!("{JOBS}/{id}")).await;
    assert_eq!(caller.delete(&path).await.0, 200);
    // The job stays readable after its dataset is gone.
    assert_eq!(get_job(&caller, id).await["status"], "CANCELLED");
}

#[tokio::test]
async fn a_job_left_processing_by_a_stopped_server_is_cleaned_and_queued_again_at_restart() {
    let mut server = server_without_workers().await;
    let caller = server.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let job = create_job(&caller, &job_body(&target)).await;
    let batch = job["destination"]["batchId"].as_str().unwrap().to_owned();

    // A process of this node (same data dir, so the same node name) claims the job, writes a
    // file into its batch, and dies: open the same store as that process would.
    let data = server.data_dir();
    let node = std::fs::read_to_string(data.join("node-id")).unwrap();
    let worker = format!("{}/worker-0", node.trim());
    let meta = MetaStore::open_sqlite(&data.join("meta.sqlite")).await.unwrap();
    let Some(dossier_storage::meta::ClaimedJob::Export(claimed)) = meta
        .claim_next_job(
            &worker,
            dossier_model::time::now_millis(),
            dossier_storage::meta::PerSandbox::UNLIMITED,
        )
        .await
        .unwrap()
    else {
        panic!("the export job is claimed");
    };
    assert_eq!(claimed.id, job["id"].as_i64().unwrap());
    meta.close().await;
    let lake = Lake::local(&data.join("lake")).unwrap();
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let folder = Lake::batch_prefix(
        &tenant,
        &DatasetId::from_string(target.clone()),
        &claimed.batches[0].batch_id,
    );
    lake.put(
        &folder.clone().join("part-00000.parquet"),
        bytes::Bytes::from_static(b"half"),
    )
    .await
    .unwrap();
    assert_eq!(get_job(&caller, claimed.id).await["status"], "PROCESSING");
    assert_eq!(batch_status(&caller, &batch).await, "processing");

    server.restart().await;
    let caller = Caller {
        base: server.base.clone(),
        ..caller
    };
    // The restart takes its own node's job over at once: the half file goes, the job waits for
    // a worker again (this server has none), still PROCESSING, its batch still open.
    let again = get_job(&caller, claimed.id).await;
    assert_eq!(again["status"], "PROCESSING", "{again}");
    assert!(again["errors"].as_array().is_none_or(Vec::is_empty), "{again}");
    assert_eq!(batch_status(&caller, &batch).await, "processing");
    assert!(lake.list(&folder).await.unwrap().is_empty(), "its files are removed");
    let meta = MetaStore::open_sqlite(&data.join("meta.sqlite")).await.unwrap();
    let entry = meta
        .queue_entry(&dossier_storage::meta::JobKey::export(&tenant, claimed.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.state, entry.worker, entry.attempts),
        (dossier_storage::meta::JobState::Queued, None, 1)
    );
    meta.close().await;
}

#[tokio::test]
async fn an_export_runs_to_success_and_its_files_are_readable() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller
        .create_ingest_dataset("CRM", "profile", crm_tier_properties())
        .await;
    caller
        .ingest_json_lines(&crm, &(0..5).map(tier_customer).collect::<Vec<_>>())
        .await;
    let target = caller.create_dataset("Export target").await;

    let body = with(job_body(&target), "/fields", json!("crm.tier"));
    let job = create_job(&caller, &body).await;
    let id = job["id"].as_i64().unwrap();
    let batch = job["destination"]["batchId"].as_str().unwrap().to_owned();
    let done = wait_for_end(&caller, id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["fields"], "crm.tier");
    let metrics = &done["metrics"];
    assert_eq!(metrics["totalExportedProfileCounter"], 5, "{metrics}");
    assert_eq!(metrics["exportedProfileByNamespaceCounter"], json!({"CRMID": 5}));
    assert_eq!(metrics["leftOutProfileByReasonCounter"], json!({}));
    for span in ["totalTime", "profileExportTime", "aCPDatasetWriteTime"] {
        let span = &metrics[span];
        let (start, end) = (
            span["startTimeInMs"].as_i64().unwrap(),
            span["endTimeInMs"].as_i64().unwrap(),
        );
        assert_eq!(span["totalTimeInMs"].as_i64().unwrap(), end - start);
    }
    assert_eq!(metrics["totalTime"]["startTimeInMs"], done["creationTime"]);
    assert!(done.get("progress").is_none() && done.get("errors").is_none());

    let (_, catalog) = caller.get(&format!("/data/foundation/catalog/batches/{batch}")).await;
    assert_eq!(catalog[&batch]["status"], "success");
    assert_eq!(catalog[&batch]["recordCount"], 5);
    let (status, files) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/files"))
        .await;
    assert_eq!(status, 200, "{files}");
    let listed = files["data"].as_array().unwrap();
    assert!(!listed.is_empty());
    let records: i64 = listed.iter().map(|f| f["records"].as_i64().unwrap()).sum();
    assert_eq!(records, 5);

    // The finished job is listed with the same object.
    let (_, list) = caller.get(JOBS).await;
    assert_eq!(list["records"][0], done);
}

/// Profiles enough that the export of all of them takes longer than a cancel needs.
const MANY: usize = 30_000;

#[tokio::test]
async fn cancelling_a_running_export_ends_it_cancelled_without_files() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller
        .create_ingest_dataset("CRM", "profile", crm_tier_properties())
        .await;
    caller
        .ingest_json_lines(&crm, &(0..MANY).map(tier_customer).collect::<Vec<_>>())
        .await;
    let target = caller.create_dataset("Export target").await;
    let job = create_job(&caller, &job_body(&target)).await;
    let id = job["id"].as_i64().unwrap();
    let batch = job["destination"]["batchId"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let current = get_job(&caller, id).await;
        if current["status"] == "PROCESSING" {
            break current;
        }
        assert_eq!(
            current["status"], "NEW",
            "the export ended before it could be cancelled: {current}"
        );
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let progress = &running["progress"];
    for counter in ["profilesScanned", "profilesExported", "bytesWritten", "percent"] {
        assert!(progress[counter].is_u64(), "{counter}: {running}");
    }
    assert_eq!(batch_status(&caller, &batch).await, "processing");

    let asked = Instant::now();
    let (status, _) = caller.delete(&format!("{JOBS}/{id}")).await;
    assert_eq!(status, 200);
    let ended = wait_for_end(&caller, id).await;
    assert_eq!(ended["status"], "CANCELLED", "{ended}");
    assert!(asked.elapsed() < Duration::from_secs(2), "took {:?}", asked.elapsed());
    assert_eq!(batch_status(&caller, &batch).await, "failed");
    let (status, _) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/files"))
        .await;
    assert_eq!(status, 404);
    let lake = Lake::local(&server.data_dir().join("lake")).unwrap();
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let folder = Lake::batch_prefix(
        &tenant,
        &DatasetId::from_string(target),
        &dossier_model::ids::BatchId::from_string(batch),
    );
    assert!(lake.list(&folder).await.unwrap().is_empty(), "no file is left");
}
