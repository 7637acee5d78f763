//! `FragmentWriter`: valid records in, zstd Parquet files in a batch's staging folder out.
//!
//! Records come in two shapes: JSON values (JSON lines, CSV, and Parquet uploads that need the
//! JSON checks) decoded here into Arrow, and Arrow batches already in the dataset's types (the
//! Parquet uploads checked on Arrow, see [`super::arrow_intake`]). Each batch is stamped with its
//! system column and encoded on a blocking thread, its columns in parallel
//! ([`ParallelEncoder`]), while the caller decodes the next one: the encode of batch N overlaps
//! the decode of batch N+1, and at most one batch is in flight. For a profile dataset the same
//! blocking step keys each batch into the file's key sidecar ([`KeySidecarEncoder`]), staged
//! beside the file when it closes: exports read that instead of the file's identities, and
//! nothing has to read the file back to make it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::reader::{Decoder, ReaderBuilder};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use dossier_model::xdm::XdmSchema;

use super::encode::ParallelEncoder;
use crate::EngineError;
use crate::fragments::{file_schema, with_system_metadata};
use crate::profiles::build::shards::{KeySidecarEncoder, sidecar_location};

/// Rows decoded into one Arrow batch at a time: bounds memory while keeping batches large
/// enough for vectorized work.
pub const DECODE_BATCH_ROWS: usize = 8 * 1024;

/// A Parquet file the writer finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub name: String,
    pub location: ObjectPath,
    pub records: i64,
    pub size: i64,
}

/// Limits on one output file.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub max_rows: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self { max_rows: 1_000_000 }
    }
}

/// How the files are encoded: threads per file, and rows per row group.
#[derive(Debug, Clone, Copy)]
pub struct EncodeSettings {
    /// Threads encoding one batch's columns: the machine's cores, at most 4 (beyond that the
    /// per-batch hand-off costs more than the columns it splits).
    pub threads: usize,
    /// Rows per row group; `None` keeps Parquet's default (1 Mi rows, so a file of
    /// [`FileLimits::max_rows`] is one row group, as before).
    pub row_group_rows: Option<usize>,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            threads: cores.clamp(1, 4),
            row_group_rows: None,
        }
    }
}

fn writer_properties(settings: &EncodeSettings) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")));
    match settings.row_group_rows {
        Some(rows) => builder.set_max_row_group_row_count(Some(rows.max(1))).build(),
        None => builder.build(),
    }
}

/// A failed write of encoded bytes into the lake (the upload reports it as an I/O error).
fn upload_error(error: std::io::Error) -> EngineError {
    EngineError::Parquet(parquet::errors::ParquetError::External(Box::new(error)))
}

/// The encoders of one file: its data, and its key sidecar while that is still being made.
struct Encoders {
    data: ParallelEncoder,
    keys: Option<KeySidecarEncoder>,
}

impl Encoders {
    /// Encodes `rows` (stamped with the system column) into the file and keys them into its
    /// sidecar; returns the data bytes closed meanwhile. A sidecar that fails is dropped with a
    /// warning: exports then key the file from its data.
    fn write(&mut self, rows: &RecordBatch, file: &ObjectPath) -> Result<Vec<u8>, EngineError> {
        self.data.write(rows)?;
        if let Some(keys) = &mut self.keys
            && let Err(error) = keys.write(rows)
        {
            sidecar_dropped(file, &error);
            self.keys = None;
        }
        Ok(self.data.take_bytes())
    }
}

fn sidecar_dropped(file: &ObjectPath, error: &EngineError) {
    tracing::warn!(file = %file, %error, "could not make the key sidecar; exports key this file from its data");
}

/// A batch encoding on a blocking thread: the encoders come back with the bytes produced.
type Encoding = JoinHandle<Result<(Encoders, Vec<u8>), EngineError>>;

/// The file being written: its encoders (away on a blocking thread while a batch encodes) and
/// the lake upload its bytes stream into.
struct OpenFile {
    encoders: Option<Encoders>,
    in_flight: Option<Encoding>,
    sink: BufWriter,
    store: Arc<dyn object_store::ObjectStore>,
    file: WrittenFile,
}

impl OpenFile {
    /// Waits for the batch being encoded, and streams what it closed into the lake.
    async fn settle(&mut self) -> Result<(), EngineError> {
        if let Some(encoding) = self.in_flight.take() {
            let (encoders, bytes) = encoding.await??;
            self.encoders = Some(encoders);
            if !bytes.is_empty() {
                self.sink.write_all(&bytes).await.map_err(upload_error)?;
            }
        }
        Ok(())
    }

    /// Starts encoding `rows` once the previous batch is done.
    async fn encode(&mut self, rows: RecordBatch) -> Result<(), EngineError> {
        self.settle().await?;
        let mut encoders = self.encoders.take().expect("settled above");
        let location = self.file.location.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let bytes = encoders.write(&rows, &location)?;
            Ok((encoders, bytes))
        }));
        Ok(())
    }

    /// Finishes the file, then stages its sidecar beside it (promoted with it at the commit).
    async fn close(mut self) -> Result<WrittenFile, EngineError> {
        self.settle().await?;
        let Encoders { data, keys } = self.encoders.take().expect("settled above");
        let (tail, keys) =
            tokio::task::spawn_blocking(move || (data.finish(), keys.map(KeySidecarEncoder::finish))).await?;
        self.sink.write_all(&tail?).await.map_err(upload_error)?;
        self.sink.shutdown().await.map_err(upload_error)?;
        if let Some(keys) = keys {
            put_sidecar(&self.store, &self.file.location, keys).await;
        }
        Ok(self.file)
    }
}

/// Stages the sidecar of the data file at `file`; a failure only logs.
async fn put_sidecar(
    store: &Arc<dyn object_store::ObjectStore>,
    file: &ObjectPath,
    keys: Result<Vec<u8>, EngineError>,
) {
    let stored = match keys {
        Ok(bytes) => store
            .put(&sidecar_location(file), bytes.into())
            .await
            .map_err(EngineError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = stored {
        sidecar_dropped(file, &error);
    }
}

/// Writes records into numbered Parquet files under a folder of the lake.
pub struct FragmentWriter {
    store: Arc<dyn object_store::ObjectStore>,
    folder: ObjectPath,
    batch_id: String,
    file_schema: SchemaRef,
    decoder: Decoder,
    pending: Vec<Value>,
    current: Option<OpenFile>,
    finished: Vec<WrittenFile>,
    next_row: i64,
    limits: FileLimits,
    settings: EncodeSettings,
    /// The schema whose identity fields key each file's sidecar; `None` writes none.
    keys: Option<Arc<XdmSchema>>,
}

impl FragmentWriter {
    pub fn new(
        store: Arc<dyn object_store::ObjectStore>,
        folder: ObjectPath,
        batch_id: &str,
        data_schema: SchemaRef,
        limits: FileLimits,
    ) -> Result<Self, EngineError> {
        let decoder = ReaderBuilder::new(data_schema.clone())
            .with_batch_size(DECODE_BATCH_ROWS)
            .build_decoder()?;
        Ok(Self {
            store,
            folder,
            batch_id: batch_id.to_owned(),
            file_schema: file_schema(&data_schema),
            decoder,
            pending: Vec::with_capacity(DECODE_BATCH_ROWS),
            current: None,
            finished: Vec::new(),
            next_row: 0,
            limits,
            settings: EncodeSettings::default(),
            keys: None,
        })
    }

    /// The same writer staging beside each file its key sidecar for `schema`'s identity fields
    /// (`<file>.keys`, see [`KeySidecarEncoder`]).
    pub fn with_key_sidecars(self, schema: Arc<XdmSchema>) -> Self {
        Self {
            keys: Some(schema),
            ..self
        }
    }

    /// The same writer encoding with `settings`.
    pub fn with_encode_settings(self, settings: EncodeSettings) -> Self {
        Self { settings, ..self }
    }

    /// Queues one valid record; writes when a decode batch is full.
    pub async fn push(&mut self, record: Value) -> Result<(), EngineError> {
        self.pending.push(record);
        if self.pending.len() >= DECODE_BATCH_ROWS {
            self.flush_pending().await?;
        }
        Ok(())
    }

    /// Writes valid rows already in the dataset's Arrow schema, after the records queued before.
    pub async fn push_rows(&mut self, rows: RecordBatch) -> Result<(), EngineError> {
        self.flush_pending().await?;
        self.write_rows(rows).await
    }

    async fn flush_pending(&mut self) -> Result<(), EngineError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.decoder.serialize(&self.pending)?;
        self.pending.clear();
        while let Some(rows) = self.decoder.flush()? {
            self.write_rows(rows).await?;
        }
        Ok(())
    }

    async fn write_rows(&mut self, rows: RecordBatch) -> Result<(), EngineError> {
        let mut offset = 0;
        while offset < rows.num_rows() {
            let room = self.limits.max_rows - self.current.as_ref().map_or(0, |open| open.file.records as usize);
            let take = room.min(rows.num_rows() - offset);
            let slice = rows.slice(offset, take);
            let stamped = with_system_metadata(slice, &self.file_schema, &self.batch_id, self.next_row)?;
            self.next_row += take as i64;
            offset += take;
            let open = self.open_file()?;
            open.encode(stamped).await?;
            open.file.records += take as i64;
            if open.file.records as usize >= self.limits.max_rows {
                self.close_file().await?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<&mut OpenFile, EngineError> {
        if self.current.is_none() {
            let name = format!("part-{:05}.parquet", self.finished.len());
            let location = self.folder.clone().join(name.as_str());
            let sink = BufWriter::new(self.store.clone(), location.clone());
            let data = ParallelEncoder::try_new(
                self.file_schema.clone(),
                writer_properties(&self.settings),
                self.settings.threads,
            )?;
            let keys = self.keys.as_deref().and_then(|schema| {
                KeySidecarEncoder::try_new(schema)
                    .inspect_err(|error| sidecar_dropped(&location, error))
                    .ok()
            });
            self.current = Some(OpenFile {
                encoders: Some(Encoders { data, keys }),
                in_flight: None,
                sink,
                store: self.store.clone(),
                file: WrittenFile {
                    name,
                    location,
                    records: 0,
                    size: 0,
                },
            });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    async fn close_file(&mut self) -> Result<(), EngineError> {
        if let Some(open) = self.current.take() {
            let mut file = open.close().await?;
            file.size = self.store.head(&file.location).await?.size as i64;
            self.finished.push(file);
        }
        Ok(())
    }

    /// Writes what is queued, closes the open file, and returns every file written.
    pub async fn finish(mut self) -> Result<Vec<WrittenFile>, EngineError> {
        self.flush_pending().await?;
        self.close_file().await?;
        Ok(self.finished)
    }
}

#[cfg(test)]
mod tests {
    use dossier_model::xdm::IdentityField;
    use dossier_storage::Lake;
    use serde_json::json;

    use super::*;
    use crate::profiles::build::shards::write_key_sidecar;

    /// A record with a flagged identityMap entry, one with only the schema's email field, or
    /// one with no identity at all.
    fn record(n: usize) -> Value {
        match n % 3 {
            0 => json!({"_id": format!("r{n}"), "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]}}),
            1 => json!({"_id": format!("r{n}"), "personalEmail": {"address": format!("p{n}@example.com")}}),
            _ => json!({"_id": format!("r{n}")}),
        }
    }

    /// Over more rows than a sidecar write chunk, arriving in batches that do not divide it,
    /// across two files: each staged sidecar is byte for byte the one keying the finished file
    /// from its data writes.
    #[tokio::test]
    async fn staged_sidecars_equal_those_keyed_from_the_written_files() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let mut schema = XdmSchema::builtin_profile();
        schema.identities.push(IdentityField {
            path: "personalEmail.address".into(),
            namespace: "Email".into(),
            primary: true,
        });
        let schema = Arc::new(schema);
        let limits = FileLimits { max_rows: 70_000 };
        let mut writer = FragmentWriter::new(
            lake.store().clone(),
            "staged".into(),
            "b1",
            schema.arrow_schema(),
            limits,
        )
        .unwrap()
        .with_key_sidecars(schema.clone());
        let mut decoder = ReaderBuilder::new(schema.arrow_schema())
            .with_batch_size(5_000)
            .build_decoder()
            .unwrap();
        decoder.serialize(&(0..90_000).map(record).collect::<Vec<_>>()).unwrap();
        while let Some(rows) = decoder.flush().unwrap() {
            writer.push_rows(rows).await.unwrap();
        }
        let files = writer.finish().await.unwrap();
        assert_eq!(files.len(), 2);
        let sidecar = |file: &WrittenFile| {
            let (store, location) = (lake.store().clone(), sidecar_location(&file.location));
            async move { store.get(&location).await.unwrap().bytes().await.unwrap() }
        };
        for file in &files {
            let staged = sidecar(file).await;
            write_key_sidecar(&lake, &schema, &file.location).await.unwrap();
            assert!(sidecar(file).await == staged, "{}", file.location);
        }
    }
}
