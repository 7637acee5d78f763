//! DataFusion sessions that see the lake and Dossier's functions: a local one (tests, and the
//! client side of a cluster job) and the pieces the scheduler, the executors and the client share.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::{SessionConfig, SessionContext};
use dossier_storage::Lake;

/// Where plans find the lake: every lake file is read as `dossier-lake://lake/<object path>`.
/// Each process registers its own handle on the lake under this URL (the server and the
/// executors open it from the same `lake_url`), so a plan names files the same way everywhere,
/// whether the lake is a local folder or an S3 bucket and prefix.
pub const LAKE_URL: &str = "dossier-lake://lake/";

/// [`LAKE_URL`] as DataFusion takes it.
pub fn lake_url() -> ObjectStoreUrl {
    ObjectStoreUrl::parse(LAKE_URL).expect("a valid object store URL")
}

/// The URL of one object of the lake, for a listing table or a Parquet scan.
pub fn lake_file_url(path: &object_store::path::Path) -> String {
    format!("{LAKE_URL}{path}")
}

/// Registers `lake`'s object store under [`LAKE_URL`] in `ctx`.
pub fn register_lake(ctx: &SessionContext, lake: &Lake) {
    ctx.register_object_store(lake_url().as_ref(), Arc::clone(lake.store()));
}

/// The configuration every Dossier session (local, client, scheduler, executors) starts from.
/// Parquet strings and binaries are read as `Utf8`/`Binary`, not DataFusion's default view
/// types: the lake's files are written with those, and the engine's merge code (which the
/// functions call) reads exactly those types.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(false);
    config.options_mut().execution.parquet.schema_force_view_types = false;
    config
}

/// A session on this process alone, with the lake and Dossier's functions registered: what the
/// tests of each plan use to check it before it runs on a cluster.
pub fn local_context(lake: &Lake) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(session_config());
    register_lake(&ctx, lake);
    crate::functions::register(&ctx);
    Ok(ctx)
}
