//! `FragmentWriter`: valid records in, zstd Parquet files in a batch's staging folder out.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::reader::{Decoder, ReaderBuilder};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::EngineError;
use crate::fragments::{file_schema, with_system_metadata};

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

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3 is valid")))
        .build()
}

/// Writes records into numbered Parquet files under a folder of the lake.
pub struct FragmentWriter {
    store: Arc<dyn object_store::ObjectStore>,
    folder: ObjectPath,
    batch_id: String,
    file_schema: SchemaRef,
    decoder: Decoder,
    pending: Vec<Value>,
    current: Option<(AsyncArrowWriter<BufWriter>, WrittenFile)>,
    finished: Vec<WrittenFile>,
    next_row: i64,
    limits: FileLimits,
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
        })
    }

    /// Queues one valid record; writes when a decode batch is full.
    pub async fn push(&mut self, record: Value) -> Result<(), EngineError> {
        self.pending.push(record);
        if self.pending.len() >= DECODE_BATCH_ROWS {
            self.flush_pending().await?;
        }
        Ok(())
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
            let room = self.limits.max_rows - self.current.as_ref().map_or(0, |(_, file)| file.records as usize);
            let take = room.min(rows.num_rows() - offset);
            let slice = rows.slice(offset, take);
            let stamped = with_system_metadata(slice, &self.file_schema, &self.batch_id, self.next_row)?;
            self.next_row += take as i64;
            offset += take;
            let (writer, file) = self.open_file()?;
            writer.write(&stamped).await?;
            file.records += take as i64;
            if file.records as usize >= self.limits.max_rows {
                self.close_file().await?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<&mut (AsyncArrowWriter<BufWriter>, WrittenFile), EngineError> {
        if self.current.is_none() {
            let name = format!("part-{:05}.parquet", self.finished.len());
            let location = self.folder.clone().join(name.as_str());
            let sink = BufWriter::new(self.store.clone(), location.clone());
            let writer = AsyncArrowWriter::try_new(sink, self.file_schema.clone(), Some(writer_properties()))?;
            self.current = Some((
                writer,
                WrittenFile {
                    name,
                    location,
                    records: 0,
                    size: 0,
                },
            ));
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    async fn close_file(&mut self) -> Result<(), EngineError> {
        if let Some((writer, mut file)) = self.current.take() {
            writer.close().await?;
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
