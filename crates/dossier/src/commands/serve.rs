//! `dossier serve`.

use std::net::SocketAddr;

use dossier_api::{RunningServer, ServerConfig, Storage};
use dossier_model::options::ExportEngine;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{ConnectionArgs, EngineArgs, Settings, serving_options};

pub async fn run(
    listen: Option<SocketAddr>,
    flags: ConnectionArgs,
    engine: EngineArgs,
    settings: Settings,
) -> anyhow::Result<()> {
    let mut options = serving_options(&settings, listen, flags)?;
    engine.apply(&mut options)?;
    let storage = settings.storage.open().await?;
    tracing::info!(
        metadata = %settings.storage.metadata.url(),
        lake = %settings.storage.lake.url(),
        "storage opened"
    );
    let config = ServerConfig {
        options,
        static_tokens: settings.static_tokens,
    };
    // The handler is installed before the server announces itself: a SIGTERM sent as soon as
    // "listening" is printed must shut down gracefully, not kill the process.
    let mut terminate = signal(SignalKind::terminate())?;
    let server = start(config, storage).await?;
    eprintln!("dossier listening on http://{}", server.local_addr());
    eprintln!("the web console: http://{}/console/", server.local_addr());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the server with its jobs on the engine `export_engine` names.
pub async fn start(config: ServerConfig, storage: Storage) -> anyhow::Result<RunningServer> {
    match config.options.export_engine {
        ExportEngine::Native => dossier_api::start(config, storage).await,
        ExportEngine::Cluster => start_on_cluster(config, storage).await,
    }
}

/// Connects to the cluster first: a server whose jobs would all fail on an unreachable cluster
/// refuses to start, naming the URL.
#[cfg(feature = "cluster")]
async fn start_on_cluster(config: ServerConfig, storage: Storage) -> anyhow::Result<RunningServer> {
    let Some(url) = config.options.cluster_url.clone() else {
        anyhow::bail!(
            "export_engine = \"cluster\" needs cluster_url (--cluster-url, DOSSIER_CLUSTER_URL) = df://HOST:PORT"
        );
    };
    let ctx = dossier_cluster::node::connect(&url, &storage.lake).await?;
    tracing::info!(cluster = %url, "connected to the cluster");
    dossier_api::start_with(config, storage, move |engine| {
        dossier_cluster::export::ClusterExporter::new(engine, ctx)
    })
    .await
}

#[cfg(not(feature = "cluster"))]
async fn start_on_cluster(_config: ServerConfig, _storage: Storage) -> anyhow::Result<RunningServer> {
    anyhow::bail!(
        "export_engine = \"cluster\": this dossier binary was built without the cluster engine; build it with \
         `cargo build --release -p dossier --features cluster`, or use export_engine = \"native\""
    )
}
