//! The job queue's contract, as cases any metadata backend must pass: claim, fairness,
//! heartbeat, end, cancel, recovery, and each kind's side of them.
//!
//! Part of the backend suite ([`super::backend_suite!`]): each case takes a freshly opened, empty
//! store and panics when the backend breaks the contract. Its tenants, datasets and export jobs
//! come from [`super::fixtures`].

use dossier_model::catalog::BatchStatus;
use dossier_model::export_job::{ExportJob, ExportJobError, ExportJobProgress, ExportJobStatus};
use dossier_model::segment_job::{SegmentJob, SegmentJobMetrics, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::fixtures::{
    ORG_A, batch, created_export, created_segment_job, new_export_job, new_segment_job, sandbox, stored_dataset,
    success, tenant, with_prod,
};
use crate::meta::{
    ClaimedJob, ExportCancellation, ExportJobCreation, JobKey, JobKind, JobState, MetaStore, NewExportJob, PerSandbox,
    QueueDepth, SegmentJobCreation,
};

const WORKER: &str = "node-a/worker-0";

/// The organization with its `prod` sandbox, and a `dev` sandbox: the two tenants of the cases.
async fn tenants(store: &MetaStore) -> (Tenant, Tenant) {
    let prod = with_prod(store).await;
    store.create_sandbox(&prod.org, &sandbox("dev")).await.unwrap();
    (prod, tenant(ORG_A, "dev"))
}

/// An export job created at `created` into a dataset of its own.
async fn new_export(store: &MetaStore, tenant: &Tenant, created: EpochMillis) -> NewExportJob {
    let dataset = stored_dataset(store, tenant, "export target", 1).await;
    new_export_job(tenant, &dataset.id, created, None)
}

async fn queue_export(store: &MetaStore, tenant: &Tenant, created: EpochMillis) -> ExportJob {
    created_export(store, &new_export(store, tenant, created).await).await
}

async fn queue_segment_job(store: &MetaStore, tenant: &Tenant, id: &str, created: EpochMillis) -> SegmentJob {
    created_segment_job(store, &new_segment_job(tenant, id, created)).await
}

/// The key of the next job claimed, or `None` when nothing may be claimed.
async fn claim(store: &MetaStore, now: EpochMillis, cap: PerSandbox) -> Option<JobKey> {
    store
        .claim_next_job(WORKER, now, cap)
        .await
        .unwrap()
        .map(|job| job.key())
}

fn export_key(job: &ExportJob) -> JobKey {
    JobKey::export(&job.tenant, job.id)
}

fn segment_key(job: &SegmentJob) -> JobKey {
    JobKey::segment(&job.tenant, &job.id)
}

/// A claim takes the oldest queued job of either kind, once; its kind's job becomes PROCESSING
/// (an export's batches `processing`, a segment job's start recorded).
pub(crate) async fn claim_takes_the_oldest_job_of_any_kind_once(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let export = queue_export(store, &prod, 20).await;
    let segment = queue_segment_job(store, &prod, "seg", 10).await;
    let Some(ClaimedJob::Segment(claimed)) = store.claim_next_job(WORKER, 30, PerSandbox::UNLIMITED).await.unwrap()
    else {
        panic!("the older segment job goes first");
    };
    assert_eq!(
        (claimed.id.as_str(), claimed.status),
        ("seg", SegmentJobStatus::Processing)
    );
    assert_eq!(claimed.metrics.start, Some(30));
    let Some(ClaimedJob::Export(claimed)) = store.claim_next_job(WORKER, 31, PerSandbox::UNLIMITED).await.unwrap()
    else {
        panic!("then the export");
    };
    assert_eq!((claimed.id, claimed.status), (export.id, ExportJobStatus::Processing));
    let batch = store
        .get_batch(&prod, &claimed.batches[0].batch_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.status, BatchStatus::Processing);
    assert_eq!(claim(store, 32, PerSandbox::UNLIMITED).await, None);
    assert_eq!(
        store.segment_job(&prod, &segment.id).await.unwrap().unwrap().status,
        SegmentJobStatus::Processing
    );
}

/// A claim records who runs the job, its lease (the heartbeat) and one more attempt.
pub(crate) async fn claim_records_worker_lease_and_attempt(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let job = queue_export(store, &prod, 10).await;
    let key = export_key(&job);
    let queued = store.queue_entry(&key).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.worker, queued.attempts),
        (JobState::Queued, None, 0)
    );
    assert_eq!(claim(store, 20, PerSandbox::UNLIMITED).await, Some(key.clone()));
    let running = store.queue_entry(&key).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.worker.as_deref(), Some(WORKER));
    assert_eq!(
        (running.heartbeat, running.attempts, running.cancel_requested),
        (Some(20), 1, false)
    );
}

/// The queue depth counts live entries by kind and state across tenants; an ended job leaves it.
pub(crate) async fn queue_depth_counts_live_jobs_by_kind_and_state(store: MetaStore) {
    let store = &store;
    let (prod, dev) = tenants(store).await;
    assert_eq!(store.queue_depth().await.unwrap(), Vec::new());
    queue_export(store, &prod, 10).await;
    queue_export(store, &dev, 11).await;
    let third = queue_export(store, &dev, 12).await;
    queue_segment_job(store, &prod, "seg", 13).await;
    claim(store, 20, PerSandbox::UNLIMITED).await;
    store
        .end_export_job(&dev, third.id, None, ExportJobStatus::Cancelled, &[], 21)
        .await
        .unwrap();
    let depth = |kind, state, jobs| QueueDepth { kind, state, jobs };
    assert_eq!(
        store.queue_depth().await.unwrap(),
        vec![
            depth(JobKind::Export, JobState::Queued, 1),
            depth(JobKind::Export, JobState::Running, 1),
            depth(JobKind::Segment, JobState::Queued, 1),
        ]
    );
}

/// Each kind has its own limit of queued jobs, counted across tenants.
pub(crate) async fn each_kind_has_its_own_queue_limit(store: MetaStore) {
    let store = &store;
    let (prod, dev) = tenants(store).await;
    queue_export(store, &prod, 10).await;
    queue_export(store, &dev, 11).await;
    // A limit of two refuses a third export, whatever its sandbox.
    let third = new_export(store, &prod, 12).await;
    assert!(matches!(
        store.create_export_job(&third, 2).await.unwrap(),
        ExportJobCreation::QueueFull { queued: 2 }
    ));
    let refused = store
        .create_segment_job(&new_segment_job(&prod, "seg-1", 13), 1)
        .await
        .unwrap();
    assert!(
        matches!(refused, SegmentJobCreation::Created(_)),
        "exports do not count"
    );
    let refused = store
        .create_segment_job(&new_segment_job(&dev, "seg-2", 14), 1)
        .await
        .unwrap();
    assert!(matches!(refused, SegmentJobCreation::QueueFull { queued: 1 }));
    // Claimed jobs no longer wait: the limit is on queued jobs.
    claim(store, 20, PerSandbox::UNLIMITED).await.unwrap();
    claim(store, 21, PerSandbox::UNLIMITED).await.unwrap();
    claim(store, 22, PerSandbox::UNLIMITED).await.unwrap();
    assert!(matches!(
        store.create_export_job(&third, 2).await.unwrap(),
        ExportJobCreation::Created(_)
    ));
    let accepted = store
        .create_segment_job(&new_segment_job(&dev, "seg-2", 24), 1)
        .await
        .unwrap();
    assert!(matches!(accepted, SegmentJobCreation::Created(_)));
}

/// Claims go to the sandbox with the fewest jobs running, under its cap, oldest first.
pub(crate) async fn claims_go_to_the_sandbox_with_the_fewest_running(store: MetaStore) {
    let store = &store;
    let (a, b) = tenants(store).await;
    // Sandbox A queued three jobs before B queued one.
    let mut a_jobs = Vec::new();
    for created in [10, 11, 12] {
        a_jobs.push(export_key(&queue_export(store, &a, created).await));
    }
    let b_job = export_key(&queue_export(store, &b, 13).await);
    let cap = PerSandbox::for_workers(2);
    assert_eq!(claim(store, 20, cap).await.as_ref(), Some(&a_jobs[0]));
    // A runs one job, its cap: B's younger job goes next, then nothing until A's ends.
    assert_eq!(claim(store, 21, cap).await, Some(b_job));
    assert_eq!(claim(store, 22, cap).await, None);
    // Without a cap, A's next job is still taken after B's, fewest running first.
    assert_eq!(claim(store, 23, PerSandbox::UNLIMITED).await.as_ref(), Some(&a_jobs[1]));
}

/// Export and segment jobs count together against a sandbox's cap.
pub(crate) async fn segment_jobs_share_the_cap_with_exports(store: MetaStore) {
    let store = &store;
    let (a, b) = tenants(store).await;
    let export = queue_export(store, &a, 10).await;
    queue_segment_job(store, &a, "a-seg", 11).await;
    let b_seg = queue_segment_job(store, &b, "b-seg", 12).await;
    let cap = PerSandbox::for_workers(2);
    assert_eq!(claim(store, 20, cap).await, Some(export_key(&export)));
    // A's export is running: A's older segment job waits, B's is taken.
    assert_eq!(claim(store, 21, cap).await, Some(segment_key(&b_seg)));
    assert_eq!(claim(store, 22, cap).await, None);
}

/// The heartbeat renews a running job's lease, records an export's counters, and tells the
/// worker about a cancel; it does nothing for a job that is not running.
pub(crate) async fn heartbeat_renews_the_lease_and_reports_a_cancel(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let job = queue_export(store, &prod, 10).await;
    let key = export_key(&job);
    let progress = ExportJobProgress {
        profiles_scanned: 7,
        ..ExportJobProgress::default()
    };
    assert_eq!(
        store.job_heartbeat(&key, WORKER, Some(&progress), 15).await.unwrap(),
        None,
        "queued"
    );
    claim(store, 20, PerSandbox::UNLIMITED).await.unwrap();
    assert_eq!(
        store.job_heartbeat(&key, WORKER, Some(&progress), 25).await.unwrap(),
        Some(false)
    );
    assert_eq!(store.queue_entry(&key).await.unwrap().unwrap().heartbeat, Some(25));
    // Only the worker that claimed the job holds its lease.
    assert_eq!(
        store.job_heartbeat(&key, "node-b/worker-0", None, 26).await.unwrap(),
        None
    );
    assert_eq!(store.queue_entry(&key).await.unwrap().unwrap().heartbeat, Some(25));
    let shown = store.export_job(&prod, job.id).await.unwrap().unwrap();
    assert_eq!(shown.progress.map(|p| p.profiles_scanned), Some(7));
    assert!(matches!(
        store.cancel_export_job(&prod, job.id, 30).await.unwrap(),
        Some(ExportCancellation::Requested(_))
    ));
    assert_eq!(store.job_heartbeat(&key, WORKER, None, 35).await.unwrap(), Some(true));
    // Ended under its worker: the heartbeat says so.
    assert!(
        store
            .end_export_job(&prod, job.id, Some(WORKER), ExportJobStatus::Cancelled, &[], 40)
            .await
            .unwrap()
    );
    assert_eq!(store.job_heartbeat(&key, WORKER, None, 45).await.unwrap(), None);
}

/// Cancelling a queued job ends it at once and takes it off the queue; cancelling a running one
/// marks it (segment jobs show CANCELLING) for its worker; an ended job is left alone.
pub(crate) async fn cancel_ends_a_queued_job_and_marks_a_running_one(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let running_export = queue_export(store, &prod, 10).await;
    let running_segment = queue_segment_job(store, &prod, "running", 11).await;
    let queued_export = queue_export(store, &prod, 12).await;
    let queued_segment = queue_segment_job(store, &prod, "queued", 13).await;
    claim(store, 20, PerSandbox::UNLIMITED).await.unwrap();
    claim(store, 21, PerSandbox::UNLIMITED).await.unwrap();

    let Some(ExportCancellation::Cancelled(job)) = store.cancel_export_job(&prod, queued_export.id, 30).await.unwrap()
    else {
        panic!("a queued export is cancelled at once");
    };
    assert_eq!(job.status, ExportJobStatus::Cancelled);
    let batch = store.get_batch(&prod, &job.batches[0].batch_id).await.unwrap().unwrap();
    assert_eq!(batch.status, BatchStatus::Failed);
    assert_eq!(store.queue_entry(&export_key(&queued_export)).await.unwrap(), None);
    let job = store
        .cancel_segment_job(&prod, &queued_segment.id, 31)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, SegmentJobStatus::Cancelled);
    assert_eq!(store.queue_entry(&segment_key(&queued_segment)).await.unwrap(), None);
    // Nothing queued is left to claim.
    assert_eq!(claim(store, 32, PerSandbox::UNLIMITED).await, None);

    assert!(matches!(
        store.cancel_export_job(&prod, running_export.id, 33).await.unwrap(),
        Some(ExportCancellation::Requested(job)) if job.cancel_requested && job.status == ExportJobStatus::Processing
    ));
    let job = store
        .cancel_segment_job(&prod, &running_segment.id, 34)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, SegmentJobStatus::Cancelling);
    for key in [export_key(&running_export), segment_key(&running_segment)] {
        let entry = store.queue_entry(&key).await.unwrap().unwrap();
        assert!(entry.cancel_requested && entry.state == JobState::Running, "{key:?}");
    }
    // A cancel requested after the export finished wins over its success.
    let claimed = store.export_job(&prod, running_export.id).await.unwrap().unwrap();
    assert!(
        !store
            .succeed_export_job(&claimed, WORKER, &claimed.metrics, &[], 35)
            .await
            .unwrap()
    );
    assert!(
        store
            .end_export_job(
                &prod,
                running_export.id,
                Some(WORKER),
                ExportJobStatus::Cancelled,
                &[],
                36
            )
            .await
            .unwrap()
    );
    assert!(matches!(
        store.cancel_export_job(&prod, running_export.id, 37).await.unwrap(),
        Some(ExportCancellation::AlreadyEnded(job)) if job.status == ExportJobStatus::Cancelled
    ));
    assert!(
        store
            .cancel_export_job(&tenant(ORG_A, "dev"), running_export.id, 38)
            .await
            .unwrap()
            .is_none()
    );
}

/// Every end — success, failure, cancel, of either kind — takes the job off the queue in the
/// same write, and a job ends once.
pub(crate) async fn an_end_takes_the_job_off_the_queue_once(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let export = queue_export(store, &prod, 10).await;
    let failed_export = queue_export(store, &prod, 11).await;
    let segment = queue_segment_job(store, &prod, "ok", 12).await;
    let failed_segment = queue_segment_job(store, &prod, "ko", 13).await;
    for now in 20..24 {
        claim(store, now, PerSandbox::UNLIMITED).await.unwrap();
    }
    assert_eq!(store.running_jobs(None).await.unwrap().len(), 4);

    let running = store.export_job(&prod, export.id).await.unwrap().unwrap();
    assert!(
        store
            .succeed_export_job(&running, WORKER, &running.metrics, &[], 30)
            .await
            .unwrap()
    );
    let error = ExportJobError {
        code: "TEST".into(),
        msg: "the case said so".into(),
        call_stack: "queue cases".into(),
    };
    let errors = std::slice::from_ref(&error);
    assert!(
        store
            .end_export_job(
                &prod,
                failed_export.id,
                Some(WORKER),
                ExportJobStatus::Failed,
                errors,
                31
            )
            .await
            .unwrap()
    );
    let running = store.segment_job(&prod, &segment.id).await.unwrap().unwrap();
    let superseded = store
        .succeed_segment_job(&running, WORKER, &SegmentJobMetrics::default(), &[], 32)
        .await
        .unwrap();
    assert_eq!(superseded, Some(Vec::new()));
    assert!(
        store
            .end_segment_job(
                &failed_segment,
                Some(WORKER),
                SegmentJobStatus::Failed,
                errors,
                None,
                33
            )
            .await
            .unwrap()
    );
    assert!(store.running_jobs(None).await.unwrap().is_empty());
    // Ended jobs keep what the API shows; a second end changes nothing.
    let shown = store.export_job(&prod, failed_export.id).await.unwrap().unwrap();
    assert_eq!(
        (shown.status, shown.errors),
        (ExportJobStatus::Failed, vec![error.clone()])
    );
    assert!(
        !store
            .end_export_job(
                &prod,
                failed_export.id,
                Some(WORKER),
                ExportJobStatus::Cancelled,
                &[],
                34
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_segment_job(
                &failed_segment,
                Some(WORKER),
                SegmentJobStatus::Cancelled,
                &[],
                None,
                35
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.segment_job(&prod, &segment.id).await.unwrap().unwrap().status,
        SegmentJobStatus::Succeeded
    );
}

/// Recovery sees every running job of both kinds, oldest first, or only those whose lease
/// expired; queued jobs are not its business.
pub(crate) async fn recovery_lists_running_jobs_and_expired_leases(store: MetaStore) {
    let store = &store;
    let (prod, dev) = tenants(store).await;
    let export = queue_export(store, &prod, 10).await;
    let segment = queue_segment_job(store, &dev, "seg", 11).await;
    queue_export(store, &prod, 12).await;
    claim(store, 20, PerSandbox::UNLIMITED).await.unwrap();
    claim(store, 21, PerSandbox::UNLIMITED).await.unwrap();
    store
        .job_heartbeat(&segment_key(&segment), WORKER, None, 40)
        .await
        .unwrap();
    let all: Vec<_> = store.running_jobs(None).await.unwrap();
    let keys: Vec<_> = all.iter().map(|entry| entry.key.clone()).collect();
    assert_eq!(keys, [export_key(&export), segment_key(&segment)]);
    assert!(all.iter().all(|entry| entry.state == JobState::Running));
    let expired = store.running_jobs(Some(30)).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].key.kind, expired[0].heartbeat), (JobKind::Export, Some(20)));
}

/// A takeover is a compare-and-set on the lease: it succeeds once, against the lease as read;
/// from then on the old worker's heartbeats, successes and ends are refused, and the new
/// holder may put the job back on the queue, where a claim takes it again (PROCESSING, one
/// more attempt) and a cancel ends it at once.
pub(crate) async fn a_takeover_fences_the_old_worker_and_requeues_the_job(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let export = queue_export(store, &prod, 10).await;
    let segment = queue_segment_job(store, &prod, "seg", 11).await;
    claim(store, 20, PerSandbox::UNLIMITED).await.unwrap();
    claim(store, 21, PerSandbox::UNLIMITED).await.unwrap();
    let (export_key, segment_key) = (export_key(&export), segment_key(&segment));
    let read = store.queue_entry(&export_key).await.unwrap().unwrap();
    // A lease renewed since it was read is not taken.
    store.job_heartbeat(&export_key, WORKER, None, 25).await.unwrap();
    assert!(!store.take_over_job(&read, "node-b/recovery", false, 60).await.unwrap());
    let read = store.queue_entry(&export_key).await.unwrap().unwrap();
    assert!(store.take_over_job(&read, "node-b/recovery", false, 60).await.unwrap());
    assert!(
        !store.take_over_job(&read, "node-c/recovery", false, 61).await.unwrap(),
        "once"
    );
    let taken = store.queue_entry(&export_key).await.unwrap().unwrap();
    assert_eq!(
        (taken.worker.as_deref(), taken.heartbeat),
        (Some("node-b/recovery"), Some(60))
    );
    // The old worker is fenced.
    assert_eq!(store.job_heartbeat(&export_key, WORKER, None, 62).await.unwrap(), None);
    let running = store.export_job(&prod, export.id).await.unwrap().unwrap();
    assert!(
        !store
            .succeed_export_job(&running, WORKER, &running.metrics, &[], 63)
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_export_job(&prod, export.id, Some(WORKER), ExportJobStatus::Failed, &[], 63)
            .await
            .unwrap()
    );
    assert!(!store.requeue_job(&export_key, WORKER, false).await.unwrap());
    // The holder puts it back; a claim takes it again as a new attempt.
    assert!(store.requeue_job(&export_key, "node-b/recovery", false).await.unwrap());
    let queued = store.queue_entry(&export_key).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.worker, queued.attempts),
        (JobState::Queued, None, 1)
    );
    assert_eq!(
        store.export_job(&prod, export.id).await.unwrap().unwrap().status,
        ExportJobStatus::Processing
    );
    assert_eq!(claim(store, 70, PerSandbox::UNLIMITED).await, Some(export_key.clone()));
    let again = store.export_job(&prod, export.id).await.unwrap().unwrap();
    let entry = store.queue_entry(&export_key).await.unwrap().unwrap();
    assert_eq!((entry.state, entry.attempts), (JobState::Running, 2));
    assert!(
        store
            .succeed_export_job(&again, WORKER, &again.metrics, &[], 71)
            .await
            .unwrap()
    );
    // A requeue that refunds the attempt (a server that stops) leaves the count as it was.
    assert!(store.requeue_job(&segment_key, WORKER, true).await.unwrap());
    let queued = store.queue_entry(&segment_key).await.unwrap().unwrap();
    assert_eq!((queued.state, queued.attempts), (JobState::Queued, 0));
    // A job waiting again is cancelled at once, as a NEW one is.
    let job = store.cancel_segment_job(&prod, &segment.id, 80).await.unwrap().unwrap();
    assert_eq!(job.status, SegmentJobStatus::Cancelled);
    assert_eq!(store.queue_entry(&segment_key).await.unwrap(), None);
}

/// The COMPLETE of an ingestion batch takes a running `ingest` lease in the transaction that
/// moves the batch to `processing` (once: a second COMPLETE takes nothing); its heartbeat and
/// takeover are a job's; workers never claim it and it does not count against its sandbox's
/// running jobs; the batch's commit, or its abort, drops it.
pub(crate) async fn an_ingestion_holds_a_lease_until_its_batch_commits_or_aborts(store: MetaStore) {
    let store = &store;
    let (prod, _) = tenants(store).await;
    let dataset = stored_dataset(store, &prod, "crm", 1).await;
    let (committed, aborted) = (
        batch(&dataset, BatchStatus::Loading, 2),
        batch(&dataset, BatchStatus::Loading, 3),
    );
    for loading in [&committed, &aborted] {
        store.insert_batch(loading).await.unwrap();
    }
    let (moved, started) = store
        .start_ingestion(&prod, &committed.id, "node-a/ingest", 10)
        .await
        .unwrap()
        .unwrap();
    assert!(started && moved.status == BatchStatus::Processing);
    let (_, again) = store
        .start_ingestion(&prod, &committed.id, "node-b/ingest", 11)
        .await
        .unwrap()
        .unwrap();
    assert!(!again, "a second COMPLETE moves nothing and takes no lease");
    store
        .start_ingestion(&prod, &aborted.id, "node-a/ingest", 12)
        .await
        .unwrap();
    let key = JobKey::ingest(&prod, &committed.id);
    let entry = store.queue_entry(&key).await.unwrap().unwrap();
    assert_eq!(
        (entry.state, entry.worker.as_deref(), entry.heartbeat, entry.attempts),
        (JobState::Running, Some("node-a/ingest"), Some(10), 1)
    );
    assert_eq!(
        store.job_heartbeat(&key, "node-a/ingest", None, 20).await.unwrap(),
        Some(false)
    );
    assert_eq!(
        store.job_heartbeat(&key, "node-b/ingest", None, 21).await.unwrap(),
        None
    );
    let leased: Vec<_> = store.running_jobs(Some(30)).await.unwrap();
    assert_eq!(leased.len(), 2, "both ingestions' leases are listed for recovery");
    // An export of the same sandbox is claimed under a cap of one running job per sandbox.
    let export = queue_export(store, &prod, 25).await;
    assert_eq!(
        claim(store, 26, PerSandbox::at_most(1)).await,
        Some(export_key(&export))
    );
    // A takeover moves the lease, here counting a run of its own; the commit then drops it
    // whoever holds it.
    assert!(
        store
            .take_over_job(&entry_now(store, &key).await, "node-b/ingest", true, 40)
            .await
            .unwrap()
    );
    let taken = entry_now(store, &key).await;
    assert_eq!((taken.worker.as_deref(), taken.attempts), (Some("node-b/ingest"), 2));
    let outcome = success(&moved, 50, &["part-00000.parquet"]);
    assert!(store.commit_batch(&prod, &committed.id, &outcome).await.unwrap());
    assert_eq!(store.queue_entry(&key).await.unwrap(), None);
    store
        .transition_batch(&prod, &aborted.id, &[BatchStatus::Processing], BatchStatus::Aborted, 60)
        .await
        .unwrap();
    assert_eq!(
        store.queue_entry(&JobKey::ingest(&prod, &aborted.id)).await.unwrap(),
        None
    );
}

async fn entry_now(store: &MetaStore, key: &JobKey) -> crate::meta::QueueEntry {
    store.queue_entry(key).await.unwrap().expect("a live entry")
}
