//! Segment jobs on the workers: a claimed segment job is evaluated through
//! [`Exporter::evaluate`] and ends SUCCEEDED (switching the membership files in the same
//! transaction), FAILED or CANCELLED. Also the first step of an export with
//! `evaluationInfo.segmentation: true`, and how recovery ends a segment job whose worker is gone.

use std::time::Instant;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use tokio::sync::watch;

use dossier_model::export_job::ExportJobError;
use dossier_model::ids::SegmentDefinitionId;
use dossier_model::segment_job::{SegmentJob, SegmentJobSegment, SegmentJobStatus};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::{JobKey, JobKind, QueueEntry};
use dossier_storage::{Lake, MetaStore};

use super::recovery::Takeover;
use super::worker::{Supervised, Worker};
use super::{Exporter, RunningJob};
use crate::EngineError;
use crate::export::{CancelFlag, ExportError, ExportStage};
use crate::metrics::JobEnd;
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
        let started = Instant::now();
        self.queue.metrics.job_started(JobKind::Segment);
        let key = JobKey::segment(&job.tenant, &job.id);
        let running = RunningJob::default();
        let evaluation = self.exporter.evaluate(&job, &running.cancel);
        let ended = self.supervise(&key, &running, evaluation, stopped).await;
        if let Some(end) = self.record_segment_job(&job, &key, ended).await {
            self.queue
                .metrics
                .job_finished(JobKind::Segment, end, started.elapsed());
        }
    }

    /// Commits or undoes the run; returns how the job ended, `None` when this run did not end it
    /// (put back on the queue, or left to the node that took it over).
    async fn record_segment_job(
        &self,
        job: &SegmentJob,
        key: &JobKey,
        ended: Supervised<Result<Evaluation, SegmentError>>,
    ) -> Option<JobEnd> {
        let (meta, lake) = (&self.queue.meta, &self.lake);
        let result: Result<(), SegmentError> = match ended.result {
            Ok(Ok(Evaluation { files, mut metrics })) => {
                metrics.end = Some(now_millis());
                match meta
                    .succeed_segment_job(job, &self.name, &metrics, &files, now_millis())
                    .await
                {
                    Ok(Some(superseded)) => {
                        delete_paths(lake, &superseded).await;
                        tracing::info!(job_id = %job.id, "segment job succeeded");
                        return Some(JobEnd::Succeeded);
                    }
                    // Refused: a cancel came after the last check, or the job was taken over.
                    Ok(None) => Err(SegmentError::Cancelled),
                    Err(error) => Err(SegmentError::Failed {
                        code: "SEGMENT-STORAGE-500",
                        message: format!(
                            "The evaluation's result could not be recorded in the metadata store: {error}"
                        ),
                    }),
                }
            }
            Ok(Err(error)) => Err(error),
            Err(message) => Err(SegmentError::Failed {
                code: "SEGMENT-INTERNAL-500",
                message: format!("The evaluation stopped on an internal error: {message}. Please report it."),
            }),
        };
        if !self.holds(key).await {
            // Ended, or taken over by a node that runs it again and writes the same files: its
            // holder cleans up; removing them now could remove the new run's.
            tracing::warn!(job_id = %job.id, "segment job no longer held by this worker; leaving it to its holder");
            return None;
        }
        remove_job_files(lake, job).await;
        match result {
            Err(SegmentError::Cancelled) if ended.server_stopping && !self.cancel_requested(key).await => {
                match meta.requeue_job(key, &self.name, true).await {
                    Ok(true) => tracing::info!(job_id = %job.id, "segment job put back on the queue: the server stops"),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::error!(%error, job_id = %job.id, "could not put a segment job back on the queue")
                    }
                }
                None
            }
            Err(SegmentError::Cancelled) => {
                end_job(meta, job, &self.name, SegmentJobStatus::Cancelled, Vec::new()).await
            }
            Err(SegmentError::Failed { code, message }) => {
                let where_ = match code {
                    "SEGMENT-STORAGE-500" => "segment worker, commit",
                    "SEGMENT-INTERNAL-500" => "segment worker",
                    _ => "segment evaluation",
                };
                let error = job_error(code, message, where_);
                end_job(meta, job, &self.name, SegmentJobStatus::Failed, vec![error]).await
            }
            Ok(()) => None,
        }
    }
}

/// Ends the job; returns its end, `None` when it had already ended (or `holder` lost it).
async fn end_job(
    meta: &MetaStore,
    job: &SegmentJob,
    holder: &str,
    status: SegmentJobStatus,
    errors: Vec<ExportJobError>,
) -> Option<JobEnd> {
    let mut metrics = job.metrics.clone();
    metrics.end = Some(now_millis());
    let ended = meta
        .end_segment_job(job, Some(holder), status, &errors, Some(&metrics), now_millis())
        .await;
    tracing::info!(job_id = %job.id, %status, "segment job ended");
    match ended {
        Ok(true) => JobEnd::of_segment(status),
        Ok(false) => None,
        Err(error) => {
            tracing::error!(%error, job_id = %job.id, "could not record the end of a segment job");
            None
        }
    }
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

/// Takes over a segment job whose worker is gone (recovery holds its lease as `taker`):
/// removes what it wrote (the previous membership files stay current), then queues it again,
/// or ends it CANCELLED or FAILED.
pub(super) async fn take_over(
    meta: &MetaStore,
    lake: &Lake,
    entry: &QueueEntry,
    taker: &str,
    takeover: Takeover,
) -> Result<(), EngineError> {
    let Some(job) = meta.segment_job(&entry.key.tenant, &entry.key.id).await? else {
        // The queue entry and its job are written together, so this is not expected.
        tracing::error!(job_id = %entry.key.id, "a running segment job on the queue does not exist");
        return Ok(());
    };
    remove_job_files(lake, &job).await;
    let (status, errors) = match takeover {
        Takeover::Requeue => {
            meta.requeue_job(&entry.key, taker, false).await?;
            return Ok(());
        }
        Takeover::Cancel => (SegmentJobStatus::Cancelled, Vec::new()),
        Takeover::GiveUp(error) => (SegmentJobStatus::Failed, vec![error]),
    };
    let mut metrics = job.metrics.clone();
    metrics.end = Some(now_millis());
    meta.end_segment_job(&job, Some(taker), status, &errors, Some(&metrics), now_millis())
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
