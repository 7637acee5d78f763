//! The queue with exports and segment evaluations whose timing and outcome the tests decide:
//! success, failure, panic, cancel while running, shutdown, and takeover of a dead node's jobs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use dossier_model::catalog::BatchStatus;
use dossier_model::export_job::{ExportJob, ExportJobStatus};
use dossier_model::ids::DatasetId;
use dossier_model::segment_job::{SegmentJob, SegmentJobMetrics, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::fixtures::{
    created_export, created_segment_job, new_export_job, new_segment_job, stored_dataset, with_prod,
};
use dossier_storage::meta::{BatchFile, ClaimedJob, ExportCancellation, FileKind, JobKey, JobState, PerSandbox};
use dossier_storage::{Lake, MetaStore};

use super::*;
use crate::export::{CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, Span, StagedBatch};
use crate::segments::{Evaluation, SegmentError};

/// What the fake export does after writing one file into each batch folder (and the fake
/// evaluation, which writes nothing).
#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    Fail,
    Panic,
    /// Runs until its cancel flag is set.
    RunUntilCancelled,
    /// Holds its thread for 3 s without an await (as a CPU-bound pass does), then succeeds.
    HogTheThread,
}

/// How a run that does not succeed ends; each kind of job turns it into its own error.
enum Ending {
    Failed,
    Cancelled,
}

impl Behaviour {
    /// Does what the test asked once the work is written: `Ok` to succeed.
    async fn act(self, cancel: &CancelFlag) -> Result<(), Ending> {
        match self {
            Behaviour::Succeed => Ok(()),
            Behaviour::Fail => Err(Ending::Failed),
            Behaviour::Panic => panic!("the test panics"),
            Behaviour::RunUntilCancelled => loop {
                if cancel.is_cancelled() {
                    return Err(Ending::Cancelled);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            },
            Behaviour::HogTheThread => {
                std::thread::sleep(Duration::from_secs(3));
                Ok(())
            }
        }
    }
}

struct FakeExporter {
    lake: Lake,
    behaviour: Behaviour,
}

impl FakeExporter {
    async fn write_files(&self, request: &ExportRequest) -> Vec<StagedBatch> {
        let mut staged = Vec::new();
        for target in &request.batches {
            let folder = Lake::batch_prefix(&request.tenant, &request.spec.dataset_id, &target.batch_id);
            let location = folder.join("part-00000.parquet");
            self.lake.put(&location, Bytes::from_static(b"rows")).await.unwrap();
            staged.push(StagedBatch {
                target: target.clone(),
                files: vec![BatchFile {
                    file_id: format!("{}-0", target.batch_id),
                    batch_id: target.batch_id.clone(),
                    dataset_id: request.spec.dataset_id.clone(),
                    kind: FileKind::Data,
                    name: "part-00000.parquet".into(),
                    path: location.to_string(),
                    size: 4,
                    records: 2,
                    created: now_millis(),
                }],
                records: 2,
                size: 4,
            });
        }
        staged
    }

    async fn run(&self, request: &ExportRequest, cancel: &CancelFlag) -> Result<ExportOutcome, ExportError> {
        let batches = self.write_files(request).await;
        self.behaviour.act(cancel).await.map_err(|ending| match ending {
            Ending::Failed => ExportError::Write(crate::EngineError::Invalid("the test said so".into())),
            Ending::Cancelled => ExportError::Cancelled,
        })?;
        let span = Span {
            start: now_millis(),
            end: now_millis(),
        };
        Ok(ExportOutcome {
            batches,
            exported_profiles: 2,
            by_namespace: BTreeMap::from([("CRMID".to_owned(), 2)]),
            left_out: BTreeMap::new(),
            profile_export_time: span,
            dataset_write_time: span,
            identity_graph_version: None,
        })
    }

    async fn evaluate_segments(&self, cancel: &CancelFlag) -> Result<Evaluation, SegmentError> {
        self.behaviour.act(cancel).await.map_err(|ending| match ending {
            Ending::Failed => SegmentError::Failed {
                code: "SEGMENT-TEST-500",
                message: "the test said so".into(),
            },
            Ending::Cancelled => SegmentError::Cancelled,
        })?;
        Ok(Evaluation {
            files: Vec::new(),
            metrics: SegmentJobMetrics::default(),
        })
    }
}

impl Exporter for FakeExporter {
    fn export<'a>(
        &'a self,
        request: &'a ExportRequest,
        _progress: &'a ExportProgress,
        cancel: &'a CancelFlag,
    ) -> impl Future<Output = Result<ExportOutcome, ExportError>> + Send + 'a {
        self.run(request, cancel)
    }

    fn evaluate<'a>(
        &'a self,
        _job: &'a SegmentJob,
        cancel: &'a CancelFlag,
    ) -> impl Future<Output = Result<Evaluation, SegmentError>> + Send + 'a {
        self.evaluate_segments(cancel)
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    meta: MetaStore,
    lake: Lake,
    tenant: Tenant,
    dataset: DatasetId,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
    let lake = Lake::local(&dir.path().join("lake")).unwrap();
    let tenant = with_prod(&meta).await;
    let dataset = stored_dataset(&meta, &tenant, "target", 1).await.id;
    Setup {
        _dir: dir,
        meta,
        lake,
        tenant,
        dataset,
    }
}

impl Setup {
    async fn queue_job(&self) -> ExportJob {
        created_export(
            &self.meta,
            &new_export_job(&self.tenant, &self.dataset, now_millis(), None),
        )
        .await
    }

    async fn queue_segment_job(&self, id: &str) -> SegmentJob {
        created_segment_job(&self.meta, &new_segment_job(&self.tenant, id, now_millis())).await
    }

    fn start(&self, behaviour: Behaviour) -> (JobQueue, JobWorkers) {
        let queue = JobQueue::new(self.meta.clone());
        let exporter = Arc::new(FakeExporter {
            lake: self.lake.clone(),
            behaviour,
        });
        let workers = JobWorkers::start(queue.clone(), self.lake.clone(), exporter, test_settings("here"));
        (queue, workers)
    }

    /// Runs the recovery a node named `node` does (see [`test_settings`]).
    async fn recover(&self, node: &str, orphans: Orphans) -> usize {
        recover_orphaned_jobs(&self.meta, &self.lake, &test_settings(node), orphans)
            .await
            .unwrap()
    }

    /// Claims the next job as a worker of a node that then dies, with a heartbeat of `beat`.
    async fn claim_as_dead(&self, worker: &str, beat: i64) -> ClaimedJob {
        self.meta
            .claim_next_job(worker, beat, PerSandbox::UNLIMITED)
            .await
            .unwrap()
            .expect("a job is queued")
    }

    async fn wait_for(&self, id: i64, until: impl Fn(&ExportJob) -> bool) -> ExportJob {
        let read = || async move { self.meta.export_job(&self.tenant, id).await.unwrap().unwrap() };
        poll(read, until, |job| format!("job {id} stays {}", job.status)).await
    }

    async fn wait_for_processing(&self, id: i64) -> ExportJob {
        self.wait_for(id, |job| job.status == ExportJobStatus::Processing).await
    }

    async fn wait_for_end(&self, id: i64) -> ExportJob {
        self.wait_for(id, |job| job.status.is_terminal()).await
    }

    async fn wait_for_segment_job(&self, id: &str, until: impl Fn(&SegmentJob) -> bool) -> SegmentJob {
        let read = || async move { self.meta.segment_job(&self.tenant, id).await.unwrap().unwrap() };
        poll(read, until, |job| format!("segment job {id} stays {}", job.status)).await
    }

    async fn wait_for_segment_end(&self, id: &str) -> SegmentJob {
        self.wait_for_segment_job(id, |job| job.status.is_terminal()).await
    }

    async fn batch_status(&self, job: &ExportJob) -> BatchStatus {
        let batch = &job.batches[0].batch_id;
        self.meta.get_batch(&self.tenant, batch).await.unwrap().unwrap().status
    }

    async fn files_in_lake(&self, job: &ExportJob) -> usize {
        let folder = Lake::batch_prefix(&self.tenant, &self.dataset, &job.batches[0].batch_id);
        self.lake.list(&folder).await.unwrap().len()
    }
}

/// One worker, quick heartbeats, a lease of 2 s and 2 attempts, on node `node`.
fn test_settings(node: &str) -> WorkerSettings {
    WorkerSettings {
        workers: 1,
        heartbeat: Duration::from_millis(50),
        idle_poll: Duration::from_millis(50),
        node: node.into(),
        lease: Duration::from_secs(2),
        max_attempts: 2,
    }
}

/// A heartbeat old enough for the lease of [`test_settings`] to have expired.
fn expired() -> i64 {
    now_millis() - 60_000
}

/// An ended export's status and first error code.
fn failure(job: &ExportJob) -> (ExportJobStatus, &str) {
    (job.status, job.errors.first().map_or("", |e| e.code.as_str()))
}

/// A fresh store with one export queued, and a worker that runs it as `behaviour` says.
async fn one_export(behaviour: Behaviour) -> (Setup, ExportJob, JobQueue, JobWorkers) {
    let setup = setup().await;
    let job = setup.queue_job().await;
    let (queue, workers) = setup.start(behaviour);
    (setup, job, queue, workers)
}

/// A fresh store with one segment job `id` queued, and a worker that runs it as `behaviour` says.
async fn one_segment_job(id: &str, behaviour: Behaviour) -> (Setup, SegmentJob, JobQueue, JobWorkers) {
    let setup = setup().await;
    let job = setup.queue_segment_job(id).await;
    let (queue, workers) = setup.start(behaviour);
    (setup, job, queue, workers)
}

/// Reads with `read` every 10 ms until `until` holds of what it returns, for ten seconds at most
/// (then panics with what `stuck` says of the last read).
async fn poll<T, F: Future<Output = T>>(
    read: impl Fn() -> F,
    until: impl Fn(&T) -> bool,
    stuck: impl Fn(&T) -> String,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = read().await;
        if until(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{}", stuck(&value));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_successful_export_commits_its_batches_files_and_metrics() {
    let (setup, job, queue, workers) = one_export(Behaviour::Succeed).await;
    queue.job_queued();
    let done = setup.wait_for_end(job.id).await;
    assert_eq!(done.status, ExportJobStatus::Succeeded);
    assert_eq!(done.metrics.exported_profiles, Some(2));
    assert_eq!(done.metrics.exported_by_namespace["CRMID"], 2);
    assert!(done.metrics.total_time.end.is_some() && done.metrics.dataset_write_time.is_some());
    assert_eq!(setup.batch_status(&done).await, BatchStatus::Success);
    let files = setup
        .meta
        .batch_files(&setup.tenant, &done.batches[0].batch_id, FileKind::Data)
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_failed_export_records_its_error_and_removes_its_files() {
    let (setup, job, _queue, workers) = one_export(Behaviour::Fail).await;
    let done = setup.wait_for_end(job.id).await;
    assert_eq!(failure(&done), (ExportJobStatus::Failed, "EXPORT-WRITE-500"));
    assert_eq!(done.errors[0].msg, "the test said so");
    assert!(done.errors[0].call_stack.contains("writing"));
    assert_eq!(setup.batch_status(&done).await, BatchStatus::Failed);
    assert_eq!(setup.files_in_lake(&done).await, 0);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panicking_export_fails_its_job_instead_of_leaving_it_processing() {
    let (setup, job, _queue, workers) = one_export(Behaviour::Panic).await;
    let done = setup.wait_for_end(job.id).await;
    assert_eq!(failure(&done), (ExportJobStatus::Failed, "EXPORT-INTERNAL-500"));
    assert!(done.errors[0].msg.contains("the test panics"));
    assert_eq!(setup.files_in_lake(&done).await, 0);
    // The worker survives and takes the next job.
    let next = setup.queue_job().await;
    assert_eq!(setup.wait_for_end(next.id).await.status, ExportJobStatus::Failed);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn cancelling_a_running_export_stops_it_within_a_second() {
    let (setup, job, queue, workers) = one_export(Behaviour::RunUntilCancelled).await;
    let running = setup.wait_for_processing(job.id).await;
    assert_eq!(setup.batch_status(&running).await, BatchStatus::Processing);
    // Wait until the export has written its file, so the cancel has something to remove.
    let files = || setup.files_in_lake(&running);
    poll(files, |count| *count > 0, |_| "the export writes no file".into()).await;
    assert!(queue.live_progress(&setup.tenant, job.id).is_some());
    let asked = Instant::now();
    assert!(matches!(
        queue.cancel_export_job(&setup.tenant, job.id).await.unwrap(),
        Some(ExportCancellation::Requested(_))
    ));
    let done = setup.wait_for_end(job.id).await;
    assert!(asked.elapsed() < Duration::from_secs(1), "{:?}", asked.elapsed());
    assert_eq!(done.status, ExportJobStatus::Cancelled);
    assert_eq!(setup.batch_status(&done).await, BatchStatus::Failed);
    assert_eq!(setup.files_in_lake(&done).await, 0);
    assert!(queue.live_progress(&setup.tenant, job.id).is_none());
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_cancel_through_the_store_alone_reaches_the_worker_at_its_heartbeat() {
    let (setup, job, _queue, workers) = one_export(Behaviour::RunUntilCancelled).await;
    setup.wait_for_processing(job.id).await;
    // As another process would: only the row is marked; this process's flag is not touched.
    setup
        .meta
        .cancel_export_job(&setup.tenant, job.id, now_millis())
        .await
        .unwrap();
    assert_eq!(setup.wait_for_end(job.id).await.status, ExportJobStatus::Cancelled);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutting_down_puts_the_running_export_back_on_the_queue_without_its_files() {
    let (setup, job, _queue, workers) = one_export(Behaviour::RunUntilCancelled).await;
    let running = setup.wait_for_processing(job.id).await;
    let files = || setup.files_in_lake(&running);
    poll(files, |count| *count > 0, |_| "the export writes no file".into()).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let after = setup.meta.export_job(&setup.tenant, job.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        ExportJobStatus::Processing,
        "still to be done, by another run"
    );
    assert_eq!(setup.files_in_lake(&after).await, 0);
    let entry = setup
        .meta
        .queue_entry(&JobKey::export(&setup.tenant, after.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.state, entry.worker, entry.attempts),
        (JobState::Queued, None, 0),
        "the stop costs no attempt"
    );
    // The next start (or another node) runs it to the end.
    let (_queue, workers) = setup.start(Behaviour::Succeed);
    assert_eq!(setup.wait_for_end(job.id).await.status, ExportJobStatus::Succeeded);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_job_of_a_dead_node_is_taken_over_only_once_its_lease_expired() {
    let setup = setup().await;
    let job = setup.queue_job().await;
    let ClaimedJob::Export(claimed) = setup.claim_as_dead("elsewhere/worker-0", now_millis()).await else {
        panic!("the export is claimed");
    };
    FakeExporter {
        lake: setup.lake.clone(),
        behaviour: Behaviour::Succeed,
    }
    .write_files(&ExportRequest {
        tenant: claimed.tenant.clone(),
        job_id: claimed.id,
        spec: claimed.spec.clone(),
        batches: claimed.batches.clone(),
    })
    .await;
    // A live lease of another node is not this node's business, at startup or later.
    assert_eq!(setup.recover("here", Orphans::AtStartup).await, 0);
    assert_eq!(setup.recover("here", Orphans::Expired).await, 0);
    assert_eq!(setup.files_in_lake(&job).await, 1);
    // The lease expires: the job is cleaned and queued again, once, whoever races for it.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (one, two) = tokio::join!(
        setup.recover("here", Orphans::Expired),
        setup.recover("there", Orphans::Expired)
    );
    assert_eq!(one + two, 1, "one node takes the job over");
    assert_eq!(setup.files_in_lake(&job).await, 0);
    let entry = setup
        .meta
        .queue_entry(&JobKey::export(&setup.tenant, job.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((entry.state, entry.attempts), (JobState::Queued, 1));
    // The dead worker, if it was only slow, may no longer beat or end the job.
    let key = JobKey::export(&setup.tenant, job.id);
    assert_eq!(
        setup
            .meta
            .job_heartbeat(&key, "elsewhere/worker-0", None, now_millis())
            .await
            .unwrap(),
        None
    );
    let fenced = setup
        .meta
        .end_export_job(
            &setup.tenant,
            job.id,
            Some("elsewhere/worker-0"),
            ExportJobStatus::Failed,
            &[],
            now_millis(),
        )
        .await
        .unwrap();
    assert!(!fenced);
    // Another worker runs it again to the end.
    let (_queue, workers) = setup.start(Behaviour::Succeed);
    let done = setup.wait_for_end(job.id).await;
    assert_eq!(done.status, ExportJobStatus::Succeeded);
    assert_eq!(setup.batch_status(&done).await, BatchStatus::Success);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_job_that_holds_its_thread_longer_than_the_lease_keeps_its_lease() {
    let (setup, job, _queue, workers) = one_export(Behaviour::HogTheThread).await;
    setup.wait_for_processing(job.id).await;
    // Past the 2 s lease while the job has not awaited once: its beats still came.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(setup.recover("there", Orphans::Expired).await, 0, "the lease is live");
    let done = setup.wait_for_end(job.id).await;
    assert_eq!(done.status, ExportJobStatus::Succeeded);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_start_takes_over_its_own_last_runs_jobs_at_once() {
    let setup = setup().await;
    let job = setup.queue_job().await;
    setup.claim_as_dead("here/worker-1", now_millis()).await;
    assert_eq!(
        setup.recover("there", Orphans::AtStartup).await,
        0,
        "not the other node's"
    );
    assert_eq!(setup.recover("here", Orphans::Expired).await, 0, "its lease is live");
    assert_eq!(setup.recover("here", Orphans::AtStartup).await, 1);
    let entry = setup
        .meta
        .queue_entry(&JobKey::export(&setup.tenant, job.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.state, JobState::Queued);
}

#[tokio::test]
async fn a_job_whose_nodes_keep_dying_fails_after_its_attempts_saying_why() {
    let setup = setup().await;
    let job = setup.queue_job().await;
    for attempt in 1..=2 {
        setup
            .claim_as_dead(&format!("dead-{attempt}/worker-0"), expired())
            .await;
        assert_eq!(setup.recover("here", Orphans::Expired).await, 1);
    }
    let done = setup.meta.export_job(&setup.tenant, job.id).await.unwrap().unwrap();
    assert_eq!(failure(&done), (ExportJobStatus::Failed, "EXPORT-WORKER-LOST"));
    assert!(
        done.errors[0].msg.contains("attempted 2 times"),
        "{}",
        done.errors[0].msg
    );
    assert!(
        done.errors[0].msg.contains("'dead-2/worker-0'"),
        "{}",
        done.errors[0].msg
    );
    assert_eq!(done.errors[0].call_stack, "lease recovery, attempt 2 of 2");
    assert_eq!(setup.batch_status(&done).await, BatchStatus::Failed);
    assert!(
        setup
            .meta
            .queue_entry(&JobKey::export(&setup.tenant, job.id))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn cancelling_a_job_queued_again_after_its_node_died_ends_it_at_once() {
    let setup = setup().await;
    let job = setup.queue_job().await;
    setup.claim_as_dead("dead/worker-0", expired()).await;
    assert_eq!(setup.recover("here", Orphans::Expired).await, 1);
    let queue = JobQueue::new(setup.meta.clone());
    assert!(matches!(
        queue.cancel_export_job(&setup.tenant, job.id).await.unwrap(),
        Some(ExportCancellation::Cancelled(_))
    ));
    let done = setup.meta.export_job(&setup.tenant, job.id).await.unwrap().unwrap();
    assert_eq!(done.status, ExportJobStatus::Cancelled);
}

#[tokio::test]
async fn segment_jobs_run_through_the_same_workers_and_seam() {
    let setup = setup().await;
    let failing = setup.queue_segment_job("first").await;
    let (_queue, workers) = setup.start(Behaviour::Fail);
    let done = setup.wait_for_segment_end(&failing.id).await;
    assert_eq!(done.status, SegmentJobStatus::Failed);
    assert_eq!(done.errors[0].code, "SEGMENT-TEST-500");
    assert_eq!(done.errors[0].call_stack, "segment evaluation");
    // The export queued after it runs on the same worker.
    let export = setup.queue_job().await;
    assert_eq!(setup.wait_for_end(export.id).await.status, ExportJobStatus::Failed);
    workers.shutdown(Duration::from_secs(5)).await;

    let ok = setup.queue_segment_job("second").await;
    let (_queue, workers) = setup.start(Behaviour::Succeed);
    let done = setup.wait_for_segment_end(&ok.id).await;
    assert_eq!(done.status, SegmentJobStatus::Succeeded);
    assert!(done.metrics.end.is_some());
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn cancelling_a_running_segment_job_stops_it_through_the_same_registry() {
    let (setup, job, queue, workers) = one_segment_job("slow", Behaviour::RunUntilCancelled).await;
    setup
        .wait_for_segment_job(&job.id, |j| j.status == SegmentJobStatus::Processing)
        .await;
    let asked = Instant::now();
    let cancelling = queue.cancel_segment_job(&setup.tenant, &job.id).await.unwrap().unwrap();
    assert_eq!(cancelling.status, SegmentJobStatus::Cancelling);
    let done = setup.wait_for_segment_end(&job.id).await;
    assert!(asked.elapsed() < Duration::from_secs(1), "{:?}", asked.elapsed());
    assert_eq!(done.status, SegmentJobStatus::Cancelled);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panicking_evaluation_fails_its_segment_job() {
    let (setup, job, _queue, workers) = one_segment_job("boom", Behaviour::Panic).await;
    let done = setup.wait_for_segment_end(&job.id).await;
    assert_eq!(done.status, SegmentJobStatus::Failed);
    assert_eq!(done.errors[0].code, "SEGMENT-INTERNAL-500");
    assert!(done.errors[0].msg.contains("the test panics"));
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn one_recovery_takes_over_running_jobs_of_both_kinds() {
    let setup = setup().await;
    let export = setup.queue_job().await;
    let cancelled = setup.queue_segment_job("cancelled").await;
    let requeued = setup.queue_segment_job("requeued").await;
    let waiting = setup.queue_segment_job("waiting").await;
    for _ in 0..3 {
        setup.claim_as_dead("dead/worker-0", expired()).await;
    }
    setup
        .meta
        .cancel_segment_job(&setup.tenant, &cancelled.id, now_millis())
        .await
        .unwrap();
    assert_eq!(setup.recover("here", Orphans::Expired).await, 3);
    let export = setup.meta.export_job(&setup.tenant, export.id).await.unwrap().unwrap();
    assert_eq!(export.status, ExportJobStatus::Processing);
    let status = |id: String| {
        let meta = setup.meta.clone();
        let tenant = setup.tenant.clone();
        async move { meta.segment_job(&tenant, &id).await.unwrap().unwrap() }
    };
    assert_eq!(status(cancelled.id).await.status, SegmentJobStatus::Cancelled);
    assert_eq!(status(requeued.id.clone()).await.status, SegmentJobStatus::Processing);
    // A queued job is not recovery's business: it waits for a worker.
    assert_eq!(status(waiting.id).await.status, SegmentJobStatus::New);
    assert!(setup.meta.running_jobs(None).await.unwrap().is_empty());
    // Workers run both taken-over jobs again, and the waiting one.
    let (_queue, workers) = setup.start(Behaviour::Succeed);
    assert_eq!(setup.wait_for_end(export.id).await.status, ExportJobStatus::Succeeded);
    assert_eq!(
        setup.wait_for_segment_end(&requeued.id).await.status,
        SegmentJobStatus::Succeeded
    );
    workers.shutdown(Duration::from_secs(5)).await;
}
