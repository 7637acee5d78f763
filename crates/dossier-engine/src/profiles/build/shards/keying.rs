//! Pass one proper: every fragment's primary identity read once and keyed to its shard.

use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

use super::super::keys::NamespaceNumbers;
use super::super::spill::{FragmentRow, Spill};
use super::component_table::{ComponentLookup, ComponentTable};
use super::graph_buckets::GraphBuckets;
use super::graph_scan::scan_graph;
use super::identity_hash::identity_hash;
use super::layout::part_of;
use super::membership_keys::MembershipKeys;
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

    /// `pdg`: each fragment looked up in the graph as it is read, and sent to the shard of its
    /// component. A graph within one bucket is one sorted table in memory, kept sealed for the
    /// next build of the same version; a larger one is the version's buckets kept on local disk
    /// ([`GraphBuckets`]), scanned from the snapshot by the version's first build. Shards are
    /// contiguous runs of the order in which components are first met in the files, so a
    /// partition reads a region of each file rather than rows scattered through all of them.
    pub(super) async fn key_by_component(
        &mut self,
        lake: &Lake,
        snapshot: &ObjectPath,
        (identities, components): (usize, usize),
        folder: Option<&Path>,
        numbers: &mut NamespaceNumbers,
        context: &KeyingContext<'_>,
    ) -> Result<(), EngineError> {
        let router = ShardRouter::new(spills(folder, "shard", self.layout.shards, false)?, components);
        let mut membership_keys = MembershipKeys::new(&self.memberships, self.seeds.iter().flat_map(Seeds::hashes));
        if self.layout.buckets > 1 {
            let graph = self.kept_graph(lake, snapshot, folder, context).await?;
            membership_keys.resolve_in(&graph, &self.memberships);
            return self
                .route_by_component(lake, &graph, membership_keys, router, (numbers, components, context))
                .await;
        }
        // The identities of evaluated memberships are resolved while scanning, or through the
        // table kept from an earlier build.
        let path = snapshot.to_string();
        let table = match context.tables.get(&path) {
            Some(table) => {
                membership_keys.resolve_in(table.as_ref(), &self.memberships);
                table
            }
            None => {
                let mut in_memory = ComponentTable::with_capacity(identities);
                scan_graph(lake, snapshot, &mut membership_keys, |hash, component| {
                    in_memory.push(hash, component);
                    Ok(())
                })
                .await?;
                in_memory.seal();
                let table = Arc::new(in_memory);
                context.tables.keep(&path, table.clone());
                table
            }
        };
        self.route_by_component(
            lake,
            table.as_ref(),
            membership_keys,
            router,
            (numbers, components, context),
        )
        .await
    }

    /// Every fragment whose primary identity `graph` knows, routed to the shard of its
    /// component (only the components a restricted build's seeds reach).
    async fn route_by_component(
        &mut self,
        lake: &Lake,
        graph: &impl ComponentLookup,
        membership_keys: MembershipKeys,
        mut router: ShardRouter,
        (numbers, components, context): (&mut NamespaceNumbers, usize, &KeyingContext<'_>),
    ) -> Result<(), EngineError> {
        self.restrict(&mut router, &membership_keys.seed_components, components);
        self.resolved = Some(membership_keys.resolved);
        self.each_primary(lake, context.cancel, false, |file, row, primary| {
            let Some(component) = graph.get(primary.hash) else {
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

    /// The kept buckets of the graph version at `snapshot`: opened, or scanned from the snapshot
    /// (on a blocking thread, spilled under `folder`) and kept when this is the version's first
    /// build on this machine.
    async fn kept_graph(
        &self,
        lake: &Lake,
        snapshot: &ObjectPath,
        folder: Option<&Path>,
        context: &KeyingContext<'_>,
    ) -> Result<GraphBuckets, EngineError> {
        let (root, path, buckets) = (context.settings.spill_root(), snapshot.to_string(), self.layout.buckets);
        if let Some(kept) = GraphBuckets::open(&root, &path, buckets)? {
            return Ok(kept);
        }
        let started = std::time::Instant::now();
        let spilled = scan_graph_into_buckets(lake, snapshot, folder, buckets, context.cancel)?.await??;
        let kept = GraphBuckets::keep(&root, &path, spilled)?;
        tracing::info!(
            buckets,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "the graph version was hashed into buckets and kept for the next builds"
        );
        Ok(kept)
    }

    /// A restricted build keeps only the components its seeds reach (resolved with the graph).
    fn restrict(&self, router: &mut ShardRouter, resolved: &foldhash::HashMap<u128, u32>, components: usize) {
        if let Some(seeds) = &self.seeds {
            router.keep_only(seeds.component_mask(resolved, components));
        }
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
