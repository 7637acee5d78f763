//! Batch state changes and the files of committed batches.
//!
//! A batch's files become readable in the same transaction that moves the batch to `success`;
//! that transaction is the commit point of every writer (ingestion now, exports later).

use async_trait::async_trait;

use dossier_model::catalog::{Batch, BatchError, BatchStatus};
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// What a file of a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum FileKind {
    /// Rows of the dataset, readable once the batch is `success`.
    Data,
    /// Row errors of a failed (or partially ingested) batch.
    Failed,
}

impl FileKind {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A file of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFile {
    /// The Data Access API's `dataSetFileId`.
    pub file_id: String,
    pub batch_id: BatchId,
    pub dataset_id: DatasetId,
    pub kind: FileKind,
    /// The file's name within its batch (`part-00000.parquet`).
    pub name: String,
    /// Where the file lives in the lake.
    pub path: String,
    pub size: i64,
    pub records: i64,
    pub created: EpochMillis,
}

/// How a batch ends: everything its commit records at once.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub status: BatchStatus,
    pub completed: EpochMillis,
    pub records_read: i64,
    pub record_count: i64,
    pub size: i64,
    pub errors: Vec<BatchError>,
    pub files: Vec<BatchFile>,
}

/// Batch state changes and the files of committed batches.
#[async_trait]
pub trait BatchFileStore: Send + Sync {
    /// Moves a batch to `to` if it is currently in one of `from` (a compare-and-set, so two
    /// callers racing on one batch cannot both win). Returns the batch as it is afterwards, or
    /// `None` when it does not exist in this tenant.
    async fn transition_batch(
        &self,
        tenant: &Tenant,
        id: &BatchId,
        from: &[BatchStatus],
        to: BatchStatus,
        now: EpochMillis,
    ) -> Result<Option<(Batch, bool)>, StorageError>;

    /// The COMPLETE of an ingestion batch: moves it from `loading` to `processing` and, in the
    /// same transaction, takes the ingestion's lease on the job queue for `worker` (a running
    /// `ingest` entry: heartbeat `now`, one attempt), so that if this node dies another resumes
    /// the conversion. As [`BatchFileStore::transition_batch`] otherwise: the batch afterwards,
    /// and whether this call moved it.
    async fn start_ingestion(
        &self,
        tenant: &Tenant,
        id: &BatchId,
        worker: &str,
        now: EpochMillis,
    ) -> Result<Option<(Batch, bool)>, StorageError>;

    /// Ends a `processing` batch: records its outcome and files in one transaction, and drops an
    /// ingestion's lease. Returns `false` (and changes nothing) when the batch is no longer
    /// `processing`, e.g. because it was aborted meanwhile (an abort drops the lease too).
    async fn commit_batch(&self, tenant: &Tenant, id: &BatchId, outcome: &BatchOutcome) -> Result<bool, StorageError>;

    /// The files of one kind of a batch, by name.
    async fn batch_files(
        &self,
        tenant: &Tenant,
        batch: &BatchId,
        kind: FileKind,
    ) -> Result<Vec<BatchFile>, StorageError>;

    /// A file of a committed batch by its `dataSetFileId`; `None` when not in this tenant.
    async fn batch_file(&self, tenant: &Tenant, file_id: &str) -> Result<Option<BatchFile>, StorageError>;

    /// Batches of every tenant in one of `statuses`: what a restart must resume or fail.
    async fn batches_in_status(&self, statuses: &[BatchStatus]) -> Result<Vec<Batch>, StorageError>;

    /// Committed (`success`) batches of a dataset with their commit times, oldest first: the
    /// fragments a profile is built from.
    async fn committed_batches(&self, tenant: &Tenant, dataset: &DatasetId) -> Result<Vec<Batch>, StorageError>;
}
