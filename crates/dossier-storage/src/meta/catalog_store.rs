//! Datasets and batches: the Catalog Service's objects.

use async_trait::async_trait;

use dossier_model::catalog::{Batch, BatchStatus, Dataset, DatasetPatch};
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::listing::ListQuery;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// Fields `orderBy` may name on datasets.
pub const DATASET_SORTABLE: &[&str] = &["created", "updated", "name"];
/// Fields `orderBy` may name on batches.
pub const BATCH_SORTABLE: &[&str] = &["created", "updated", "status"];

/// Equality filters of `GET /dataSets`.
#[derive(Debug, Clone, Default)]
pub struct DatasetFilter {
    pub name: Option<String>,
}

/// What [`CatalogStore::delete_dataset`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetDeletion {
    Deleted,
    NotFound,
    /// Refused: this export job (NEW or PROCESSING) writes into the dataset.
    ExportInProgress {
        job_id: i64,
    },
}

/// Equality filters of `GET /batches`.
#[derive(Debug, Clone, Default)]
pub struct BatchFilter {
    pub dataset_id: Option<DatasetId>,
    pub status: Option<BatchStatus>,
}

/// Datasets and batches: the Catalog Service's objects.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Records a new dataset (no union check: see [`SchemaStore::insert_dataset_checked`](super::SchemaStore::insert_dataset_checked)).
    async fn insert_dataset(&self, dataset: &Dataset) -> Result<(), StorageError>;

    /// A dataset of this tenant with its last batch; `None` when it does not exist here.
    async fn get_dataset(&self, tenant: &Tenant, id: &DatasetId) -> Result<Option<Dataset>, StorageError>;

    /// One page of the tenant's datasets matching `filter`, in `query`'s order (ties by
    /// insertion order); an order field outside [`DATASET_SORTABLE`] orders by `created`.
    async fn list_datasets(
        &self,
        tenant: &Tenant,
        query: &ListQuery,
        filter: &DatasetFilter,
    ) -> Result<Vec<Dataset>, StorageError>;

    /// Applies a patch; `None` when the dataset does not exist in this tenant.
    async fn update_dataset(
        &self,
        tenant: &Tenant,
        id: &DatasetId,
        patch: &DatasetPatch,
        now: EpochMillis,
    ) -> Result<Option<Dataset>, StorageError>;

    /// Deletes a dataset and its batches' metadata in one transaction, unless an export job
    /// that is NEW or PROCESSING writes into it (its batches would vanish under it). The caller
    /// removes the files afterwards.
    async fn delete_dataset(&self, tenant: &Tenant, id: &DatasetId) -> Result<DatasetDeletion, StorageError>;

    /// Records a new batch and makes it its dataset's last batch, in one transaction.
    async fn insert_batch(&self, batch: &Batch) -> Result<(), StorageError>;

    /// A batch of this tenant; `None` when it does not exist here.
    async fn get_batch(&self, tenant: &Tenant, id: &BatchId) -> Result<Option<Batch>, StorageError>;

    /// One page of the tenant's batches matching `filter`, in `query`'s order (ties by
    /// insertion order); an order field outside [`BATCH_SORTABLE`] orders by `created`.
    async fn list_batches(
        &self,
        tenant: &Tenant,
        query: &ListQuery,
        filter: &BatchFilter,
    ) -> Result<Vec<Batch>, StorageError>;

    /// The tenant's datasets that feed the profile store (`unifiedProfile: ["enabled:true"]`),
    /// oldest first.
    async fn profile_enabled_datasets(&self, tenant: &Tenant) -> Result<Vec<Dataset>, StorageError>;

    /// Committed batches of a dataset with their commit sequence number: batches committed in the
    /// same millisecond are still ordered, by the order their rows were created.
    async fn committed_batches_in_order(
        &self,
        tenant: &Tenant,
        dataset: &DatasetId,
    ) -> Result<Vec<(Batch, i64)>, StorageError>;
}
