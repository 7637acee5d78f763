//! The identity graph's versions and which committed batches each covers.
//!
//! The graph itself lives in the lake as one Parquet snapshot per version; these rows say which
//! snapshot is current and what it was built from. A new version becomes visible in the single
//! transaction of [`IdentityGraphStore::record_identity_graph_version`], after its file is written.

use async_trait::async_trait;

use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// One committed version of a sandbox's identity graph, as its row stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityGraphVersion {
    /// 1 for the first graph of a sandbox, then one more per fold.
    pub version: i64,
    /// The snapshot's object path in the lake.
    pub path: String,
    pub created: EpochMillis,
    /// Identities in the graph.
    pub nodes: i64,
    /// Connected components: the profiles of the `pdg` merge policy.
    pub components: i64,
}

/// Held while a sandbox's identity graph is being folded: one writer per sandbox at a time;
/// dropping it lets the next writer in. What it holds is the backend's business: SQLite's store
/// (one process) holds an in-process mutex; a store shared by several processes holds a lock in
/// the database (e.g. a PostgreSQL advisory lock on a connection kept for the fold).
pub struct IdentityGraphWriteGuard {
    _held: Box<dyn Send>,
}

impl IdentityGraphWriteGuard {
    /// A guard that releases the lock when `held` is dropped.
    pub fn new(held: impl Send + 'static) -> Self {
        Self { _held: Box::new(held) }
    }
}

impl std::fmt::Debug for IdentityGraphWriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityGraphWriteGuard")
    }
}

/// The versions of each sandbox's identity graph and its writer lock.
#[async_trait]
pub trait IdentityGraphStore: Send + Sync {
    /// Waits until no one else folds `tenant`'s identity graph (in this process on SQLite, on any
    /// node sharing the database on PostgreSQL), and holds that until the guard is dropped.
    async fn lock_identity_graph(&self, tenant: &Tenant) -> Result<IdentityGraphWriteGuard, StorageError>;

    /// The newest committed version of the sandbox's graph; `None` before the first fold.
    async fn latest_identity_graph_version(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<IdentityGraphVersion>, StorageError>;

    /// Every version that still has its row, newest first.
    async fn identity_graph_versions(&self, tenant: &Tenant) -> Result<Vec<IdentityGraphVersion>, StorageError>;

    /// The batches folded into the graph at `version` or before: what that version covers.
    async fn identity_graph_covered_batches(&self, tenant: &Tenant, version: i64)
    -> Result<Vec<BatchId>, StorageError>;

    /// Makes `version` the sandbox's current graph, covering `folded` batches, in one
    /// transaction. Its snapshot file must already be in the lake. Returns `false` (and changes
    /// nothing) when that version number is taken: another writer got there first.
    async fn record_identity_graph_version(
        &self,
        tenant: &Tenant,
        version: &IdentityGraphVersion,
        folded: &[BatchId],
    ) -> Result<bool, StorageError>;

    /// Removes the rows of every version but the newest `keep`, returning them so their files
    /// can be deleted. Which batches they folded stays recorded: newer versions cover those.
    async fn prune_identity_graph_versions(
        &self,
        tenant: &Tenant,
        keep: usize,
    ) -> Result<Vec<IdentityGraphVersion>, StorageError>;

    /// Undoes one version as if its fold never committed: its row goes, and the batches it
    /// folded are no longer covered (the next fold takes them again). For operators repairing
    /// a bad snapshot, and for tests of recovery. Returns whether the version existed.
    async fn discard_identity_graph_version(&self, tenant: &Tenant, version: i64) -> Result<bool, StorageError>;
}
