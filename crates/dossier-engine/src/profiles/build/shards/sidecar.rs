//! Key sidecars: each committed fragment file's primary identities, hashed once, beside it.
//!
//! Pass one needs, for every row of a fragment file, its primary identity's 128-bit hash, the
//! identity's namespace (and, under `none`, its id) and its rowId. Deriving that decodes the
//! whole `identityMap` (a map of lists of structs) and the schema's identity fields of every
//! row, then hashes the strings, on every export, although a committed file never changes.
//! So ingestion writes for each data file a narrow Parquet file, `<data file>.keys` (outside any
//! `*.parquet` glob of the batch folder, deleted with it), one row per data row in the same
//! order, computed from the Arrow batches it encodes ([`KeySidecarEncoder`]) and promoted with
//! the data file when the batch commits:
//!
//! | column       | type   | null when                     |
//! |--------------|--------|-------------------------------|
//! | `hash_high`  | UInt64 | the row has no identity       |
//! | `hash_low`   | UInt64 | the row has no identity       |
//! | `namespace`  | Utf8   | the row has no identity       |
//! | `id`         | Utf8   | the row has no identity       |
//! | `rowId`      | Int64  | never                         |
//!
//! The sidecar is an optimisation, never the truth: a file without one (committed before
//! sidecars existed, or whose sidecar could not be encoded or stored), one written for other
//! identity fields than the dataset's schema has now, or one that cannot be read is keyed the
//! old way, from the data file itself (`read_file_primaries`), and pass one then writes its
//! sidecar from what it read ([`backfill_sidecar`]), so data committed before sidecars existed
//! is keyed the slow way once.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringBuilder, UInt64Builder};
use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::{ArrowWriter, AsyncArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use dossier_model::xdm::{IdentityField, XdmSchema};
use dossier_storage::Lake;

use super::identity_hash::identity_hash;
use crate::EngineError;
use crate::identity::read::extend_row_ids;
use crate::identity::{Identity, fragment_primaries, read_file_primaries};
use crate::parquet_io::LakeFileReader;

/// The footer key whose value says which hash and which identity fields a sidecar was made
/// with; a sidecar whose value differs from what the reader expects is not used.
const STAMP_KEY: &str = "dossier.keys";

/// Rows per written batch: bounds the builders, not the file.
const WRITE_ROWS: usize = 64 * 1024;

/// Where the sidecar of the data file at `data` lives.
pub fn sidecar_location(data: &ObjectPath) -> ObjectPath {
    ObjectPath::from(format!("{data}.keys"))
}

/// What a sidecar of a file of `schema` must carry in its footer to be used: the hash's version
/// and a fingerprint of the identity fields (their paths, namespaces and primary flags decide
/// which identity is primary, so a schema whose identities changed since the commit makes its
/// sidecars stale).
fn stamp(schema: &XdmSchema) -> String {
    const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6b65_7973);
    let fields: Vec<(&str, &str, bool)> = schema
        .identities
        .iter()
        .map(|i| (i.path.as_str(), i.namespace.as_str(), i.primary))
        .collect();
    let mut hasher = SEED.build_hasher();
    fields.hash(&mut hasher);
    format!(
        "v1 identity_hash=foldhash128 fields={:016x}",
        std::hash::Hasher::finish(&hasher)
    )
}

fn sidecar_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("hash_high", DataType::UInt64, true),
        Field::new("hash_low", DataType::UInt64, true),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("id", DataType::Utf8, true),
        Field::new("rowId", DataType::Int64, false),
    ]))
}

fn writer_properties(schema: &XdmSchema) -> WriterProperties {
    // Hashes are random: dictionary encoding would only grow them. Namespaces repeat (their
    // dictionary keeps them to a few bits a row); ids compress a little under zstd.
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")))
        .set_column_dictionary_enabled("hash_high".into(), false)
        .set_column_dictionary_enabled("hash_low".into(), false)
        .set_column_dictionary_enabled("id".into(), false)
        .set_column_dictionary_enabled("rowId".into(), false)
        .set_key_value_metadata(Some(vec![KeyValue::new(STAMP_KEY.to_owned(), stamp(schema))]))
        .build()
}

/// A data file's sidecar, built from the rows as they are encoded into the file, so that the
/// file is never read back for its keys. Its bytes equal those [`write_key_sidecar`] writes from
/// the finished file: the same rows go to the same writer in the same chunks of [`WRITE_ROWS`].
pub struct KeySidecarEncoder {
    identities: Vec<IdentityField>,
    columns: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    /// Keyed rows not yet written: fewer than [`WRITE_ROWS`] between calls.
    primaries: Vec<Option<Identity>>,
    row_ids: Vec<i64>,
}

impl KeySidecarEncoder {
    /// The sidecar of a file of a dataset of `schema`.
    pub fn try_new(schema: &XdmSchema) -> Result<Self, EngineError> {
        let columns = sidecar_schema();
        let writer = ArrowWriter::try_new(Vec::new(), columns.clone(), Some(writer_properties(schema)))?;
        Ok(Self {
            identities: schema.identities.clone(),
            columns,
            writer,
            primaries: Vec::with_capacity(WRITE_ROWS),
            row_ids: Vec::with_capacity(WRITE_ROWS),
        })
    }

    /// Keys `rows`, the next rows of the data file as written (with their system column).
    pub fn write(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        self.primaries.extend(fragment_primaries(rows, &self.identities));
        extend_row_ids(&mut self.row_ids, rows);
        while self.primaries.len() >= WRITE_ROWS {
            let rest = (self.primaries.split_off(WRITE_ROWS), self.row_ids.split_off(WRITE_ROWS));
            self.write_chunk()?;
            (self.primaries, self.row_ids) = rest;
        }
        Ok(())
    }

    fn write_chunk(&mut self) -> Result<(), EngineError> {
        let batch = sidecar_batch(&self.columns, &self.primaries, &self.row_ids)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// The whole sidecar file.
    pub fn finish(mut self) -> Result<Vec<u8>, EngineError> {
        if !self.primaries.is_empty() {
            self.write_chunk()?;
        }
        Ok(self.writer.into_inner()?)
    }
}

/// Writes the sidecar of the data file at `data` (the object store writes it whole or not at
/// all: a reader never sees half of one).
pub async fn write_key_sidecar(lake: &Lake, schema: &XdmSchema, data: &ObjectPath) -> Result<(), EngineError> {
    let (primaries, row_ids) = read_file_primaries(lake, data, schema).await?;
    write_sidecar_rows(lake, schema, data, &primaries, &row_ids).await
}

/// Writes the sidecar of a file that pass one had to key from its data (committed before
/// sidecars existed, or its sidecar lost or stale), from the identities it just read: the next
/// export of it reads the sidecar. A failure is only logged.
pub(super) async fn backfill_sidecar(
    lake: &Lake,
    schema: &XdmSchema,
    data: &ObjectPath,
    primaries: &[Option<Identity>],
    row_ids: &[i64],
) {
    match write_sidecar_rows(lake, schema, data, primaries, row_ids).await {
        Ok(()) => tracing::debug!(file = %data, "wrote the key sidecar of a file keyed from its data"),
        Err(error) => {
            tracing::warn!(file = %data, %error, "could not write the key sidecar of a file keyed from its data")
        }
    }
}

async fn write_sidecar_rows(
    lake: &Lake,
    schema: &XdmSchema,
    data: &ObjectPath,
    primaries: &[Option<Identity>],
    row_ids: &[i64],
) -> Result<(), EngineError> {
    let columns = sidecar_schema();
    let sink = BufWriter::new(lake.store().clone(), sidecar_location(data));
    let mut writer = AsyncArrowWriter::try_new(sink, columns.clone(), Some(writer_properties(schema)))?;
    for (primaries, row_ids) in primaries.chunks(WRITE_ROWS).zip(row_ids.chunks(WRITE_ROWS)) {
        writer.write(&sidecar_batch(&columns, primaries, row_ids)?).await?;
    }
    writer.close().await?;
    Ok(())
}

/// One batch of sidecar rows.
fn sidecar_batch(
    columns: &SchemaRef,
    primaries: &[Option<Identity>],
    row_ids: &[i64],
) -> Result<RecordBatch, EngineError> {
    let (mut high, mut low) = (UInt64Builder::new(), UInt64Builder::new());
    let (mut namespaces, mut ids) = (StringBuilder::new(), StringBuilder::new());
    for primary in primaries {
        match primary {
            Some(primary) => {
                let hash = identity_hash(&primary.namespace, &primary.id);
                high.append_value((hash >> 64) as u64);
                low.append_value(hash as u64);
                namespaces.append_value(&primary.namespace);
                ids.append_value(&primary.id);
            }
            None => {
                high.append_null();
                low.append_null();
                namespaces.append_null();
                ids.append_null();
            }
        }
    }
    Ok(RecordBatch::try_new(
        columns.clone(),
        vec![
            Arc::new(high.finish()) as ArrayRef,
            Arc::new(low.finish()),
            Arc::new(namespaces.finish()),
            Arc::new(ids.finish()),
            Arc::new(Int64Array::from(row_ids.to_vec())),
        ],
    )?)
}

/// One row of a fragment file as pass one sees it: its primary identity's hash, namespace and
/// id (empty when the caller did not ask for ids), and its rowId.
pub(super) struct Primary<'a> {
    pub hash: u128,
    pub namespace: &'a str,
    pub id: &'a str,
    pub row_id: i64,
}

/// Calls `visit(row, primary)` for every row of the data file at `data` that has a primary
/// identity, from its sidecar. `Ok(false)` when the file has no usable sidecar (absent, stale
/// or unreadable), before any row was visited: the caller then reads the data file.
pub(super) async fn visit_sidecar(
    lake: &Lake,
    data: &ObjectPath,
    schema: &XdmSchema,
    with_ids: bool,
    mut visit: impl FnMut(u32, &Primary<'_>) -> Result<(), EngineError>,
) -> Result<bool, EngineError> {
    let Some(batches) = read_sidecar(lake, data, schema, with_ids).await else {
        return Ok(false);
    };
    let mut row = 0u32;
    for batch in &batches {
        let column = |name: &str| batch.column_by_name(name);
        let (Some(high), Some(low), Some(namespaces), Some(row_ids)) = (
            column("hash_high").and_then(|c| c.as_primitive_opt::<UInt64Type>()),
            column("hash_low").and_then(|c| c.as_primitive_opt::<UInt64Type>()),
            column("namespace").and_then(|c| c.as_string_opt::<i32>()),
            column("rowId").and_then(|c| c.as_primitive_opt::<Int64Type>()),
        ) else {
            return Err(EngineError::Invalid(format!("key sidecar of {data} lacks a column")));
        };
        let ids = column("id").and_then(|c| c.as_string_opt::<i32>());
        for i in 0..batch.num_rows() {
            if high.is_valid(i) {
                let primary = Primary {
                    hash: (u128::from(high.value(i)) << 64) | u128::from(low.value(i)),
                    namespace: namespaces.value(i),
                    id: ids.map_or("", |ids| ids.value(i)),
                    row_id: row_ids.value(i),
                };
                visit(row, &primary)?;
            }
            row += 1;
        }
    }
    Ok(true)
}

/// The sidecar's batches, or `None` when there is no usable one. Read whole before any row is
/// visited, so a sidecar that fails halfway never leaves its file half keyed.
async fn read_sidecar(lake: &Lake, data: &ObjectPath, schema: &XdmSchema, with_ids: bool) -> Option<Vec<RecordBatch>> {
    let location = sidecar_location(data);
    let builder = LakeFileReader::new(lake, location.clone()).builder().await.ok()?;
    let expected = stamp(schema);
    let stamped = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .any(|kv| kv.key == STAMP_KEY && kv.value.as_deref() == Some(expected.as_str()));
    if !stamped {
        tracing::debug!(sidecar = %location, "key sidecar written for other identity fields: keying from the data");
        return None;
    }
    let wanted: Vec<usize> = sidecar_schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| with_ids || f.name() != "id")
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let stream = builder.with_projection(mask).build().ok()?;
    match stream.try_collect().await {
        Ok(batches) => Some(batches),
        Err(error) => {
            tracing::warn!(sidecar = %location, %error, "unreadable key sidecar: keying from the data");
            None
        }
    }
}
