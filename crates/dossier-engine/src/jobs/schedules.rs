//! The scheduler: every node polls for schedules whose tick is due, claims each tick with a
//! compare-and-set on the schedule's `next_run_at` (`ScheduleStore::claim_schedule_tick`), and
//! starts the tick's job through a [`ScheduleRunner`] — the API's own create paths, so a
//! scheduled job is checked and queued exactly as a POST would be.
//!
//! What the claim guarantees: of any number of workers and nodes that read the same due tick,
//! one starts a job; the others move on. The claim moves `next_run_at` to the first tick after
//! the claim, so ticks missed while no node ran (a restart, an outage) start one job, not one
//! per missed tick. A node that dies between the claim and the job's creation loses that tick:
//! at most one job per tick, never two.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use dossier_model::export_job::ExportJobStatus;
use dossier_model::listing::Direction;
use dossier_model::schedule::{ALL_SEGMENTS, Schedule, ScheduleType, resolve_last_run};
use dossier_model::segment_definition::{SegmentDefinitionListQuery, SegmentSortField};
use dossier_model::tenancy::Tenant;
use dossier_model::time::{EpochMillis, now_millis};
use dossier_storage::meta::ScheduleRun;
use dossier_storage::{MetaStore, StorageError};

/// How often a node looks for due ticks: well under a second, so a schedule firing every second
/// starts each tick's job on time.
pub const SCHEDULER_POLL: Duration = Duration::from_millis(250);
/// How many due schedules one poll reads; the rest wait for the next poll.
const DUE_PER_POLL: u32 = 100;
/// How many past runs are searched for the last successful export (`lastRun`).
const RUNS_SEARCHED: u32 = 100;
/// Definitions read per page when `["*"]` is resolved.
const DEFINITIONS_PER_PAGE: u32 = 1000;

/// Starts the job of one tick. The server's implementation calls the same code as
/// `POST /segment/jobs` and `POST /export/jobs`; `Err` is the refusal's message (the tick is
/// consumed and the refusal logged, as AEP's schedules skip a run that cannot start).
pub trait ScheduleRunner: Send + Sync + 'static {
    /// Queues a segment job evaluating these definitions; returns its id.
    fn start_segment_job<'a>(
        &'a self,
        tenant: &'a Tenant,
        segment_ids: Vec<String>,
        tick: ScheduledTick<'a>,
    ) -> impl Future<Output = Result<String, String>> + Send + 'a;

    /// Queues an export job with this body (`lastRun` already resolved); returns its id.
    fn start_export_job<'a>(
        &'a self,
        tenant: &'a Tenant,
        body: Value,
        tick: ScheduledTick<'a>,
    ) -> impl Future<Output = Result<String, String>> + Send + 'a;
}

/// Which tick of which schedule a job is started for: an export is created with the
/// `Idempotency-Key` `schedule-<id>-<tick>`, so even a second start of one tick replays the first job.
#[derive(Debug, Clone, Copy)]
pub struct ScheduledTick<'a> {
    pub schedule_id: &'a str,
    pub tick: EpochMillis,
}

/// The running scheduler of a server, stopped with it.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Polls every `poll` for due ticks until [`Scheduler::shutdown`].
    pub fn start<R: ScheduleRunner>(meta: MetaStore, runner: Arc<R>, poll: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = run_due_ticks(&meta, runner.as_ref(), now_millis()).await {
                    tracing::warn!(%error, "could not read or claim due schedules; trying again at the next poll");
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Self { stop, task }
    }

    /// Stops polling; a tick being started finishes first.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Claims and starts every tick due at `now`; returns how many jobs this call started.
pub async fn run_due_ticks<R: ScheduleRunner>(
    meta: &MetaStore,
    runner: &R,
    now: EpochMillis,
) -> Result<usize, StorageError> {
    let mut started = 0;
    for schedule in meta.due_schedules(now, DUE_PER_POLL).await? {
        let Some(tick) = schedule.next_run_at else {
            continue;
        };
        let tenant = schedule.tenant();
        let next = schedule.following_tick(now);
        if !meta.claim_schedule_tick(&tenant, &schedule.id, tick, next).await? {
            continue; // another worker or node claimed this tick
        }
        if start_tick(meta, runner, &schedule, tick).await? {
            started += 1;
        }
    }
    Ok(started)
}

/// Starts the job of a claimed tick and records it; `false` when there was nothing to start or
/// the start was refused (logged).
async fn start_tick<R: ScheduleRunner>(
    meta: &MetaStore,
    runner: &R,
    schedule: &Schedule,
    tick: EpochMillis,
) -> Result<bool, StorageError> {
    let tenant = schedule.tenant();
    let started = now_millis();
    let at = ScheduledTick {
        schedule_id: &schedule.id,
        tick,
    };
    let (job_kind, result) = match schedule.spec.kind {
        ScheduleType::BatchSegmentation => {
            let ids = segments_to_evaluate(meta, &tenant, &schedule.spec.segments).await?;
            if ids.is_empty() {
                tracing::info!(schedule_id = %schedule.id, sandbox = %tenant.sandbox, "no segment definition has batch evaluation on; nothing to evaluate at this tick");
                return Ok(false);
            }
            ("segment", runner.start_segment_job(&tenant, ids, at).await)
        }
        ScheduleType::Export => {
            let carried = schedule.spec.export_job.clone().unwrap_or_default();
            let last_run = last_successful_export(meta, &tenant, &schedule.id).await?;
            let body = resolve_last_run(&carried, last_run);
            ("export", runner.start_export_job(&tenant, body, at).await)
        }
    };
    let job_id = match result {
        Ok(job_id) => job_id,
        Err(refusal) => {
            tracing::warn!(schedule_id = %schedule.id, sandbox = %tenant.sandbox, tick, %refusal, "a scheduled job could not start; the tick is skipped");
            return Ok(false);
        }
    };
    tracing::info!(schedule_id = %schedule.id, sandbox = %tenant.sandbox, tick, job_kind, %job_id, "a schedule started its job");
    let run = ScheduleRun {
        tenant,
        schedule_id: schedule.id.clone(),
        tick,
        started,
        job_kind: job_kind.to_owned(),
        job_id,
    };
    meta.record_schedule_run(&run).await?;
    Ok(true)
}

/// The definitions a tick evaluates: the ids named, or for `["*"]` every definition of the
/// sandbox whose batch evaluation is on.
async fn segments_to_evaluate(
    meta: &MetaStore,
    tenant: &Tenant,
    named: &[String],
) -> Result<Vec<String>, StorageError> {
    if named.iter().all(|id| id != ALL_SEGMENTS) {
        return Ok(named.to_vec());
    }
    let mut ids = Vec::new();
    loop {
        let query = SegmentDefinitionListQuery {
            limit: DEFINITIONS_PER_PAGE,
            start: ids.len() as u64,
            sort: (SegmentSortField::CreationTime, Direction::Asc),
            batch_enabled: Some(true),
            streaming_or_edge: None,
        };
        let page = meta.list_segment_definitions(tenant, &query).await?;
        let read = page.items.len();
        ids.extend(page.items.into_iter().map(|d| d.id.to_string()));
        if read == 0 || ids.len() as u64 >= page.total {
            return Ok(ids);
        }
    }
}

/// `lastRun`: when the schedule's latest export that succeeded was created. A profile changed
/// after that may not be in it; one changed before is. `None` on the first run: export all.
async fn last_successful_export(
    meta: &MetaStore,
    tenant: &Tenant,
    schedule_id: &str,
) -> Result<Option<EpochMillis>, StorageError> {
    for run in meta.schedule_runs(tenant, schedule_id, RUNS_SEARCHED).await? {
        let Ok(job_id) = run.job_id.parse::<i64>() else {
            continue;
        };
        if run.job_kind != "export" {
            continue;
        }
        let succeeded = meta
            .export_job(tenant, job_id)
            .await?
            .is_some_and(|job| job.status == ExportJobStatus::Succeeded);
        if succeeded {
            return Ok(Some(run.started));
        }
    }
    Ok(None)
}
