//! Dossier's HTTP API: AEP-compatible routes over the storage and engine layers.
//!
//! This crate owns the wire: paths, the gateway checks (tokens, API keys, organizations,
//! sandboxes), request ids, AEP's error shapes and JSON views of objects, and the server's start
//! and graceful stop. Business rules live below it (model, storage, engine); a handler parses,
//! calls down, and shapes the answer.

mod auth;
mod error;
mod extract;
mod gateway;
mod json_errors;
mod listener;
mod metrics;
mod request_context;
mod routes;
mod server;
mod state;
mod views;

pub use auth::StaticToken;
pub use error::{ApiError, Service};
pub use listener::ConnectionSettings;
pub use server::{RunningServer, ServerConfig, Storage, start, start_with};
pub use state::Limits;
