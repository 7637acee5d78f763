//! Dossier's engine: the data work, on Arrow and Parquet, with no HTTP.
//!
//! This crate owns turning uploaded files into Parquet fragments, the identity graph, building
//! merged profiles, the export pipeline, segment evaluation, and the workers that run export and
//! segment jobs from one queue (`jobs`). It reads and writes through the storage crate.

mod cancel;
mod error;
pub mod export;
pub mod fragments;
pub mod identity;
pub mod ingest;
pub mod jobs;
pub mod metrics;
mod options;
pub mod parquet_io;
pub mod preview;
pub mod profiles;
pub mod schemas;
pub mod segments;

pub use error::EngineError;
