//! The `dossier` command itself: administration subcommands, settings precedence, and `serve`
//! as a real process that stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

fn dossier_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dossier"))
}

#[test]
fn clients_and_sandboxes_are_administered_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    let created: Value = serde_json::from_str(&dossier(data, &["clients", "create", "--org", ORG, "--json"])).unwrap();
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["clientId", "clientSecret", "org", "sandboxes"]);
    assert_eq!(created["org"], ORG);
    let secret = created["clientSecret"].as_str().unwrap();
    assert!(secret.len() >= 64);

    let stored = std::fs::read(data.join("meta.sqlite")).unwrap();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is never stored in clear"
    );

    // Sandboxes must exist before a client is limited to them.
    let refused = dossier_cmd()
        .arg("--data-dir")
        .arg(data)
        .args(["clients", "create", "--org", ORG, "--sandbox", "dev"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("sandboxes create"),
        "the error says how to fix it"
    );

    dossier(data, &["sandboxes", "create", "--org", ORG, "dev"]);
    let limited: Value = serde_json::from_str(&dossier(
        data,
        &["clients", "create", "--org", ORG, "--sandbox", "dev", "--json"],
    ))
    .unwrap();
    assert_eq!(limited["sandboxes"], serde_json::json!(["dev"]));

    let duplicate = dossier_cmd()
        .arg("--data-dir")
        .arg(data)
        .args(["sandboxes", "create", "--org", ORG, "dev"])
        .output()
        .unwrap();
    assert!(!duplicate.status.success());
    let bad_name = dossier_cmd()
        .arg("--data-dir")
        .arg(data)
        .args(["sandboxes", "create", "--org", ORG, "Dev_1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("lower-case"));

    let listed = dossier(data, &["clients", "list"]);
    assert!(listed.contains(created["clientId"].as_str().unwrap()) && listed.contains("active"));
    dossier(data, &["clients", "revoke", created["clientId"].as_str().unwrap()]);
    let listed: Vec<Value> = serde_json::from_str(&dossier(data, &["clients", "list", "--json"])).unwrap();
    let revoked = listed.iter().find(|c| c["clientId"] == created["clientId"]).unwrap();
    assert!(revoked["revoked"].is_i64());
    assert!(!listed.iter().any(|c| c.get("clientSecret").is_some()));

    let text = dossier(data, &["sandboxes", "list"]);
    assert!(text.contains("dev") && text.contains("prod"));
}

#[test]
fn serve_reads_env_and_config_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-config");
    let config = dir.path().join("dossier.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[[static_tokens]]\ntoken = \"ci-token-0123456789abcdef0123456789\"\nclient_id = \"ci\"\norg = \"{ORG}\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();

    let mut child = dossier_cmd()
        .env("DOSSIER_CONFIG", &config)
        .env("DOSSIER_LISTEN", "127.0.0.1:0")
        .env_remove("DOSSIER_DATA_DIR")
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("dossier listening on ") {
            break rest.to_owned();
        }
    };
    assert!(data.join("meta.sqlite").exists(), "data_dir came from the config file");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{address}/data/foundation/catalog/dataSets"))
            .bearer_auth("ci-token-0123456789abcdef0123456789")
            .header("x-api-key", "ci")
            .header("x-gw-ims-org-id", ORG)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200, "the static token from the config file works");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dossier.toml");
    std::fs::write(&config, "listn = \"127.0.0.1:1\"\n").unwrap();
    let output = dossier_cmd()
        .arg("--config")
        .arg(&config)
        .args(["sandboxes", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listn"));
}

#[tokio::test]
async fn ingest_loads_files_through_the_api_and_reports_bad_rows() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let properties = serde_json::json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}});
    let dataset = caller.create_ingest_dataset("Loyalty", "profile", properties).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("members.json");
    let lines: Vec<String> = (0..3)
        .map(|n| serde_json::json!({"_id": format!("r{n}"), "identityMap": {"CRMID": [{"id": format!("c{n}")}]}, "loyalty": {"points": n}}).to_string())
        .collect();
    std::fs::write(&good, lines.join("\n")).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"_id\": \"x\", \"loyalty\": {\"points\": \"many\"}}\n").unwrap();

    let run = |file: std::path::PathBuf| {
        let mut command = dossier_cmd();
        command
            .args(["ingest", "--dataset", &dataset])
            .env("DOSSIER_URL", &server.base)
            .env("DOSSIER_CLIENT_ID", &caller.credentials.client_id)
            .env("DOSSIER_CLIENT_SECRET", &caller.credentials.secret)
            .env("DOSSIER_ORG", ORG)
            .arg(file);
        command
    };
    let mut command = run(good);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("success") && stdout.contains("3 records"), "{stdout}");

    let mut command = run(bad);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loyalty.points") && stderr.contains("row 1"),
        "{stderr}"
    );
}

#[test]
fn demo_runs_the_tutorial_on_a_generated_population_and_matches_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        dossier_cmd()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["demo", "--profiles", "1500", "--listen", "127.0.0.1:0", "--exit"])
            .output()
            .unwrap()
    };
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SUCCEEDED"), "{stdout}");
    assert_eq!(
        stdout.matches("(as generated)").count(),
        2,
        "both batches hold the rows the generator expects: {stdout}"
    );
    assert!(
        stdout.contains("export TOKEN='") && stdout.contains("curl -s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/console/#/sign-in?clientId="),
        "the console's URL: {stdout}"
    );
    assert!(dir.path().join("demo-export").read_dir().unwrap().count() == 2);
    assert!(
        stdout.contains("Demo: nightly export of what changed") && stdout.contains("\"0 0 2 * * ?\""),
        "the demo leaves a schedule: {stdout}"
    );

    // A second run reuses the population and exports again, and keeps its one schedule.
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("reusing the demo population"));
    assert!(stdout.contains("job 2 SUCCEEDED"), "{stdout}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schedules = runtime.block_on(async {
        let (meta, _) = open_storage(dir.path()).await.unwrap();
        let tenant = dossier_model::tenancy::Tenant {
            org: dossier_model::tenancy::OrgId::parse(ORG).unwrap(),
            sandbox: dossier_model::tenancy::SandboxName::prod(),
        };
        let query = dossier_model::schedule::ScheduleListQuery { start: 0, limit: 10 };
        meta.list_schedules(&tenant, &query).await.unwrap().items
    });
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    assert_eq!(schedules[0].spec.state, dossier_model::schedule::ScheduleState::Active);
    let carried = schedules[0].spec.export_job.as_ref().unwrap();
    assert_eq!(carried["filter"]["fromIngestTimestamp"], "lastRun");
}

#[tokio::test]
async fn export_runs_a_job_and_downloads_its_files() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let crm = caller
        .create_dataset_with_groups("CRM", "profile", &["profile-personal-details"], serde_json::json!({}))
        .await;
    let member = |n: u32, status: &str| {
        serde_json::json!({"_id": format!("r{n}"), "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
            "personalEmail": {"address": format!("c{n}@example.com")},
            "segmentMembership": {"ups": {"vip": {"status": status, "lastQualificationTime": "2024-01-01T00:00:00Z"}}}})
    };
    caller
        .ingest_json_lines(&crm, &[member(1, "realized"), member(2, "exited")])
        .await;
    let target = caller.create_dataset("Profile Data Export").await;
    let out = tempfile::tempdir().unwrap();
    let mut command = dossier_cmd();
    command
        .args([
            "export",
            "--dataset",
            &target,
            "--segment",
            "ups:vip",
            "--fields",
            "personalEmail.address",
            "--out",
        ])
        .arg(out.path())
        .env("DOSSIER_URL", &server.base)
        .env("DOSSIER_CLIENT_ID", &caller.credentials.client_id)
        .env("DOSSIER_CLIENT_SECRET", &caller.credentials.secret)
        .env("DOSSIER_ORG", ORG);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("SUCCEEDED") && stdout.contains("1 profiles"),
        "only the realized member: {stdout}"
    );
    let batches: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(batches.len(), 1);
    let files: Vec<_> = std::fs::read_dir(&batches[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files[0].extension().is_some_and(|e| e == "parquet"));
    let file = std::fs::File::open(&files[0]).unwrap();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 1);
}

/// Runs `dossier` with `args`, storage URLs only from them, and returns (success, stdout, stderr).
fn run_dossier<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String, String) {
    let output = dossier_cmd()
        .env_remove("DOSSIER_METADATA_URL")
        .env_remove("DOSSIER_LAKE_URL")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_keeps_metadata_and_lake_where_their_urls_say() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let meta_file = dir.path().join("elsewhere").join("catalog.sqlite");
    let lake = dir.path().join("lake-volume");
    let data_flag = ["--data-dir".to_owned(), data.display().to_string()];
    let storage_flags = [
        "--metadata-url".to_owned(),
        format!("sqlite://{}", meta_file.display()),
        "--lake-url".to_owned(),
        format!("file://{}", lake.display()),
    ];
    let with = |rest: &[&str]| -> Vec<String> {
        let rest = rest.iter().map(|s| (*s).to_owned());
        data_flag.iter().chain(&storage_flags).cloned().chain(rest).collect()
    };

    let (ok, stdout, stderr) = run_dossier(&with(&["clients", "create", "--org", ORG, "--json"]));
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let credentials = Credentials {
        client_id: created["clientId"].as_str().unwrap().to_owned(),
        secret: created["clientSecret"].as_str().unwrap().to_owned(),
        org: ORG.to_owned(),
    };

    let mut child = dossier_cmd()
        .env_remove("DOSSIER_METADATA_URL")
        .env_remove("DOSSIER_LAKE_URL")
        .args(with(&["serve", "--listen", "127.0.0.1:0"]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("dossier listening on ") {
            break rest.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let server = ServerProcess { child, base };
    let caller = server.caller(&credentials).await;
    let properties = serde_json::json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}});
    let dataset = caller.create_ingest_dataset("Loyalty", "profile", properties).await;
    let record = serde_json::json!({"_id": "r1", "identityMap": {"CRMID": [{"id": "c1"}]}, "loyalty": {"points": 1}});
    let batch = caller.ingest_json_lines(&dataset, &[record]).await;
    assert_eq!(batch["status"], "success", "{batch}");
    server.kill();

    assert!(meta_file.exists(), "the metadata store is at its URL");
    let lake_files = files_under(&lake);
    assert!(
        lake_files.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")),
        "the batch's files are in the lake at its URL: {lake_files:?}"
    );
    // The data dir keeps only this node's name (the job queue's name for it).
    let in_data_dir = files_under(&data);
    assert!(
        in_data_dir == [data.join("node-id")],
        "nothing of metadata or lake under the data dir: {in_data_dir:?}"
    );

    // The client lives in the store the URL names, not in the data dir's default one.
    let (ok, stdout, stderr) = run_dossier(&with(&["clients", "list", "--json"]));
    assert!(ok && stdout.contains(&credentials.client_id), "{stdout}{stderr}");
    let (ok, stdout, stderr) = run_dossier(&[&data_flag[0], &data_flag[1], "clients", "list", "--json"]);
    assert!(ok && !stdout.contains(&credentials.client_id), "{stdout}{stderr}");
}

#[test]
fn an_unsupported_storage_url_is_refused_naming_the_setting_and_the_schemes() {
    let (ok, _, stderr) = run_dossier(&[
        "--metadata-url",
        "mysql://dossier:s3cret@db/dossier",
        "sandboxes",
        "list",
    ]);
    assert!(!ok);
    for expected in [
        "metadata_url",
        "mysql://dossier:***@db/dossier",
        "sqlite://<path>",
        "postgres://<user>",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing from: {stderr}");
    }
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// `dossier <global> serve --listen 127.0.0.1:0` with `env` added, storage URLs only from
/// `global`; returns the server once it listens, and what it logged until then.
fn serve_with(global: &[String], env: &[(&str, String)]) -> (ServerProcess, Vec<String>) {
    let mut child = dossier_cmd()
        .env_remove("DOSSIER_METADATA_URL")
        .env_remove("DOSSIER_LAKE_URL")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(key, value)| (*key, value)))
        .args(global)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logged = Vec::new();
    let base = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("dossier listening on ") {
            break rest.to_owned();
        }
        logged.push(line);
    };
    std::thread::spawn(move || lines.for_each(drop));
    (ServerProcess { child, base }, logged)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_one_postgres_store_and_a_shared_disk_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = format!("file://{}", dir.path().join("lake").display());
    two_servers_on_one_postgres_store(dir.path(), &lake, &[]).await;
}

/// The production setup of docs/deployment.md: PostgreSQL metadata, an S3 lake.
#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_one_postgres_store_and_an_s3_lake() {
    let Some(bucket) = tokio::task::spawn_blocking(dossier_testkit::s3::bucket).await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    two_servers_on_one_postgres_store(dir.path(), &bucket.lake_url("lake"), &bucket.env()).await;
}

/// Two `serve` processes (data dirs of their own under `dir`) on one fresh PostgreSQL database
/// and the lake at `lake`: a client made by the command line, a token from one node used on the
/// other, data ingested on one exported by a job posted to the other, both stopped gracefully.
async fn two_servers_on_one_postgres_store(dir: &std::path::Path, lake: &str, env: &[(&str, String)]) {
    let Some(database) = tokio::task::spawn_blocking(dossier_testkit::postgres::database)
        .await
        .unwrap()
    else {
        return;
    };
    // The private cluster trusts loopback, so the password is never checked: it is here to be
    // hidden from every log line and message.
    let url = database
        .url
        .replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1);
    let node = |name: &str| -> Vec<String> {
        let data = dir.join(name).display().to_string();
        ["--data-dir", &data, "--metadata-url", &url, "--lake-url", lake]
            .map(str::to_owned)
            .to_vec()
    };

    let mut create = node("admin");
    create.extend(["clients", "create", "--org", ORG, "--json"].map(str::to_owned));
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run_dossier(&create)).await.unwrap();
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let credentials = Credentials {
        client_id: created["clientId"].as_str().unwrap().to_owned(),
        secret: created["clientSecret"].as_str().unwrap().to_owned(),
        org: ORG.to_owned(),
    };

    let (a, logged_a) = serve_with(&node("node-a"), env);
    let (b, logged_b) = serve_with(&node("node-b"), env);
    for line in logged_a.iter().chain(&logged_b) {
        assert!(!line.contains("s3cret"), "the password is never logged: {line}");
    }
    assert!(
        logged_a.iter().any(|l| l.contains("postgres://postgres:***@127.0.0.1")),
        "serve says which store it opened: {logged_a:?}"
    );

    // A token from node A, for the client the command line created, works on node B.
    let on_a = a.caller(&credentials).await;
    let dataset = on_a.create_dataset("Shared").await;
    let on_b = Caller {
        base: b.base.clone(),
        ..on_a.clone()
    };
    let (status, body) = on_b.get(&format!("/data/foundation/catalog/dataSets/{dataset}")).await;
    assert_eq!(status, 200, "node B knows node A's token and dataset: {body}");
    assert_eq!(body[&dataset]["name"], "Shared", "{body}");

    // Data ingested through node B is exported by a job posted to node A, run by whichever
    // node's worker claims it from the shared queue.
    let properties = serde_json::json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}});
    let crm = on_b.create_ingest_dataset("Loyalty", "profile", properties).await;
    let record = serde_json::json!({"_id": "r1", "identityMap": {"CRMID": [{"id": "c1", "primary": true}]}, "loyalty": {"points": 7}});
    let batch = on_b.ingest_json_lines(&crm, &[record]).await;
    assert_eq!(batch["status"], "success", "{batch}");
    let target = on_a.create_dataset("Profile Data Export").await;
    let body = serde_json::json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"}});
    let job = on_a.run_export_job(&body).await;
    assert_eq!(job["metrics"]["totalExportedProfileCounter"], 1, "{job}");
    let (status, seen) = on_b.get(&format!("/data/core/ups/export/jobs/{}", job["id"])).await;
    assert_eq!((status, &seen["status"]), (200, &Value::from("SUCCEEDED")), "{seen}");

    // Both stop gracefully: their workers' connections go back or away without an error.
    for mut server in [a, b] {
        Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
            .await
            .unwrap();
        assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    }

    for name in ["admin", "node-a", "node-b"] {
        assert!(
            !dir.join(name).join("meta.sqlite").exists(),
            "no SQLite store beside the PostgreSQL one"
        );
    }
}

/// Every file below `dir` (none when it does not exist).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .flat_map(|path| if path.is_dir() { files_under(&path) } else { vec![path] })
        .collect()
}

/// `dossier serve` with `--export-engine`: the cluster needs a scheduler, and a binary that has
/// the cluster engine; each refusal names the setting and the fix, before anything listens.
#[test]
fn serve_refuses_a_cluster_engine_it_cannot_use_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |args: &[&str]| {
        let output = dossier_cmd()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("DOSSIER_CLUSTER_URL")
            .output()
            .unwrap();
        assert!(!output.status.success(), "serve {args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let no_url = serve(&["--export-engine", "cluster"]);
    assert!(no_url.contains("needs cluster_url"), "{no_url}");
    let bad_engine = serve(&["--export-engine", "spark"]);
    assert!(bad_engine.contains("spark"), "{bad_engine}");
    // Port 1 on loopback: nothing listens there.
    let unreachable = serve(&["--export-engine", "cluster", "--cluster-url", "df://127.0.0.1:1"]);
    if cfg!(feature = "cluster") {
        assert!(unreachable.contains("df://127.0.0.1:1"), "{unreachable}");
    } else {
        assert!(
            unreachable.contains("built without the cluster engine"),
            "{unreachable}"
        );
        assert!(unreachable.contains("--features cluster"), "{unreachable}");
    }
}
