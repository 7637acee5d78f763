//! The uploads of ingestion batches: what COMPLETE ingests.
//!
//! Contract: an upload is recorded only when its bytes are fully staged, in a write that first
//! checks the batch is still `loading` and is serialized with COMPLETE's move to `processing`
//! (a write to the same batch): an upload recorded before COMPLETE is ingested, one that ends
//! after it is refused. No upload is answered 200 and then left out.

use async_trait::async_trait;

use dossier_model::catalog::BatchStatus;
use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// One staged upload of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchUpload {
    /// The file name the client gave.
    pub name: String,
    /// Where the bytes are staged in the lake.
    pub path: String,
    pub size: i64,
}

/// What [`BatchUploadStore::record_upload`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRecording {
    /// Recorded; `replaced` is the staged path of an earlier upload of the same name, whose bytes
    /// the caller now removes.
    Recorded { replaced: Option<String> },
    /// The batch left `loading` while the upload streamed: nothing recorded.
    NotLoading(BatchStatus),
    /// No such batch in this tenant.
    NoBatch,
}

/// The staged uploads of ingestion batches.
#[async_trait]
pub trait BatchUploadStore: Send + Sync {
    /// Records a fully staged upload if the batch is still `loading`.
    async fn record_upload(
        &self,
        tenant: &Tenant,
        batch: &BatchId,
        upload: &BatchUpload,
        now: EpochMillis,
    ) -> Result<UploadRecording, StorageError>;

    /// The recorded uploads of a batch, by name: exactly what COMPLETE ingests.
    async fn batch_uploads(&self, tenant: &Tenant, batch: &BatchId) -> Result<Vec<BatchUpload>, StorageError>;
}
