//! API clients (client id + hashed secret, org, allowed sandboxes) and the token signing key.

use async_trait::async_trait;
use rand::RngCore;
use sqlx::FromRow;

use dossier_model::ids::ClientId;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::{EpochMillis, now_millis};

use super::SqliteMetaStore;
use crate::StorageError;
use crate::meta::client_store::{random_hex, secret_digest};
use crate::meta::prelude::*;
use crate::meta::rows::{json_column, parsed_column, to_json};
use crate::meta::{ApiClient, IssuedClient};

/// An `api_clients` row as stored.
#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    org: String,
    sandboxes: Option<String>,
    created: EpochMillis,
    revoked: Option<EpochMillis>,
}

fn client_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ApiClient, StorageError> {
    const TABLE: &str = "api_clients";
    let row = ClientRow::from_row(row)?;
    let sandboxes = match row.sandboxes {
        None => None,
        Some(raw) => {
            let names: Vec<String> = json_column(TABLE, "sandboxes", &raw)?;
            Some(
                names
                    .iter()
                    .map(|n| parsed_column(TABLE, "sandboxes", SandboxName::parse(n)))
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    Ok(ApiClient {
        client_id: ClientId::from_string(row.client_id),
        org: parsed_column(TABLE, "org", OrgId::parse(&row.org))?,
        sandboxes,
        created: row.created,
        revoked: row.revoked,
    })
}

#[async_trait]
impl ClientStore for SqliteMetaStore {
    async fn create_client(
        &self,
        org: &OrgId,
        sandboxes: Option<Vec<SandboxName>>,
    ) -> Result<IssuedClient, StorageError> {
        self.ensure_org(org).await?;
        if let Some(names) = &sandboxes {
            for sandbox in names {
                let tenant = Tenant {
                    org: org.clone(),
                    sandbox: sandbox.clone(),
                };
                if !self.sandbox_exists(&tenant).await? {
                    return Err(StorageError::UnknownSandbox {
                        org: org.clone(),
                        sandbox: sandbox.clone(),
                    });
                }
            }
        }
        let client = ApiClient {
            client_id: ClientId::generate(),
            org: org.clone(),
            sandboxes,
            created: now_millis(),
            revoked: None,
        };
        let secret = format!("dsk-{}", random_hex(32));
        let sandboxes_json = client
            .sandboxes
            .as_ref()
            .map(|names| to_json(&names.iter().map(SandboxName::as_str).collect::<Vec<_>>()));
        sqlx::query(
            "INSERT INTO api_clients (client_id, secret_sha256, org, sandboxes, created) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(client.client_id.as_str())
        .bind(secret_digest(&secret))
        .bind(org.as_str())
        .bind(sandboxes_json)
        .bind(client.created)
        .execute(&self.pool)
        .await?;
        Ok(IssuedClient { client, secret })
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>, StorageError> {
        let row = sqlx::query("SELECT * FROM api_clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn authenticate_client(&self, client_id: &str, secret: &str) -> Result<Option<ApiClient>, StorageError> {
        let row =
            sqlx::query("SELECT * FROM api_clients WHERE client_id = ? AND secret_sha256 = ? AND revoked IS NULL")
                .bind(client_id)
                .bind(secret_digest(secret))
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self, org: Option<&OrgId>) -> Result<Vec<ApiClient>, StorageError> {
        let rows = sqlx::query("SELECT * FROM api_clients WHERE (? IS NULL OR org = ?) ORDER BY created, client_id")
            .bind(org.map(OrgId::as_str))
            .bind(org.map(OrgId::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn revoke_client(&self, client_id: &str) -> Result<ApiClient, StorageError> {
        sqlx::query("UPDATE api_clients SET revoked = ? WHERE client_id = ? AND revoked IS NULL")
            .bind(now_millis())
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        self.get_client(client_id)
            .await?
            .ok_or_else(|| StorageError::UnknownClient(client_id.to_owned()))
    }

    async fn token_signing_key(&self) -> Result<Vec<u8>, StorageError> {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        sqlx::query("INSERT INTO signing_keys (id, secret, created) VALUES (1, ?, ?) ON CONFLICT DO NOTHING")
            .bind(&key)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT secret FROM signing_keys WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(stored)
    }
}
