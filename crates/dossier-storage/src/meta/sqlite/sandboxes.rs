//! Organizations' sandboxes.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::{EpochMillis, now_millis, now_seconds};

use super::SqliteMetaStore;
use super::merge_policies::seed_merge_policy;
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::parsed_column;

/// Creates the sandbox unless it exists, with what every sandbox starts with (its default merge
/// policy), in the caller's transaction. Returns whether it was created.
async fn insert_sandbox(conn: &mut SqliteConnection, tenant: &Tenant) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO sandboxes (org, name, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(now_millis())
        .execute(&mut *conn)
        .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    seed_merge_policy(conn, tenant, now_seconds()).await?;
    Ok(true)
}

#[async_trait]
impl SandboxStore for SqliteMetaStore {
    async fn ensure_org(&self, org: &OrgId) -> Result<(), StorageError> {
        let prod = Tenant {
            org: org.clone(),
            sandbox: SandboxName::prod(),
        };
        let mut tx = self.pool.begin().await?;
        insert_sandbox(&mut tx, &prod).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_sandbox(&self, org: &OrgId, name: &SandboxName) -> Result<(), StorageError> {
        self.ensure_org(org).await?;
        let tenant = Tenant {
            org: org.clone(),
            sandbox: name.clone(),
        };
        let mut tx = self.pool.begin().await?;
        let created = insert_sandbox(&mut tx, &tenant).await?;
        tx.commit().await?;
        if !created {
            return Err(StorageError::SandboxExists {
                org: org.clone(),
                sandbox: name.clone(),
            });
        }
        Ok(())
    }

    async fn sandbox_exists(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sandboxes WHERE org = ? AND name = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn list_sandboxes(&self, org: Option<&OrgId>) -> Result<Vec<(Tenant, EpochMillis)>, StorageError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT org, name, created FROM sandboxes WHERE (? IS NULL OR org = ?) ORDER BY org, name")
                .bind(org.map(OrgId::as_str))
                .bind(org.map(OrgId::as_str))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(org, name, created)| {
                let tenant = Tenant {
                    org: parsed_column("sandboxes", "org", OrgId::parse(&org))?,
                    sandbox: parsed_column("sandboxes", "name", SandboxName::parse(&name))?,
                };
                Ok((tenant, created))
            })
            .collect()
    }
}
