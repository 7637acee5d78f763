//! Segment jobs (what the API shows of them, and their side of the job queue), and the current
//! membership file of each segment.
//!
//! As with export jobs, a job and its `job_queue` entry change in one transaction, and writes
//! that decide on what they read (create, claim, cancel, end) take SQLite's write lock first
//! (`BEGIN IMMEDIATE`). A job's success and the switch of its segments' membership files are one
//! transaction: a reader sees the old files or the new ones.

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use dossier_model::export_job::ExportJobError;
use dossier_model::listing::sql_offset;
use dossier_model::segment_job::{SegmentJob, SegmentJobMetrics, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::SqliteMetaStore;
use super::by_id::{read_by_id, update_by_id};
use super::job_queue::{dequeue_in, enqueue_in, held_by_in, queued_count_in, request_cancel_in, waiting_in};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{JobColumns, job_from_columns, json_column, to_json};
use crate::meta::{JobKey, JobKind, MembershipFile, NewSegmentJob, SegmentJobCreation};

const TABLE: &str = "segment_jobs";

/// A `segment_jobs` row as stored (`SELECT *`; the queue's own columns are not read here).
#[derive(sqlx::FromRow)]
struct SegmentJobRow {
    id: String,
    #[sqlx(flatten)]
    job: JobColumns,
    segments: String,
}

impl SegmentJobRow {
    fn into_job(self) -> Result<SegmentJob, StorageError> {
        Ok(job_from_columns!(SegmentJob {
            columns: self.job,
            table: TABLE,
            id: self.id,
            segments: json_column(TABLE, "segments", &self.segments)?,
        }))
    }
}

fn job_from_row(row: &SqliteRow) -> Result<SegmentJob, StorageError> {
    SegmentJobRow::from_row(row)?.into_job()
}

async fn job_in(conn: &mut SqliteConnection, tenant: &Tenant, id: &str) -> Result<Option<SegmentJob>, StorageError> {
    read_by_id(conn, TABLE, "", tenant, id, job_from_row).await
}

/// Makes `files` current, returning the files they supersede (for the caller to delete).
async fn switch_files_in(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    files: &[MembershipFile],
) -> Result<Vec<String>, StorageError> {
    let mut superseded = Vec::new();
    for file in files {
        let old: Option<String> =
            sqlx::query_scalar("SELECT path FROM segment_memberships WHERE org = ? AND sandbox = ? AND segment_id = ?")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(&file.segment_id)
                .fetch_optional(&mut *conn)
                .await?;
        sqlx::query(
            "INSERT INTO segment_memberships (org, sandbox, segment_id, path, job_id, evaluated, rows)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (org, sandbox, segment_id) DO UPDATE SET
               path = excluded.path, job_id = excluded.job_id, evaluated = excluded.evaluated, rows = excluded.rows",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(&file.segment_id)
        .bind(&file.path)
        .bind(&file.job_id)
        .bind(file.evaluated)
        .bind(file.rows)
        .execute(&mut *conn)
        .await?;
        superseded.extend(old.filter(|old| *old != file.path));
    }
    Ok(superseded)
}

/// A segment job's side of a claim (in the claim's transaction): a NEW job PROCESSING with its
/// start time. `None` when the job is not NEW.
pub(super) async fn claim_in(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    id: &str,
    now: EpochMillis,
) -> Result<Option<SegmentJob>, StorageError> {
    let metrics = SegmentJobMetrics {
        start: Some(now),
        ..SegmentJobMetrics::default()
    };
    let claim = sqlx::query(
        "UPDATE segment_jobs SET status = 'PROCESSING', updated = ?, metrics = ?
         WHERE org = ? AND sandbox = ? AND id = ? AND status IN ('NEW', 'PROCESSING')",
    )
    .bind(now)
    .bind(to_json(&metrics));
    if !update_by_id(&mut *conn, claim, tenant, id).await? {
        return Ok(None);
    }
    job_in(conn, tenant, id).await
}

/// A `segment_memberships` row as stored.
#[derive(sqlx::FromRow)]
struct MembershipRow {
    segment_id: String,
    path: String,
    job_id: String,
    evaluated: EpochMillis,
    rows: i64,
}

fn membership_from_row(row: &SqliteRow) -> Result<MembershipFile, StorageError> {
    let MembershipRow {
        segment_id,
        path,
        job_id,
        evaluated,
        rows,
    } = MembershipRow::from_row(row)?;
    Ok(MembershipFile {
        segment_id,
        path,
        job_id,
        evaluated,
        rows,
    })
}

#[async_trait]
impl SegmentJobStore for SqliteMetaStore {
    async fn create_segment_job(
        &self,
        new: &NewSegmentJob,
        max_queued: u64,
    ) -> Result<SegmentJobCreation, StorageError> {
        let mut tx = self.begin_write().await?;
        let queued = queued_count_in(&mut tx, JobKind::Segment).await?;
        if queued >= max_queued {
            return Ok(SegmentJobCreation::QueueFull { queued });
        }
        sqlx::query(
            "INSERT INTO segment_jobs (org, sandbox, id, status, request_id, segments, metrics, created_client, created, updated)
             VALUES (?, ?, ?, 'NEW', ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.tenant.org.as_str())
        .bind(new.tenant.sandbox.as_str())
        .bind(&new.id)
        .bind(&new.request_id)
        .bind(to_json(&new.segments))
        .bind(to_json(&SegmentJobMetrics::default()))
        .bind(new.created_client.as_str())
        .bind(new.created)
        .bind(new.created)
        .execute(&mut *tx)
        .await?;
        enqueue_in(&mut tx, &JobKey::segment(&new.tenant, &new.id), new.created).await?;
        let job = job_in(&mut tx, &new.tenant, &new.id)
            .await?
            .expect("inserted in this transaction");
        tx.commit().await?;
        Ok(SegmentJobCreation::Created(Box::new(job)))
    }

    async fn segment_job(&self, tenant: &Tenant, id: &str) -> Result<Option<SegmentJob>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        job_in(&mut conn, tenant, id).await
    }

    async fn list_segment_jobs(
        &self,
        tenant: &Tenant,
        status: Option<SegmentJobStatus>,
        ascending: bool,
        start: u64,
        limit: u32,
    ) -> Result<(Vec<SegmentJob>, u64), StorageError> {
        let status = status.map(SegmentJobStatus::as_str);
        let rows = sqlx::query(if ascending {
            "SELECT * FROM segment_jobs WHERE org = ? AND sandbox = ? AND (? IS NULL OR status = ?)
             ORDER BY created ASC, rowid ASC LIMIT ? OFFSET ?"
        } else {
            "SELECT * FROM segment_jobs WHERE org = ? AND sandbox = ? AND (? IS NULL OR status = ?)
             ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?"
        })
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(status)
        .bind(status)
        .bind(i64::from(limit))
        .bind(sql_offset(start))
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM segment_jobs WHERE org = ? AND sandbox = ? AND (? IS NULL OR status = ?)",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(status)
        .bind(status)
        .fetch_one(&self.pool)
        .await?;
        Ok((rows.iter().map(job_from_row).collect::<Result<_, _>>()?, total as u64))
    }

    async fn cancel_segment_job(
        &self,
        tenant: &Tenant,
        id: &str,
        now: EpochMillis,
    ) -> Result<Option<SegmentJob>, StorageError> {
        let mut tx = self.begin_write().await?;
        let Some(job) = job_in(&mut tx, tenant, id).await? else {
            return Ok(None);
        };
        let waiting = waiting_in(&mut tx, &JobKey::segment(tenant, id)).await?;
        let next = match job.status {
            SegmentJobStatus::New | SegmentJobStatus::Processing if waiting => Some(SegmentJobStatus::Cancelled),
            SegmentJobStatus::Processing => Some(SegmentJobStatus::Cancelling),
            _ => None,
        };
        if let Some(next) = next {
            sqlx::query("UPDATE segment_jobs SET status = ?, updated = ? WHERE org = ? AND sandbox = ? AND id = ?")
                .bind(next.as_str())
                .bind(now)
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let key = JobKey::segment(tenant, id);
            if next == SegmentJobStatus::Cancelled {
                dequeue_in(&mut tx, &key).await?;
            } else {
                request_cancel_in(&mut tx, &key).await?;
            }
        }
        let job = job_in(&mut tx, tenant, id).await?.expect("read in this transaction");
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn succeed_segment_job(
        &self,
        job: &SegmentJob,
        worker: &str,
        metrics: &SegmentJobMetrics,
        files: &[MembershipFile],
        now: EpochMillis,
    ) -> Result<Option<Vec<String>>, StorageError> {
        let mut tx = self.begin_write().await?;
        if !held_by_in(&mut tx, &JobKey::segment(&job.tenant, &job.id), Some(worker)).await? {
            return Ok(None);
        }
        let update = sqlx::query(
            "UPDATE segment_jobs SET status = 'SUCCEEDED', metrics = ?, updated = ?
             WHERE org = ? AND sandbox = ? AND id = ? AND status = 'PROCESSING'",
        )
        .bind(to_json(metrics))
        .bind(now);
        if !update_by_id(&mut tx, update, &job.tenant, &job.id).await? {
            return Ok(None);
        }
        dequeue_in(&mut tx, &JobKey::segment(&job.tenant, &job.id)).await?;
        let superseded = switch_files_in(&mut tx, &job.tenant, files).await?;
        tx.commit().await?;
        Ok(Some(superseded))
    }

    async fn switch_membership_files(
        &self,
        tenant: &Tenant,
        files: &[MembershipFile],
    ) -> Result<Vec<String>, StorageError> {
        let mut tx = self.begin_write().await?;
        let superseded = switch_files_in(&mut tx, tenant, files).await?;
        tx.commit().await?;
        Ok(superseded)
    }

    async fn end_segment_job(
        &self,
        job: &SegmentJob,
        holder: Option<&str>,
        status: SegmentJobStatus,
        errors: &[ExportJobError],
        metrics: Option<&SegmentJobMetrics>,
        now: EpochMillis,
    ) -> Result<bool, StorageError> {
        debug_assert!(matches!(status, SegmentJobStatus::Failed | SegmentJobStatus::Cancelled));
        let (tenant, id) = (&job.tenant, job.id.as_str());
        let mut tx = self.begin_write().await?;
        if !held_by_in(&mut tx, &JobKey::segment(tenant, id), holder).await? {
            return Ok(false);
        }
        let update = sqlx::query(
            "UPDATE segment_jobs SET status = ?, errors = ?, metrics = COALESCE(?, metrics), updated = ?
             WHERE org = ? AND sandbox = ? AND id = ? AND status IN ('NEW', 'PROCESSING', 'CANCELLING')",
        )
        .bind(status.as_str())
        .bind(to_json(&errors))
        .bind(metrics.map(to_json))
        .bind(now);
        if !update_by_id(&mut tx, update, tenant, id).await? {
            return Ok(false);
        }
        dequeue_in(&mut tx, &JobKey::segment(tenant, id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn membership_files(&self, tenant: &Tenant) -> Result<Vec<MembershipFile>, StorageError> {
        let rows = sqlx::query("SELECT * FROM segment_memberships WHERE org = ? AND sandbox = ? ORDER BY segment_id")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(membership_from_row).collect()
    }
}
