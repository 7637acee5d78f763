//! What every handler shares.

use std::sync::Arc;

use dossier_engine::ingest::Ingestion;
use dossier_storage::{Lake, MetaStore};

use crate::auth::TokenService;

#[derive(Clone)]
pub struct AppState {
    pub meta: MetaStore,
    pub lake: Lake,
    pub tokens: Arc<TokenService>,
    pub ingestion: Ingestion,
    pub limits: Limits,
}

/// Sizes the server refuses to go beyond.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest file one upload may carry.
    pub max_upload_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 16 * 1024 * 1024 * 1024,
        }
    }
}
