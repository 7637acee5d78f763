//! A real server on an ephemeral port over a fresh data dir, and a client that speaks to it the
//! way AEP's tutorials do. API clients are created with the real `dossier` command.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dossier_api::{RunningServer, ServerConfig, StaticToken, Storage};
use dossier_storage::{Lake, MetaStore};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub const ORG: &str = "1BD6382559DF0C130A49422D@AdobeOrg";
pub const OTHER_ORG: &str = "99AA0000000000000000FFFF@AdobeOrg";
pub const TUTORIAL_DATASET: &str = include_str!("../../../assets/create-dataset.json");

/// Runs the `dossier` binary with `args` against `data_dir` and returns its stdout.
pub fn dossier(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_dossier"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("the dossier binary runs");
    assert!(
        output.status.success(),
        "dossier {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Opens the metadata store and the lake where `dossier` puts them by default: `meta.sqlite` and
/// `lake/` in the data dir (the binary's storage resolver is not reachable from tests).
pub async fn open_storage(data_dir: &Path) -> Result<(MetaStore, Lake), dossier_storage::StorageError> {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let meta = MetaStore::open_sqlite(&data_dir.join("meta.sqlite")).await?;
    let lake = Lake::local(&data_dir.join("lake"))?;
    Ok((meta, lake))
}

async fn open_data_dir(data_dir: &Path) -> Storage {
    let (meta, lake) = open_storage(data_dir).await.expect("storage opens");
    Storage { meta, lake }
}

/// An API client's credentials, as `dossier clients create --json` prints them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub secret: String,
    pub org: String,
}

#[cfg(feature = "cluster")]
pub mod cluster_engine;
mod exports;
mod records;
pub use exports::*;
pub use records::*;

/// Whether the suite's servers run their jobs on the cluster engine: `DOSSIER_TEST_EXPORT_ENGINE`
/// = `cluster` (a process cluster per server) or `cluster-local` (in this process), in a build
/// with the `cluster` feature.
fn on_the_cluster_engine() -> bool {
    #[cfg(feature = "cluster")]
    return cluster_engine::SuiteEngine::from_env() != cluster_engine::SuiteEngine::Native;
    #[cfg(not(feature = "cluster"))]
    false
}

/// Whether each server's jobs run on a process cluster of its own (`DOSSIER_TEST_EXPORT_ENGINE=
/// cluster`): a debug build's executors take seconds per job, so a test running many jobs may
/// run fewer cases there.
pub fn jobs_on_process_clusters() -> bool {
    #[cfg(feature = "cluster")]
    return cluster_engine::SuiteEngine::from_env() == cluster_engine::SuiteEngine::ClusterProcesses;
    #[cfg(not(feature = "cluster"))]
    false
}

/// The cluster engine's exporter for a server whose lake is `<data_dir>/lake`; a cluster it
/// starts goes into `slot`.
#[cfg(feature = "cluster")]
fn cluster_exporter(
    data_dir: &Path,
    slot: cluster_engine::ClusterSlot,
) -> impl FnOnce(dossier_engine::jobs::EngineExporter) -> cluster_engine::SuiteClusterExporter + use<> {
    let lake_url = format!("file://{}", data_dir.join("lake").display());
    let kind = cluster_engine::SuiteEngine::from_env();
    move |engine| cluster_engine::SuiteClusterExporter::new(kind, engine, lake_url, slot)
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    server: Option<RunningServer>,
    pub base: String,
    pub http: reqwest::Client,
    config: ServerConfig,
    /// The process cluster of the server's jobs, if it runs them on one (see [`cluster_engine`]).
    #[cfg(feature = "cluster")]
    cluster: cluster_engine::ClusterSlot,
}

#[cfg(feature = "cluster")]
impl Drop for TestServer {
    fn drop(&mut self) {
        // Stops the processes now: the server's job workers, and the exporter, outlive a drop.
        drop(self.cluster.lock().map(|mut slot| slot.take()));
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With `DOSSIER_TEST_EXPORT_ENGINE=cluster` (and the `cluster` feature), the server's jobs
    /// run through the cluster engine's exporter on a process cluster of its own (see
    /// [`cluster_engine`]): the whole suite's exports then check the cluster against the suite's
    /// expectations.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        #[cfg(feature = "cluster")]
        if on_the_cluster_engine() {
            let slot = cluster_engine::ClusterSlot::default();
            let mut server = Self::start_configured(adjust, |config| {
                cluster_exporter(&config.options.data_dir, slot.clone())
            })
            .await;
            server.cluster = slot;
            return server;
        }
        Self::start_with_exporter(adjust, |engine| engine).await
    }

    /// A server whose jobs run through the exporter `exporter` makes of the engine's (as the
    /// binary does for `export_engine = "cluster"`).
    pub async fn start_with_exporter<E: dossier_engine::jobs::Exporter>(
        adjust: impl FnOnce(&mut ServerConfig),
        exporter: impl FnOnce(dossier_engine::jobs::EngineExporter) -> E,
    ) -> Self {
        Self::start_configured(adjust, |_| exporter).await
    }

    /// [`TestServer::start_with_exporter`] with the exporter chosen knowing the server's config.
    async fn start_configured<E: dossier_engine::jobs::Exporter, X>(
        adjust: impl FnOnce(&mut ServerConfig),
        exporter_for: impl FnOnce(&ServerConfig) -> X,
    ) -> Self
    where
        X: FnOnce(dossier_engine::jobs::EngineExporter) -> E,
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
        adjust(&mut config);
        let exporter = exporter_for(&config);
        let storage = open_data_dir(&config.options.data_dir).await;
        let server = dossier_api::start_with(config.clone(), storage, exporter)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.local_addr());
        Self {
            dir,
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            config,
            #[cfg(feature = "cluster")]
            cluster: Default::default(),
        }
    }

    /// The server's generated OpenAPI document.
    pub async fn openapi_document(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/openapi.json", self.base))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.options.data_dir.clone()
    }

    /// Stops the server and starts a new one on the same data dir (on a new port).
    pub async fn restart(&mut self) {
        self.restart_after(Duration::ZERO).await;
    }

    /// Stops the server, waits `pause` with no server running, then starts a new one on the same
    /// data dir (on a new port).
    pub async fn restart_after(&mut self, pause: Duration) {
        self.server
            .take()
            .expect("running")
            .shutdown()
            .await
            .expect("clean shutdown");
        tokio::time::sleep(pause).await;
        let storage = open_data_dir(&self.config.options.data_dir).await;
        let config = self.config.clone();
        let server = match on_the_cluster_engine() {
            #[cfg(feature = "cluster")]
            true => {
                // The stopped server's workers are gone, and its cluster with them.
                self.cluster = cluster_engine::ClusterSlot::default();
                let exporter = cluster_exporter(&config.options.data_dir, self.cluster.clone());
                dossier_api::start_with(config, storage, exporter).await
            }
            _ => dossier_api::start(config, storage).await,
        }
        .expect("server restarts");
        self.base = format!("http://{}", server.local_addr());
        self.server = Some(server);
    }

    /// Creates an API client with the `dossier clients create` command.
    pub fn create_client(&self, org: &str, sandboxes: &[&str]) -> Credentials {
        let mut args = vec!["clients", "create", "--org", org, "--json"];
        for s in sandboxes {
            args.extend(["--sandbox", s]);
        }
        let printed: Value = serde_json::from_str(&dossier(&self.data_dir(), &args)).expect("JSON from clients create");
        Credentials {
            client_id: printed["clientId"].as_str().unwrap().to_owned(),
            secret: printed["clientSecret"].as_str().unwrap().to_owned(),
            org: printed["org"].as_str().unwrap().to_owned(),
        }
    }

    pub fn create_sandbox(&self, org: &str, name: &str) {
        dossier(&self.data_dir(), &["sandboxes", "create", "--org", org, name]);
    }

    pub async fn token_response(&self, client_id: &str, secret: &str) -> Response {
        self.http
            .post(format!("{}/ims/token/v3", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", "openid,AdobeID,read_organizations"),
            ])
            .send()
            .await
            .expect("token request")
    }

    pub async fn token(&self, credentials: &Credentials) -> String {
        let response = self.token_response(&credentials.client_id, &credentials.secret).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A caller with a fresh client and token for `org`, addressing `sandbox`.
    pub async fn caller(&self, org: &str, sandbox: &str) -> Caller {
        let credentials = self.create_client(org, &[]);
        let token = self.token(&credentials).await;
        Caller {
            base: self.base.clone(),
            http: self.http.clone(),
            token,
            credentials,
            sandbox: sandbox.to_owned(),
        }
    }
}

/// A caller with every header AEP requires.
#[derive(Clone)]
pub struct Caller {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
    pub credentials: Credentials,
    pub sandbox: String,
}

impl Caller {
    pub fn in_sandbox(&self, sandbox: &str) -> Caller {
        Caller {
            sandbox: sandbox.to_owned(),
            ..self.clone()
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("x-api-key", &self.credentials.client_id)
            .header("x-gw-ims-org-id", &self.credentials.org)
            .header("x-sandbox-name", &self.sandbox)
            .timeout(Duration::from_secs(30))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        into_parts(self.request(Method::GET, path).send().await.unwrap()).await
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> (u16, Value) {
        into_parts(self.request(method, path).json(body).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        into_parts(self.request(Method::DELETE, path).send().await.unwrap()).await
    }

    /// POSTs a create and returns the created object, asserting a 200.
    pub async fn create_at(&self, path: &str, body: &Value) -> Value {
        let (status, created) = self.send_json(Method::POST, path, body).await;
        assert_eq!(status, 200, "{created}");
        created
    }

    /// Creates the tutorial's dataset (optionally renamed) and returns its id.
    pub async fn create_dataset(&self, name: &str) -> String {
        let mut body: Value = serde_json::from_str(TUTORIAL_DATASET).unwrap();
        body["name"] = Value::String(name.to_owned());
        let (status, created) = self
            .send_json(Method::POST, "/data/foundation/catalog/dataSets", &body)
            .await;
        assert_eq!(status, 201, "{created}");
        dataset_id_of(&created)
    }

    /// Opens an ingestion batch on `dataset` and returns its id.
    pub async fn create_batch(&self, dataset: &str) -> String {
        self.create_batch_with(dataset, serde_json::json!({"format": "json"}), false)
            .await
    }

    pub async fn create_batch_with(&self, dataset: &str, input_format: Value, partial: bool) -> String {
        let body = serde_json::json!({"datasetId": dataset, "inputFormat": input_format, "partialIngestion": partial});
        let (status, batch) = self
            .send_json(Method::POST, "/data/foundation/import/batches", &body)
            .await;
        assert_eq!(status, 201, "{batch}");
        batch["id"].as_str().unwrap().to_owned()
    }

    /// Registers a schema of `class` (`profile` or `experienceevent`) with extra `properties`
    /// and returns its `$id`.
    pub async fn create_schema(&self, title: &str, class: &str, properties: Value) -> String {
        let body = serde_json::json!({
            "title": title,
            "type": "object",
            "meta:class": format!("https://ns.adobe.com/xdm/context/{class}"),
            "properties": properties,
        });
        let (status, schema) = self
            .send_json(Method::POST, "/data/foundation/schemaregistry/tenant/schemas", &body)
            .await;
        assert_eq!(status, 201, "{schema}");
        schema["$id"].as_str().unwrap().to_owned()
    }

    /// A profile-enabled dataset on a new schema of `class` with `properties`; returns its id.
    pub async fn create_ingest_dataset(&self, name: &str, class: &str, properties: Value) -> String {
        let schema_id = self.create_schema(name, class, properties).await;
        let body = serde_json::json!({
            "name": name,
            "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
            "tags": {"unifiedProfile": ["enabled:true"]},
        });
        let (status, created) = self
            .send_json(Method::POST, "/data/foundation/catalog/dataSets", &body)
            .await;
        assert_eq!(status, 201, "{created}");
        dataset_id_of(&created)
    }

    /// A profile-enabled dataset on a new schema of `class` composed from standard field groups
    /// (`profile-personal-details`, `experienceevent-environment-details`, ...) plus `properties`.
    pub async fn create_dataset_with_groups(
        &self,
        title: &str,
        class: &str,
        groups: &[&str],
        properties: Value,
    ) -> String {
        let mut all_of = vec![serde_json::json!({"$ref": format!("https://ns.adobe.com/xdm/context/{class}")})];
        all_of.extend(
            groups
                .iter()
                .map(|g| serde_json::json!({"$ref": format!("https://ns.adobe.com/xdm/context/{g}")})),
        );
        let body = serde_json::json!({"title": title, "type": "object", "allOf": all_of, "properties": properties});
        let (status, schema) = self
            .send_json(Method::POST, "/data/foundation/schemaregistry/tenant/schemas", &body)
            .await;
        assert_eq!(status, 201, "{schema}");
        let body = serde_json::json!({"name": title, "schemaRef": {"id": schema["$id"]}, "tags": {"unifiedProfile": ["enabled:true"]}});
        let (status, created) = self
            .send_json(Method::POST, "/data/foundation/catalog/dataSets", &body)
            .await;
        assert_eq!(status, 201, "{created}");
        dataset_id_of(&created)
    }

    /// Uploads `bytes` as `name` into an open batch.
    pub async fn upload(&self, batch: &str, dataset: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let path = format!("/data/foundation/import/batches/{batch}/datasets/{dataset}/files/{name}");
        let request = self
            .request(Method::PUT, &path)
            .header("content-type", "application/octet-stream")
            .body(bytes);
        into_parts(request.send().await.unwrap()).await
    }

    pub async fn batch_action(&self, batch: &str, action: &str) -> (u16, Value) {
        let path = format!("/data/foundation/import/batches/{batch}?action={action}");
        into_parts(self.request(Method::POST, &path).send().await.unwrap()).await
    }

    /// Polls the Catalog until the batch leaves `loading`/`processing`; returns the batch object.
    pub async fn wait_for_batch(&self, batch: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(&format!("/data/foundation/catalog/batches/{batch}")).await;
            assert_eq!(status, 200, "{body}");
            let object = body[batch].clone();
            let state = object["status"].as_str().unwrap().to_owned();
            if state != "loading" && state != "processing" {
                return object;
            }
            assert!(std::time::Instant::now() < deadline, "batch {batch} still {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ingests JSON-lines `records` into `dataset` in one batch and waits for it; returns the batch.
    pub async fn ingest_json_lines(&self, dataset: &str, records: &[Value]) -> Value {
        let batch = self.create_batch(dataset).await;
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        assert_eq!(
            self.upload(&batch, dataset, "records.json", body.into_bytes()).await.0,
            200
        );
        assert_eq!(self.batch_action(&batch, "COMPLETE").await.0, 200);
        self.wait_for_batch(&batch).await
    }
}

/// The `id` of a created UPS object (merge policy, segment definition).
pub fn id_of(created: &Value) -> String {
    created["id"].as_str().unwrap().to_owned()
}

/// The UPS error shape, and its one error's code and message.
pub fn ups_error(status: u16, body: &Value) -> (String, String) {
    assert_eq!(body["status"], status, "{body}");
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    let error = &body["errors"][status.to_string()][0];
    let code = error["code"].as_str().unwrap().to_owned();
    assert_eq!(body["type"], format!("https://ns.adobe.com/aep/errors/{code}"));
    (code, error["message"].as_str().unwrap().to_owned())
}

pub fn dataset_id_of(created: &Value) -> String {
    created[0]
        .as_str()
        .unwrap()
        .strip_prefix("@/dataSets/")
        .unwrap()
        .to_owned()
}

pub async fn into_parts(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"))
    };
    (status, body)
}

pub fn static_token(token: &str, client_id: &str, org: &str) -> StaticToken {
    StaticToken {
        token: token.to_owned(),
        client_id: client_id.to_owned(),
        org: org.to_owned(),
        sandboxes: None,
    }
}

/// `dossier serve` as a real child process on an ephemeral port, for tests that kill it.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl ServerProcess {
    pub fn spawn(data_dir: &Path) -> Self {
        Self::spawn_with(data_dir, &[], &[])
    }

    /// `dossier serve` with more global `args` (`--lake-url ...`) and `env` added to this
    /// process's environment.
    pub fn spawn_with(data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_dossier"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dossier serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("serve prints its address").unwrap();
            if let Some(rest) = line.strip_prefix("dossier listening on ") {
                break rest.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A caller of this process with `credentials`.
    pub async fn caller(&self, credentials: &Credentials) -> Caller {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/ims/token/v3", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &credentials.client_id),
                ("client_secret", &credentials.secret),
            ])
            .send()
            .await
            .unwrap();
        let token = response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Caller {
            base: self.base.clone(),
            http,
            token,
            credentials: credentials.clone(),
            sandbox: "prod".into(),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an API client on a data dir without a server.
pub fn create_client_in(data_dir: &Path, org: &str) -> Credentials {
    let printed: Value =
        serde_json::from_str(&dossier(data_dir, &["clients", "create", "--org", org, "--json"])).unwrap();
    Credentials {
        client_id: printed["clientId"].as_str().unwrap().to_owned(),
        secret: printed["clientSecret"].as_str().unwrap().to_owned(),
        org: printed["org"].as_str().unwrap().to_owned(),
    }
}

impl Caller {
    /// The row errors of a completed batch: its one `failed` file, one JSON object per line.
    pub async fn failed_rows(&self, batch: &str) -> Vec<Value> {
        let (status, failed) = self
            .get(&format!("/data/foundation/export/batches/{batch}/failed"))
            .await;
        assert_eq!(status, 200, "{failed}");
        let name = failed["data"][0]["name"].as_str().unwrap().to_owned();
        let text = self
            .request(
                Method::GET,
                &format!("/data/foundation/export/batches/{batch}/failed?path={name}"),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The merged profile `namespace:id` belongs to under `policy`, through profile lookup.
    pub async fn looked_up_entity(&self, namespace: &str, id: &str, policy: &str) -> Value {
        let (status, body) = self
            .get(&format!(
                "/data/core/ups/access/entities?schema.name=_xdm.context.profile\
                 &entityIdNS={namespace}&entityId={id}&mergePolicyId={policy}"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        let (_, profile) = body.as_object().unwrap().iter().next().unwrap();
        profile["entity"].clone()
    }

    /// Posts an export job with `body`, polls it until it ends and returns it; it must succeed.
    pub async fn run_export_job(&self, body: &Value) -> Value {
        let (status, job) = self.send_json(Method::POST, "/data/core/ups/export/jobs", body).await;
        assert_eq!(status, 200, "{job}");
        let id = job["id"].as_i64().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (_, job) = self.get(&format!("/data/core/ups/export/jobs/{id}")).await;
            if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap()) {
                assert_eq!(job["status"], "SUCCEEDED", "{job}");
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "export job {id} never ended: {job}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Downloads every file of an export batch through Data Access into `folder`, as a user
    /// would before reading them.
    pub async fn download_batch(&self, batch: &str, folder: &Path) {
        std::fs::create_dir_all(folder).unwrap();
        let (status, listing) = self
            .get(&format!("/data/foundation/export/batches/{batch}/files"))
            .await;
        assert_eq!(status, 200, "{listing}");
        for file in listing["data"].as_array().unwrap() {
            let id = file["dataSetFileId"].as_str().unwrap();
            let (status, described) = self.get(&format!("/data/foundation/export/files/{id}")).await;
            assert_eq!(status, 200, "{described}");
            for part in described["data"].as_array().unwrap() {
                let name = part["name"].as_str().unwrap();
                // Longer than the client's 30 s: on an S3 lake the server's own S3 client gives
                // a stalled request 30 s before it tries again. (CI's one download timeout here
                // was most likely a server bug, since fixed: a pool connection left on a job heartbeat's
                // ended runtime, see `Heartbeat` in dossier-engine's jobs/worker.rs.)
                let response = self
                    .request(Method::GET, &format!("/data/foundation/export/files/{id}?path={name}"))
                    .timeout(Duration::from_secs(150))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let local = folder.join(format!("{id}-{}", name.replace('/', "_")));
                std::fs::write(local, response.bytes().await.unwrap()).unwrap();
            }
        }
    }
}

/// The rows of the Parquet files in `folder`, read with pyarrow as a user would, as JSON: only
/// `columns`, maps as objects, timestamps as epoch milliseconds, nulls kept.
pub fn exported_rows(folder: &Path, columns: &[&str]) -> Vec<Value> {
    const SCRIPT: &str = r#"
import calendar, json, os, sys
import pyarrow as pa, pyarrow.parquet as pq

def plain(value, kind):
    if value is None:
        return None
    if pa.types.is_map(kind):
        return {k: plain(v, kind.item_type) for k, v in value}
    if pa.types.is_struct(kind):
        return {f.name: plain(value[f.name], f.type) for f in kind}
    if pa.types.is_list(kind):
        return [plain(v, kind.value_type) for v in value]
    if pa.types.is_timestamp(kind):
        return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000
    return value

folder, columns = sys.argv[1], sys.argv[2].split(",")
files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
for path in files:
    table = pq.read_table(path)
    for row in table.to_pylist():
        print(json.dumps({c: plain(row.get(c), table.schema.field(c).type) for c in columns if c in table.schema.names}))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(folder)
        .arg(columns.join(","))
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "pyarrow read failed (CI installs it with .ci/run): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
