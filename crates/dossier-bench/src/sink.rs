//! Writing one dataset's records into numbered files: JSON lines or Parquet, a new file every
//! `records_per_file` records.
//!
//! Records are written as they come; at most one decode batch of records is held in memory (for
//! Parquet), plus one open row group, so memory does not depend on how many records are written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::json::reader::{Decoder, ReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::GenerateError;

/// Records decoded into one Arrow batch at a time (the engine's ingestion uses the same size).
const DECODE_BATCH_ROWS: usize = 8 * 1024;
/// Rows per Parquet row group: large enough for efficient scans, small enough that the open row
/// group stays a few tens of MiB.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The format of generated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One JSON object per line (AEP's `json` input format), `.jsonl`.
    #[default]
    JsonLines,
    /// Parquet typed with the dataset schema's Arrow schema, zstd-compressed, `.parquet`.
    Parquet,
}

impl OutputFormat {
    /// The name used on the command line, in the manifest and as the ingestion `inputFormat`.
    pub fn name(self) -> &'static str {
        match self {
            Self::JsonLines => "json",
            Self::Parquet => "parquet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::JsonLines => "jsonl",
            Self::Parquet => "parquet",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" | "jsonl" => Some(Self::JsonLines),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// A finished file: its path relative to the output folder (with `/`), records and size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WrittenFile {
    pub path: String,
    pub records: u64,
    pub bytes: u64,
}

enum OpenFile {
    Json(BufWriter<File>),
    Parquet(Box<ArrowWriter<File>>),
}

/// Writes the records of one dataset into `<out>/<folder>/part-NNNNN.<ext>`.
pub struct DatasetWriter<R> {
    folder: PathBuf,
    relative_folder: String,
    format: OutputFormat,
    records_per_file: u64,
    arrow_schema: SchemaRef,
    decoder: Option<Decoder>,
    pending: Vec<R>,
    open: Option<(OpenFile, WrittenFile)>,
    finished: Vec<WrittenFile>,
    _records: PhantomData<R>,
}

impl<R: Serialize> DatasetWriter<R> {
    /// A writer into `<out>/<folder>`, which it creates. `arrow_schema` types Parquet files.
    pub fn new(
        out: &Path,
        folder: &str,
        format: OutputFormat,
        records_per_file: u64,
        arrow_schema: SchemaRef,
    ) -> Result<Self, GenerateError> {
        assert!(records_per_file > 0, "records_per_file is checked by the caller");
        let path = out.join(folder);
        std::fs::create_dir_all(&path).map_err(|e| GenerateError::io(&path, e))?;
        Ok(Self {
            folder: path,
            relative_folder: folder.to_owned(),
            format,
            records_per_file,
            arrow_schema,
            decoder: None,
            pending: Vec::new(),
            open: None,
            finished: Vec::new(),
            _records: PhantomData,
        })
    }

    /// Writes one record, opening and closing files as the split requires.
    pub fn write(&mut self, record: R) -> Result<(), GenerateError> {
        if self.open.is_none() {
            self.open_file()?;
        }
        let (file, written) = self.open.as_mut().expect("just opened");
        match file {
            OpenFile::Json(out) => {
                serde_json::to_writer(&mut *out, &record)?;
                out.write_all(b"\n").map_err(|e| GenerateError::io(&self.folder, e))?;
            }
            OpenFile::Parquet(_) => self.pending.push(record),
        }
        written.records += 1;
        let full = written.records == self.records_per_file;
        if self.pending.len() >= DECODE_BATCH_ROWS {
            self.flush_pending()?;
        }
        if full {
            self.close_file()?;
        }
        Ok(())
    }

    /// Closes the open file and returns every file written, in order.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>, GenerateError> {
        self.close_file()?;
        Ok(self.finished)
    }

    fn open_file(&mut self) -> Result<(), GenerateError> {
        let name = format!("part-{:05}.{}", self.finished.len(), self.format.extension());
        let path = self.folder.join(&name);
        let sink = File::create(&path).map_err(|e| GenerateError::io(&path, e))?;
        let file = match self.format {
            OutputFormat::JsonLines => OpenFile::Json(BufWriter::with_capacity(1 << 20, sink)),
            OutputFormat::Parquet => {
                let writer = ArrowWriter::try_new(sink, self.arrow_schema.clone(), Some(parquet_properties()))?;
                OpenFile::Parquet(Box::new(writer))
            }
        };
        let written = WrittenFile {
            path: format!("{}/{name}", self.relative_folder),
            records: 0,
            bytes: 0,
        };
        self.open = Some((file, written));
        Ok(())
    }

    /// Decodes the queued records into Arrow batches and hands them to the Parquet writer.
    fn flush_pending(&mut self) -> Result<(), GenerateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some((OpenFile::Parquet(writer), _)) = self.open.as_mut() else {
            unreachable!("records are queued only for an open Parquet file");
        };
        if self.decoder.is_none() {
            let decoder = ReaderBuilder::new(self.arrow_schema.clone())
                .with_batch_size(DECODE_BATCH_ROWS)
                .build_decoder()?;
            self.decoder = Some(decoder);
        }
        let decoder = self.decoder.as_mut().expect("just built");
        decoder.serialize(&self.pending)?;
        self.pending.clear();
        while let Some(batch) = decoder.flush()? {
            writer.write(&batch)?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), GenerateError> {
        self.flush_pending()?;
        let Some((file, mut written)) = self.open.take() else {
            return Ok(());
        };
        let path = self.folder.join(written.path.rsplit('/').next().expect("a file name"));
        let io = |e| GenerateError::io(&path, e);
        match file {
            OpenFile::Json(mut out) => out.flush().map_err(io)?,
            OpenFile::Parquet(writer) => {
                writer.close()?;
            }
        }
        written.bytes = std::fs::metadata(&path).map_err(io)?.len();
        self.finished.push(written);
        Ok(())
    }
}

fn parquet_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3 is valid")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}
