//! Schedules and the runs their ticks started.
//!
//! Contract: every read and write is scoped by tenant (an id of another sandbox is not found);
//! claiming a tick is a compare-and-set on `next_run_at`, so of any number of workers on any
//! number of nodes that read the same due tick, exactly one claims it.

use async_trait::async_trait;

use dossier_model::schedule::{Schedule, ScheduleListQuery};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::Page;
use crate::StorageError;

/// One job a schedule's tick started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRun {
    pub tenant: Tenant,
    pub schedule_id: String,
    /// The tick claimed.
    pub tick: EpochMillis,
    /// When the job was created: what the next run's `lastRun` is, once this job succeeded.
    pub started: EpochMillis,
    /// `export` or `segment`, as the job queue names kinds.
    pub job_kind: String,
    pub job_id: String,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule (its id is new).
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StorageError>;

    /// One schedule, or `None` when it does not exist in this tenant.
    async fn schedule(&self, tenant: &Tenant, id: &str) -> Result<Option<Schedule>, StorageError>;

    /// One page of the tenant's schedules, oldest first, and how many there are.
    async fn list_schedules(&self, tenant: &Tenant, query: &ScheduleListQuery) -> Result<Page<Schedule>, StorageError>;

    /// Replaces the schedule with `changed` (same tenant and id) if its `updated` is still
    /// `previous_update`: `false` when another change came first or the schedule is gone (the
    /// caller reads it again).
    async fn replace_schedule(&self, changed: &Schedule, previous_update: EpochMillis) -> Result<bool, StorageError>;

    /// Deletes a schedule and its runs; `false` when it did not exist in this tenant.
    async fn delete_schedule(&self, tenant: &Tenant, id: &str) -> Result<bool, StorageError>;

    /// Active schedules of every tenant whose `next_run_at` is at or before `now`, the most
    /// overdue first, at most `limit`.
    async fn due_schedules(&self, now: EpochMillis, limit: u32) -> Result<Vec<Schedule>, StorageError>;

    /// Claims the tick `seen` of a schedule: moves `next_run_at` from `seen` to `next` if it is
    /// still `seen` and the schedule still active. `true` for exactly one of the callers that saw
    /// the same tick.
    async fn claim_schedule_tick(
        &self,
        tenant: &Tenant,
        id: &str,
        seen: EpochMillis,
        next: Option<EpochMillis>,
    ) -> Result<bool, StorageError>;

    /// Records the job a claimed tick started; a second run for the same tick is refused
    /// (`false`), nothing is written.
    async fn record_schedule_run(&self, run: &ScheduleRun) -> Result<bool, StorageError>;

    /// The runs of a schedule, the newest tick first, at most `limit`.
    async fn schedule_runs(
        &self,
        tenant: &Tenant,
        schedule_id: &str,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StorageError>;
}
