//! The identity graph rebuilt as a distributed job: the connected components of every
//! committed fragment's identities, computed as iterated DataFusion joins over Parquet (on a
//! Ballista cluster, or a local session), then written as the next version of the sandbox's
//! graph in the fold's snapshot format with the fold's version row.
//!
//! The fold holds the whole graph in one process's memory; a rebuild holds one Arrow batch of
//! the final rows, the link extraction (`links`) and the joins running wherever the session's
//! plans run. It takes the sandbox's writer lock like a fold, so folds
//! wait for it and then find the batches it covered already covered.

mod components;
mod links;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::error::DataFusionError;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use dossier_engine::EngineError;
use dossier_engine::identity::buckets::{BucketedWriter, DEFAULT_BUCKETS, Manifest};
use dossier_engine::identity::store::{collect_garbage, covered_batches, record_version};
use dossier_engine::schemas::fragment_datasets;
use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_storage::meta::{FileKind, IdentityGraphVersion};
use dossier_storage::{Lake, MetaStore, StorageError};

pub use components::MAX_ROUNDS;
use components::{Scratch, connected_components, snapshot_rows};
/// The session [`rebuild_graph`] takes, for callers (the binary) that do not name DataFusion.
pub use datafusion::prelude::SessionContext;
use links::{FragmentBatch, write_links};

/// Why a rebuild did not produce a version.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{org}/{sandbox} has no committed batch of a profile-enabled dataset: there is no graph to build")]
    NoBatches { org: String, sandbox: String },
    #[error("the components did not converge in {rounds} rounds")]
    NoConvergence { rounds: usize },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the distributed plan failed: {0}")]
    Plan(#[from] DataFusionError),
    #[error("could not write links: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("could not build links: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// What a rebuild made.
#[derive(Debug, Clone)]
pub struct RebuiltGraph {
    /// The version written, now current.
    pub version: IdentityGraphVersion,
    /// Committed batches it covers, and their data files read.
    pub batches: usize,
    pub files: usize,
    /// Links extracted (one per identity of a fragment beyond its first; one per single-identity fragment).
    pub links: u64,
    /// Large-star + small-star rounds until the edges were stars.
    pub rounds: usize,
    pub elapsed: Duration,
}

/// Every committed batch of the sandbox's fragment datasets, and its data files.
async fn committed_fragments(
    meta: &MetaStore,
    tenant: &Tenant,
) -> Result<(Vec<BatchId>, Vec<FragmentBatch>), GraphError> {
    let mut batches = Vec::new();
    let mut fragments = Vec::new();
    for (dataset, schema) in fragment_datasets(meta, tenant).await? {
        let schema = Arc::new(schema);
        for batch in meta.committed_batches(tenant, &dataset.id).await? {
            let files = meta.batch_files(tenant, &batch.id, FileKind::Data).await?;
            fragments.push(FragmentBatch {
                files: files.into_iter().map(|f| ObjectPath::from(f.path)).collect(),
                schema: schema.clone(),
            });
            batches.push(batch.id);
        }
    }
    Ok((batches, fragments))
}

/// A folder of its own for this rebuild's intermediate files.
fn scratch_folder(tenant: &Tenant) -> ObjectPath {
    let started = jiff::Timestamp::now().as_nanosecond();
    Lake::scratch_prefix(
        tenant,
        &format!("identity-graph-rebuild-{started}-{}", std::process::id()),
    )
}

/// Streams the final rows of the plan (sorted by component, then identity) into the buckets
/// of a version whose manifest is at `location`, in as many buckets as the latest version
/// `previous` has (the sandbox keeps its bucket count), else the default.
async fn write_snapshot_file(
    scratch: &Scratch<'_>,
    location: &ObjectPath,
    previous: Option<&IdentityGraphVersion>,
) -> Result<(usize, dossier_engine::identity::snapshot::SnapshotCounts), GraphError> {
    let buckets = match previous.filter(|v| Manifest::is_manifest(&v.path)) {
        Some(version) => {
            Manifest::read(scratch.lake, &ObjectPath::from(version.path.as_str()))
                .await?
                .buckets
        }
        None => DEFAULT_BUCKETS,
    };
    let converged = connected_components(scratch, "links").await?;
    let rounds = converged.rounds;
    let mut rows = snapshot_rows(converged)?.execute_stream().await?;
    let mut writer = BucketedWriter::create(scratch.lake, location, buckets);
    while let Some(batch) = rows.next().await {
        writer.write(&batch?).await?;
    }
    Ok((rounds, writer.finish(scratch.lake).await?.counts()))
}

/// Rebuilds `tenant`'s identity graph from every committed batch with the plans of `ctx`,
/// and makes it the sandbox's next version. `ctx` must see the lake under
/// [`crate::session::LAKE_URL`] (and so must every executor of a cluster session).
pub async fn rebuild_graph(
    ctx: &SessionContext,
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
) -> Result<RebuiltGraph, GraphError> {
    let started = Instant::now();
    let _writer = meta.lock_identity_graph(tenant).await?;
    let (batches, fragments) = committed_fragments(meta, tenant).await?;
    if batches.is_empty() {
        return Err(GraphError::NoBatches {
            org: tenant.org.to_string(),
            sandbox: tenant.sandbox.to_string(),
        });
    }
    let scratch = Scratch {
        ctx,
        lake,
        folder: scratch_folder(tenant),
    };
    let built = build_version(&scratch, meta, tenant, &batches, &fragments).await;
    // Whatever happened, the intermediate files are of no use to anyone.
    if let Err(error) = lake.delete_prefix(&scratch.folder).await {
        tracing::warn!(%error, folder = %scratch.folder, "could not remove an identity graph rebuild's scratch files");
    }
    let (version, links, rounds) = built?;
    // The version is committed whatever happens here; leftovers go at the next fold.
    if let Err(error) = collect_garbage(meta, lake, tenant).await {
        tracing::warn!(%error, org = %tenant.org, sandbox = %tenant.sandbox, "could not remove old identity graph snapshots");
    }
    let rebuilt = RebuiltGraph {
        version,
        batches: batches.len(),
        files: fragments.iter().map(|b| b.files.len()).sum(),
        links,
        rounds,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        org = %tenant.org, sandbox = %tenant.sandbox, version = rebuilt.version.version,
        identities = rebuilt.version.nodes, components = rebuilt.version.components,
        rounds, elapsed_ms = rebuilt.elapsed.as_millis() as u64, "identity graph rebuilt"
    );
    Ok(rebuilt)
}

/// Extracts the links, computes the components, writes the snapshot and records the version
/// covering `batches`. Runs under the writer lock.
async fn build_version(
    scratch: &Scratch<'_>,
    meta: &MetaStore,
    tenant: &Tenant,
    batches: &[BatchId],
    fragments: &[FragmentBatch],
) -> Result<(IdentityGraphVersion, u64, usize), GraphError> {
    let links = write_links(scratch, fragments, "links").await?;
    let latest = meta.latest_identity_graph_version(tenant).await?;
    let number = latest.as_ref().map_or(1, |v| v.version + 1);
    let location = Lake::new_identity_graph_manifest(tenant, number);
    let (rounds, counts) = write_snapshot_file(scratch, &location, latest.as_ref()).await?;
    // Earlier versions' batches stay covered through them; this one adds the rest.
    let covered: HashSet<BatchId> = covered_batches(meta, tenant, latest.as_ref())
        .await?
        .into_iter()
        .collect();
    let folded: Vec<BatchId> = batches.iter().filter(|b| !covered.contains(b)).cloned().collect();
    let version = record_version(meta, tenant, number, &location, counts, &folded).await?;
    Ok((version, links, rounds))
}
