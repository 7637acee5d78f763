//! Segment jobs on the workers: a claimed segment job is evaluated through
//! [`Exporter::evaluate`] and ends SUCCEEDED (switching the membership files in the same
//! transaction), FAILED or CANCELLED. Also the first step of an export with
//! `evaluationInfo.segmentation: true`, and how recovery ends a segment job whose worker is gone.

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use tokio::sync::watch;

use dossier_model::export_job::ExportJobError;
use dossier_model::ids::SegmentDefinitionId;
use dossier_model::segment_job::{SegmentJob, SegmentJobSegment, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::{JobKey, QueueEntry};
use dossier_storage::{Lake, MetaStore};

use super::worker::{Supervised, Worker};
use super::{Exporter, RunningJob};
use crate::EngineError;
use crate::export::{CancelFlag, ExportError, ExportStage};
use crate::profiles::build::{BuildSettings, ComponentTables};
use crate::segments::{Evaluation, SegmentError, evaluate_segments_with, remove_files};

fn job_error(code: &str, msg: String, where_: &str) -> ExportJobError {
    ExportJobError {
        code: code.into(),
        msg,
        call_stack: where_.into(),
    }
}

/// Deletes files a superseding switch left behind; a failure only leaks a file.
async fn delete_paths(lake: &Lake, paths: &[String]) {
    for path in paths {
        if let Err(error) = lake.store().delete(&ObjectPath::from(path.as_str())).await {
            tracing::warn!(%error, %path, "could not remove a superseded membership file");
        }
    }
}

impl<E: Exporter> Worker<E> {
    pub(super) async fn run_segment_job(&self, job: SegmentJob, stopped: &mut watch::Receiver<bool>) {
        tracing::info!(job_id = %job.id, org = %job.tenant.org, sandbox = %job.tenant.sandbox, "segment job started");
        let key = JobKey::segment(&job.tenant, &job.id);
        let running = RunningJob::default();
        let evaluation = self.exporter.evaluate(&job, &running.cancel);
        let ended = self.supervise(&key, &running, evaluation, stopped).await;
        self.record_segment_job(&job, &key, ended).await;
    }

    async fn record_segment_job(
        &self,
        job: &SegmentJob,
        key: &JobKey,
        ended: Supervised<Result<Evaluation, SegmentError>>,
    ) {
        let (meta, lake) = (&self.queue.meta, &self.lake);
        match ended.result {
            Ok(Ok(Evaluation { files, mut metrics })) => {
                metrics.end = Some(now_millis());
                match meta.succeed_segment_job(job, &metrics, &files, now_millis()).await {
                    Ok(Some(superseded)) => {
                        delete_paths(lake, &superseded).await;
                        tracing::info!(job_id = %job.id, "segment job succeeded");
                    }
                    Ok(None) => {
                        // A cancel arrived after the last check: nothing of this job is kept.
                        remove_files(lake, &files).await;
                        end_job(meta, job, SegmentJobStatus::Cancelled, Vec::new()).await;
                    }
                    Err(error) => {
                        remove_files(lake, &files).await;
                        let msg =
                            format!("The evaluation's result could not be recorded in the metadata store: {error}");
                        let error = job_error("SEGMENT-STORAGE-500", msg, "segment worker, commit");
                        end_job(meta, job, SegmentJobStatus::Failed, vec![error]).await;
                    }
                }
            }
            Ok(Err(SegmentError::Cancelled)) => {
                remove_job_files(lake, job).await;
                if ended.server_stopping && !self.cancel_requested(key).await {
                    let error = server_stopped("segment worker shutdown");
                    end_job(meta, job, SegmentJobStatus::Failed, vec![error]).await;
                } else {
                    end_job(meta, job, SegmentJobStatus::Cancelled, Vec::new()).await;
                }
            }
            Ok(Err(SegmentError::Failed { code, message })) => {
                remove_job_files(lake, job).await;
                let error = job_error(code, message, "segment evaluation");
                end_job(meta, job, SegmentJobStatus::Failed, vec![error]).await;
            }
            Err(message) => {
                remove_job_files(lake, job).await;
                let msg = format!("The evaluation stopped on an internal error: {message}. Please report it.");
                let error = job_error("SEGMENT-INTERNAL-500", msg, "segment worker");
                end_job(meta, job, SegmentJobStatus::Failed, vec![error]).await;
            }
        }
    }
}

async fn end_job(meta: &MetaStore, job: &SegmentJob, status: SegmentJobStatus, errors: Vec<ExportJobError>) {
    let mut metrics = job.metrics.clone();
    metrics.end = Some(now_millis());
    if let Err(error) = meta
        .end_segment_job(&job.tenant, &job.id, status, &errors, Some(&metrics), now_millis())
        .await
    {
        tracing::error!(%error, job_id = %job.id, "could not record the end of a segment job");
    }
    tracing::info!(job_id = %job.id, %status, "segment job ended");
}

fn server_stopped(where_: &str) -> ExportJobError {
    job_error(
        "SEGMENT-SERVER-STOPPED",
        "The server stopped while the segment job was PROCESSING. Nothing of it was kept: the memberships \
         evaluated before it stay current. Create the job again."
            .into(),
        where_,
    )
}

/// Removes the membership files a job may have written (never a current one: a job's files
/// become current only with its success).
async fn remove_job_files(lake: &Lake, job: &SegmentJob) {
    for segment in &job.segments {
        let location = Lake::segment_membership_file(&job.tenant, &segment.segment_id, &job.id);
        match lake.store().delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => tracing::warn!(%error, %location, "could not remove a membership file"),
        }
    }
}

/// Ends a segment job whose worker is gone, after removing what it wrote (the previous
/// membership files stay current): CANCELLED when a cancel was requested (it was CANCELLING),
/// FAILED otherwise.
pub(super) async fn recover(meta: &MetaStore, lake: &Lake, entry: &QueueEntry) -> Result<(), EngineError> {
    let Some(job) = meta.segment_job(&entry.key.tenant, &entry.key.id).await? else {
        // The queue entry and its job are written together, so this is not expected.
        tracing::error!(job_id = %entry.key.id, "a running segment job on the queue does not exist");
        return Ok(());
    };
    tracing::warn!(job_id = %job.id, org = %job.tenant.org, sandbox = %job.tenant.sandbox,
        "ending a segment job the last stop interrupted");
    remove_job_files(lake, &job).await;
    let (status, errors) = if entry.cancel_requested {
        (SegmentJobStatus::Cancelled, Vec::new())
    } else {
        let error = job_error(
            "SEGMENT-SERVER-STOPPED",
            "The server stopped while the segment job was PROCESSING (found at startup). Nothing of \
             it was kept: the memberships evaluated before it stay current. Create the job again."
                .into(),
            "startup recovery",
        );
        (SegmentJobStatus::Failed, vec![error])
    };
    let mut metrics = job.metrics.clone();
    metrics.end = Some(now_millis());
    meta.end_segment_job(&job.tenant, &job.id, status, &errors, Some(&metrics), now_millis())
        .await?;
    Ok(())
}

/// The definitions `ids` name, as a job evaluates them; `Err` names the first id that is not
/// a definition of the tenant.
pub async fn segments_of(
    meta: &MetaStore,
    tenant: &Tenant,
    ids: &[String],
) -> Result<Result<Vec<SegmentJobSegment>, String>, EngineError> {
    let wanted: Vec<SegmentDefinitionId> = ids
        .iter()
        .map(|id| SegmentDefinitionId::from_string(id.clone()))
        .collect();
    let found = meta.segment_definitions_by_id(tenant, &wanted).await?;
    let mut segments = Vec::new();
    for id in ids {
        let Some(definition) = found.iter().find(|d| d.id.as_str() == id) else {
            return Ok(Err(id.clone()));
        };
        let Some(policy) = meta.merge_policy(tenant, &definition.merge_policy_id, None).await? else {
            return Ok(Err(id.clone()));
        };
        segments.push(SegmentJobSegment {
            segment_id: id.clone(),
            expression: definition.expression.clone(),
            merge_policy_id: definition.merge_policy_id.to_string(),
            merge_policy_version: policy.version,
        });
    }
    Ok(Ok(segments))
}

/// The first step of an export with `evaluationInfo.segmentation: true`: its `ups` segments
/// are evaluated as a segment job would, and the new memberships made current.
pub(super) async fn evaluate_for_export(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    job_id: i64,
    ids: &[String],
    cancel: &CancelFlag,
    build: (&BuildSettings, &ComponentTables),
) -> Result<(), ExportError> {
    let storage = |source| ExportError::Storage {
        stage: ExportStage::Segmentation,
        source,
    };
    let segments = match segments_of(meta, tenant, ids).await {
        Ok(Ok(segments)) => segments,
        Ok(Err(id)) => return Err(ExportError::SegmentGone(id)),
        Err(error) => return Err(storage(error)),
    };
    let run_id = format!("export-{job_id}-{}", now_millis());
    match evaluate_segments_with(meta, lake, tenant, &segments, &run_id, now_millis(), cancel, build).await {
        Ok(evaluation) => match meta.switch_membership_files(tenant, &evaluation.files).await {
            Ok(superseded) => {
                delete_paths(lake, &superseded).await;
                Ok(())
            }
            Err(error) => {
                remove_files(lake, &evaluation.files).await;
                Err(storage(error.into()))
            }
        },
        Err(SegmentError::Cancelled) => Err(ExportError::Cancelled),
        Err(SegmentError::Failed { code, message }) => Err(ExportError::Segmentation { code, message }),
    }
}
