//! `BatchWriter`: exported rows into zstd Parquet files of one batch, split by rows and size.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::time::now_millis;
use dossier_storage::meta::{BatchFile, FileKind};

use crate::EngineError;

/// Where files are cut (semantics.md "Export output").
#[derive(Debug, Clone, Copy)]
pub struct SplitLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub row_group_bytes: usize,
}

impl Default for SplitLimits {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
            max_bytes: 512 * 1024 * 1024,
            row_group_bytes: 128 * 1024 * 1024,
        }
    }
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    name: String,
    location: ObjectPath,
    rows: usize,
}

/// Writes one batch's files into its folder of the target dataset.
pub struct BatchWriter {
    store: Arc<dyn object_store::ObjectStore>,
    folder: ObjectPath,
    batch_id: BatchId,
    dataset_id: DatasetId,
    schema: SchemaRef,
    limits: SplitLimits,
    open: Option<OpenFile>,
    files: Vec<BatchFile>,
}

fn properties(limits: &SplitLimits) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3 is valid")))
        .set_max_row_group_bytes(Some(limits.row_group_bytes))
        .build()
}

impl BatchWriter {
    pub fn new(
        store: Arc<dyn object_store::ObjectStore>,
        folder: ObjectPath,
        batch_id: BatchId,
        dataset_id: DatasetId,
        schema: SchemaRef,
        limits: SplitLimits,
    ) -> Self {
        Self {
            store,
            folder,
            batch_id,
            dataset_id,
            schema,
            limits,
            open: None,
            files: Vec::new(),
        }
    }

    /// Writes rows, cutting files at the row and size limits.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        let limits = self.limits;
        let mut offset = 0;
        while offset < rows.num_rows() {
            let file = self.open_file()?;
            let take = (limits.max_rows - file.rows).min(rows.num_rows() - offset);
            file.writer.write(&rows.slice(offset, take)).await?;
            file.rows += take;
            offset += take;
            let size = file.writer.bytes_written() + file.writer.in_progress_size();
            if file.rows >= limits.max_rows || size >= limits.max_bytes {
                self.close_file().await?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<&mut OpenFile, EngineError> {
        if self.open.is_none() {
            let name = format!("part-{:05}.parquet", self.files.len());
            let location = self.folder.clone().join(name.as_str());
            let sink = BufWriter::new(self.store.clone(), location.clone());
            let writer = AsyncArrowWriter::try_new(sink, self.schema.clone(), Some(properties(&self.limits)))?;
            self.open = Some(OpenFile {
                writer,
                name,
                location,
                rows: 0,
            });
        }
        Ok(self.open.as_mut().expect("just opened"))
    }

    async fn close_file(&mut self) -> Result<(), EngineError> {
        let Some(file) = self.open.take() else { return Ok(()) };
        file.writer.close().await?;
        let size = self.store.head(&file.location).await?.size as i64;
        self.files.push(BatchFile {
            file_id: format!("{}-{}", self.batch_id, self.files.len() + 1),
            batch_id: self.batch_id.clone(),
            dataset_id: self.dataset_id.clone(),
            kind: FileKind::Data,
            name: file.name,
            path: file.location.to_string(),
            size,
            records: file.rows as i64,
            created: now_millis(),
        });
        Ok(())
    }

    /// Closes the open file and returns every file of the batch. A batch with no rows gets one
    /// file with the schema and no rows, so readers always find the columns.
    pub async fn finish(mut self) -> Result<Vec<BatchFile>, EngineError> {
        if self.files.is_empty() && self.open.is_none() {
            self.open_file()?;
        }
        self.close_file().await?;
        Ok(self.files)
    }
}
