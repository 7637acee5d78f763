//! Pass one with memory bounded by configuration, whatever the population: profiles are split
//! into shards that are keyed, selected and exported one after the other, and the identity graph
//! is joined to the fragments one hash bucket at a time. What does not fit is spilled to local
//! disk ([`super::spill`]).
//!
//! Under `pdg`, every identity of the pinned graph version is hashed (128 bits) with its
//! component number, every fragment's primary identity is hashed the same way, and both go to
//! the bucket of their hash; a bucket's graph part is loaded into a map and its fragments looked
//! up in it. Each fragment then goes to the shard of its component. Under `none` a profile is
//! its primary identity, so fragments go straight to the shard of that identity's hash.
//!
//! A population that fits one shard and one bucket (the configured sizes) never touches disk:
//! the graph is streamed into one map and fragments are keyed as they are read.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use dossier_model::merge_policy::{IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::xdm::SchemaClass;
use dossier_storage::{Lake, MetaStore};

use super::keys::{
    EventScan, KeyedFile, KeyedSources, ProfileFacts, ProfileNumbers, SourceDataset, SourceFile, source_datasets,
    source_files,
};
use super::spill::{FragmentRow, FragmentSpill, Spill, fragment_rows, fragment_schema};
use super::types::{CancelFlag, ExportSettings};
use crate::EngineError;
use crate::identity::snapshot::scan_snapshot;
use crate::identity::store::current_graph_unloaded;
use crate::identity::{Identity, read_file_primaries};
use crate::segments::MembershipOverlay;
use crate::segments::memberships::{ProfileIndex, Row, current_memberships};

/// How pass one splits a population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLayout {
    /// Profiles go to this many shards, each keyed, selected and exported on its own.
    pub shards: usize,
    /// Graph identities and fragments are joined in this many hash buckets, one at a time.
    pub buckets: usize,
}

impl ShardLayout {
    /// The layout for a graph of `identities` identities in `profiles` components.
    pub fn for_population(settings: &ExportSettings, identities: u64, profiles: u64) -> Self {
        let parts = |count: u64, per: usize| count.div_ceil(per.max(1) as u64).max(1) as usize;
        Self {
            // Shards are numbered in two bytes per profile while fragments are routed.
            shards: parts(profiles, settings.shard_profiles).min(usize::from(u16::MAX) - 1),
            buckets: parts(identities, settings.bucket_identities),
        }
    }

    fn spills_to_disk(self) -> bool {
        self.shards > 1 || self.buckets > 1
    }
}

/// 128 bits of an identity: two fixed-seed hashes, so that two identities of one export share a
/// hash with a probability of about n²/2¹²⁹ (nil for any real graph).
fn identity_hash(namespace: &str, id: &str) -> u128 {
    const LOW: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15);
    const HIGH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0xc2b2_ae3d_27d4_eb4f);
    let low = LOW.hash_one((namespace, id));
    let high = HIGH.hash_one((namespace, id));
    (u128::from(high) << 64) | u128::from(low)
}

/// Identity hashes and their components, sorted, with where each run of equal top bits starts:
/// a lookup reads one run of a few entries. Three times smaller than a hash map of the same
/// pairs, which matters most in a fresh process, where every page touched is a page zeroed.
#[derive(Default)]
struct ComponentTable {
    entries: Vec<(u64, u64, u32)>,
    shift: u32,
    starts: Vec<u32>,
}

impl ComponentTable {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            ..Self::default()
        }
    }

    fn push(&mut self, hash: u128, component: u32) {
        self.entries.push(((hash >> 64) as u64, hash as u64, component));
    }

    /// Sorts the entries and indexes them by their top bits (about one run per entry).
    fn seal(&mut self) {
        self.entries.sort_unstable_by_key(|e| (e.0, e.1));
        let bits = (usize::BITS - self.entries.len().leading_zeros()).clamp(1, 30);
        self.shift = 64 - bits;
        let runs = 1usize << bits;
        let mut starts = vec![0u32; runs + 1];
        for entry in &self.entries {
            starts[(entry.0 >> self.shift) as usize + 1] += 1;
        }
        for run in 0..runs {
            starts[run + 1] += starts[run];
        }
        self.starts = starts;
    }

    fn get(&self, hash: u128) -> Option<u32> {
        let (high, low) = ((hash >> 64) as u64, hash as u64);
        let run = (high >> self.shift) as usize;
        let (start, end) = (*self.starts.get(run)? as usize, self.starts[run + 1] as usize);
        self.entries[start..end]
            .iter()
            .find(|e| e.0 == high && e.1 == low)
            .map(|e| e.2)
    }
}

/// Sealed tables of the graph versions exports lately keyed against, by snapshot path. A
/// snapshot never changes once written, and a table exists only for a graph within one bucket,
/// so what is kept is bounded by `bucket_identities`, and saves every later export of the
/// version its scan (about a second per 2 M identities).
static TABLES: std::sync::Mutex<Vec<(String, Arc<ComponentTable>)>> = std::sync::Mutex::new(Vec::new());
/// The current version and the one before it, for exports that pinned it just before a fold.
const TABLES_KEPT: usize = 2;

fn cached_table(path: &str) -> Option<Arc<ComponentTable>> {
    let tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    tables.iter().find(|(p, _)| p == path).map(|(_, table)| table.clone())
}

fn keep_table(path: &str, table: Arc<ComponentTable>) {
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    tables.retain(|(p, _)| p != path);
    tables.push((path.to_owned(), table));
    if tables.len() > TABLES_KEPT {
        tables.remove(0);
    }
}

fn part_of(key: u128, parts: usize) -> usize {
    (key as u64 % parts as u64) as usize
}

/// Where an export's spills go: a folder of its own under the configured root, removed when
/// the export ends however it ends.
fn spill_folder(root: &Path) -> Result<tempfile::TempDir, EngineError> {
    std::fs::create_dir_all(root)?;
    Ok(tempfile::Builder::new().prefix("export-").tempdir_in(root)?)
}

/// One spill per part: on disk under `folder`, or in memory when there is no folder.
fn spills(folder: Option<&Path>, name: &str, parts: usize, key_ids: bool) -> Result<Vec<FragmentSpill>, EngineError> {
    (0..parts)
        .map(|part| {
            let schema = fragment_schema(key_ids);
            let spill = match folder {
                Some(folder) => Spill::disk(schema, folder.join(format!("{name}-{part}.arrows")))?,
                None => Spill::memory(schema),
            };
            Ok(FragmentSpill::new(spill))
        })
        .collect()
}

fn finish(spills: Vec<FragmentSpill>) -> Result<Vec<Option<Spill>>, EngineError> {
    spills.into_iter().map(|s| s.finish().map(Some)).collect()
}

/// Identities of evaluated memberships, to be resolved to their component while the graph is
/// streamed (the graph itself is never held whole).
struct MembershipKeys {
    wanted: HashSet<Identity>,
    hashes: HashSet<u128>,
    resolved: HashMap<Identity, u32>,
}

impl MembershipKeys {
    fn new(segments: &[(String, Vec<Row>)]) -> Self {
        let wanted: HashSet<Identity> = segments
            .iter()
            .flat_map(|(_, rows)| rows.iter().flat_map(|r| r.identities.iter().cloned()))
            .collect();
        let hashes = wanted.iter().map(|i| identity_hash(&i.namespace, &i.id)).collect();
        Self {
            wanted,
            hashes,
            resolved: HashMap::new(),
        }
    }

    fn offer(&mut self, hash: u128, identity: (&str, &str), component: u32) {
        if !self.hashes.contains(&hash) {
            return;
        }
        let identity = Identity::new(identity.0, identity.1);
        if self.wanted.contains(&identity) {
            self.resolved.insert(identity, component);
        }
    }
}

/// Pass one of a whole export, shard by shard: what [`ShardedKeys::build`] spilled, and
/// [`ShardedKeys::shard`] reads back as the [`KeyedSources`] of one shard.
pub struct ShardedKeys {
    pub layout: ShardLayout,
    datasets: Arc<Vec<SourceDataset>>,
    /// Every file pass one read; a spilled row's `file` indexes this.
    files: Vec<SourceFile>,
    /// Per shard: its fragments, keyed by component (`pdg`) or primary identity hash (`none`),
    /// in file order.
    shards: Vec<Option<Spill>>,
    namespaces: Vec<Arc<str>>,
    graph_version: Option<i64>,
    memberships: Vec<(String, Vec<Row>)>,
    /// `pdg`: the component of each identity of an evaluated membership.
    resolved: Option<HashMap<Identity, u32>>,
    _folder: Option<tempfile::TempDir>,
}

/// What building needs besides storage.
pub struct KeyingContext<'a> {
    pub tenant: &'a Tenant,
    pub policy: &'a MergePolicy,
    pub events: EventScan,
    pub settings: &'a ExportSettings,
    pub cancel: &'a CancelFlag,
}

impl ShardedKeys {
    /// Reads every fragment's primary identity once and sends it to its shard.
    pub async fn build(meta: &MetaStore, lake: &Lake, context: &KeyingContext<'_>) -> Result<Self, EngineError> {
        let tenant = context.tenant;
        let graph = match context.policy.identity_graph {
            IdentityGraphType::None => None,
            IdentityGraphType::Pdg => Some(current_graph_unloaded(meta, lake, tenant).await?),
        };
        // Under `none` the graph's size still bounds the number of primary identities.
        let version = match &graph {
            Some(graph) => graph.version.clone(),
            None => meta.latest_identity_graph_version(tenant).await?,
        };
        let (identities, components) = version.as_ref().map_or((0, 0), |v| (v.nodes, v.components));
        let profiles = if graph.is_some() { components } else { identities };
        let layout = ShardLayout::for_population(context.settings, identities.max(0) as u64, profiles.max(0) as u64);
        let datasets = source_datasets(meta, tenant, context.policy).await?;
        let files: Vec<SourceFile> = source_files(meta, tenant, &datasets, graph.as_ref())
            .await?
            .into_iter()
            .filter(|f| context.events.reads(&datasets[f.dataset], f))
            .collect();
        let folder = match layout.spills_to_disk() {
            true => Some(spill_folder(&context.settings.spill_root())?),
            false => None,
        };
        let memberships = current_memberships(meta, lake, tenant).await?;
        let mut keyed = Self {
            layout,
            datasets: Arc::new(datasets),
            files,
            shards: Vec::new(),
            namespaces: Vec::new(),
            graph_version: graph.as_ref().and_then(|g| g.version_number()),
            memberships,
            resolved: None,
            _folder: None,
        };
        let folder_path = folder.as_ref().map(|f| f.path().to_path_buf());
        let mut numbers = ProfileNumbers::default();
        match version.filter(|_| graph.is_some()) {
            Some(version) => {
                let snapshot = ObjectPath::from(version.path.as_str());
                let nodes = (version.nodes.max(0) as usize, version.components.max(0) as usize);
                keyed
                    .key_by_component(
                        lake,
                        &snapshot,
                        nodes,
                        folder_path.as_deref(),
                        &mut numbers,
                        context.cancel,
                    )
                    .await?
            }
            None if graph.is_some() => {
                // No graph yet: nothing was ever committed, so there is nothing to key.
                keyed.shards = finish(spills(None, "shard", layout.shards, false)?)?;
                keyed.files.clear();
            }
            None => {
                keyed
                    .key_by_primary(lake, folder_path.as_deref(), &mut numbers, context.cancel)
                    .await?
            }
        }
        keyed.namespaces = numbers.namespaces().to_vec();
        keyed._folder = folder;
        Ok(keyed)
    }

    /// Reads the primary identities of every file, calling `visit(file, row, identity, rowId)`.
    async fn each_primary(
        &self,
        lake: &Lake,
        cancel: &CancelFlag,
        mut visit: impl FnMut(u32, u32, &Identity, i64) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        for (f, file) in self.files.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let schema = &self.datasets[file.dataset].schema;
            let (primaries, row_ids) = read_file_primaries(lake, &file.location, schema).await?;
            for (row, (primary, row_id)) in primaries.iter().zip(&row_ids).enumerate() {
                if let Some(primary) = primary {
                    visit(f as u32, row as u32, primary, *row_id)?;
                }
            }
        }
        Ok(())
    }

    /// `none`: each fragment goes to the shard of its primary identity's hash.
    async fn key_by_primary(
        &mut self,
        lake: &Lake,
        folder: Option<&Path>,
        numbers: &mut ProfileNumbers,
        cancel: &CancelFlag,
    ) -> Result<(), EngineError> {
        let mut shards = spills(folder, "shard", self.layout.shards, true)?;
        self.each_primary(lake, cancel, |file, row, primary, row_id| {
            let key = identity_hash(&primary.namespace, &primary.id);
            let namespace = numbers.namespace_number(&primary.namespace);
            let fragment = FragmentRow {
                key,
                file,
                row,
                row_id,
                namespace,
            };
            let shard = part_of(key, shards.len());
            shards[shard].push(fragment, Some(&primary.id))
        })
        .await?;
        self.shards = finish(shards)?;
        Ok(())
    }

    /// `pdg`: the graph and the fragments joined (in one table, or bucket by bucket); each
    /// fragment goes to the shard of its component. Shards are contiguous runs of the order in
    /// which components are first met in the files, so a partition reads a region of each file
    /// rather than rows scattered through all of them.
    async fn key_by_component(
        &mut self,
        lake: &Lake,
        snapshot: &ObjectPath,
        (identities, components): (usize, usize),
        folder: Option<&Path>,
        numbers: &mut ProfileNumbers,
        cancel: &CancelFlag,
    ) -> Result<(), EngineError> {
        let bucket_count = self.layout.buckets;
        let mut router = ShardRouter::new(spills(folder, "shard", self.layout.shards, false)?, components);
        let mut membership_keys = MembershipKeys::new(&self.memberships);
        // A graph within one bucket is kept sealed for the next export of the same version,
        // unless this one must also resolve evaluated memberships while scanning.
        let path = snapshot.to_string();
        let cached = match bucket_count == 1 && self.memberships.is_empty() {
            true => cached_table(&path),
            false => None,
        };
        if bucket_count > 1 {
            return self
                .key_in_buckets(lake, snapshot, folder, numbers, cancel, membership_keys, router)
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
        self.resolved = Some(membership_keys.resolved);
        let table = match cached {
            Some(table) => table,
            None => {
                in_memory.seal();
                let table = Arc::new(in_memory);
                keep_table(&path, table.clone());
                table
            }
        };
        self.each_primary(lake, cancel, |file, row, primary, row_id| {
            let Some(component) = table.get(identity_hash(&primary.namespace, &primary.id)) else {
                return Ok(());
            };
            let fragment = FragmentRow {
                key: u128::from(component),
                file,
                row,
                row_id,
                namespace: numbers.namespace_number(&primary.namespace),
            };
            router.route(fragment)
        })
        .await?;
        self.shards = finish(router.shards)?;
        Ok(())
    }

    /// [`Self::key_by_component`] for a graph larger than one bucket: the graph and the fragments
    /// hashed into buckets on disk (the graph on a thread of its own, so both cores work: the two
    /// scans are independent until the join), joined bucket by bucket, merged back into file
    /// order.
    #[allow(clippy::too_many_arguments)]
    async fn key_in_buckets(
        &mut self,
        lake: &Lake,
        snapshot: &ObjectPath,
        folder: Option<&Path>,
        numbers: &mut ProfileNumbers,
        cancel: &CancelFlag,
        mut membership_keys: MembershipKeys,
        mut router: ShardRouter,
    ) -> Result<(), EngineError> {
        let bucket_count = self.layout.buckets;
        let graph_buckets = spills(folder, "graph", bucket_count, false)?;
        let (handle, lake_clone, snapshot_clone) = (tokio::runtime::Handle::current(), lake.clone(), snapshot.clone());
        let graph_cancel = cancel.clone();
        let graph_scan = tokio::task::spawn_blocking(move || {
            let mut graph_buckets = graph_buckets;
            handle
                .block_on(scan_graph(
                    &lake_clone,
                    &snapshot_clone,
                    &mut membership_keys,
                    |hash, component| {
                        if graph_cancel.is_cancelled() {
                            return Err(EngineError::Cancelled);
                        }
                        let row = FragmentRow {
                            key: hash,
                            file: component,
                            row: 0,
                            row_id: 0,
                            namespace: 0,
                        };
                        graph_buckets[part_of(hash, bucket_count)].push(row, None)
                    },
                ))
                .map(|()| (graph_buckets, membership_keys))
        });
        let fragment_buckets = self.fragment_buckets(lake, folder, numbers, cancel).await;
        let (graph_buckets, membership_keys) = graph_scan.await??;
        let fragment_buckets = finish(fragment_buckets?)?;
        self.resolved = Some(membership_keys.resolved);
        let graph_buckets = finish(graph_buckets)?;
        let mut joined = Vec::new();
        for (bucket, (graph, fragments)) in graph_buckets.into_iter().zip(fragment_buckets).enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let out = spills(folder, &format!("joined-{bucket}"), 1, false)?.remove(0);
            joined.push(join_bucket(graph, fragments, out)?);
        }
        merge_in_file_order(joined, |fragment| router.route(fragment))?;
        self.shards = finish(router.shards)?;
        Ok(())
    }

    /// Every fragment's primary identity, hashed, in the bucket of its hash (in file order).
    async fn fragment_buckets(
        &self,
        lake: &Lake,
        folder: Option<&Path>,
        numbers: &mut ProfileNumbers,
        cancel: &CancelFlag,
    ) -> Result<Vec<FragmentSpill>, EngineError> {
        let bucket_count = self.layout.buckets;
        let mut buckets = spills(folder, "fragments", bucket_count, false)?;
        self.each_primary(lake, cancel, |file, row, primary, row_id| {
            let key = identity_hash(&primary.namespace, &primary.id);
            let fragment = FragmentRow {
                key,
                file,
                row,
                row_id,
                namespace: numbers.namespace_number(&primary.namespace),
            };
            buckets[part_of(key, bucket_count)].push(fragment, None)
        })
        .await?;
        Ok(buckets)
    }

    /// The keyed sources of shard `index` (each shard can be taken once), and the evaluated
    /// memberships of its profiles.
    pub fn shard(&mut self, index: usize) -> Result<(KeyedSources, MembershipOverlay), EngineError> {
        let spill = self.shards[index]
            .take()
            .ok_or_else(|| EngineError::Invalid(format!("export shard {index} was already read")))?;
        let mut files: Vec<KeyedFile> = self.files.iter().cloned().map(KeyedFile::new).collect();
        let mut numbers: foldhash::HashMap<u128, u32> = foldhash::HashMap::default();
        let mut profiles: Vec<Identity> = Vec::new();
        let mut facts: Vec<ProfileFacts> = Vec::new();
        for batch in spill.into_batches()? {
            let batch = batch?;
            let (rows, key_ids) = fragment_rows(&batch);
            for (i, row) in rows.iter().enumerate() {
                let profile = *numbers.entry(row.key).or_insert_with(|| {
                    // `none`: the profile's key is its primary identity. `pdg` needs no key: the
                    // evaluated memberships find their profiles by component.
                    let key = match key_ids {
                        Some(ids) => Identity::new(self.namespaces[row.namespace as usize].as_ref(), ids.value(i)),
                        None => Identity::new("", ""),
                    };
                    profiles.push(key);
                    facts.push(ProfileFacts::default());
                    (profiles.len() - 1) as u32
                });
                let keyed = &mut files[row.file as usize];
                keyed.push(row.row, profile, row.row_id);
                let is_record = self.datasets[keyed.file.dataset].schema.class == SchemaClass::Profile;
                let namespace = &self.namespaces[row.namespace as usize];
                facts[profile as usize].observe(is_record, &keyed.file, row.row_id, || namespace.clone());
            }
        }
        let (mut records, mut events) = (Vec::new(), Vec::new());
        for mut keyed in files {
            sort_by_row(&mut keyed);
            match self.datasets[keyed.file.dataset].schema.class {
                SchemaClass::Profile => records.push(keyed),
                _ => events.push(keyed),
            }
        }
        let overlay = if self.memberships.is_empty() {
            MembershipOverlay::default()
        } else {
            let index = match &self.resolved {
                Some(resolved) => {
                    ProfileIndex::by_component(resolved, numbers.iter().map(|(&c, &p)| (c as u32, p)).collect())
                }
                None => ProfileIndex::new(&profiles, None),
            };
            MembershipOverlay::of_segments(&self.memberships, &index, profiles.len())
        };
        let sources = KeyedSources {
            datasets: self.datasets.clone(),
            records,
            events,
            profiles,
            facts,
            components: None,
        };
        Ok((sources, overlay))
    }

    pub fn graph_version(&self) -> Option<i64> {
        self.graph_version
    }

    pub fn datasets(&self) -> &[SourceDataset] {
        &self.datasets
    }
}

/// Streams the snapshot at `snapshot`: `sink(hash, component)` for every identity (components
/// numbered in file order, where a component's rows are contiguous), and the components of the
/// evaluated memberships' identities into `membership_keys`.
async fn scan_graph(
    lake: &Lake,
    snapshot: &ObjectPath,
    membership_keys: &mut MembershipKeys,
    mut sink: impl FnMut(u128, u32) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut component: u32 = 0;
    let mut previous_key: Option<(String, String)> = None;
    let mut failure = None;
    scan_snapshot(lake, snapshot, |namespace, id, key_namespace, key_id| {
        if failure.is_some() {
            return;
        }
        let same = previous_key
            .as_ref()
            .is_some_and(|(n, i)| n == key_namespace && i == key_id);
        if !same {
            if previous_key.is_some() {
                component += 1;
            }
            previous_key = Some((key_namespace.to_owned(), key_id.to_owned()));
        }
        let hash = identity_hash(namespace, id);
        membership_keys.offer(hash, (namespace, id), component);
        if let Err(error) = sink(hash, component) {
            failure = Some(error);
        }
    })
    .await?;
    failure.map_or(Ok(()), Err)
}

/// Joins one bucket: the graph's identities of the bucket in a table, its fragments looked up;
/// what is found goes to `out` keyed by component, still in file order.
fn join_bucket(graph: Option<Spill>, fragments: Option<Spill>, mut out: FragmentSpill) -> Result<Spill, EngineError> {
    let (Some(graph), Some(fragments)) = (graph, fragments) else {
        return out.finish();
    };
    let mut components = ComponentTable::default();
    for batch in graph.into_batches()? {
        for row in fragment_rows(&batch?).0 {
            components.push(row.key, row.file);
        }
    }
    components.seal();
    for batch in fragments.into_batches()? {
        for row in fragment_rows(&batch?).0 {
            let Some(component) = components.get(row.key) else {
                continue;
            };
            out.push(
                FragmentRow {
                    key: u128::from(component),
                    ..row
                },
                None,
            )?;
        }
    }
    out.finish()
}

/// Calls `emit` with the rows of every joined bucket in file order (each bucket is in file order
/// already; this merges them).
fn merge_in_file_order(
    joined: Vec<Spill>,
    mut emit: impl FnMut(FragmentRow) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    struct Cursor {
        batches: Box<dyn Iterator<Item = Result<arrow::array::RecordBatch, EngineError>>>,
        rows: Vec<FragmentRow>,
        next: usize,
    }
    impl Cursor {
        /// The current row, reading the next batch when this one is done.
        fn peek(&mut self) -> Result<Option<FragmentRow>, EngineError> {
            while self.next == self.rows.len() {
                match self.batches.next() {
                    Some(batch) => {
                        self.rows = fragment_rows(&batch?).0;
                        self.next = 0;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some(self.rows[self.next]))
        }
    }
    let mut cursors = Vec::new();
    let mut heap = BinaryHeap::new();
    for spill in joined {
        let mut cursor = Cursor {
            batches: spill.into_batches()?,
            rows: Vec::new(),
            next: 0,
        };
        if let Some(row) = cursor.peek()? {
            heap.push(Reverse((row.file, row.row, cursors.len())));
        }
        cursors.push(cursor);
    }
    while let Some(Reverse((_, _, index))) = heap.pop() {
        let cursor = &mut cursors[index];
        let row = cursor.rows[cursor.next];
        cursor.next += 1;
        emit(row)?;
        if let Some(next) = cursor.peek()? {
            heap.push(Reverse((next.file, next.row, index)));
        }
    }
    Ok(())
}

/// Sends each fragment to the shard of its component. Components are given shards in the order
/// they are first met (fragments arrive in file order), a shard's worth at a time: one byte...
/// two per component is all that is kept of the whole population.
struct ShardRouter {
    shards: Vec<FragmentSpill>,
    shard_of: Vec<u16>,
    per_shard: usize,
    assigned: usize,
}

impl ShardRouter {
    fn new(shards: Vec<FragmentSpill>, components: usize) -> Self {
        let per_shard = components.div_ceil(shards.len()).max(1);
        Self {
            shard_of: Vec::with_capacity(if shards.len() > 1 { components } else { 0 }),
            shards,
            per_shard,
            assigned: 0,
        }
    }

    fn route(&mut self, fragment: FragmentRow) -> Result<(), EngineError> {
        if self.shards.len() == 1 {
            return self.shards[0].push(fragment, None);
        }
        let component = fragment.key as usize;
        if component >= self.shard_of.len() {
            self.shard_of.resize(component + 1, u16::MAX);
        }
        if self.shard_of[component] == u16::MAX {
            let shard = (self.assigned / self.per_shard).min(self.shards.len() - 1);
            self.shard_of[component] = shard as u16;
            self.assigned += 1;
        }
        let shard = self.shard_of[component] as usize;
        self.shards[shard].push(fragment, None)
    }
}

/// Puts a file's entries in row order (a file's rows arrive bucket by bucket when the graph is
/// joined in several), as row selections need.
fn sort_by_row(keyed: &mut KeyedFile) {
    if keyed.rows.is_sorted() {
        return;
    }
    let mut entries: Vec<(u32, u32, i64)> = keyed
        .rows
        .iter()
        .zip(&keyed.profiles)
        .zip(&keyed.row_ids)
        .map(|((&r, &p), &id)| (r, p, id))
        .collect();
    entries.sort_unstable_by_key(|e| e.0);
    keyed.rows = entries.iter().map(|e| e.0).collect();
    keyed.profiles = entries.iter().map(|e| e.1).collect();
    keyed.row_ids = entries.iter().map(|e| e.2).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_population_within_the_configured_sizes_is_one_shard_and_one_bucket() {
        let settings = ExportSettings::default();
        let layout = ShardLayout::for_population(&settings, 3_650_000, 1_360_000);
        assert_eq!(layout, ShardLayout { shards: 1, buckets: 1 });
        assert!(!layout.spills_to_disk());
    }

    #[test]
    fn a_larger_population_is_split_by_the_configured_sizes() {
        let settings = ExportSettings {
            shard_profiles: 1000,
            bucket_identities: 3000,
            ..ExportSettings::default()
        };
        let layout = ShardLayout::for_population(&settings, 9001, 2500);
        assert_eq!(layout, ShardLayout { shards: 3, buckets: 4 });
        assert!(layout.spills_to_disk());
        assert_eq!(
            ShardLayout::for_population(&settings, 0, 0),
            ShardLayout { shards: 1, buckets: 1 }
        );
    }

    #[test]
    fn a_component_table_finds_every_identity_it_holds_and_nothing_else() {
        for count in [0u32, 1, 2, 3, 1000, 70_000] {
            let mut table = ComponentTable::default();
            for i in 0..count {
                table.push(identity_hash("ECID", &i.to_string()), i * 3);
            }
            table.seal();
            for i in 0..count {
                assert_eq!(table.get(identity_hash("ECID", &i.to_string())), Some(i * 3));
            }
            assert_eq!(table.get(identity_hash("ECID", "absent")), None);
            assert_eq!(table.get(identity_hash("Email", "0")), None);
        }
    }

    #[test]
    fn identity_hashes_tell_namespace_and_id_apart() {
        assert_ne!(identity_hash("Email", "a"), identity_hash("Emaila", ""));
        assert_ne!(identity_hash("Email", "a"), identity_hash("email", "a"));
        assert_eq!(identity_hash("Email", "a"), identity_hash("Email", "a"));
    }

    #[test]
    fn entries_arriving_out_of_row_order_are_sorted_with_their_profiles() {
        let file = SourceFile {
            dataset: 0,
            location: ObjectPath::from("f.parquet"),
            ingested: 0,
            batch_seq: 0,
        };
        let mut keyed = KeyedFile::new(file);
        keyed.push(5, 1, 50);
        keyed.push(2, 0, 20);
        keyed.push(9, 2, 90);
        sort_by_row(&mut keyed);
        assert_eq!(keyed.rows, vec![2, 5, 9]);
        assert_eq!(keyed.profiles, vec![0, 1, 2]);
        assert_eq!(keyed.row_ids, vec![20, 50, 90]);
    }
}
