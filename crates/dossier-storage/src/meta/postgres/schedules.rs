//! Schedules and their runs, as `sqlite/schedules.rs` in PostgreSQL's SQL. A tick is claimed by
//! one `UPDATE ... WHERE next_run_at = $n`: the row lock makes a second updater of the same row
//! wait, then re-check its `WHERE` on the new row, which no longer matches, so of nodes racing for
//! one tick exactly one changes a row.

use async_trait::async_trait;

use dossier_model::listing::sql_offset;
use dossier_model::schedule::{Schedule, ScheduleListQuery};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::PostgresMetaStore;
use crate::StorageError;
use crate::meta::rows::{ScheduleRow, ScheduleRunRow, schedule_properties};
use crate::meta::{Page, ScheduleRun, ScheduleStore};

fn schedules(rows: Vec<ScheduleRow>) -> Result<Vec<Schedule>, StorageError> {
    rows.into_iter().map(ScheduleRow::into_schedule).collect()
}

#[async_trait]
impl ScheduleStore for PostgresMetaStore {
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StorageError> {
        let spec = &schedule.spec;
        sqlx::query(
            "INSERT INTO schedules (org, sandbox, id, name, description, type, properties, schedule, state, \
             next_run_at, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(schedule.org.as_str())
        .bind(schedule.sandbox.as_str())
        .bind(&schedule.id)
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.kind.as_str())
        .bind(schedule_properties(schedule))
        .bind(&spec.cron)
        .bind(spec.state.as_str())
        .bind(schedule.next_run_at)
        .bind(schedule.created)
        .bind(schedule.updated)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn schedule(&self, tenant: &Tenant, id: &str) -> Result<Option<Schedule>, StorageError> {
        let row: Option<ScheduleRow> =
            sqlx::query_as("SELECT * FROM schedules WHERE org = $1 AND sandbox = $2 AND id = $3")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(ScheduleRow::into_schedule).transpose()
    }

    async fn list_schedules(&self, tenant: &Tenant, query: &ScheduleListQuery) -> Result<Page<Schedule>, StorageError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schedules WHERE org = $1 AND sandbox = $2")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_one(&self.pool)
            .await?;
        let rows: Vec<ScheduleRow> = sqlx::query_as(
            "SELECT * FROM schedules WHERE org = $1 AND sandbox = $2 ORDER BY created, id LIMIT $3 OFFSET $4",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(i64::from(query.limit))
        .bind(sql_offset(query.start))
        .fetch_all(&self.pool)
        .await?;
        Ok(Page {
            items: schedules(rows)?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn replace_schedule(&self, changed: &Schedule, previous_update: EpochMillis) -> Result<bool, StorageError> {
        let spec = &changed.spec;
        let done = sqlx::query(
            "UPDATE schedules SET name = $1, description = $2, type = $3, properties = $4, schedule = $5, state = $6, \
             next_run_at = $7, updated = $8 WHERE org = $9 AND sandbox = $10 AND id = $11 AND updated = $12",
        )
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.kind.as_str())
        .bind(schedule_properties(changed))
        .bind(&spec.cron)
        .bind(spec.state.as_str())
        .bind(changed.next_run_at)
        .bind(changed.updated)
        .bind(changed.org.as_str())
        .bind(changed.sandbox.as_str())
        .bind(&changed.id)
        .bind(previous_update)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_schedule(&self, tenant: &Tenant, id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM schedules WHERE org = $1 AND sandbox = $2 AND id = $3")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn due_schedules(&self, now: EpochMillis, limit: u32) -> Result<Vec<Schedule>, StorageError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(
            "SELECT * FROM schedules WHERE next_run_at IS NOT NULL AND next_run_at <= $1 AND state = 'active' \
             ORDER BY next_run_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        schedules(rows)
    }

    async fn claim_schedule_tick(
        &self,
        tenant: &Tenant,
        id: &str,
        seen: EpochMillis,
        next: Option<EpochMillis>,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE schedules SET next_run_at = $1 \
             WHERE org = $2 AND sandbox = $3 AND id = $4 AND next_run_at = $5 AND state = 'active'",
        )
        .bind(next)
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id)
        .bind(seen)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_schedule_run(&self, run: &ScheduleRun) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO schedule_runs (org, sandbox, schedule_id, tick, started, job_kind, job_id) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS \
             (SELECT 1 FROM schedules WHERE org = $8 AND sandbox = $9 AND id = $10) \
             ON CONFLICT DO NOTHING",
        )
        .bind(run.tenant.org.as_str())
        .bind(run.tenant.sandbox.as_str())
        .bind(&run.schedule_id)
        .bind(run.tick)
        .bind(run.started)
        .bind(&run.job_kind)
        .bind(&run.job_id)
        .bind(run.tenant.org.as_str())
        .bind(run.tenant.sandbox.as_str())
        .bind(&run.schedule_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn schedule_runs(
        &self,
        tenant: &Tenant,
        schedule_id: &str,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StorageError> {
        let rows: Vec<ScheduleRunRow> = sqlx::query_as(
            "SELECT * FROM schedule_runs WHERE org = $1 AND sandbox = $2 AND schedule_id = $3 ORDER BY tick DESC LIMIT $4",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(schedule_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ScheduleRunRow::into_run).collect()
    }
}
