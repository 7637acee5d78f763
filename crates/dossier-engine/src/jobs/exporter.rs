//! The seam between the queue and the work a job does: [`Exporter`], one method per kind of job,
//! and the engine's implementation of it.

use std::future::Future;

use dossier_model::segment_job::SegmentJob;
use dossier_model::time::now_millis;
use dossier_storage::{Lake, MetaStore};

use super::segment_jobs::evaluate_for_export;
use crate::export::{
    CancelFlag, ComponentTables, ExportError, ExportOutcome, ExportProgress, ExportRequest, ExportSettings,
    run_export_sharing,
};
use crate::segments::{Evaluation, SegmentError, evaluate_segments_with};

/// Runs the work of a claimed job, one method per kind. The workers call it; the server uses
/// [`EngineExporter`], and the queue's tests substitute work whose timing and outcome they
/// control. A cluster engine is another implementation.
///
/// The contract (the same for every method):
/// - **What it may write**: only the job's own output — an export's files under its batches'
///   folders (`Lake::batch_prefix`) and spill files; a segment job's membership files named by
///   its job id (`Lake::segment_membership_file`). It does not change the job, its batches or
///   the current memberships in the metadata store: the worker commits what it returns, in one
///   transaction with the job's end. (One exception, kept from before: an export with
///   `evaluationInfo.segmentation` makes its fresh memberships current before exporting, as a
///   segment job would.)
/// - **Cancel**: it checks `cancel` between units of work and returns soon after the flag is set
///   (`ExportError::Cancelled` / `SegmentError::Cancelled`) — a cancel request and the server's
///   stop must take effect within about a second. It need not remove what it wrote: the worker
///   removes the job's output on every end but success.
/// - **Errors**: `Err` means the job failed; the worker removes its output and ends it FAILED
///   with the error's code and message. A panic is caught and counts as a failure.
/// - **Runs again**: a job may be run more than once (a recovery takes over a job whose worker
///   died); each run starts from the job as stored, and the output of an earlier run is removed
///   before the job runs again or ends.
pub trait Exporter: Send + Sync + 'static {
    /// Exports the profiles the request asks for into its batches' folders, reporting counters
    /// to `progress`.
    fn export<'a>(
        &'a self,
        request: &'a ExportRequest,
        progress: &'a ExportProgress,
        cancel: &'a CancelFlag,
    ) -> impl Future<Output = Result<ExportOutcome, ExportError>> + Send + 'a;

    /// Evaluates the segments of a segment job into new membership files (not yet current).
    fn evaluate<'a>(
        &'a self,
        job: &'a SegmentJob,
        cancel: &'a CancelFlag,
    ) -> impl Future<Output = Result<Evaluation, SegmentError>> + Send + 'a;
}

/// The engine's pipelines: the export pipeline ([`run_export_sharing`]) and segment evaluation
/// ([`evaluate_segments_with`]), sharing the build settings and the kept graph tables.
pub struct EngineExporter {
    pub meta: MetaStore,
    pub lake: Lake,
    pub settings: ExportSettings,
    /// Sealed identity graph tables kept from one export to the next (see [`ComponentTables`]):
    /// owned here, by the one exporter of a server, rather than by the process.
    pub tables: ComponentTables,
}

impl Exporter for EngineExporter {
    async fn export(
        &self,
        request: &ExportRequest,
        progress: &ExportProgress,
        cancel: &CancelFlag,
    ) -> Result<ExportOutcome, ExportError> {
        // `evaluationInfo.segmentation: true`: fresh memberships first, then the export.
        let ids = request.spec.segments_to_evaluate();
        if !ids.is_empty() {
            let build = (&self.settings, &self.tables);
            evaluate_for_export(
                &self.meta,
                &self.lake,
                &request.tenant,
                request.job_id,
                &ids,
                cancel,
                build,
            )
            .await?;
        }
        run_export_sharing(
            &self.meta,
            &self.lake,
            request,
            progress,
            cancel,
            &self.settings,
            &self.tables,
        )
        .await
    }

    async fn evaluate(&self, job: &SegmentJob, cancel: &CancelFlag) -> Result<Evaluation, SegmentError> {
        // Memberships are evaluated as of the claim, which the job shows as its start.
        let now = job.metrics.start.unwrap_or_else(now_millis);
        let build = (&self.settings, &self.tables);
        evaluate_segments_with(
            &self.meta,
            &self.lake,
            &job.tenant,
            &job.segments,
            &job.id,
            now,
            cancel,
            build,
        )
        .await
    }
}
