//! What a start does about exports the previous process left running.

use dossier_model::export_job::ExportJobStatus;
use dossier_model::time::now_millis;
use dossier_storage::{Lake, MetaStore};

use super::{remove_job_files, server_stopped};
use crate::EngineError;

/// Fails every job left PROCESSING — the process that ran it is gone, because the embedded
/// metadata store has one server process — after removing the files its export wrote; its
/// batches become `failed`. Run at startup, before the workers start. Returns how many jobs.
///
/// The export is not retried: its batches may have been half written, and a user who still
/// wants it creates the job again knowing the first one failed.
pub async fn recover_interrupted_exports(meta: &MetaStore, lake: &Lake) -> Result<usize, EngineError> {
    let interrupted = meta.export_jobs_in_status(ExportJobStatus::Processing).await?;
    for job in &interrupted {
        tracing::warn!(job_id = job.id, org = %job.tenant.org, sandbox = %job.tenant.sandbox,
            "failing an export job the last stop interrupted");
        remove_job_files(lake, job).await?;
        let error = server_stopped(
            "startup recovery",
            "the job was still PROCESSING when the server started again",
        );
        meta.end_export_job(&job.tenant, job.id, ExportJobStatus::Failed, &[error], now_millis())
            .await?;
    }
    Ok(interrupted.len())
}
