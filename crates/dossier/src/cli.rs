//! Flags and subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

/// Settings every subcommand shares. Precedence: flag, then environment, then config file, then default.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Local working space (export spills, demo files), and metadata and lake unless their URLs say otherwise [default: ./dossier-data]
    #[arg(long, env = "DOSSIER_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The metadata store: sqlite://<path>; a relative path resolves against the working directory [default: sqlite://<data dir>/meta.sqlite]
    #[arg(long, env = "DOSSIER_METADATA_URL", global = true)]
    pub metadata_url: Option<String>,
    /// The lake (datasets' files, export output): file://<path>; a relative path resolves against the working directory [default: file://<data dir>/lake]
    #[arg(long, env = "DOSSIER_LAKE_URL", global = true)]
    pub lake_url: Option<String>,
    /// A TOML config file (keys: data_dir, metadata_url, lake_url, listen, token_ttl_secs, log_format, export_workers, max_queued_export_jobs, export_partition_profiles, export_shard_profiles, export_bucket_identities, header_read_timeout_secs, idle_timeout_secs, [[static_tokens]])
    #[arg(long, env = "DOSSIER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
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
    },
    /// Manage API clients (client id + secret, exchanged for tokens at /ims/token/v3).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage an organization's sandboxes.
    #[command(subcommand)]
    Sandboxes(SandboxesCommand),
    /// Load files into a dataset through a running server's batch ingestion API.
    Ingest(Box<crate::commands::ingest::IngestArgs>),
    /// Export profiles through a running server's export job API and download the files.
    Export(Box<crate::commands::export::ExportArgs>),
    /// Benchmark workloads: generate deterministic data sets.
    #[command(subcommand)]
    Bench(crate::commands::bench::BenchCommand),
}

/// Connection limits of `dossier serve`; each overrides the config file's key of the same name.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ConnectionArgs {
    /// Seconds a client has to send a request's headers before the connection is closed [default: 10]
    #[arg(long, env = "DOSSIER_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may stay idle (no byte moving, no request at work) before it is closed [default: 60]
    #[arg(long, env = "DOSSIER_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Create a client and print its id and secret (the secret is shown only this once).
    Create {
        /// The IMS organization, e.g. 1BD6382559DF0C130A49422D@AdobeOrg
        #[arg(long)]
        org: String,
        /// A sandbox the client may use (repeat for several); without it, every sandbox of the org
        #[arg(long = "sandbox")]
        sandboxes: Vec<String>,
        /// Print {"clientId","clientSecret","org","sandboxes"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client: its secret and every token issued to it stop working at once.
    Revoke { client_id: String },
}

#[derive(Debug, Subcommand)]
pub enum SandboxesCommand {
    /// Create a sandbox in an organization (every organization starts with `prod`).
    Create {
        #[arg(long)]
        org: String,
        name: String,
    },
    /// List sandboxes.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}
