//! The `dossier` command: runs the server and administers tenancy on the embedded default.
//!
//! Subcommands are thin: they parse flags, open storage or start the server through the API
//! crate, and print. Everything they do is also reachable over HTTP except creating API clients
//! and sandboxes, which are operator actions.

mod cli;
mod commands;
mod config;
mod remote;
mod workload;

use clap::Parser;

// Exports and ingestion allocate many short-lived buffers from several threads; glibc's malloc
// spent a third of an export's time consolidating free lists (perf, 1M profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let settings = match config::Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    config::init_logging(&cli.command, &settings);
    match commands::run(cli.command, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
