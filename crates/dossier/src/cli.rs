//! Flags and subcommands, and running the one asked for. The top of the binary: it knows every
//! command; commands and settings know nothing of it.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

use crate::commands;
use crate::config::{ConnectionArgs, EngineArgs, GlobalArgs, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "dossier",
    version,
    about = "A self-hosted customer profile store with AEP's profile export API"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a demo population, load it, run Adobe's export tutorial over HTTP, and keep serving.
    Demo(Box<crate::commands::demo::DemoArgs>),
    /// Run the HTTP server until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080]
        #[arg(long, env = "DOSSIER_LISTEN")]
        listen: Option<SocketAddr>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        #[command(flatten)]
        connections: ConnectionArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Manage API clients (client id + secret, exchanged for tokens at /ims/token/v3).
    #[command(subcommand)]
    Clients(crate::commands::clients::ClientsCommand),
    /// Manage an organization's sandboxes.
    #[command(subcommand)]
    Sandboxes(crate::commands::sandboxes::SandboxesCommand),
    /// Load files into a dataset through a running server's batch ingestion API.
    Ingest(Box<crate::commands::ingest::IngestArgs>),
    /// Export profiles through a running server's export job API and download the files.
    Export(Box<crate::commands::export::ExportArgs>),
    /// Benchmark workloads: generate deterministic data sets.
    #[command(subcommand)]
    Bench(crate::commands::bench::BenchCommand),
    /// Run the processes of a Ballista cluster (scheduler, executors) for --export-engine cluster.
    #[cfg(feature = "cluster")]
    #[command(subcommand)]
    Cluster(crate::commands::cluster::ClusterCommand),
}

impl Command {
    /// Whether this command logs at info level as JSON (`serve --log-json`).
    pub fn log_json(&self) -> Option<bool> {
        match self {
            Command::Serve { log_json, .. } => Some(*log_json),
            // Long-running like the server: operators read what the scheduler and executors do.
            #[cfg(feature = "cluster")]
            Command::Cluster(_) => Some(false),
            _ => None,
        }
    }

    pub async fn run(self, settings: Settings) -> anyhow::Result<()> {
        match self {
            Command::Serve {
                listen,
                connections,
                engine,
                ..
            } => commands::serve::run(listen, connections, engine, settings).await,
            Command::Clients(command) => commands::clients::run(command, &settings).await,
            Command::Sandboxes(command) => commands::sandboxes::run(command, &settings).await,
            Command::Ingest(args) => commands::ingest::run(*args).await,
            Command::Export(args) => commands::export::run(*args).await,
            Command::Demo(args) => commands::demo::run(*args, settings).await,
            Command::Bench(command) => commands::bench::run(command).await,
            #[cfg(feature = "cluster")]
            Command::Cluster(command) => commands::cluster::run(command, settings).await,
        }
    }
}
