//! Parquet encoding spread over threads: the column chunks of a row group are independent, so
//! each Arrow batch's leaf columns are encoded and compressed in parallel, then appended to the
//! file in schema order. The bytes are identical to a single-threaded `ArrowWriter`'s with the
//! same properties (the same writers run on the same data); only the wall time changes.
//!
//! Encoding was ingestion's largest single cost (Parquet levels, dictionaries and zstd), and
//! one `ArrowWriter` runs on one core: on the 2-core reference machine the second core idled
//! while a batch was encoded.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Where the file writer puts its bytes; the caller drains them into the lake between batches,
/// so at most one row group's encoded bytes (what `ArrowWriter` holds too) sit in memory.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One Parquet file being encoded, a row group at a time, on up to `threads` threads.
pub struct ParallelEncoder {
    schema: SchemaRef,
    file: SerializedFileWriter<SharedBuffer>,
    factory: ArrowRowGroupWriterFactory,
    columns: Vec<ArrowColumnWriter>,
    buffer: SharedBuffer,
    group_rows: usize,
    max_group_rows: usize,
    groups: usize,
    threads: usize,
}

impl ParallelEncoder {
    /// A file of `schema` with `properties`; `threads` is clamped to at least one.
    pub fn try_new(schema: SchemaRef, properties: WriterProperties, threads: usize) -> Result<Self, ParquetError> {
        let buffer = SharedBuffer::default();
        let max_group_rows = properties.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        // `ArrowWriter` embeds the Arrow schema in the footer, so readers get back the exact
        // types (time zones, map field names); its low-level halves then do the encoding.
        let (file, factory) =
            ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(properties))?.into_serialized_writer()?;
        let columns = factory.create_column_writers(0)?;
        Ok(Self {
            schema,
            file,
            factory,
            columns,
            buffer,
            group_rows: 0,
            max_group_rows,
            groups: 0,
            threads: threads.max(1),
        })
    }

    /// Encodes `rows`, closing row groups as they fill.
    pub fn write(&mut self, rows: &RecordBatch) -> Result<(), ParquetError> {
        let mut offset = 0;
        while offset < rows.num_rows() {
            let take = (self.max_group_rows - self.group_rows).min(rows.num_rows() - offset);
            self.encode(&rows.slice(offset, take))?;
            self.group_rows += take;
            offset += take;
            if self.group_rows >= self.max_group_rows {
                self.close_group()?;
            }
        }
        Ok(())
    }

    /// The bytes written since the last call: the header, and each closed row group.
    pub fn take_bytes(&self) -> Vec<u8> {
        self.buffer.take()
    }

    /// Closes the last row group and writes the footer; returns the bytes not yet taken.
    pub fn finish(mut self) -> Result<Vec<u8>, ParquetError> {
        if self.group_rows > 0 {
            self.close_group()?;
        }
        self.file.close()?;
        Ok(self.buffer.take())
    }

    fn close_group(&mut self) -> Result<(), ParquetError> {
        self.groups += 1;
        let next = self.factory.create_column_writers(self.groups)?;
        let columns = std::mem::replace(&mut self.columns, next);
        let mut group = self.file.next_row_group()?;
        for column in columns {
            column.close()?.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.group_rows = 0;
        Ok(())
    }

    fn encode(&mut self, rows: &RecordBatch) -> Result<(), ParquetError> {
        let mut leaves = Vec::with_capacity(self.columns.len());
        for (field, column) in self.schema.fields().iter().zip(rows.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        let work: Vec<Mutex<(&mut ArrowColumnWriter, ArrowLeafColumn)>> =
            self.columns.iter_mut().zip(leaves).map(Mutex::new).collect();
        encode_leaves(&work, self.threads)
    }
}

/// Writes every leaf into its column writer, `threads` threads taking the next leaf as they
/// finish one (leaves differ a lot in cost: a map of maps against a boolean).
fn encode_leaves(
    work: &[Mutex<(&mut ArrowColumnWriter, ArrowLeafColumn)>],
    threads: usize,
) -> Result<(), ParquetError> {
    let next = AtomicUsize::new(0);
    let run = || -> Result<(), ParquetError> {
        loop {
            let Some(slot) = work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            let mut guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let (writer, leaf) = &mut *guard;
            writer.write(leaf)?;
        }
    };
    let helpers = (threads - 1).min(work.len().saturating_sub(1));
    if helpers == 0 {
        return run();
    }
    std::thread::scope(|scope| {
        let spawned: Vec<_> = (0..helpers).map(|_| scope.spawn(run)).collect();
        let mut outcome = run();
        for helper in spawned {
            let joined = helper
                .join()
                .unwrap_or_else(|_| Err(ParquetError::General("a Parquet encoding thread panicked".into())));
            outcome = outcome.and(joined);
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{Compression, ZstdLevel};

    use super::*;

    fn rows(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let numbers: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + n));
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            (from..from + n).map(|i| format!("v{}", i % 7)),
        ));
        RecordBatch::try_new(schema, vec![numbers, text]).unwrap()
    }

    fn properties(group_rows: usize) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
            .set_max_row_group_row_count(Some(group_rows))
            .build()
    }

    fn encode(threads: usize, group_rows: usize, batches: &[RecordBatch]) -> Vec<u8> {
        let mut encoder = ParallelEncoder::try_new(batches[0].schema(), properties(group_rows), threads).unwrap();
        let mut bytes = Vec::new();
        for batch in batches {
            encoder.write(batch).unwrap();
            bytes.extend(encoder.take_bytes());
        }
        bytes.extend(encoder.finish().unwrap());
        bytes
    }

    #[test]
    fn threads_change_nothing_in_the_file_and_row_groups_split_where_asked() {
        let batches = [rows(0, 700), rows(700, 700), rows(1400, 5)];
        let one = encode(1, 500, &batches);
        let four = encode(4, 500, &batches);
        assert_eq!(one, four, "the same writers on the same data write the same bytes");

        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(four)).unwrap();
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [500, 500, 405]);
        assert_eq!(reader.schema().fields(), batches[0].schema().fields());
        let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let all = arrow::compute::concat_batches(&batches[0].schema(), &read).unwrap();
        let expected = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(all, expected, "rows come back in order");
    }
}
