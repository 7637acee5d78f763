//! `dossier serve`.

use std::net::SocketAddr;

use dossier_api::ServerConfig;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{ConnectionArgs, Settings, serving_options};

pub async fn run(listen: Option<SocketAddr>, flags: ConnectionArgs, settings: Settings) -> anyhow::Result<()> {
    let options = serving_options(&settings, listen, flags)?;
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
    let server = dossier_api::start(config, storage).await?;
    eprintln!("dossier listening on http://{}", server.local_addr());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}
