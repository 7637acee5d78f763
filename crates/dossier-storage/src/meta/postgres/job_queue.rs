//! The one job queue on PostgreSQL: table `job_queue`, shared by every node.
//!
//! A queue row exists while its job is live. The per-kind files (`export_jobs`, `segment_jobs`)
//! own what the API shows and call the `*_in` functions here inside their own transactions, so a
//! job's AEP status and its queue row never disagree: created with [`enqueue_in`], claimed by
//! [`JobQueueStore::claim_next_job`] (which then runs the kind's claim in the same transaction),
//! marked by [`request_cancel_in`], removed by [`dequeue_in`] when the job ends.
//!
//! What a claim picks is `fair_claim`'s rule, across both kinds. A claim takes the queue row
//! `FOR UPDATE SKIP LOCKED`, so two nodes never take one job, and a row a cancel is deciding on is
//! passed over rather than waited for. Claims also go one at a time (a transaction-level advisory
//! lock of their own, held for the few statements of a claim): the per-sandbox cap counts running
//! jobs, and two claims counting at once could both take a sandbox's last slot. A write that
//! decides on a job's state by reading it (a cancel) first locks the job's queue row with
//! [`lock_entry_in`], in the same order a claim takes its locks (queue row, then the kind's row).

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnection};

use dossier_model::export_job::ExportJobProgress;
use dossier_model::time::EpochMillis;

use super::paging::push;
use super::{LockSpace, PostgresMetaStore, export_jobs, segment_jobs};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{TenantColumns, parsed_column};
use crate::meta::{ClaimedJob, JobKey, JobKind, JobState, PerSandbox, QueueDepth, QueueEntry};

/// A `job_queue` row as stored.
#[derive(sqlx::FromRow)]
struct QueueRow {
    kind: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    job_id: String,
    state: String,
    worker: Option<String>,
    heartbeat: Option<EpochMillis>,
    attempts: i64,
    cancel_requested: bool,
}

const TABLE: &str = "job_queue";

impl QueueRow {
    fn key(kind: &str, tenant: TenantColumns, id: String) -> Result<JobKey, StorageError> {
        Ok(JobKey {
            kind: parsed_column(TABLE, "kind", kind.parse::<JobKind>())?,
            tenant: tenant.into_tenant(TABLE)?,
            id,
        })
    }

    fn into_entry(self) -> Result<QueueEntry, StorageError> {
        let state = parsed_column(TABLE, "state", self.state.parse::<JobState>())?;
        Ok(QueueEntry {
            key: Self::key(&self.kind, self.tenant, self.job_id)?,
            state,
            worker: self.worker,
            heartbeat: self.heartbeat,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            cancel_requested: self.cancel_requested,
        })
    }
}

/// Names one queue row: `$1` to `$4` are [`key_args`]; a query's other values are `$5` on.
macro_rules! where_key {
    () => {
        "kind = $1 AND org = $2 AND sandbox = $3 AND job_id = $4"
    };
}

/// The arguments of [`where_key!`], to which a query pushes its own values (`$5` on).
fn key_args(key: &JobKey) -> PgArguments {
    let mut args = PgArguments::default();
    push(&mut args, key.kind.as_str());
    push(&mut args, key.tenant.org.as_str());
    push(&mut args, key.tenant.sandbox.as_str());
    push(&mut args, key.id.as_str());
    args
}

/// Locks the job's queue row (if it still has one) until the transaction ends: taken by a write
/// that reads the job's state and decides on it, so a claim cannot change the state in between.
pub(super) async fn lock_entry_in(conn: &mut PgConnection, key: &JobKey) -> Result<(), StorageError> {
    sqlx::query_with(
        concat!("SELECT 1 FROM job_queue WHERE ", where_key!(), " FOR UPDATE"),
        key_args(key),
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(())
}

/// Queues a new job (in its creating transaction).
pub(super) async fn enqueue_in(conn: &mut PgConnection, key: &JobKey, queued: EpochMillis) -> Result<(), StorageError> {
    let mut args = key_args(key);
    push(&mut args, queued);
    sqlx::query_with(
        "INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued) VALUES ($1, $2, $3, $4, 'queued', $5)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes a lease that no worker claimed: a running entry under `worker` from `now` (an
/// ingestion's COMPLETE, run at once by the node that accepted it).
pub(super) async fn lease_in(
    conn: &mut PgConnection,
    key: &JobKey,
    worker: &str,
    now: EpochMillis,
) -> Result<(), StorageError> {
    let mut args = key_args(key);
    push(&mut args, worker);
    push(&mut args, now);
    sqlx::query_with(
        "INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued, worker, heartbeat, attempts)
         VALUES ($1, $2, $3, $4, 'running', $6, $5, $6, 1)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How many jobs of `kind` wait for a worker, across every tenant (the workers are shared).
pub(super) async fn queued_count_in(conn: &mut PgConnection, kind: JobKind) -> Result<u64, StorageError> {
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_queue WHERE kind = $1 AND state = 'queued'")
        .bind(kind.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// Marks a running job for its worker, which sees it at its next heartbeat.
pub(super) async fn request_cancel_in(conn: &mut PgConnection, key: &JobKey) -> Result<(), StorageError> {
    sqlx::query_with(
        concat!(
            "UPDATE job_queue SET cancel_requested = TRUE WHERE ",
            where_key!(),
            " AND state = 'running'"
        ),
        key_args(key),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes an ended job off the queue (in the transaction that ends it).
pub(super) async fn dequeue_in(conn: &mut PgConnection, key: &JobKey) -> Result<(), StorageError> {
    sqlx::query_with(concat!("DELETE FROM job_queue WHERE ", where_key!()), key_args(key))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether the job waits on the queue for a worker: a NEW job, or a PROCESSING one put back
/// after its node died (a cancel ends either at once: no worker would see a mark).
pub(super) async fn waiting_in(conn: &mut PgConnection, key: &JobKey) -> Result<bool, StorageError> {
    let waiting: bool = sqlx::query_scalar_with(
        concat!(
            "SELECT EXISTS (SELECT 1 FROM job_queue WHERE ",
            where_key!(),
            " AND state = 'queued')"
        ),
        key_args(key),
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(waiting)
}

/// Whether `holder` runs the job (the fence of a worker's end: a node that lost the lease to
/// another may not end the job). `None` holds nothing to check: true. The caller has locked
/// the queue row ([`lock_entry_in`]), so a takeover cannot slip in before its end commits.
pub(super) async fn held_by_in(
    conn: &mut PgConnection,
    key: &JobKey,
    holder: Option<&str>,
) -> Result<bool, StorageError> {
    let Some(holder) = holder else {
        return Ok(true);
    };
    let mut args = key_args(key);
    push(&mut args, holder);
    let held: bool = sqlx::query_scalar_with(
        concat!(
            "SELECT EXISTS (SELECT 1 FROM job_queue WHERE ",
            where_key!(),
            " AND state = 'running' AND worker = $5)"
        ),
        args,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(held)
}

/// The next queued job a worker may take (see `fair_claim`), or `None`.
async fn next_queued_in(conn: &mut PgConnection, per_sandbox: PerSandbox) -> Result<Option<JobKey>, StorageError> {
    let row: Option<QueueRow> = sqlx::query_as(super::fair_claim::NEXT_QUEUED_JOB)
        .bind(per_sandbox.bound())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| QueueRow::key(&row.kind, row.tenant, row.job_id))
        .transpose()
}

async fn mark_running_in(
    conn: &mut PgConnection,
    key: &JobKey,
    worker: &str,
    now: EpochMillis,
) -> Result<(), StorageError> {
    let mut args = key_args(key);
    push(&mut args, worker);
    push(&mut args, now);
    sqlx::query_with(
        concat!(
            "UPDATE job_queue SET state = 'running', worker = $5, heartbeat = $6, attempts = attempts + 1 WHERE ",
            where_key!()
        ),
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The kind's side of a claim: its job PROCESSING (and, for an export, its batches).
async fn claim_kind_in(conn: &mut PgConnection, key: &JobKey, now: EpochMillis) -> Result<ClaimedJob, StorageError> {
    let corrupt = || StorageError::Corrupt {
        table: TABLE,
        column: "job_id",
        reason: format!("queued {} job '{}' has no live job behind it", key.kind, key.id),
    };
    match key.kind {
        JobKind::Export => {
            let id: i64 = key.id.parse().map_err(|_| corrupt())?;
            let job = export_jobs::claim_in(conn, &key.tenant, id, now).await?;
            job.map(|job| ClaimedJob::Export(Box::new(job))).ok_or_else(corrupt)
        }
        JobKind::Segment => {
            let job = segment_jobs::claim_in(conn, &key.tenant, &key.id, now).await?;
            job.map(|job| ClaimedJob::Segment(Box::new(job))).ok_or_else(corrupt)
        }
        // An ingestion's lease is taken running, never queued: no worker claims it.
        JobKind::Ingest => Err(corrupt()),
    }
}

#[async_trait]
impl JobQueueStore for PostgresMetaStore {
    async fn claim_next_job(
        &self,
        worker: &str,
        now: EpochMillis,
        per_sandbox: PerSandbox,
    ) -> Result<Option<ClaimedJob>, StorageError> {
        // Idle workers poll; a plain read keeps them from taking the claim lock for nothing.
        let any_queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM job_queue WHERE state = 'queued')")
            .fetch_one(&self.pool)
            .await?;
        if !any_queued {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(LockSpace::Claims as i32)
            .execute(&mut *tx)
            .await?;
        let Some(key) = next_queued_in(&mut tx, per_sandbox).await? else {
            return Ok(None);
        };
        mark_running_in(&mut tx, &key, worker, now).await?;
        let claimed = claim_kind_in(&mut tx, &key, now).await?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn job_heartbeat(
        &self,
        key: &JobKey,
        worker: &str,
        progress: Option<&ExportJobProgress>,
        now: EpochMillis,
    ) -> Result<Option<bool>, StorageError> {
        let mut args = key_args(key);
        push(&mut args, worker);
        push(&mut args, now);
        let cancel: Option<bool> = sqlx::query_scalar_with(
            concat!(
                "UPDATE job_queue SET heartbeat = $6 WHERE ",
                where_key!(),
                " AND state = 'running' AND worker = $5 RETURNING cancel_requested"
            ),
            args,
        )
        .fetch_optional(&self.pool)
        .await?;
        // The counters are for show: a second statement, no transaction to wait for.
        if cancel.is_some()
            && let Some(progress) = progress
            && key.kind == JobKind::Export
        {
            let mut conn = self.pool.acquire().await?;
            export_jobs::record_progress_in(&mut conn, key, progress).await?;
        }
        Ok(cancel)
    }

    async fn running_jobs(&self, heartbeat_before: Option<EpochMillis>) -> Result<Vec<QueueEntry>, StorageError> {
        let rows: Vec<QueueRow> = sqlx::query_as(
            "SELECT * FROM job_queue WHERE state = 'running' AND ($1 IS NULL OR COALESCE(heartbeat, 0) < $2)
             ORDER BY queued, seq",
        )
        .bind(heartbeat_before)
        .bind(heartbeat_before)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(QueueRow::into_entry).collect()
    }

    async fn queue_depth(&self) -> Result<Vec<QueueDepth>, StorageError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, state, COUNT(*) FROM job_queue GROUP BY kind, state ORDER BY kind, state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|(kind, state, jobs)| QueueDepth::from_row(kind, state, *jobs))
            .collect()
    }

    async fn queue_entry(&self, key: &JobKey) -> Result<Option<QueueEntry>, StorageError> {
        let row: Option<QueueRow> =
            sqlx::query_as_with(concat!("SELECT * FROM job_queue WHERE ", where_key!()), key_args(key))
                .fetch_optional(&self.pool)
                .await?;
        row.map(QueueRow::into_entry).transpose()
    }

    async fn take_over_job(
        &self,
        entry: &QueueEntry,
        taker: &str,
        count_attempt: bool,
        now: EpochMillis,
    ) -> Result<bool, StorageError> {
        let mut args = key_args(&entry.key);
        push(&mut args, taker);
        push(&mut args, now);
        push(&mut args, entry.worker.as_deref());
        push(&mut args, entry.heartbeat);
        push(&mut args, i64::from(count_attempt));
        // One compare-and-set: of nodes racing, the first to update wins; the others re-read
        // the row after it commits, find another worker or heartbeat, and change nothing.
        let taken = sqlx::query_with(
            concat!(
                "UPDATE job_queue SET worker = $5, heartbeat = $6, attempts = attempts + $9 WHERE ",
                where_key!(),
                " AND state = 'running' AND worker IS NOT DISTINCT FROM $7 AND heartbeat IS NOT DISTINCT FROM $8"
            ),
            args,
        )
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    async fn requeue_job(&self, key: &JobKey, holder: &str, refund_attempt: bool) -> Result<bool, StorageError> {
        let mut args = key_args(key);
        push(&mut args, holder);
        push(&mut args, i64::from(refund_attempt));
        let requeued = sqlx::query_with(
            concat!(
                "UPDATE job_queue SET state = 'queued', worker = NULL, heartbeat = NULL,
                                      attempts = GREATEST(attempts - $6, 0) WHERE ",
                where_key!(),
                " AND state = 'running' AND worker = $5"
            ),
            args,
        )
        .execute(&self.pool)
        .await?;
        Ok(requeued.rows_affected() == 1)
    }
}
