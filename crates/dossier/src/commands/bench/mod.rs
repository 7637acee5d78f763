//! `dossier bench`: the benchmark workload (generate) and the side-by-side benchmark (run).

mod cluster;
mod fields;
mod generate;
mod peer;
mod plan;
mod report;
mod run;
mod segments;
mod server;
mod stores;
mod touch;

pub use fields::FieldsArgs;
pub use generate::GenerateArgs;
pub use run::RunArgs;
pub use segments::SegmentsArgs;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Write CRM and loyalty profile records, experience events and audience memberships for N
    /// customers, with their schemas and a manifest of expected export counts. The same N and seed
    /// always give byte-identical files.
    Generate(GenerateArgs),
    /// Generate (or reuse) a workload, load it into a fresh server, run the fixed set of export
    /// jobs, run the same selections in DuckDB and Polars over the same files, check all exported
    /// the same rows, and print one table (see BENCHMARKS.md).
    Run(RunArgs),
    /// Load a generated workload into a fresh server, create three segment definitions
    /// (attribute-only, event count, occurs window) and time one segment job evaluating them,
    /// with the server's peak memory.
    Segments(SegmentsArgs),
    /// Time an export naming many fields of a wide schema (default 5,000 of a 10,000-field
    /// object): planning in process, and the whole job on a child server (see BENCHMARKS.md).
    Fields(FieldsArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Generate(args) => generate::generate(args).await,
        BenchCommand::Run(args) => run::run(args).await,
        BenchCommand::Segments(args) => segments::run(args).await,
        BenchCommand::Fields(args) => fields::run(args).await,
    }
}
