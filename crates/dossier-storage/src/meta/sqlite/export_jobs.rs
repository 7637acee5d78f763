//! Export jobs and their queue.
//!
//! A job and its Catalog batches change together, always in one transaction: created (job NEW,
//! batches `loading`), claimed (PROCESSING / `processing`), and ended — SUCCEEDED with every
//! batch `success` and its files, or FAILED / CANCELLED with every batch `failed`. Writes that
//! decide on what they read (create, claim, cancel) take SQLite's write lock first
//! (`BEGIN IMMEDIATE`), which makes them the single-writer claim the design asks for.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{FromRow, Row};

use dossier_model::catalog::{Batch, BatchError, BatchStatus};
use dossier_model::export_job::{ExportJob, ExportJobError, ExportJobMetrics, ExportJobProgress, ExportJobStatus};
use dossier_model::ids::BatchId;
use dossier_model::listing::sql_offset;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::SqliteMetaStore;
use super::batch_files::commit_batch_in;
use super::catalog::{get_dataset_row, insert_batch_in};
use super::rows::{TenantColumns, json_column, parsed_column, to_json};
use crate::StorageError;
use crate::meta::BatchOutcome;
use crate::meta::prelude::*;
use crate::meta::{ExportCancellation, ExportJobCreation, ExportJobListing, NewExportJob, PerSandbox};

/// An `export_jobs` row as stored (`SELECT *`; the queue's own columns are not read here).
#[derive(sqlx::FromRow)]
struct ExportJobRow {
    id: i64,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    status: String,
    request_id: String,
    request: String,
    spec: String,
    batches: String,
    metrics: String,
    progress: Option<String>,
    errors: String,
    cancel_requested: bool,
    created: EpochMillis,
    updated: EpochMillis,
}

impl ExportJobRow {
    fn into_job(self) -> Result<ExportJob, StorageError> {
        const TABLE: &str = "export_jobs";
        Ok(ExportJob {
            id: self.id,
            tenant: self.tenant.into_tenant(TABLE)?,
            status: parsed_column(TABLE, "status", self.status.parse::<ExportJobStatus>())?,
            request_id: self.request_id,
            request: json_column(TABLE, "request", &self.request)?,
            spec: json_column(TABLE, "spec", &self.spec)?,
            batches: json_column(TABLE, "batches", &self.batches)?,
            metrics: json_column(TABLE, "metrics", &self.metrics)?,
            progress: self
                .progress
                .map(|raw| json_column::<ExportJobProgress>(TABLE, "progress", &raw))
                .transpose()?,
            errors: json_column(TABLE, "errors", &self.errors)?,
            cancel_requested: self.cancel_requested,
            created: self.created,
            updated: self.updated,
        })
    }
}

fn job_from_row(row: &SqliteRow) -> Result<ExportJob, StorageError> {
    ExportJobRow::from_row(row)?.into_job()
}

async fn job_in(conn: &mut SqliteConnection, tenant: &Tenant, id: i64) -> Result<Option<ExportJob>, StorageError> {
    let row = sqlx::query("SELECT * FROM export_jobs WHERE org = ? AND sandbox = ? AND id = ?")
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// The job created with `key` in this tenant and the digest of the body that created it.
async fn job_by_key_in(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    key: &str,
) -> Result<Option<(ExportJob, String)>, StorageError> {
    let row = sqlx::query("SELECT * FROM export_jobs WHERE org = ? AND sandbox = ? AND idempotency_key = ?")
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

async fn insert_job_in(conn: &mut SqliteConnection, new: &NewExportJob) -> Result<i64, StorageError> {
    let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM export_jobs WHERE org = ? AND sandbox = ?")
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
         VALUES (?, ?, ?, 'NEW', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    conn: &mut SqliteConnection,
    job: &ExportJob,
    to: BatchStatus,
    errors: &[BatchError],
    now: EpochMillis,
) -> Result<(), StorageError> {
    let ended = matches!(to, BatchStatus::Failed).then_some(now);
    for target in &job.batches {
        sqlx::query(
            "UPDATE batches SET status = ?, updated = ?, started = COALESCE(started, ?), completed = ?, errors = ?
             WHERE id = ? AND org = ? AND sandbox = ? AND status IN ('loading', 'processing')",
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
        sqlx::query("UPDATE datasets SET last_batch_status = ? WHERE last_batch_id = ? AND org = ? AND sandbox = ?")
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
    conn: &mut SqliteConnection,
    job: &ExportJob,
    status: ExportJobStatus,
    errors: &[ExportJobError],
    now: EpochMillis,
) -> Result<bool, StorageError> {
    let mut metrics = job.metrics.clone();
    metrics.total_time.end = Some(now);
    let updated = sqlx::query(
        "UPDATE export_jobs SET status = ?, errors = ?, metrics = ?, updated = ?
         WHERE org = ? AND sandbox = ? AND id = ? AND status IN ('NEW', 'PROCESSING')",
    )
    .bind(status.as_str())
    .bind(to_json(&errors))
    .bind(to_json(&metrics))
    .bind(now)
    .bind(job.tenant.org.as_str())
    .bind(job.tenant.sandbox.as_str())
    .bind(job.id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
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

#[async_trait]
impl ExportJobStore for SqliteMetaStore {
    async fn create_export_job(&self, new: &NewExportJob, max_queued: u64) -> Result<ExportJobCreation, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(idempotency) = &new.idempotency
            && let Some((job, digest)) = job_by_key_in(&mut tx, &new.tenant, &idempotency.key).await?
        {
            return Ok(if digest == idempotency.body_sha256 {
                ExportJobCreation::Replayed(job)
            } else {
                ExportJobCreation::KeyReused { job_id: job.id }
            });
        }
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM export_jobs WHERE status = 'NEW'")
            .fetch_one(&mut *tx)
            .await?;
        if queued as u64 >= max_queued {
            return Ok(ExportJobCreation::QueueFull { queued: queued as u64 });
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
            "SELECT * FROM export_jobs WHERE org = ? AND sandbox = ? AND (? IS NULL OR status = ?)
               AND (? IS NULL OR created < ? OR (created = ? AND id < ?))
             ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(job) = job_in(&mut tx, tenant, id).await? else {
            return Ok(None);
        };
        let outcome = match job.status {
            ExportJobStatus::New => {
                end_unsuccessfully_in(&mut tx, &job, ExportJobStatus::Cancelled, &[], now).await?;
                ExportCancellation::Cancelled
            }
            ExportJobStatus::Processing => {
                sqlx::query("UPDATE export_jobs SET cancel_requested = 1 WHERE org = ? AND sandbox = ? AND id = ?")
                    .bind(tenant.org.as_str())
                    .bind(tenant.sandbox.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                ExportCancellation::Requested
            }
            _ => ExportCancellation::AlreadyEnded,
        };
        let job = job_in(&mut tx, tenant, id).await?.expect("read in this transaction");
        tx.commit().await?;
        Ok(Some(outcome(job)))
    }

    async fn claim_next_export_job(
        &self,
        now: EpochMillis,
        per_sandbox: PerSandbox,
    ) -> Result<Option<ExportJob>, StorageError> {
        // Idle workers poll; a plain read keeps them from taking the write lock for nothing.
        let any_queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM export_jobs WHERE status = 'NEW')")
            .fetch_one(&self.pool)
            .await?;
        if !any_queued {
            return Ok(None);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(super::fair_claim::NEXT_EXPORT_JOB)
            .bind(per_sandbox.bound())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job) = row.as_ref().map(job_from_row).transpose()? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE export_jobs SET status = 'PROCESSING', heartbeat = ?, updated = ?
             WHERE org = ? AND sandbox = ? AND id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(job.tenant.org.as_str())
        .bind(job.tenant.sandbox.as_str())
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        set_job_batches_in(&mut tx, &job, BatchStatus::Processing, &[], now).await?;
        let claimed = job_in(&mut tx, &job.tenant, job.id)
            .await?
            .expect("read in this transaction");
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn export_heartbeat(
        &self,
        tenant: &Tenant,
        id: i64,
        progress: &ExportJobProgress,
        now: EpochMillis,
    ) -> Result<Option<bool>, StorageError> {
        let cancel: Option<i64> = sqlx::query_scalar(
            "UPDATE export_jobs SET heartbeat = ?, progress = ?
             WHERE org = ? AND sandbox = ? AND id = ? AND status = 'PROCESSING'
             RETURNING cancel_requested",
        )
        .bind(now)
        .bind(to_json(progress))
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(cancel.map(|c| c != 0))
    }

    async fn succeed_export_job(
        &self,
        job: &ExportJob,
        metrics: &ExportJobMetrics,
        batches: &[(BatchId, BatchOutcome)],
        now: EpochMillis,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query(
            "UPDATE export_jobs SET status = 'SUCCEEDED', metrics = ?, updated = ?
             WHERE org = ? AND sandbox = ? AND id = ? AND status = 'PROCESSING' AND cancel_requested = 0",
        )
        .bind(to_json(metrics))
        .bind(now)
        .bind(job.tenant.org.as_str())
        .bind(job.tenant.sandbox.as_str())
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
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
        status: ExportJobStatus,
        errors: &[ExportJobError],
        now: EpochMillis,
    ) -> Result<bool, StorageError> {
        debug_assert!(matches!(status, ExportJobStatus::Failed | ExportJobStatus::Cancelled));
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(job) = job_in(&mut tx, tenant, id).await? else {
            return Ok(false);
        };
        if !end_unsuccessfully_in(&mut tx, &job, status, errors, now).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn export_jobs_in_status(&self, status: ExportJobStatus) -> Result<Vec<ExportJob>, StorageError> {
        let rows = sqlx::query("SELECT * FROM export_jobs WHERE status = ? ORDER BY created, rowid")
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use dossier_model::catalog::{DataBehavior, Dataset, FileDescription, SchemaRef};
    use dossier_model::export_job::QualificationWindow;
    use dossier_model::ids::{DatasetId, MergePolicyId};
    use dossier_model::schema::PROFILE_UNION_SCHEMA_ID;
    use serde_json::json;

    use dossier_model::tenancy::{OrgId, SandboxName};

    use super::*;
    use crate::meta::{BatchFile, DatasetDeletion, FileKind};
    use crate::meta::{IdempotencyKey, MetaStore};
    use dossier_model::export_job::{ExportBatchTarget, ExportSpec};
    use dossier_model::ids::ClientId;

    const ORG: &str = "1BD6382559DF0C130A49422D@AdobeOrg";

    fn tenant(sandbox: &str) -> Tenant {
        Tenant {
            org: OrgId::parse(ORG).unwrap(),
            sandbox: SandboxName::parse(sandbox).unwrap(),
        }
    }

    async fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
        meta.ensure_org(&OrgId::parse(ORG).unwrap()).await.unwrap();
        (dir, meta)
    }

    async fn target_dataset(meta: &MetaStore, tenant: &Tenant) -> DatasetId {
        let dataset = Dataset {
            id: DatasetId::generate(),
            org: tenant.org.clone(),
            sandbox: tenant.sandbox.clone(),
            name: "export target".into(),
            description: None,
            schema_ref: SchemaRef {
                id: PROFILE_UNION_SCHEMA_ID.into(),
                content_type: "application/vnd.adobe.xed+json;version=1".into(),
            },
            file_description: FileDescription::default(),
            tags: Default::default(),
            aspect: None,
            data_behavior: DataBehavior::Record,
            created: 1,
            updated: 1,
            created_client: ClientId::from_string("client"),
            last_batch_id: None,
            last_batch_status: None,
        };
        meta.insert_dataset(&dataset).await.unwrap();
        dataset.id
    }

    fn new_job(tenant: &Tenant, dataset: &DatasetId, created: EpochMillis, key: Option<(&str, &str)>) -> NewExportJob {
        NewExportJob {
            tenant: tenant.clone(),
            request_id: "req".into(),
            request: json!({"schema": {"name": "_xdm.context.profile"}}),
            spec: ExportSpec {
                fields: None,
                segments: Vec::new(),
                qualification: QualificationWindow::default(),
                from_ingest: None,
                empty_profiles: false,
                event_list: None,
                dataset_id: dataset.clone(),
                segment_per_batch: false,
                merge_policy_id: MergePolicyId::from_string("timestampOrdered-none-mp"),
                merge_policy_version: 1,
                evaluate_segments: false,
            },
            batches: vec![ExportBatchTarget {
                batch_id: BatchId::generate(),
                segment: None,
            }],
            created_client: ClientId::from_string("client"),
            created,
            idempotency: key.map(|(key, digest)| IdempotencyKey {
                key: key.into(),
                body_sha256: digest.into(),
            }),
        }
    }

    async fn created(meta: &MetaStore, new: &NewExportJob) -> ExportJob {
        match meta.create_export_job(new, 100).await.unwrap() {
            ExportJobCreation::Created(job) => job,
            other => panic!("not created: {other:?}"),
        }
    }

    async fn batch_status(meta: &MetaStore, job: &ExportJob) -> BatchStatus {
        meta.get_batch(&job.tenant, &job.batches[0].batch_id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    #[tokio::test]
    async fn ids_increase_per_sandbox_and_batches_are_created_loading() {
        let (_dir, meta) = store().await;
        let (prod, dev) = (tenant("prod"), tenant("dev"));
        meta.create_sandbox(&dev.org, &dev.sandbox).await.unwrap();
        let (prod_ds, dev_ds) = (target_dataset(&meta, &prod).await, target_dataset(&meta, &dev).await);
        let first = created(&meta, &new_job(&prod, &prod_ds, 10, None)).await;
        let second = created(&meta, &new_job(&prod, &prod_ds, 11, None)).await;
        let other = created(&meta, &new_job(&dev, &dev_ds, 12, None)).await;
        assert_eq!((first.id, second.id, other.id), (1, 2, 1));
        assert_eq!(first.status, ExportJobStatus::New);
        let batch = meta
            .get_batch(&prod, &first.batches[0].batch_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.status, BatchStatus::Loading);
        assert!(!batch.is_ingestion());
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_the_same_body_and_refuses_another() {
        let (_dir, meta) = store().await;
        let t = tenant("prod");
        let ds = target_dataset(&meta, &t).await;
        let first = created(&meta, &new_job(&t, &ds, 10, Some(("k", "aaa")))).await;
        match meta
            .create_export_job(&new_job(&t, &ds, 11, Some(("k", "aaa"))), 100)
            .await
            .unwrap()
        {
            ExportJobCreation::Replayed(job) => assert_eq!(job.id, first.id),
            other => panic!("{other:?}"),
        }
        match meta
            .create_export_job(&new_job(&t, &ds, 12, Some(("k", "bbb"))), 100)
            .await
            .unwrap()
        {
            ExportJobCreation::KeyReused { job_id } => assert_eq!(job_id, first.id),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_queue_has_a_limit_and_workers_claim_the_oldest_job_once() {
        let (_dir, meta) = store().await;
        let t = tenant("prod");
        let ds = target_dataset(&meta, &t).await;
        created(&meta, &new_job(&t, &ds, 20, None)).await;
        created(&meta, &new_job(&t, &ds, 10, None)).await;
        assert!(matches!(
            meta.create_export_job(&new_job(&t, &ds, 30, None), 2).await.unwrap(),
            ExportJobCreation::QueueFull { queued: 2 }
        ));
        let claimed = meta
            .claim_next_export_job(40, PerSandbox::UNLIMITED)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((claimed.id, claimed.status), (2, ExportJobStatus::Processing));
        assert_eq!(batch_status(&meta, &claimed).await, BatchStatus::Processing);
        assert_eq!(
            meta.claim_next_export_job(41, PerSandbox::UNLIMITED)
                .await
                .unwrap()
                .unwrap()
                .id,
            1
        );
        assert!(
            meta.claim_next_export_job(42, PerSandbox::UNLIMITED)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn claims_go_to_the_sandbox_with_the_fewest_running_under_its_cap() {
        let (_dir, meta) = store().await;
        let (a, b) = (tenant("prod"), tenant("dev"));
        meta.create_sandbox(&b.org, &b.sandbox).await.unwrap();
        let (a_ds, b_ds) = (target_dataset(&meta, &a).await, target_dataset(&meta, &b).await);
        // Sandbox A queued three jobs before B queued one.
        for created_at in [10, 11, 12] {
            created(&meta, &new_job(&a, &a_ds, created_at, None)).await;
        }
        let b_job = created(&meta, &new_job(&b, &b_ds, 13, None)).await;
        let cap = PerSandbox::for_workers(2);
        let first = meta.claim_next_export_job(20, cap).await.unwrap().unwrap();
        assert_eq!((first.tenant.sandbox.as_str(), first.id), ("prod", 1));
        // A runs one job, its cap: B's younger job goes next, then nothing until A's ends.
        let second = meta.claim_next_export_job(21, cap).await.unwrap().unwrap();
        assert_eq!((second.tenant.sandbox.as_str(), second.id), ("dev", b_job.id));
        assert!(meta.claim_next_export_job(22, cap).await.unwrap().is_none());
        // Without a cap, A's next job is still taken after B's, fewest running first.
        assert_eq!(
            meta.claim_next_export_job(23, PerSandbox::UNLIMITED)
                .await
                .unwrap()
                .unwrap()
                .id,
            2
        );
    }

    #[tokio::test]
    async fn segment_jobs_share_the_cap_with_exports() {
        use crate::meta::{NewSegmentJob, SegmentJobCreation};
        let (_dir, meta) = store().await;
        let (a, b) = (tenant("prod"), tenant("dev"));
        meta.create_sandbox(&b.org, &b.sandbox).await.unwrap();
        let a_ds = target_dataset(&meta, &a).await;
        created(&meta, &new_job(&a, &a_ds, 10, None)).await;
        let segment_job = |tenant: &Tenant, id: &str, created: EpochMillis| NewSegmentJob {
            tenant: tenant.clone(),
            id: id.into(),
            request_id: "request".into(),
            segments: Vec::new(),
            created_client: ClientId::from_string("client"),
            created,
        };
        for new in [segment_job(&a, "a-seg", 11), segment_job(&b, "b-seg", 12)] {
            assert!(matches!(
                meta.create_segment_job(&new, 10).await.unwrap(),
                SegmentJobCreation::Created(_)
            ));
        }
        let cap = PerSandbox::for_workers(2);
        assert_eq!(meta.claim_next_export_job(20, cap).await.unwrap().unwrap().tenant, a);
        // A's export is running: A's older segment job waits, B's is taken.
        let claimed = meta.claim_next_segment_job(21, cap).await.unwrap().unwrap();
        assert_eq!(claimed.id, "b-seg");
        assert!(meta.claim_next_segment_job(22, cap).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cancel_ends_a_new_job_at_once_and_marks_a_running_one() {
        let (_dir, meta) = store().await;
        let t = tenant("prod");
        let ds = target_dataset(&meta, &t).await;
        let waiting = created(&meta, &new_job(&t, &ds, 10, None)).await;
        let running = created(&meta, &new_job(&t, &ds, 20, None)).await;
        assert_eq!(
            meta.claim_next_export_job(30, PerSandbox::UNLIMITED)
                .await
                .unwrap()
                .unwrap()
                .id,
            waiting.id
        );
        // `waiting` was claimed first (it is older), so cancel the NEW one, `running`'s twin.
        let Some(ExportCancellation::Cancelled(job)) = meta.cancel_export_job(&t, running.id, 40).await.unwrap() else {
            panic!("a NEW job is cancelled at once");
        };
        assert_eq!(job.status, ExportJobStatus::Cancelled);
        assert_eq!(job.metrics.total_time.end, Some(40));
        assert_eq!(batch_status(&meta, &job).await, BatchStatus::Failed);

        let progress = ExportJobProgress::default();
        assert_eq!(
            meta.export_heartbeat(&t, waiting.id, &progress, 41).await.unwrap(),
            Some(false)
        );
        assert!(matches!(
            meta.cancel_export_job(&t, waiting.id, 42).await.unwrap(),
            Some(ExportCancellation::Requested(_))
        ));
        assert_eq!(
            meta.export_heartbeat(&t, waiting.id, &progress, 43).await.unwrap(),
            Some(true)
        );
        // A cancel requested after the export finished wins over its success.
        let claimed = meta.export_job(&t, waiting.id).await.unwrap().unwrap();
        assert!(
            !meta
                .succeed_export_job(&claimed, &claimed.metrics, &[], 44)
                .await
                .unwrap()
        );
        assert!(
            meta.end_export_job(&t, waiting.id, ExportJobStatus::Cancelled, &[], 45)
                .await
                .unwrap()
        );
        assert!(matches!(
            meta.cancel_export_job(&t, waiting.id, 46).await.unwrap(),
            Some(ExportCancellation::AlreadyEnded(job)) if job.status == ExportJobStatus::Cancelled
        ));
        assert!(
            meta.cancel_export_job(&tenant("dev"), waiting.id, 47)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn success_commits_the_job_and_its_batch_files_together() {
        let (_dir, meta) = store().await;
        let t = tenant("prod");
        let ds = target_dataset(&meta, &t).await;
        created(&meta, &new_job(&t, &ds, 10, None)).await;
        let job = meta
            .claim_next_export_job(20, PerSandbox::UNLIMITED)
            .await
            .unwrap()
            .unwrap();
        let batch_id = job.batches[0].batch_id.clone();
        let file = BatchFile {
            file_id: format!("{batch_id}-0"),
            batch_id: batch_id.clone(),
            dataset_id: ds.clone(),
            kind: FileKind::Data,
            name: "part-00000.parquet".into(),
            path: "somewhere/part-00000.parquet".into(),
            size: 10,
            records: 3,
            created: 25,
        };
        let outcome = BatchOutcome {
            status: BatchStatus::Success,
            completed: 30,
            records_read: 3,
            record_count: 3,
            size: 10,
            errors: Vec::new(),
            files: vec![file],
        };
        let mut metrics = job.metrics.clone();
        metrics.total_time.end = Some(30);
        assert!(matches!(
            meta.delete_dataset(&t, &ds).await.unwrap(),
            DatasetDeletion::ExportInProgress { job_id: 1 }
        ));
        assert!(
            meta.succeed_export_job(&job, &metrics, &[(batch_id.clone(), outcome)], 30)
                .await
                .unwrap()
        );
        let done = meta.export_job(&t, job.id).await.unwrap().unwrap();
        assert_eq!(done.status, ExportJobStatus::Succeeded);
        assert_eq!(batch_status(&meta, &done).await, BatchStatus::Success);
        assert_eq!(meta.batch_files(&t, &batch_id, FileKind::Data).await.unwrap().len(), 1);
        assert_eq!(meta.delete_dataset(&t, &ds).await.unwrap(), DatasetDeletion::Deleted);
    }

    #[tokio::test]
    async fn the_listing_walks_newest_first_after_a_cursor() {
        let (_dir, meta) = store().await;
        let t = tenant("prod");
        let ds = target_dataset(&meta, &t).await;
        for created_at in [10, 10, 20] {
            created(&meta, &new_job(&t, &ds, created_at, None)).await;
        }
        let page = |after, limit| ExportJobListing {
            status: None,
            after,
            skip: 0,
            limit,
        };
        let ids = |jobs: Vec<ExportJob>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(meta.list_export_jobs(&t, &page(None, 10)).await.unwrap()),
            [3, 2, 1]
        );
        assert_eq!(
            ids(meta.list_export_jobs(&t, &page(Some((10, 2)), 10)).await.unwrap()),
            [1]
        );
        assert_eq!(
            ids(meta.list_export_jobs(&t, &page(Some((20, 3)), 1)).await.unwrap()),
            [2]
        );
    }
}
