//! Jobs whose worker is gone, for every kind: found by their lease, taken over by one node,
//! cleaned of what they wrote, and queued again — or ended, once they have had their attempts.
//!
//! A running job's lease is its queue entry's worker and heartbeat. Several nodes share the
//! queue, so a process that starts does not know whether the running jobs it finds are orphans:
//! only an expired lease says so (the node stopped renewing it), or the worker's name when it
//! is this node's own (its previous run, which this start proves dead). Taking over is a
//! compare-and-set on the lease ([`MetaStore::take_over_job`]): of nodes racing for one job, one
//! wins, and from then on the old worker's heartbeats and ends are refused (fenced).

use dossier_model::export_job::ExportJobError;
use dossier_model::time::now_millis;
use dossier_storage::meta::{JobKind, QueueEntry};
use dossier_storage::{Lake, MetaStore};

use super::{WorkerSettings, export_jobs, segment_jobs};
use crate::EngineError;

/// Which running jobs a recovery treats as orphaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    /// At startup, before this node's workers run: those whose lease expired, and at once those
    /// this node's previous run held.
    AtStartup,
    /// While serving: only those whose lease expired.
    Expired,
}

/// What recovery does with one orphaned job once it holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Takeover {
    /// Its files removed, queued again: attempt `attempts + 1` comes.
    Requeue,
    /// A cancel was requested: it ends CANCELLED.
    Cancel,
    /// It had its attempts: it ends FAILED with this error.
    GiveUp(ExportJobError),
}

impl Takeover {
    fn decide(entry: &QueueEntry, settings: &WorkerSettings, code: &str, what: &str) -> Self {
        if entry.cancel_requested {
            return Self::Cancel;
        }
        if entry.attempts < settings.max_attempts {
            return Self::Requeue;
        }
        let worker = entry.worker.as_deref().unwrap_or("unknown");
        Self::GiveUp(ExportJobError {
            code: code.into(),
            msg: format!(
                "The {what} was attempted {attempts} times, and each time the node running it stopped (the last \
                 one, '{worker}', stopped renewing its lease of {lease} s). Nothing of it was kept. Create the job \
                 again; if this repeats, look at why nodes stop during it (memory, restarts).",
                attempts = entry.attempts,
                lease = settings.lease.as_secs(),
            ),
            call_stack: format!(
                "lease recovery, attempt {} of {}",
                entry.attempts, settings.max_attempts
            ),
        })
    }
}

/// Takes over every orphaned running job (see [`Orphans`]) and, for each, removes what it
/// wrote, then queues it again or ends it (cancelled, or failed after `max_attempts`).
/// Returns how many jobs this node took over.
pub async fn recover_orphaned_jobs(
    meta: &MetaStore,
    lake: &Lake,
    settings: &WorkerSettings,
    orphans: Orphans,
) -> Result<usize, EngineError> {
    let taker = format!("{}/recovery", settings.node);
    let mut taken = 0;
    // Ingestions hold leases on the same queue; the ingestion runner resumes its own.
    let jobs = |kind| kind != JobKind::Ingest;
    for entry in orphaned_entries(meta, settings, orphans, jobs).await? {
        if !meta.take_over_job(&entry, &taker, false, now_millis()).await? {
            continue;
        }
        tracing::warn!(kind = %entry.key.kind, job_id = %entry.key.id, org = %entry.key.tenant.org,
            sandbox = %entry.key.tenant.sandbox, worker = entry.worker.as_deref().unwrap_or(""),
            attempts = entry.attempts, "taking over a job whose worker is gone");
        match entry.key.kind {
            JobKind::Export => {
                let takeover = Takeover::decide(&entry, settings, "EXPORT-WORKER-LOST", "export");
                export_jobs::take_over(meta, lake, &entry, &taker, takeover).await?;
            }
            JobKind::Segment => {
                let takeover = Takeover::decide(&entry, settings, "SEGMENT-WORKER-LOST", "evaluation");
                segment_jobs::take_over(meta, lake, &entry, &taker, takeover).await?;
            }
            JobKind::Ingest => unreachable!("skipped above"),
        }
        taken += 1;
    }
    Ok(taken)
}

/// The running entries of the kinds `wanted` picks whose node is gone, as read: for the caller
/// to take over one by one (a compare-and-set each, which another node may win).
pub(crate) async fn orphaned_entries(
    meta: &MetaStore,
    settings: &WorkerSettings,
    orphans: Orphans,
    wanted: impl Fn(JobKind) -> bool,
) -> Result<Vec<QueueEntry>, EngineError> {
    let now = now_millis();
    let mut running = meta.running_jobs(None).await?;
    running.retain(|entry| wanted(entry.key.kind) && orphaned(entry, settings, orphans, now));
    Ok(running)
}

/// Whether a running entry's node is gone: its lease expired, or (at startup) it is this
/// node's own, left by its previous run.
fn orphaned(entry: &QueueEntry, settings: &WorkerSettings, orphans: Orphans, now: i64) -> bool {
    let lease = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX);
    let expired = entry.heartbeat.is_none_or(|beat| beat.saturating_add(lease) < now);
    let own = entry
        .worker
        .as_deref()
        .and_then(|worker| worker.split_once('/'))
        .is_some_and(|(node, _)| node == settings.node);
    expired || (orphans == Orphans::AtStartup && own)
}
