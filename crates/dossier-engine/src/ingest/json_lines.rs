//! JSON lines read on every core: lines are cut into chunks in order, and the chunks of a round
//! are parsed, checked and decoded into Arrow on threads of their own, then handed on in order.
//!
//! Parsing a line into a `serde_json` value, checking it and decoding it is most of a JSON-lines
//! ingestion's time and each line is independent of the others, so this part scales with the
//! cores; the row numbers, the order of the rows and the errors are those of the sequential
//! reader ([`super::records::read_json_lines`]), which the other formats still use.

use std::io::{BufRead, BufReader, Read};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde_json::Value;

use dossier_model::xdm::XdmSchema;

use super::arrow_intake::Rejected;
use super::records::object_or_error;
use super::validate::sort_record;
use crate::EngineError;

/// Lines per chunk: large enough that a thread's hand-off is noise, small enough that a round
/// of chunks (one per thread) stays a few tens of MB.
pub const CHUNK_LINES: usize = 8 * 1024;

/// One chunk's outcome: its valid rows in the dataset's Arrow schema, its refused rows, and how
/// many records it read (blank lines are not records).
#[derive(Debug)]
pub struct LinesChecked {
    pub valid: Option<RecordBatch>,
    pub rejected: Vec<Rejected>,
    pub records: u64,
}

/// Reads JSON lines from `reader`, `threads` chunks at a time, giving each chunk's outcome to
/// `sink` in file order; stops early when `sink` returns false.
pub fn read_json_lines_parallel(
    reader: impl Read,
    schema: &XdmSchema,
    arrow_schema: &SchemaRef,
    threads: usize,
    mut sink: impl FnMut(LinesChecked) -> bool,
) -> Result<(), EngineError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut next_row = 0;
    loop {
        let mut round = Vec::with_capacity(threads.max(1));
        for _ in 0..threads.max(1) {
            let chunk = read_chunk(&mut reader, &mut next_row)?;
            if chunk.is_empty() {
                break;
            }
            round.push(chunk);
        }
        if round.is_empty() {
            return Ok(());
        }
        for outcome in check_round(round, schema, arrow_schema) {
            if !sink(outcome?) {
                return Ok(());
            }
        }
    }
}

/// Up to [`CHUNK_LINES`] lines with their 1-based row numbers; empty at the end of the input.
fn read_chunk(reader: &mut impl BufRead, next_row: &mut u64) -> Result<Vec<(u64, String)>, EngineError> {
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    while chunk.len() < CHUNK_LINES {
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| EngineError::Invalid(format!("cannot read the upload: {e}")))?;
        if read == 0 {
            break;
        }
        *next_row += 1;
        chunk.push((*next_row, line));
    }
    Ok(chunk)
}

/// Checks the chunks of a round, the first on this thread and the others on threads of their
/// own; the outcomes come back in the chunks' order.
fn check_round(
    round: Vec<Vec<(u64, String)>>,
    schema: &XdmSchema,
    arrow_schema: &SchemaRef,
) -> Vec<Result<LinesChecked, EngineError>> {
    let mut chunks = round.into_iter();
    let Some(first) = chunks.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || check_chunk(chunk, schema, arrow_schema)))
            .collect();
        let mut outcomes = vec![check_chunk(first, schema, arrow_schema)];
        for other in others {
            outcomes.push(
                other
                    .join()
                    .unwrap_or_else(|_| Err(EngineError::Invalid("a JSON-lines reading thread panicked".into()))),
            );
        }
        outcomes
    })
}

/// Parses, checks and decodes one chunk, as the sequential reader and the writer would.
fn check_chunk(
    chunk: Vec<(u64, String)>,
    schema: &XdmSchema,
    arrow_schema: &SchemaRef,
) -> Result<LinesChecked, EngineError> {
    let mut valid = Vec::with_capacity(chunk.len());
    let mut rejected = Vec::new();
    let mut records = 0;
    for (row, line) in chunk {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        records += 1;
        let record = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("line is not valid JSON: {e}"))
            .and_then(object_or_error);
        sort_record(schema, row, record, &mut valid, &mut rejected);
    }
    Ok(LinesChecked {
        valid: decode(arrow_schema, &valid)?,
        rejected,
        records,
    })
}

/// Valid records in the dataset's Arrow schema, as the writer's decoder would make them.
fn decode(arrow_schema: &SchemaRef, records: &[Value]) -> Result<Option<RecordBatch>, EngineError> {
    if records.is_empty() {
        return Ok(None);
    }
    let mut decoder = arrow::json::ReaderBuilder::new(arrow_schema.clone())
        .with_batch_size(records.len())
        .build_decoder()?;
    decoder.serialize(records)?;
    Ok(decoder.flush()?)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use serde_json::json;

    use super::super::records::read_json_lines;
    use super::*;

    /// What the sequential reader and the writer make of the same text.
    fn sequential(text: &str, schema: &XdmSchema) -> (Vec<Value>, Vec<Rejected>, u64) {
        let (mut valid, mut rejected, mut records) = (Vec::new(), Vec::new(), 0);
        read_json_lines(text.as_bytes(), |source| {
            records += 1;
            sort_record(schema, source.row, source.record, &mut valid, &mut rejected);
            ControlFlow::Continue(())
        })
        .unwrap();
        (valid, rejected, records)
    }

    #[test]
    fn chunks_on_threads_give_the_sequential_readers_rows_errors_and_order() {
        let schema = XdmSchema::builtin_profile();
        let arrow_schema = schema.arrow_schema();
        let mut text = String::new();
        for i in 0..(CHUNK_LINES * 3 + 17) {
            let line = match i % 1000 {
                7 => String::new(),
                8 => "not json".to_owned(),
                9 => json!({"_id": format!("r{i}")}).to_string(),
                10 => "[1]".to_owned(),
                _ => json!({"_id": format!("r{i}"), "identityMap": {"Email": [{"id": format!("{i}@example.com")}]}})
                    .to_string(),
            };
            text.push_str(&line);
            text.push('\n');
        }
        let (valid, expected_rejected, expected_records) = sequential(&text, &schema);
        let expected_rows = decode(&arrow_schema, &valid).unwrap().unwrap();

        for threads in [1, 2, 3] {
            let (mut batches, mut rejected, mut records) = (Vec::new(), Vec::new(), 0);
            read_json_lines_parallel(text.as_bytes(), &schema, &arrow_schema, threads, |checked| {
                batches.extend(checked.valid);
                rejected.extend(checked.rejected);
                records += checked.records;
                true
            })
            .unwrap();
            let rows = arrow::compute::concat_batches(&arrow_schema, &batches).unwrap();
            assert_eq!(rows, expected_rows, "{threads} threads");
            assert_eq!(rejected, expected_rejected, "{threads} threads");
            assert_eq!(records, expected_records, "{threads} threads");
        }
    }

    #[test]
    fn a_sink_that_stops_stops_the_reading() {
        let schema = XdmSchema::builtin_profile();
        let line = json!({"_id": "r", "identityMap": {"Email": [{"id": "a"}]}}).to_string();
        let text = format!("{line}\n").repeat(CHUNK_LINES * 4);
        let mut calls = 0;
        read_json_lines_parallel(text.as_bytes(), &schema, &schema.arrow_schema(), 2, |_| {
            calls += 1;
            false
        })
        .unwrap();
        assert_eq!(calls, 1);
    }
}
