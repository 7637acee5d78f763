//! Batch state changes and the files of committed batches.
//!
//! A batch's files become readable in the same transaction that moves the batch to `success`;
//! that transaction is the commit point of every writer (ingestion now, exports later).

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgRow};

use dossier_model::catalog::{Batch, BatchStatus};
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::PostgresMetaStore;
use super::catalog::batch_from_row;
use super::job_queue::{dequeue_in, lease_in};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{parsed_column, to_json};
use crate::meta::{BatchFile, BatchOutcome, FileKind, JobKey};

/// A `batch_files` row as stored.
#[derive(sqlx::FromRow)]
struct BatchFileRow {
    file_id: String,
    batch_id: String,
    dataset_id: String,
    kind: String,
    name: String,
    path: String,
    size: i64,
    records: i64,
    created: EpochMillis,
}

fn file_from_row(row: &PgRow) -> Result<BatchFile, StorageError> {
    let row = BatchFileRow::from_row(row)?;
    Ok(BatchFile {
        file_id: row.file_id,
        batch_id: BatchId::from_string(row.batch_id),
        dataset_id: DatasetId::from_string(row.dataset_id),
        kind: parsed_column("batch_files", "kind", row.kind.parse::<FileKind>())?,
        name: row.name,
        path: row.path,
        size: row.size,
        records: row.records,
        created: row.created,
    })
}

/// The SQL of [`BatchFileStore::commit_batch`], inside the caller's transaction, so that a writer
/// can commit a batch together with its own state (an export job commits all its batches and
/// its SUCCEEDED status at once). Returns `false` when the batch is not `processing`; the caller
/// then rolls back.
pub(super) async fn commit_batch_in(
    conn: &mut PgConnection,
    tenant: &Tenant,
    id: &BatchId,
    outcome: &BatchOutcome,
) -> Result<bool, StorageError> {
    let updated = sqlx::query(
        "UPDATE batches SET status = $1, updated = $2, completed = $3, records_read = $4, record_count = $5, size = $6,
                            errors = $7
         WHERE id = $8 AND org = $9 AND sandbox = $10 AND status = 'processing'",
    )
    .bind(outcome.status.as_str())
    .bind(outcome.completed)
    .bind(outcome.completed)
    .bind(outcome.records_read)
    .bind(outcome.record_count)
    .bind(outcome.size)
    .bind(to_json(&outcome.errors))
    .bind(id.as_str())
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    for file in &outcome.files {
        sqlx::query(
            "INSERT INTO batch_files (file_id, batch_id, org, sandbox, dataset_id, kind, name, path, size, records, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&file.file_id)
        .bind(file.batch_id.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(file.dataset_id.as_str())
        .bind(file.kind.as_str())
        .bind(&file.name)
        .bind(&file.path)
        .bind(file.size)
        .bind(file.records)
        .bind(file.created)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE datasets SET last_batch_status = $1 WHERE last_batch_id = $2 AND org = $3 AND sandbox = $4")
        .bind(outcome.status.as_str())
        .bind(id.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// [`BatchFileStore::transition_batch`] inside the caller's transaction.
async fn transition_in(
    conn: &mut PgConnection,
    tenant: &Tenant,
    id: &BatchId,
    from: &[BatchStatus],
    to: BatchStatus,
    now: EpochMillis,
) -> Result<Option<(Batch, bool)>, StorageError> {
    let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let changed = sqlx::query(
        "UPDATE batches SET status = $1, updated = $2, started = COALESCE(started, $3)
         WHERE id = $4 AND org = $5 AND sandbox = $6 AND status = ANY($7)",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(if to == BatchStatus::Processing { Some(now) } else { None })
    .bind(id.as_str())
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .bind(&allowed)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    let row = sqlx::query("SELECT * FROM batches WHERE id = $1 AND org = $2 AND sandbox = $3")
        .bind(id.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let batch = batch_from_row(&row)?;
    if changed && to != BatchStatus::Processing {
        // A batch leaving `processing` (an abort) leaves no ingestion lease behind.
        dequeue_in(&mut *conn, &JobKey::ingest(tenant, id)).await?;
    }
    if changed {
        sqlx::query("UPDATE datasets SET last_batch_status = $1 WHERE id = $2 AND last_batch_id = $3")
            .bind(to.as_str())
            .bind(batch.dataset_id.as_str())
            .bind(batch.id.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some((batch, changed)))
}

#[async_trait]
impl BatchFileStore for PostgresMetaStore {
    async fn transition_batch(
        &self,
        tenant: &Tenant,
        id: &BatchId,
        from: &[BatchStatus],
        to: BatchStatus,
        now: EpochMillis,
    ) -> Result<Option<(Batch, bool)>, StorageError> {
        let mut tx = self.begin_write(tenant).await?;
        let moved = transition_in(&mut tx, tenant, id, from, to, now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn start_ingestion(
        &self,
        tenant: &Tenant,
        id: &BatchId,
        worker: &str,
        now: EpochMillis,
    ) -> Result<Option<(Batch, bool)>, StorageError> {
        let mut tx = self.begin_write(tenant).await?;
        let moved = transition_in(
            &mut tx,
            tenant,
            id,
            &[BatchStatus::Loading],
            BatchStatus::Processing,
            now,
        )
        .await?;
        if let Some((_, true)) = &moved {
            lease_in(&mut tx, &JobKey::ingest(tenant, id), worker, now).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn commit_batch(&self, tenant: &Tenant, id: &BatchId, outcome: &BatchOutcome) -> Result<bool, StorageError> {
        let mut tx = self.begin_write(tenant).await?;
        if !commit_batch_in(&mut tx, tenant, id, outcome).await? {
            return Ok(false);
        }
        dequeue_in(&mut tx, &JobKey::ingest(tenant, id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn batch_files(
        &self,
        tenant: &Tenant,
        batch: &BatchId,
        kind: FileKind,
    ) -> Result<Vec<BatchFile>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM batch_files WHERE batch_id = $1 AND org = $2 AND sandbox = $3 AND kind = $4 ORDER BY name",
        )
        .bind(batch.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn batch_file(&self, tenant: &Tenant, file_id: &str) -> Result<Option<BatchFile>, StorageError> {
        let row = sqlx::query("SELECT * FROM batch_files WHERE file_id = $1 AND org = $2 AND sandbox = $3")
            .bind(file_id)
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(file_from_row).transpose()
    }

    async fn batches_in_status(&self, statuses: &[BatchStatus]) -> Result<Vec<Batch>, StorageError> {
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query("SELECT * FROM batches WHERE status = ANY($1) ORDER BY created, seq")
            .bind(&wanted)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(batch_from_row).collect()
    }

    async fn committed_batches(&self, tenant: &Tenant, dataset: &DatasetId) -> Result<Vec<Batch>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM batches WHERE dataset_id = $1 AND org = $2 AND sandbox = $3 AND status = 'success'
             ORDER BY completed, seq",
        )
        .bind(dataset.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_from_row).collect()
    }
}
