//! Exports of wide schemas and the export workers under load (issue 12, defect 4), over HTTP
//! against the real server: an export naming thousands of fields of a 10,000-field object writes
//! exactly those columns; a DELETE while such an export plans lands at once; and one sandbox's
//! many jobs do not hold every worker while another sandbox's job waits.
//!
//! Nothing here times the projection itself (that is `dossier bench fields`); the bounds below
//! are generous and only catch a projection that takes minutes or a cancel that waits for it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::Lake;

const JOBS: &str = "/data/core/ups/export/jobs";
/// Fields of the wide object, and how many of them the exports name.
const WIDTH: usize = 10_000;
const NAMED: usize = 5_000;

fn field_name(i: usize) -> String {
    format!("f{i:05}")
}

/// A profile schema's properties: one object `wide` with `WIDTH` string fields.
fn wide_properties() -> Value {
    let fields: serde_json::Map<String, Value> =
        (0..WIDTH).map(|i| (field_name(i), json!({"type": "string"}))).collect();
    json!({"wide": {"type": "object", "properties": fields}})
}

/// The fields an export names: every other one, listed from the last (the output follows the
/// schema's order, not the list's).
fn named_fields() -> Vec<usize> {
    (0..WIDTH).step_by(WIDTH / NAMED).rev().collect()
}

fn fields_text(named: &[usize]) -> String {
    named
        .iter()
        .map(|&i| format!("wide.{}", field_name(i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Profile `n`: a CRMID and a few values of the wide object, some named and some not.
fn wide_record(n: usize) -> (Value, BTreeMap<String, String>) {
    let mut values = BTreeMap::new();
    for k in 0..6 {
        let i = (n * 7 + k * 1_667) % WIDTH;
        values.insert(field_name(i), format!("v{n}-{i}"));
    }
    let record = json!({
        "_id": format!("w{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
        "wide": values,
    });
    (record, values)
}

fn crm_record(n: usize) -> Value {
    json!({
        "_id": format!("r{n}"),
        "identityMap": {"CRMID": [{"id": format!("crm{n}"), "primary": true}]},
        "crm": {"tier": if n.is_multiple_of(2) { "gold" } else { "silver" }},
    })
}

fn job_body(dataset: &str, fields: Option<String>) -> Value {
    let mut body = json!({"destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"}});
    if let Some(fields) = fields {
        body["fields"] = Value::String(fields);
    }
    body
}

async fn create_job(caller: &Caller, body: &Value) -> Value {
    let (status, job) = caller.send_json(Method::POST, JOBS, body).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn job_status(caller: &Caller, id: i64) -> String {
    let (status, job) = caller.get(&format!("{JOBS}/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job["status"].as_str().unwrap().to_owned()
}

fn ended(status: &str) -> bool {
    ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&status)
}

/// Polls the job until it ends, at most `within`; returns the job.
async fn wait_for_end(caller: &Caller, id: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, job) = caller.get(&format!("{JOBS}/{id}")).await;
        if ended(job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not end within {within:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_export_naming_thousands_of_fields_of_a_wide_schema_writes_exactly_those() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let wide = caller.create_ingest_dataset("Wide", "profile", wide_properties()).await;
    let (records, expected): (Vec<Value>, Vec<_>) = (0..40).map(wide_record).unzip();
    caller.ingest_json_lines(&wide, &records).await;
    let target = caller.create_dataset("Export target").await;

    let named = named_fields();
    let job = create_job(&caller, &job_body(&target, Some(fields_text(&named)))).await;
    let id = job["id"].as_i64().unwrap();
    let batch = job["destination"]["batchId"].as_str().unwrap().to_owned();
    // Generous: the quadratic projection took minutes here; the linear one well under a second.
    let done = wait_for_end(&caller, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["metrics"]["totalExportedProfileCounter"], 40, "{done}");

    // Read back with pyarrow as a user would: the wide object has exactly the named fields in the
    // schema's order, and every value of every row is the ingested one (null where not ingested
    // or not named).
    let mut in_order = named.clone();
    in_order.sort_unstable();
    let wanted: Vec<String> = in_order.iter().map(|&i| field_name(i)).collect();
    let by_crm: BTreeMap<String, BTreeMap<String, String>> = expected
        .into_iter()
        .enumerate()
        .map(|(n, values)| (format!("c{n}"), values))
        .collect();
    let tenant = Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    };
    let prefix = Lake::batch_prefix(&tenant, &DatasetId::from_string(target), &BatchId::from_string(batch));
    let folder = server.data_dir().join("lake").join(prefix.as_ref());
    let script = r#"
import json, sys, pyarrow.parquet as pq
folder = sys.argv[1]
spec = json.load(sys.stdin)
table = pq.read_table(folder)
assert sorted(table.column_names) == ["identityMap", "wide"], table.column_names
wide_type = table.schema.field("wide").type
names = [wide_type.field(i).name for i in range(wide_type.num_fields)]
assert names == spec["wanted"], (len(names), names[:5])
assert table.num_rows == len(spec["byCrm"]), table.num_rows
seen = set()
for row in table.to_pylist():
    crm = dict(row["identityMap"])["CRMID"][0]["id"]
    seen.add(crm)
    values = spec["byCrm"][crm]
    for name in spec["wanted"]:
        assert row["wide"][name] == values.get(name), (crm, name, row["wide"][name], values.get(name))
assert seen == set(spec["byCrm"]), seen
print("ok")
"#;
    let spec = json!({"wanted": wanted, "byCrm": by_crm}).to_string();
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&folder)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(spec.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "pyarrow check failed (CI installs it with .ci/run): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_cancel_sent_while_a_huge_projection_plans_lands_within_seconds() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let wide = caller.create_ingest_dataset("Wide", "profile", wide_properties()).await;
    caller.ingest_json_lines(&wide, &[wide_record(0).0]).await;
    // Enough profiles that the export, once planned, still runs when the cancel comes.
    let crm = caller
        .create_ingest_dataset(
            "CRM",
            "profile",
            json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}}),
        )
        .await;
    caller
        .ingest_json_lines(&crm, &(0..20_000).map(crm_record).collect::<Vec<_>>())
        .await;
    let target = caller.create_dataset("Export target").await;
    let job = create_job(&caller, &job_body(&target, Some(fields_text(&named_fields())))).await;
    let id = job["id"].as_i64().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = job_status(&caller, id).await;
        if status == "PROCESSING" {
            break;
        }
        assert_eq!(status, "NEW", "the export ended before it could be cancelled");
        assert!(Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked = Instant::now();
    let (status, answer) = caller.delete(&format!("{JOBS}/{id}")).await;
    assert_eq!(status, 200, "{answer}");
    // The worker notices within a heartbeat once it looks; the quadratic planning never looked
    // and held the job for minutes. Ten seconds leaves room for a loaded machine.
    let done = wait_for_end(&caller, id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "CANCELLED", "{done}");
    assert!(asked.elapsed() < Duration::from_secs(10), "took {:?}", asked.elapsed());
}

#[tokio::test]
async fn one_sandboxs_many_jobs_leave_a_worker_for_another_sandbox() {
    // Two workers (the default).
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let busy = server.caller(ORG, "prod").await;
    let other = busy.in_sandbox("dev");
    let crm_properties = json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}});
    let busy_crm = busy
        .create_ingest_dataset("CRM", "profile", crm_properties.clone())
        .await;
    busy.ingest_json_lines(&busy_crm, &(0..3_000).map(crm_record).collect::<Vec<_>>())
        .await;
    let busy_target = busy.create_dataset("Export target").await;
    let other_crm = other.create_ingest_dataset("CRM", "profile", crm_properties).await;
    other
        .ingest_json_lines(&other_crm, &(0..3).map(crm_record).collect::<Vec<_>>())
        .await;
    let other_target = other.create_dataset("Export target").await;

    // The busy sandbox queues six exports, then the other sandbox one.
    let mut busy_jobs = Vec::new();
    for _ in 0..6 {
        busy_jobs.push(
            create_job(&busy, &job_body(&busy_target, None)).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let other_job = create_job(&other, &job_body(&other_target, None)).await["id"]
        .as_i64()
        .unwrap();

    // Until the other sandbox's job ends, the busy sandbox never runs two jobs at once (one
    // worker stays free), and when it ends most of the busy sandbox's jobs are still waiting.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // One listing is one read of the store: job by job, a job that ended between two reads
        // and the one that took its worker would both look PROCESSING.
        let (status, listing) = busy.get(JOBS).await;
        assert_eq!(status, 200, "{listing}");
        let statuses: Vec<&str> = listing["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses.len(), busy_jobs.len(), "{listing}");
        let running = statuses.iter().filter(|&&s| s == "PROCESSING").count();
        let finished = statuses.iter().filter(|&&s| ended(s)).count();
        assert!(running <= 1, "the busy sandbox holds {running} workers: {statuses:?}");
        let status = job_status(&other, other_job).await;
        if ended(&status) {
            assert_eq!(status, "SUCCEEDED");
            assert!(
                finished <= 2,
                "the other sandbox's job waited for {finished} of the busy sandbox's jobs"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the other sandbox's job never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The busy sandbox's jobs all run in the end.
    for id in busy_jobs {
        let done = wait_for_end(&busy, id, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
    }
}
