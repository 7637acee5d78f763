//! Helpers to read typed values out of rows.
//!
//! Tables are read with `sqlx::FromRow` into a row struct of plain column values; the row struct
//! then turns into the model type, so a stored value that no longer parses is a
//! [`StorageError::Corrupt`] naming its table and column rather than a bare decode error.

use serde::de::DeserializeOwned;

use dossier_model::tenancy::{OrgId, SandboxName, Tenant};

use crate::StorageError;

/// The `org` and `sandbox` columns every per-sandbox table has; a row struct takes them with
/// `#[sqlx(flatten)]`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TenantColumns {
    org: String,
    sandbox: String,
}

impl TenantColumns {
    pub(crate) fn into_tenant(self, table: &'static str) -> Result<Tenant, StorageError> {
        Ok(Tenant {
            org: parsed_column(table, "org", OrgId::parse(&self.org))?,
            sandbox: parsed_column(table, "sandbox", SandboxName::parse(&self.sandbox))?,
        })
    }
}

pub(crate) fn json_column<T: DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    raw: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(raw).map_err(|e| StorageError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

pub(crate) fn parsed_column<T, E: std::fmt::Display>(
    table: &'static str,
    column: &'static str,
    parsed: Result<T, E>,
) -> Result<T, StorageError> {
    parsed.map_err(|e| StorageError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model values always serialize")
}
