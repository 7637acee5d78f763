//! One module per subcommand.

pub mod bench;
pub mod clients;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod demo;
pub mod export;
pub mod ingest;
pub mod sandboxes;
pub mod serve;
