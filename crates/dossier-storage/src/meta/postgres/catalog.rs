//! Datasets and batches.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgExecutor, PgRow};
use sqlx::{FromRow, Row};

use dossier_model::catalog::{
    Batch, BatchError, BatchStatus, DataBehavior, Dataset, DatasetPatch, FileDescription, SchemaRef, Tags,
};
use dossier_model::ids::{BatchId, ClientId, DatasetId};
use dossier_model::listing::{Direction, ListQuery, sql_offset};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::PostgresMetaStore;
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{TenantColumns, json_column, parsed_column, to_json};
use crate::meta::{BATCH_SORTABLE, BatchFilter, DATASET_SORTABLE, DatasetDeletion, DatasetFilter};

/// `ORDER BY` for a listing; ties go by insertion order (seq). The field was checked against the listing's sortable fields by
/// [`ListQuery::from_params`]; it is checked again here because it becomes SQL text.
fn order_clause(query: &ListQuery, sortable: &[&str]) -> String {
    let (field, direction) = &query.order_by;
    let column = if sortable.contains(&field.as_str()) {
        field.as_str()
    } else {
        "created"
    };
    let dir = match direction {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    };
    format!("ORDER BY {column} {dir}, seq {dir}")
}

/// A `datasets` row with its last batch (`last_batch_id`, `last_batch_status`) as the queries
/// select it.
#[derive(sqlx::FromRow)]
struct DatasetRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    name: String,
    description: Option<String>,
    schema_ref: String,
    file_description: String,
    tags: String,
    aspect: Option<String>,
    data_behavior: String,
    created: EpochMillis,
    updated: EpochMillis,
    created_client: String,
    last_batch_id: Option<String>,
    last_batch_status: Option<String>,
}

impl DatasetRow {
    fn into_dataset(self) -> Result<Dataset, StorageError> {
        const TABLE: &str = "datasets";
        let Tenant { org, sandbox } = self.tenant.into_tenant(TABLE)?;
        Ok(Dataset {
            id: DatasetId::from_string(self.id),
            org,
            sandbox,
            name: self.name,
            description: self.description,
            schema_ref: json_column::<SchemaRef>(TABLE, "schema_ref", &self.schema_ref)?,
            file_description: json_column::<FileDescription>(TABLE, "file_description", &self.file_description)?,
            tags: json_column::<Tags>(TABLE, "tags", &self.tags)?,
            aspect: self.aspect,
            data_behavior: parsed_column(TABLE, "data_behavior", self.data_behavior.parse::<DataBehavior>())?,
            created: self.created,
            updated: self.updated,
            created_client: ClientId::from_string(self.created_client),
            last_batch_id: self.last_batch_id.map(BatchId::from_string),
            last_batch_status: self
                .last_batch_status
                .map(|s| parsed_column(TABLE, "last_batch_status", s.parse::<BatchStatus>()))
                .transpose()?,
        })
    }
}

pub(super) fn dataset_from_row(row: &PgRow) -> Result<Dataset, StorageError> {
    DatasetRow::from_row(row)?.into_dataset()
}

/// A `batches` row as stored.
#[derive(sqlx::FromRow)]
struct BatchRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    dataset_id: String,
    status: String,
    created: EpochMillis,
    updated: EpochMillis,
    started: Option<EpochMillis>,
    completed: Option<EpochMillis>,
    record_count: Option<i64>,
    size: Option<i64>,
    records_read: Option<i64>,
    errors: String,
    input_format: Option<String>,
    created_client: String,
    partial_ingestion: bool,
}

impl BatchRow {
    fn into_batch(self) -> Result<Batch, StorageError> {
        const TABLE: &str = "batches";
        let Tenant { org, sandbox } = self.tenant.into_tenant(TABLE)?;
        Ok(Batch {
            id: BatchId::from_string(self.id),
            org,
            sandbox,
            dataset_id: DatasetId::from_string(self.dataset_id),
            status: parsed_column(TABLE, "status", self.status.parse::<BatchStatus>())?,
            created: self.created,
            updated: self.updated,
            started: self.started,
            completed: self.completed,
            record_count: self.record_count,
            size: self.size,
            records_read: self.records_read,
            errors: json_column::<Vec<BatchError>>(TABLE, "errors", &self.errors)?,
            input_format: self
                .input_format
                .map(|raw| json_column(TABLE, "input_format", &raw))
                .transpose()?,
            created_client: ClientId::from_string(self.created_client),
            partial_ingestion: self.partial_ingestion,
        })
    }
}

pub(super) fn batch_from_row(row: &PgRow) -> Result<Batch, StorageError> {
    BatchRow::from_row(row)?.into_batch()
}

/// Writes a new dataset row. Shared by [`CatalogStore::insert_dataset`] and the union-checked insert,
/// which runs it inside its transaction.
pub(super) async fn insert_dataset_row(db: impl PgExecutor<'_>, dataset: &Dataset) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO datasets (id, org, sandbox, name, description, schema_ref, file_description, tags, aspect,
                                   data_behavior, created, updated, created_client, last_batch_id, last_batch_status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(dataset.id.as_str())
    .bind(dataset.org.as_str())
    .bind(dataset.sandbox.as_str())
    .bind(&dataset.name)
    .bind(&dataset.description)
    .bind(to_json(&dataset.schema_ref))
    .bind(to_json(&dataset.file_description))
    .bind(to_json(&dataset.tags))
    .bind(&dataset.aspect)
    .bind(dataset.data_behavior.as_str())
    .bind(dataset.created)
    .bind(dataset.updated)
    .bind(dataset.created_client.as_str())
    .bind(dataset.last_batch_id.as_ref().map(BatchId::as_str))
    .bind(dataset.last_batch_status.map(BatchStatus::as_str))
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn get_dataset_row(
    db: impl PgExecutor<'_>,
    tenant: &Tenant,
    id: &DatasetId,
) -> Result<Option<Dataset>, StorageError> {
    let row = sqlx::query("SELECT * FROM datasets WHERE id = $1 AND org = $2 AND sandbox = $3")
        .bind(id.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(dataset_from_row).transpose()
}

/// Applies a patch to a dataset row; `false` when the dataset does not exist in this tenant.
pub(super) async fn update_dataset_row(
    db: impl PgExecutor<'_>,
    tenant: &Tenant,
    id: &DatasetId,
    patch: &DatasetPatch,
    now: EpochMillis,
) -> Result<bool, StorageError> {
    let updated = sqlx::query(
        "UPDATE datasets SET name = COALESCE($1, name), description = COALESCE($2, description),
                             tags = COALESCE($3, tags), updated = $4
         WHERE id = $5 AND org = $6 AND sandbox = $7",
    )
    .bind(&patch.name)
    .bind(&patch.description)
    .bind(patch.tags.as_ref().map(to_json))
    .bind(now)
    .bind(id.as_str())
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .execute(db)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// The SQL of [`CatalogStore::insert_batch`], inside the caller's transaction (an export job
/// creates its batches together with itself).
pub(super) async fn insert_batch_in(conn: &mut PgConnection, batch: &Batch) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO batches (id, org, sandbox, dataset_id, status, created, updated, started, completed,
                              record_count, size, records_read, errors, input_format, created_client,
                              partial_ingestion)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(batch.id.as_str())
    .bind(batch.org.as_str())
    .bind(batch.sandbox.as_str())
    .bind(batch.dataset_id.as_str())
    .bind(batch.status.as_str())
    .bind(batch.created)
    .bind(batch.updated)
    .bind(batch.started)
    .bind(batch.completed)
    .bind(batch.record_count)
    .bind(batch.size)
    .bind(batch.records_read)
    .bind(to_json(&batch.errors))
    .bind(batch.input_format.as_ref().map(to_json))
    .bind(batch.created_client.as_str())
    .bind(batch.partial_ingestion)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE datasets SET last_batch_id = $1, last_batch_status = $2 WHERE id = $3 AND org = $4 AND sandbox = $5",
    )
    .bind(batch.id.as_str())
    .bind(batch.status.as_str())
    .bind(batch.dataset_id.as_str())
    .bind(batch.org.as_str())
    .bind(batch.sandbox.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl CatalogStore for PostgresMetaStore {
    async fn insert_dataset(&self, dataset: &Dataset) -> Result<(), StorageError> {
        insert_dataset_row(&self.pool, dataset).await
    }

    async fn get_dataset(&self, tenant: &Tenant, id: &DatasetId) -> Result<Option<Dataset>, StorageError> {
        get_dataset_row(&self.pool, tenant, id).await
    }

    async fn list_datasets(
        &self,
        tenant: &Tenant,
        query: &ListQuery,
        filter: &DatasetFilter,
    ) -> Result<Vec<Dataset>, StorageError> {
        let sql = format!(
            "SELECT * FROM datasets WHERE org = $1 AND sandbox = $2 AND ($3 IS NULL OR name = $4) {} LIMIT $5 OFFSET $6",
            order_clause(query, DATASET_SORTABLE)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(&filter.name)
            .bind(&filter.name)
            .bind(i64::from(query.limit))
            .bind(sql_offset(query.start))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(dataset_from_row).collect()
    }

    async fn update_dataset(
        &self,
        tenant: &Tenant,
        id: &DatasetId,
        patch: &DatasetPatch,
        now: EpochMillis,
    ) -> Result<Option<Dataset>, StorageError> {
        if !update_dataset_row(&self.pool, tenant, id, patch, now).await? {
            return Ok(None);
        }
        self.get_dataset(tenant, id).await
    }

    async fn delete_dataset(&self, tenant: &Tenant, id: &DatasetId) -> Result<DatasetDeletion, StorageError> {
        // A write transaction from the start, so no export job can be created for the dataset
        // between the check and the delete.
        let mut tx = self.begin_write(tenant).await?;
        let writer: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM export_jobs WHERE dataset_id = $1 AND org = $2 AND sandbox = $3
               AND status IN ('NEW', 'PROCESSING') ORDER BY id LIMIT 1",
        )
        .bind(id.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job_id) = writer {
            return Ok(DatasetDeletion::ExportInProgress { job_id });
        }
        sqlx::query("DELETE FROM batches WHERE dataset_id = $1 AND org = $2 AND sandbox = $3")
            .bind(id.as_str())
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM datasets WHERE id = $1 AND org = $2 AND sandbox = $3")
            .bind(id.as_str())
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if deleted.rows_affected() > 0 {
            DatasetDeletion::Deleted
        } else {
            DatasetDeletion::NotFound
        })
    }

    async fn insert_batch(&self, batch: &Batch) -> Result<(), StorageError> {
        let tenant = Tenant {
            org: batch.org.clone(),
            sandbox: batch.sandbox.clone(),
        };
        let mut tx = self.begin_write(&tenant).await?;
        insert_batch_in(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_batch(&self, tenant: &Tenant, id: &BatchId) -> Result<Option<Batch>, StorageError> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = $1 AND org = $2 AND sandbox = $3")
            .bind(id.as_str())
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    async fn list_batches(
        &self,
        tenant: &Tenant,
        query: &ListQuery,
        filter: &BatchFilter,
    ) -> Result<Vec<Batch>, StorageError> {
        let sql = format!(
            "SELECT * FROM batches WHERE org = $1 AND sandbox = $2 AND ($3 IS NULL OR dataset_id = $4)
               AND ($5 IS NULL OR status = $6) {} LIMIT $7 OFFSET $8",
            order_clause(query, BATCH_SORTABLE)
        );
        let dataset = filter.dataset_id.as_ref().map(DatasetId::as_str);
        let status = filter.status.map(BatchStatus::as_str);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(dataset)
            .bind(dataset)
            .bind(status)
            .bind(status)
            .bind(i64::from(query.limit))
            .bind(sql_offset(query.start))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(batch_from_row).collect()
    }

    async fn profile_enabled_datasets(&self, tenant: &Tenant) -> Result<Vec<Dataset>, StorageError> {
        let rows = sqlx::query("SELECT * FROM datasets WHERE org = $1 AND sandbox = $2 ORDER BY created, seq")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_all(&self.pool)
            .await?;
        let datasets: Vec<Dataset> = rows.iter().map(dataset_from_row).collect::<Result<_, _>>()?;
        Ok(datasets.into_iter().filter(Dataset::is_profile_enabled).collect())
    }

    async fn committed_batches_in_order(
        &self,
        tenant: &Tenant,
        dataset: &DatasetId,
    ) -> Result<Vec<(Batch, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT *, seq AS commit_seq FROM batches WHERE dataset_id = $1 AND org = $2 AND sandbox = $3 AND status = 'success'
             ORDER BY completed, seq",
        )
        .bind(dataset.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((batch_from_row(row)?, row.try_get::<i64, _>("commit_seq")?)))
            .collect()
    }
}
