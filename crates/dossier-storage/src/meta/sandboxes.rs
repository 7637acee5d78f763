//! Organizations' sandboxes.

use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::{EpochMillis, now_millis};

use super::MetaStore;
use super::rows::parsed_column;
use crate::StorageError;

impl MetaStore {
    /// Makes sure the organization has its `prod` sandbox. Every org starts with one.
    pub async fn ensure_org(&self, org: &OrgId) -> Result<(), StorageError> {
        sqlx::query("INSERT INTO sandboxes (org, name, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(org.as_str())
            .bind(SandboxName::prod().as_str())
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_sandbox(&self, org: &OrgId, name: &SandboxName) -> Result<(), StorageError> {
        self.ensure_org(org).await?;
        let inserted =
            sqlx::query("INSERT INTO sandboxes (org, name, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(org.as_str())
                .bind(name.as_str())
                .bind(now_millis())
                .execute(&self.pool)
                .await?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::SandboxExists {
                org: org.clone(),
                sandbox: name.clone(),
            });
        }
        Ok(())
    }

    pub async fn sandbox_exists(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sandboxes WHERE org = ? AND name = ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Sandboxes of one organization, or of all when `org` is `None`, with their creation times.
    pub async fn list_sandboxes(&self, org: Option<&OrgId>) -> Result<Vec<(Tenant, EpochMillis)>, StorageError> {
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
