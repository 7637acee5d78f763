//! The export pipeline: merged profiles of a sandbox, filtered, projected and written as Parquet
//! into the batches of an export job.

mod types;

pub use types::{CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, Span, StagedBatch};
