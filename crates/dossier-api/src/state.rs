//! What every handler shares.

use std::sync::Arc;

use dossier_engine::ingest::Ingestion;
use dossier_engine::jobs::JobQueue;
use dossier_model::options::Options;
use dossier_storage::{Lake, MetaStore};

use crate::auth::TokenService;
use crate::metrics::ServerMetrics;

#[derive(Clone)]
pub struct AppState {
    pub meta: MetaStore,
    pub lake: Lake,
    pub tokens: Arc<TokenService>,
    pub ingestion: Ingestion,
    /// The job queue of the workers: wake-up on a new job, cancel flags and live progress.
    pub jobs: JobQueue,
    pub limits: Limits,
    /// This server's metrics registry (`GET /metrics`), shared with its engine.
    pub metrics: ServerMetrics,
}

/// The sizes the API keeps requests to: its view of the process's [`Options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file one upload may carry ([`Options::max_upload_bytes`]).
    pub max_upload_bytes: u64,
    /// The largest JSON request body ([`Options::max_json_body_bytes`]); a larger one answers 413.
    pub max_json_body_bytes: usize,
    /// Jobs that may wait at once ([`Options::max_queued_export_jobs`]); a create beyond it
    /// answers 429.
    pub max_queued_export_jobs: u64,
}

impl From<&Options> for Limits {
    fn from(options: &Options) -> Self {
        Self {
            max_upload_bytes: options.max_upload_bytes,
            max_json_body_bytes: options.max_json_body_bytes,
            max_queued_export_jobs: options.max_queued_export_jobs,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from(&Options::default())
    }
}
