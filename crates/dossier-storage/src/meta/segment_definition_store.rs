//! Segment definitions: one row each, rewritten on change.
//!
//! Contract: writes check what other rows say (the merge policy exists, the name is free, no
//! `inSegment` chain leads back to the definition, no other definition depends on one being
//! deleted), and nothing may change that between the check and the commit.

use std::collections::HashMap;

use async_trait::async_trait;

use dossier_model::ValidationError;
use dossier_model::ids::{MergePolicyId, SegmentDefinitionId};
use dossier_model::pql::PqlError;
use dossier_model::segment_definition::{
    CheckedSpec, SegmentDefinition, SegmentDefinitionListQuery, SegmentDefinitionSpec,
};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

#[cfg(doc)]
use super::MetaStore;
use super::Page;
use crate::StorageError;

/// Why a segment definition could not be created, changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum SegmentDefinitionWriteError {
    #[error("no segment definition '{0}' in this sandbox")]
    NotFound(SegmentDefinitionId),
    #[error("{0}")]
    Invalid(ValidationError),
    #[error("{0}")]
    Pql(PqlError),
    #[error("merge policy '{0}' does not exist in this sandbox")]
    UnknownMergePolicy(MergePolicyId),
    #[error("the sandbox has no default merge policy")]
    NoDefaultMergePolicy,
    #[error("segment definition '{id}' already has the name '{name}'")]
    NameTaken { name: String, id: SegmentDefinitionId },
    /// `[id, a, ..., id]`: the inSegment references that would lead back to the definition.
    #[error("inSegment references would form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("segment definition '{id}' is used by inSegment in {}", dependents.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "))]
    HasDependents {
        id: SegmentDefinitionId,
        dependents: Vec<SegmentDefinitionId>,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One page of the listing and how many definitions match in all.
pub type SegmentDefinitionPage = Page<SegmentDefinition>;

/// How [`SegmentDefinitionStore::update_segment_definition`] turns the current definition into
/// the new spec; boxed so the trait stays dyn-compatible ([`MetaStore`]'s method takes a closure).
pub type SegmentSpecEdit<'a> =
    Box<dyn FnOnce(&SegmentDefinition) -> Result<SegmentDefinitionSpec, ValidationError> + Send + 'a>;

/// Checks a spec's PQL against the sandbox's schemas once its merge policy is resolved, inside the
/// write; boxed like [`SegmentSpecEdit`].
pub type SegmentSpecCheck<'a> =
    Box<dyn FnOnce(SegmentDefinitionSpec, MergePolicyId) -> Result<CheckedSpec, PqlError> + Send + 'a>;

/// Segment definitions and their inSegment dependencies.
#[async_trait]
pub trait SegmentDefinitionStore: Send + Sync {
    /// One definition, or `None` when it does not exist in this tenant.
    async fn segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
    ) -> Result<Option<SegmentDefinition>, StorageError>;

    /// The definitions with these ids that exist in this tenant, in no particular order.
    async fn segment_definitions_by_id(
        &self,
        tenant: &Tenant,
        ids: &[SegmentDefinitionId],
    ) -> Result<Vec<SegmentDefinition>, StorageError>;

    /// For each of `ids`, the definitions whose expression names it with `inSegment`.
    async fn segment_dependents(
        &self,
        tenant: &Tenant,
        ids: &[&SegmentDefinitionId],
    ) -> Result<HashMap<SegmentDefinitionId, Vec<SegmentDefinitionId>>, StorageError>;

    /// One page of the sandbox's definitions.
    async fn list_segment_definitions(
        &self,
        tenant: &Tenant,
        query: &SegmentDefinitionListQuery,
    ) -> Result<SegmentDefinitionPage, StorageError>;

    /// Stores a new definition. `check` parses the spec's expression once its merge policy is
    /// resolved (the sandbox's default when the spec names none).
    async fn create_segment_definition(
        &self,
        tenant: &Tenant,
        id: SegmentDefinitionId,
        spec: SegmentDefinitionSpec,
        now: EpochMillis,
        check: SegmentSpecCheck<'_>,
    ) -> Result<SegmentDefinition, SegmentDefinitionWriteError>;

    /// Changes a definition: `edit` turns the current one into the new spec (a PATCH applied to
    /// it) inside the transaction, so that two concurrent PATCHes never lose each other's
    /// change; `check` parses it as on create. A change to nothing keeps the definition as it is.
    async fn update_segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
        now: EpochMillis,
        edit: SegmentSpecEdit<'_>,
        check: SegmentSpecCheck<'_>,
    ) -> Result<SegmentDefinition, SegmentDefinitionWriteError>;

    /// Deletes a definition. One that another definition names with `inSegment` is refused:
    /// evaluating that one would then read memberships nothing updates any more.
    async fn delete_segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
    ) -> Result<(), SegmentDefinitionWriteError>;
}
