//! The membership column indexed by segment: for each record file, a sidecar Parquet file with
//! one row per distinct (segment namespace, segment id, primary identity of the row that holds
//! an entry for it). A job filtered by segments reads the sidecars, not the files' membership
//! column, to find the identities whose profiles can be members; only those profiles are then
//! keyed, selected and merged.
//!
//! A data file never changes once its batch is committed, so its sidecar is valid for as long as
//! the file exists and is written once: lazily, by the first job that needs it (a file ingested
//! before this index existed, or whose sidecar was lost, simply gets one then). Sidecars live
//! beside the identity graph, under `<org>/<sandbox>/_profile/segment-index/`, at the data file's
//! own path below the sandbox (`datasets/<dataset>/batches/<batch>/<file>`), so no catalog entry
//! is needed and Data Access never lists them.
//!
//! The index says who *may* be a member (any status, any time): the exact decision is still the
//! merged membership of the profile (`export::selection`), made on those profiles only.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};

use dossier_model::export_job::SegmentFilter;
use dossier_model::xdm::XdmSchema;
use dossier_storage::Lake;

use crate::EngineError;
use crate::identity::read_file_primaries;
use crate::parquet_io::LakeFileReader;
use crate::profiles::merge::SEGMENT_MEMBERSHIP;

/// Where sidecars live below a sandbox's folder.
const INDEX_FOLDER: [&str; 2] = ["_profile", "segment-index"];

/// Files whose sidecars are read (or built) at once: reads are small and mostly waiting.
const CONCURRENT_FILES: usize = 4;

/// The sidecar of the data file at `data_file` (`<org>/<sandbox>/<rest>`).
pub fn sidecar_path(data_file: &ObjectPath) -> ObjectPath {
    let parts: Vec<_> = data_file.parts().collect();
    let split = parts.len().min(2);
    let (sandbox, rest) = parts.split_at(split);
    ObjectPath::from_iter(
        sandbox
            .iter()
            .map(|p| p.as_ref())
            .chain(INDEX_FOLDER)
            .chain(rest.iter().map(|p| p.as_ref())),
    )
}

fn sidecar_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("segment_namespace"),
        text("segment_id"),
        text("namespace"),
        text("id"),
    ]))
}

/// One sidecar row: a segment named by some entry of a row, and that row's primary identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct IndexRow {
    segment_namespace: String,
    segment_id: String,
    primary: (String, String),
}

/// The identities whose profiles may be members of one of `filters`, from the sidecars of
/// `files` (record files and their schemas), each as `key(namespace, id)` makes it (a hash, so
/// that a large segment is not a million owned strings); a missing or unreadable sidecar is
/// built from its data file first.
pub async fn candidate_identities<K: Send>(
    lake: &Lake,
    files: &[(ObjectPath, Arc<XdmSchema>)],
    filters: &[SegmentFilter],
    key: fn(&str, &str) -> K,
) -> Result<Vec<K>, EngineError> {
    // The futures are made before the stream: a closure in the stream's type would not be
    // general enough for the `Send` export future that awaits it.
    let reads: Vec<_> = files
        .iter()
        .map(|(location, schema)| file_candidates(lake, location, schema, filters, key))
        .collect();
    let per_file: Vec<Vec<K>> = futures::stream::iter(reads)
        .buffer_unordered(CONCURRENT_FILES)
        .try_collect()
        .await?;
    Ok(per_file.into_iter().flatten().collect())
}

/// The primary identities of one data file's rows that hold an entry for one of `filters`: from
/// its sidecar, or (when it has none yet, or it cannot be read) from the file, scanned and its
/// sidecar written for the next job.
async fn file_candidates<K>(
    lake: &Lake,
    location: &ObjectPath,
    schema: &XdmSchema,
    filters: &[SegmentFilter],
    key: fn(&str, &str) -> K,
) -> Result<Vec<K>, EngineError> {
    let sidecar = sidecar_path(location);
    match read_sidecar(lake, &sidecar, filters, key).await {
        Ok(Some(found)) => return Ok(found),
        Ok(None) => {}
        Err(error) => tracing::warn!(%sidecar, %error, "segment index sidecar unreadable; rebuilding it"),
    }
    let rows = scan_data_file(lake, location, schema).await?;
    let bytes = encode(&rows)?;
    // Two jobs building the same sidecar write the same bytes: whichever lands first stays; a
    // damaged one is replaced.
    if !lake.put_if_absent(&sidecar, bytes.clone()).await? {
        lake.put(&sidecar, bytes).await?;
    }
    Ok(rows
        .into_iter()
        .filter(|row| named(&row.segment_namespace, &row.segment_id, filters))
        .map(|row| key(&row.primary.0, &row.primary.1))
        .collect())
}

/// Whether some filter names a segment: the id exactly, the namespace ignoring case.
fn named(namespace: &str, segment_id: &str, filters: &[SegmentFilter]) -> bool {
    filters
        .iter()
        .any(|f| f.segment_id == segment_id && f.segment_ns.eq_ignore_ascii_case(namespace))
}

/// The primary identities of the sidecar's rows that `filters` name (nothing else is
/// materialized), or `None` when there is no sidecar.
async fn read_sidecar<K>(
    lake: &Lake,
    sidecar: &ObjectPath,
    filters: &[SegmentFilter],
    key: fn(&str, &str) -> K,
) -> Result<Option<Vec<K>>, EngineError> {
    let bytes = match lake.store().get(sidecar).await {
        Ok(found) => found
            .bytes()
            .await
            .map_err(|e| EngineError::Invalid(format!("segment index {sidecar}: {e}")))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(EngineError::Invalid(format!("segment index {sidecar}: {e}"))),
    };
    let mut found = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
        let batch = batch?;
        let text = |i: usize| batch.columns().get(i).and_then(|c| c.as_string_opt::<i32>());
        let (Some(ns), Some(seg), Some(pns), Some(pid)) = (text(0), text(1), text(2), text(3)) else {
            return Err(EngineError::Invalid(format!(
                "segment index {sidecar}: unexpected columns"
            )));
        };
        for r in 0..batch.num_rows() {
            if named(ns.value(r), seg.value(r), filters) {
                found.push(key(pns.value(r), pid.value(r)));
            }
        }
    }
    Ok(Some(found))
}

fn encode(rows: &[IndexRow]) -> Result<Bytes, EngineError> {
    let schema = sidecar_schema();
    let column =
        |pick: fn(&IndexRow) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(pick))) };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            column(|r| &r.segment_namespace),
            column(|r| &r.segment_id),
            column(|r| &r.primary.0),
            column(|r| &r.primary.1),
        ],
    )?;
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(buffer))
}

/// Every (segment, primary identity) pair of a data file, sorted and distinct: its membership
/// column and its rows' primary identities, read with nothing else.
async fn scan_data_file(lake: &Lake, location: &ObjectPath, schema: &XdmSchema) -> Result<Vec<IndexRow>, EngineError> {
    let segments = row_segments(lake, location).await?;
    if segments.iter().all(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let (primaries, _) = read_file_primaries(lake, location, schema).await?;
    let mut rows: Vec<IndexRow> = Vec::new();
    for (named, primary) in segments.into_iter().zip(primaries) {
        let Some(primary) = primary else { continue };
        for (segment_namespace, segment_id) in named {
            rows.push(IndexRow {
                segment_namespace,
                segment_id,
                primary: (primary.namespace.clone(), primary.id.clone()),
            });
        }
    }
    rows.sort_unstable();
    rows.dedup();
    Ok(rows)
}

/// Per row of the file, the (namespace, segment id) of each of its membership entries.
async fn row_segments(lake: &Lake, location: &ObjectPath) -> Result<Vec<Vec<(String, String)>>, EngineError> {
    let builder = LakeFileReader::new(lake, location.clone()).builder().await?;
    let total = builder.metadata().file_metadata().num_rows() as usize;
    let Some(column) = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == SEGMENT_MEMBERSHIP)
    else {
        return Ok(vec![Vec::new(); total]);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let mut stream = builder.with_projection(mask).build()?;
    let mut out = Vec::with_capacity(total);
    while let Some(batch) = stream.try_next().await? {
        let Some(outer) = batch.column(0).as_map_opt() else {
            out.extend(std::iter::repeat_n(Vec::new(), batch.num_rows()));
            continue;
        };
        for r in 0..batch.num_rows() {
            out.push(entries_of_row(outer, r));
        }
    }
    Ok(out)
}

fn entries_of_row(outer: &MapArray, r: usize) -> Vec<(String, String)> {
    if outer.is_null(r) {
        return Vec::new();
    }
    let namespaces: &StringArray = outer.keys().as_string();
    let Some(inner) = outer.values().as_map_opt() else {
        return Vec::new();
    };
    let segments: &StringArray = inner.keys().as_string();
    let (outer_offsets, inner_offsets) = (outer.value_offsets(), inner.value_offsets());
    let mut named = Vec::new();
    for n in outer_offsets[r] as usize..outer_offsets[r + 1] as usize {
        if namespaces.is_null(n) || inner.is_null(n) {
            continue;
        }
        for s in inner_offsets[n] as usize..inner_offsets[n + 1] as usize {
            named.push((namespaces.value(n).to_owned(), segments.value(s).to_owned()));
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_sits_under_the_sandbox_profile_folder_at_the_file_s_own_path() {
        let data = ObjectPath::from("org/prod/datasets/d1/batches/b1/part-0.parquet");
        assert_eq!(
            sidecar_path(&data).as_ref(),
            "org/prod/_profile/segment-index/datasets/d1/batches/b1/part-0.parquet"
        );
    }

    #[test]
    fn a_filter_names_a_row_by_exact_id_and_namespace_in_any_case() {
        let filter = |ns: &str, id: &str| SegmentFilter {
            segment_id: id.into(),
            segment_ns: ns.into(),
            statuses: Vec::new(),
        };
        assert!(named("ups", "s1", &[filter("UPS", "s1")]));
        assert!(!named("ups", "s1", &[filter("ups", "S1")]));
        assert!(!named("ups", "s1", &[filter("AAM", "s1")]));
    }

    #[test]
    fn rows_survive_encoding() {
        let rows = vec![IndexRow {
            segment_namespace: "AAM".into(),
            segment_id: "a".into(),
            primary: ("Email".into(), "x@example.com".into()),
        }];
        let bytes = encode(&rows).unwrap();
        let batch = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(3).as_string::<i32>().value(0), "x@example.com");
    }
}
