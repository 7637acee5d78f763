//! What a start does about jobs the previous process left running: one recovery for every kind.

use dossier_storage::meta::JobKind;
use dossier_storage::{Lake, MetaStore};

use super::{export_jobs, segment_jobs};
use crate::EngineError;

/// Ends every job the queue shows running — with the embedded metadata store there is one
/// server process, so their worker is gone — after removing what it wrote: CANCELLED when a
/// cancel was requested, FAILED saying the server stopped otherwise. Run at startup, before the
/// workers start. Returns how many jobs.
///
/// With several processes on one store only jobs whose lease expired are orphaned:
/// `MetaStore::running_jobs(Some(cutoff))` lists those, and each kind's `recover` ends them.
pub async fn recover_interrupted_jobs(meta: &MetaStore, lake: &Lake) -> Result<usize, EngineError> {
    let interrupted = meta.running_jobs(None).await?;
    for entry in &interrupted {
        match entry.key.kind {
            JobKind::Export => export_jobs::recover(meta, lake, entry).await?,
            JobKind::Segment => segment_jobs::recover(meta, lake, entry).await?,
        }
    }
    Ok(interrupted.len())
}
