//! The `incremental-1pct` job's batch: after the load, one more batch of the loyalty dataset
//! touching 1 % of the profiles, then an incremental export from just before it.
//!
//! The batch repeats every n-th record of the loaded loyalty file (spread through it, as the
//! customers an evening's activity touches are), unchanged: a later fragment with the same
//! values, so the profiles' merged rows stay what every other job (and a later run on the same
//! data dir, `--reuse-load`) expects, while the touched profiles' last update moves past the
//! job's timestamp. Dossier must still find them and merge each one in full.

use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use super::plan::PeerSource;
use crate::remote::Remote;
use crate::workload::{LoadedDataset, ingest_files};

/// The dataset the batch goes to.
const DATASET: &str = "loyalty";
/// The batch's file, relative to its folder (the path a manifest entry gives).
const FILE: &str = "loyalty/part-00000.parquet";

/// The one-percent batch: written once per workload, in `work`.
pub struct TouchBatch {
    folder: PathBuf,
    /// Records in the batch: the profiles it touches.
    pub records: usize,
}

impl TouchBatch {
    /// Writes (or reuses) the batch for `profiles` customers from the loaded loyalty file in
    /// `data`.
    pub fn prepare(work: &Path, data: &Path, manifest: &Value, profiles: u64) -> anyhow::Result<Self> {
        let folder = work.join(format!("touch-1pct-{profiles}"));
        let file = folder.join(FILE);
        let source = manifest["datasets"][DATASET]["files"][0]["path"]
            .as_str()
            .context("the workload has no loyalty file")?;
        if !file.exists() {
            std::fs::create_dir_all(file.parent().expect("a file has a folder"))?;
            write_every_nth(&data.join(source), &file, (profiles / 100).max(1) as usize)?;
        }
        let records = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file)?)?
            .metadata()
            .file_metadata()
            .num_rows() as usize;
        Ok(Self { folder, records })
    }

    /// Ingests the batch into the loaded loyalty dataset; gives its commit time.
    pub async fn ingest(&self, remote: &Remote, loaded: &[LoadedDataset]) -> anyhow::Result<i64> {
        let dataset = loaded
            .iter()
            .find(|d| d.key == DATASET)
            .context("the load has no loyalty dataset")?;
        let done = ingest_files(
            remote,
            &self.folder,
            &dataset.dataset_id,
            "parquet",
            &[json!({"path": FILE})],
        )
        .await?;
        done["completed"].as_i64().context("the batch has no completion time")
    }

    /// The batch as a source of the peers, ingested at `completed_ms` after the loaded ones.
    pub fn peer_source(&self, loyalty: &PeerSource, completed_ms: i64, order: usize) -> PeerSource {
        PeerSource {
            key: format!("{DATASET}-1pct"),
            files: vec![self.folder.join(FILE).to_string_lossy().into_owned()],
            ingested_ms: completed_ms,
            order,
            ..loyalty.clone()
        }
    }
}

/// Writes `wanted` rows of `source`, evenly spread through it, to `target` (zstd, as the
/// generator writes).
fn write_every_nth(source: &Path, target: &Path, wanted: usize) -> anyhow::Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(source)?)?;
    let total = reader.metadata().file_metadata().num_rows() as usize;
    let schema = reader.schema().clone();
    let step = (total / wanted.max(1)).max(1);
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(target)?, schema, Some(properties))?;
    let (mut offset, mut written) = (0usize, 0usize);
    for batch in reader.build()? {
        let batch: RecordBatch = batch?;
        let first = offset.div_ceil(step) * step;
        let picked: Vec<u32> = (first..offset + batch.num_rows())
            .step_by(step)
            .take(wanted - written)
            .map(|row| (row - offset) as u32)
            .collect();
        if !picked.is_empty() {
            writer.write(&take_record_batch(&batch, &UInt32Array::from(picked.clone()))?)?;
            written += picked.len();
        }
        offset += batch.num_rows();
        if written == wanted {
            break;
        }
    }
    writer.close()?;
    Ok(())
}
