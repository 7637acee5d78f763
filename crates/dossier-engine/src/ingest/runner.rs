//! Runs COMPLETE in the background and resumes it after a restart; a committed batch of a
//! profile-enabled dataset is then folded into its sandbox's identity graph.

use std::sync::Arc;

use dossier_model::catalog::{BatchError, BatchStatus};
use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::BatchOutcome;
use dossier_storage::{Lake, MetaStore};

use super::complete::{IngestTarget, complete_batch};
use crate::EngineError;
use crate::identity::{fold_every_sandbox, fold_pending};
use crate::schemas::dataset_schema;

/// Starts and resumes ingestion of completed batches.
#[derive(Clone)]
pub struct Ingestion {
    meta: MetaStore,
    lake: Lake,
}

impl Ingestion {
    pub fn new(meta: MetaStore, lake: Lake) -> Self {
        Self { meta, lake }
    }

    /// Converts and commits a batch that was just moved to `processing`, in the background.
    pub fn spawn(&self, tenant: Tenant, batch_id: BatchId) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.run(tenant, batch_id).await })
    }

    /// Picks up every ingestion batch a previous process left `processing` (it died during
    /// COMPLETE): the conversion is idempotent, so it simply runs again.
    pub async fn resume_interrupted(&self) -> Result<usize, EngineError> {
        let interrupted = self.meta.batches_in_status(&[BatchStatus::Processing]).await?;
        let mut resumed = 0;
        for batch in interrupted.into_iter().filter(|b| b.is_ingestion()) {
            tracing::warn!(batch_id = %batch.id, "resuming an ingestion batch interrupted by a restart");
            self.spawn(
                Tenant {
                    org: batch.org.clone(),
                    sandbox: batch.sandbox.clone(),
                },
                batch.id.clone(),
            );
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Folds, in the background, every committed batch some sandbox's identity graph does not
    /// cover: the batches whose commit the last stop separated from their fold.
    pub fn spawn_graph_recovery(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            match fold_every_sandbox(&this.meta, &this.lake).await {
                Ok(0) => {}
                Ok(folded) => tracing::warn!(batches = folded, "folded committed batches the identity graph missed"),
                Err(error) => tracing::error!(%error, "could not list sandboxes to recover identity graphs"),
            }
        })
    }

    async fn run(&self, tenant: Tenant, batch_id: BatchId) {
        let outcome = match self.target(&tenant, &batch_id).await {
            Ok(target) => complete_batch(&self.meta, &self.lake, &target)
                .await
                .map(|status| (status, target.dataset.is_profile_enabled())),
            Err(error) => Err(error),
        };
        match outcome {
            Ok((Some(BatchStatus::Success), true)) => self.fold_identity_graph(&tenant, &batch_id).await,
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
        if let Err(error) = fold_pending(&self.meta, &self.lake, tenant).await {
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

    /// Ends the batch `failed` with the reason, so it never stays `processing`.
    async fn fail(&self, tenant: &Tenant, batch_id: &BatchId, error: &EngineError) {
        let outcome = BatchOutcome {
            status: BatchStatus::Failed,
            completed: now_millis(),
            records_read: 0,
            record_count: 0,
            size: 0,
            errors: vec![BatchError {
                code: "INGEST-INTERNAL-500".into(),
                description: format!("Ingestion stopped: {error}"),
            }],
            files: Vec::new(),
        };
        if let Err(e) = self.meta.commit_batch(tenant, batch_id, &outcome).await {
            tracing::error!(error = %e, batch_id = %batch_id, "could not record the failure of an ingestion batch");
        }
        let _ = self.lake.remove_staging(tenant, batch_id).await;
    }
}
