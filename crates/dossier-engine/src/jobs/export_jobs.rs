//! Export jobs on the workers: a claimed export runs through [`Exporter::export`]; then its
//! batches and metrics are committed with the job's success in one transaction, or what it wrote
//! is removed and the job ends FAILED or CANCELLED with why. Also how recovery ends an export
//! whose worker is gone.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use dossier_model::catalog::BatchStatus;
use dossier_model::export_job::{ExportJob, ExportJobError, ExportJobStatus, MetricSpan};
use dossier_model::ids::BatchId;
use dossier_model::time::now_millis;
use dossier_storage::meta::{BatchOutcome, JobKey, JobKind, QueueEntry};
use dossier_storage::{Lake, MetaStore, StorageError};

use super::recovery::Takeover;
use super::worker::{Supervised, Worker};
use super::{Exporter, RunningJob};
use crate::EngineError;
use crate::export::{ExportError, ExportOutcome, ExportProgress, ExportRequest, Span};
use crate::metrics::JobEnd;

impl<E: Exporter> Worker<E> {
    pub(super) async fn run_export(&self, job: ExportJob, stopped: &mut watch::Receiver<bool>) {
        tracing::info!(job_id = job.id, org = %job.tenant.org, sandbox = %job.tenant.sandbox, "export job started");
        let started = Instant::now();
        self.queue.metrics.job_started(JobKind::Export);
        let key = JobKey::export(&job.tenant, job.id);
        let progress = Arc::new(ExportProgress::default());
        let running = RunningJob {
            progress: Some(progress.clone()),
            ..RunningJob::default()
        };
        let request = ExportRequest {
            tenant: job.tenant.clone(),
            job_id: job.id,
            spec: job.spec.clone(),
            batches: job.batches.clone(),
        };
        let export = self.exporter.export(&request, &progress, &running.cancel);
        let ended = self.supervise(&key, &running, export, stopped).await;
        if let Some(end) = self.record_export(&job, &key, ended).await {
            self.queue.metrics.job_finished(JobKind::Export, end, started.elapsed());
        }
    }

    /// Commits or undoes the run; returns how the job ended, `None` when this run did not end it
    /// (put back on the queue, or left to the node that took it over).
    async fn record_export(
        &self,
        job: &ExportJob,
        key: &JobKey,
        ended: Supervised<Result<ExportOutcome, ExportError>>,
    ) -> Option<JobEnd> {
        match ended.result {
            Ok(Ok(outcome)) => self.commit(job, key, outcome).await,
            Ok(Err(ExportError::Cancelled)) => self.stopped(job, key, ended.server_stopping).await,
            Ok(Err(error)) => {
                let error = ExportJobError {
                    code: error.code().into(),
                    msg: error.to_string(),
                    call_stack: format!("export pipeline, stage '{}'", error.stage().as_str()),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await
            }
            Err(message) => {
                let error = ExportJobError {
                    code: "EXPORT-INTERNAL-500".into(),
                    msg: format!(
                        "The export stopped on an internal error: {message}. Please report it; creating the job again may work."
                    ),
                    call_stack: "export worker".into(),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await
            }
        }
    }

    /// The export stopped on its cancel flag: a cancel request, the server stopping (the job
    /// goes back on the queue for another node or the next start), or a lost lease.
    async fn stopped(&self, job: &ExportJob, key: &JobKey, server_stopping: bool) -> Option<JobEnd> {
        if !self.holds(key).await {
            // The heartbeat found the job no longer ours: ended, or taken over by a node that
            // thought this one dead and runs it again into the same batch folders. Its holder
            // cleans up; removing files now could remove the new run's.
            tracing::warn!(
                job_id = job.id,
                "export job no longer held by this worker; leaving it to its holder"
            );
        } else if self.cancel_requested(key).await {
            return self.undo(job, ExportJobStatus::Cancelled, Vec::new()).await;
        } else if server_stopping {
            self.remove_files(job).await;
            match self.queue.meta.requeue_job(key, &self.name, true).await {
                Ok(true) => tracing::info!(job_id = job.id, "export job put back on the queue: the server stops"),
                Ok(false) => {}
                Err(error) => tracing::error!(%error, job_id = job.id, "could not put an export job back on the queue"),
            }
        }
        None
    }

    /// Makes every batch `success` with its files and the job SUCCEEDED, in one transaction.
    async fn commit(&self, job: &ExportJob, key: &JobKey, outcome: ExportOutcome) -> Option<JobEnd> {
        let now = now_millis();
        let batches = batch_outcomes(job, &outcome, now);
        let mut metrics = job.metrics.clone();
        metrics.total_time.end = Some(now);
        metrics.profile_export_time = Some(closed(outcome.profile_export_time));
        // The write time runs until the commit, which is part of writing the dataset.
        metrics.dataset_write_time = Some(MetricSpan::closed(outcome.dataset_write_time.start, now));
        metrics.exported_profiles = Some(outcome.exported_profiles);
        metrics.exported_by_namespace = outcome.by_namespace;
        metrics.left_out_by_reason = outcome.left_out;
        match self
            .queue
            .meta
            .succeed_export_job(job, &self.name, &metrics, &batches, now)
            .await
        {
            Ok(true) => {
                tracing::info!(
                    job_id = job.id,
                    profiles = outcome.exported_profiles,
                    "export job succeeded"
                );
                let sum = |of: fn(&(BatchId, BatchOutcome)) -> i64| batches.iter().map(of).sum::<i64>().max(0) as u64;
                let (rows, bytes) = (sum(|(_, b)| b.record_count), sum(|(_, b)| b.size));
                self.queue
                    .metrics
                    .export_committed(rows, outcome.exported_profiles, bytes);
                Some(JobEnd::Succeeded)
            }
            Ok(false) if self.cancel_requested(key).await => {
                self.undo(job, ExportJobStatus::Cancelled, Vec::new()).await
            }
            Ok(false) if !self.holds(key).await => {
                // Another node took the job over (this node looked dead) and runs it again into
                // the same batch folders: its run decides, and cleans up.
                tracing::warn!(
                    job_id = job.id,
                    "export job taken over by another node before its commit"
                );
                None
            }
            Ok(false) => {
                let error = ExportJobError {
                    code: "EXPORT-COMMIT-409".into(),
                    msg: "The export's batches could not be committed: one of them was no longer processing. \
                          Its files were removed; create the job again."
                        .into(),
                    call_stack: "export worker, commit".into(),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await
            }
            Err(error) => {
                tracing::error!(%error, job_id = job.id, "could not commit an export job");
                let error = ExportJobError {
                    code: "EXPORT-STORAGE-500".into(),
                    msg: format!("The export's result could not be recorded in the metadata store: {error}"),
                    call_stack: "export worker, commit".into(),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await
            }
        }
    }

    /// Removes what the export wrote, then ends the job FAILED or CANCELLED with its batches
    /// `failed`. Files go first: if the process dies in between, the job is still PROCESSING
    /// and the recovery removes them again.
    /// Returns the job's end, `None` when it had already ended (or this worker lost it).
    async fn undo(&self, job: &ExportJob, status: ExportJobStatus, errors: Vec<ExportJobError>) -> Option<JobEnd> {
        self.remove_files(job).await;
        match self
            .queue
            .meta
            .end_export_job(&job.tenant, job.id, Some(&self.name), status, &errors, now_millis())
            .await
        {
            Ok(ended) => {
                tracing::info!(job_id = job.id, status = %status, "export job ended");
                if ended { JobEnd::of_export(status) } else { None }
            }
            Err(error) => {
                tracing::error!(%error, job_id = job.id, "could not record the end of an export job");
                None
            }
        }
    }

    async fn remove_files(&self, job: &ExportJob) {
        if let Err(error) = remove_job_files(&self.lake, job).await {
            tracing::warn!(%error, job_id = job.id, "could not remove an export's files");
        }
    }
}

/// Each batch of the job with what the export staged for it. A batch the outcome does not
/// mention received no rows: it commits empty, so that every batch of a SUCCEEDED job is
/// `success`.
fn batch_outcomes(job: &ExportJob, outcome: &ExportOutcome, now: i64) -> Vec<(BatchId, BatchOutcome)> {
    job.batches
        .iter()
        .map(|target| {
            let staged = outcome
                .batches
                .iter()
                .find(|staged| staged.target.batch_id == target.batch_id);
            let (records, size, files) = staged.map_or((0, 0, Vec::new()), |s| (s.records, s.size, s.files.clone()));
            let batch = BatchOutcome {
                status: BatchStatus::Success,
                completed: now,
                records_read: records,
                record_count: records,
                size,
                errors: Vec::new(),
                files,
            };
            (target.batch_id.clone(), batch)
        })
        .collect()
}

fn closed(span: Span) -> MetricSpan {
    MetricSpan::closed(span.start, span.end)
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

/// Takes over an export whose worker is gone (recovery holds its lease as `taker`): removes
/// the files it wrote, then queues it again, or ends it CANCELLED or FAILED; its batches stay
/// `processing` for the next attempt, or become `failed` with the job.
pub(super) async fn take_over(
    meta: &MetaStore,
    lake: &Lake,
    entry: &QueueEntry,
    taker: &str,
    takeover: Takeover,
) -> Result<(), EngineError> {
    let Some(job) = (match entry.key.id.parse::<i64>() {
        Ok(id) => meta.export_job(&entry.key.tenant, id).await?,
        Err(_) => None,
    }) else {
        // The queue entry and its job are written together, so this is not expected; a start
        // that refused to serve because of it would help no one.
        tracing::error!(job_id = %entry.key.id, "a running export job on the queue does not exist");
        return Ok(());
    };
    remove_job_files(lake, &job).await?;
    let now = now_millis();
    match takeover {
        Takeover::Requeue => {
            meta.requeue_job(&entry.key, taker, false).await?;
        }
        Takeover::Cancel => {
            meta.end_export_job(&job.tenant, job.id, Some(taker), ExportJobStatus::Cancelled, &[], now)
                .await?;
        }
        Takeover::GiveUp(error) => {
            meta.end_export_job(&job.tenant, job.id, Some(taker), ExportJobStatus::Failed, &[error], now)
                .await?;
        }
    }
    Ok(())
}
