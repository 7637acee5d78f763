//! Rows set aside on local disk while an export keys a population too large to hold: Arrow IPC
//! streams written in order and read back once, in the same order.
//!
//! A spill that is read right after it is written (one shard, one bucket) stays in memory: it
//! only costs disk when there is more than one.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder};
use arrow::array::{Int64Builder, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::EngineError;

/// Rows buffered before they go to the file.
const ROWS_PER_BATCH: usize = 64 * 1024;

enum Sink {
    Memory(Vec<RecordBatch>),
    Disk {
        path: PathBuf,
        writer: Box<StreamWriter<BufWriter<File>>>,
    },
}

/// One spill: batches of a fixed schema, appended, then read back in order.
pub struct Spill {
    schema: SchemaRef,
    sink: Sink,
}

impl Spill {
    pub fn memory(schema: SchemaRef) -> Self {
        Self {
            schema,
            sink: Sink::Memory(Vec::new()),
        }
    }

    pub fn disk(schema: SchemaRef, path: PathBuf) -> Result<Self, EngineError> {
        let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let writer = Box::new(StreamWriter::try_new(file, &schema)?);
        Ok(Self {
            schema,
            sink: Sink::Disk { path, writer },
        })
    }

    fn append(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        match &mut self.sink {
            Sink::Memory(batches) => batches.push(batch),
            Sink::Disk { writer, .. } => writer.write(&batch)?,
        }
        Ok(())
    }

    /// Every batch written, in order; a disk spill's file is removed once read.
    pub fn into_batches(self) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, EngineError>>>, EngineError> {
        match self.sink {
            Sink::Memory(batches) => Ok(Box::new(batches.into_iter().map(Ok))),
            Sink::Disk { path, mut writer } => {
                writer.finish()?;
                drop(writer);
                let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, File::open(&path)?), None)?;
                // Unlinked now: the open handle keeps the data readable, and nothing is left
                // behind whatever happens next.
                std::fs::remove_file(&path)?;
                Ok(Box::new(reader.map(|b| b.map_err(EngineError::from))))
            }
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// A row of pass one on its way to a bucket or a shard: whose it is (a 128-bit hash of an
/// identity, or a graph component), which fragment, and what the profile's facts need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRow {
    pub key: u128,
    pub file: u32,
    pub row: u32,
    pub row_id: i64,
    pub namespace: u16,
}

pub fn fragment_schema(with_key_id: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("key_hi", DataType::UInt64, false),
        Field::new("key_lo", DataType::UInt64, false),
        Field::new("file", DataType::UInt32, false),
        Field::new("row", DataType::UInt32, false),
        Field::new("row_id", DataType::Int64, false),
        Field::new("namespace", DataType::UInt16, false),
    ];
    if with_key_id {
        fields.push(Field::new("key_id", DataType::Utf8, false));
    }
    Arc::new(Schema::new(fields))
}

/// Buffers [`FragmentRow`]s (and, when keyed by primary identity, the identity's id) into a spill.
pub struct FragmentSpill {
    spill: Spill,
    hi: UInt64Builder,
    lo: UInt64Builder,
    file: UInt32Builder,
    row: UInt32Builder,
    row_id: Int64Builder,
    namespace: UInt16Builder,
    key_id: Option<StringBuilder>,
    buffered: usize,
}

impl FragmentSpill {
    pub fn new(spill: Spill) -> Self {
        let with_key_id = spill.schema().fields().len() > 6;
        Self {
            spill,
            hi: UInt64Builder::new(),
            lo: UInt64Builder::new(),
            file: UInt32Builder::new(),
            row: UInt32Builder::new(),
            row_id: Int64Builder::new(),
            namespace: UInt16Builder::new(),
            key_id: with_key_id.then(StringBuilder::new),
            buffered: 0,
        }
    }

    pub fn push(&mut self, row: FragmentRow, key_id: Option<&str>) -> Result<(), EngineError> {
        self.hi.append_value((row.key >> 64) as u64);
        self.lo.append_value(row.key as u64);
        self.file.append_value(row.file);
        self.row.append_value(row.row);
        self.row_id.append_value(row.row_id);
        self.namespace.append_value(row.namespace);
        if let Some(ids) = &mut self.key_id {
            ids.append_value(key_id.unwrap_or_default());
        }
        self.buffered += 1;
        if self.buffered == ROWS_PER_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EngineError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.hi.finish()),
            Arc::new(self.lo.finish()),
            Arc::new(self.file.finish()),
            Arc::new(self.row.finish()),
            Arc::new(self.row_id.finish()),
            Arc::new(self.namespace.finish()),
        ];
        if let Some(ids) = &mut self.key_id {
            columns.push(Arc::new(ids.finish()));
        }
        self.buffered = 0;
        let batch = RecordBatch::try_new(self.spill.schema().clone(), columns)?;
        self.spill.append(batch)
    }

    pub fn finish(mut self) -> Result<Spill, EngineError> {
        self.flush()?;
        Ok(self.spill)
    }
}

/// Reads back the rows of a [`FragmentSpill`], batch by batch, with the key ids when spilled.
pub fn fragment_rows(batch: &RecordBatch) -> (Vec<FragmentRow>, Option<&StringArray>) {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, UInt16Type, UInt32Type, UInt64Type};
    let hi = batch.column(0).as_primitive::<UInt64Type>();
    let lo = batch.column(1).as_primitive::<UInt64Type>();
    let file = batch.column(2).as_primitive::<UInt32Type>();
    let row = batch.column(3).as_primitive::<UInt32Type>();
    let row_id = batch.column(4).as_primitive::<Int64Type>();
    let namespace = batch.column(5).as_primitive::<UInt16Type>();
    let rows = (0..batch.num_rows())
        .map(|i| FragmentRow {
            key: ((hi.value(i) as u128) << 64) | lo.value(i) as u128,
            file: file.value(i),
            row: row.value(i),
            row_id: row_id.value(i),
            namespace: namespace.value(i),
        })
        .collect();
    (rows, batch.columns().get(6).map(|c| c.as_string::<i32>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u32) -> Vec<FragmentRow> {
        (0..n)
            .map(|i| FragmentRow {
                key: (u128::from(i) << 70) | u128::from(i),
                file: i % 7,
                row: i,
                row_id: -i64::from(i),
                namespace: (i % 3) as u16,
            })
            .collect()
    }

    fn read_all(spill: Spill) -> (Vec<FragmentRow>, Vec<String>) {
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for batch in spill.into_batches().unwrap() {
            let batch = batch.unwrap();
            let (rows, key_ids) = fragment_rows(&batch);
            out.extend(rows);
            if let Some(key_ids) = key_ids {
                ids.extend(key_ids.iter().map(|v| v.unwrap().to_owned()));
            }
        }
        (out, ids)
    }

    #[test]
    fn a_disk_spill_reads_back_every_row_in_order_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bucket-0.arrows");
        let mut spill = FragmentSpill::new(Spill::disk(fragment_schema(true), path.clone()).unwrap());
        let written = rows(ROWS_PER_BATCH as u32 + 17);
        for row in &written {
            spill.push(*row, Some(&format!("id-{}", row.row))).unwrap();
        }
        let (read, ids) = read_all(spill.finish().unwrap());
        assert_eq!(read, written);
        assert_eq!(ids.len(), written.len());
        assert_eq!(ids[5], "id-5");
        assert!(!path.exists(), "the spill file is removed once read");
    }

    #[test]
    fn a_memory_spill_reads_back_the_same_rows() {
        let mut spill = FragmentSpill::new(Spill::memory(fragment_schema(false)));
        let written = rows(1000);
        for row in &written {
            spill.push(*row, None).unwrap();
        }
        let (read, ids) = read_all(spill.finish().unwrap());
        assert_eq!(read, written);
        assert!(ids.is_empty());
    }
}
