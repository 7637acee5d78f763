//! The Schema Registry's tenant schemas and identity descriptors, and the inputs of each
//! sandbox's union schemas.
//!
//! A union is computed when asked for, never stored: storage gathers the built-in class and the
//! schemas of the sandbox's profile-enabled datasets, and the model merges them
//! ([`dossier_model::xdm::union`]). Contract: enabling a dataset checks its schema against the
//! union and writes the dataset in one write that excludes other writers, so two enablements can
//! never both pass against a union that contains neither.

use async_trait::async_trait;

use dossier_model::catalog::{Dataset, DatasetPatch};
use dossier_model::ids::DatasetId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{
    IdentityDescriptor, RegisteredSchema, SchemaClass, SchemaListQuery, UnionConflict, XdmSchema,
};

use crate::StorageError;

/// Tenant XDM schemas, identity descriptors and the union schemas built from them.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Records a new tenant schema (its identities are descriptors, written apart).
    async fn insert_schema(&self, registered: &RegisteredSchema) -> Result<(), StorageError>;

    /// The tenant schema whose `$id` or `meta:altId` is `key`, with its identities.
    async fn get_schema(&self, tenant: &Tenant, key: &str) -> Result<Option<RegisteredSchema>, StorageError>;

    /// One page of the tenant's schemas, with their identities.
    async fn list_schemas(
        &self,
        tenant: &Tenant,
        query: &SchemaListQuery,
    ) -> Result<Vec<RegisteredSchema>, StorageError>;

    /// Records an identity descriptor; `false` when the schema already has an identity on that
    /// field or already has a primary identity (the table's unique indexes decide, so concurrent
    /// requests cannot both win).
    async fn insert_identity_descriptor(&self, descriptor: &IdentityDescriptor) -> Result<bool, StorageError>;

    /// An identity descriptor of this tenant by id; `None` when it does not exist here.
    async fn get_identity_descriptor(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<IdentityDescriptor>, StorageError>;

    /// The tenant's identity descriptors, oldest first.
    async fn list_identity_descriptors(&self, tenant: &Tenant) -> Result<Vec<IdentityDescriptor>, StorageError>;

    /// The sandbox's union of `class`: the built-in class merged with every schema of that class
    /// used by a profile-enabled dataset.
    async fn union_schema(&self, tenant: &Tenant, class: SchemaClass) -> Result<XdmSchema, StorageError>;

    /// The sandbox's profile union schema (`_xdm.context.profile__union`).
    async fn profile_union(&self, tenant: &Tenant) -> Result<XdmSchema, StorageError>;

    /// The sandbox's experience-event union schema (`_xdm.context.experienceevent__union`).
    async fn event_union(&self, tenant: &Tenant) -> Result<XdmSchema, StorageError>;

    /// Inserts a dataset; when it is profile-enabled, only if its schema fits its class's union
    /// (`Ok(Err(conflict))` otherwise, and nothing is written).
    async fn insert_dataset_checked(&self, dataset: &Dataset) -> Result<Result<(), UnionConflict>, StorageError>;

    /// Applies a patch; when it makes the dataset profile-enabled, only if the dataset's schema fits
    /// its class's union. `Ok(Ok(None))` when the dataset does not exist in this tenant.
    async fn update_dataset_checked(
        &self,
        tenant: &Tenant,
        id: &DatasetId,
        patch: &DatasetPatch,
        now: EpochMillis,
    ) -> Result<Result<Option<Dataset>, UnionConflict>, StorageError>;
}
