//! The export job queue: workers that claim NEW jobs from the metadata store, run the export
//! pipeline on them, and commit or undo what it wrote; cancellation; recovery after a stop.
//!
//! The queue itself is the `export_jobs` table (see `dossier_storage::meta`). This module adds
//! what only a running process has: the workers, and the cancel flag and live counters of each
//! export it is running, so that a DELETE stops an export at once and a GET shows its progress.

mod recovery;
mod segment_jobs;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use dossier_model::export_job::{ExportJob, ExportJobError, ExportJobProgress};
use dossier_model::segment_job::{SegmentJob, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::ExportCancellation;
use dossier_storage::{Lake, MetaStore, StorageError};

use crate::export::{
    CancelFlag, ComponentTables, ExportError, ExportOutcome, ExportProgress, ExportRequest, ExportSettings,
    run_export_sharing,
};

pub use recovery::recover_interrupted_exports;
pub use segment_jobs::{recover_interrupted_segment_jobs, segments_of};
pub use worker::{ExportWorkers, WorkerSettings};

/// Runs one export. The server uses [`EngineExporter`]; tests of the queue substitute exports
/// whose timing and outcome they control.
pub trait Exporter: Send + Sync + 'static {
    fn export<'a>(
        &'a self,
        request: &'a ExportRequest,
        progress: &'a ExportProgress,
        cancel: &'a CancelFlag,
    ) -> impl Future<Output = Result<ExportOutcome, ExportError>> + Send + 'a;
}

/// The export pipeline of this crate ([`run_export`]).
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
            segment_jobs::evaluate_for_export(&self.meta, &self.lake, &request.tenant, request.job_id, &ids, cancel)
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
}

/// The cancel flag and counters of one export this process runs.
#[derive(Clone)]
struct RunningExport {
    cancel: CancelFlag,
    progress: Arc<ExportProgress>,
}

type JobKey = (Tenant, i64);

/// What the API needs of the queue: waking a worker when a job is queued, cancelling, and the
/// live progress of running jobs. Cheap to clone.
#[derive(Clone)]
pub struct ExportQueue {
    meta: MetaStore,
    running: Arc<Mutex<HashMap<JobKey, RunningExport>>>,
    /// The cancel flags of the segment jobs this process runs.
    segments_running: Arc<Mutex<HashMap<(Tenant, String), CancelFlag>>>,
    wake: Arc<Notify>,
}

impl ExportQueue {
    pub fn new(meta: MetaStore) -> Self {
        Self {
            meta,
            running: Arc::default(),
            segments_running: Arc::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells an idle worker that a job was queued, so it starts now rather than at its next poll.
    pub fn job_queued(&self) {
        self.wake.notify_one();
    }

    /// Cancels a job (see [`ExportJobStore::cancel_export_job`]); a PROCESSING job run by this
    /// process is told at once, one run elsewhere at its worker's next heartbeat.
    ///
    /// [`ExportJobStore::cancel_export_job`]: dossier_storage::meta::ExportJobStore::cancel_export_job
    pub async fn cancel(&self, tenant: &Tenant, id: i64) -> Result<Option<ExportCancellation>, StorageError> {
        let outcome = self.meta.cancel_export_job(tenant, id, now_millis()).await?;
        if let Some(ExportCancellation::Requested(_)) = &outcome
            && let Some(running) = self.running_export(tenant, id)
        {
            running.cancel.cancel();
        }
        Ok(outcome)
    }

    /// The counters of a job this process is running now.
    pub fn live_progress(&self, tenant: &Tenant, id: i64) -> Option<ExportJobProgress> {
        self.running_export(tenant, id)
            .map(|running| progress_snapshot(&running.progress))
    }

    /// Cancels a segment job: a NEW one at once, a PROCESSING one (CANCELLING) within about a
    /// second when this process runs it, at its worker's next heartbeat otherwise.
    pub async fn cancel_segment_job(&self, tenant: &Tenant, id: &str) -> Result<Option<SegmentJob>, StorageError> {
        let job = self.meta.cancel_segment_job(tenant, id, now_millis()).await?;
        if job.as_ref().is_some_and(|j| j.status == SegmentJobStatus::Cancelling) {
            let running = self
                .segments_running
                .lock()
                .expect("the registry lock is never poisoned");
            if let Some(cancel) = running.get(&(tenant.clone(), id.to_owned())) {
                cancel.cancel();
            }
        }
        Ok(job)
    }

    fn register_segment_job(&self, key: (Tenant, String), cancel: CancelFlag) {
        let mut running = self
            .segments_running
            .lock()
            .expect("the registry lock is never poisoned");
        running.insert(key, cancel);
    }

    fn unregister_segment_job(&self, key: &(Tenant, String)) {
        let mut running = self
            .segments_running
            .lock()
            .expect("the registry lock is never poisoned");
        running.remove(key);
    }

    fn running_export(&self, tenant: &Tenant, id: i64) -> Option<RunningExport> {
        let running = self.running.lock().expect("the registry lock is never poisoned");
        running.get(&(tenant.clone(), id)).cloned()
    }

    fn register(&self, key: JobKey, export: RunningExport) {
        let mut running = self.running.lock().expect("the registry lock is never poisoned");
        running.insert(key, export);
    }

    fn unregister(&self, key: &JobKey) {
        let mut running = self.running.lock().expect("the registry lock is never poisoned");
        running.remove(key);
    }
}

fn progress_snapshot(progress: &ExportProgress) -> ExportJobProgress {
    let (profiles_scanned, profiles_exported, bytes_written, percent) = progress.snapshot();
    ExportJobProgress {
        profiles_scanned,
        profiles_exported,
        bytes_written,
        percent: percent.min(100),
    }
}

/// Removes every file the job's export wrote into its batch folders. Nothing reads them (the
/// batches never became `success`); this keeps the lake from collecting dead files.
async fn remove_job_files(lake: &Lake, job: &ExportJob) -> Result<(), StorageError> {
    for target in &job.batches {
        lake.delete_prefix(&Lake::batch_prefix(&job.tenant, &job.spec.dataset_id, &target.batch_id))
            .await?;
    }
    Ok(())
}

/// The error of a job whose export the server's stop interrupted.
fn server_stopped(where_: &str, detail: &str) -> ExportJobError {
    ExportJobError {
        code: "EXPORT-SERVER-STOPPED".into(),
        msg: format!(
            "The server stopped during the export ({detail}). Nothing of this job was kept: its files were removed \
             and its batches marked failed. Create the job again."
        ),
        call_stack: where_.into(),
    }
}
