//! Segment jobs (what the API shows of them, and their side of the job queue), and the current
//! membership file of each segment.
//!
//! Contract: as with export jobs, writes that decide on what they read (create, claim, cancel,
//! succeed) exclude every other such write until they commit. A job's success and the switch of
//! its segments' membership files are one transaction: a reader sees the old files or the new
//! ones.

use async_trait::async_trait;

use dossier_model::export_job::ExportJobError;
use dossier_model::ids::ClientId;
use dossier_model::segment_job::{SegmentJob, SegmentJobMetrics, SegmentJobSegment, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// A validated segment job, ready to be queued.
#[derive(Debug, Clone)]
pub struct NewSegmentJob {
    pub tenant: Tenant,
    pub id: String,
    pub request_id: String,
    pub segments: Vec<SegmentJobSegment>,
    pub created_client: ClientId,
    pub created: EpochMillis,
}

/// What [`SegmentJobStore::create_segment_job`] did.
#[derive(Debug, Clone)]
pub enum SegmentJobCreation {
    Created(Box<SegmentJob>),
    /// As many segment jobs as allowed are waiting for a worker.
    QueueFull {
        queued: u64,
    },
}

/// The membership file of one segment that evaluation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipFile {
    pub segment_id: String,
    pub path: String,
    pub job_id: String,
    pub evaluated: EpochMillis,
    pub rows: i64,
}

/// Segment jobs and the membership files they write. Their claim, heartbeat and recovery are
/// the job queue's ([`super::JobQueueStore`]); every write here changes the job's queue entry in
/// the same transaction.
#[async_trait]
pub trait SegmentJobStore: Send + Sync {
    /// Queues a job, refusing when `max_queued` segment jobs (of every tenant) are NEW.
    async fn create_segment_job(
        &self,
        new: &NewSegmentJob,
        max_queued: u64,
    ) -> Result<SegmentJobCreation, StorageError>;

    /// A job of this tenant by its id; `None` when it does not exist here.
    async fn segment_job(&self, tenant: &Tenant, id: &str) -> Result<Option<SegmentJob>, StorageError>;

    /// One page of the tenant's jobs by creation time, and how many there are in all.
    async fn list_segment_jobs(
        &self,
        tenant: &Tenant,
        status: Option<SegmentJobStatus>,
        ascending: bool,
        start: u64,
        limit: u32,
    ) -> Result<(Vec<SegmentJob>, u64), StorageError>;

    /// Cancels a job: a NEW one becomes CANCELLED at once, a PROCESSING one CANCELLING (its
    /// worker stops it); an ended job is left as it is. `None` when it does not exist here.
    async fn cancel_segment_job(
        &self,
        tenant: &Tenant,
        id: &str,
        now: EpochMillis,
    ) -> Result<Option<SegmentJob>, StorageError>;

    /// Ends a job SUCCEEDED with its metrics and makes `files` the current membership files of
    /// their segments, in one transaction. Returns the superseded files' paths, or `None` (and
    /// changes nothing) when the job is no longer PROCESSING (a cancel came first) or `worker`
    /// no longer holds its lease (another node took it over).
    async fn succeed_segment_job(
        &self,
        job: &SegmentJob,
        worker: &str,
        metrics: &SegmentJobMetrics,
        files: &[MembershipFile],
        now: EpochMillis,
    ) -> Result<Option<Vec<String>>, StorageError>;

    /// Makes `files` current outside a segment job (an export evaluating its segments first).
    /// Returns the superseded files' paths.
    async fn switch_membership_files(
        &self,
        tenant: &Tenant,
        files: &[MembershipFile],
    ) -> Result<Vec<String>, StorageError>;

    /// Ends a NEW, PROCESSING or CANCELLING job FAILED (with `errors`) or CANCELLED, with its
    /// metrics. Returns `false` when it had already ended, or when `holder` is given and no
    /// longer holds the job's lease (`None`: a job no worker runs).
    async fn end_segment_job(
        &self,
        job: &SegmentJob,
        holder: Option<&str>,
        status: SegmentJobStatus,
        errors: &[ExportJobError],
        metrics: Option<&SegmentJobMetrics>,
        now: EpochMillis,
    ) -> Result<bool, StorageError>;

    /// The current membership file of each evaluated segment of the tenant.
    async fn membership_files(&self, tenant: &Tenant) -> Result<Vec<MembershipFile>, StorageError>;
}
