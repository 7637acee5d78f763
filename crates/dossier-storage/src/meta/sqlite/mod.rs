//! The SQLite metadata store: SQL tables behind typed functions.

mod batch_files;
mod batch_uploads;
mod catalog;
mod clients;
mod export_jobs;
mod fair_claim;
mod identity_graph;
mod merge_policies;
mod paging;
mod rows;
mod sandboxes;
mod schemas;
mod segment_definitions;
mod segment_jobs;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::StorageError;

pub use batch_files::{BatchFile, BatchOutcome, FileKind};
pub use batch_uploads::{BatchUpload, UploadRecording};
pub use catalog::{BATCH_SORTABLE, BatchFilter, DATASET_SORTABLE, DatasetDeletion, DatasetFilter};
pub use clients::{ApiClient, IssuedClient};
pub use export_jobs::{ExportCancellation, ExportJobCreation, ExportJobListing, IdempotencyKey, NewExportJob};
pub use fair_claim::PerSandbox;
pub use identity_graph::{IdentityGraphVersion, IdentityGraphWriteGuard};
pub use merge_policies::{MergePolicyPage, MergePolicyWriteError};
pub use paging::Page;
pub use segment_definitions::{SegmentDefinitionPage, SegmentDefinitionWriteError};
pub use segment_jobs::{MembershipFile, NewSegmentJob, SegmentJobCreation};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The metadata store. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct MetaStore {
    pool: SqlitePool,
    graph_writers: std::sync::Arc<identity_graph::GraphWriterLocks>,
}

impl MetaStore {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            // WAL lets readers run while the single writer commits; NORMAL sync is durable
            // across process crashes, which is the failure the batch-visibility rule is about.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool,
            graph_writers: Default::default(),
        })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl MetaStore {
    /// Checks that the store answers a query.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
