//! What every handler shares.

use std::sync::Arc;

use dossier_engine::export::ExportSettings;
use dossier_engine::ingest::Ingestion;
use dossier_engine::jobs::JobQueue;
use dossier_storage::{Lake, MetaStore};

use crate::auth::TokenService;

#[derive(Clone)]
pub struct AppState {
    pub meta: MetaStore,
    pub lake: Lake,
    pub tokens: Arc<TokenService>,
    pub ingestion: Ingestion,
    /// The job queue of the workers: wake-up on a new job, cancel flags and live progress.
    pub jobs: JobQueue,
    pub limits: Limits,
}

/// Sizes and concurrency the server keeps to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest file one upload may carry.
    pub max_upload_bytes: u64,
    /// The largest JSON request body (dataset, job, policy, definition...); a larger one answers
    /// 413. Data goes through batch ingestion, whose uploads `max_upload_bytes` bounds instead.
    pub max_json_body_bytes: usize,
    /// Export jobs run at once (one worker each); 0 leaves every job queued.
    pub export_workers: usize,
    /// Export jobs that may wait (NEW) at once, across every sandbox; a create beyond it
    /// answers 429.
    pub max_queued_export_jobs: u64,
    /// Profiles an export holds in memory at once (its partition): the knob that bounds an
    /// export's memory for the rows it merges.
    pub export_partition_profiles: usize,
    /// Profiles an export keys and selects at once (its shard); a larger population is
    /// exported shard by shard, with pass one spilled under `<data dir>/spill`.
    pub export_shard_profiles: usize,
    /// Identity graph identities an export holds in one map while it keys fragments; a larger
    /// graph is joined bucket by bucket from spills.
    pub export_bucket_identities: usize,
}

impl Default for Limits {
    /// The export sizes' defaults are the engine's own ([`ExportSettings::default`]), written once.
    fn default() -> Self {
        let export = ExportSettings::default();
        Self {
            max_upload_bytes: 16 * 1024 * 1024 * 1024,
            max_json_body_bytes: 2 * 1024 * 1024,
            export_workers: 2,
            max_queued_export_jobs: 100,
            export_partition_profiles: export.partition_profiles,
            export_shard_profiles: export.shard_profiles,
            export_bucket_identities: export.bucket_identities,
        }
    }
}
