//! `dossier serve`.

use std::net::SocketAddr;

use dossier_api::ServerConfig;

use crate::config::Settings;

pub async fn run(listen: Option<SocketAddr>, settings: Settings) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(settings.data_dir, listen.unwrap_or(settings.listen));
    config.token_ttl = settings.token_ttl;
    config.static_tokens = settings.static_tokens;
    config.limits = settings.limits;
    let server = dossier_api::start(config).await?;
    eprintln!("dossier listening on http://{}", server.local_addr());
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
