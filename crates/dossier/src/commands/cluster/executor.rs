//! `dossier cluster executor --scheduler HOST:PORT --listen HOST:PORT ...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dossier_cluster::node::executor::{self, ExecutorSettings, SchedulerAddress};

use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler to register with: HOST:PORT, its --listen
    #[arg(long)]
    scheduler: SchedulerAddress,
    /// Where this executor serves its shuffle files (Arrow Flight), reached by the other executors and the servers: HOST:PORT, a fixed port
    #[arg(long)]
    listen: SocketAddr,
    /// Port of the gRPC service the scheduler sends tasks to [default: the --listen port + 1]
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Folder of shuffle files and spills, one per executor [default: <data dir>/executor-<--listen port>]
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Tasks run at once [default: the machine's cores]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    concurrent_tasks: Option<u16>,
    /// Bytes of memory the running tasks may hold together before they spill to the work dir [default: 70% of the machine's or container's memory]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    memory_limit: Option<u64>,
}

impl ExecutorArgs {
    fn settings(self, data_dir: &Path) -> anyhow::Result<ExecutorSettings> {
        let grpc_port = match self.grpc_port {
            Some(port) => port,
            None => self
                .listen
                .port()
                .checked_add(1)
                .context("--listen uses port 65535: give the gRPC service one with --grpc-port")?,
        };
        Ok(ExecutorSettings {
            scheduler: self.scheduler,
            listen: self.listen,
            grpc_port,
            work_dir: self
                .work_dir
                .unwrap_or_else(|| data_dir.join(format!("executor-{}", self.listen.port()))),
            concurrent_tasks: self.concurrent_tasks.map_or(0, usize::from),
            memory_limit: self.memory_limit,
        })
    }
}

pub async fn run(args: ExecutorArgs, settings: &Settings) -> anyhow::Result<()> {
    let executor = args.settings(&settings.options.data_dir)?;
    executor.check()?;
    let lake = settings.storage.open_lake().await?;
    eprintln!(
        "dossier cluster executor on {} (tasks on port {}), scheduler df://{}, lake {}",
        executor.listen,
        executor.grpc_port,
        executor.scheduler,
        settings.storage.lake.url()
    );
    // Ballista's executor handles SIGTERM and Ctrl-C itself: it tells the scheduler it stops.
    executor::run(executor, &lake).await?;
    Ok(())
}
