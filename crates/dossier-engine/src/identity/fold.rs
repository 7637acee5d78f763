//! Folding batches into the next version of the graph without loading the graph.
//!
//! The fold holds in memory only what the batches touch: their identities, linked, plus the
//! components of the previous version that share an identity with them. Every other component
//! is unchanged by the batches, so its rows are copied from the previous snapshot as they are
//! read. Two streaming passes over the previous snapshot (whose components are contiguous runs
//! of rows, sorted by key then identity):
//!
//! 1. find the runs that hold an identity of the batches, and link their rows into the
//!    batches' union-find;
//! 2. write the next snapshot: the untouched runs in file order, merged with the new rows of the
//!    touched components (and of the batches' new identities), sorted the same way.
//!
//! Memory grows with the batches and the components they reach, not with the graph; time still
//! grows with the graph (each row is read twice and written once). docs/identity-graph.md,
//! "Folding", has the next step: bucketed versions that share unchanged buckets.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

use super::snapshot::{
    ROWS_PER_BATCH, SnapshotCounts, SnapshotWriter, snapshot_batches, snapshot_columns, snapshot_schema,
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
}

/// Writes the next version at `next`: the previous one at `previous` (none for a first version)
/// with the identities linked in `batches` folded in. `batches` holds only the new batches'
/// links; the previous version's components they touch are loaded into it here.
pub async fn fold_into_snapshot(
    lake: &Lake,
    previous: Option<&ObjectPath>,
    next: &ObjectPath,
    mut batches: IdentityGraph,
) -> Result<FoldStats, EngineError> {
    let touched = match previous {
        Some(previous) => link_touched(lake, previous, &mut batches).await?,
        None => IdentitySet::default(),
    };
    let rows = batches.component_nodes();
    let counts = write_merged(lake, previous, next, &touched, &batches, &rows).await?;
    Ok(FoldStats {
        counts,
        loaded_identities: batches.len(),
        touched_components: touched.len(),
    })
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

/// Pass one: links into `graph` every component of `previous` that holds one of its
/// identities; gives the keys of those components.
async fn link_touched(
    lake: &Lake,
    previous: &ObjectPath,
    graph: &mut IdentityGraph,
) -> Result<IdentitySet, EngineError> {
    let mut touched = IdentitySet::default();
    let mut run = Run::default();
    let mut stream = snapshot_batches(lake, previous).await?;
    while let Some(rows) = stream.next().await {
        let rows = rows?;
        let [namespace, id, key_namespace, key_id] = snapshot_columns(&rows)?;
        for row in 0..rows.num_rows() {
            let (key_namespace, key_id) = (key_namespace.value(row), key_id.value(row));
            if !run.has_key(key_namespace, key_id) {
                run.close(graph, &mut touched);
                run.start(key_namespace, key_id);
            }
            let (namespace, id) = (namespace.value(row), id.value(row));
            run.push(namespace, id);
            // Every identity is in one run, so the only identities of `graph` a row can be are
            // the batches' own: the runs linked so far hold other identities.
            run.touched = run.touched || graph.contains(namespace, id);
        }
    }
    run.close(graph, &mut touched);
    Ok(touched)
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

    async fn write(&mut self, writer: &mut SnapshotWriter) -> Result<(), EngineError> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        self.len = 0;
        writer.write(&RecordBatch::try_new(snapshot_schema(), columns)?).await
    }
}

/// Whether the new row `(identity, key)` comes before the previous version's row `row`
/// (namespace, id, key namespace, key id) in the snapshot's order: key, then identity.
fn comes_before(graph: &IdentityGraph, (node, key): (u32, u32), row: [&str; 4]) -> bool {
    let ((namespace, id), (key_namespace, key_id)) = (graph.identity_of(node), graph.identity_of(key));
    (key_namespace, key_id, namespace, id) < (row[2], row[3], row[0], row[1])
}

/// Pass two: writes `next` from the rows of `previous` whose component is not in `touched`,
/// merged in order with `rows`, the (node, key node) pairs of `graph` sorted by key, then
/// identity.
async fn write_merged(
    lake: &Lake,
    previous: Option<&ObjectPath>,
    next: &ObjectPath,
    touched: &IdentitySet,
    graph: &IdentityGraph,
    rows: &[(u32, u32)],
) -> Result<SnapshotCounts, EngineError> {
    let mut writer = SnapshotWriter::create(lake, next)?;
    let mut out = PendingRows::new();
    let mut next_new = 0;
    if let Some(previous) = previous {
        let mut stream = snapshot_batches(lake, previous).await?;
        // The key of the run being read, and whether it is a touched component's.
        let (mut key_namespace, mut key_id, mut skip) = (String::new(), String::new(), false);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let [namespace, id, row_key_namespace, row_key_id] = snapshot_columns(&batch)?;
            for row in 0..batch.num_rows() {
                let row = [namespace, id, row_key_namespace, row_key_id].map(|c| c.value(row));
                if key_namespace != row[2] || key_id != row[3] {
                    (key_namespace, key_id) = (row[2].to_owned(), row[3].to_owned());
                    skip = touched.contains(row[2], row[3]);
                }
                if skip {
                    continue;
                }
                while next_new < rows.len() && comes_before(graph, rows[next_new], row) {
                    out.push_node(graph, rows[next_new]);
                    next_new += 1;
                }
                out.push(row);
            }
            if out.len >= ROWS_PER_BATCH {
                out.write(&mut writer).await?;
            }
        }
    }
    for &new in &rows[next_new..] {
        out.push_node(graph, new);
        if out.len >= ROWS_PER_BATCH {
            out.write(&mut writer).await?;
        }
    }
    if out.len > 0 {
        out.write(&mut writer).await?;
    }
    writer.finish().await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use object_store::memory::InMemory;
    use proptest::prelude::*;

    use super::*;
    use crate::identity::snapshot::read_snapshot;

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

    /// Folds `batches` one by one into versions 1, 2, ...; gives the last version's location
    /// and what each fold held.
    async fn fold_each(lake: &Lake, batches: &[Vec<Vec<Identity>>]) -> (ObjectPath, Vec<FoldStats>) {
        let mut previous: Option<ObjectPath> = None;
        let mut stats = Vec::new();
        for (n, batch) in batches.iter().enumerate() {
            let next = ObjectPath::from(format!("graph/v{}.parquet", n + 1));
            stats.push(
                fold_into_snapshot(lake, previous.as_ref(), &next, linked(batch))
                    .await
                    .unwrap(),
            );
            previous = Some(next);
        }
        (previous.unwrap(), stats)
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Order independence: folding the batches one by one gives the file one fold of all of
        /// them gives (same rows, same order), whatever the batches link.
        #[test]
        fn folding_batches_one_by_one_gives_the_snapshot_of_one_fold_of_all(
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(0u16..60, 1..4), 0..8),
                1..8,
            ),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let lake = memory_lake();
            let batches: Vec<_> = batches.iter().map(|b| identities(b)).collect();
            let (one_by_one, all_at_once) = runtime.block_on(async {
                let (last, _) = fold_each(&lake, &batches).await;
                let all: Vec<Vec<Identity>> = batches.concat();
                let at_once = ObjectPath::from("graph/all.parquet");
                fold_into_snapshot(&lake, None, &at_once, linked(&all)).await.unwrap();
                (rows_of(&lake, &last).await, rows_of(&lake, &at_once).await)
            });
            prop_assert_eq!(&one_by_one, &all_at_once);
            let mut expected = linked(&batches.concat()).components();
            expected.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
            prop_assert_eq!(one_by_one, expected);
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
        let (last, stats) = fold_each(&lake, &batches).await;
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

    #[tokio::test]
    async fn a_fold_that_touches_nothing_copies_the_previous_version_and_adds_the_new_rows() {
        let lake = memory_lake();
        let v1 = ObjectPath::from("graph/v1.parquet");
        let v2 = ObjectPath::from("graph/v2.parquet");
        fold_into_snapshot(&lake, None, &v1, linked(&[customer(1), customer(3)]))
            .await
            .unwrap();
        let stats = fold_into_snapshot(&lake, Some(&v1), &v2, linked(&[customer(2)]))
            .await
            .unwrap();
        assert_eq!(stats.loaded_identities, 2);
        assert_eq!(stats.touched_components, 0);
        assert_eq!(
            stats.counts,
            SnapshotCounts {
                nodes: 6,
                components: 3
            }
        );
        let keys: Vec<String> = rows_of(&lake, &v2).await.into_iter().map(|(_, key)| key.id).collect();
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
}
