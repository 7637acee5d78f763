//! COMPLETE: converting an ingestion batch's uploads into fragments and committing it.
//!
//! The reading and checking of records runs on a blocking thread (it is CPU work on a `Read`),
//! handing valid records over a bounded channel to the task that encodes Parquet (its columns on
//! every core, see [`super::encode`]): memory stays bounded whatever the file size. Parquet
//! uploads are read a chunk at a time and, when their columns have the dataset's types, checked
//! on Arrow and written as they are ([`super::arrow_intake`]), with the JSON path's outcome. The batch becomes visible only in the final
//! metadata transaction; until then its files sit under the staging prefix or in a batch folder
//! no reader looks at, and a crash at any point leaves the batch `processing`, to be run again at
//! the next start.

use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetResultPayload, ObjectStoreExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use dossier_model::catalog::{Batch, BatchError, BatchStatus, Dataset, InputFormat};
use dossier_model::ids::BatchId;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_model::xdm::{XdmSchema, XdmType};
use dossier_storage::meta::{BatchFile, BatchOutcome, FileKind};
use dossier_storage::{Lake, MetaStore};

use super::arrow_intake::{ArrowIntake, Checked, Rejected, json_records};
use super::json_lines::read_json_lines_parallel;
use super::records::{SourceRecord, read_csv, read_multi_line_json};
use super::validate::{RowError, check_record, sort_record};
use super::writer::{DECODE_BATCH_ROWS, EncodeSettings, FileLimits, FragmentWriter, WrittenFile};
use crate::EngineError;
use crate::metrics::IngestCounts;
use crate::profiles::build::shards::sidecar_location;

/// At most this many row errors are kept for `GET /batches/{id}/failed`; all are counted.
pub const MAX_RECORDED_ROW_ERRORS: usize = 100_000;
const HANDOFF_ROWS: usize = 4096;

/// What reading one batch's uploads found.
#[derive(Debug, Default)]
struct ReadReport {
    records_read: u64,
    rejected_rows: u64,
    errors: Vec<RowError>,
}

impl ReadReport {
    fn reject(&mut self, file: &str, row: u64, problems: Vec<(Option<String>, String)>) {
        self.rejected_rows += 1;
        for (field, reason) in problems {
            if self.errors.len() < MAX_RECORDED_ROW_ERRORS {
                self.errors.push(RowError {
                    file: file.to_owned(),
                    row,
                    field,
                    reason,
                });
            }
        }
    }
}

/// Everything `complete_batch` needs about the batch.
pub struct IngestTarget {
    pub tenant: Tenant,
    pub batch: Batch,
    pub dataset: Dataset,
    pub schema: Arc<XdmSchema>,
}

fn input_format(batch: &Batch) -> (InputFormat, bool) {
    let input = batch.input_format.as_ref();
    let format = input
        .and_then(|i| i.get("format"))
        .and_then(|f| serde_json::from_value::<InputFormat>(f.clone()).ok())
        .unwrap_or(InputFormat::Json);
    let multi_line = input
        .and_then(|i| i.get("isMultiLineJson"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (format, multi_line)
}

/// CSV cells are text; this gives each the JSON type its field wants, so the same checks apply
/// to every format.
fn coerce_cell(schema: &XdmSchema, path: &str, cell: &str) -> Result<Value, String> {
    match schema.resolve_path(path) {
        Some(XdmType::Integer) => cell
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{cell}' is not a whole number")),
        Some(XdmType::Number) => cell
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .ok_or_else(|| format!("'{cell}' is not a number")),
        Some(XdmType::Boolean) => match cell.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("'{cell}' is not true or false")),
        },
        Some(XdmType::Object(_) | XdmType::Array(_) | XdmType::Map(_)) => {
            Err("objects, arrays and maps cannot be written in flat CSV; use JSON or Parquet".into())
        }
        _ => Ok(Value::String(cell.to_owned())),
    }
}

/// Valid rows on their way to the writer, in the order they were read.
enum Valid {
    /// Records as JSON values (JSON, CSV, and Parquet chunks the JSON path decided).
    Records(Vec<Value>),
    /// Rows already in the dataset's Arrow schema (Parquet chunks checked on Arrow).
    Rows(RecordBatch),
}

/// Reads one upload on the current (blocking) thread, sending valid records to `valid`.
fn read_upload(
    reader: impl std::io::Read,
    file: &str,
    format: InputFormat,
    multi_line: bool,
    schema: &XdmSchema,
    valid: &mpsc::Sender<Valid>,
    report: &mut ReadReport,
) -> Result<(), EngineError> {
    if (format, multi_line) == (InputFormat::Json, false) {
        return read_json_lines_upload(reader, file, schema, valid, report);
    }
    let mut chunk = Vec::with_capacity(HANDOFF_ROWS);
    let mut receiver_gone = false;
    let mut handle = |source: SourceRecord| {
        report.records_read += 1;
        match source.record {
            Err(reason) => report.reject(file, source.row, vec![(None, reason)]),
            Ok(record) => {
                let problems = check_record(schema, &record);
                if problems.is_empty() {
                    chunk.push(record);
                    if chunk.len() >= HANDOFF_ROWS
                        && valid.blocking_send(Valid::Records(std::mem::take(&mut chunk))).is_err()
                    {
                        receiver_gone = true;
                        return ControlFlow::Break(());
                    }
                } else {
                    report.reject(
                        file,
                        source.row,
                        problems.into_iter().map(|e| (Some(e.path), e.reason)).collect(),
                    );
                }
            }
        }
        ControlFlow::Continue(())
    };
    let read = match (format, multi_line) {
        (InputFormat::Json, false) => unreachable!("JSON lines are read by read_json_lines_upload"),
        (InputFormat::Json, true) => read_multi_line_json(reader, &mut handle),
        (InputFormat::Csv, _) => read_csv(reader, |path, cell| coerce_cell(schema, path, cell), &mut handle),
        (InputFormat::Parquet, _) => unreachable!("Parquet uploads are read by read_parquet_upload"),
    };
    read.map_err(|e| EngineError::Invalid(format!("cannot read upload '{file}': {e}")))?;
    if !chunk.is_empty() && !receiver_gone {
        let _ = valid.blocking_send(Valid::Records(chunk));
    }
    Ok(())
}

/// JSON lines, parsed, checked and decoded on every core ([`read_json_lines_parallel`]).
fn read_json_lines_upload(
    reader: impl std::io::Read,
    file: &str,
    schema: &XdmSchema,
    valid: &mpsc::Sender<Valid>,
    report: &mut ReadReport,
) -> Result<(), EngineError> {
    let arrow_schema = schema.arrow_schema();
    let threads = EncodeSettings::default().threads;
    read_json_lines_parallel(reader, schema, &arrow_schema, threads, |checked| {
        report.records_read += checked.records;
        for (row, problems) in checked.rejected {
            report.reject(file, row, problems);
        }
        // A closed channel means the writer stopped; its error is the one reported.
        checked
            .valid
            .is_none_or(|rows| valid.blocking_send(Valid::Rows(rows)).is_ok())
    })
}

/// What one Parquet chunk came to: its valid rows and its refused ones.
struct CheckedChunk {
    valid: Valid,
    rejected: Vec<Rejected>,
}

/// Checks one Parquet chunk whose first row is `first_row` (0-based) of its file: on Arrow when
/// the file's columns allow it, else (or when the Arrow checks defer) record by record as JSON.
fn check_parquet_chunk(
    intake: Option<&ArrowIntake>,
    schema: &XdmSchema,
    rows: &RecordBatch,
    first_row: u64,
) -> Result<CheckedChunk, EngineError> {
    let checked = match intake {
        Some(intake) => intake.check(rows, first_row)?,
        None => Checked::AsJson(json_records(rows, first_row)?),
    };
    let records = match checked {
        Checked::Rows { valid, rejected } => {
            return Ok(CheckedChunk {
                valid: Valid::Rows(valid),
                rejected,
            });
        }
        Checked::AsJson(records) => records,
    };
    let mut valid = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for (row, record) in records {
        sort_record(schema, row, record, &mut valid, &mut rejected);
    }
    Ok(CheckedChunk {
        valid: Valid::Records(valid),
        rejected,
    })
}

/// Reads one Parquet upload a chunk at a time (bounded memory), checking each on a blocking
/// thread and sending its valid rows on; the writer encodes the previous chunk meanwhile.
async fn read_parquet_upload(
    lake: &Lake,
    location: &ObjectPath,
    schema: &Arc<XdmSchema>,
    valid: &mpsc::Sender<Valid>,
    report: &mut ReadReport,
) -> Result<(), EngineError> {
    let file = location.filename().unwrap_or_default().to_owned();
    let builder = crate::parquet_io::LakeFileReader::new(lake, location.clone())
        .builder()
        .await?;
    let intake = ArrowIntake::plan(builder.schema(), schema.clone()).map(Arc::new);
    let mut stream = builder.with_batch_size(DECODE_BATCH_ROWS).build()?;
    let mut first_row = 0;
    while let Some(rows) = stream.next().await {
        let rows = rows?;
        let count = rows.num_rows() as u64;
        let (intake, schema) = (intake.clone(), schema.clone());
        let checked =
            tokio::task::spawn_blocking(move || check_parquet_chunk(intake.as_deref(), &schema, &rows, first_row))
                .await??;
        report.records_read += count;
        for (row, problems) in checked.rejected {
            report.reject(&file, row, problems);
        }
        if valid.send(checked.valid).await.is_err() {
            // The writer stopped; its error is the one reported.
            return Ok(());
        }
        first_row += count;
    }
    Ok(())
}

/// A reader of one upload, for a blocking thread. An upload on local disk is read from its file:
/// as a stream it comes in 8 KiB pieces, each read by a blocking task of its own, and the
/// reading thread spent its time waiting on the runtime between them (perf, 1 M JSON lines).
async fn upload_reader(lake: &Lake, location: &ObjectPath) -> Result<Box<dyn std::io::Read + Send>, EngineError> {
    let upload = lake.store().get(location).await?;
    let range = upload.range.clone();
    match upload.payload {
        GetResultPayload::File(file, path) => {
            let file = tokio::task::spawn_blocking(move || {
                let mut file = file;
                file.seek(SeekFrom::Start(range.start))
                    .map_err(|e| EngineError::Invalid(format!("cannot read upload '{}': {e}", path.display())))?;
                Ok::<_, EngineError>(file.take(range.end - range.start))
            })
            .await??;
            Ok(Box::new(file))
        }
        GetResultPayload::Stream(stream) => Ok(Box::new(SyncIoBridge::new(StreamReader::new(
            stream.map_err(std::io::Error::other),
        )))),
    }
}

/// Reads every upload of the batch, writing valid records as fragments under the staging prefix.
async fn convert_uploads(
    lake: &Lake,
    target: &IngestTarget,
    uploads: Vec<ObjectPath>,
) -> Result<(ReadReport, Vec<WrittenFile>), EngineError> {
    let (format, multi_line) = input_format(&target.batch);
    let (valid_tx, mut valid_rx) = mpsc::channel::<Valid>(4);
    let mut writer = FragmentWriter::new(
        lake.store().clone(),
        Lake::output_prefix(&target.tenant, &target.batch.id),
        target.batch.id.as_str(),
        target.schema.arrow_schema(),
        FileLimits::default(),
    )?;
    // Exports key every file of a profile-enabled dataset (records and events) from its sidecar.
    if target.dataset.is_profile_enabled() {
        writer = writer.with_key_sidecars(target.schema.clone());
    }
    let writing = async move {
        while let Some(valid) = valid_rx.recv().await {
            match valid {
                Valid::Records(records) => {
                    for record in records {
                        writer.push(record).await?;
                    }
                }
                Valid::Rows(rows) => writer.push_rows(rows).await?,
            }
        }
        writer.finish().await
    };
    let reading = async {
        let mut report = ReadReport::default();
        for location in uploads {
            if format == InputFormat::Parquet {
                read_parquet_upload(lake, &location, &target.schema, &valid_tx, &mut report).await?;
                continue;
            }
            let file = location.filename().unwrap_or_default().to_owned();
            let schema = target.schema.clone();
            let tx = valid_tx.clone();
            let reader = upload_reader(lake, &location).await?;
            report = tokio::task::spawn_blocking(move || {
                let mut report = report;
                read_upload(reader, &file, format, multi_line, &schema, &tx, &mut report).map(|()| report)
            })
            .await??;
        }
        drop(valid_tx);
        Ok::<_, EngineError>(report)
    };
    let (report, written) = tokio::join!(reading, writing);
    Ok((report?, written?))
}

async fn write_row_errors(
    lake: &Lake,
    target: &IngestTarget,
    errors: &[RowError],
) -> Result<Option<WrittenFile>, EngineError> {
    if errors.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    for error in errors {
        serde_json::to_writer(&mut body, error).map_err(|e| EngineError::Invalid(e.to_string()))?;
        body.push(b'\n');
    }
    let name = "failed/errors.json".to_owned();
    let location = Lake::output_prefix(&target.tenant, &target.batch.id)
        .join("failed")
        .join("errors.json");
    let size = body.len() as i64;
    lake.put(&location, Bytes::from(body)).await?;
    Ok(Some(WrittenFile {
        name,
        location,
        records: errors.len() as i64,
        size,
    }))
}

fn batch_file(target: &IngestTarget, index: usize, kind: FileKind, file: &WrittenFile, now: i64) -> BatchFile {
    let batch = target.batch.id.as_str();
    let file_id = match kind {
        FileKind::Data => format!("{batch}-{}", index + 1),
        FileKind::Failed => format!("{batch}-failed-{}", index + 1),
    };
    // `name` is relative to the output prefix; promotion keeps that layout in the batch folder.
    let path = file.name.split('/').fold(
        Lake::batch_prefix(&target.tenant, &target.dataset.id, &target.batch.id),
        ObjectPath::join,
    );
    BatchFile {
        file_id,
        batch_id: target.batch.id.clone(),
        dataset_id: target.dataset.id.clone(),
        kind,
        name: file.name.rsplit('/').next().unwrap_or(&file.name).to_owned(),
        path: path.to_string(),
        size: file.size,
        records: file.records,
        created: now,
    }
}

fn summary_errors(report: &ReadReport, batch: &BatchId, accepted: bool) -> Vec<BatchError> {
    if report.rejected_rows == 0 {
        return Vec::new();
    }
    let first = report.errors.first().map(|e| {
        let field = e.field.as_deref().map(|f| format!(" field '{f}':")).unwrap_or_default();
        format!(" First: {} row {}:{field} {}.", e.file, e.row, e.reason)
    });
    let outcome = if accepted {
        "were skipped (partial ingestion)"
    } else {
        "were rejected, so nothing was loaded"
    };
    vec![BatchError {
        code: "INGEST-ROWS-400".into(),
        description: format!(
            "{} of {} rows {outcome}.{} Every row error: GET /data/foundation/export/batches/{batch}/failed",
            report.rejected_rows,
            report.records_read,
            first.unwrap_or_default()
        ),
    }]
}

/// Exactly the uploads recorded while the batch was loading: one still streaming when the batch
/// left `loading` is refused by its own request, never half read here. Files staged directly
/// under `uploads/` by a version that did not record uploads count too (an upgrade keeps the
/// open batches it finds); a recorded upload of the same name wins.
async fn batch_uploads(meta: &MetaStore, lake: &Lake, target: &IngestTarget) -> Result<Vec<ObjectPath>, EngineError> {
    let (tenant, batch_id) = (&target.tenant, &target.batch.id);
    let mut uploads: Vec<(String, ObjectPath)> = Vec::new();
    for upload in meta.batch_uploads(tenant, batch_id).await? {
        let path = ObjectPath::parse(&upload.path)
            .map_err(|e| EngineError::Invalid(format!("recorded upload '{}': {e}", upload.name)))?;
        uploads.push((upload.name, path));
    }
    let prefix = Lake::upload_prefix(tenant, batch_id);
    for object in lake.list(&prefix).await? {
        let relative: Vec<_> = object.location.prefix_match(&prefix).into_iter().flatten().collect();
        if let [name] = relative.as_slice()
            && !uploads.iter().any(|(recorded, _)| recorded == name.as_ref())
        {
            uploads.push((name.as_ref().to_owned(), object.location));
        }
    }
    uploads.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(uploads.into_iter().map(|(_, path)| path).collect())
}

/// Deletes a data file of a failed batch and its staged key sidecar, if it has one.
async fn delete_written(lake: &Lake, file: &WrittenFile) -> Result<(), EngineError> {
    lake.store().delete(&file.location).await?;
    match lake.store().delete(&sidecar_location(&file.location)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Converts and commits one `processing` ingestion batch. Returns the status it ended in with
/// what it read and kept, or `None` when the batch stopped being `processing` meanwhile (aborted).
pub async fn complete_batch(
    meta: &MetaStore,
    lake: &Lake,
    target: &IngestTarget,
) -> Result<Option<(BatchStatus, IngestCounts)>, EngineError> {
    let tenant = &target.tenant;
    let batch_id = &target.batch.id;
    lake.delete_prefix(&Lake::output_prefix(tenant, batch_id)).await?;
    let uploads = batch_uploads(meta, lake, target).await?;
    let (report, written) = convert_uploads(lake, target, uploads.clone()).await?;
    let accepted = report.rejected_rows == 0 || target.batch.partial_ingestion;
    let failed_file = write_row_errors(lake, target, &report.errors).await?;
    let mut errors = summary_errors(&report, batch_id, accepted);
    let no_rows = report.records_read == 0;
    if no_rows {
        errors.push(BatchError {
            code: "INGEST-EMPTY-400".into(),
            description:
                "The batch has no records: upload at least one file with PUT .../files/{name} before COMPLETE.".into(),
        });
    }
    let success = accepted && !no_rows;
    let now = now_millis();
    let mut files: Vec<BatchFile> = Vec::new();
    if success {
        files.extend(
            written
                .iter()
                .enumerate()
                .map(|(i, f)| batch_file(target, i, FileKind::Data, f, now)),
        );
    }
    if let Some(failed) = &failed_file {
        files.push(batch_file(target, 0, FileKind::Failed, failed, now));
    }
    if !success {
        // Data files of a failed batch are never promoted: nothing of it can become readable.
        for file in &written {
            delete_written(lake, file).await?;
        }
    }
    lake.promote_staged(tenant, &target.dataset.id, batch_id).await?;

    let record_count: i64 = if success {
        written.iter().map(|f| f.records).sum()
    } else {
        0
    };
    let outcome = BatchOutcome {
        status: if success {
            BatchStatus::Success
        } else {
            BatchStatus::Failed
        },
        completed: now,
        records_read: report.records_read as i64,
        record_count,
        size: if success {
            written.iter().map(|f| f.size).sum()
        } else {
            0
        },
        errors,
        files,
    };
    let committed = meta.commit_batch(tenant, batch_id, &outcome).await?;
    if !committed {
        lake.delete_prefix(&Lake::batch_prefix(tenant, &target.dataset.id, batch_id))
            .await?;
        return Ok(None);
    }
    lake.remove_staging(tenant, batch_id).await?;
    tracing::info!(batch_id = %batch_id, status = %outcome.status, records = record_count, rejected = report.rejected_rows, "ingestion batch committed");
    let counts = IngestCounts {
        read: report.records_read,
        rejected: report.rejected_rows,
        loaded: record_count.max(0) as u64,
        bytes: outcome.files.iter().map(|f| f.size.max(0) as u64).sum(),
    };
    Ok(Some((outcome.status, counts)))
}
