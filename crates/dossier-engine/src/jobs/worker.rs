//! The workers, the same for every kind of job: claim the next job, run it through the
//! [`Exporter`] with a heartbeat beside it (renewing the job's lease, reporting an export's
//! counters, picking up a cancel sent to another process and the server's stop), then hand how
//! it ended to its kind's file to commit or undo.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;

use dossier_model::time::now_millis;
use dossier_storage::Lake;
use dossier_storage::meta::{ClaimedJob, JobKey, PerSandbox};

use super::{Exporter, JobQueue, RunningJob, progress_snapshot};

/// How the workers pace themselves.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Workers running jobs at once; 0 leaves jobs queued (NEW).
    pub workers: usize,
    /// How often a running job's heartbeat is written (with an export's counters) and its cancel
    /// flag read back from the store: the delay of a cancel sent to another process.
    pub heartbeat: Duration,
    /// How often an idle worker looks for jobs queued by another process; jobs queued by this
    /// one wake a worker at once.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    /// The [`dossier_model::options::Options`] defaults.
    fn default() -> Self {
        Self::from(&dossier_model::options::Options::default())
    }
}

/// The running workers, until [`JobWorkers::shutdown`].
///
/// Each worker is an OS thread with a runtime of its own. A job is CPU-bound between its
/// awaits; on the server's runtime it would hold a thread that HTTP requests need (with a
/// current-thread runtime, all of them), and a DELETE meant to cancel it would wait for it.
pub struct JobWorkers {
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// One worker: what a run of any kind needs.
pub(super) struct Worker<E> {
    pub(super) queue: JobQueue,
    pub(super) lake: Lake,
    pub(super) exporter: Arc<E>,
    settings: WorkerSettings,
    /// Who claims, as the queue records it: this process and the worker's number.
    name: String,
}

/// How a job's run ended, before its kind records it.
pub(super) struct Supervised<T> {
    /// What the run returned, or the message of its panic.
    pub(super) result: Result<T, String>,
    /// Whether the server's stop interrupted it.
    pub(super) server_stopping: bool,
}

impl JobWorkers {
    pub fn start<E: Exporter>(queue: JobQueue, lake: Lake, exporter: Arc<E>, settings: WorkerSettings) -> Self {
        let (stop, stopped) = watch::channel(false);
        let threads = (0..settings.workers)
            .map(|n| {
                let worker = Worker {
                    queue: queue.clone(),
                    lake: lake.clone(),
                    exporter: exporter.clone(),
                    settings,
                    name: format!("pid-{}/worker-{n}", std::process::id()),
                };
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("dossier-jobs-{n}"))
                    .spawn(move || worker.run_thread(stopped))
                    .expect("the operating system starts a thread")
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops claiming jobs and stops the running ones (they end FAILED, saying the server
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
            tracing::warn!("job workers did not stop in time; the next start fails their jobs");
        }
    }
}

impl<E: Exporter> Worker<E> {
    fn run_thread(&self, stopped: watch::Receiver<bool>) {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(self.work(stopped)),
            Err(error) => tracing::error!(%error, "a job worker could not start its runtime"),
        }
    }

    async fn work(&self, mut stopped: watch::Receiver<bool>) {
        // `has_changed` fails once the sender is gone: workers dropped without a shutdown stop too.
        // With two workers or more, no sandbox may hold them all (see `PerSandbox`).
        let per_sandbox = PerSandbox::for_workers(self.settings.workers);
        while !*stopped.borrow() && stopped.has_changed().is_ok() {
            match self
                .queue
                .meta
                .claim_next_job(&self.name, now_millis(), per_sandbox)
                .await
            {
                Ok(Some(ClaimedJob::Export(job))) => self.run_export(*job, &mut stopped).await,
                Ok(Some(ClaimedJob::Segment(job))) => self.run_segment_job(*job, &mut stopped).await,
                Ok(None) => self.idle(&mut stopped).await,
                Err(error) => {
                    tracing::error!(%error, "job worker cannot read the job queue");
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

    /// Runs `work` (a job's run through the [`Exporter`]) registered as `running`, with the
    /// heartbeat beside it. A panic is caught, so a job never stays PROCESSING because of one.
    pub(super) async fn supervise<T>(
        &self,
        key: &JobKey,
        running: &RunningJob,
        work: impl Future<Output = T>,
        stopped: &mut watch::Receiver<bool>,
    ) -> Supervised<T> {
        self.queue.register(key.clone(), running.clone());
        // A cancel that came between the claim and the registration found no flag to set; this
        // first beat reads its mark before the work starts (CPU-bound work may not let the
        // heartbeat run until its first await).
        self.beat(key, running).await;
        let work = AssertUnwindSafe(work).catch_unwind();
        tokio::pin!(work);
        let period = self.settings.heartbeat;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut server_stopping = *stopped.borrow();
        if server_stopping {
            running.cancel.cancel();
        }
        let result = loop {
            tokio::select! {
                result = &mut work => break result.map_err(|panic| panic_message(panic.as_ref())),
                _ = heartbeat.tick() => self.beat(key, running).await,
                _ = stopped.changed(), if !server_stopping => {
                    server_stopping = true;
                    running.cancel.cancel();
                }
            }
        };
        self.queue.unregister(key);
        Supervised {
            result,
            server_stopping,
        }
    }

    /// Renews the job's lease with an export's counters, and picks up a cancel requested
    /// through another process (or a job that was ended under it).
    async fn beat(&self, key: &JobKey, running: &RunningJob) {
        let progress = running.progress.as_deref().map(progress_snapshot);
        match self
            .queue
            .meta
            .job_heartbeat(key, &self.name, progress.as_ref(), now_millis())
            .await
        {
            Ok(Some(false)) => {}
            Ok(Some(true)) | Ok(None) => running.cancel.cancel(),
            Err(error) => tracing::warn!(%error, kind = %key.kind, job_id = %key.id, "could not record a heartbeat"),
        }
    }

    /// Whether a cancel was requested for a job still on the queue (read back after its run
    /// stopped on its cancel flag, to tell a cancel from the server's stop).
    pub(super) async fn cancel_requested(&self, key: &JobKey) -> bool {
        match self.queue.meta.queue_entry(key).await {
            Ok(entry) => entry.is_some_and(|entry| entry.cancel_requested),
            Err(error) => {
                tracing::error!(%error, kind = %key.kind, job_id = %key.id, "could not read a job back");
                false
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
