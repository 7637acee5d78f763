//! Runs COMPLETE in the background under a lease, and resumes it when its node dies (another
//! node once the lease expires, or the same node's next start); a committed batch of a
//! profile-enabled dataset is then folded into its sandbox's identity graph.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use dossier_model::catalog::{BatchError, BatchStatus};
use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::{BatchOutcome, JobKey, JobKind, QueueEntry};
use dossier_storage::{Lake, MetaStore};

use super::complete::{IngestTarget, complete_batch};
use crate::EngineError;
use crate::identity::{FoldOutcome, fold_pending};
use crate::jobs::{Orphans, WorkerSettings, orphaned_entries};
use crate::metrics::EngineMetrics;
use crate::schemas::dataset_schema;

/// Starts and resumes ingestion of completed batches.
#[derive(Clone)]
pub struct Ingestion {
    meta: MetaStore,
    lake: Lake,
    /// This node's name, heartbeat and lease: a COMPLETE runs under a lease on the job queue
    /// (see [`dossier_storage::meta::BatchFileStore::start_ingestion`]).
    settings: WorkerSettings,
    /// What ingestion counts: batches, rows, bytes written, and the identity graph's folds.
    metrics: EngineMetrics,
}

impl Ingestion {
    pub fn new(meta: MetaStore, lake: Lake, settings: WorkerSettings) -> Self {
        Self {
            meta,
            lake,
            settings,
            metrics: EngineMetrics::default(),
        }
    }

    /// Ingestion counting into `metrics` (a server's, registered for `GET /metrics`).
    pub fn with_metrics(self, metrics: EngineMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// Who holds the leases of this node's conversions.
    pub fn worker(&self) -> String {
        format!("{}/ingest", self.settings.node)
    }

    /// Converts and commits a batch that was just moved to `processing` under this node's
    /// lease ([`Ingestion::worker`]), in the background, renewing the lease while it runs.
    pub fn spawn(&self, tenant: Tenant, batch_id: BatchId) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        // Every log line of the conversion names its batch and sandbox, as a job's do.
        let span = tracing::info_span!(
            "ingest", batch_id = %batch_id, org = %tenant.org, sandbox = %tenant.sandbox
        );
        let conversion = async move {
            // The heartbeat is a task of its own: a conversion busy between awaits must not
            // starve it, or another node would take a live conversion for dead.
            let heartbeat = tokio::spawn(
                this.clone()
                    .renew_lease(JobKey::ingest(&tenant, &batch_id))
                    .in_current_span(),
            );
            this.run(tenant, batch_id).await;
            heartbeat.abort();
        };
        tokio::spawn(conversion.instrument(span))
    }

    async fn renew_lease(self, key: JobKey) {
        let (worker, period) = (self.worker(), self.settings.heartbeat);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            beat.tick().await;
            match self.meta.job_heartbeat(&key, &worker, None, now_millis()).await {
                Ok(Some(_)) => {}
                // Committed (the lease went with the commit), aborted, or taken over by a node
                // that thought this one dead: its commit is a compare-and-set, one of the two wins.
                Ok(None) => return,
                Err(error) => tracing::warn!(%error, batch_id = %key.id, "could not renew an ingestion's lease"),
            }
        }
    }

    /// Resumes the conversions whose node is gone: those whose lease expired and, at startup,
    /// those this node's previous run held (see [`Orphans`]). Each is taken over once (a
    /// compare-and-set on its lease, so of several nodes one resumes it) and converted again
    /// from its recorded uploads: the conversion is idempotent. Returns how many.
    pub async fn resume_orphaned(&self, orphans: Orphans) -> Result<usize, EngineError> {
        let worker = self.worker();
        let mut resumed = 0;
        let ingestions = |kind| kind == JobKind::Ingest;
        for entry in orphaned_entries(&self.meta, &self.settings, orphans, ingestions).await? {
            if !self.meta.take_over_job(&entry, &worker, true, now_millis()).await? {
                continue;
            }
            let (tenant, batch_id) = (entry.key.tenant.clone(), BatchId::from_string(entry.key.id.clone()));
            resumed += 1;
            if entry.attempts >= self.settings.max_attempts {
                self.give_up(&tenant, &batch_id, &entry).await;
                continue;
            }
            tracing::warn!(batch_id = %entry.key.id, org = %entry.key.tenant.org, sandbox = %entry.key.tenant.sandbox,
                worker = entry.worker.as_deref().unwrap_or(""), "resuming an ingestion whose node stopped");
            self.spawn(tenant, batch_id);
        }
        Ok(resumed)
    }

    /// Looks for conversions with expired leases every `job_lease_secs / 3`, for as long as
    /// the returned task runs.
    pub fn spawn_lease_watch(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let period = this.settings.lease_check_period();
            loop {
                tokio::time::sleep(period).await;
                match this.resume_orphaned(Orphans::Expired).await {
                    Ok(0) => {}
                    Ok(resumed) => tracing::warn!(batches = resumed, "resumed ingestions whose node stopped"),
                    Err(error) => tracing::error!(%error, "could not look for ingestions with expired leases"),
                }
            }
        })
    }

    /// Folds, in the background, every committed batch some sandbox's identity graph does not
    /// cover: the batches whose commit the last stop separated from their fold.
    pub fn spawn_graph_recovery(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            match this.fold_every_sandbox().await {
                Ok(0) => {}
                Ok(folded) => tracing::warn!(batches = folded, "folded committed batches the identity graph missed"),
                Err(error) => tracing::error!(%error, "could not list sandboxes to recover identity graphs"),
            }
        })
    }

    /// Folds what every sandbox's graph is missing: at startup, batches whose commit a crash
    /// separated from their fold. Returns how many batches were folded; a sandbox that fails is
    /// logged and left for its next fold.
    async fn fold_every_sandbox(&self) -> Result<usize, EngineError> {
        let mut folded = 0;
        for (tenant, _) in self.meta.list_sandboxes(None).await? {
            match self.fold(&tenant).await {
                Ok(outcome) => folded += outcome.folded_batches,
                Err(error) => {
                    tracing::error!(%error, org = %tenant.org, sandbox = %tenant.sandbox, "could not fold the identity graph");
                }
            }
        }
        Ok(folded)
    }

    /// [`fold_pending`], measured: a fold that wrote a version sets the sandbox's graph gauges.
    async fn fold(&self, tenant: &Tenant) -> Result<FoldOutcome, EngineError> {
        let started = Instant::now();
        let outcome = fold_pending(&self.meta, &self.lake, tenant).await?;
        if outcome.folded_batches > 0
            && let Some(version) = &outcome.version
        {
            self.metrics
                .graph_folded(tenant, version.nodes, version.components, started.elapsed());
        }
        Ok(outcome)
    }

    async fn run(&self, tenant: Tenant, batch_id: BatchId) {
        let outcome = match self.target(&tenant, &batch_id).await {
            Ok(target) => complete_batch(&self.meta, &self.lake, &target)
                .await
                .map(|status| (status, target.dataset.is_profile_enabled())),
            Err(error) => Err(error),
        };
        if let Ok((Some((status, counts)), _)) = &outcome {
            self.metrics.batch_ingested(*status, *counts);
        }
        match outcome {
            Ok((Some((BatchStatus::Success, _)), true)) => self.fold_identity_graph(&tenant, &batch_id).await,
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, batch_id = %batch_id, "ingestion failed");
                self.fail(&tenant, &batch_id, &error).await;
            }
        }
    }

    /// Adds a committed profile batch's identities to the sandbox's graph. The batch stays
    /// committed if this fails: it is folded by the next fold (next commit, read or start).
    async fn fold_identity_graph(&self, tenant: &Tenant, batch_id: &BatchId) {
        if let Err(error) = self.fold(tenant).await {
            tracing::error!(%error, batch_id = %batch_id, "could not fold the batch into the identity graph");
        }
    }

    async fn target(&self, tenant: &Tenant, batch_id: &BatchId) -> Result<IngestTarget, EngineError> {
        let missing = || EngineError::Invalid(format!("batch {batch_id} or its dataset no longer exists"));
        let batch = self.meta.get_batch(tenant, batch_id).await?.ok_or_else(missing)?;
        let dataset = self
            .meta
            .get_dataset(tenant, &batch.dataset_id)
            .await?
            .ok_or_else(missing)?;
        let schema = Arc::new(dataset_schema(&self.meta, tenant, &dataset).await?);
        Ok(IngestTarget {
            tenant: tenant.clone(),
            batch,
            dataset,
            schema,
        })
    }

    /// Ends a batch whose conversions kept losing their node: `failed`, saying so, after
    /// `job_max_attempts` runs (a batch that brings down every node it runs on does not loop).
    async fn give_up(&self, tenant: &Tenant, batch_id: &BatchId, entry: &QueueEntry) {
        let error = BatchError {
            code: "INGEST-WORKER-LOST".into(),
            description: format!(
                "The batch's COMPLETE was run {} times, and each time the node converting it stopped (the last one, \
                 '{}', stopped renewing its lease of {} s). Nothing of it became readable; create a new batch and \
                 upload its files again, and look at why nodes stop during it (memory, restarts).",
                entry.attempts,
                entry.worker.as_deref().unwrap_or("unknown"),
                self.settings.lease.as_secs()
            ),
        };
        tracing::error!(batch_id = %batch_id, attempts = entry.attempts, "giving up an ingestion whose nodes kept stopping");
        self.fail_with(tenant, batch_id, error).await;
    }

    /// Ends the batch `failed` with the reason, so it never stays `processing`.
    async fn fail(&self, tenant: &Tenant, batch_id: &BatchId, error: &EngineError) {
        let error = BatchError {
            code: "INGEST-INTERNAL-500".into(),
            description: format!("Ingestion stopped: {error}"),
        };
        self.fail_with(tenant, batch_id, error).await;
    }

    async fn fail_with(&self, tenant: &Tenant, batch_id: &BatchId, error: BatchError) {
        let outcome = BatchOutcome {
            status: BatchStatus::Failed,
            completed: now_millis(),
            records_read: 0,
            record_count: 0,
            size: 0,
            errors: vec![error],
            files: Vec::new(),
        };
        match self.meta.commit_batch(tenant, batch_id, &outcome).await {
            Ok(true) => self.metrics.batch_failed(),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, batch_id = %batch_id, "could not record the failure of an ingestion batch")
            }
        }
        let _ = self.lake.remove_staging(tenant, batch_id).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dossier_model::catalog::BatchStatus;
    use dossier_storage::meta::fixtures::{batch, stored_dataset, with_prod};

    use super::*;

    /// A node's settings with one run per batch, so that the first takeover gives up.
    fn one_attempt(node: &str) -> WorkerSettings {
        WorkerSettings {
            node: node.into(),
            lease: Duration::from_secs(2),
            max_attempts: 1,
            ..WorkerSettings::default()
        }
    }

    #[tokio::test]
    async fn an_ingestion_whose_nodes_keep_dying_fails_after_its_attempts_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
        let lake = Lake::local(&dir.path().join("lake")).unwrap();
        let tenant = with_prod(&meta).await;
        let dataset = stored_dataset(&meta, &tenant, "crm", 1).await;
        let loading = batch(&dataset, BatchStatus::Loading, 2);
        meta.insert_batch(&loading).await.unwrap();
        // A node took the COMPLETE a minute ago and died: its lease expired long since.
        let a_minute_ago = now_millis() - 60_000;
        meta.start_ingestion(&tenant, &loading.id, "dead/ingest", a_minute_ago)
            .await
            .unwrap();
        let here = Ingestion::new(meta.clone(), lake, one_attempt("here"));
        assert_eq!(here.resume_orphaned(Orphans::Expired).await.unwrap(), 1);
        let failed = meta.get_batch(&tenant, &loading.id).await.unwrap().unwrap();
        assert_eq!(failed.status, BatchStatus::Failed);
        assert_eq!(failed.errors[0].code, "INGEST-WORKER-LOST");
        assert!(
            failed.errors[0].description.contains("'dead/ingest'"),
            "{:?}",
            failed.errors
        );
        assert_eq!(
            meta.queue_entry(&JobKey::ingest(&tenant, &loading.id)).await.unwrap(),
            None
        );
        // Nothing is left to resume.
        assert_eq!(here.resume_orphaned(Orphans::Expired).await.unwrap(), 0);
    }
}
