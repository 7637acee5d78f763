//! Merge policies, with every version kept.
//!
//! Each change writes a new row (version + 1) and marks it the latest; older rows stay as they
//! were so that an export pinned to a version builds the same profiles later. Contract: a write
//! reads the current state (who is the default, who is active on edge) and writes from it, and
//! no other writer may change that state in between.

use async_trait::async_trait;

use dossier_model::ValidationError;
use dossier_model::ids::{DatasetId, MergePolicyId};
use dossier_model::merge_policy::{MergePolicy, MergePolicyDefinition, MergePolicyListQuery};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochSeconds;

#[cfg(doc)]
use super::MetaStore;
use super::Page;
use crate::StorageError;

/// Why a merge policy could not be created, changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum MergePolicyWriteError {
    #[error("no merge policy '{0}' in this sandbox")]
    NotFound(MergePolicyId),
    #[error("{0}")]
    Invalid(ValidationError),
    #[error("dataset '{0}' does not exist in this sandbox")]
    UnknownDataset(DatasetId),
    /// Clearing `default` on the current default would leave the schema without one.
    #[error("merge policy '{id}' is the default for {schema_name}; make another policy the default instead")]
    DefaultCannotBeCleared { id: MergePolicyId, schema_name: String },
    #[error("merge policy '{id}' is the default for {schema_name} and cannot be deleted")]
    DefaultCannotBeDeleted { id: MergePolicyId, schema_name: String },
    #[error("merge policy '{0}' is active on edge and cannot be deleted")]
    ActiveOnEdgeCannotBeDeleted(MergePolicyId),
    /// Only one policy per sandbox may be active on edge.
    #[error("merge policy '{active}' is already active on edge in this sandbox")]
    EdgeTaken { active: MergePolicyId },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One page of the listing and how many policies match in all.
pub type MergePolicyPage = Page<MergePolicy>;

/// How [`MergePolicyStore::update_merge_policy`] turns the current version into the new
/// definition; boxed so the trait stays dyn-compatible ([`MetaStore`]'s method takes a closure).
pub type MergePolicyEdit<'a> =
    Box<dyn FnOnce(&MergePolicy) -> Result<MergePolicyDefinition, ValidationError> + Send + 'a>;

/// Merge policies and their versions.
#[async_trait]
pub trait MergePolicyStore: Send + Sync {
    /// One version of a policy (`None`: the latest), or `None` when the policy or that version
    /// does not exist in this tenant.
    async fn merge_policy(
        &self,
        tenant: &Tenant,
        id: &MergePolicyId,
        version: Option<u32>,
    ) -> Result<Option<MergePolicy>, StorageError>;

    /// The latest version of the schema's default policy.
    async fn default_merge_policy(
        &self,
        tenant: &Tenant,
        schema_name: &str,
    ) -> Result<Option<MergePolicy>, StorageError>;

    /// The latest versions of the policies with these ids that exist in this tenant, in no
    /// particular order; unknown ids are simply absent.
    async fn merge_policies_by_id(
        &self,
        tenant: &Tenant,
        ids: &[MergePolicyId],
    ) -> Result<Vec<MergePolicy>, StorageError>;

    /// One page of the latest versions, filtered and ordered as asked.
    async fn list_merge_policies(
        &self,
        tenant: &Tenant,
        query: &MergePolicyListQuery,
    ) -> Result<MergePolicyPage, StorageError>;

    /// Stores version 1 of a new policy. Its `order` datasets must exist; if it is the default,
    /// the previous default stops being one (getting a new version) in the same transaction.
    async fn create_merge_policy(&self, policy: &MergePolicy) -> Result<(), MergePolicyWriteError>;

    /// Writes the next version of a policy: `edit` turns the current version into the new
    /// definition (a PUT body ignores it, a PATCH applies to it), inside the transaction so that
    /// two concurrent PATCHes never lose each other's change. A definition equal to the current
    /// one changes nothing and keeps the version. Returns the version that is now the latest.
    async fn update_merge_policy(
        &self,
        tenant: &Tenant,
        id: &MergePolicyId,
        now: EpochSeconds,
        edit: MergePolicyEdit<'_>,
    ) -> Result<MergePolicy, MergePolicyWriteError>;

    /// Deletes a policy with all its versions. The default and the policy active on edge are
    /// refused: exports and lookups that name no policy rely on the first, AEP forbids the second.
    async fn delete_merge_policy(&self, tenant: &Tenant, id: &MergePolicyId) -> Result<(), MergePolicyWriteError>;
}
