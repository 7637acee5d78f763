//! The export pipeline: merged profiles of a sandbox, filtered, projected and written as Parquet
//! into the batches of an export job.

mod project;
mod run;
mod selection;
mod types;
mod writer;

pub use crate::profiles::build::{ComponentTables, ShardLayout};
pub use project::{ProjectError, project_schema};
// The export's steps another engine (the cluster's) shares, so both plan and finish a job alike.
pub use run::{
    GUARDRAIL_REASON, MAX_IDENTITIES, check_cancel, finish_batches, pinned_policy, planning_storage, run_export,
    run_export_sharing, run_export_with,
};
pub use types::{
    CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, ExportSettings, ExportStage, Span,
    StagedBatch,
};
pub use writer::{BatchWriter, SplitLimits};
