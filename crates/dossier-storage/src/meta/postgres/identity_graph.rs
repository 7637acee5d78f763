//! The identity graph's versions and which committed batches each covers.
//!
//! The graph itself lives in the lake as one Parquet snapshot per version; these rows say which
//! snapshot is current and what it was built from. A new version becomes visible in the single
//! transaction of [`IdentityGraphStore::record_identity_graph_version`], after its file is written.

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{FromRow, Row};

use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::{LockSpace, PostgresMetaStore, lock_in};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::{IdentityGraphVersion, IdentityGraphWriteGuard};

/// A sandbox's identity-graph writer lock: a session advisory lock, held by a connection taken
/// out of the pool for as long as the guard lives, so writers on every node exclude each other.
/// Dropped, it unlocks and closes that connection on a task; should no task run (the runtime is
/// going away), dropping the connection closes its socket, the session ends, and PostgreSQL
/// releases the lock with it. The connection is never handed back to the pool: a pooled session
/// still holding the lock would block every writer of the sandbox.
struct GraphWriterLock {
    conn: Option<PgConnection>,
    tenant: Tenant,
}

impl Drop for GraphWriterLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tenant = self.tenant.clone();
            runtime.spawn(async move {
                // Either way the lock goes: unlocked here, or with the session when the
                // connection closes.
                let _ = lock_in(&mut conn, "pg_advisory_unlock", LockSpace::IdentityGraph, &tenant).await;
                let _ = conn.close().await;
            });
        }
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

fn version_from_row(row: &PgRow) -> Result<IdentityGraphVersion, StorageError> {
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
impl IdentityGraphStore for PostgresMetaStore {
    async fn lock_identity_graph(&self, tenant: &Tenant) -> Result<IdentityGraphWriteGuard, StorageError> {
        let mut conn = self.pool.acquire().await?.detach();
        lock_in(&mut conn, "pg_advisory_lock", LockSpace::IdentityGraph, tenant).await?;
        Ok(IdentityGraphWriteGuard::new(GraphWriterLock {
            conn: Some(conn),
            tenant: tenant.clone(),
        }))
    }

    async fn latest_identity_graph_version(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<IdentityGraphVersion>, StorageError> {
        let row = sqlx::query(
            "SELECT * FROM identity_graph_versions WHERE org = $1 AND sandbox = $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn identity_graph_versions(&self, tenant: &Tenant) -> Result<Vec<IdentityGraphVersion>, StorageError> {
        let rows =
            sqlx::query("SELECT * FROM identity_graph_versions WHERE org = $1 AND sandbox = $2 ORDER BY version DESC")
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
            "SELECT batch_id FROM identity_graph_batches WHERE org = $1 AND sandbox = $2 AND version <= $3
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
        let mut tx = self.begin_write(tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO identity_graph_versions (org, sandbox, version, path, created, nodes, components)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
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
                "INSERT INTO identity_graph_batches (batch_id, org, sandbox, version) VALUES ($1, $2, $3, $4)
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
        let mut tx = self.begin_write(tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM identity_graph_versions WHERE org = $1 AND sandbox = $2 ORDER BY version DESC LIMIT ALL OFFSET $3",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(keep as i64)
        .fetch_all(&mut *tx)
        .await?;
        let pruned: Vec<IdentityGraphVersion> = rows.iter().map(version_from_row).collect::<Result<_, _>>()?;
        for version in &pruned {
            sqlx::query("DELETE FROM identity_graph_versions WHERE org = $1 AND sandbox = $2 AND version = $3")
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
        let mut tx = self.begin_write(tenant).await?;
        let deleted =
            sqlx::query("DELETE FROM identity_graph_versions WHERE org = $1 AND sandbox = $2 AND version = $3")
                .bind(tenant.org.as_str())
                .bind(tenant.sandbox.as_str())
                .bind(version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM identity_graph_batches WHERE org = $1 AND sandbox = $2 AND version = $3")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
