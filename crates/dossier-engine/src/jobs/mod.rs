//! The jobs a server runs in the background — export jobs and segment jobs — on one queue: one
//! pool of workers that claim the next job of any kind from the metadata store, run it through
//! the [`Exporter`] seam with a heartbeat beside it, and commit or undo what it wrote; one cancel
//! registry; one recovery, by lease: a job whose node stopped renewing its lease is taken over
//! by another node (or by the same node's next start), cleaned and queued again.
//!
//! The queue itself is the `job_queue` table (see `dossier_storage::meta::ClaimedJob`). This
//! module adds what only a running process has: the workers, and the cancel flag (and, for an
//! export, the live counters) of each job it is running, so that a DELETE stops a job at once
//! and a GET shows an export's progress. Each kind's file (`export_jobs.rs`, `segment_jobs.rs`)
//! says how a run of that kind is recorded; `worker.rs` is what every kind shares.

mod export_jobs;
mod exporter;
mod recovery;
mod schedules;
mod segment_jobs;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use dossier_model::export_job::ExportJobProgress;
use dossier_model::segment_job::{SegmentJob, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::{ExportCancellation, JobKey};
use dossier_storage::{MetaStore, StorageError};

use crate::export::{CancelFlag, ExportProgress};
use crate::metrics::EngineMetrics;

pub use exporter::{EngineExporter, Exporter};
pub(crate) use recovery::orphaned_entries;
pub use recovery::{Orphans, recover_orphaned_jobs};
pub use schedules::{SCHEDULER_POLL, ScheduleRunner, ScheduledTick, Scheduler, run_due_ticks};
pub use segment_jobs::segments_of;
pub use worker::{JobWorkers, WorkerSettings};

/// The cancel flag of one job this process runs, and an export's live counters.
#[derive(Clone, Default)]
struct RunningJob {
    cancel: CancelFlag,
    progress: Option<Arc<ExportProgress>>,
}

/// What the API needs of the queue: waking a worker when a job is queued, cancelling, and the
/// live progress of running exports. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    meta: MetaStore,
    /// The jobs of every kind this process runs: one cancel registry.
    running: Arc<Mutex<HashMap<JobKey, RunningJob>>>,
    wake: Arc<Notify>,
    /// What the workers count: job starts and ends, exported rows and bytes.
    metrics: EngineMetrics,
}

impl JobQueue {
    pub fn new(meta: MetaStore) -> Self {
        Self {
            meta,
            running: Arc::default(),
            wake: Arc::new(Notify::new()),
            metrics: EngineMetrics::default(),
        }
    }

    /// The queue, its workers counting into `metrics` (a server's, registered for `GET /metrics`).
    pub fn with_metrics(self, metrics: EngineMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// Tells an idle worker that a job was queued, so it starts now rather than at its next poll.
    pub fn job_queued(&self) {
        self.wake.notify_one();
    }

    /// Cancels an export job (see [`MetaStore::cancel_export_job`]); a PROCESSING job run by
    /// this process is told at once, one run elsewhere at its worker's next heartbeat.
    pub async fn cancel_export_job(
        &self,
        tenant: &Tenant,
        id: i64,
    ) -> Result<Option<ExportCancellation>, StorageError> {
        let outcome = self.meta.cancel_export_job(tenant, id, now_millis()).await?;
        if let Some(ExportCancellation::Requested(_)) = &outcome {
            self.signal_cancel(&JobKey::export(tenant, id));
        }
        Ok(outcome)
    }

    /// Cancels a segment job: a NEW one at once, a PROCESSING one (CANCELLING) within about a
    /// second when this process runs it, at its worker's next heartbeat otherwise.
    pub async fn cancel_segment_job(&self, tenant: &Tenant, id: &str) -> Result<Option<SegmentJob>, StorageError> {
        let job = self.meta.cancel_segment_job(tenant, id, now_millis()).await?;
        if job.as_ref().is_some_and(|j| j.status == SegmentJobStatus::Cancelling) {
            self.signal_cancel(&JobKey::segment(tenant, id));
        }
        Ok(job)
    }

    /// The counters of an export job this process is running now.
    pub fn live_progress(&self, tenant: &Tenant, id: i64) -> Option<ExportJobProgress> {
        let running = self.running.lock().expect("the registry lock is never poisoned");
        let progress = running.get(&JobKey::export(tenant, id))?.progress.as_ref()?;
        Some(progress_snapshot(progress))
    }

    fn signal_cancel(&self, key: &JobKey) {
        let running = self.running.lock().expect("the registry lock is never poisoned");
        if let Some(job) = running.get(key) {
            job.cancel.cancel();
        }
    }

    fn register(&self, key: JobKey, job: RunningJob) {
        let mut running = self.running.lock().expect("the registry lock is never poisoned");
        running.insert(key, job);
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
