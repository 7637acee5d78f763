//! Batch ingestion: uploaded files → validated records → Parquet fragments in the batch.

pub mod arrow_intake;
pub mod complete;
pub mod encode;
pub mod json_lines;
pub mod records;
pub mod runner;
pub mod validate;
pub mod writer;

pub use complete::{IngestTarget, complete_batch};
pub use runner::Ingestion;
pub use validate::RowError;
pub use writer::{EncodeSettings, FileLimits, FragmentWriter, WrittenFile};
