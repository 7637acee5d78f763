//! Starting and stopping the HTTP server over storage the caller opened.
//!
//! Which backends the storage is (SQLite, a local folder, later PostgreSQL or S3) is decided by
//! the binary's storage resolver; this crate only uses them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use dossier_engine::export::ExportSettings;
use dossier_engine::ingest::Ingestion;
use dossier_engine::jobs::{
    EngineExporter, Exporter, JobQueue, JobWorkers, Orphans, SCHEDULER_POLL, Scheduler, WorkerSettings,
    recover_orphaned_jobs,
};
use dossier_engine::metrics::EngineMetrics;
use dossier_model::catalog::BatchStatus;
use dossier_model::options::Options;
use dossier_model::tenancy::OrgId;
use dossier_storage::{Lake, MetaStore};

use crate::auth::{StaticToken, TokenService};
use crate::listener::{self, ConnectionSettings};
use crate::metrics::ServerMetrics;
use crate::routes;
use crate::state::{AppState, Limits};

/// Everything `dossier serve` needs to run: the process's options (this crate reads the
/// listener, token, API, export and worker ones) and the static tokens of the config file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `data_dir` is local scratch space of this process (export spills); metadata and the lake
    /// live wherever the [`Storage`] given to [`start`] was opened.
    pub options: Options,
    pub static_tokens: Vec<StaticToken>,
}

impl ServerConfig {
    /// The default options, serving from `data_dir` on `listen`.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            options: Options {
                data_dir: data_dir.into(),
                listen,
                ..Options::default()
            },
            static_tokens: Vec::new(),
        }
    }
}

/// The opened storage a server runs on: the metadata store and the lake.
#[derive(Debug, Clone)]
pub struct Storage {
    pub meta: MetaStore,
    pub lake: Lake,
}

/// A server accepting requests until [`RunningServer::shutdown`].
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    export_workers: JobWorkers,
    /// The watch for ingestions whose node died, stopped with the server.
    ingest_leases: JoinHandle<()>,
    /// Starts the jobs of due schedules; stopped before the workers.
    scheduler: Scheduler,
    meta: MetaStore,
}

/// How long a stop waits for running exports to notice and record that they were stopped.
const EXPORT_STOP_GRACE: Duration = Duration::from_secs(10);

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in flight finish, stops the job workers
    /// (a running job's files are removed and it goes back on the queue), and closes storage.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task panicked")??;
        self.ingest_leases.abort();
        self.scheduler.shutdown().await;
        self.export_workers.shutdown(EXPORT_STOP_GRACE).await;
        self.meta.close().await;
        Ok(())
    }
}

/// Recovers from any crash, binds the listener and starts serving over `storage`, which the
/// server owns from now on: [`RunningServer::shutdown`] closes it. Jobs run on the engine's
/// own pipelines ([`EngineExporter`]).
pub async fn start(config: ServerConfig, storage: Storage) -> anyhow::Result<RunningServer> {
    start_with(config, storage, |engine| engine).await
}

/// [`start`], with the jobs run by the exporter `exporter` makes from the engine's: how the
/// binary puts another engine (the Ballista cluster, `export_engine = "cluster"`) behind the
/// same queue, without this crate knowing it.
pub async fn start_with<E: Exporter>(
    config: ServerConfig,
    storage: Storage,
    exporter: impl FnOnce(EngineExporter) -> E,
) -> anyhow::Result<RunningServer> {
    let Storage { meta, lake } = storage;
    // Uploads of batches still open, and of batches whose COMPLETE a crash interrupted, are kept:
    // the first wait for more files, the second are converted again below.
    let open: std::collections::HashSet<String> = meta
        .batches_in_status(&[BatchStatus::Loading, BatchStatus::Processing])
        .await?
        .into_iter()
        .filter(|b| b.is_ingestion())
        .map(|b| b.id.to_string())
        .collect();
    // A temp file another node's upload still writes to stays fresh; one a dead node left
    // goes once a lease has passed without a write to it.
    let stale_before = std::time::SystemTime::now() - Duration::from_secs(config.options.job_lease_secs);
    let swept = lake.sweep_staging(|batch| open.contains(batch), stale_before).await?;
    if swept > 0 {
        tracing::warn!(files = swept, "removed staged files of batches that never committed");
    }
    for token in &config.static_tokens {
        meta.ensure_org(&OrgId::parse(&token.org)?).await?;
    }
    let signing_key = meta.token_signing_key().await?;
    let token_ttl = Duration::from_secs(config.options.token_ttl_secs);
    let tokens = Arc::new(TokenService::new(&signing_key, token_ttl, &config.static_tokens)?);
    let workers = WorkerSettings {
        node: node_name(&config.options)?,
        ..WorkerSettings::from(&config.options)
    };
    // One registry per server: its engine counts into it from here on.
    let engine_metrics = EngineMetrics::default();
    let metrics = ServerMetrics::new(engine_metrics.clone());
    let ingestion = Ingestion::new(meta.clone(), lake.clone(), workers.clone()).with_metrics(engine_metrics.clone());
    let resumed = ingestion.resume_orphaned(Orphans::AtStartup).await?;
    if resumed > 0 {
        tracing::warn!(batches = resumed, "resumed ingestions whose node stopped");
    }
    let recovered = recover_orphaned_jobs(&meta, &lake, &workers, Orphans::AtStartup).await?;
    if recovered > 0 {
        tracing::warn!(
            jobs = recovered,
            node = %workers.node,
            "took over export and segment jobs whose node stopped (this one's last run, or an expired lease)"
        );
    }
    let jobs = JobQueue::new(meta.clone()).with_metrics(engine_metrics);
    let spill_dir = config.options.data_dir.join("spill");
    // Spills of exports a crash interrupted: no export runs yet, so they are stale. The graph
    // versions kept for exports stay.
    if let Err(error) = dossier_engine::profiles::build::clear_stale_spills(&spill_dir) {
        tracing::warn!(%error, path = %spill_dir.display(), "could not remove old export spills");
    }
    let engine = engine_exporter(&meta, &lake, &config.options, spill_dir);
    let export_workers = JobWorkers::start(jobs.clone(), lake.clone(), Arc::new(exporter(engine)), workers);
    ingestion.spawn_graph_recovery();
    let ingest_leases = ingestion.spawn_lease_watch();
    let state = AppState {
        meta: meta.clone(),
        lake,
        tokens,
        ingestion,
        jobs,
        limits: Limits::from(&config.options),
        metrics,
    };
    let scheduler = Scheduler::start(
        meta.clone(),
        Arc::new(routes::ApiScheduleRunner(state.clone())),
        SCHEDULER_POLL,
    );

    let router = routes::router(state);
    // Trailing slashes are trimmed before routing, so `/export/jobs/` and `/export/jobs` are one route.
    let app = NormalizePathLayer::trim_trailing_slash().layer(router);

    let listen = config.options.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let stop_when = async {
        let _ = stopped.await;
    };
    let connections = ConnectionSettings::from(&config.options);
    let task = tokio::spawn(listener::serve(listener, app, connections, stop_when));
    tracing::info!(%local_addr, data_dir = %config.options.data_dir.display(), "dossier is serving");
    Ok(RunningServer {
        local_addr,
        stop,
        task,
        export_workers,
        ingest_leases,
        scheduler,
        meta,
    })
}

fn engine_exporter(meta: &MetaStore, lake: &Lake, options: &Options, spill_dir: std::path::PathBuf) -> EngineExporter {
    EngineExporter {
        meta: meta.clone(),
        lake: lake.clone(),
        settings: ExportSettings {
            spill_dir: Some(spill_dir),
            ..ExportSettings::from(options)
        },
        tables: Default::default(),
    }
}

/// This node's name in the job queue: `node_name`, or the one kept in `<data dir>/node-id`
/// (made once, `node-<8 hex>`). Nodes sharing a metadata store each have a data dir of their
/// own, so the name is theirs alone, and a restart keeps it: a start takes over at once the
/// jobs its previous run left, instead of waiting for their leases to expire.
fn node_name(options: &Options) -> anyhow::Result<String> {
    if let Some(name) = &options.node_name {
        anyhow::ensure!(
            !name.is_empty() && !name.contains('/'),
            "node_name = {name:?}: a node's name must be non-empty and without '/'; choose another"
        );
        return Ok(name.clone());
    }
    let path = options.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => return Ok(name.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read the node name in {}", path.display())),
    }
    let name = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    std::fs::create_dir_all(&options.data_dir)
        .and_then(|()| std::fs::write(&path, format!("{name}\n")))
        .with_context(|| format!("cannot keep the node name in {}", path.display()))?;
    Ok(name)
}
