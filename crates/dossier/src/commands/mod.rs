//! One module per subcommand.

pub mod bench;
pub mod clients;
pub mod demo;
pub mod export;
pub mod ingest;
pub mod sandboxes;
pub mod serve;
