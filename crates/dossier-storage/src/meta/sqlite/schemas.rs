//! The Schema Registry's tenant schemas and identity descriptors, and the inputs of each
//! sandbox's union schemas.
//!
//! A union is computed when asked for, never stored: storage gathers the built-in class and the
//! schemas of the sandbox's profile-enabled datasets, and the model merges them
//! ([`dossier_model::xdm::union`]). Enabling a dataset checks its schema against the union and
//! writes the dataset in one `BEGIN IMMEDIATE` transaction, so two enablements can never both
//! pass against a union that contains neither.

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteExecutor, SqliteRow};

use dossier_model::catalog::{Dataset, DatasetPatch};
use dossier_model::ids::{ClientId, DatasetId};
use dossier_model::listing::sql_offset;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{
    IdentityDescriptor, IdentityField, RegisteredSchema, SchemaClass, SchemaListQuery, SchemaOrder, UnionConflict,
    XdmSchema, parse_properties, properties_json, union,
};

use super::SqliteMetaStore;
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
fn schema_from_row(row: &SqliteRow) -> Result<RegisteredSchema, StorageError> {
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

fn descriptor_from_row(row: &SqliteRow) -> Result<IdentityDescriptor, StorageError> {
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
    db: impl SqliteExecutor<'_>,
    tenant: &Tenant,
    schema_id: &str,
) -> Result<Vec<IdentityField>, StorageError> {
    let rows = sqlx::query(
        "SELECT * FROM identity_descriptors WHERE org = ? AND sandbox = ? AND schema_id = ? ORDER BY created, rowid",
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
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    key: &str,
) -> Result<Option<RegisteredSchema>, StorageError> {
    let row = sqlx::query("SELECT * FROM schemas WHERE org = ? AND sandbox = ? AND (id = ? OR alt_id = ?)")
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
async fn profile_enabled_schema_refs(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
) -> Result<Vec<String>, StorageError> {
    let rows = sqlx::query("SELECT * FROM datasets WHERE org = ? AND sandbox = ? ORDER BY created, rowid")
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
    conn: &mut SqliteConnection,
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
    conn: &mut SqliteConnection,
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
impl SchemaStore for SqliteMetaStore {
    async fn insert_schema(&self, registered: &RegisteredSchema) -> Result<(), StorageError> {
        let schema = &registered.schema;
        sqlx::query(
            "INSERT INTO schemas (org, sandbox, id, alt_id, title, description, class, version, extends, properties,
                                  created, updated, created_client)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            SchemaOrder::Created => "created ASC, rowid ASC",
            SchemaOrder::TitleAsc => "title ASC, rowid ASC",
            SchemaOrder::TitleDesc => "title DESC, rowid DESC",
        };
        let sql = format!("SELECT * FROM schemas WHERE org = ? AND sandbox = ? ORDER BY {order} LIMIT ? OFFSET ?");
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        let row = sqlx::query("SELECT * FROM identity_descriptors WHERE org = ? AND sandbox = ? AND id = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(descriptor_from_row).transpose()
    }

    async fn list_identity_descriptors(&self, tenant: &Tenant) -> Result<Vec<IdentityDescriptor>, StorageError> {
        let rows =
            sqlx::query("SELECT * FROM identity_descriptors WHERE org = ? AND sandbox = ? ORDER BY created, rowid")
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use dossier_model::catalog::{DataBehavior, FileDescription, SchemaRef, Tags};
    use dossier_model::tenancy::{OrgId, SandboxName};
    use dossier_model::xdm::{SchemaIds, XdmType};

    use super::*;
    use crate::meta::MetaStore;

    const ORG: &str = "1BD6382559DF0C130A49422D@AdobeOrg";

    async fn store() -> (tempfile::TempDir, MetaStore, Tenant) {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
        let org = OrgId::parse(ORG).unwrap();
        meta.ensure_org(&org).await.unwrap();
        let tenant = Tenant {
            org,
            sandbox: SandboxName::prod(),
        };
        (dir, meta, tenant)
    }

    async fn register(meta: &MetaStore, tenant: &Tenant, properties: serde_json::Value) -> XdmSchema {
        let body =
            json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile", "properties": properties});
        let schema = XdmSchema::from_json(&body, SchemaIds::generate(&tenant.org)).unwrap();
        let registered = RegisteredSchema {
            schema: schema.clone(),
            org: tenant.org.clone(),
            sandbox: tenant.sandbox.clone(),
            created: 1,
            updated: 1,
            created_client: ClientId::from_string("client"),
        };
        meta.insert_schema(&registered).await.unwrap();
        schema
    }

    fn dataset(tenant: &Tenant, schema_id: &str, enabled: bool) -> Dataset {
        let mut tags = Tags::new();
        if enabled {
            tags.insert("unifiedProfile".into(), vec!["enabled:true".into()]);
        }
        Dataset {
            id: DatasetId::generate(),
            org: tenant.org.clone(),
            sandbox: tenant.sandbox.clone(),
            name: "d".into(),
            description: None,
            schema_ref: SchemaRef {
                id: schema_id.into(),
                content_type: "application/vnd.adobe.xed+json;version=1".into(),
            },
            file_description: FileDescription::default(),
            tags,
            aspect: None,
            data_behavior: DataBehavior::Record,
            created: 1,
            updated: 1,
            created_client: ClientId::from_string("client"),
            last_batch_id: None,
            last_batch_status: None,
        }
    }

    #[tokio::test]
    async fn the_union_grows_with_enabled_datasets_and_refuses_conflicts() {
        let (_dir, meta, tenant) = store().await;
        let loyalty = register(
            &meta,
            &tenant,
            json!({"loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}}}),
        )
        .await;
        let clash = register(
            &meta,
            &tenant,
            json!({"loyalty": {"type": "object", "properties": {"points": {"type": "string"}}}}),
        )
        .await;
        assert_eq!(
            meta.get_schema(&tenant, &loyalty.alt_id).await.unwrap().unwrap().schema,
            loyalty
        );

        assert_eq!(
            meta.profile_union(&tenant)
                .await
                .unwrap()
                .resolve_path("loyalty.points"),
            None
        );
        let disabled = dataset(&tenant, &loyalty.id, false);
        meta.insert_dataset_checked(&disabled).await.unwrap().unwrap();
        assert_eq!(
            meta.profile_union(&tenant)
                .await
                .unwrap()
                .resolve_path("loyalty.points"),
            None
        );

        meta.insert_dataset_checked(&dataset(&tenant, &loyalty.id, true))
            .await
            .unwrap()
            .unwrap();
        let union = meta.profile_union(&tenant).await.unwrap();
        assert_eq!(union.resolve_path("loyalty.points"), Some(&XdmType::Integer));
        assert_eq!(
            union.extends,
            [
                "https://ns.adobe.com/xdm/context/profile".to_owned(),
                loyalty.id.clone()
            ]
        );
        assert_eq!(meta.event_union(&tenant).await.unwrap().resolve_path("loyalty"), None);

        // Created enabled, or enabled later: both refused, nothing written.
        let conflict = meta
            .insert_dataset_checked(&dataset(&tenant, &clash.id, true))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (conflict.path.as_str(), conflict.schema_id.as_str()),
            ("loyalty.points", clash.id.as_str())
        );
        let later = dataset(&tenant, &clash.id, false);
        meta.insert_dataset_checked(&later).await.unwrap().unwrap();
        let mut tags = Tags::new();
        tags.insert("unifiedProfile".into(), vec!["enabled:true".into()]);
        let patch = DatasetPatch {
            tags: Some(tags),
            ..DatasetPatch::default()
        };
        let refused = meta
            .update_dataset_checked(&tenant, &later.id, &patch, 2)
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err().union_type, "integer");
        assert!(
            !meta
                .get_dataset(&tenant, &later.id)
                .await
                .unwrap()
                .unwrap()
                .is_profile_enabled()
        );
        // The dataset on the first schema can be enabled again without conflict.
        let enabled = meta
            .update_dataset_checked(&tenant, &disabled.id, &patch, 2)
            .await
            .unwrap()
            .unwrap();
        assert!(enabled.unwrap().is_profile_enabled());

        let other = Tenant {
            org: tenant.org.clone(),
            sandbox: SandboxName::parse("dev").unwrap(),
        };
        assert!(meta.get_schema(&other, &loyalty.id).await.unwrap().is_none());
        assert_eq!(meta.profile_union(&other).await.unwrap().resolve_path("loyalty"), None);
    }
}
