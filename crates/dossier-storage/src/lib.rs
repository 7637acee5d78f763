//! Dossier's storage: where metadata and files live.
//!
//! Two stores, each behind a small type: [`MetaStore`] keeps every object's metadata (tenancy,
//! API clients, datasets, batches, XDM schemas and identity descriptors, merge policies, export
//! jobs and their queue, segment definitions): a handle on a backend that implements one trait
//! per concern ([`meta`]); the SQLite backend ([`meta::sqlite`], `meta.sqlite` by default) and the
//! PostgreSQL backend ([`meta::postgres`], for several nodes) keep them in SQL through sqlx with
//! versioned migrations and transactions;
//! [`Lake`] keeps data files in an object store laid out as
//! `<org>/<sandbox>/datasets/<datasetId>/batches/<batchId>/<file>`. Everything is scoped by
//! [`Tenant`](dossier_model::tenancy::Tenant): no function reads across organizations or sandboxes.

mod error;
pub mod lake;
pub mod meta;

pub use error::StorageError;
pub use lake::{Lake, S3LakeError, WriteStreamError};
pub use meta::MetaStore;
