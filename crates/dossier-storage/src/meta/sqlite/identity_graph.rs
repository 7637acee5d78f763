//! The identity graph's versions and which committed batches each covers.
//!
//! The graph itself lives in the lake as one Parquet snapshot per version; these rows say which
//! snapshot is current and what it was built from. A new version becomes visible in the single
//! transaction of [`IdentityGraphStore::record_identity_graph_version`], after its file is written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Row};

use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::SqliteMetaStore;
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::{IdentityGraphVersion, IdentityGraphWriteGuard};

/// Per-sandbox writer locks of this process. SQLite has one process writing, so an in-memory
/// lock is enough; a shared PostgreSQL store would take an advisory lock instead, and the
/// primary key on (org, sandbox, version) still refuses a second writer of the same version.
#[derive(Debug, Default)]
pub(crate) struct GraphWriterLocks(Mutex<HashMap<Tenant, Arc<tokio::sync::Mutex<()>>>>);

impl GraphWriterLocks {
    fn of(&self, tenant: &Tenant) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .0
            .lock()
            .expect("the lock table is never poisoned: nothing panics while holding it");
        locks.entry(tenant.clone()).or_default().clone()
    }
}

/// The columns of an `identity_graph_versions` row that make an [`IdentityGraphVersion`].
#[derive(sqlx::FromRow)]
struct VersionRow {
    version: i64,
    path: String,
    created: EpochMillis,
    nodes: i64,
    components: i64,
}

fn version_from_row(row: &SqliteRow) -> Result<IdentityGraphVersion, StorageError> {
    let VersionRow {
        version,
        path,
        created,
        nodes,
        components,
    } = VersionRow::from_row(row)?;
    Ok(IdentityGraphVersion {
        version,
        path,
        created,
        nodes,
        components,
    })
}

#[async_trait]
impl IdentityGraphStore for SqliteMetaStore {
    async fn lock_identity_graph(&self, tenant: &Tenant) -> Result<IdentityGraphWriteGuard, StorageError> {
        Ok(IdentityGraphWriteGuard::new(
            self.graph_writers.of(tenant).lock_owned().await,
        ))
    }

    async fn latest_identity_graph_version(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<IdentityGraphVersion>, StorageError> {
        let row = sqlx::query(
            "SELECT * FROM identity_graph_versions WHERE org = ? AND sandbox = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn identity_graph_versions(&self, tenant: &Tenant) -> Result<Vec<IdentityGraphVersion>, StorageError> {
        let rows =
            sqlx::query("SELECT * FROM identity_graph_versions WHERE org = ? AND sandbox = ? ORDER BY version DESC")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn identity_graph_covered_batches(
        &self,
        tenant: &Tenant,
        version: i64,
    ) -> Result<Vec<BatchId>, StorageError> {
        let rows = sqlx::query(
            "SELECT batch_id FROM identity_graph_batches WHERE org = ? AND sandbox = ? AND version <= ?
             ORDER BY version, batch_id",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(BatchId::from_string(row.try_get::<String, _>("batch_id")?)))
            .collect()
    }

    async fn record_identity_graph_version(
        &self,
        tenant: &Tenant,
        version: &IdentityGraphVersion,
        folded: &[BatchId],
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO identity_graph_versions (org, sandbox, version, path, created, nodes, components)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(version.version)
        .bind(&version.path)
        .bind(version.created)
        .bind(version.nodes)
        .bind(version.components)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        for batch in folded {
            // A batch whose earlier fold was discarded is folded again: the new version wins.
            sqlx::query(
                "INSERT INTO identity_graph_batches (batch_id, org, sandbox, version) VALUES (?, ?, ?, ?)
                 ON CONFLICT (batch_id) DO UPDATE SET version = excluded.version",
            )
            .bind(batch.as_str())
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(version.version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_identity_graph_versions(
        &self,
        tenant: &Tenant,
        keep: usize,
    ) -> Result<Vec<IdentityGraphVersion>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT * FROM identity_graph_versions WHERE org = ? AND sandbox = ? ORDER BY version DESC LIMIT -1 OFFSET ?",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(keep as i64)
        .fetch_all(&mut *tx)
        .await?;
        let pruned: Vec<IdentityGraphVersion> = rows.iter().map(version_from_row).collect::<Result<_, _>>()?;
        for version in &pruned {
            sqlx::query("DELETE FROM identity_graph_versions WHERE org = ? AND sandbox = ? AND version = ?")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(version.version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(pruned)
    }

    async fn discard_identity_graph_version(&self, tenant: &Tenant, version: i64) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM identity_graph_versions WHERE org = ? AND sandbox = ? AND version = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM identity_graph_batches WHERE org = ? AND sandbox = ? AND version = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
