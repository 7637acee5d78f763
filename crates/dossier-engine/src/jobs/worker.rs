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
use tracing::Instrument;

use dossier_model::time::now_millis;
use dossier_storage::meta::{ClaimedJob, JobKey, PerSandbox};
use dossier_storage::{Lake, MetaStore};

use super::recovery::{Orphans, recover_orphaned_jobs};
use super::{Exporter, JobQueue, RunningJob, progress_snapshot};

/// How the workers pace themselves, and how this node takes over the jobs of dead ones.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Workers running jobs at once; 0 leaves jobs queued (NEW).
    pub workers: usize,
    /// How often a running job's heartbeat is written (with an export's counters) and its cancel
    /// flag read back from the store: the delay of a cancel sent to another process.
    pub heartbeat: Duration,
    /// How often an idle worker looks for jobs queued by another process; jobs queued by this
    /// one wake a worker at once.
    pub idle_poll: Duration,
    /// This node's name in the queue: its workers claim as `<node>/worker-<n>`, and a start
    /// takes over at once the jobs its previous run left (see [`super::recover_orphaned_jobs`]).
    pub node: String,
    /// How long a running job's lease lasts without a heartbeat; past it, any node takes the job
    /// over (removes what it wrote and queues it again).
    pub lease: Duration,
    /// Runs a job gets: a job whose node died this many times ends FAILED saying so.
    pub max_attempts: u32,
}

impl Default for WorkerSettings {
    /// The [`dossier_model::options::Options`] defaults, on a node named `local`.
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

impl WorkerSettings {
    /// How often a node looks for expired leases (of jobs and of ingestions): a few times a
    /// lease, so a dead node's work waits little more than the lease itself.
    pub fn lease_check_period(&self) -> Duration {
        (self.lease / 3).max(Duration::from_secs(1))
    }
}

/// One worker: what a run of any kind needs.
pub(super) struct Worker<E> {
    pub(super) queue: JobQueue,
    pub(super) lake: Lake,
    pub(super) exporter: Arc<E>,
    pub(super) settings: WorkerSettings,
    /// Who claims, as the queue records it: this node and the worker's number.
    pub(super) name: String,
    /// The server's runtime, where a running job's heartbeat runs (see [`Heartbeat`]).
    pub(super) beats: tokio::runtime::Handle,
}

/// How a job's run ended, before its kind records it.
pub(super) struct Supervised<T> {
    /// What the run returned, or the message of its panic.
    pub(super) result: Result<T, String>,
    /// Whether the server's stop interrupted it.
    pub(super) server_stopping: bool,
}

impl JobWorkers {
    /// Starts the workers; called on the server's runtime, which runs their jobs' heartbeats.
    pub fn start<E: Exporter>(queue: JobQueue, lake: Lake, exporter: Arc<E>, settings: WorkerSettings) -> Self {
        let beats = tokio::runtime::Handle::current();
        let (stop, stopped) = watch::channel(false);
        let mut threads: Vec<_> = (0..settings.workers)
            .map(|n| {
                let worker = Worker {
                    queue: queue.clone(),
                    lake: lake.clone(),
                    exporter: exporter.clone(),
                    name: format!("{}/worker-{n}", settings.node),
                    settings: settings.clone(),
                    beats: beats.clone(),
                };
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("dossier-jobs-{n}"))
                    .spawn(move || worker.run_thread(stopped))
                    .expect("the operating system starts a thread")
            })
            .collect();
        let (meta, watcher) = (queue.meta.clone(), settings);
        threads.push(
            std::thread::Builder::new()
                .name("dossier-leases".into())
                .spawn(move || watch_leases(meta, lake, watcher, stopped))
                .expect("the operating system starts a thread"),
        );
        Self { stop, threads }
    }

    /// Stops claiming jobs and stops the running ones: what they wrote is removed and they go
    /// back on the queue, for another node (or this one's next start) to run. Waits up to
    /// `grace` for the workers; a worker still busy then is abandoned, and its job taken over
    /// by this node's next start or, once its lease expires, by another node.
    pub async fn shutdown(self, grace: Duration) {
        let Self { stop, threads } = self;
        let _ = stop.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        if tokio::time::timeout(grace, joined).await.is_err() {
            tracing::warn!("job workers did not stop in time; their jobs are taken over once their leases expire");
        }
    }
}

/// The lease watcher: every few seconds, takes over the jobs whose lease expired (their node
/// died), until the workers stop. One per node; of several nodes racing for a job, one wins.
fn watch_leases(meta: MetaStore, lake: Lake, settings: WorkerSettings, mut stopped: watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return tracing::error!(%error, "the lease watcher could not start its runtime"),
    };
    runtime.block_on(async {
        let period = settings.lease_check_period();
        while !*stopped.borrow() && stopped.has_changed().is_ok() {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stopped.changed() => break,
            }
            match recover_orphaned_jobs(&meta, &lake, &settings, Orphans::Expired).await {
                Ok(0) => {}
                Ok(taken) => tracing::warn!(jobs = taken, "took over jobs whose node stopped renewing their lease"),
                Err(error) => tracing::error!(%error, "could not look for jobs with expired leases"),
            }
        }
    });
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
                Ok(Some(job)) => self.run(job, &mut stopped).await,
                Ok(None) => self.idle(&mut stopped).await,
                Err(error) => {
                    tracing::error!(%error, "job worker cannot read the job queue");
                    self.idle(&mut stopped).await;
                }
            }
        }
    }

    /// Runs a claimed job inside its span: every log line of the run, the engine's included,
    /// carries the job's kind, id, organization and sandbox.
    async fn run(&self, job: ClaimedJob, stopped: &mut watch::Receiver<bool>) {
        let key = job.key();
        let span = tracing::info_span!(
            "job", kind = %key.kind, job_id = %key.id, org = %key.tenant.org, sandbox = %key.tenant.sandbox
        );
        match job {
            ClaimedJob::Export(job) => self.run_export(*job, stopped).instrument(span).await,
            ClaimedJob::Segment(job) => self.run_segment_job(*job, stopped).instrument(span).await,
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
        let heartbeat = Heartbeat::start(
            &self.beats,
            self.queue.meta.clone(),
            self.name.clone(),
            key,
            running,
            self.settings.heartbeat,
        );
        let mut server_stopping = *stopped.borrow();
        if server_stopping {
            running.cancel.cancel();
        }
        let result = loop {
            tokio::select! {
                result = &mut work => break result.map_err(|panic| panic_message(panic.as_ref())),
                _ = stopped.changed(), if !server_stopping => {
                    server_stopping = true;
                    running.cancel.cancel();
                }
            }
        };
        heartbeat.stop().await;
        self.queue.unregister(key);
        Supervised {
            result,
            server_stopping,
        }
    }

    /// Renews the job's lease with an export's counters, and picks up a cancel requested
    /// through another process (or a job that was ended under it).
    async fn beat(&self, key: &JobKey, running: &RunningJob) {
        beat(&self.queue.meta, &self.name, key, running).await;
    }

    /// Whether this worker still holds the job's lease (read back after its run stopped or its
    /// commit was refused). A failed read answers yes: the fenced end then decides.
    pub(super) async fn holds(&self, key: &JobKey) -> bool {
        match self.queue.meta.queue_entry(key).await {
            Ok(entry) => entry.is_some_and(|entry| entry.worker.as_deref() == Some(self.name.as_str())),
            Err(error) => {
                tracing::error!(%error, kind = %key.kind, job_id = %key.id, "could not read a job back");
                true
            }
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

/// Renews `key`'s lease as `worker`, with an export's counters, and sets the cancel flag of a
/// job cancelled through another process (or ended under it).
async fn beat(meta: &MetaStore, worker: &str, key: &JobKey, running: &RunningJob) {
    let progress = running.progress.as_deref().map(progress_snapshot);
    match meta.job_heartbeat(key, worker, progress.as_ref(), now_millis()).await {
        Ok(Some(false)) => {}
        Ok(Some(true)) | Ok(None) => running.cancel.cancel(),
        Err(error) => tracing::warn!(%error, kind = %key.kind, job_id = %key.id, "could not record a heartbeat"),
    }
}

/// A running job's heartbeat, on the server's runtime. A job is CPU-bound between its awaits
/// (a 10 M-profile pass one reads a file for over a minute without one); beside it on the
/// worker's single-threaded runtime, the beat waited for the next await, the lease expired, and
/// a live job was taken over and run again.
///
/// Not on a runtime of its own either: a connection the metadata pool opens for a beat stays
/// bound to the runtime that opened it, and goes back to the pool. When each job's heartbeat
/// had a runtime that ended with the job, a request that later drew such a connection from the
/// pool (a download, a worker's next claim, a beat) waited forever on a dead reactor. On
/// PostgreSQL, CI saw a server never finish stopping (its stop waited on such a beat), and most
/// likely a download time out the same way.
struct Heartbeat {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    fn start(
        runtime: &tokio::runtime::Handle,
        meta: MetaStore,
        worker: String,
        key: &JobKey,
        running: &RunningJob,
        period: Duration,
    ) -> Self {
        use tracing::Instrument;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (key, running) = (key.clone(), running.clone());
        let beats = async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => beat(&meta, &worker, &key, &running).await,
                }
            }
        };
        let task = runtime.spawn(beats.instrument(tracing::Span::current()));
        Self { stop, task }
    }

    /// Stops the beats once the run ended (a beat under way finishes first).
    async fn stop(self) {
        let _ = self.stop.send(());
        if self.task.await.is_err() {
            tracing::error!("a job's heartbeat panicked");
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
