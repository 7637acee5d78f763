//! The one job queue on SQLite: table `job_queue` (migration 0010).
//!
//! A queue row exists while its job is live. The per-kind files (`export_jobs`, `segment_jobs`)
//! own what the API shows and call the `*_in` functions here inside their own transactions, so a
//! job's AEP status and its queue row never disagree: created with [`enqueue_in`], claimed by
//! [`JobQueueStore::claim_next_job`] (which then runs the kind's claim in the same transaction),
//! marked by [`request_cancel_in`], removed by [`dequeue_in`] when the job ends.
//!
//! What a claim picks is `fair_claim`'s rule, across both kinds. The write lock (`BEGIN
//! IMMEDIATE`) makes a claim exclusive on SQLite; a server database would take the row with
//! `FOR UPDATE SKIP LOCKED` instead, and the `worker`, `heartbeat` and `attempts` columns are the
//! lease that several nodes need to take over a dead node's job.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use dossier_model::export_job::ExportJobProgress;
use dossier_model::time::EpochMillis;

use super::paging::push;
use super::{SqliteMetaStore, export_jobs, segment_jobs};
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

/// Names one queue row: `?1` to `?4` are [`key_args`]; a query's other values are `?5` on.
macro_rules! where_key {
    () => {
        "kind = ?1 AND org = ?2 AND sandbox = ?3 AND job_id = ?4"
    };
}

/// The arguments of [`where_key!`], to which a query pushes its own values (`?5` on).
fn key_args(key: &JobKey) -> SqliteArguments {
    let mut args = SqliteArguments::default();
    push(&mut args, key.kind.as_str());
    push(&mut args, key.tenant.org.as_str());
    push(&mut args, key.tenant.sandbox.as_str());
    push(&mut args, key.id.as_str());
    args
}

/// Queues a new job (in its creating transaction).
pub(super) async fn enqueue_in(
    conn: &mut SqliteConnection,
    key: &JobKey,
    queued: EpochMillis,
) -> Result<(), StorageError> {
    let mut args = key_args(key);
    push(&mut args, queued);
    sqlx::query_with(
        "INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued) VALUES (?1, ?2, ?3, ?4, 'queued', ?5)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes a lease that no worker claimed: a running entry under `worker` from `now` (an
/// ingestion's COMPLETE, run at once by the node that accepted it).
pub(super) async fn lease_in(
    conn: &mut SqliteConnection,
    key: &JobKey,
    worker: &str,
    now: EpochMillis,
) -> Result<(), StorageError> {
    let mut args = key_args(key);
    push(&mut args, worker);
    push(&mut args, now);
    sqlx::query_with(
        "INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued, worker, heartbeat, attempts)
         VALUES (?1, ?2, ?3, ?4, 'running', ?6, ?5, ?6, 1)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How many jobs of `kind` wait for a worker, across every tenant (the workers are shared).
pub(super) async fn queued_count_in(conn: &mut SqliteConnection, kind: JobKind) -> Result<u64, StorageError> {
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_queue WHERE kind = ? AND state = 'queued'")
        .bind(kind.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// Marks a running job for its worker, which sees it at its next heartbeat.
pub(super) async fn request_cancel_in(conn: &mut SqliteConnection, key: &JobKey) -> Result<(), StorageError> {
    sqlx::query_with(
        concat!(
            "UPDATE job_queue SET cancel_requested = 1 WHERE ",
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
pub(super) async fn dequeue_in(conn: &mut SqliteConnection, key: &JobKey) -> Result<(), StorageError> {
    sqlx::query_with(concat!("DELETE FROM job_queue WHERE ", where_key!()), key_args(key))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether the job waits on the queue for a worker: a NEW job, or a PROCESSING one put back
/// after its node died (a cancel ends either at once: no worker would see a mark).
pub(super) async fn waiting_in(conn: &mut SqliteConnection, key: &JobKey) -> Result<bool, StorageError> {
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
/// another may not end the job). `None` holds nothing to check: true.
pub(super) async fn held_by_in(
    conn: &mut SqliteConnection,
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
            " AND state = 'running' AND worker = ?5)"
        ),
        args,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(held)
}

/// The next queued job a worker may take (see `fair_claim`), or `None`.
async fn next_queued_in(conn: &mut SqliteConnection, per_sandbox: PerSandbox) -> Result<Option<JobKey>, StorageError> {
    let row: Option<QueueRow> = sqlx::query_as(super::fair_claim::NEXT_QUEUED_JOB)
        .bind(per_sandbox.bound())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| QueueRow::key(&row.kind, row.tenant, row.job_id))
        .transpose()
}

async fn mark_running_in(
    conn: &mut SqliteConnection,
    key: &JobKey,
    worker: &str,
    now: EpochMillis,
) -> Result<(), StorageError> {
    let mut args = key_args(key);
    push(&mut args, worker);
    push(&mut args, now);
    sqlx::query_with(
        concat!(
            "UPDATE job_queue SET state = 'running', worker = ?5, heartbeat = ?6, attempts = attempts + 1 WHERE ",
            where_key!()
        ),
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The kind's side of a claim: its job PROCESSING (and, for an export, its batches).
async fn claim_kind_in(
    conn: &mut SqliteConnection,
    key: &JobKey,
    now: EpochMillis,
) -> Result<ClaimedJob, StorageError> {
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
impl JobQueueStore for SqliteMetaStore {
    async fn claim_next_job(
        &self,
        worker: &str,
        now: EpochMillis,
        per_sandbox: PerSandbox,
    ) -> Result<Option<ClaimedJob>, StorageError> {
        // Idle workers poll; a plain read keeps them from taking the write lock for nothing.
        let any_queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM job_queue WHERE state = 'queued')")
            .fetch_one(&self.pool)
            .await?;
        if !any_queued {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
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
                "UPDATE job_queue SET heartbeat = ?6 WHERE ",
                where_key!(),
                " AND state = 'running' AND worker = ?5 RETURNING cancel_requested"
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
            "SELECT * FROM job_queue WHERE state = 'running' AND (? IS NULL OR COALESCE(heartbeat, 0) < ?)
             ORDER BY queued, rowid",
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
        let taken = sqlx::query_with(
            concat!(
                "UPDATE job_queue SET worker = ?5, heartbeat = ?6, attempts = attempts + ?9 WHERE ",
                where_key!(),
                " AND state = 'running' AND worker IS ?7 AND heartbeat IS ?8"
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
                                      attempts = MAX(attempts - ?6, 0) WHERE ",
                where_key!(),
                " AND state = 'running' AND worker = ?5"
            ),
            args,
        )
        .execute(&self.pool)
        .await?;
        Ok(requeued.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {

    use dossier_model::tenancy::{OrgId, SandboxName, Tenant};

    use super::*;
    use crate::meta::MetaStore;

    const ORG: &str = "1BD6382559DF0C130A49422D@AdobeOrg";

    #[tokio::test]
    async fn the_migration_moves_live_jobs_of_both_kinds_onto_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.sqlite");
        let pool = super::super::pool_at_version(&path, 9).await;
        sqlx::query("INSERT INTO sandboxes (org, name, created) VALUES (?, 'prod', 1)")
            .bind(ORG)
            .execute(&pool)
            .await
            .unwrap();
        for (id, status, cancel, created) in [(1, "SUCCEEDED", 0, 10), (2, "PROCESSING", 1, 20), (3, "NEW", 0, 40)] {
            sqlx::query(
                "INSERT INTO export_jobs (org, sandbox, id, status, request_id, request, spec, batches, dataset_id,
                                          metrics, cancel_requested, heartbeat, created_client, created, updated)
                 VALUES (?, 'prod', ?, ?, 'r', '{}', '{}', '[]', 'ds', '{}', ?, 25, 'c', ?, ?)",
            )
            .bind(ORG)
            .bind(id)
            .bind(status)
            .bind(cancel)
            .bind(created)
            .bind(created)
            .execute(&pool)
            .await
            .unwrap();
        }
        for (id, status, created) in [
            ("a", "FAILED", 5),
            ("b", "CANCELLING", 15),
            ("c", "PROCESSING", 30),
            ("d", "NEW", 35),
        ] {
            sqlx::query(
                "INSERT INTO segment_jobs (org, sandbox, id, status, request_id, segments, metrics, heartbeat,
                                           created_client, created, updated)
                 VALUES (?, 'prod', ?, ?, 'r', '[]', '{}', 31, 'c', ?, ?)",
            )
            .bind(ORG)
            .bind(id)
            .bind(status)
            .bind(created)
            .bind(created)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let meta = MetaStore::open_sqlite(&path).await.unwrap();
        let tenant = Tenant {
            org: OrgId::parse(ORG).unwrap(),
            sandbox: SandboxName::prod(),
        };
        let running = meta.running_jobs(None).await.unwrap();
        let summary: Vec<_> = running
            .iter()
            .map(|e| {
                (
                    e.key.kind,
                    e.key.id.as_str(),
                    e.cancel_requested,
                    e.heartbeat,
                    e.attempts,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (JobKind::Segment, "b", true, Some(31), 1),
                (JobKind::Export, "2", true, Some(25), 1),
                (JobKind::Segment, "c", false, Some(31), 1),
            ]
        );
        for key in [JobKey::export(&tenant, 3), JobKey::segment(&tenant, "d")] {
            let entry = meta.queue_entry(&key).await.unwrap().unwrap();
            assert_eq!((entry.state, entry.attempts), (JobState::Queued, 0), "{key:?}");
        }
        for key in [JobKey::export(&tenant, 1), JobKey::segment(&tenant, "a")] {
            assert_eq!(
                meta.queue_entry(&key).await.unwrap(),
                None,
                "ended jobs stay off the queue"
            );
        }
    }
}
