//! The uploads of ingestion batches: what COMPLETE ingests.
//!
//! An upload is recorded only when its bytes are fully staged, in a transaction holding the
//! sandbox's write lock that first checks the batch is still `loading`. COMPLETE's move to
//! `processing` (`transition_batch`) takes the same lock, so the two are ordered: an upload
//! recorded before COMPLETE is ingested, one that ends after it is refused. No upload is answered
//! 200 and then left out, whichever nodes the two requests reach.

use async_trait::async_trait;

use dossier_model::catalog::BatchStatus;
use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::PostgresMetaStore;
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::parsed_column;
use crate::meta::{BatchUpload, UploadRecording};

/// A `batch_uploads` row as the listing selects it.
#[derive(sqlx::FromRow)]
struct UploadRow {
    name: String,
    path: String,
    size: i64,
}

impl From<UploadRow> for BatchUpload {
    fn from(UploadRow { name, path, size }: UploadRow) -> Self {
        Self { name, path, size }
    }
}

#[async_trait]
impl BatchUploadStore for PostgresMetaStore {
    async fn record_upload(
        &self,
        tenant: &Tenant,
        batch: &BatchId,
        upload: &BatchUpload,
        now: EpochMillis,
    ) -> Result<UploadRecording, StorageError> {
        let mut tx = self.begin_write(tenant).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM batches WHERE id = $1 AND org = $2 AND sandbox = $3")
                .bind(batch.as_str())
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(UploadRecording::NoBatch);
        };
        let status = parsed_column("batches", "status", status.parse::<BatchStatus>())?;
        if status != BatchStatus::Loading {
            return Ok(UploadRecording::NotLoading(status));
        }
        let replaced: Option<String> =
            sqlx::query_scalar("SELECT path FROM batch_uploads WHERE batch_id = $1 AND name = $2")
                .bind(batch.as_str())
                .bind(&upload.name)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO batch_uploads (batch_id, org, sandbox, name, path, size, created) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (batch_id, name) DO UPDATE SET path = excluded.path, size = excluded.size, created = excluded.created",
        )
        .bind(batch.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(&upload.name)
        .bind(&upload.path)
        .bind(upload.size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(UploadRecording::Recorded { replaced })
    }

    async fn batch_uploads(&self, tenant: &Tenant, batch: &BatchId) -> Result<Vec<BatchUpload>, StorageError> {
        let rows = sqlx::query_as::<_, UploadRow>(
            "SELECT name, path, size FROM batch_uploads WHERE batch_id = $1 AND org = $2 AND sandbox = $3 ORDER BY name",
        )
        .bind(batch.as_str())
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(BatchUpload::from).collect())
    }
}
