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

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn rows(count: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
        let values = StringArray::from_iter_values((0..count).map(|i| format!("value-{i:08}")));
        RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap()
    }

    async fn values_of(store: &Arc<dyn object_store::ObjectStore>, file: &BatchFile) -> Vec<String> {
        let bytes: Bytes = store
            .get(&ObjectPath::from(file.path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        reader
            .flat_map(|batch| {
                let batch = batch.unwrap();
                let column = batch.column(0).as_string::<i32>().clone();
                column
                    .iter()
                    .map(|v| v.unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn writer(store: &Arc<dyn object_store::ObjectStore>, limits: SplitLimits) -> BatchWriter {
        BatchWriter::new(
            store.clone(),
            ObjectPath::from("batch"),
            BatchId::generate(),
            DatasetId::generate(),
            rows(0).schema(),
            limits,
        )
    }

    #[tokio::test]
    async fn files_are_cut_at_the_row_limit_keeping_every_row_in_order() {
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let limits = SplitLimits {
            max_rows: 1000,
            max_bytes: usize::MAX,
            row_group_bytes: 1 << 20,
        };
        let mut writer = writer(&store, limits);
        let all = rows(2500);
        // Writes that straddle a cut: 700 rows, then 1,800.
        writer.write(&all.slice(0, 700)).await.unwrap();
        writer.write(&all.slice(700, 1800)).await.unwrap();
        let files = writer.finish().await.unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
        );
        assert_eq!(files.iter().map(|f| f.records).collect::<Vec<_>>(), [1000, 1000, 500]);
        let mut read = Vec::new();
        for file in &files {
            let values = values_of(&store, file).await;
            assert_eq!(values.len() as i64, file.records);
            read.extend(values);
        }
        let expected: Vec<String> = (0..2500).map(|i| format!("value-{i:08}")).collect();
        assert_eq!(read, expected);
    }

    #[tokio::test]
    async fn a_file_is_closed_once_it_reaches_the_size_limit() {
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let limits = SplitLimits {
            max_rows: 1_000_000,
            max_bytes: 1,
            row_group_bytes: 1 << 20,
        };
        let mut writer = writer(&store, limits);
        for _ in 0..3 {
            writer.write(&rows(10)).await.unwrap();
        }
        let files = writer.finish().await.unwrap();
        assert_eq!(files.iter().map(|f| f.records).collect::<Vec<_>>(), [10, 10, 10]);
        assert!(files.iter().all(|f| f.size > 0));
    }

    #[tokio::test]
    async fn an_empty_batch_still_has_one_file_with_the_columns() {
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let files = writer(&store, SplitLimits::default()).finish().await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].records, 0);
        assert!(values_of(&store, &files[0]).await.is_empty());
    }
}
