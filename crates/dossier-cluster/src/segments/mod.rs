//! Segment evaluation on the cluster (docs/cluster-segments.md).
//!
//! Profiles are built as the native evaluation builds them, by the engine's profile builder
//! (keying, merging, previous entries, identities and membership files are the engine's, in
//! dossier-engine segments/evaluate.rs); only the decision, which profiles of a partition
//! qualify for a definition, is taken here, as a DataFusion plan ([`ClusterDecide`]) with the
//! PQL compiled to DataFusion expressions ([`compile`]). So statuses and files are those of the
//! native evaluator by construction, and the differential tests compare decisions.

pub mod compile;
pub mod decide;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use object_store::path::Path as ObjectPath;

use dossier_engine::export::CancelFlag;
use dossier_engine::profiles::build::{BuildSettings, ComponentTables};
use dossier_engine::segments::{Evaluation, Run, SegmentError, evaluate_segments_deciding};
use dossier_model::segment_job::SegmentJobSegment;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::{Lake, MetaStore};

pub use decide::ClusterDecide;

/// Why a decision plan could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The parser refuses an event condition inside an event filter; met here, the tree did not
    /// come from it.
    #[error("an event condition inside an event filter")]
    EventInsideFilter,
    #[error("the decision plan failed: {0}")]
    Plan(#[from] DataFusionError),
    #[error("the decision's input could not be built: {0}")]
    Arrow(#[from] ArrowError),
    #[error("the decision's input could not be written: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("the decision's input could not be stored in the lake: {0}")]
    Scratch(#[from] dossier_storage::StorageError),
}

impl From<DecideError> for SegmentError {
    fn from(error: DecideError) -> Self {
        Self::Failed {
            code: "SEGMENT-EVALUATION-500",
            message: error.to_string(),
        }
    }
}

/// Where one run's decisions write their inputs: a folder of the tenant's own, named after the
/// job and unique to this run (a job taken over runs again under the same id).
fn scratch_folder(tenant: &Tenant, job_id: &str) -> ObjectPath {
    let run = format!(
        "{job_id}-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    ObjectPath::from_iter([tenant.org.as_str(), tenant.sandbox.as_str(), "segment-decisions", &run])
}

/// Evaluates `segments` at `now` with every decision a plan in `ctx` (a Ballista session, or a
/// session on this process: the inputs of each decision go through the lake, which both see), and writes each one's
/// new membership file named after `job_id`, as the native evaluation would. Profiles are
/// built with the default [`BuildSettings`].
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_on(
    ctx: &SessionContext,
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    segments: &[SegmentJobSegment],
    job_id: &str,
    now: EpochMillis,
    cancel: &CancelFlag,
) -> Result<Evaluation, SegmentError> {
    let build = (&BuildSettings::default(), &ComponentTables::default());
    evaluate_on_with(ctx, meta, lake, tenant, segments, job_id, now, cancel, build).await
}

/// [`evaluate_on`] building profiles with `settings` and keying against the kept graph tables
/// `tables`: what an exporter that owns both passes.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_on_with(
    ctx: &SessionContext,
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    segments: &[SegmentJobSegment],
    job_id: &str,
    now: EpochMillis,
    cancel: &CancelFlag,
    build: (&BuildSettings, &ComponentTables),
) -> Result<Evaluation, SegmentError> {
    let decide = ClusterDecide::through_lake(ctx.clone(), lake.clone(), scratch_folder(tenant, job_id));
    let run = Run {
        run_id: job_id,
        now,
        cancel,
    };
    evaluate_segments_deciding(meta, lake, tenant, segments, run, build, &decide).await
}
