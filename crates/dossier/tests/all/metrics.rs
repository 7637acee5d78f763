//! `GET /metrics` (docs/metrics.md) over HTTP against the real server: a known workload, then
//! the exact numbers it must show; a registry per server; the queue depth read from the store;
//! and the job id and sandbox on every log line of a job, read from a real `dossier serve`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const JOBS: &str = "/data/core/ups/export/jobs";

/// A scrape of `/metrics`, in the Prometheus text format.
struct Scrape(String);

impl Scrape {
    async fn of(base: &str) -> Self {
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        Self(response.text().await.unwrap())
    }

    /// The value of the series `name{labels}` (labels as the text format writes them, in
    /// order); `None` when the scrape does not have it.
    fn value(&self, name: &str, labels: &str) -> Option<f64> {
        let series = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{labels}}}")
        };
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(&series)?.strip_prefix(' '))
            .map(|value| value.parse().unwrap())
    }

    /// The value of `name{labels}`, which must be there.
    fn get(&self, name: &str, labels: &str) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("{name}{{{labels}}} is not in the scrape:\n{}", self.0))
    }

    /// How many requests of `method` on `route` answered `status`.
    fn requests(&self, method: &str, route: &str, status: u16) -> f64 {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
        self.value("dossier_http_requests_total", &labels).unwrap_or(0.0)
    }
}

/// Polls the export job until it ends; returns it and how many GETs that took.
async fn wait_for_job(caller: &Caller, id: i64) -> (Value, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut gets = 0;
    loop {
        let (status, job) = caller.get(&format!("{JOBS}/{id}")).await;
        gets += 1;
        assert_eq!(status, 200, "{job}");
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
            return (job, gets);
        }
        assert!(Instant::now() < deadline, "job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Uploads `lines` into a new batch of `dataset` and completes it; returns the ended batch.
async fn ingest(caller: &Caller, dataset: &str, lines: &[Value]) -> (String, Value) {
    let batch = caller.create_batch(dataset).await;
    let body: String = lines.iter().map(|r| format!("{r}\n")).collect();
    let (status, body) = caller.upload(&batch, dataset, "records.json", body.into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(caller.batch_action(&batch, "COMPLETE").await.0, 200);
    let ended = caller.wait_for_batch(&batch).await;
    (batch, ended)
}

/// The size of the batch's row-error file, as Data Access lists it.
async fn failed_file_size(caller: &Caller, batch: &str) -> f64 {
    let (status, listing) = caller
        .get(&format!("/data/foundation/export/batches/{batch}/failed"))
        .await;
    assert_eq!(status, 200, "{listing}");
    listing["data"][0]["length"].as_str().unwrap().parse().unwrap()
}

/// Scrapes until `name{labels}` is there: what the server does after a batch's commit (its
/// identity graph fold) runs in the background.
async fn scrape_until(base: &str, name: &str, labels: &str) -> (Scrape, u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut scrapes = 0;
    loop {
        let scrape = Scrape::of(base).await;
        scrapes += 1;
        if scrape.value(name, labels).is_some() {
            return (scrape, scrapes);
        }
        assert!(
            Instant::now() < deadline,
            "{name}{{{labels}}} never showed:\n{}",
            scrape.0
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_known_workload_shows_its_exact_numbers() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller
        .create_ingest_dataset("CRM", "profile", crm_tier_properties())
        .await;
    // One batch of 5 valid rows (loaded), one of 2 valid and 1 invalid rows without partial
    // ingestion (failed: 1 rejected, 2 dropped).
    let (_, loaded) = ingest(&caller, &crm, &(0..5).map(tier_customer).collect::<Vec<_>>()).await;
    assert_eq!(loaded["status"], "success", "{loaded}");
    // The batch's fold runs after its commit, in the background; an export's read would fold
    // it itself (unmeasured) if it came first.
    let sandbox = format!("org=\"{ORG}\",sandbox=\"prod\"");
    let (_, scrapes) = scrape_until(&server.base, "dossier_identity_graph_identities", &sandbox).await;
    let mut bad = vec![tier_customer(10), tier_customer(11)];
    bad.push(json!({"_id": "r12", "identityMap": {"CRMID": [{"id": "c12", "primary": true}]}, "crm": {"tier": 7}}));
    let (failed_batch, failed) = ingest(&caller, &crm, &bad).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let target = caller.create_dataset("Export target").await;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}});
    let (status, job) = caller.send_json(Method::POST, JOBS, &body).await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_i64().unwrap();
    let export_batch = job["destination"]["batchId"].as_str().unwrap().to_owned();
    let (done, polls) = wait_for_job(&caller, id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");

    // 404s: an unknown job (a matched route), and paths no route has.
    assert_eq!(caller.get(&format!("{JOBS}/999999")).await.0, 404);
    assert_eq!(caller.get("/data/core/ups/no-such-thing").await.0, 404);
    let anonymous = reqwest::Client::new();
    for path in ["/no-such-page", "/another/missing/page"] {
        let response = anonymous.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    // A known path with a method it does not have.
    let response = anonymous
        .delete(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    let scrape = Scrape::of(&server.base).await;

    // HTTP: counts per route template and status, never a raw path.
    assert_eq!(scrape.requests("POST", "/ims/token/v3", 200), 1.0);
    assert_eq!(scrape.requests("POST", "/data/foundation/import/batches", 201), 2.0);
    let upload = "/data/foundation/import/batches/{batchId}/datasets/{datasetId}/files/{fileName}";
    assert_eq!(scrape.requests("PUT", upload, 200), 2.0);
    assert_eq!(
        scrape.requests("POST", "/data/foundation/import/batches/{batchId}", 200),
        2.0
    );
    assert_eq!(scrape.requests("POST", JOBS, 200), 1.0);
    assert_eq!(scrape.requests("GET", &format!("{JOBS}/{{id}}"), 200), f64::from(polls));
    assert_eq!(scrape.requests("GET", &format!("{JOBS}/{{id}}"), 404), 1.0);
    assert_eq!(scrape.requests("GET", "unmatched", 404), 3.0);
    assert_eq!(scrape.requests("DELETE", "/health", 405), 1.0);
    // A scrape is counted once it answered: this one shows the ones before it.
    assert_eq!(scrape.requests("GET", "/metrics", 200), f64::from(scrapes));
    for raw in ["no-such", "missing/page", "jobs/999999", &export_batch, &failed_batch] {
        assert!(
            !scrape.0.contains(raw),
            "the raw path part {raw} is a label:\n{}",
            scrape.0
        );
    }
    let job_route = format!("method=\"GET\",route=\"{JOBS}/{{id}}\",status=\"200\"");
    assert_eq!(
        scrape.get("dossier_http_request_duration_seconds_count", &job_route),
        f64::from(polls)
    );

    // Jobs: one export started and succeeded, its rows, profiles and bytes; nothing queued.
    assert_eq!(scrape.get("dossier_jobs_started_total", "kind=\"export\""), 1.0);
    let succeeded = "kind=\"export\",state=\"succeeded\"";
    assert_eq!(scrape.get("dossier_jobs_finished_total", succeeded), 1.0);
    assert_eq!(scrape.get("dossier_job_duration_seconds_count", succeeded), 1.0);
    assert_eq!(scrape.get("dossier_export_rows_total", ""), 5.0);
    assert_eq!(scrape.get("dossier_export_profiles_total", ""), 5.0);
    let (_, exported) = caller
        .get(&format!("/data/foundation/catalog/batches/{export_batch}"))
        .await;
    let export_bytes = exported[&export_batch]["size"].as_f64().unwrap();
    assert!(export_bytes > 0.0);
    assert_eq!(
        scrape.get("dossier_lake_written_bytes_total", "output=\"export\""),
        export_bytes
    );
    for state in ["queued", "running"] {
        let labels = format!("kind=\"export\",state=\"{state}\"");
        assert_eq!(scrape.get("dossier_job_queue_depth", &labels), 0.0);
    }

    // Ingestion: batches by outcome, rows by what became of them, bytes of committed files.
    assert_eq!(scrape.get("dossier_ingest_batches_total", "outcome=\"success\""), 1.0);
    assert_eq!(scrape.get("dossier_ingest_batches_total", "outcome=\"failed\""), 1.0);
    let rows = |outcome: &str, result: &str| {
        scrape.get(
            "dossier_ingest_records_total",
            &format!("outcome=\"{outcome}\",result=\"{result}\""),
        )
    };
    assert_eq!(
        (
            rows("success", "loaded"),
            rows("success", "rejected"),
            rows("success", "dropped")
        ),
        (5.0, 0.0, 0.0)
    );
    assert_eq!(
        (
            rows("failed", "loaded"),
            rows("failed", "rejected"),
            rows("failed", "dropped")
        ),
        (0.0, 1.0, 2.0)
    );
    let ingest_bytes = loaded["size"].as_f64().unwrap() + failed_file_size(&caller, &failed_batch).await;
    assert_eq!(
        scrape.get("dossier_lake_written_bytes_total", "output=\"ingest\""),
        ingest_bytes
    );

    // The identity graph of the one loaded batch: 5 identities in 5 components, one fold.
    assert_eq!(scrape.get("dossier_identity_graph_identities", &sandbox), 5.0);
    assert_eq!(scrape.get("dossier_identity_graph_components", &sandbox), 5.0);
    assert_eq!(scrape.get("dossier_identity_fold_duration_seconds_count", ""), 1.0);
}

#[tokio::test]
async fn each_server_counts_only_its_own_work_and_reads_the_queue_at_scrape_time() {
    // Two servers in one process; jobs stay queued (no workers).
    let busy = TestServer::start_with(|config| config.options.export_workers = 0).await;
    let idle = TestServer::start().await;
    let caller = busy.caller(ORG, "prod").await;
    let target = caller.create_dataset("Export target").await;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}});
    for _ in 0..2 {
        assert_eq!(caller.send_json(Method::POST, JOBS, &body).await.0, 200);
    }
    let scrape = Scrape::of(&busy.base).await;
    assert_eq!(scrape.requests("POST", JOBS, 200), 2.0);
    assert_eq!(
        scrape.get("dossier_job_queue_depth", "kind=\"export\",state=\"queued\""),
        2.0
    );
    assert_eq!(
        scrape.get("dossier_job_queue_depth", "kind=\"export\",state=\"running\""),
        0.0
    );
    assert_eq!(scrape.value("dossier_jobs_started_total", "kind=\"export\""), None);

    // A cancel takes a job off the queue: the next scrape reads one.
    let (status, jobs) = caller.get(JOBS).await;
    assert_eq!(status, 200, "{jobs}");
    let first = jobs["records"][0]["id"].as_i64().unwrap();
    assert_eq!(caller.delete(&format!("{JOBS}/{first}")).await.0, 200);
    let scrape = Scrape::of(&busy.base).await;
    assert_eq!(
        scrape.get("dossier_job_queue_depth", "kind=\"export\",state=\"queued\""),
        1.0
    );

    let other = Scrape::of(&idle.base).await;
    assert_eq!(other.requests("POST", JOBS, 200), 0.0);
    assert_eq!(other.requests("POST", "/ims/token/v3", 200), 0.0);
    assert!(!other.0.contains("route=\"/data/"), "{}", other.0);

    // OpenMetrics for a scraper that asks for it.
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", busy.base))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(response.text().await.unwrap().ends_with("# EOF\n"));
}

/// `dossier serve --log-json` as a child process, its stderr kept line by line.
struct LoggingServer {
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LoggingServer {
    fn spawn(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dossier"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("dossier serve starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = stderr.next().expect("serve prints its address").unwrap();
            if let Some(rest) = line.strip_prefix("dossier listening on ") {
                break rest.to_owned();
            }
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in stderr.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, base, lines }
    }

    /// A caller of this server with `credentials`, in `prod`.
    async fn caller(&self, credentials: Credentials) -> Caller {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/ims/token/v3", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", credentials.client_id.as_str()),
                ("client_secret", credentials.secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let token: Value = response.json().await.unwrap();
        Caller {
            base: self.base.clone(),
            http,
            token: token["access_token"].as_str().unwrap().to_owned(),
            credentials,
            sandbox: "prod".into(),
        }
    }

    /// The JSON log lines so far.
    fn logged(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// The span `name` among those a JSON log line was written in; it must be there.
fn span_named<'a>(line: &'a Value, name: &str) -> &'a Value {
    line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == name))
        .unwrap_or_else(|| panic!("the line is not in a '{name}' span: {line}"))
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn every_log_line_of_a_job_carries_its_job_id_and_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = create_client_in(dir.path(), ORG);
    let server = LoggingServer::spawn(dir.path());
    let caller = server.caller(credentials).await;
    let crm = caller
        .create_ingest_dataset("CRM", "profile", crm_tier_properties())
        .await;
    let (batch, ingested) = ingest(&caller, &crm, &(0..3).map(tier_customer).collect::<Vec<_>>()).await;
    assert_eq!(ingested["status"], "success", "{ingested}");
    let target = caller.create_dataset("Export target").await;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}});
    let (status, job) = caller.send_json(Method::POST, JOBS, &body).await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_i64().unwrap();
    assert_eq!(wait_for_job(&caller, id).await.0["status"], "SUCCEEDED");

    // The worker's lines and the export pipeline's, from "started" to "succeeded".
    let deadline = Instant::now() + Duration::from_secs(10);
    let of_the_job = loop {
        let logged = server.logged();
        let of_the_job: Vec<Value> = logged
            .into_iter()
            .filter(|line| {
                let target = line["target"].as_str().unwrap_or_default();
                target.starts_with("dossier_engine::jobs") || target.starts_with("dossier_engine::export")
            })
            .collect();
        let messages: Vec<&str> = of_the_job
            .iter()
            .filter_map(|line| line["fields"]["message"].as_str())
            .collect();
        if messages.contains(&"export job succeeded") {
            break of_the_job;
        }
        assert!(
            Instant::now() < deadline,
            "no 'export job succeeded' line: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(of_the_job.len() >= 3, "{of_the_job:#?}");
    for line in &of_the_job {
        let span = span_named(line, "job");
        assert_eq!(span["job_id"], id.to_string(), "{line}");
        assert_eq!(span["sandbox"], "prod", "{line}");
        assert_eq!(span["org"], ORG, "{line}");
        assert_eq!(span["kind"], "export", "{line}");
    }

    // The conversion's lines name their batch.
    let logged = server.logged();
    let committed = logged
        .iter()
        .find(|line| line["fields"]["message"] == "ingestion batch committed")
        .expect("the batch's commit is logged");
    let span = span_named(committed, "ingest");
    assert_eq!(span["batch_id"], batch, "{committed}");
    assert_eq!(span["sandbox"], "prod", "{committed}");
}
