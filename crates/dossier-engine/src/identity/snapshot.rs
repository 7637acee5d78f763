//! One version of a sandbox's identity graph as a Parquet file: a row per identity with the key
//! of its component.
//!
//! Columns `namespace`, `id`, `component_namespace`, `component_id`; the component key is the
//! smallest identity of the component, as [`IdentityGraph::components`] gives it, so the file
//! does not depend on the order links arrived in. Rows are sorted by component then identity:
//! a component's identities are contiguous, and the same graph always gives the same file.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use dossier_storage::Lake;

use super::buckets::component_files;
use super::union_find::{Identity, IdentityGraph};
use crate::EngineError;
use crate::parquet_io::LakeFileReader;

/// Rows per Arrow batch (and so per write) of a snapshot.
pub(super) const ROWS_PER_BATCH: usize = 64 * 1024;

/// Upload buffer of one bucket file: most buckets are a few MB, and a whole-version writer
/// holds every bucket open (object_store's default, 10 MB each, would hold the graph).
const BUCKET_UPLOAD_BUFFER: usize = 1024 * 1024;

/// Rows per row group of a bucket file, for the same reason (the writer encodes a row group in
/// memory before it flushes).
const BUCKET_ROW_GROUP: usize = 16 * 1024;

pub(super) fn snapshot_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("component_namespace", DataType::Utf8, false),
        Field::new("component_id", DataType::Utf8, false),
    ]))
}

/// The snapshot files' compression (see [`writer_properties`]).
fn snapshot_zstd() -> ZstdLevel {
    ZstdLevel::try_new(1).expect("level 1 is valid")
}

fn writer_properties() -> WriterProperties {
    // Component keys repeat along each component's run of rows: dictionary encoding (on by
    // default) plus zstd keeps the file near the size of the distinct identities. Level 1: a
    // bulk fold rewrites every bucket, and level 3's compression was a tenth of its CPU.
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(snapshot_zstd()))
        .build()
}

/// What a written snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub nodes: i64,
    pub components: i64,
}

fn rows_batch(schema: &SchemaRef, rows: &[(Identity, Identity)]) -> Result<RecordBatch, EngineError> {
    let column = |pick: fn(&(Identity, Identity)) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(pick)))
    };
    let columns = vec![
        column(|(identity, _)| identity.namespace.as_str()),
        column(|(identity, _)| identity.id.as_str()),
        column(|(_, key)| key.namespace.as_str()),
        column(|(_, key)| key.id.as_str()),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Writes a snapshot from rows that arrive already sorted by component, then identity: the
/// fold writes its in-memory graph through it, and a distributed rebuild streams the rows of
/// its final plan through it, so both give the same file for the same graph.
pub struct SnapshotWriter {
    schema: SchemaRef,
    writer: AsyncArrowWriter<BufWriter>,
    counts: SnapshotCounts,
}

impl SnapshotWriter {
    /// Starts the snapshot at `location` (replacing any file there once finished).
    pub fn create(lake: &Lake, location: &ObjectPath) -> Result<Self, EngineError> {
        let schema = snapshot_schema();
        let sink = BufWriter::new(lake.store().clone(), location.clone());
        let writer = AsyncArrowWriter::try_new(sink, schema.clone(), Some(writer_properties()))?;
        Ok(Self {
            schema,
            writer,
            counts: SnapshotCounts {
                nodes: 0,
                components: 0,
            },
        })
    }

    /// Starts one bucket file of a bucketed version: a smaller upload buffer and row groups,
    /// since a writer of a whole version holds hundreds of them open at once.
    pub fn create_bucket(lake: &Lake, location: &ObjectPath) -> Result<Self, EngineError> {
        let schema = snapshot_schema();
        let sink = BufWriter::with_capacity(lake.store().clone(), location.clone(), BUCKET_UPLOAD_BUFFER);
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(snapshot_zstd()))
            .set_max_row_group_row_count(Some(BUCKET_ROW_GROUP))
            .build();
        let writer = AsyncArrowWriter::try_new(sink, schema.clone(), Some(properties))?;
        Ok(Self {
            schema,
            writer,
            counts: SnapshotCounts {
                nodes: 0,
                components: 0,
            },
        })
    }

    /// `rows` with the snapshot's four columns taken by name and cast to its types (e.g. from
    /// DataFusion's view strings).
    pub fn conform(schema: &SchemaRef, rows: &RecordBatch) -> Result<RecordBatch, EngineError> {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = rows.column_by_name(field.name()).ok_or_else(|| {
                EngineError::Invalid(format!("identity graph rows have no '{}' column", field.name()))
            })?;
            columns.push(arrow::compute::cast(column, field.data_type())?);
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }

    /// Appends rows with the snapshot's four string columns (by name; any string type, e.g.
    /// DataFusion's view strings, is cast to the file's). They must follow the rows written
    /// before in (component, identity) order.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        let rows = Self::conform(&self.schema, rows)?;
        let [namespace, id, key_namespace, key_id] = [0, 1, 2, 3].map(|i| rows.column(i).as_string::<i32>());
        // A component's key is one of its identities: its own row counts the component once.
        let keys = (0..rows.num_rows())
            .filter(|&row| namespace.value(row) == key_namespace.value(row) && id.value(row) == key_id.value(row))
            .count();
        self.counts.nodes += rows.num_rows() as i64;
        self.counts.components += keys as i64;
        self.writer.write(&rows).await?;
        Ok(())
    }

    /// Closes the file; gives what it holds.
    pub async fn finish(self) -> Result<SnapshotCounts, EngineError> {
        self.writer.close().await?;
        Ok(self.counts)
    }
}

/// Writes the components of `graph` as a snapshot at `location` (replacing any file there).
pub async fn write_snapshot(
    lake: &Lake,
    location: &ObjectPath,
    graph: &mut IdentityGraph,
) -> Result<SnapshotCounts, EngineError> {
    let rows: Vec<(Identity, Identity)> = graph.components();
    let schema = snapshot_schema();
    let mut writer = SnapshotWriter::create(lake, location)?;
    for chunk in rows.chunks(ROWS_PER_BATCH) {
        writer.write(&rows_batch(&schema, chunk)?).await?;
    }
    writer.finish().await
}

fn string_column<'a>(rows: &'a RecordBatch, name: &str) -> Result<&'a StringArray, EngineError> {
    rows.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| EngineError::Invalid(format!("identity graph snapshot has no valid '{name}' column")))
}

/// Calls `visit(identity, component key)` for every row of the version at `location` (a
/// manifest or an earlier release's single file), in file order (grouped by component).
pub async fn read_snapshot(
    lake: &Lake,
    location: &ObjectPath,
    mut visit: impl FnMut(Identity, &Identity),
) -> Result<(), EngineError> {
    let mut key = Identity::new("", "");
    scan_snapshot(lake, location, |namespace, id, key_namespace, key_id| {
        // Rows of one component share the key: rebuild it only when it changes.
        if key.namespace != key_namespace || key.id != key_id {
            key = Identity::new(key_namespace, key_id);
        }
        visit(Identity::new(namespace, id), &key);
    })
    .await
}

/// Calls `visit(namespace, id, component namespace, component id)` for every row of the
/// version at `location`, component bucket by component bucket, without building an
/// [`Identity`] per row.
pub async fn scan_snapshot(
    lake: &Lake,
    location: &ObjectPath,
    mut visit: impl FnMut(&str, &str, &str, &str),
) -> Result<(), EngineError> {
    scan_snapshot_until(lake, location, |namespace, id, key_namespace, key_id| {
        visit(namespace, id, key_namespace, key_id);
        std::ops::ControlFlow::Continue(())
    })
    .await
}

/// The rows of the snapshot at `location` as Arrow batches, in file order: for a reader that
/// must await between batches (the fold writes its next version while it reads this one).
pub async fn snapshot_batches(
    lake: &Lake,
    location: &ObjectPath,
) -> Result<impl futures::Stream<Item = Result<RecordBatch, parquet::errors::ParquetError>> + use<>, EngineError> {
    Ok(LakeFileReader::new(lake, location.clone())
        .builder()
        .await?
        .with_batch_size(ROWS_PER_BATCH)
        .build()?)
}

/// The four columns of a batch of snapshot rows: namespace, id, component namespace, component id.
pub fn snapshot_columns(rows: &RecordBatch) -> Result<[&StringArray; 4], EngineError> {
    Ok([
        string_column(rows, "namespace")?,
        string_column(rows, "id")?,
        string_column(rows, "component_namespace")?,
        string_column(rows, "component_id")?,
    ])
}

/// [`scan_snapshot`] that stops reading when `visit` breaks: for a reader after one component.
pub async fn scan_snapshot_until(
    lake: &Lake,
    location: &ObjectPath,
    mut visit: impl FnMut(&str, &str, &str, &str) -> std::ops::ControlFlow<()>,
) -> Result<(), EngineError> {
    let mut stopped = false;
    for file in component_files(lake, location.as_ref()).await? {
        scan_file_until(lake, &file, |namespace, id, key_namespace, key_id| {
            let flow = visit(namespace, id, key_namespace, key_id);
            stopped = flow.is_break();
            flow
        })
        .await?;
        if stopped {
            break;
        }
    }
    Ok(())
}

/// [`scan_snapshot_until`] over one file (a bucket, or an earlier release's whole version).
pub async fn scan_file_until(
    lake: &Lake,
    location: &ObjectPath,
    mut visit: impl FnMut(&str, &str, &str, &str) -> std::ops::ControlFlow<()>,
) -> Result<(), EngineError> {
    let mut stream = snapshot_batches(lake, location).await?;
    while let Some(rows) = stream.next().await {
        let rows = rows?;
        let [namespace, id, key_namespace, key_id] = snapshot_columns(&rows)?;
        for row in 0..rows.num_rows() {
            let flow = visit(
                namespace.value(row),
                id.value(row),
                key_namespace.value(row),
                key_id.value(row),
            );
            if flow.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The graph of a snapshot, ready to link more fragments into.
pub async fn load_graph(lake: &Lake, location: &ObjectPath) -> Result<IdentityGraph, EngineError> {
    let mut graph = IdentityGraph::new();
    read_snapshot(lake, location, |identity, key| graph.link([key, &identity])).await?;
    Ok(graph)
}

/// Which component each identity of a snapshot is in: what readers key profiles by.
#[derive(Debug, Default, Clone)]
pub struct ComponentIndex {
    keys: Vec<Identity>,
    /// foldhash, not SipHash: an export looks up every fragment's primary identity here, and
    /// the keys are the sandbox's own identities, not attacker-chosen hash-flooding input.
    component_of: foldhash::HashMap<Identity, u32>,
}

impl ComponentIndex {
    /// Reads the snapshot at `location`.
    pub async fn load(lake: &Lake, location: &ObjectPath) -> Result<Self, EngineError> {
        let mut index = Self::default();
        read_snapshot(lake, location, |identity, key| index.insert(identity, key)).await?;
        Ok(index)
    }

    /// The components of an in-memory graph.
    pub fn of_graph(graph: &mut IdentityGraph) -> Self {
        let mut index = Self::default();
        for (identity, key) in graph.components() {
            index.insert(identity, &key);
        }
        index
    }

    fn insert(&mut self, identity: Identity, key: &Identity) {
        if self.keys.last() != Some(key) {
            self.keys.push(key.clone());
        }
        self.component_of.insert(identity, (self.keys.len() - 1) as u32);
    }

    /// The key of the component `identity` is in; `None` when the graph has never seen it.
    pub fn key_of(&self, identity: &Identity) -> Option<&Identity> {
        self.component_of.get(identity).map(|&k| &self.keys[k as usize])
    }

    /// The number of the component `identity` is in (dense, from 0).
    pub fn component(&self, identity: &Identity) -> Option<u32> {
        self.component_of.get(identity).copied()
    }

    /// The key of component number `component`.
    pub fn key(&self, component: u32) -> &Identity {
        &self.keys[component as usize]
    }

    /// Identities in the graph.
    pub fn len(&self) -> usize {
        self.component_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.component_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn id(ns: &str, v: &str) -> Identity {
        Identity::new(ns, v)
    }

    fn memory_lake() -> Lake {
        Lake::with_store(Arc::new(InMemory::new()))
    }

    #[tokio::test]
    async fn a_snapshot_reads_back_as_the_components_it_was_written_from() {
        let lake = memory_lake();
        let mut graph = IdentityGraph::new();
        graph.link(&[id("Email", "ana@x"), id("CRMID", "c1")]);
        graph.link(&[id("ECID", "e9"), id("Email", "ana@x")]);
        graph.link(&[id("CRMID", "c2")]);
        let location = ObjectPath::from("graph/v1.parquet");
        let counts = write_snapshot(&lake, &location, &mut graph).await.unwrap();
        assert_eq!(
            counts,
            SnapshotCounts {
                nodes: 4,
                components: 2
            }
        );

        let index = ComponentIndex::load(&lake, &location).await.unwrap();
        assert_eq!(index.len(), 4);
        assert_eq!(index.key_of(&id("ECID", "e9")), Some(&id("CRMID", "c1")));
        assert_eq!(index.key_of(&id("Email", "ana@x")), Some(&id("CRMID", "c1")));
        assert_eq!(index.key_of(&id("CRMID", "c2")), Some(&id("CRMID", "c2")));
        assert_eq!(index.key_of(&id("CRMID", "c3")), None);

        let mut rows = Vec::new();
        read_snapshot(&lake, &location, |identity, key| rows.push((identity, key.clone())))
            .await
            .unwrap();
        let mut expected = graph.components();
        expected.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        assert_eq!(rows, expected, "rows sorted by component, then identity");
    }

    #[tokio::test]
    async fn a_loaded_graph_keeps_linking_where_the_snapshot_left_off() {
        let lake = memory_lake();
        let mut graph = IdentityGraph::new();
        graph.link(&[id("Email", "b@x"), id("CRMID", "c2")]);
        graph.link(&[id("ECID", "e1")]);
        let location = ObjectPath::from("graph/v1.parquet");
        write_snapshot(&lake, &location, &mut graph).await.unwrap();

        let mut loaded = load_graph(&lake, &location).await.unwrap();
        loaded.link(&[id("ECID", "e1"), id("Email", "b@x")]);
        let index = ComponentIndex::of_graph(&mut loaded);
        assert_eq!(index.key_of(&id("ECID", "e1")), Some(&id("CRMID", "c2")));
        assert_eq!(index.len(), 3);
    }

    #[tokio::test]
    async fn an_empty_graph_is_an_empty_snapshot() {
        let lake = memory_lake();
        let location = ObjectPath::from("graph/v1.parquet");
        let counts = write_snapshot(&lake, &location, &mut IdentityGraph::new())
            .await
            .unwrap();
        assert_eq!(counts.nodes, 0);
        assert!(ComponentIndex::load(&lake, &location).await.unwrap().is_empty());
    }
}
