//! The workers: claim the oldest NEW job, run its export with a heartbeat beside it, then commit
//! the result in one transaction or remove what it wrote and record why.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;

use dossier_model::catalog::BatchStatus;
use dossier_model::export_job::{ExportJob, ExportJobError, ExportJobStatus, MetricSpan};
use dossier_model::time::now_millis;
use dossier_storage::Lake;
use dossier_storage::meta::{BatchOutcome, PerSandbox};

use super::segment_jobs::run_segment_job;
use super::{ExportQueue, Exporter, RunningExport, progress_snapshot, remove_job_files, server_stopped};
use crate::export::{CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, Span};

/// How the workers pace themselves.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Workers running exports at once; 0 leaves jobs queued (NEW).
    pub workers: usize,
    /// How often a running job's heartbeat is written (with its counters) and its cancel flag
    /// read back from the store: the delay of a cancel sent to another process.
    pub heartbeat: Duration,
    /// How often an idle worker looks for jobs queued by another process; jobs queued by this
    /// one wake a worker at once.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            heartbeat: Duration::from_secs(1),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// The running workers, until [`ExportWorkers::shutdown`].
///
/// Each worker is an OS thread with a runtime of its own. An export is CPU-bound between its
/// awaits; on the server's runtime it would hold a thread that HTTP requests need (with a
/// current-thread runtime, all of them), and a DELETE meant to cancel it would wait for it.
pub struct ExportWorkers {
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Worker<E> {
    queue: ExportQueue,
    lake: Lake,
    exporter: Arc<E>,
    settings: WorkerSettings,
}

/// How an export ended, before it is recorded.
enum Ended {
    Exported(ExportOutcome),
    Refused(ExportError),
    Panicked(String),
}

impl ExportWorkers {
    pub fn start<E: Exporter>(queue: ExportQueue, lake: Lake, exporter: Arc<E>, settings: WorkerSettings) -> Self {
        let (stop, stopped) = watch::channel(false);
        let worker = Arc::new(Worker {
            queue,
            lake,
            exporter,
            settings,
        });
        let threads = (0..settings.workers)
            .map(|n| {
                let worker = worker.clone();
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("dossier-export-{n}"))
                    .spawn(move || worker.run_thread(stopped))
                    .expect("the operating system starts a thread")
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops claiming jobs and stops the running exports (they end FAILED, saying the server
    /// stopped). Waits up to `grace` for the workers; a worker still busy then is abandoned, and
    /// its job is failed by the next start's recovery.
    pub async fn shutdown(self, grace: Duration) {
        let Self { stop, threads } = self;
        let _ = stop.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        if tokio::time::timeout(grace, joined).await.is_err() {
            tracing::warn!("export workers did not stop in time; the next start fails their jobs");
        }
    }
}

impl<E: Exporter> Worker<E> {
    fn run_thread(&self, stopped: watch::Receiver<bool>) {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(self.work(stopped)),
            Err(error) => tracing::error!(%error, "an export worker could not start its runtime"),
        }
    }

    async fn work(&self, mut stopped: watch::Receiver<bool>) {
        // `has_changed` fails once the sender is gone: workers dropped without a shutdown stop too.
        // With two workers or more, no sandbox may hold them all (see `PerSandbox`).
        let per_sandbox = PerSandbox::for_workers(self.settings.workers);
        while !*stopped.borrow() && stopped.has_changed().is_ok() {
            match self.queue.meta.claim_next_export_job(now_millis(), per_sandbox).await {
                Ok(Some(job)) => self.run(job, &mut stopped).await,
                // Segment jobs share the workers; exports are claimed first.
                Ok(None) => match self.queue.meta.claim_next_segment_job(now_millis(), per_sandbox).await {
                    Ok(Some(job)) => {
                        run_segment_job(&self.queue, &self.lake, self.settings.heartbeat, job, &mut stopped).await
                    }
                    Ok(None) => self.idle(&mut stopped).await,
                    Err(error) => {
                        tracing::error!(%error, "export worker cannot read the segment job queue");
                        self.idle(&mut stopped).await;
                    }
                },
                Err(error) => {
                    tracing::error!(%error, "export worker cannot read the job queue");
                    self.idle(&mut stopped).await;
                }
            }
        }
    }

    async fn idle(&self, stopped: &mut watch::Receiver<bool>) {
        tokio::select! {
            () = self.queue.wake.notified() => {}
            () = tokio::time::sleep(self.settings.idle_poll) => {}
            _ = stopped.changed() => {}
        }
    }

    async fn run(&self, job: ExportJob, stopped: &mut watch::Receiver<bool>) {
        tracing::info!(job_id = job.id, org = %job.tenant.org, sandbox = %job.tenant.sandbox, "export job started");
        let key = (job.tenant.clone(), job.id);
        let running = RunningExport {
            cancel: CancelFlag::default(),
            progress: Arc::new(ExportProgress::default()),
        };
        self.queue.register(key.clone(), running.clone());
        let (ended, server_stopping) = self.export(&job, &running, stopped).await;
        self.queue.unregister(&key);
        self.record(&job, ended, server_stopping).await;
    }

    /// Runs the export with the heartbeat beside it. Returns how it ended and whether the
    /// server's stop interrupted it.
    async fn export(
        &self,
        job: &ExportJob,
        running: &RunningExport,
        stopped: &mut watch::Receiver<bool>,
    ) -> (Ended, bool) {
        let request = ExportRequest {
            tenant: job.tenant.clone(),
            job_id: job.id,
            spec: job.spec.clone(),
            batches: job.batches.clone(),
        };
        // A panic in the export must not leave the job PROCESSING: it is caught and recorded.
        let export =
            AssertUnwindSafe(self.exporter.export(&request, &running.progress, &running.cancel)).catch_unwind();
        tokio::pin!(export);
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        let mut server_stopping = *stopped.borrow();
        if server_stopping {
            running.cancel.cancel();
        }
        let ended = loop {
            tokio::select! {
                result = &mut export => break match result {
                    Ok(Ok(outcome)) => Ended::Exported(outcome),
                    Ok(Err(error)) => Ended::Refused(error),
                    Err(panic) => Ended::Panicked(panic_message(panic.as_ref())),
                },
                _ = heartbeat.tick() => self.beat(job, running).await,
                _ = stopped.changed(), if !server_stopping => {
                    server_stopping = true;
                    running.cancel.cancel();
                }
            }
        };
        (ended, server_stopping)
    }

    /// Records that the worker is alive with its counters, and picks up a cancel requested
    /// through another process (or a job that was ended under it).
    async fn beat(&self, job: &ExportJob, running: &RunningExport) {
        let progress = progress_snapshot(&running.progress);
        match self
            .queue
            .meta
            .export_heartbeat(&job.tenant, job.id, &progress, now_millis())
            .await
        {
            Ok(Some(false)) => {}
            Ok(Some(true)) | Ok(None) => running.cancel.cancel(),
            Err(error) => tracing::warn!(%error, job_id = job.id, "could not record an export heartbeat"),
        }
    }

    async fn record(&self, job: &ExportJob, ended: Ended, server_stopping: bool) {
        match ended {
            Ended::Exported(outcome) => self.commit(job, outcome).await,
            Ended::Refused(ExportError::Cancelled) => self.stopped(job, server_stopping).await,
            Ended::Refused(error) => {
                let error = ExportJobError {
                    code: error.code().into(),
                    msg: error.to_string(),
                    call_stack: format!("export pipeline, stage '{}'", error.stage().as_str()),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await;
            }
            Ended::Panicked(message) => {
                let error = ExportJobError {
                    code: "EXPORT-INTERNAL-500".into(),
                    msg: format!(
                        "The export stopped on an internal error: {message}. Please report it; creating the job again may work."
                    ),
                    call_stack: "export worker".into(),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await;
            }
        }
    }

    /// The export stopped on its cancel flag: a cancel request, or the server stopping.
    async fn stopped(&self, job: &ExportJob, server_stopping: bool) {
        if self.cancel_requested(job).await {
            self.undo(job, ExportJobStatus::Cancelled, Vec::new()).await;
        } else if server_stopping {
            let error = server_stopped(
                "export worker shutdown",
                "the server was shut down while the job was PROCESSING",
            );
            self.undo(job, ExportJobStatus::Failed, vec![error]).await;
        } else {
            // The heartbeat found the job no longer PROCESSING: whoever ended it recorded why.
            self.remove_files(job).await;
        }
    }

    async fn cancel_requested(&self, job: &ExportJob) -> bool {
        match self.queue.meta.export_job(&job.tenant, job.id).await {
            Ok(current) => current.is_some_and(|j| j.cancel_requested),
            Err(error) => {
                tracing::error!(%error, job_id = job.id, "could not read an export job back");
                false
            }
        }
    }

    /// Makes every batch `success` with its files and the job SUCCEEDED, in one transaction.
    async fn commit(&self, job: &ExportJob, outcome: ExportOutcome) {
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
        match self.queue.meta.succeed_export_job(job, &metrics, &batches, now).await {
            Ok(true) => tracing::info!(
                job_id = job.id,
                profiles = outcome.exported_profiles,
                "export job succeeded"
            ),
            Ok(false) if self.cancel_requested(job).await => {
                self.undo(job, ExportJobStatus::Cancelled, Vec::new()).await;
            }
            Ok(false) => {
                let error = ExportJobError {
                    code: "EXPORT-COMMIT-409".into(),
                    msg: "The export's batches could not be committed: one of them was no longer processing. \
                          Its files were removed; create the job again."
                        .into(),
                    call_stack: "export worker, commit".into(),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await;
            }
            Err(error) => {
                tracing::error!(%error, job_id = job.id, "could not commit an export job");
                let error = ExportJobError {
                    code: "EXPORT-STORAGE-500".into(),
                    msg: format!("The export's result could not be recorded in the metadata store: {error}"),
                    call_stack: "export worker, commit".into(),
                };
                self.undo(job, ExportJobStatus::Failed, vec![error]).await;
            }
        }
    }

    /// Removes what the export wrote, then ends the job FAILED or CANCELLED with its batches
    /// `failed`. Files go first: if the process dies in between, the job is still PROCESSING
    /// and the next start's recovery removes them again.
    async fn undo(&self, job: &ExportJob, status: ExportJobStatus, errors: Vec<ExportJobError>) {
        self.remove_files(job).await;
        match self
            .queue
            .meta
            .end_export_job(&job.tenant, job.id, status, &errors, now_millis())
            .await
        {
            Ok(_) => tracing::info!(job_id = job.id, status = %status, "export job ended"),
            Err(error) => tracing::error!(%error, job_id = job.id, "could not record the end of an export job"),
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
fn batch_outcomes(
    job: &ExportJob,
    outcome: &ExportOutcome,
    now: i64,
) -> Vec<(dossier_model::ids::BatchId, BatchOutcome)> {
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
