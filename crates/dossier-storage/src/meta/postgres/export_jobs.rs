//! Export jobs: what the API shows of them, and their side of the job queue.
//!
//! A job, its Catalog batches and its `job_queue` entry change together, always in one
//! transaction: created (job NEW, batches `loading`, queued), claimed (PROCESSING /
//! `processing`, running; the claim itself is `job_queue`'s), and ended — SUCCEEDED with every
//! batch `success` and its files, or FAILED / CANCELLED with every batch `failed`, off the
//! queue. Writes that decide on what they read take the sandbox's write lock first
//! ([`PostgresMetaStore::begin_write`]): creation numbers the job the sandbox's largest id + 1
//! under it, so ids are gap-free and unique whichever node creates. The claim is `job_queue`'s
//! (it does not take the sandbox lock); cancel and end lock the job's queue row before reading
//! the job, so a claim on another node either comes first or passes the job over.
//! The queue limit counts every sandbox's queued jobs while holding one sandbox's lock, so
//! creations in different sandboxes at the same instant may overshoot it by a few: it is a
//! back-pressure bound, not an invariant.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{FromRow, Row};

use dossier_model::catalog::{Batch, BatchError, BatchStatus};
use dossier_model::export_job::{ExportJob, ExportJobError, ExportJobMetrics, ExportJobProgress, ExportJobStatus};
use dossier_model::ids::BatchId;
use dossier_model::listing::sql_offset;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::PostgresMetaStore;
use super::batch_files::commit_batch_in;
use super::by_id::{read_by_id, update_by_id};
use super::catalog::{get_dataset_row, insert_batch_in};
use super::job_queue::{
    dequeue_in, enqueue_in, held_by_in, lock_entry_in, queued_count_in, request_cancel_in, waiting_in,
};
use crate::StorageError;
use crate::meta::BatchOutcome;
use crate::meta::prelude::*;
use crate::meta::rows::{JobColumns, job_from_columns, json_column, to_json};
use crate::meta::{ExportCancellation, ExportJobCreation, ExportJobListing, JobKey, JobKind, NewExportJob};

const TABLE: &str = "export_jobs";

/// An `export_jobs` row as stored (`SELECT *`; the queue's own columns are not read here).
#[derive(sqlx::FromRow)]
struct ExportJobRow {
    id: i64,
    #[sqlx(flatten)]
    job: JobColumns,
    request: String,
    spec: String,
    batches: String,
    progress: Option<String>,
    cancel_requested: bool,
}

impl ExportJobRow {
    fn into_job(self) -> Result<ExportJob, StorageError> {
        Ok(job_from_columns!(ExportJob {
            columns: self.job,
            table: TABLE,
            id: self.id,
            request: json_column(TABLE, "request", &self.request)?,
            spec: json_column(TABLE, "spec", &self.spec)?,
            batches: json_column(TABLE, "batches", &self.batches)?,
            progress: self
                .progress
                .map(|raw| json_column::<ExportJobProgress>(TABLE, "progress", &raw))
                .transpose()?,
            cancel_requested: self.cancel_requested,
        }))
    }
}

fn job_from_row(row: &PgRow) -> Result<ExportJob, StorageError> {
    ExportJobRow::from_row(row)?.into_job()
}

async fn job_in(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<Option<ExportJob>, StorageError> {
    read_by_id(conn, TABLE, "", tenant, id, job_from_row).await
}

/// The job created with `key` in this tenant and the digest of the body that created it.
async fn job_by_key_in(
    conn: &mut PgConnection,
    tenant: &Tenant,
    key: &str,
) -> Result<Option<(ExportJob, String)>, StorageError> {
    let row = sqlx::query("SELECT * FROM export_jobs WHERE org = $1 AND sandbox = $2 AND idempotency_key = $3")
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some((job_from_row(&row)?, row.try_get("body_sha256")?))),
    }
}

/// A batch of a new job: `loading`, with no input format, so nothing mistakes it for an
/// ingestion batch.
fn export_batch(new: &NewExportJob, batch_id: &BatchId) -> Batch {
    Batch {
        id: batch_id.clone(),
        org: new.tenant.org.clone(),
        sandbox: new.tenant.sandbox.clone(),
        dataset_id: new.spec.dataset_id.clone(),
        status: BatchStatus::Loading,
        created: new.created,
        updated: new.created,
        started: None,
        completed: None,
        record_count: None,
        size: None,
        records_read: None,
        errors: Vec::new(),
        input_format: None,
        created_client: new.created_client.clone(),
        partial_ingestion: false,
    }
}

async fn insert_job_in(conn: &mut PgConnection, new: &NewExportJob) -> Result<i64, StorageError> {
    let id: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM export_jobs WHERE org = $1 AND sandbox = $2")
            .bind(new.tenant.org.as_str())
            .bind(new.tenant.sandbox.as_str())
            .fetch_one(&mut *conn)
            .await?;
    let (key, digest) = match &new.idempotency {
        Some(k) => (Some(k.key.as_str()), Some(k.body_sha256.as_str())),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO export_jobs (org, sandbox, id, status, request_id, request, spec, batches, dataset_id, metrics,
                                  idempotency_key, body_sha256, created_client, created, updated)
         VALUES ($1, $2, $3, 'NEW', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(new.tenant.org.as_str())
    .bind(new.tenant.sandbox.as_str())
    .bind(id)
    .bind(&new.request_id)
    .bind(to_json(&new.request))
    .bind(to_json(&new.spec))
    .bind(to_json(&new.batches))
    .bind(new.spec.dataset_id.as_str())
    .bind(to_json(&ExportJobMetrics::started_at(new.created)))
    .bind(key)
    .bind(digest)
    .bind(new.created_client.as_str())
    .bind(new.created)
    .bind(new.created)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Moves a job's batches to `to` (from `loading` or `processing`), with `errors` and the time,
/// and keeps their dataset's `lastBatchStatus` in step.
async fn set_job_batches_in(
    conn: &mut PgConnection,
    job: &ExportJob,
    to: BatchStatus,
    errors: &[BatchError],
    now: EpochMillis,
) -> Result<(), StorageError> {
    let ended = matches!(to, BatchStatus::Failed).then_some(now);
    for target in &job.batches {
        sqlx::query(
            "UPDATE batches SET status = $1, updated = $2, started = COALESCE(started, $3), completed = $4, errors = $5
             WHERE id = $6 AND org = $7 AND sandbox = $8 AND status IN ('loading', 'processing')",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(if to == BatchStatus::Processing { Some(now) } else { None })
        .bind(ended)
        .bind(to_json(&errors))
        .bind(target.batch_id.as_str())
        .bind(job.tenant.org.as_str())
        .bind(job.tenant.sandbox.as_str())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE datasets SET last_batch_status = $1 WHERE last_batch_id = $2 AND org = $3 AND sandbox = $4",
        )
        .bind(to.as_str())
        .bind(target.batch_id.as_str())
        .bind(job.tenant.org.as_str())
        .bind(job.tenant.sandbox.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Ends a NEW or PROCESSING job as FAILED or CANCELLED with its batches `failed`.
async fn end_unsuccessfully_in(
    conn: &mut PgConnection,
    job: &ExportJob,
    status: ExportJobStatus,
    errors: &[ExportJobError],
    now: EpochMillis,
) -> Result<bool, StorageError> {
    let mut metrics = job.metrics.clone();
    metrics.total_time.end = Some(now);
    let update = sqlx::query(
        "UPDATE export_jobs SET status = $1, errors = $2, metrics = $3, updated = $4
         WHERE org = $5 AND sandbox = $6 AND id = $7 AND status IN ('NEW', 'PROCESSING')",
    )
    .bind(status.as_str())
    .bind(to_json(&errors))
    .bind(to_json(&metrics))
    .bind(now);
    if !update_by_id(&mut *conn, update, &job.tenant, job.id).await? {
        return Ok(false);
    }
    dequeue_in(conn, &JobKey::export(&job.tenant, job.id)).await?;
    let batch_errors = batch_errors_for(job.id, status, errors);
    set_job_batches_in(conn, job, BatchStatus::Failed, &batch_errors, now).await?;
    Ok(true)
}

/// What a failed or cancelled job's batches say in the Catalog.
fn batch_errors_for(job_id: i64, status: ExportJobStatus, errors: &[ExportJobError]) -> Vec<BatchError> {
    if status == ExportJobStatus::Cancelled {
        return vec![BatchError {
            code: "EXPORT-CANCELLED".into(),
            description: format!("Export job {job_id} was cancelled; the batch holds no files."),
        }];
    }
    errors
        .iter()
        .map(|e| BatchError {
            code: e.code.clone(),
            description: format!("Export job {job_id} failed: {}", e.msg),
        })
        .collect()
}

/// An export's side of a claim (in the claim's transaction): a NEW job PROCESSING, its batches
/// `processing`. `None` when the job is not NEW.
pub(super) async fn claim_in(
    conn: &mut PgConnection,
    tenant: &Tenant,
    id: i64,
    now: EpochMillis,
) -> Result<Option<ExportJob>, StorageError> {
    let claim = sqlx::query(
        "UPDATE export_jobs SET status = 'PROCESSING', updated = $1
         WHERE org = $2 AND sandbox = $3 AND id = $4 AND status IN ('NEW', 'PROCESSING')",
    )
    .bind(now);
    if !update_by_id(&mut *conn, claim, tenant, id).await? {
        return Ok(None);
    }
    let job = job_in(conn, tenant, id).await?.expect("updated in this transaction");
    set_job_batches_in(conn, &job, BatchStatus::Processing, &[], now).await?;
    Ok(Some(job))
}

/// The counters a running export's heartbeat reports, shown by a GET from any process.
pub(super) async fn record_progress_in(
    conn: &mut PgConnection,
    key: &JobKey,
    progress: &ExportJobProgress,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE export_jobs SET progress = $1 WHERE org = $2 AND sandbox = $3 AND id = $4::BIGINT AND status = 'PROCESSING'",
    )
    .bind(to_json(progress))
    .bind(key.tenant.org.as_str())
    .bind(key.tenant.sandbox.as_str())
    .bind(&key.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl ExportJobStore for PostgresMetaStore {
    async fn create_export_job(&self, new: &NewExportJob, max_queued: u64) -> Result<ExportJobCreation, StorageError> {
        let mut tx = self.begin_write(&new.tenant).await?;
        if let Some(idempotency) = &new.idempotency
            && let Some((job, digest)) = job_by_key_in(&mut tx, &new.tenant, &idempotency.key).await?
        {
            return Ok(if digest == idempotency.body_sha256 {
                ExportJobCreation::Replayed(job)
            } else {
                ExportJobCreation::KeyReused { job_id: job.id }
            });
        }
        let queued = queued_count_in(&mut tx, JobKind::Export).await?;
        if queued >= max_queued {
            return Ok(ExportJobCreation::QueueFull { queued });
        }
        if get_dataset_row(&mut *tx, &new.tenant, &new.spec.dataset_id)
            .await?
            .is_none()
        {
            return Ok(ExportJobCreation::DatasetGone);
        }
        for target in &new.batches {
            insert_batch_in(&mut tx, &export_batch(new, &target.batch_id)).await?;
        }
        let id = insert_job_in(&mut tx, new).await?;
        enqueue_in(&mut tx, &JobKey::export(&new.tenant, id), new.created).await?;
        let job = job_in(&mut tx, &new.tenant, id)
            .await?
            .expect("inserted in this transaction");
        tx.commit().await?;
        Ok(ExportJobCreation::Created(job))
    }

    async fn export_job(&self, tenant: &Tenant, id: i64) -> Result<Option<ExportJob>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        job_in(&mut conn, tenant, id).await
    }

    async fn export_job_by_idempotency_key(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> Result<Option<(ExportJob, String)>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        job_by_key_in(&mut conn, tenant, key).await
    }

    async fn list_export_jobs(
        &self,
        tenant: &Tenant,
        listing: &ExportJobListing,
    ) -> Result<Vec<ExportJob>, StorageError> {
        let (after_created, after_id) = listing.after.unzip();
        let status = listing.status.map(ExportJobStatus::as_str);
        let rows = sqlx::query(
            "SELECT * FROM export_jobs WHERE org = $1 AND sandbox = $2 AND ($3 IS NULL OR status = $4)
               AND ($5 IS NULL OR created < $6 OR (created = $7 AND id < $8))
             ORDER BY created DESC, id DESC LIMIT $9 OFFSET $10",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(status)
        .bind(status)
        .bind(after_created)
        .bind(after_created)
        .bind(after_created)
        .bind(after_id)
        .bind(i64::from(listing.limit))
        .bind(sql_offset(listing.skip))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn cancel_export_job(
        &self,
        tenant: &Tenant,
        id: i64,
        now: EpochMillis,
    ) -> Result<Option<ExportCancellation>, StorageError> {
        let mut tx = self.begin_write(tenant).await?;
        lock_entry_in(&mut tx, &JobKey::export(tenant, id)).await?;
        let Some(job) = job_in(&mut tx, tenant, id).await? else {
            return Ok(None);
        };
        let waiting = waiting_in(&mut tx, &JobKey::export(tenant, id)).await?;
        let outcome = match job.status {
            ExportJobStatus::New | ExportJobStatus::Processing if waiting => {
                end_unsuccessfully_in(&mut tx, &job, ExportJobStatus::Cancelled, &[], now).await?;
                ExportCancellation::Cancelled
            }
            ExportJobStatus::Processing => {
                sqlx::query(
                    "UPDATE export_jobs SET cancel_requested = TRUE WHERE org = $1 AND sandbox = $2 AND id = $3",
                )
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                request_cancel_in(&mut tx, &JobKey::export(tenant, id)).await?;
                ExportCancellation::Requested
            }
            _ => ExportCancellation::AlreadyEnded,
        };
        let job = job_in(&mut tx, tenant, id).await?.expect("read in this transaction");
        tx.commit().await?;
        Ok(Some(outcome(job)))
    }

    async fn succeed_export_job(
        &self,
        job: &ExportJob,
        worker: &str,
        metrics: &ExportJobMetrics,
        batches: &[(BatchId, BatchOutcome)],
        now: EpochMillis,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin_write(&job.tenant).await?;
        let key = JobKey::export(&job.tenant, job.id);
        lock_entry_in(&mut tx, &key).await?;
        if !held_by_in(&mut tx, &key, Some(worker)).await? {
            return Ok(false);
        }
        let update = sqlx::query(
            "UPDATE export_jobs SET status = 'SUCCEEDED', metrics = $1, updated = $2
             WHERE org = $3 AND sandbox = $4 AND id = $5 AND status = 'PROCESSING' AND cancel_requested = FALSE",
        )
        .bind(to_json(metrics))
        .bind(now);
        if !update_by_id(&mut tx, update, &job.tenant, job.id).await? {
            return Ok(false);
        }
        dequeue_in(&mut tx, &JobKey::export(&job.tenant, job.id)).await?;
        for (batch_id, outcome) in batches {
            if !commit_batch_in(&mut tx, &job.tenant, batch_id, outcome).await? {
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn end_export_job(
        &self,
        tenant: &Tenant,
        id: i64,
        holder: Option<&str>,
        status: ExportJobStatus,
        errors: &[ExportJobError],
        now: EpochMillis,
    ) -> Result<bool, StorageError> {
        debug_assert!(matches!(status, ExportJobStatus::Failed | ExportJobStatus::Cancelled));
        let mut tx = self.begin_write(tenant).await?;
        let key = JobKey::export(tenant, id);
        lock_entry_in(&mut tx, &key).await?;
        if !held_by_in(&mut tx, &key, holder).await? {
            return Ok(false);
        }
        let Some(job) = job_in(&mut tx, tenant, id).await? else {
            return Ok(false);
        };
        if !end_unsuccessfully_in(&mut tx, &job, status, errors, now).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}
