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

#[cfg(test)]
mod tests {
    use dossier_model::catalog::{Batch, BatchStatus, DataBehavior, Dataset, FileDescription, SchemaRef};
    use dossier_model::ids::{ClientId, DatasetId};
    use dossier_model::tenancy::{OrgId, SandboxName};

    use super::*;
    use crate::meta::MetaStore;

    const ORG: &str = "1BD6382559DF0C130A49422D@AdobeOrg";

    fn prod() -> Tenant {
        Tenant {
            org: OrgId::parse(ORG).unwrap(),
            sandbox: SandboxName::prod(),
        }
    }

    async fn store_with_batches(count: usize) -> (tempfile::TempDir, MetaStore, Vec<BatchId>) {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
        let t = prod();
        meta.ensure_org(&t.org).await.unwrap();
        let dataset = DatasetId::generate();
        meta.insert_dataset(&Dataset {
            id: dataset.clone(),
            org: t.org.clone(),
            sandbox: t.sandbox.clone(),
            name: "crm".into(),
            description: None,
            schema_ref: SchemaRef {
                id: "https://ns.adobe.com/tenant/schemas/crm".into(),
                content_type: "application/vnd.adobe.xed+json;version=1".into(),
            },
            file_description: FileDescription::default(),
            tags: Default::default(),
            aspect: None,
            data_behavior: DataBehavior::Record,
            created: 1,
            updated: 1,
            created_client: ClientId::generate(),
            last_batch_id: None,
            last_batch_status: None,
        })
        .await
        .unwrap();
        let mut batches = Vec::new();
        for _ in 0..count {
            let id = BatchId::generate();
            meta.insert_batch(&Batch {
                id: id.clone(),
                org: t.org.clone(),
                sandbox: t.sandbox.clone(),
                dataset_id: dataset.clone(),
                status: BatchStatus::Success,
                created: 1,
                updated: 1,
                started: None,
                completed: Some(1),
                record_count: Some(1),
                size: Some(1),
                records_read: Some(1),
                errors: Vec::new(),
                input_format: None,
                created_client: ClientId::generate(),
                partial_ingestion: false,
            })
            .await
            .unwrap();
            batches.push(id);
        }
        (dir, meta, batches)
    }

    fn version(n: i64) -> IdentityGraphVersion {
        IdentityGraphVersion {
            version: n,
            path: format!("graph/v{n}.parquet"),
            created: n * 10,
            nodes: n * 2,
            components: n,
        }
    }

    #[tokio::test]
    async fn versions_cover_the_batches_folded_at_or_before_them() {
        let (_dir, meta, batches) = store_with_batches(3).await;
        let t = prod();
        assert_eq!(meta.latest_identity_graph_version(&t).await.unwrap(), None);
        assert!(
            meta.record_identity_graph_version(&t, &version(1), &batches[..2])
                .await
                .unwrap()
        );
        assert!(
            meta.record_identity_graph_version(&t, &version(2), &batches[2..])
                .await
                .unwrap()
        );
        assert!(
            !meta
                .record_identity_graph_version(&t, &version(2), &batches[..1])
                .await
                .unwrap(),
            "a version number is written once"
        );
        assert_eq!(meta.latest_identity_graph_version(&t).await.unwrap(), Some(version(2)));
        let at = |v| {
            let meta = meta.clone();
            let t = t.clone();
            async move {
                let mut ids = meta.identity_graph_covered_batches(&t, v).await.unwrap();
                ids.sort();
                ids
            }
        };
        let mut first_two = batches[..2].to_vec();
        first_two.sort();
        let mut all = batches.clone();
        all.sort();
        assert_eq!(at(1).await, first_two);
        assert_eq!(at(2).await, all);
    }

    #[tokio::test]
    async fn pruning_keeps_the_newest_rows_and_every_fold() {
        let (_dir, meta, batches) = store_with_batches(3).await;
        let t = prod();
        for (n, batch) in batches.iter().enumerate() {
            let folded = std::slice::from_ref(batch);
            meta.record_identity_graph_version(&t, &version(n as i64 + 1), folded)
                .await
                .unwrap();
        }
        let pruned = meta.prune_identity_graph_versions(&t, 2).await.unwrap();
        assert_eq!(pruned, vec![version(1)]);
        let kept: Vec<i64> = meta
            .identity_graph_versions(&t)
            .await
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(kept, vec![3, 2]);
        assert_eq!(meta.identity_graph_covered_batches(&t, 3).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_discarded_version_uncovers_its_batches() {
        let (_dir, meta, batches) = store_with_batches(2).await;
        let t = prod();
        meta.record_identity_graph_version(&t, &version(1), &batches[..1])
            .await
            .unwrap();
        meta.record_identity_graph_version(&t, &version(2), &batches[1..])
            .await
            .unwrap();
        assert!(meta.discard_identity_graph_version(&t, 2).await.unwrap());
        assert_eq!(meta.latest_identity_graph_version(&t).await.unwrap(), Some(version(1)));
        assert_eq!(
            meta.identity_graph_covered_batches(&t, 5).await.unwrap(),
            batches[..1].to_vec()
        );
        // Folding again reuses the number and covers the batch once more.
        assert!(
            meta.record_identity_graph_version(&t, &version(2), &batches[1..])
                .await
                .unwrap()
        );
        assert_eq!(meta.identity_graph_covered_batches(&t, 2).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn one_writer_per_sandbox_at_a_time() {
        let (_dir, meta, _) = store_with_batches(0).await;
        let prod = prod();
        let held = meta.lock_identity_graph(&prod).await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), meta.lock_identity_graph(&prod));
        assert!(waiting.await.is_err(), "a second writer waits");
        let dev = Tenant {
            sandbox: SandboxName::parse("dev").unwrap(),
            ..prod.clone()
        };
        drop(meta.lock_identity_graph(&dev).await.unwrap());
        drop(held);
        drop(meta.lock_identity_graph(&prod).await.unwrap());
    }
}
