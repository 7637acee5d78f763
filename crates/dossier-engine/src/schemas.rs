//! Which XDM schema a dataset's rows follow.

use dossier_model::catalog::Dataset;
use dossier_model::schema::PROFILE_UNION_SCHEMA_ID;
use dossier_model::tenancy::Tenant;
use dossier_model::xdm::XdmSchema;
use dossier_storage::MetaStore;

use crate::EngineError;

/// The schema of `dataset`: a registry schema of its sandbox, or the profile union.
pub async fn dataset_schema(meta: &MetaStore, tenant: &Tenant, dataset: &Dataset) -> Result<XdmSchema, EngineError> {
    if dataset.schema_ref.id == PROFILE_UNION_SCHEMA_ID {
        return Ok(meta.profile_union(tenant).await?);
    }
    meta.get_schema(tenant, &dataset.schema_ref.id)
        .await?
        .map(|registered| registered.schema)
        .ok_or_else(|| {
            EngineError::Invalid(format!(
                "schema '{}' of dataset {} no longer exists",
                dataset.schema_ref.id, dataset.id
            ))
        })
}

/// The datasets whose rows are profile fragments: profile-enabled ones whose schema still
/// resolves, oldest first, each with its schema.
pub async fn fragment_datasets(meta: &MetaStore, tenant: &Tenant) -> Result<Vec<(Dataset, XdmSchema)>, EngineError> {
    let mut sources = Vec::new();
    for dataset in meta.profile_enabled_datasets(tenant).await? {
        // A dataset whose schema was deleted has no readable rows; skipping it is what every
        // reader of fragments does.
        if let Ok(schema) = dataset_schema(meta, tenant, &dataset).await {
            sources.push((dataset, schema));
        }
    }
    Ok(sources)
}
