use dossier_model::tenancy::{OrgId, SandboxName};

/// What can go wrong below the engine and the API.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("metadata store error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata store migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("lake error: {0}")]
    Lake(#[from] object_store::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("stored value in {table}.{column} is not valid: {reason}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        reason: String,
    },
    #[error(
        "sandbox '{sandbox}' does not exist in organization '{org}'; create it first with `dossier sandboxes create --org {org} {sandbox}`"
    )]
    UnknownSandbox { org: OrgId, sandbox: SandboxName },
    #[error("sandbox '{sandbox}' already exists in organization '{org}'")]
    SandboxExists { org: OrgId, sandbox: SandboxName },
    #[error("no API client with id '{0}'")]
    UnknownClient(String),
}

impl StorageError {
    /// Whether the failure is a dependency being unreachable (answer 503) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
                | Self::Lake(object_store::Error::Generic { .. })
                | Self::DataDir { .. }
        )
    }
}

/// `From<sqlx::Error>` for the write errors of a concern, through [`StorageError::Database`], so
/// `?` works on SQL inside the writes that return them. Every sqlx backend shares these.
macro_rules! write_error_from_sqlx {
    ($($error:ty),* $(,)?) => {
        $(impl From<sqlx::Error> for $error {
            fn from(error: sqlx::Error) -> Self {
                Self::Storage(StorageError::Database(error))
            }
        })*
    };
}

write_error_from_sqlx!(
    crate::meta::MergePolicyWriteError,
    crate::meta::SegmentDefinitionWriteError,
);
