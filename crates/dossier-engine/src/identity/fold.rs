//! Folding batches into the next version of the graph without loading the graph.
//!
//! The fold holds in memory only what the batches touch: their identities, linked, plus the
//! components of the previous version that share an identity with them; and it reads and
//! writes only the buckets (see [`super::buckets`]) those are in:
//!
//! 1. the identity buckets of the batches' identities give the keys of the components they are
//!    in (the touched components);
//! 2. the component buckets of those keys give the touched components' members, linked into
//!    the batches' union-find (a batch whose identities reach more than half of the identity
//!    buckets skips step 1: one pass over every component bucket finds and links its touched
//!    components, as the single-file fold did, reading half the files);
//! 3. the union-find's components (touched ones, merged as the batches say, and the batches'
//!    new identities) are written: each component bucket holding a touched or a new component
//!    is rewritten as its previous file without the touched components, merged in order with
//!    the new rows; each identity bucket holding one of the union-find's identities likewise,
//!    the buckets shared between two threads. Every other bucket is the previous version's
//!    file, by reference.
//!
//! Memory and time grow with the batches and the buckets they reach, not with the graph.
//!
//! An earlier release's version (one file, sorted by component) is converted by the first fold
//! after it: two streaming passes over it, one to find and link the touched components, one to
//! write every bucket from its untouched rows merged with the new ones.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

use super::buckets::{BucketFile, BucketKind, BucketSink, BucketedWriter, Manifest, bucket_location, bucket_of};
use super::snapshot::{
    ROWS_PER_BATCH, SnapshotCounts, scan_file_until, snapshot_batches, snapshot_columns, snapshot_schema,
};
use super::union_find::{Identity, IdentityGraph};
use crate::EngineError;

/// What one fold wrote and what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldStats {
    pub counts: SnapshotCounts,
    /// Identities the fold held in memory: the batches' own plus every member of the previous
    /// version's components they touched. The graph's other identities are only streamed.
    pub loaded_identities: usize,
    /// Components of the previous version the batches touched.
    pub touched_components: usize,
    /// Bucket files the fold read (component and identity buckets; 1 for a converted file).
    pub read_files: usize,
    /// Bucket files the fold wrote; the version's other buckets are the previous one's files.
    pub written_files: usize,
}

/// Writes the next version, its manifest at `next`: the version at `previous` (a version row's
/// path; none for a first version) with the identities linked in `batches` folded in.
/// `batches` holds only the new batches' links; the previous version's components they touch
/// are loaded into it here. `buckets` is the bucket count of a first version (or of the
/// conversion of a single-file one); later versions keep their predecessor's.
pub async fn fold_into_version(
    lake: &Lake,
    previous: Option<&str>,
    next: &ObjectPath,
    batches: IdentityGraph,
    buckets: u32,
) -> Result<(Manifest, FoldStats), EngineError> {
    match previous {
        None => fold_buckets(lake, Manifest::empty(buckets), next, batches).await,
        Some(path) if Manifest::is_manifest(path) => {
            let manifest = Manifest::read(lake, &ObjectPath::from(path)).await?;
            fold_buckets(lake, manifest, next, batches).await
        }
        Some(path) => convert_single_file(lake, &ObjectPath::from(path), next, batches, buckets).await,
    }
}

/// Steps 1 and 2: links into `graph` every component of `manifest` that holds one of its
/// identities; gives the keys of those components and the files read.
async fn link_touched_buckets(
    lake: &Lake,
    manifest: &Manifest,
    graph: &mut IdentityGraph,
) -> Result<(IdentitySet, usize), EngineError> {
    let buckets = manifest.buckets;
    let identity_buckets: BTreeSet<u32> = (0..graph.len() as u32)
        .map(|node| {
            let (namespace, id) = graph.identity_of(node);
            bucket_of(namespace, id, buckets)
        })
        .collect();
    let mut touched = IdentitySet::default();
    let mut read = 0;
    if identity_buckets.len() as u32 > buckets / 2 {
        // A batch spread over most of the graph: one pass over every component bucket finds
        // and links the touched components, where looking them up would read most identity
        // buckets and then most component buckets.
        for file in (0..buckets).filter_map(|b| manifest.file(BucketKind::Component, b)) {
            read += 1;
            link_touched(lake, &file, graph, &mut touched).await?;
        }
        return Ok((touched, read));
    }
    for file in identity_buckets
        .iter()
        .filter_map(|&b| manifest.file(BucketKind::Identity, b))
    {
        read += 1;
        scan_file_until(lake, &file, |namespace, id, key_namespace, key_id| {
            if graph.contains(namespace, id) && !touched.contains(key_namespace, key_id) {
                touched.insert(Identity::new(key_namespace, key_id));
            }
            ControlFlow::Continue(())
        })
        .await?;
    }
    let component_buckets: BTreeSet<u32> = touched
        .identities
        .iter()
        .map(|key| bucket_of(&key.namespace, &key.id, buckets))
        .collect();
    for file in component_buckets
        .iter()
        .filter_map(|&b| manifest.file(BucketKind::Component, b))
    {
        read += 1;
        scan_file_until(lake, &file, |namespace, id, key_namespace, key_id| {
            if touched.contains(key_namespace, key_id) {
                graph.link_borrowed([(key_namespace, key_id), (namespace, id)]);
            }
            ControlFlow::Continue(())
        })
        .await?;
    }
    Ok((touched, read))
}

/// The (node, key node) rows of the union-find grouped by the bucket of `kind` they go to, each
/// group still sorted by key, then identity.
fn rows_by_bucket(
    graph: &IdentityGraph,
    rows: &[(u32, u32)],
    kind: BucketKind,
    buckets: u32,
) -> BTreeMap<u32, Vec<(u32, u32)>> {
    let mut grouped: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    for &(node, key) in rows {
        let (namespace, id) = graph.identity_of(match kind {
            BucketKind::Component => key,
            BucketKind::Identity => node,
        });
        grouped
            .entry(bucket_of(namespace, id, buckets))
            .or_default()
            .push((node, key));
    }
    grouped
}

/// A bucketed fold: reads the buckets the batches touch, rewrites the ones that change, and
/// writes the manifest of the next version.
async fn fold_buckets(
    lake: &Lake,
    mut manifest: Manifest,
    next: &ObjectPath,
    mut graph: IdentityGraph,
) -> Result<(Manifest, FoldStats), EngineError> {
    let buckets = manifest.buckets;
    let (touched, read_files) = link_touched_buckets(lake, &manifest, &mut graph).await?;
    let rows = graph.component_nodes();
    let mut by_component = rows_by_bucket(&graph, &rows, BucketKind::Component, buckets);
    // A bucket that held a touched component changes even when the merged one lands elsewhere.
    for key in &touched.identities {
        by_component
            .entry(bucket_of(&key.namespace, &key.id, buckets))
            .or_default();
    }
    let by_identity = rows_by_bucket(&graph, &rows, BucketKind::Identity, buckets);
    let mut writes = Vec::new();
    for (kind, grouped) in [
        (BucketKind::Component, by_component),
        (BucketKind::Identity, by_identity),
    ] {
        for (bucket, rows) in grouped {
            let previous = manifest.file(kind, bucket);
            writes.push(BucketWrite {
                kind,
                bucket,
                previous,
                rows,
            });
        }
    }
    let (loaded_identities, touched_components) = (graph.len(), touched.len());
    let shared = Arc::new(Folded { graph, touched });
    let mut written_files = 0;
    for (kind, bucket, file) in write_buckets(lake, next, &shared, writes).await? {
        written_files += usize::from(file.is_some());
        manifest.set(kind, bucket, file);
    }
    manifest.write(lake, next).await?;
    let stats = FoldStats {
        counts: manifest.counts(),
        loaded_identities,
        touched_components,
        read_files,
        written_files,
    };
    Ok((manifest, stats))
}

/// What the bucket writers share: the union-find and the keys of the components it replaces.
struct Folded {
    graph: IdentityGraph,
    touched: IdentitySet,
}

/// One bucket file of the next version: the previous version's file merged with `rows`.
struct BucketWrite {
    kind: BucketKind,
    bucket: u32,
    previous: Option<ObjectPath>,
    rows: Vec<(u32, u32)>,
}

/// A bucket written: its kind, number, and file (none when it has no rows).
type WrittenBucket = (BucketKind, u32, Option<BucketFile>);

/// Writes `writes` on two blocking threads (each bucket is read, merged and encoded on one
/// core; a fold that touches most buckets writes hundreds of them), driving their I/O through
/// the caller's runtime.
async fn write_buckets(
    lake: &Lake,
    next: &ObjectPath,
    folded: &Arc<Folded>,
    writes: Vec<BucketWrite>,
) -> Result<Vec<WrittenBucket>, EngineError> {
    const THREADS: usize = 2;
    let mut shares: Vec<Vec<BucketWrite>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (n, write) in writes.into_iter().enumerate() {
        shares[n % THREADS].push(write);
    }
    let handle = tokio::runtime::Handle::current();
    let threads: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (lake, next, folded, handle) = (lake.clone(), next.clone(), folded.clone(), handle.clone());
            tokio::task::spawn_blocking(move || {
                handle.block_on(async move {
                    let mut written = Vec::with_capacity(share.len());
                    for write in share {
                        written.push(write_bucket(&lake, &next, &folded, write).await?);
                    }
                    Ok::<_, EngineError>(written)
                })
            })
        })
        .collect();
    let mut written = Vec::new();
    for thread in threads {
        written.extend(thread.await??);
    }
    Ok(written)
}

async fn write_bucket(
    lake: &Lake,
    next: &ObjectPath,
    folded: &Folded,
    write: BucketWrite,
) -> Result<WrittenBucket, EngineError> {
    let BucketWrite {
        kind,
        bucket,
        previous,
        rows,
    } = write;
    let mut sink = BucketSink::new(lake, bucket_location(next, kind, bucket));
    // The rows the union-find rewrites: its components whole, and its identities.
    let replaced = |row: [&str; 4]| match kind {
        BucketKind::Component => folded.touched.contains(row[2], row[3]),
        BucketKind::Identity => folded.graph.contains(row[0], row[1]),
    };
    write_merged(lake, previous.as_ref(), &mut sink, replaced, &folded.graph, &rows).await?;
    Ok((kind, bucket, sink.finish().await?))
}

/// The first fold after an earlier release's single-file version at `previous`: today's two
/// passes over it (find and link the touched components; write the rest merged with the new
/// rows), written into `buckets` buckets.
async fn convert_single_file(
    lake: &Lake,
    previous: &ObjectPath,
    next: &ObjectPath,
    mut graph: IdentityGraph,
    buckets: u32,
) -> Result<(Manifest, FoldStats), EngineError> {
    let mut touched = IdentitySet::default();
    link_touched(lake, previous, &mut graph, &mut touched).await?;
    let rows = graph.component_nodes();
    let mut writer = BucketedWriter::create(lake, next, buckets);
    let replaced = |row: [&str; 4]| touched.contains(row[2], row[3]);
    write_merged(lake, Some(previous), &mut writer, replaced, &graph, &rows).await?;
    let manifest = writer.finish(lake).await?;
    let written_files = manifest.paths().count();
    let stats = FoldStats {
        counts: manifest.counts(),
        loaded_identities: graph.len(),
        touched_components: touched.len(),
        read_files: 1,
        written_files,
    };
    Ok((manifest, stats))
}

/// A hash of an identity from borrowed strings: every row of the previous version is checked
/// against the batches' identities (or the touched keys) through it, and an [`Identity`] is
/// built only on a hit.
fn identity_hash(namespace: &str, id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x1d_f01d).hash_one((namespace, id))
}

/// A set of identities probed with borrowed strings.
#[derive(Default)]
struct IdentitySet {
    hashes: foldhash::HashSet<u64>,
    identities: HashSet<Identity>,
}

impl IdentitySet {
    fn insert(&mut self, identity: Identity) {
        self.hashes.insert(identity_hash(&identity.namespace, &identity.id));
        self.identities.insert(identity);
    }

    fn contains(&self, namespace: &str, id: &str) -> bool {
        self.hashes.contains(&identity_hash(namespace, id)) && self.identities.contains(&Identity::new(namespace, id))
    }

    fn len(&self) -> usize {
        self.identities.len()
    }
}

/// The rows of one component of the previous version as they are read: its key and members,
/// in one reused text buffer so that reading a run that turns out untouched allocates nothing.
#[derive(Default)]
struct Run {
    key_namespace: String,
    key_id: String,
    text: String,
    /// (namespace start, id start, id end) of each member in `text`.
    members: Vec<(usize, usize, usize)>,
    touched: bool,
}

impl Run {
    fn has_key(&self, namespace: &str, id: &str) -> bool {
        !self.members.is_empty() && self.key_namespace == namespace && self.key_id == id
    }

    fn start(&mut self, namespace: &str, id: &str) {
        self.key_namespace.clear();
        self.key_namespace.push_str(namespace);
        self.key_id.clear();
        self.key_id.push_str(id);
        self.text.clear();
        self.members.clear();
        self.touched = false;
    }

    fn push(&mut self, namespace: &str, id: &str) {
        let start = self.text.len();
        self.text.push_str(namespace);
        let middle = self.text.len();
        self.text.push_str(id);
        self.members.push((start, middle, self.text.len()));
    }

    /// When the run holds an identity of the batches: links its members to its key in `graph`
    /// (so the component joins whatever the batches linked to it) and records its key.
    fn close(&self, graph: &mut IdentityGraph, touched: &mut IdentitySet) {
        if !self.touched {
            return;
        }
        let key = (self.key_namespace.as_str(), self.key_id.as_str());
        for &(start, middle, end) in &self.members {
            graph.link_borrowed([key, (&self.text[start..middle], &self.text[middle..end])]);
        }
        touched.insert(Identity::new(key.0, key.1));
    }
}

/// Pass one over a file sorted by component (a single-file version, or a component bucket):
/// links into `graph` every component of `previous` that holds one of its identities, and adds
/// the keys of those components to `touched`.
async fn link_touched(
    lake: &Lake,
    previous: &ObjectPath,
    graph: &mut IdentityGraph,
    touched: &mut IdentitySet,
) -> Result<(), EngineError> {
    let mut run = Run::default();
    let mut stream = snapshot_batches(lake, previous).await?;
    while let Some(rows) = stream.next().await {
        let rows = rows?;
        let [namespace, id, key_namespace, key_id] = snapshot_columns(&rows)?;
        for row in 0..rows.num_rows() {
            let (key_namespace, key_id) = (key_namespace.value(row), key_id.value(row));
            if !run.has_key(key_namespace, key_id) {
                run.close(graph, touched);
                run.start(key_namespace, key_id);
            }
            let (namespace, id) = (namespace.value(row), id.value(row));
            run.push(namespace, id);
            // Every identity is in one run, so the only identities of `graph` a row can be are
            // the batches' own: the runs linked so far hold other identities.
            run.touched = run.touched || graph.contains(namespace, id);
        }
    }
    run.close(graph, touched);
    Ok(())
}

/// Rows of the next snapshot waiting to be written.
struct PendingRows {
    columns: [StringBuilder; 4],
    len: usize,
}

impl PendingRows {
    fn new() -> Self {
        Self {
            columns: std::array::from_fn(|_| StringBuilder::new()),
            len: 0,
        }
    }

    fn push(&mut self, row: [&str; 4]) {
        for (column, value) in self.columns.iter_mut().zip(row) {
            column.append_value(value);
        }
        self.len += 1;
    }

    fn push_node(&mut self, graph: &IdentityGraph, (node, key): (u32, u32)) {
        let ((namespace, id), (key_namespace, key_id)) = (graph.identity_of(node), graph.identity_of(key));
        self.push([namespace, id, key_namespace, key_id]);
    }

    async fn write(&mut self, sink: &mut impl RowSink) -> Result<(), EngineError> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        self.len = 0;
        sink.write_rows(&RecordBatch::try_new(snapshot_schema(), columns)?)
            .await
    }
}

/// Whether the new row `(identity, key)` comes before the previous version's row `row`
/// (namespace, id, key namespace, key id) in the snapshot's order: key, then identity.
fn comes_before(graph: &IdentityGraph, (node, key): (u32, u32), row: [&str; 4]) -> bool {
    let ((namespace, id), (key_namespace, key_id)) = (graph.identity_of(node), graph.identity_of(key));
    (key_namespace, key_id, namespace, id) < (row[2], row[3], row[0], row[1])
}

/// Where merged rows go: one bucket file, or every bucket of a version.
trait RowSink {
    async fn write_rows(&mut self, rows: &RecordBatch) -> Result<(), EngineError>;
}

impl RowSink for BucketSink {
    async fn write_rows(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        self.write(rows).await
    }
}

impl RowSink for BucketedWriter {
    async fn write_rows(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        self.write(rows).await
    }
}

/// Writes into `sink` the rows of the file `previous` that are not `replaced`, merged in order
/// with `rows`, the (node, key node) pairs of `graph` sorted by key, then identity.
async fn write_merged(
    lake: &Lake,
    previous: Option<&ObjectPath>,
    sink: &mut impl RowSink,
    replaced: impl Fn([&str; 4]) -> bool,
    graph: &IdentityGraph,
    rows: &[(u32, u32)],
) -> Result<(), EngineError> {
    let mut out = PendingRows::new();
    let mut next_new = 0;
    if let Some(previous) = previous {
        let mut stream = snapshot_batches(lake, previous).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let [namespace, id, row_key_namespace, row_key_id] = snapshot_columns(&batch)?;
            for row in 0..batch.num_rows() {
                let row = [namespace, id, row_key_namespace, row_key_id].map(|c| c.value(row));
                if replaced(row) {
                    continue;
                }
                while next_new < rows.len() && comes_before(graph, rows[next_new], row) {
                    out.push_node(graph, rows[next_new]);
                    next_new += 1;
                }
                out.push(row);
            }
            if out.len >= ROWS_PER_BATCH {
                out.write(sink).await?;
            }
        }
    }
    for &new in &rows[next_new..] {
        out.push_node(graph, new);
        if out.len >= ROWS_PER_BATCH {
            out.write(sink).await?;
        }
    }
    if out.len > 0 {
        out.write(sink).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use object_store::memory::InMemory;
    use proptest::prelude::*;

    use super::*;
    use crate::identity::snapshot::{read_snapshot, write_snapshot};

    /// Few buckets, so that buckets hold several components and folds share files.
    const BUCKETS: u32 = 8;

    fn memory_lake() -> Lake {
        Lake::with_store(Arc::new(InMemory::new()))
    }

    fn linked(fragments: &[Vec<Identity>]) -> IdentityGraph {
        let mut graph = IdentityGraph::new();
        for fragment in fragments {
            graph.link(fragment);
        }
        graph
    }

    async fn rows_of(lake: &Lake, location: &ObjectPath) -> Vec<(Identity, Identity)> {
        let mut rows = Vec::new();
        read_snapshot(lake, location, |identity, key| rows.push((identity, key.clone())))
            .await
            .unwrap();
        rows
    }

    /// The rows of every bucket of `manifest`, by kind and bucket (an empty bucket: none).
    async fn bucket_rows(lake: &Lake, manifest: &Manifest) -> Vec<Vec<(Identity, Identity)>> {
        let mut buckets = Vec::new();
        for kind in [BucketKind::Component, BucketKind::Identity] {
            for bucket in 0..manifest.buckets {
                let rows = match manifest.file(kind, bucket) {
                    Some(file) => rows_of(lake, &file).await,
                    None => Vec::new(),
                };
                buckets.push(rows);
            }
        }
        buckets
    }

    async fn fold(
        lake: &Lake,
        previous: Option<&ObjectPath>,
        next: &ObjectPath,
        graph: IdentityGraph,
    ) -> (Manifest, FoldStats) {
        fold_into_version(lake, previous.map(|p| p.as_ref()), next, graph, BUCKETS)
            .await
            .unwrap()
    }

    /// Folds `batches` one by one into versions 1, 2, ...; gives the last version's manifest,
    /// its location and what each fold did.
    async fn fold_each(lake: &Lake, batches: &[Vec<Vec<Identity>>]) -> (Manifest, ObjectPath, Vec<FoldStats>) {
        let mut previous: Option<(Manifest, ObjectPath)> = None;
        let mut stats = Vec::new();
        for (n, batch) in batches.iter().enumerate() {
            let next = ObjectPath::from(format!("graph/v{}.json", n + 1));
            let (manifest, folded) = fold(lake, previous.as_ref().map(|p| &p.1), &next, linked(batch)).await;
            stats.push(folded);
            previous = Some((manifest, next));
        }
        let (manifest, location) = previous.unwrap();
        (manifest, location, stats)
    }

    fn identities(batch: &[Vec<u16>]) -> Vec<Vec<Identity>> {
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

    /// Every row of each bucket belongs there (by its key in a component bucket, its identity
    /// in an identity bucket), and each bucket is sorted by key, then identity.
    fn assert_well_bucketed(manifest: &Manifest, buckets: &[Vec<(Identity, Identity)>]) {
        for (n, rows) in buckets.iter().enumerate() {
            let (kind_is_component, bucket) = (n < manifest.buckets as usize, n as u32 % manifest.buckets);
            for (identity, key) in rows {
                let hashed = if kind_is_component { key } else { identity };
                assert_eq!(bucket_of(&hashed.namespace, &hashed.id, manifest.buckets), bucket);
            }
            assert!(rows.windows(2).all(|w| (&w[0].1, &w[0].0) < (&w[1].1, &w[1].0)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Order independence: folding the batches one by one gives the buckets one fold of all
        /// of them gives (same rows, same order), whatever the batches link.
        #[test]
        fn folding_batches_one_by_one_gives_the_buckets_of_one_fold_of_all(
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(0u16..60, 1..4), 0..8),
                1..8,
            ),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let lake = memory_lake();
            let batches: Vec<_> = batches.iter().map(|b| identities(b)).collect();
            let (one_by_one, all_at_once, last, manifest) = runtime.block_on(async {
                let (manifest, last, _) = fold_each(&lake, &batches).await;
                let all: Vec<Vec<Identity>> = batches.concat();
                let at_once = ObjectPath::from("graph/all.json");
                let (whole, _) = fold(&lake, None, &at_once, linked(&all)).await;
                let last_rows = rows_of(&lake, &last).await;
                (bucket_rows(&lake, &manifest).await, bucket_rows(&lake, &whole).await, last_rows, manifest)
            });
            prop_assert_eq!(&one_by_one, &all_at_once);
            assert_well_bucketed(&manifest, &one_by_one);
            let expected: HashMap<Identity, Identity> = linked(&batches.concat()).components().into_iter().collect();
            prop_assert_eq!(last.len(), expected.len());
            prop_assert_eq!(manifest.counts().nodes as usize, expected.len());
            prop_assert_eq!(last.into_iter().collect::<HashMap<_, _>>(), expected);
        }
    }

    fn customer(n: usize) -> Vec<Identity> {
        vec![
            Identity::new("CRMID", format!("crm-{n:06}")),
            Identity::new("Email", format!("c{n}@x")),
        ]
    }

    /// Forty batches of 50 new customers, each also stitching 5 new devices to earlier
    /// customers and merging two earlier customers: what a fold holds stays within what its
    /// batch reaches while the graph grows fortyfold.
    #[tokio::test]
    async fn a_folds_memory_grows_with_its_batch_not_with_the_graph() {
        let lake = memory_lake();
        let (customers_per_batch, rounds) = (50, 40);
        let batches: Vec<Vec<Vec<Identity>>> = (0..rounds)
            .map(|round| {
                let first = round * customers_per_batch;
                let mut batch: Vec<Vec<Identity>> = (first..first + customers_per_batch).map(customer).collect();
                for k in 0..5 {
                    let earlier = (round * 31 + k * 7) % (first + 1);
                    let mut device = customer(earlier);
                    device.push(Identity::new("ECID", format!("d{round}-{k}")));
                    batch.push(device);
                }
                if first >= 2 {
                    batch.push(vec![customer(round % first)[1].clone(), customer(first - 1)[0].clone()]);
                }
                batch
            })
            .collect();
        let (_, last, stats) = fold_each(&lake, &batches).await;
        let graph_size = rows_of(&lake, &last).await.len();
        assert!(graph_size >= rounds * customers_per_batch * 2, "{graph_size}");
        for (round, fold) in stats.iter().enumerate() {
            let batch_identities = linked(&batches[round]).len();
            // Merges chain customers over the rounds; a touched component is a handful of them.
            assert!(
                fold.loaded_identities <= batch_identities + 8 * fold.touched_components,
                "fold {round} held {} identities for a batch of {batch_identities} touching {} components",
                fold.loaded_identities,
                fold.touched_components
            );
            assert!(
                fold.touched_components <= 7,
                "fold {round} touched {}",
                fold.touched_components
            );
        }
        let last_fold = stats.last().unwrap();
        assert!(
            last_fold.loaded_identities * 10 < graph_size,
            "the last fold held {} of {graph_size} identities",
            last_fold.loaded_identities
        );
        let expected: HashMap<Identity, Identity> = linked(&batches.concat()).components().into_iter().collect();
        let folded: HashMap<Identity, Identity> = rows_of(&lake, &last).await.into_iter().collect();
        assert_eq!(folded, expected);
    }

    /// On a graph of 2000 customers in 256 buckets, a fold of one new customer reads at most
    /// its two identities' buckets and writes those and its component's; a fold stitching a
    /// device to a known customer reads that customer's component bucket too. The version
    /// names every other bucket's file of the previous one.
    #[tokio::test]
    async fn a_small_fold_reads_and_writes_only_the_buckets_it_touches() {
        let lake = memory_lake();
        let [v1, v2, v3] = ["graph/v1.json", "graph/v2.json", "graph/v3.json"].map(ObjectPath::from);
        let everyone: Vec<Vec<Identity>> = (0..2000).map(customer).collect();
        let (first, _) = fold_into_version(&lake, None, &v1, linked(&everyone), 256)
            .await
            .unwrap();
        let (second, stats) = fold(&lake, Some(&v1), &v2, linked(&[customer(5000)])).await;
        assert_eq!(second.buckets, 256, "later versions keep the first one's bucket count");
        assert!(stats.read_files <= 2, "{stats:?}");
        assert!(stats.written_files <= 3, "{stats:?}");
        assert_eq!(stats.counts.nodes, 4002);
        let shared = first.paths().filter(|p| second.paths().any(|q| q == *p)).count();
        assert!(shared >= first.paths().count() - 3, "{shared} files shared");

        let mut device = customer(17);
        device.push(Identity::new("ECID", "phone"));
        let (third, stats) = fold(&lake, Some(&v2), &v3, linked(&[device])).await;
        assert_eq!((stats.touched_components, stats.loaded_identities), (1, 3));
        assert!(stats.read_files <= 4, "{stats:?}");
        assert!(stats.written_files <= 4, "{stats:?}");
        let rows = rows_of(&lake, &v3).await;
        assert_eq!(rows.len(), 4003);
        let phone = rows.iter().find(|(identity, _)| identity.id == "phone").unwrap();
        assert_eq!(phone.1, Identity::new("CRMID", "crm-000017"));
        assert_eq!(third.counts().components, 2001);
    }

    #[tokio::test]
    async fn a_fold_that_touches_nothing_keeps_the_previous_rows_and_adds_the_new_ones() {
        let lake = memory_lake();
        let v1 = ObjectPath::from("graph/v1.json");
        let v2 = ObjectPath::from("graph/v2.json");
        fold(&lake, None, &v1, linked(&[customer(1), customer(3)])).await;
        let (_, stats) = fold(&lake, Some(&v1), &v2, linked(&[customer(2)])).await;
        assert_eq!(stats.loaded_identities, 2);
        assert_eq!(stats.touched_components, 0);
        assert_eq!(
            stats.counts,
            SnapshotCounts {
                nodes: 6,
                components: 3
            }
        );
        let mut keys: Vec<String> = rows_of(&lake, &v2).await.into_iter().map(|(_, key)| key.id).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "crm-000001",
                "crm-000001",
                "crm-000002",
                "crm-000002",
                "crm-000003",
                "crm-000003"
            ]
        );
    }

    /// An earlier release's single-file version is read as it is and converted by the next
    /// fold into the buckets a fold from nothing gives.
    #[tokio::test]
    async fn the_first_fold_after_a_single_file_version_converts_it_to_buckets() {
        let lake = memory_lake();
        let legacy = ObjectPath::from("graph/v1-0000000000000000.parquet");
        let old: Vec<Vec<Identity>> = (0..300).map(customer).collect();
        write_snapshot(&lake, &legacy, &mut linked(&old)).await.unwrap();
        assert_eq!(rows_of(&lake, &legacy).await.len(), 600);

        let mut device = customer(7);
        device.push(Identity::new("ECID", "phone"));
        let batch = vec![device, customer(900)];
        let converted = ObjectPath::from("graph/v2.json");
        let (manifest, stats) = fold(&lake, Some(&legacy), &converted, linked(&batch)).await;
        assert_eq!(stats.touched_components, 1);
        let everything = ObjectPath::from("graph/all.json");
        let (whole, _) = fold(&lake, None, &everything, linked(&[old, batch].concat())).await;
        let converted_rows = bucket_rows(&lake, &manifest).await;
        assert_eq!(converted_rows, bucket_rows(&lake, &whole).await);
        assert_well_bucketed(&manifest, &converted_rows);
        assert_eq!(
            manifest.counts(),
            SnapshotCounts {
                nodes: 603,
                components: 301
            }
        );
    }
}
