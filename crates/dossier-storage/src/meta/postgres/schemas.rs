//! The Schema Registry's tenant schemas and identity descriptors, and the inputs of each
//! sandbox's union schemas.
//!
//! A union is computed when asked for, never stored: storage gathers the built-in class and the
//! schemas of the sandbox's profile-enabled datasets, and the model merges them
//! ([`dossier_model::xdm::union`]). Enabling a dataset checks its schema against the union and
//! writes the dataset in one transaction holding the sandbox's write lock, so two enablements can
//! never both pass against a union that contains neither.

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::PgConnection;
use sqlx::postgres::{PgExecutor, PgRow};

use dossier_model::catalog::{Dataset, DatasetPatch};
use dossier_model::ids::{ClientId, DatasetId};
use dossier_model::listing::sql_offset;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{
    IdentityDescriptor, IdentityField, RegisteredSchema, SchemaClass, SchemaListQuery, SchemaOrder, UnionConflict,
    XdmSchema, parse_properties, properties_json, union,
};

use super::PostgresMetaStore;
use super::catalog::{dataset_from_row, get_dataset_row, insert_dataset_row, update_dataset_row};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{TenantColumns, json_column, to_json};

fn corrupt(table: &'static str, column: &'static str, reason: impl ToString) -> StorageError {
    StorageError::Corrupt {
        table,
        column,
        reason: reason.to_string(),
    }
}

/// A `schemas` row as stored.
#[derive(sqlx::FromRow)]
struct SchemaRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    alt_id: String,
    title: String,
    description: Option<String>,
    class: String,
    version: String,
    extends: String,
    properties: String,
    created: EpochMillis,
    updated: EpochMillis,
    created_client: String,
}

/// A schema row without its identities, which live in `identity_descriptors`.
fn schema_from_row(row: &PgRow) -> Result<RegisteredSchema, StorageError> {
    const TABLE: &str = "schemas";
    let row = SchemaRow::from_row(row)?;
    let class = SchemaClass::from_class_id(&row.class).ok_or_else(|| corrupt(TABLE, "class", &row.class))?;
    let properties: serde_json::Value = json_column(TABLE, "properties", &row.properties)?;
    let schema = XdmSchema {
        id: row.id,
        alt_id: row.alt_id,
        title: row.title,
        description: row.description,
        class,
        version: row.version,
        extends: json_column(TABLE, "extends", &row.extends)?,
        fields: parse_properties(&properties).map_err(|e| corrupt(TABLE, "properties", e))?,
        identities: Vec::new(),
    };
    let Tenant { org, sandbox } = row.tenant.into_tenant(TABLE)?;
    Ok(RegisteredSchema {
        schema,
        org,
        sandbox,
        created: row.created,
        updated: row.updated,
        created_client: ClientId::from_string(row.created_client),
    })
}

/// An `identity_descriptors` row as stored.
#[derive(sqlx::FromRow)]
struct DescriptorRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    schema_id: String,
    path: String,
    namespace: String,
    is_primary: bool,
    created: EpochMillis,
    created_client: String,
}

fn descriptor_from_row(row: &PgRow) -> Result<IdentityDescriptor, StorageError> {
    let row = DescriptorRow::from_row(row)?;
    let Tenant { org, sandbox } = row.tenant.into_tenant("identity_descriptors")?;
    Ok(IdentityDescriptor {
        id: row.id,
        org,
        sandbox,
        schema_id: row.schema_id,
        path: row.path,
        namespace: row.namespace,
        primary: row.is_primary,
        created: row.created,
        created_client: ClientId::from_string(row.created_client),
    })
}

async fn identities_of(
    db: impl PgExecutor<'_>,
    tenant: &Tenant,
    schema_id: &str,
) -> Result<Vec<IdentityField>, StorageError> {
    let rows = sqlx::query(
        "SELECT * FROM identity_descriptors WHERE org = $1 AND sandbox = $2 AND schema_id = $3 ORDER BY created, seq",
    )
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .bind(schema_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| Ok(descriptor_from_row(row)?.identity_field()))
        .collect()
}

/// The schema whose `$id` or `meta:altId` is `key`, with its identities.
async fn schema_by_key(
    conn: &mut PgConnection,
    tenant: &Tenant,
    key: &str,
) -> Result<Option<RegisteredSchema>, StorageError> {
    let row = sqlx::query("SELECT * FROM schemas WHERE org = $1 AND sandbox = $2 AND (id = $3 OR alt_id = $4)")
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(key)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut registered = schema_from_row(&row)?;
    registered.schema.identities = identities_of(&mut *conn, tenant, &registered.schema.id).await?;
    Ok(Some(registered))
}

/// Schema refs of the tenant's profile-enabled datasets, oldest dataset first, each once.
async fn profile_enabled_schema_refs(conn: &mut PgConnection, tenant: &Tenant) -> Result<Vec<String>, StorageError> {
    let rows = sqlx::query("SELECT * FROM datasets WHERE org = $1 AND sandbox = $2 ORDER BY created, seq")
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_all(&mut *conn)
        .await?;
    let mut refs: Vec<String> = Vec::new();
    for row in &rows {
        let dataset = dataset_from_row(row)?;
        if dataset.is_profile_enabled() && !refs.contains(&dataset.schema_ref.id) {
            refs.push(dataset.schema_ref.id);
        }
    }
    Ok(refs)
}

/// What a class's union is made of: the built-in class, then every schema of that class used by
/// a profile-enabled dataset. Datasets on other schemas (the union itself) add nothing.
async fn union_inputs(
    conn: &mut PgConnection,
    tenant: &Tenant,
    class: SchemaClass,
) -> Result<Vec<XdmSchema>, StorageError> {
    let mut inputs = vec![match class {
        SchemaClass::Profile => XdmSchema::builtin_profile(),
        SchemaClass::ExperienceEvent => XdmSchema::builtin_experience_event(),
    }];
    for schema_ref in profile_enabled_schema_refs(conn, tenant).await? {
        let Some(registered) = schema_by_key(conn, tenant, &schema_ref).await? else {
            continue;
        };
        let already = inputs.iter().any(|s| s.id == registered.schema.id);
        if registered.schema.class == class && !already {
            inputs.push(registered.schema);
        }
    }
    Ok(inputs)
}

/// Whether the schema `schema_ref` can join its class's union. A reference to something that is
/// not a tenant schema (the profile union) joins nothing and is always admitted.
async fn union_admits(
    conn: &mut PgConnection,
    tenant: &Tenant,
    schema_ref: &str,
) -> Result<Result<(), UnionConflict>, StorageError> {
    let Some(registered) = schema_by_key(conn, tenant, schema_ref).await? else {
        return Ok(Ok(()));
    };
    let class = registered.schema.class;
    let mut inputs = union_inputs(conn, tenant, class).await?;
    inputs.push(registered.schema);
    Ok(union(class, &inputs).map(|_| ()))
}

fn tenant_of(dataset: &Dataset) -> Tenant {
    Tenant {
        org: dataset.org.clone(),
        sandbox: dataset.sandbox.clone(),
    }
}

#[async_trait]
impl SchemaStore for PostgresMetaStore {
    async fn insert_schema(&self, registered: &RegisteredSchema) -> Result<(), StorageError> {
        let schema = &registered.schema;
        sqlx::query(
            "INSERT INTO schemas (org, sandbox, id, alt_id, title, description, class, version, extends, properties,
                                  created, updated, created_client)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(registered.org.as_str())
        .bind(registered.sandbox.as_str())
        .bind(&schema.id)
        .bind(&schema.alt_id)
        .bind(&schema.title)
        .bind(&schema.description)
        .bind(schema.class.class_id())
        .bind(&schema.version)
        .bind(to_json(&schema.extends))
        .bind(properties_json(&schema.fields).to_string())
        .bind(registered.created)
        .bind(registered.updated)
        .bind(registered.created_client.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_schema(&self, tenant: &Tenant, key: &str) -> Result<Option<RegisteredSchema>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        schema_by_key(&mut conn, tenant, key).await
    }

    async fn list_schemas(
        &self,
        tenant: &Tenant,
        query: &SchemaListQuery,
    ) -> Result<Vec<RegisteredSchema>, StorageError> {
        let order = match query.order {
            SchemaOrder::Created => "created ASC, seq ASC",
            SchemaOrder::TitleAsc => "title ASC, seq ASC",
            SchemaOrder::TitleDesc => "title DESC, seq DESC",
        };
        let sql = format!("SELECT * FROM schemas WHERE org = $1 AND sandbox = $2 ORDER BY {order} LIMIT $3 OFFSET $4");
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(i64::from(query.limit))
            .bind(sql_offset(query.start))
            .fetch_all(&mut *conn)
            .await?;
        let mut schemas = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut registered = schema_from_row(row)?;
            registered.schema.identities = identities_of(&mut *conn, tenant, &registered.schema.id).await?;
            schemas.push(registered);
        }
        Ok(schemas)
    }

    async fn insert_identity_descriptor(&self, descriptor: &IdentityDescriptor) -> Result<bool, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO identity_descriptors (org, sandbox, id, schema_id, path, namespace, is_primary, created, created_client)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(descriptor.org.as_str())
        .bind(descriptor.sandbox.as_str())
        .bind(&descriptor.id)
        .bind(&descriptor.schema_id)
        .bind(&descriptor.path)
        .bind(&descriptor.namespace)
        .bind(descriptor.primary)
        .bind(descriptor.created)
        .bind(descriptor.created_client.as_str())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() > 0)
    }

    async fn get_identity_descriptor(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<IdentityDescriptor>, StorageError> {
        let row = sqlx::query("SELECT * FROM identity_descriptors WHERE org = $1 AND sandbox = $2 AND id = $3")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(descriptor_from_row).transpose()
    }

    async fn list_identity_descriptors(&self, tenant: &Tenant) -> Result<Vec<IdentityDescriptor>, StorageError> {
        let rows =
            sqlx::query("SELECT * FROM identity_descriptors WHERE org = $1 AND sandbox = $2 ORDER BY created, seq")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(descriptor_from_row).collect()
    }

    async fn union_schema(&self, tenant: &Tenant, class: SchemaClass) -> Result<XdmSchema, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let inputs = union_inputs(&mut conn, tenant, class).await?;
        // Every enablement was checked against the union, so a conflict here means the stored
        // state broke that rule.
        union(class, &inputs).map_err(|conflict| corrupt("schemas", "properties", conflict))
    }

    async fn profile_union(&self, tenant: &Tenant) -> Result<XdmSchema, StorageError> {
        self.union_schema(tenant, SchemaClass::Profile).await
    }

    async fn event_union(&self, tenant: &Tenant) -> Result<XdmSchema, StorageError> {
        self.union_schema(tenant, SchemaClass::ExperienceEvent).await
    }

    async fn insert_dataset_checked(&self, dataset: &Dataset) -> Result<Result<(), UnionConflict>, StorageError> {
        let tenant = Tenant {
            org: dataset.org.clone(),
            sandbox: dataset.sandbox.clone(),
        };
        let mut tx = self.begin_write(&tenant).await?;
        if dataset.is_profile_enabled()
            && let Err(conflict) = union_admits(&mut tx, &tenant_of(dataset), &dataset.schema_ref.id).await?
        {
            return Ok(Err(conflict));
        }
        insert_dataset_row(&mut *tx, dataset).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn update_dataset_checked(
        &self,
        tenant: &Tenant,
        id: &DatasetId,
        patch: &DatasetPatch,
        now: EpochMillis,
    ) -> Result<Result<Option<Dataset>, UnionConflict>, StorageError> {
        let mut tx = self.begin_write(tenant).await?;
        let Some(current) = get_dataset_row(&mut *tx, tenant, id).await? else {
            return Ok(Ok(None));
        };
        let patched = Dataset {
            tags: patch.tags.clone().unwrap_or_else(|| current.tags.clone()),
            ..current.clone()
        };
        if patched.is_profile_enabled()
            && !current.is_profile_enabled()
            && let Err(conflict) = union_admits(&mut tx, tenant, &current.schema_ref.id).await?
        {
            return Ok(Err(conflict));
        }
        update_dataset_row(&mut *tx, tenant, id, patch, now).await?;
        let updated = get_dataset_row(&mut *tx, tenant, id).await?;
        tx.commit().await?;
        Ok(Ok(updated))
    }
}
