//! Deterministic workloads for benchmarks and demos.
//!
//! [`generate`] writes a population of customers as the datasets a retailer would bring to
//! Dossier: CRM profile records, loyalty-program profile records (the two overlap on email, so
//! the identity graph stitches them), web and commerce experience events, and audience
//! memberships ingested with the CRM records. Alongside the data it writes the schemas to
//! register, their identity descriptors and a manifest with the counts an export must reproduce.
//!
//! Same profile count, seed and crate version → byte-identical files. Each customer draws from
//! random streams of its own, so customer `i` is the same whatever the population size: the data
//! for 1,000 profiles is a prefix of the data for 1,000,000. Generation streams record by record,
//! so memory does not grow with the population. See `docs/generator.md`.

pub mod audiences;
pub mod clock;
pub mod customer;
pub mod events;
mod generate;
pub mod manifest;
pub mod profiles;
pub mod random;
pub mod records;
pub mod schemas;
pub mod sink;
pub mod vocabulary;

use std::path::Path;

pub use generate::{DEFAULT_RECORDS_PER_FILE, GenerateOptions, MANIFEST_FILE, SCHEMA_ID_PLACEHOLDER, generate};
pub use manifest::Manifest;
pub use schemas::DatasetKind;
pub use sink::OutputFormat;

/// Why a generation run failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("building Arrow batches: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl GenerateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
