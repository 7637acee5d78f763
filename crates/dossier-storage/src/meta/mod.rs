//! The metadata store: every object's metadata behind one trait per concern.
//!
//! Engine and API code hold a [`MetaStore`], a cheap-to-clone handle on some backend, and call the
//! traits' methods on it. Each concern's trait (`*_store.rs`) holds its methods with their
//! contract and the backend-neutral types they take and give (rows, filters, outcomes, errors,
//! [`Page`]); [`MetaBackend`] is all of them together. A backend is a folder implementing every
//! trait: [`sqlite`] (one file, one process: the default) and [`postgres`] (one database shared
//! by several nodes). The shared backend test suite runs against a [`MetaStore`], so a
//! new backend passes the same cases. The layout follows quickwit's metastore.

mod batch_file_store;
mod batch_upload_store;
mod catalog_store;
mod client_store;
mod export_job_store;
mod identity_graph_store;
mod job_queue_store;
mod merge_policy_store;
mod page;
mod per_sandbox;
pub mod postgres;
mod rows;
mod sandbox_store;
mod schedule_store;
mod schema_store;
mod segment_definition_store;
mod segment_job_store;
pub mod sqlite;

use std::fmt::Debug;
use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;

use dossier_model::ValidationError;
use dossier_model::ids::{MergePolicyId, SegmentDefinitionId};
use dossier_model::merge_policy::{MergePolicy, MergePolicyDefinition};
use dossier_model::pql::PqlError;
use dossier_model::segment_definition::{CheckedSpec, SegmentDefinition, SegmentDefinitionSpec};
use dossier_model::tenancy::Tenant;
use dossier_model::time::{EpochMillis, EpochSeconds};

use crate::StorageError;

pub use batch_file_store::{BatchFile, BatchFileStore, BatchOutcome, FileKind};
pub use batch_upload_store::{BatchUpload, BatchUploadStore, UploadRecording};
pub use catalog_store::{BATCH_SORTABLE, BatchFilter, CatalogStore, DATASET_SORTABLE, DatasetDeletion, DatasetFilter};
pub use client_store::{ApiClient, ClientStore, IssuedClient};
pub use export_job_store::{
    ExportCancellation, ExportJobCreation, ExportJobListing, ExportJobStore, IdempotencyKey, NewExportJob,
};
pub use identity_graph_store::{IdentityGraphStore, IdentityGraphVersion, IdentityGraphWriteGuard};
pub use job_queue_store::{ClaimedJob, JobKey, JobKind, JobQueueStore, JobState, QueueDepth, QueueEntry};
pub use merge_policy_store::{MergePolicyEdit, MergePolicyPage, MergePolicyStore, MergePolicyWriteError};
pub use page::Page;
pub use per_sandbox::PerSandbox;
pub use sandbox_store::SandboxStore;
pub use schedule_store::{ScheduleRun, ScheduleStore};
pub use schema_store::SchemaStore;
pub use segment_definition_store::{
    SegmentDefinitionPage, SegmentDefinitionStore, SegmentDefinitionWriteError, SegmentSpecCheck, SegmentSpecEdit,
};
pub use segment_job_store::{MembershipFile, NewSegmentJob, SegmentJobCreation, SegmentJobStore};

/// The store itself rather than what it holds: is it there, and letting it go.
#[async_trait]
pub trait StoreLifecycle: Send + Sync {
    /// Checks that the store answers a query.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Closes the store's connections, waiting for them to finish.
    async fn close(&self);
}

/// Declares [`MetaBackend`] as the sum of the concern traits and implements it for every type
/// that implements them all, from one list.
macro_rules! meta_backend {
    ($($concern:path),+ $(,)?) => {
        /// Every concern of the metadata store: what a backend implements. Implemented for every
        /// type that implements all the traits, so a backend never names it.
        pub trait MetaBackend: $($concern +)+ Send + Sync + Debug + 'static {}

        impl<T> MetaBackend for T where T: $($concern +)+ Send + Sync + Debug + 'static {}
    };
}

meta_backend!(
    CatalogStore,
    BatchFileStore,
    BatchUploadStore,
    ClientStore,
    SandboxStore,
    SchemaStore,
    MergePolicyStore,
    SegmentDefinitionStore,
    ExportJobStore,
    SegmentJobStore,
    IdentityGraphStore,
    JobQueueStore,
    ScheduleStore,
    StoreLifecycle,
);

/// The metadata store as the engine and the API hold it: a backend behind one pointer. Cheap to
/// clone (clones share the backend). It dereferences to `dyn MetaBackend`, so every trait
/// method is called on it directly (`meta.get_dataset(..)`) without importing the traits.
#[derive(Clone, Debug)]
pub struct MetaStore(Arc<dyn MetaBackend>);

impl MetaStore {
    /// The handle on an opened backend.
    pub fn new(backend: impl MetaBackend) -> Self {
        Self(Arc::new(backend))
    }
}

impl Deref for MetaStore {
    type Target = dyn MetaBackend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// The writes that take the caller's closures. The traits take them boxed, to stay
/// dyn-compatible; these take plain closures so callers need not box them, and shadow the trait
/// methods of the same name.
impl MetaStore {
    /// See [`MergePolicyStore::update_merge_policy`].
    pub async fn update_merge_policy(
        &self,
        tenant: &Tenant,
        id: &MergePolicyId,
        now: EpochSeconds,
        edit: impl FnOnce(&MergePolicy) -> Result<MergePolicyDefinition, ValidationError> + Send,
    ) -> Result<MergePolicy, MergePolicyWriteError> {
        self.0.update_merge_policy(tenant, id, now, Box::new(edit)).await
    }

    /// See [`SegmentDefinitionStore::create_segment_definition`].
    pub async fn create_segment_definition(
        &self,
        tenant: &Tenant,
        id: SegmentDefinitionId,
        spec: SegmentDefinitionSpec,
        now: EpochMillis,
        check: impl FnOnce(SegmentDefinitionSpec, MergePolicyId) -> Result<CheckedSpec, PqlError> + Send,
    ) -> Result<SegmentDefinition, SegmentDefinitionWriteError> {
        self.0
            .create_segment_definition(tenant, id, spec, now, Box::new(check))
            .await
    }

    /// See [`SegmentDefinitionStore::update_segment_definition`].
    pub async fn update_segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
        now: EpochMillis,
        edit: impl FnOnce(&SegmentDefinition) -> Result<SegmentDefinitionSpec, ValidationError> + Send,
        check: impl FnOnce(SegmentDefinitionSpec, MergePolicyId) -> Result<CheckedSpec, PqlError> + Send,
    ) -> Result<SegmentDefinition, SegmentDefinitionWriteError> {
        self.0
            .update_segment_definition(tenant, id, now, Box::new(edit), Box::new(check))
            .await
    }
}

/// The traits, for code that implements a backend or calls them on a concrete backend type.
pub mod prelude {
    pub use super::{
        BatchFileStore, BatchUploadStore, CatalogStore, ClientStore, ExportJobStore, IdentityGraphStore, JobQueueStore,
        MergePolicyStore, MetaBackend, SandboxStore, ScheduleStore, SchemaStore, SegmentDefinitionStore,
        SegmentJobStore, StoreLifecycle,
    };
}
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod suite;
