//! The identity links of the sandbox's committed fragments, as Parquet files in the rebuild's
//! scratch folder: the input of the connected-components plan.
//!
//! A fragment links all its identities; a star from its first identity carries the same
//! connectivity with one row per extra identity, and a fragment with one identity becomes a
//! self-link so that the identity is still a vertex (a singleton component). Extraction reuses
//! the engine's reader, one fragment file at a time, so it reads exactly the identities the fold
//! reads and holds one file's identities at a time.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;

use dossier_engine::identity::{FragmentIdentities, read_file_identities};
use dossier_model::xdm::XdmSchema;
use dossier_storage::Lake;

use super::GraphError;

/// Fragment files read at once: each read waits on the lake more than on a core.
const FILES_IN_FLIGHT: usize = 4;

/// One committed data file and the schema its rows follow.
#[derive(Debug, Clone)]
pub struct FragmentFile {
    pub path: ObjectPath,
    pub schema: Arc<XdmSchema>,
}

/// The columns of a links file.
pub fn links_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("src_namespace", DataType::Utf8, false),
        Field::new("src_id", DataType::Utf8, false),
        Field::new("dst_namespace", DataType::Utf8, false),
        Field::new("dst_id", DataType::Utf8, false),
    ]))
}

/// The links of `fragments`, as rows of [`links_schema`].
fn links_batch(fragments: &[FragmentIdentities]) -> Result<RecordBatch, GraphError> {
    let mut columns: [StringBuilder; 4] = std::array::from_fn(|_| StringBuilder::new());
    for fragment in fragments {
        let Some((head, rest)) = fragment.all.split_first() else {
            continue;
        };
        let others = if rest.is_empty() {
            std::slice::from_ref(head)
        } else {
            rest
        };
        for other in others {
            columns[0].append_value(&head.namespace);
            columns[1].append_value(&head.id);
            columns[2].append_value(&other.namespace);
            columns[3].append_value(&other.id);
        }
    }
    let columns = columns.map(|mut c| Arc::new(c.finish()) as arrow::array::ArrayRef);
    Ok(RecordBatch::try_new(links_schema(), columns.to_vec())?)
}

/// Reads one fragment file's identities and writes its links to `location`; gives the links.
async fn write_file_links(lake: &Lake, file: &FragmentFile, location: ObjectPath) -> Result<u64, GraphError> {
    let (fragments, _) = read_file_identities(lake, &file.path, &file.schema).await?;
    let rows = links_batch(&fragments)?;
    let sink = BufWriter::new(lake.store().clone(), location);
    let mut writer = AsyncArrowWriter::try_new(sink, links_schema(), None)?;
    writer.write(&rows).await?;
    writer.close().await?;
    Ok(rows.num_rows() as u64)
}

/// Writes the links of every file of `files` as one Parquet file each under `folder`; gives
/// the number of links written.
pub async fn write_links(lake: &Lake, files: &[FragmentFile], folder: &ObjectPath) -> Result<u64, GraphError> {
    let counts: Vec<u64> = futures::stream::iter(files.iter().enumerate())
        .map(|(n, file)| write_file_links(lake, file, folder.clone().join(format!("part-{n:06}.parquet"))))
        .buffer_unordered(FILES_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(counts.into_iter().sum())
}
