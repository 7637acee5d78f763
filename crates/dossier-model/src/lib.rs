//! Dossier's domain model: the vocabulary every other layer speaks.
//!
//! This crate owns ids, tenancy (organizations and sandboxes), the Catalog's objects (datasets,
//! batches), XDM schemas (their JSON Schema form, Arrow mapping, record validation and unions),
//! merge policies, segment definitions and their PQL expressions, the validation of what users send for them,
//! and the process's [`options::Options`] (every tunable with its default). It performs no I/O: storage,
//! engine and API crates build on it, never the other way round.

pub mod catalog;
pub mod export_job;
pub mod export_request;
pub mod ids;
pub mod listing;
pub mod merge_policy;
pub mod options;
mod patch;
pub mod pql;
pub mod schedule;
pub mod schema;
pub mod segment_definition;
pub mod segment_job;
pub mod tenancy;
pub mod time;
pub mod validation;
pub mod xdm;

pub use validation::ValidationError;
