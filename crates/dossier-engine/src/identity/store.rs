//! The persisted, versioned identity graph of each sandbox.
//!
//! Writers fold: under the sandbox's writer lock, the identities of every committed batch the
//! latest version does not cover yet are linked into an [`IdentityGraph`], the components of
//! the latest version they touch are loaded into it from their buckets, and version N+1 is
//! written: the buckets that change, then its manifest naming them and the untouched buckets
//! of version N (`fold`, `buckets`) — files first, then its row together with the batches it
//! covers in one transaction. A crash before that transaction leaves version N current and the
//! batches uncovered, so the next fold (after the next commit, at startup, or before a read)
//! takes them again.
//!
//! Readers pin: they take the latest committed version and read only fragments of the batches
//! it covers, so a profile lookup or an export sees one consistent state while ingestion goes on.

use std::collections::HashSet;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_model::xdm::XdmSchema;
use dossier_storage::meta::{FileKind, IdentityGraphVersion};
use dossier_storage::{Lake, MetaStore};

use super::buckets::{DEFAULT_BUCKETS, version_files};
use super::fold::fold_into_version;
use super::read::read_file_identities;
use super::snapshot::{ComponentIndex, SnapshotCounts};
use super::union_find::IdentityGraph;
use crate::EngineError;
use crate::schemas::fragment_datasets;

/// Versions kept per sandbox (with every file they name): the current one, and the one a
/// reader that pinned just before the last fold may still be opening.
pub const KEPT_VERSIONS: usize = 2;

/// How old a snapshot file no version names must be before it is collected.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How many times a reader retries when the version it pinned was collected before it could
/// read the file.
const PIN_ATTEMPTS: usize = 3;

/// A committed batch the graph does not cover yet, with the schema its rows follow.
struct PendingBatch {
    id: BatchId,
    schema: Arc<XdmSchema>,
}

/// What one fold did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldOutcome {
    /// The version current after the fold; `None` while the sandbox has never had a batch.
    pub version: Option<IdentityGraphVersion>,
    /// Batches folded in by this call (0 when the graph already covered everything).
    pub folded_batches: usize,
}

/// The batches the graph's `version` covers (none without a version).
pub async fn covered_batches(
    meta: &MetaStore,
    tenant: &Tenant,
    version: Option<&IdentityGraphVersion>,
) -> Result<HashSet<BatchId>, EngineError> {
    let Some(version) = version else {
        return Ok(HashSet::new());
    };
    Ok(meta
        .identity_graph_covered_batches(tenant, version.version)
        .await?
        .into_iter()
        .collect())
}

/// The committed batches of the sandbox's fragment datasets that `covered` lacks.
async fn pending_batches(
    meta: &MetaStore,
    tenant: &Tenant,
    covered: &HashSet<BatchId>,
) -> Result<Vec<PendingBatch>, EngineError> {
    let mut pending = Vec::new();
    for (dataset, schema) in fragment_datasets(meta, tenant).await? {
        let schema = Arc::new(schema);
        for batch in meta.committed_batches(tenant, &dataset.id).await? {
            if !covered.contains(&batch.id) {
                pending.push(PendingBatch {
                    id: batch.id,
                    schema: schema.clone(),
                });
            }
        }
    }
    Ok(pending)
}

/// The batches the latest version misses, read without the writer lock.
async fn uncovered_batches(meta: &MetaStore, tenant: &Tenant) -> Result<Vec<PendingBatch>, EngineError> {
    let latest = meta.latest_identity_graph_version(tenant).await?;
    let covered = covered_batches(meta, tenant, latest.as_ref()).await?;
    pending_batches(meta, tenant, &covered).await
}

/// Links the identities of every fragment of `batch` into `graph`.
async fn link_batch(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    graph: &mut IdentityGraph,
    batch: &PendingBatch,
) -> Result<(), EngineError> {
    for file in meta.batch_files(tenant, &batch.id, FileKind::Data).await? {
        let (fragments, _) = read_file_identities(lake, &ObjectPath::from(file.path), &batch.schema).await?;
        for fragment in &fragments {
            graph.link(&fragment.all);
        }
    }
    Ok(())
}

/// Writes version `number`, the `previous` version with the links of the `folded` batches in
/// `batches` folded in, and makes it current.
async fn commit_version(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    number: i64,
    previous: Option<&IdentityGraphVersion>,
    batches: IdentityGraph,
    folded: &[BatchId],
) -> Result<IdentityGraphVersion, EngineError> {
    let location = Lake::new_identity_graph_manifest(tenant, number);
    let previous = previous.map(|v| v.path.as_str());
    let (_, stats) = fold_into_version(lake, previous, &location, batches, DEFAULT_BUCKETS).await?;
    tracing::debug!(
        org = %tenant.org, sandbox = %tenant.sandbox, version = number,
        loaded_identities = stats.loaded_identities, touched_components = stats.touched_components,
        read_files = stats.read_files, written_files = stats.written_files,
        "identity graph fold read and wrote only the buckets its batches touch"
    );
    record_version(meta, tenant, number, &location, stats.counts, folded).await
}

/// Makes the snapshot already written at `location` version `number`, current, covering
/// `folded` as well as what the versions before it cover. Fails when another writer committed
/// that number first: the caller's snapshot file is then an orphan the garbage collection takes.
pub async fn record_version(
    meta: &MetaStore,
    tenant: &Tenant,
    number: i64,
    location: &ObjectPath,
    counts: SnapshotCounts,
    folded: &[BatchId],
) -> Result<IdentityGraphVersion, EngineError> {
    let version = IdentityGraphVersion {
        version: number,
        path: location.to_string(),
        created: now_millis(),
        nodes: counts.nodes,
        components: counts.components,
    };
    if !meta.record_identity_graph_version(tenant, &version, folded).await? {
        return Err(EngineError::Invalid(format!(
            "identity graph version {number} of {}/{} was committed by another writer; fold again",
            tenant.org, tenant.sandbox
        )));
    }
    Ok(version)
}

/// Deletes one graph file; one already gone is fine.
async fn delete_file(lake: &Lake, location: &ObjectPath) -> Result<(), EngineError> {
    match lake.store().delete(location).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Drops versions older than the kept ones, then deletes every file no kept version names
/// (a bucket file is shared by all the versions from the one that wrote it until one rewrites
/// its bucket): first those of the dropped versions, buckets before their manifest, then files
/// no row names that are older than [`ORPHAN_AGE`], left by folds that crashed or lost a race
/// before their row committed. A younger unnamed file may be a fold of another process still
/// in flight. Gives the number of files deleted.
pub async fn collect_garbage(meta: &MetaStore, lake: &Lake, tenant: &Tenant) -> Result<usize, EngineError> {
    let pruned = meta.prune_identity_graph_versions(tenant, KEPT_VERSIONS).await?;
    let mut live: HashSet<String> = HashSet::new();
    for version in meta.identity_graph_versions(tenant).await? {
        live.extend(version_files(lake, &version.path).await?);
    }
    let mut deleted = 0;
    for version in &pruned {
        // The manifest is first in the list: delete it last.
        for file in version_files(lake, &version.path).await?.iter().rev() {
            if !live.contains(file) {
                delete_file(lake, &ObjectPath::from(file.as_str())).await?;
                deleted += 1;
            }
        }
    }
    let cutoff = jiff::Timestamp::now().as_millisecond() - ORPHAN_AGE.as_millis() as i64;
    for object in lake.list(&Lake::identity_graph_prefix(tenant)).await? {
        let old_enough = object.last_modified.timestamp_millis() < cutoff;
        if old_enough && !live.contains(object.location.as_ref()) {
            delete_file(lake, &object.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Folds every committed batch of the sandbox's fragment datasets that the graph does not
/// cover yet into a new version. One fold per sandbox runs at a time; a caller that waited for
/// another's fold usually finds nothing left to do.
pub async fn fold_pending(meta: &MetaStore, lake: &Lake, tenant: &Tenant) -> Result<FoldOutcome, EngineError> {
    let _writer = meta.lock_identity_graph(tenant).await?;
    let latest = meta.latest_identity_graph_version(tenant).await?;
    let covered = covered_batches(meta, tenant, latest.as_ref()).await?;
    let pending = pending_batches(meta, tenant, &covered).await?;
    if pending.is_empty() {
        return Ok(FoldOutcome {
            version: latest,
            folded_batches: 0,
        });
    }
    // Only the new batches' links are held; the fold reads the components they touch.
    let started = std::time::Instant::now();
    let mut graph = IdentityGraph::new();
    for batch in &pending {
        link_batch(meta, lake, tenant, &mut graph, batch).await?;
    }
    let linked = started.elapsed();
    let number = latest.as_ref().map_or(1, |v| v.version + 1);
    let folded: Vec<BatchId> = pending.into_iter().map(|b| b.id).collect();
    let version = commit_version(meta, lake, tenant, number, latest.as_ref(), graph, &folded).await?;
    tracing::info!(
        org = %tenant.org, sandbox = %tenant.sandbox, version = version.version, batches = folded.len(),
        identities = version.nodes, components = version.components,
        link_ms = linked.as_millis() as u64, write_ms = (started.elapsed() - linked).as_millis() as u64,
        "identity graph folded"
    );
    // The new version is committed whatever happens here; leftovers go at the next fold.
    if let Err(error) = collect_garbage(meta, lake, tenant).await {
        tracing::warn!(%error, org = %tenant.org, sandbox = %tenant.sandbox, "could not remove old identity graph snapshots");
    }
    Ok(FoldOutcome {
        version: Some(version),
        folded_batches: folded.len(),
    })
}

/// Loads the component index of the snapshot at `path`. Not cached: the readers that hold a
/// whole index (tests, tools) are rare; exports, segment evaluation and lookups stream the
/// snapshot instead (profiles/build), and an exporter keeps its sealed tables itself.
async fn component_index(lake: &Lake, path: &str) -> Result<Arc<ComponentIndex>, EngineError> {
    let started = std::time::Instant::now();
    let index = Arc::new(ComponentIndex::load(lake, &ObjectPath::from(path)).await?);
    tracing::info!(
        path,
        identities = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded an identity graph version"
    );
    Ok(index)
}

/// One version of a sandbox's graph as a reader holds it.
#[derive(Debug, Clone, Default)]
pub struct PinnedGraph {
    /// `None` when the sandbox has no graph yet (no committed batch).
    pub version: Option<IdentityGraphVersion>,
    covered: HashSet<BatchId>,
    pub components: Arc<ComponentIndex>,
}

impl PinnedGraph {
    /// Whether fragments of `batch` are part of this version.
    pub fn covers(&self, batch: &BatchId) -> bool {
        self.covered.contains(batch)
    }

    pub fn version_number(&self) -> Option<i64> {
        self.version.as_ref().map(|v| v.version)
    }
}

async fn load_pinned(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    version: Option<IdentityGraphVersion>,
) -> Result<PinnedGraph, EngineError> {
    let Some(pinned) = version else {
        return Ok(PinnedGraph::default());
    };
    let components = component_index(lake, &pinned.path).await?;
    let covered = covered_batches(meta, tenant, Some(&pinned)).await?;
    Ok(PinnedGraph {
        version: Some(pinned),
        covered,
        components,
    })
}

/// The latest committed version of the sandbox's graph.
pub async fn pin_latest(meta: &MetaStore, lake: &Lake, tenant: &Tenant) -> Result<PinnedGraph, EngineError> {
    let mut attempt = 1;
    loop {
        let latest = meta.latest_identity_graph_version(tenant).await?;
        let pinned_number = latest.as_ref().map(|v| v.version);
        match load_pinned(meta, lake, tenant, latest).await {
            Ok(pinned) => return Ok(pinned),
            Err(error) => {
                // Two folds since the pin collect its file; a newer version is then current.
                let now = meta.latest_identity_graph_version(tenant).await?.map(|v| v.version);
                if now == pinned_number || attempt >= PIN_ATTEMPTS {
                    return Err(error);
                }
            }
        }
        attempt += 1;
    }
}

/// Folds every committed batch the latest version misses. A failing fold is logged and the
/// reader goes on with the last good version.
async fn catch_up(meta: &MetaStore, lake: &Lake, tenant: &Tenant) {
    // Checked without the lock first, so concurrent readers of an up-to-date graph do not queue.
    let behind = uncovered_batches(meta, tenant).await.map(|p| !p.is_empty());
    let caught_up = match behind {
        Ok(false) => Ok(()),
        Ok(true) | Err(_) => fold_pending(meta, lake, tenant).await.map(drop),
    };
    if let Err(error) = caught_up {
        tracing::error!(%error, org = %tenant.org, sandbox = %tenant.sandbox, "could not fold the identity graph; reading its last version");
    }
}

/// What a reader should see: first every committed batch is folded in (so a batch the Catalog
/// reports `success` is in the next lookup), then the latest version is taken, without loading
/// its components (`components` is empty): the profile builder streams the snapshot itself.
pub async fn current_graph_unloaded(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
) -> Result<PinnedGraph, EngineError> {
    catch_up(meta, lake, tenant).await;
    let latest = meta.latest_identity_graph_version(tenant).await?;
    let covered = covered_batches(meta, tenant, latest.as_ref()).await?;
    Ok(PinnedGraph {
        version: latest,
        covered,
        components: Arc::default(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use object_store::memory::InMemory;
    use proptest::prelude::*;

    use super::*;
    use crate::identity::Identity;

    fn as_identities(batch: &[Vec<u8>]) -> Vec<Vec<Identity>> {
        let namespaces = ["Email", "CRMID", "ECID"];
        batch
            .iter()
            .map(|fragment| {
                fragment
                    .iter()
                    .map(|n| Identity::new(namespaces[*n as usize % 3], n.to_string()))
                    .collect()
            })
            .collect()
    }

    /// What a fold does to the graph: the batch linked, folded into the previous snapshot as
    /// the next one.
    async fn fold_one(lake: &Lake, previous: Option<&ObjectPath>, next: &ObjectPath, batch: &[Vec<Identity>]) {
        let mut graph = IdentityGraph::new();
        for fragment in batch {
            graph.link(fragment);
        }
        let previous = previous.map(|p| p.as_ref());
        fold_into_version(lake, previous, next, graph, 4).await.unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn folding_batches_one_by_one_gives_the_components_of_linking_them_all_at_once(
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(0u8..40, 1..4), 0..6),
                1..8,
            ),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let lake = Lake::with_store(Arc::new(InMemory::new()));
            let folded = runtime.block_on(async {
                let mut previous = None;
                for (n, batch) in batches.iter().enumerate() {
                    let next = ObjectPath::from(format!("graph/v{}.json", n + 1));
                    fold_one(&lake, previous.as_ref(), &next, &as_identities(batch)).await;
                    previous = Some(next);
                }
                let mut rows = Vec::new();
                super::super::snapshot::read_snapshot(&lake, previous.as_ref().unwrap(), |identity, key| {
                    rows.push((identity, key.clone()))
                })
                .await
                .unwrap();
                rows
            });
            let mut at_once = IdentityGraph::new();
            for fragment in batches.iter().flat_map(|b| as_identities(b)) {
                at_once.link(&fragment);
            }
            let expected: HashMap<Identity, Identity> = at_once.components().into_iter().collect();
            prop_assert_eq!(folded.len(), expected.len());
            let folded: HashMap<Identity, Identity> = folded.into_iter().collect();
            prop_assert_eq!(folded, expected);
        }
    }

    mod collection {
        use std::collections::BTreeSet;
        use std::time::{Duration, SystemTime};

        use dossier_storage::meta::fixtures::with_prod;

        use super::*;
        use crate::identity::snapshot::read_snapshot;

        fn customer(n: usize) -> Vec<Identity> {
            vec![
                Identity::new("CRMID", format!("crm-{n:04}")),
                Identity::new("Email", format!("c{n}@x")),
            ]
        }

        /// Writes the files of the version after `previous` with `batch` folded in; gives its
        /// manifest's location and counts (no row yet).
        async fn write_files(
            lake: &Lake,
            tenant: &Tenant,
            previous: Option<&IdentityGraphVersion>,
            batch: &[Vec<Identity>],
        ) -> (ObjectPath, SnapshotCounts) {
            let number = previous.map_or(1, |v| v.version + 1);
            let location = Lake::new_identity_graph_manifest(tenant, number);
            let mut graph = IdentityGraph::new();
            for fragment in batch {
                graph.link(fragment);
            }
            let previous = previous.map(|v| v.path.as_str());
            let (_, stats) = fold_into_version(lake, previous, &location, graph, 16).await.unwrap();
            (location, stats.counts)
        }

        /// A fold as `fold_pending` makes it: files, row, collection.
        async fn fold(meta: &MetaStore, lake: &Lake, tenant: &Tenant, batch: &[Vec<Identity>]) -> IdentityGraphVersion {
            let previous = meta.latest_identity_graph_version(tenant).await.unwrap();
            let (location, counts) = write_files(lake, tenant, previous.as_ref(), batch).await;
            let number = previous.map_or(1, |v| v.version + 1);
            let version = record_version(meta, tenant, number, &location, counts, &[])
                .await
                .unwrap();
            collect_garbage(meta, lake, tenant).await.unwrap();
            version
        }

        async fn files_on_disk(lake: &Lake, tenant: &Tenant) -> BTreeSet<String> {
            let listed = lake.list(&Lake::identity_graph_prefix(tenant)).await.unwrap();
            listed.into_iter().map(|o| o.location.to_string()).collect()
        }

        async fn named_by_kept_versions(meta: &MetaStore, lake: &Lake, tenant: &Tenant) -> BTreeSet<String> {
            let mut named = BTreeSet::new();
            for version in meta.identity_graph_versions(tenant).await.unwrap() {
                named.extend(version_files(lake, &version.path).await.unwrap());
            }
            named
        }

        async fn identities_of(lake: &Lake, version: &IdentityGraphVersion) -> usize {
            let mut rows = 0;
            read_snapshot(lake, &ObjectPath::from(version.path.as_str()), |_, _| rows += 1)
                .await
                .unwrap();
            rows
        }

        /// Four folds: the two newest versions are kept with every file they name, including
        /// buckets the first fold wrote and no later one rewrote; nothing else is left.
        #[tokio::test]
        async fn collection_deletes_only_files_no_kept_version_names() {
            let dir = tempfile::tempdir().unwrap();
            let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
            let lake = Lake::local(&dir.path().join("lake")).unwrap();
            let tenant = with_prod(&meta).await;
            let everyone: Vec<Vec<Identity>> = (0..200).map(customer).collect();
            let first = fold(&meta, &lake, &tenant, &everyone).await;
            let first_files = version_files(&lake, &first.path).await.unwrap();
            let mut device = customer(1);
            device.push(Identity::new("ECID", "phone"));
            fold(&meta, &lake, &tenant, &[device]).await;
            fold(&meta, &lake, &tenant, &[customer(500)]).await;
            let last = fold(&meta, &lake, &tenant, &[customer(501)]).await;

            let versions: Vec<i64> = meta
                .identity_graph_versions(&tenant)
                .await
                .unwrap()
                .iter()
                .map(|v| v.version)
                .collect();
            assert_eq!(versions, [4, 3]);
            let named = named_by_kept_versions(&meta, &lake, &tenant).await;
            assert_eq!(files_on_disk(&lake, &tenant).await, named);
            assert!(!named.contains(&first.path), "version 1's manifest is gone");
            let still_shared = first_files.iter().filter(|f| named.contains(*f)).count();
            assert!(still_shared > 0, "version 4 still names buckets version 1 wrote");
            assert_eq!(identities_of(&lake, &last).await, 405);
        }

        /// A fold that dies between its files and its row: the previous version stays current
        /// and whole; the unnamed files survive a collection while they may be a fold in
        /// flight, and go once they are old.
        #[tokio::test]
        async fn a_fold_that_dies_before_its_row_leaves_the_last_version_whole() {
            let dir = tempfile::tempdir().unwrap();
            let meta = MetaStore::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
            let lake = Lake::local(&dir.path().join("lake")).unwrap();
            let tenant = with_prod(&meta).await;
            let everyone: Vec<Vec<Identity>> = (0..100).map(customer).collect();
            fold(&meta, &lake, &tenant, &everyone).await;
            let current = fold(&meta, &lake, &tenant, &[customer(300)]).await;

            let (orphan, _) = write_files(&lake, &tenant, Some(&current), &[customer(3), customer(301)]).await;
            let kept = named_by_kept_versions(&meta, &lake, &tenant).await;
            let orphaned: Vec<String> = version_files(&lake, orphan.as_ref())
                .await
                .unwrap()
                .into_iter()
                .filter(|f| !kept.contains(f))
                .collect();
            assert!(
                orphaned.len() >= 3,
                "its manifest and the buckets it rewrote: {orphaned:?}"
            );
            assert_eq!(
                meta.latest_identity_graph_version(&tenant).await.unwrap(),
                Some(current.clone())
            );
            collect_garbage(&meta, &lake, &tenant).await.unwrap();
            let on_disk = files_on_disk(&lake, &tenant).await;
            assert!(
                orphaned.iter().all(|f| on_disk.contains(f)),
                "a young fold's files are kept"
            );

            let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
            for file in &orphaned {
                let path = dir.path().join("lake").join(file);
                std::fs::File::options()
                    .write(true)
                    .open(path)
                    .unwrap()
                    .set_modified(an_hour_ago)
                    .unwrap();
            }
            collect_garbage(&meta, &lake, &tenant).await.unwrap();
            let named = named_by_kept_versions(&meta, &lake, &tenant).await;
            assert_eq!(files_on_disk(&lake, &tenant).await, named);
            assert_eq!(identities_of(&lake, &current).await, 202);
        }
    }
}
