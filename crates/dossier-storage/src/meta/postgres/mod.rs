//! The PostgreSQL metadata store: several nodes sharing one database.
//!
//! Each file implements one concern's trait of [`crate::meta`] on [`PostgresMetaStore`], mirroring
//! `meta/sqlite/` file for file, with PostgreSQL's SQL (`$n` placeholders, `BIGINT`/`BOOLEAN`
//! columns, lists bound as arrays and matched with `= ANY`), and the migrations in
//! `migrations/postgres/`.
//!
//! Where SQLite has one writer (`BEGIN IMMEDIATE`), PostgreSQL has many, from many nodes; what
//! stands in for it:
//! - a write that decides on what it reads runs in [`PostgresMetaStore::begin_write`], which takes
//!   a transaction-level advisory lock on its sandbox: writers of one sandbox go one at a time
//!   (so export job ids are the sandbox's largest + 1, gap-free and unique), writers of different
//!   sandboxes in parallel;
//! - a job claim ([`job_queue`]) takes the queue row `FOR UPDATE SKIP LOCKED` under a claim lock
//!   of its own, and the writes that end or cancel a job lock its queue row first, so a claim
//!   and a cancel never both win;
//! - the identity-graph writer lock is a session advisory lock held on a connection the guard
//!   keeps ([`identity_graph`]);
//! - the token signing key is one row every node reads, so every node accepts every token.
//!
//! Advisory locks use the two-key form, the first key naming what is locked ([`LockSpace`]), so
//! the spaces never collide; the second is a hash of `org/sandbox` (two sandboxes sharing a hash
//! only wait for each other).

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
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use dossier_model::tenancy::Tenant;

use crate::StorageError;
use crate::meta::{MetaStore, StoreLifecycle};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The first key of the store's advisory locks: what the lock is for.
#[derive(Clone, Copy, Debug)]
#[repr(i32)]
enum LockSpace {
    /// A sandbox's writers ([`PostgresMetaStore::begin_write`]), per transaction.
    SandboxWrites = 1,
    /// A sandbox's identity-graph writer, per session (held by the guard's connection).
    IdentityGraph = 2,
    /// Job claims, per transaction: one claim at a time, so the per-sandbox cap holds across nodes.
    Claims = 3,
}

/// The SQL of the second key: a hash of the tenant (`$2` org, `$3` sandbox; `$1` is the space).
const TENANT_KEY: &str = "hashtext($2 || '/' || $3)";

/// The metadata store in one PostgreSQL database. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct PostgresMetaStore {
    pool: PgPool,
}

impl PostgresMetaStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`) and brings its schema
    /// up to date. Several nodes may open one database at once: sqlx's migrator takes a lock.
    pub async fn open(url: &str) -> Result<Self, StorageError> {
        let options = PgConnectOptions::from_str(url)?.application_name("dossier");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    /// A transaction holding `tenant`'s write lock from its first statement, so what it reads of
    /// the sandbox stays true until it commits (SQLite's `BEGIN IMMEDIATE`, per sandbox).
    async fn begin_write(&self, tenant: &Tenant) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        lock_in(&mut tx, "pg_advisory_xact_lock", LockSpace::SandboxWrites, tenant).await?;
        Ok(tx)
    }
}

/// Takes one of the store's advisory locks on `tenant` with `function` (`pg_advisory_xact_lock`,
/// `pg_advisory_lock`, `pg_advisory_unlock`), waiting for it.
async fn lock_in(
    conn: &mut sqlx::PgConnection,
    function: &'static str,
    space: LockSpace,
    tenant: &Tenant,
) -> Result<(), sqlx::Error> {
    // The only text put into the SQL is the function's name, a constant.
    let sql = format!("SELECT {function}($1, {TENANT_KEY})");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(space as i32)
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl StoreLifecycle for PostgresMetaStore {
    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl MetaStore {
    /// Connects to the PostgreSQL store at `url` as the handle the engine and the API hold. The
    /// binary's resolver opens `postgres://` and `postgresql://` URLs with it.
    pub async fn open_postgres(url: &str) -> Result<Self, StorageError> {
        Ok(Self::new(PostgresMetaStore::open(url).await?))
    }
}
