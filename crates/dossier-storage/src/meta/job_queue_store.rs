//! The one job queue: export jobs and segment jobs, claimed, heartbeaten, cancelled, ended and
//! recovered the same way.
//!
//! Contract: a queue entry exists while its job is live (queued or running). The per-kind stores
//! ([`super::ExportJobStore`], [`super::SegmentJobStore`]) own what the API shows and change the
//! job's entry in the same transaction as the job: created queued, marked for cancel, removed
//! when the job ends. [`JobQueueStore::claim_next_job`] is exclusive across processes sharing the
//! store (no two workers claim one job) and runs the kind's claim (the job PROCESSING) in the same
//! transaction. The `worker`, `heartbeat` and `attempts` of an entry are the lease that several
//! nodes need to take over a dead node's job.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

use dossier_model::export_job::{ExportJob, ExportJobProgress};
use dossier_model::segment_job::SegmentJob;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::PerSandbox;
use super::rows::parsed_column;
use crate::StorageError;

/// The kinds of job the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    Export,
    Segment,
    /// The COMPLETE of an ingestion batch: never queued (the node that accepted the COMPLETE
    /// runs it at once), only held under a lease so that another node resumes it when that
    /// node dies. `job_id` is the batch id.
    Ingest,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Export => "export",
            Self::Segment => "segment",
            Self::Ingest => "ingest",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "export" => Ok(Self::Export),
            "segment" => Ok(Self::Segment),
            "ingest" => Ok(Self::Ingest),
            other => Err(format!("unknown job kind '{other}'")),
        }
    }
}

/// Names one job in the queue: its kind, tenant and id (an export job's integer id as text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKey {
    pub kind: JobKind,
    pub tenant: Tenant,
    pub id: String,
}

impl JobKey {
    pub fn export(tenant: &Tenant, id: i64) -> Self {
        Self {
            kind: JobKind::Export,
            tenant: tenant.clone(),
            id: id.to_string(),
        }
    }

    /// The lease of an ingestion batch's COMPLETE.
    pub fn ingest(tenant: &Tenant, batch: &dossier_model::ids::BatchId) -> Self {
        Self {
            kind: JobKind::Ingest,
            tenant: tenant.clone(),
            id: batch.to_string(),
        }
    }

    pub fn segment(tenant: &Tenant, id: &str) -> Self {
        Self {
            kind: JobKind::Segment,
            tenant: tenant.clone(),
            id: id.to_owned(),
        }
    }
}

/// A job a worker claimed, as its kind's table shows it once claimed (PROCESSING).
#[derive(Debug, Clone)]
pub enum ClaimedJob {
    Export(Box<ExportJob>),
    Segment(Box<SegmentJob>),
}

impl ClaimedJob {
    pub fn key(&self) -> JobKey {
        match self {
            Self::Export(job) => JobKey::export(&job.tenant, job.id),
            Self::Segment(job) => JobKey::segment(&job.tenant, &job.id),
        }
    }
}

/// Whether a live job waits for a worker or runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
        }
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            other => Err(format!("unknown state '{other}'")),
        }
    }
}

/// How many live entries the queue holds of one kind in one state (see
/// [`JobQueueStore::queue_depth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub kind: JobKind,
    pub state: JobState,
    pub jobs: u64,
}

impl QueueDepth {
    /// One `kind, state, COUNT(*)` row of a backend's `job_queue` table.
    pub(crate) fn from_row(kind: &str, state: &str, jobs: i64) -> Result<Self, StorageError> {
        const TABLE: &str = "job_queue";
        Ok(Self {
            kind: parsed_column(TABLE, "kind", kind.parse::<JobKind>())?,
            state: parsed_column(TABLE, "state", state.parse::<JobState>())?,
            jobs: u64::try_from(jobs).unwrap_or(0),
        })
    }
}

/// A live job as the queue sees it: its state, who runs it and when it last said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub key: JobKey,
    pub state: JobState,
    pub worker: Option<String>,
    pub heartbeat: Option<EpochMillis>,
    pub attempts: u32,
    pub cancel_requested: bool,
}

/// The queue both kinds of job wait and run on.
#[async_trait]
pub trait JobQueueStore: Send + Sync {
    /// Claims the next queued job of either kind for `worker`: running under its name with a
    /// fresh heartbeat and one more attempt, and its kind's job PROCESSING (a NEW one, or a
    /// PROCESSING one put back by [`JobQueueStore::requeue_job`]), in one transaction.
    /// The job is the oldest of the sandbox with the fewest jobs running, among sandboxes under
    /// `per_sandbox` (see [`PerSandbox`]).
    async fn claim_next_job(
        &self,
        worker: &str,
        now: EpochMillis,
        per_sandbox: PerSandbox,
    ) -> Result<Option<ClaimedJob>, StorageError>;

    /// Records that `worker`, running the job, is alive (renewing its lease), with an export's
    /// counters when given. Returns whether a cancel was requested, or `None` when the job is no
    /// longer running under this worker (it ended, or another worker took it over): either way
    /// the worker should stop.
    async fn job_heartbeat(
        &self,
        key: &JobKey,
        worker: &str,
        progress: Option<&ExportJobProgress>,
        now: EpochMillis,
    ) -> Result<Option<bool>, StorageError>;

    /// The running jobs of every tenant, oldest first. With `heartbeat_before`, only those whose
    /// worker last reported before then (an expired lease); without, all of them — what a
    /// single process finds at startup, when every running job was left by a process that stopped.
    async fn running_jobs(&self, heartbeat_before: Option<EpochMillis>) -> Result<Vec<QueueEntry>, StorageError>;

    /// The live entries of every tenant counted by kind and state, one [`QueueDepth`] per pair
    /// that has any (running ingestions included): what `GET /metrics` shows as queue depth.
    async fn queue_depth(&self) -> Result<Vec<QueueDepth>, StorageError>;

    /// The queue entry of a live job; `None` once it ended (or if it never existed).
    async fn queue_entry(&self, key: &JobKey) -> Result<Option<QueueEntry>, StorageError>;

    /// Takes over the lease of a running job whose worker is gone: if the entry still runs under
    /// `entry.worker` with `entry.heartbeat` (nobody renewed or took it since it was read), it
    /// runs under `taker` with a fresh heartbeat, so the old worker's heartbeats and ends are
    /// refused from now on. With `count_attempt` the takeover is a new run of its own (an
    /// ingestion, resumed by the taker; a job instead counts its attempt when claimed again).
    /// Returns whether this call took it; of several nodes racing, one does.
    async fn take_over_job(
        &self,
        entry: &QueueEntry,
        taker: &str,
        count_attempt: bool,
        now: EpochMillis,
    ) -> Result<bool, StorageError>;

    /// Puts a job `holder` runs back on the queue for any worker to claim again, first in its
    /// sandbox's line (it keeps its queue time); its kind's job stays PROCESSING. With
    /// `refund_attempt`, the attempt this run counted is given back (the run did not fail: its
    /// server stopped). Returns `false` when `holder` does not hold the job.
    async fn requeue_job(&self, key: &JobKey, holder: &str, refund_attempt: bool) -> Result<bool, StorageError>;
}
