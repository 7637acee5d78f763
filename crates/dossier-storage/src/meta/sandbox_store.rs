//! Organizations and their sandboxes; a new sandbox starts with its seeded default merge policy.

use async_trait::async_trait;

use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// Organizations and their sandboxes.
#[async_trait]
pub trait SandboxStore: Send + Sync {
    /// Makes sure the organization has its `prod` sandbox. Every org starts with one.
    async fn ensure_org(&self, org: &OrgId) -> Result<(), StorageError>;

    /// Creates a sandbox (and its org if new) with its seeded default merge policy;
    /// [`StorageError::SandboxExists`] when it exists already.
    async fn create_sandbox(&self, org: &OrgId, name: &SandboxName) -> Result<(), StorageError>;

    /// Whether the tenant's sandbox exists.
    async fn sandbox_exists(&self, tenant: &Tenant) -> Result<bool, StorageError>;

    /// Sandboxes of one organization, or of all when `org` is `None`, with their creation times.
    async fn list_sandboxes(&self, org: Option<&OrgId>) -> Result<Vec<(Tenant, EpochMillis)>, StorageError>;
}
