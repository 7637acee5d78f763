//! One module per subcommand.

pub mod bench;
mod clients;
pub mod demo;
pub mod export;
pub mod ingest;
mod sandboxes;
mod serve;

use crate::cli::Command;
use crate::config::Settings;

pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            listen, connections, ..
        } => serve::run(listen, connections, settings).await,
        Command::Clients(command) => clients::run(command, &settings).await,
        Command::Sandboxes(command) => sandboxes::run(command, &settings).await,
        Command::Ingest(args) => ingest::run(*args).await,
        Command::Export(args) => export::run(*args).await,
        Command::Demo(args) => demo::run(*args, settings).await,
        Command::Bench(command) => bench::run(command).await,
    }
}
