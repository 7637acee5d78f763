//! What every handler shares.

use std::sync::Arc;

use dossier_storage::{Lake, MetaStore};

use crate::auth::TokenService;

#[derive(Clone)]
pub struct AppState {
    pub meta: MetaStore,
    pub lake: Lake,
    pub tokens: Arc<TokenService>,
}
