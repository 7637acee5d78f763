//! The export pipeline: merged profiles of a sandbox, filtered, projected and written as Parquet
//! into the batches of an export job.

mod project;
mod run;
mod selection;
mod types;
mod writer;

pub use crate::profiles::build::{ComponentTables, ShardLayout};
pub use project::{ProjectError, project_schema};
pub use run::{MAX_IDENTITIES, run_export, run_export_sharing, run_export_with};
pub use types::{
    CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, ExportSettings, ExportStage, Span,
    StagedBatch,
};
pub use writer::{BatchWriter, SplitLimits};
