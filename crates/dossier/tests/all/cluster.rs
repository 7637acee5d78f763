//! The Ballista cluster as the `dossier` binary runs it: one `dossier cluster scheduler` and two
//! `dossier cluster executor` processes on loopback ports (`dossier-testkit`), over a real lake
//! folder with Parquet files the test writes. Queries with shuffles and Dossier's own function
//! return the rows the same plan returns on one process; an executor killed -9 mid-query costs
//! retries, not rows; a cluster URL where nothing listens fails fast, naming the URL.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use dossier_cluster::datafusion::arrow::util::pretty::pretty_format_batches;
use dossier_cluster::datafusion::prelude::{ParquetReadOptions, SessionContext};
use dossier_cluster::node::{ClusterError, connect};
use dossier_cluster::session::{LAKE_URL, local_context};
use dossier_storage::Lake;
use dossier_testkit::ballista::BallistaCluster;

use crate::support::ServerProcess;

/// Spend and events per tier: a GROUP BY on Dossier's identity hash (a hash shuffle), a JOIN
/// on it, and a second GROUP BY.
const SPEND_BY_TIER: &str = "
    WITH spend AS (
        SELECT dossier_identity_hash(namespace, id) AS person, SUM(amount) AS total, COUNT(*) AS events
        FROM events GROUP BY dossier_identity_hash(namespace, id)
    )
    SELECT p.tier, COUNT(*) AS people, SUM(s.total) AS total, SUM(s.events) AS events
    FROM spend s JOIN profiles p ON s.person = dossier_identity_hash(p.namespace, p.id)
    GROUP BY p.tier ORDER BY p.tier";

/// A lake folder with `events` (`files` Parquet files of `rows` rows each, over `people`
/// people) and `profiles` (each person's tier, in two files).
struct TestLake {
    dir: tempfile::TempDir,
    lake: Lake,
}

impl TestLake {
    fn new(files: usize, rows: usize, people: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(&dir.path().join("lake")).unwrap();
        let root = dir.path().join("lake/cluster-test");
        for file in 0..files {
            let first = file * rows;
            write_events(
                &root.join(format!("events/part-{file}.parquet")),
                first..first + rows,
                people,
            );
        }
        write_profiles(&root.join("profiles/part-0.parquet"), 0..people / 2);
        write_profiles(&root.join("profiles/part-1.parquet"), people / 2..people);
        Self { dir, lake }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("lake").display())
    }

    /// The lake's tables, registered in `ctx` by their lake URLs.
    async fn register(&self, ctx: &SessionContext) {
        for table in ["events", "profiles"] {
            ctx.register_parquet(
                table,
                format!("{LAKE_URL}cluster-test/{table}/"),
                ParquetReadOptions::default(),
            )
            .await
            .unwrap();
        }
    }

    /// `sql`'s rows on this process alone, as text.
    async fn local_rows(&self, sql: &str) -> String {
        let ctx = local_context(&self.lake).unwrap();
        self.register(&ctx).await;
        rows(&ctx, sql).await
    }
}

fn person(n: usize) -> (&'static str, String) {
    let namespace = if n.is_multiple_of(3) { "ECID" } else { "Email" };
    (namespace, format!("person-{n}"))
}

fn write_events(path: &Path, rows: std::ops::Range<usize>, people: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let people_of_rows: Vec<_> = rows.clone().map(|row| person(row * 7919 % people)).collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(people_of_rows.iter().map(|p| p.0))),
            Arc::new(StringArray::from_iter_values(
                people_of_rows.iter().map(|p| p.1.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.map(|row| (row % 101) as i64))),
        ],
    )
    .unwrap();
    write_parquet(path, &batch);
}

fn write_profiles(path: &Path, people: std::ops::Range<usize>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("tier", DataType::Utf8, false),
    ]));
    let identities: Vec<_> = people.clone().map(person).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(identities.iter().map(|p| p.0))),
            Arc::new(StringArray::from_iter_values(identities.iter().map(|p| p.1.as_str()))),
            Arc::new(StringArray::from_iter_values(people.map(|n| format!("tier-{}", n % 5)))),
        ],
    )
    .unwrap();
    write_parquet(path, &batch);
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

async fn rows(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// A cluster of one scheduler and `executors` executors over `lake`, started off the runtime
/// (it waits for the processes).
async fn start_cluster(lake: &TestLake, executors: usize) -> BallistaCluster {
    let url = lake.url();
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        BallistaCluster::start(Path::new(env!("CARGO_BIN_EXE_dossier")), &url, executors)
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| panic!("{error:#}"));
    eprintln!("cluster of {executors} executors ready in {:?}", started.elapsed());
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_query_with_a_dossier_function_returns_the_local_rows() {
    let lake = TestLake::new(4, 5_000, 3_000);
    let expected = lake.local_rows(SPEND_BY_TIER).await;
    assert!(expected.contains("tier-4"), "{expected}");
    let cluster = start_cluster(&lake, 2).await;
    let ctx = connect(&cluster.url(), &lake.lake).await.unwrap();
    lake.register(&ctx).await;
    let started = Instant::now();
    let on_cluster = rows(&ctx, SPEND_BY_TIER).await;
    eprintln!("query on the cluster: {:?}", started.elapsed());
    assert_eq!(on_cluster, expected, "logs:\n{}", cluster.logs());
    // Both executors took part. (Their log says so: a finished job's shuffle files may already
    // be gone from their work dirs.)
    for executor in 0..2 {
        let log = std::fs::read_to_string(cluster.dir().join(format!("executor-{executor}.log"))).unwrap();
        assert!(
            log.contains("Execute task"),
            "executor {executor} ran no task; logs:\n{}",
            cluster.logs()
        );
    }
    // And a server set to this cluster connects to it and starts.
    let env = [
        ("DOSSIER_EXPORT_ENGINE", "cluster".to_owned()),
        ("DOSSIER_CLUSTER_URL", cluster.url()),
    ];
    let server = ServerProcess::spawn_with(&lake.dir.path().join("server"), &["--lake-url", &lake.url()], &env);
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_query_costs_retries_not_rows() {
    let lake = TestLake::new(8, 250_000, 400_000);
    let started = Instant::now();
    let expected = lake.local_rows(SPEND_BY_TIER).await;
    eprintln!("query on one process: {:?}", started.elapsed());
    let mut cluster = start_cluster(&lake, 2).await;
    let ctx = connect(&cluster.url(), &lake.lake).await.unwrap();
    lake.register(&ctx).await;
    let started = Instant::now();
    let query = tokio::spawn(async move { rows(&ctx, SPEND_BY_TIER).await });
    // Killed once it holds work: shuffle files the next stage needs.
    let work_dir = cluster.dir().join("executor-0");
    while !has_files(&work_dir) {
        assert!(!query.is_finished(), "the query ended before executor 0 ran a task");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!query.is_finished(), "the query must still run when the executor dies");
    cluster.kill_executor(0).unwrap();
    let killed = Instant::now();
    eprintln!("executor 0 killed {:?} into the query", started.elapsed());
    let cluster = Arc::new(cluster);
    let watcher = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            while cluster.is_registered(0).unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                if killed.elapsed() > Duration::from_secs(60) {
                    return None;
                }
            }
            Some(killed.elapsed())
        })
    };
    let on_cluster = tokio::time::timeout(Duration::from_secs(120), query)
        .await
        .unwrap_or_else(|_| panic!("the query did not end within 120 s; logs:\n{}", cluster.logs()))
        .unwrap();
    eprintln!(
        "query on the cluster: {:?} ({:?} after the kill)",
        started.elapsed(),
        killed.elapsed()
    );
    assert_eq!(on_cluster, expected, "logs:\n{}", cluster.logs());
    let noticed = watcher.await.unwrap();
    let noticed = noticed.unwrap_or_else(|| {
        panic!(
            "executor 0 still registered 60 s after its death; logs:\n{}",
            cluster.logs()
        )
    });
    eprintln!("executor 0's loss noticed by the scheduler {noticed:?} after the kill");
}

fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let path = entry.path();
            if path.is_dir() { has_files(&path) } else { true }
        })
    })
}

/// A loopback port where nothing listens (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn connecting_where_no_scheduler_listens_fails_fast_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::local(dir.path()).unwrap();
    let url = format!("df://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let Err(error) = connect(&url, &lake).await else {
        panic!("connected to {url}")
    };
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(matches!(error, ClusterError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&url) && message.contains("dossier cluster scheduler --listen"),
        "{message}"
    );
    let Err(bad) = connect("http://127.0.0.1:50050", &lake).await else {
        panic!("connected to an http:// URL")
    };
    assert!(matches!(bad, ClusterError::BadUrl { .. }), "{bad:?}");
    let unknown = format!("{url}?datafusion.execution.target_partitionz=4");
    let Err(bad) = connect(&unknown, &lake).await else {
        panic!("connected with an unknown setting")
    };
    let message = bad.to_string();
    assert!(
        matches!(bad, ClusterError::BadSetting { .. }) && message.contains("target_partitionz = 4"),
        "{message}"
    );
}

/// Runs `dossier <args>` in a fresh data dir; its exit code and stderr.
fn run_dossier(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dossier"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_executor_refuses_bad_flags_with_the_fix() {
    let executor = |flags: &[&str]| {
        let mut args = vec!["cluster", "executor"];
        args.extend(flags);
        run_dossier(&args)
    };
    let (code, stderr) = executor(&["--scheduler", "scheduler", "--listen", "127.0.0.1:50051"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--scheduler") && stderr.contains("HOST:PORT"),
        "{stderr}"
    );
    let (code, stderr) = executor(&["--scheduler", "127.0.0.1:50050", "--listen", "executor:1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    let (code, stderr) = executor(&[
        "--scheduler",
        "127.0.0.1:50050",
        "--listen",
        "127.0.0.1:50051",
        "--concurrent-tasks",
        "0",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--concurrent-tasks"), "{stderr}");
    let (code, stderr) = executor(&["--scheduler", "127.0.0.1:50050", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("fixed port"), "{stderr}");
    let (code, stderr) = executor(&["--listen", "127.0.0.1:50051"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--scheduler"), "{stderr}");
}

#[test]
fn an_executor_whose_scheduler_never_answers_gives_up_naming_it() {
    let scheduler = format!("127.0.0.1:{}", closed_port());
    let listen = format!("127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let (code, stderr) = run_dossier(&["cluster", "executor", "--scheduler", &scheduler, "--listen", &listen]);
    let waited = started.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--scheduler {scheduler}: no scheduler answered")),
        "{stderr}"
    );
    assert!(waited < Duration::from_secs(30), "{waited:?}");
}

#[test]
fn serve_on_an_unreachable_cluster_refuses_to_start_naming_the_url() {
    let url = format!("df://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let (code, stderr) = run_dossier(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--export-engine",
        "cluster",
        "--cluster-url",
        &url,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&url) && stderr.contains("no Ballista scheduler"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}
