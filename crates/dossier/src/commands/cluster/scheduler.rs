//! `dossier cluster scheduler --listen HOST:PORT`.

use std::net::SocketAddr;

use dossier_cluster::node::scheduler::Scheduler;

use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// Address of the scheduler's gRPC service and REST API (/api/executors, /api/jobs): executors take it as --scheduler, servers as --cluster-url df://HOST:PORT
    #[arg(long, default_value = "127.0.0.1:50050")]
    listen: SocketAddr,
}

pub async fn run(args: SchedulerArgs, settings: &Settings) -> anyhow::Result<()> {
    // The scheduler plans jobs, and planning lists the lake's files.
    let lake = settings.storage.open_lake().await?;
    let scheduler = Scheduler::bind(args.listen, &lake).await?;
    // Printed once the port is bound: executors and servers may connect from now on.
    eprintln!("dossier cluster scheduler listening on df://{}", scheduler.address());
    tokio::select! {
        served = scheduler.serve() => served?,
        signal = super::terminated() => signal?,
    }
    Ok(())
}
