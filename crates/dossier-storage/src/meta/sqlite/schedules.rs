//! Schedules and their runs. A tick is claimed by one `UPDATE ... WHERE next_run_at = ?`: SQLite
//! runs writes one at a time, so of two workers that read the same due tick one moves it and the
//! other changes no row.

use async_trait::async_trait;

use dossier_model::listing::sql_offset;
use dossier_model::schedule::{Schedule, ScheduleListQuery};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::SqliteMetaStore;
use crate::StorageError;
use crate::meta::rows::{ScheduleRow, ScheduleRunRow, schedule_properties};
use crate::meta::{Page, ScheduleRun, ScheduleStore};

fn schedules(rows: Vec<ScheduleRow>) -> Result<Vec<Schedule>, StorageError> {
    rows.into_iter().map(ScheduleRow::into_schedule).collect()
}

#[async_trait]
impl ScheduleStore for SqliteMetaStore {
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StorageError> {
        let spec = &schedule.spec;
        sqlx::query(
            "INSERT INTO schedules (org, sandbox, id, name, description, type, properties, schedule, state, \
             next_run_at, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            sqlx::query_as("SELECT * FROM schedules WHERE org = ? AND sandbox = ? AND id = ?")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(ScheduleRow::into_schedule).transpose()
    }

    async fn list_schedules(&self, tenant: &Tenant, query: &ScheduleListQuery) -> Result<Page<Schedule>, StorageError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schedules WHERE org = ? AND sandbox = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_one(&self.pool)
            .await?;
        let rows: Vec<ScheduleRow> = sqlx::query_as(
            "SELECT * FROM schedules WHERE org = ? AND sandbox = ? ORDER BY created, id LIMIT ? OFFSET ?",
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
            "UPDATE schedules SET name = ?, description = ?, type = ?, properties = ?, schedule = ?, state = ?, \
             next_run_at = ?, updated = ? WHERE org = ? AND sandbox = ? AND id = ? AND updated = ?",
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
        let done = sqlx::query("DELETE FROM schedules WHERE org = ? AND sandbox = ? AND id = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn due_schedules(&self, now: EpochMillis, limit: u32) -> Result<Vec<Schedule>, StorageError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(
            "SELECT * FROM schedules WHERE next_run_at IS NOT NULL AND next_run_at <= ? AND state = 'active' \
             ORDER BY next_run_at LIMIT ?",
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
            "UPDATE schedules SET next_run_at = ? \
             WHERE org = ? AND sandbox = ? AND id = ? AND next_run_at = ? AND state = 'active'",
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
             SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS \
             (SELECT 1 FROM schedules WHERE org = ? AND sandbox = ? AND id = ?) \
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
            "SELECT * FROM schedule_runs WHERE org = ? AND sandbox = ? AND schedule_id = ? ORDER BY tick DESC LIMIT ?",
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
