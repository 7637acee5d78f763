//! `dossier cluster`: the processes of an Apache DataFusion Ballista cluster, run by the
//! `dossier` binary itself so that nothing else needs installing. Each reads the lake the global
//! `--lake-url` (or `lake_url`, or the data dir) names, with the AWS variables for S3, as
//! `serve` opens it. A new subcommand is a module here, a variant of [`ClusterCommand`] and its
//! arm in [`run`].

mod executor;
mod rebuild_graph;
mod scheduler;

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start Ballista's scheduler (gRPC and REST API on one port); servers connect to it with
    /// --export-engine cluster --cluster-url df://HOST:PORT.
    Scheduler(scheduler::SchedulerArgs),
    /// Start a Ballista executor that reads the lake (--lake-url) and runs the scheduler's tasks.
    Executor(executor::ExecutorArgs),
    /// Rebuild a sandbox's identity graph as a distributed connected-components job on the
    /// cluster (--cluster-url), writing the version the fold would write.
    RebuildGraph(rebuild_graph::RebuildGraphArgs),
}

pub async fn run(command: ClusterCommand, settings: Settings) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Scheduler(args) => scheduler::run(args, &settings).await,
        ClusterCommand::Executor(args) => executor::run(args, &settings).await,
        ClusterCommand::RebuildGraph(args) => rebuild_graph::run(args, &settings).await,
    }
}

/// Resolves once SIGTERM or Ctrl-C arrives.
async fn terminated() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    Ok(())
}
