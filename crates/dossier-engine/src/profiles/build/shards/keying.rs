//! Pass one proper: every fragment's primary identity read once and keyed to its shard.

use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

use super::super::keys::NamespaceNumbers;
use super::super::spill::{FragmentRow, FragmentSpill, Spill};
use super::component_table::ComponentTable;
use super::graph_buckets::GraphBuckets;
use super::graph_join::{join_bucket, merge_in_file_order, scan_graph};
use super::identity_hash::identity_hash;
use super::layout::part_of;
use super::membership_keys::{MembershipKeys, member_hashes};
use super::restrict::Seeds;
use super::router::ShardRouter;
use super::sidecar::{Primary, backfill_sidecar, visit_sidecar};
use super::spills::{finish, spills};
use super::{KeyingContext, ShardedKeys};
use crate::EngineError;
use crate::cancel::CancelFlag;
use crate::identity::read_file_primaries;

impl ShardedKeys {
    /// Visits the primary identity of every row of every file, calling `visit(file, row,
    /// primary)`: from the file's key sidecar when it has a usable one, else from the file
    /// itself (ids are read only when `with_ids`; a sidecar can leave them empty otherwise).
    async fn each_primary(
        &self,
        lake: &Lake,
        cancel: &CancelFlag,
        with_ids: bool,
        mut visit: impl FnMut(u32, u32, &Primary<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let (mut from_sidecars, started) = (0usize, std::time::Instant::now());
        for (f, file) in self.files.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let schema = &self.datasets[file.dataset].schema;
            let visit_row = |row: u32, primary: &Primary<'_>| visit(f as u32, row, primary);
            if visit_sidecar(lake, &file.location, schema, with_ids, visit_row).await? {
                from_sidecars += 1;
                continue;
            }
            let (primaries, row_ids) = read_file_primaries(lake, &file.location, schema).await?;
            for (row, (primary, row_id)) in primaries.iter().zip(&row_ids).enumerate() {
                if let Some(primary) = primary {
                    let primary = Primary {
                        hash: identity_hash(&primary.namespace, &primary.id),
                        namespace: &primary.namespace,
                        id: &primary.id,
                        row_id: *row_id,
                    };
                    visit(f as u32, row as u32, &primary)?;
                }
            }
            backfill_sidecar(lake, schema, &file.location, &primaries, &row_ids).await;
        }
        tracing::info!(
            files = self.files.len(),
            from_sidecars,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pass one read its fragments' primary identities"
        );
        Ok(())
    }

    /// `none`: each fragment goes to the shard of its primary identity's hash.
    pub(super) async fn key_by_primary(
        &mut self,
        lake: &Lake,
        folder: Option<&Path>,
        numbers: &mut NamespaceNumbers,
        cancel: &CancelFlag,
    ) -> Result<(), EngineError> {
        let mut shards = spills(folder, "shard", self.layout.shards, true)?;
        let keep = self.seeds.as_ref().map(Seeds::primary_hashes);
        self.each_primary(lake, cancel, true, |file, row, primary| {
            let key = primary.hash;
            if keep.as_ref().is_some_and(|keep| !keep.contains(&key)) {
                return Ok(());
            }
            let namespace = numbers.namespace_number(primary.namespace);
            let fragment = FragmentRow {
                key,
                file,
                row,
                row_id: primary.row_id,
                namespace,
            };
            let shard = part_of(key, shards.len());
            shards[shard].push(fragment, Some(primary.id))
        })
        .await?;
        self.shards = finish(shards)?;
        Ok(())
    }

    /// `pdg`: the graph and the fragments joined (in one table, or bucket by bucket); each
    /// fragment goes to the shard of its component. Shards are contiguous runs of the order in
    /// which components are first met in the files, so a partition reads a region of each file
    /// rather than rows scattered through all of them.
    pub(super) async fn key_by_component(
        &mut self,
        lake: &Lake,
        snapshot: &ObjectPath,
        (identities, components): (usize, usize),
        folder: Option<&Path>,
        numbers: &mut NamespaceNumbers,
        context: &KeyingContext<'_>,
    ) -> Result<(), EngineError> {
        let cancel = context.cancel;
        let bucket_count = self.layout.buckets;
        let mut router = ShardRouter::new(spills(folder, "shard", self.layout.shards, false)?, components);
        let mut membership_keys = MembershipKeys::new(&self.memberships, self.seeds.iter().flat_map(Seeds::hashes));
        // A graph within one bucket is kept sealed for the next build of the same version; the
        // identities of evaluated memberships are then resolved through it instead of while
        // scanning.
        let path = snapshot.to_string();
        let cached = match bucket_count == 1 {
            true => context.tables.get(&path),
            false => None,
        };
        if bucket_count > 1 {
            return self
                .key_in_buckets(
                    lake,
                    snapshot,
                    (folder, components),
                    numbers,
                    context,
                    membership_keys,
                    router,
                )
                .await;
        }
        let mut in_memory = ComponentTable::with_capacity(if cached.is_none() { identities } else { 0 });
        if cached.is_none() {
            scan_graph(lake, snapshot, &mut membership_keys, |hash, component| {
                in_memory.push(hash, component);
                Ok(())
            })
            .await?;
        }
        if let Some(table) = &cached {
            membership_keys.resolve_in(table, &self.memberships);
        }
        self.restrict(&mut router, &membership_keys.seed_components, components);
        self.resolved = Some(membership_keys.resolved);
        let table = match cached {
            Some(table) => table,
            None => {
                in_memory.seal();
                let table = Arc::new(in_memory);
                context.tables.keep(&path, table.clone());
                table
            }
        };
        self.each_primary(lake, cancel, false, |file, row, primary| {
            let Some(component) = table.get(primary.hash) else {
                return Ok(());
            };
            let fragment = FragmentRow {
                key: u128::from(component),
                file,
                row,
                row_id: primary.row_id,
                namespace: numbers.namespace_number(primary.namespace),
            };
            router.route(fragment)
        })
        .await?;
        self.shards = finish(router.shards)?;
        Ok(())
    }

    /// [`Self::key_by_component`] for a graph larger than one bucket: the fragments hashed into
    /// buckets on disk, joined bucket by bucket to the graph's buckets, merged back into file
    /// order. The graph's buckets are the ones kept for its version ([`GraphBuckets`]); the
    /// first build of a version scans the snapshot into them, on a thread of its own so both
    /// cores work (the two scans are independent until the join).
    #[allow(clippy::too_many_arguments)]
    async fn key_in_buckets(
        &mut self,
        lake: &Lake,
        snapshot: &ObjectPath,
        (folder, components): (Option<&Path>, usize),
        numbers: &mut NamespaceNumbers,
        context: &KeyingContext<'_>,
        mut membership_keys: MembershipKeys,
        mut router: ShardRouter,
    ) -> Result<(), EngineError> {
        let (cancel, bucket_count) = (context.cancel, self.layout.buckets);
        let (root, path) = (context.settings.spill_root(), snapshot.to_string());
        let (mut graph, fragment_buckets) = match GraphBuckets::open(&root, &path, bucket_count) {
            Some(graph) => (graph, self.fragment_buckets(lake, folder, numbers, cancel).await?),
            None => {
                let graph_scan = scan_graph_into_buckets(lake, snapshot, folder, bucket_count, cancel)?;
                let fragment_buckets = self.fragment_buckets(lake, folder, numbers, cancel).await;
                let graph_buckets = graph_scan.await??;
                let graph = GraphBuckets::keep(&root, &path, graph_buckets)?;
                (graph, fragment_buckets?)
            }
        };
        let fragment_buckets = finish(fragment_buckets)?;
        let members = member_hashes(&self.memberships);
        let mut joined = Vec::new();
        for (bucket, fragments) in fragment_buckets.into_iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let table = graph.table(bucket)?;
            membership_keys.resolve_in_part(&table, &members, |hash| part_of(hash, bucket_count) == bucket);
            let out = spills(folder, &format!("joined-{bucket}"), 1, false)?.remove(0);
            joined.push(join_bucket(&table, fragments, out)?);
        }
        drop(members);
        self.restrict(&mut router, &membership_keys.seed_components, components);
        self.resolved = Some(membership_keys.resolved);
        merge_in_file_order(joined, |fragment| router.route(fragment))?;
        self.shards = finish(router.shards)?;
        Ok(())
    }

    /// A restricted build keeps only the components its seeds reach (resolved with the graph).
    fn restrict(&self, router: &mut ShardRouter, resolved: &foldhash::HashMap<u128, u32>, components: usize) {
        if let Some(seeds) = &self.seeds {
            router.keep_only(seeds.component_mask(resolved, components));
        }
    }

    /// Every fragment's primary identity, hashed, in the bucket of its hash (in file order).
    async fn fragment_buckets(
        &self,
        lake: &Lake,
        folder: Option<&Path>,
        numbers: &mut NamespaceNumbers,
        cancel: &CancelFlag,
    ) -> Result<Vec<FragmentSpill>, EngineError> {
        let bucket_count = self.layout.buckets;
        let mut buckets = spills(folder, "fragments", bucket_count, false)?;
        self.each_primary(lake, cancel, false, |file, row, primary| {
            let key = primary.hash;
            let fragment = FragmentRow {
                key,
                file,
                row,
                row_id: primary.row_id,
                namespace: numbers.namespace_number(primary.namespace),
            };
            buckets[part_of(key, bucket_count)].push(fragment, None)
        })
        .await?;
        Ok(buckets)
    }
}

/// A scan of the graph into spilled buckets, running.
type GraphScan = tokio::task::JoinHandle<Result<Vec<Option<Spill>>, EngineError>>;

/// Starts scanning the snapshot at `snapshot` into `bucket_count` spilled buckets (each row an
/// identity hash with its component in `file`), on a blocking thread of its own.
fn scan_graph_into_buckets(
    lake: &Lake,
    snapshot: &ObjectPath,
    folder: Option<&Path>,
    bucket_count: usize,
    cancel: &CancelFlag,
) -> Result<GraphScan, EngineError> {
    let mut buckets = spills(folder, "graph", bucket_count, false)?;
    let (handle, lake, snapshot, cancel) = (
        tokio::runtime::Handle::current(),
        lake.clone(),
        snapshot.clone(),
        cancel.clone(),
    );
    Ok(tokio::task::spawn_blocking(move || {
        // Memberships are resolved through the kept buckets at the join, not while scanning.
        let mut no_memberships = MembershipKeys::new(&[], std::iter::empty());
        handle.block_on(scan_graph(&lake, &snapshot, &mut no_memberships, |hash, component| {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let row = FragmentRow {
                key: hash,
                file: component,
                row: 0,
                row_id: 0,
                namespace: 0,
            };
            buckets[part_of(hash, bucket_count)].push(row, None)
        }))?;
        finish(buckets)
    }))
}
