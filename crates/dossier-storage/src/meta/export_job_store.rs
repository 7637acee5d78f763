//! Export jobs: what the API shows of them, and their side of the job queue (claim, heartbeat
//! and recovery are [`super::JobQueueStore`]'s).
//!
//! Contract: a job and its Catalog batches change together, always in one transaction: created
//! (job NEW, batches `loading`), claimed (PROCESSING / `processing`), and ended — SUCCEEDED with
//! every batch `success` and its files, or FAILED / CANCELLED with every batch `failed`. A job and its
//! queue entry change in the same transaction too. Writes that decide on what they read (create,
//! claim, cancel) exclude every other such write until
//! they commit, so a job is claimed once and ids are sequential per sandbox.

use async_trait::async_trait;

use dossier_model::export_job::{
    ExportBatchTarget, ExportJob, ExportJobError, ExportJobMetrics, ExportJobStatus, ExportSpec,
};
use dossier_model::ids::{BatchId, ClientId};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::BatchOutcome;
use crate::StorageError;

/// The `Idempotency-Key` of a create request and the digest of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub body_sha256: String,
}

/// A validated job, ready to be queued.
#[derive(Debug, Clone)]
pub struct NewExportJob {
    pub tenant: Tenant,
    pub request_id: String,
    /// The request's fields as the job object echoes them.
    pub request: serde_json::Value,
    pub spec: ExportSpec,
    pub batches: Vec<ExportBatchTarget>,
    pub created_client: ClientId,
    pub created: EpochMillis,
    pub idempotency: Option<IdempotencyKey>,
}

/// What [`ExportJobStore::create_export_job`] did.
#[derive(Debug, Clone)]
pub enum ExportJobCreation {
    Created(ExportJob),
    /// The key was used before with the same body: the job that request created.
    Replayed(ExportJob),
    /// The key was used before with a different body.
    KeyReused {
        job_id: i64,
    },
    /// As many jobs as allowed are waiting for a worker.
    QueueFull {
        queued: u64,
    },
    /// The target dataset was deleted after the request was validated.
    DatasetGone,
}

/// What [`ExportJobStore::cancel_export_job`] did.
#[derive(Debug, Clone)]
pub enum ExportCancellation {
    /// The job was NEW: it is CANCELLED now, its batches `failed`.
    Cancelled(ExportJob),
    /// The job is PROCESSING: it is marked, and its worker stops it.
    Requested(ExportJob),
    /// The job had already ended; nothing changed.
    AlreadyEnded(ExportJob),
}

/// Which page of the listing to read, newest first by (created, id).
#[derive(Debug, Clone, Default)]
pub struct ExportJobListing {
    pub status: Option<ExportJobStatus>,
    /// Only jobs strictly after this `(created, id)` in the listing's order.
    pub after: Option<(EpochMillis, i64)>,
    /// Jobs to skip (after `after`).
    pub skip: u64,
    pub limit: u32,
}

/// Export jobs, their Catalog batches and their queue.
#[async_trait]
pub trait ExportJobStore: Send + Sync {
    /// Queues a job with its batches, in one write transaction that also replays or refuses a
    /// reused `Idempotency-Key`, enforces `max_queued` NEW jobs (across every tenant: the
    /// workers are shared) and makes sure the target dataset still exists.
    async fn create_export_job(&self, new: &NewExportJob, max_queued: u64) -> Result<ExportJobCreation, StorageError>;

    /// A job of this tenant by its id; `None` when it does not exist here.
    async fn export_job(&self, tenant: &Tenant, id: i64) -> Result<Option<ExportJob>, StorageError>;

    /// The job created with this `Idempotency-Key`, and the digest of the body that created it.
    async fn export_job_by_idempotency_key(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> Result<Option<(ExportJob, String)>, StorageError>;

    /// One page of the tenant's jobs, newest first by (created, id).
    async fn list_export_jobs(
        &self,
        tenant: &Tenant,
        listing: &ExportJobListing,
    ) -> Result<Vec<ExportJob>, StorageError>;

    /// Cancels a job: a NEW one at once, a PROCESSING one by marking it for its worker; an ended
    /// job is left as it is. `None` when the job does not exist in this tenant.
    async fn cancel_export_job(
        &self,
        tenant: &Tenant,
        id: i64,
        now: EpochMillis,
    ) -> Result<Option<ExportCancellation>, StorageError>;

    /// The commit of a successful export, in one transaction: the job SUCCEEDED with its
    /// metrics, and every batch `success` with its files (readable from this moment). Returns
    /// `false` and changes nothing when the job is no longer PROCESSING, a cancel was requested
    /// meanwhile, a batch is not `processing`, or `worker` no longer holds the job's lease
    /// (another node took the job over: its run, not this one, may commit).
    async fn succeed_export_job(
        &self,
        job: &ExportJob,
        worker: &str,
        metrics: &ExportJobMetrics,
        batches: &[(BatchId, BatchOutcome)],
        now: EpochMillis,
    ) -> Result<bool, StorageError>;

    /// Ends a NEW or PROCESSING job FAILED (with `errors`) or CANCELLED, its batches `failed`,
    /// in one transaction. Returns `false` when the job had already ended, or when `holder` is
    /// given and no longer holds the job's lease. `holder` is `None` only for a job no worker
    /// runs (a cancel of a NEW job).
    async fn end_export_job(
        &self,
        tenant: &Tenant,
        id: i64,
        holder: Option<&str>,
        status: ExportJobStatus,
        errors: &[ExportJobError],
        now: EpochMillis,
    ) -> Result<bool, StorageError>;
}
