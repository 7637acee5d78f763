//! The SQLite metadata store: the laptop default, and the backend every test runs on.
//!
//! Each file implements one concern's trait of [`crate::meta`] on [`SqliteMetaStore`], with the
//! SQL it needs and the row structs that read it. What is SQLite's own stays in this folder: the
//! pool (WAL, one writer), writes that decide on what they read taking the write lock first with
//! `BEGIN IMMEDIATE`, lists bound as one JSON argument and read back with `json_each`, the
//! in-process identity-graph writer locks (one process writes a SQLite file), and the migrations
//! in `migrations/sqlite/`.

mod batch_files;
mod batch_uploads;
mod by_id;
mod catalog;
mod clients;
mod export_jobs;
mod fair_claim;
mod identity_graph;
mod job_queue;
mod merge_policies;
mod paging;
mod sandboxes;
mod schedules;
mod schemas;
mod segment_definitions;
mod segment_jobs;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::StorageError;
use crate::meta::{MetaStore, StoreLifecycle};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The metadata store in one SQLite file. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct SqliteMetaStore {
    pool: SqlitePool,
    graph_writers: std::sync::Arc<identity_graph::GraphWriterLocks>,
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StorageError> {
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
}

impl SqliteMetaStore {
    /// A write transaction that holds the write lock from its first statement (`BEGIN
    /// IMMEDIATE`), so what it reads stays true until it commits.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

#[async_trait]
impl StoreLifecycle for SqliteMetaStore {
    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl MetaStore {
    /// Opens (creating if needed) the SQLite store at `path` as the handle the engine and the API
    /// hold. The binary's resolver opens `sqlite://` URLs with it; tests open their stores with it.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StorageError> {
        Ok(Self::new(SqliteMetaStore::open(path).await?))
    }
}

/// A SQLite file at `path` migrated only up to `version`, as an older Dossier left it: for the
/// tests of a later migration, which fill it and then open it with [`SqliteMetaStore::open`].
#[cfg(test)]
pub(super) async fn pool_at_version(path: &Path, version: i64) -> SqlitePool {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .unwrap()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new().connect_with(options).await.unwrap();
    MIGRATIONS.run_to(version, &pool).await.unwrap();
    pool
}
