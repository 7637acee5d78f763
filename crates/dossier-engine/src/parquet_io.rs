//! Reading Parquet files from the lake: an `AsyncFileReader` over the object store, so the
//! parquet crate fetches only the byte ranges (footer, row groups, columns) it needs.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use dossier_storage::Lake;

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

/// One Parquet file of the lake, read by ranges.
#[derive(Clone, Debug)]
pub struct LakeFileReader {
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
}

impl LakeFileReader {
    pub fn new(lake: &Lake, location: ObjectPath) -> Self {
        Self {
            store: lake.store().clone(),
            location,
        }
    }

    /// A record-batch stream builder over this file.
    pub async fn builder(self) -> Result<ParquetRecordBatchStreamBuilder<Self>, ParquetError> {
        ParquetRecordBatchStreamBuilder::new(self).await
    }

    /// A builder that also loads the page index, for reads with a row selection: pages without
    /// a selected row are then neither fetched nor decompressed.
    pub async fn selective_builder(self) -> Result<ParquetRecordBatchStreamBuilder<Self>, ParquetError> {
        // Only the offset index (where pages start) is needed to skip them; files written
        // without one read as before.
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        ParquetRecordBatchStreamBuilder::new_with_options(self, options).await
    }
}

impl AsyncFileReader for LakeFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.location, range).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.location, &ranges).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut LakeFileReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let options = GetOptions {
                range: Some(GetRange::Suffix(suffix as u64)),
                ..Default::default()
            };
            let result = self.store.get_opts(&self.location, options).await.map_err(external)?;
            result.bytes().await.map_err(external)
        }
        .boxed()
    }
}

/// Streams decoded at once by [`decode_in_parallel`]: one per core.
const STREAMS_DECODED_AT_ONCE: usize = 2;

/// Decodes each stream whole, in order, each on a blocking thread of its own, two at a time.
/// Decoding is CPU work, and a job runs on a single-threaded runtime: read in turn, several
/// files would decode on one core.
pub async fn decode_in_parallel<T: Send + 'static>(
    streams: Vec<(T, ParquetRecordBatchStream<LakeFileReader>)>,
) -> Result<Vec<(T, Vec<RecordBatch>)>, ParquetError> {
    let handle = tokio::runtime::Handle::current();
    futures::stream::iter(streams.into_iter().map(|(tag, stream)| {
        let handle = handle.clone();
        async move {
            let batches = tokio::task::spawn_blocking(move || handle.block_on(stream.try_collect::<Vec<_>>()))
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))??;
            Ok((tag, batches))
        }
    }))
    .buffered(STREAMS_DECODED_AT_ONCE)
    .try_collect()
    .await
}
