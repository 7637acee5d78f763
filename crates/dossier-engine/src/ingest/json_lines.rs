//! JSON lines read on every core: lines are cut into chunks in order, and the chunks of a round
//! are checked and decoded into Arrow on threads of their own, then handed on in order.
//!
//! Checking and decoding is most of a JSON-lines ingestion's time and each line is independent
//! of the others, so this part scales with the cores; the row numbers, the order of the rows
//! and the errors are those of the sequential reader ([`super::records::read_json_lines`]),
//! which the other formats still use.
//!
//! Building a `serde_json::Value` per record was most of that time (a map and a string per
//! key), so a valid line is never built: the schema's quick check walks its text, Arrow's
//! reader decodes the text, and the checks beyond types run on columns (see [`check_text`]).
//! Only a line in doubt is built and checked as a value, which is where refusals come from.

use std::io::{BufRead, BufReader, Read};

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::json::reader::Decoder;
use serde_json::Value;

use dossier_model::xdm::XdmSchema;

use super::arrow_intake::{Rejected, doubtful_rows};
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
///
/// The chunks of a round are checked on this thread and on `threads - 1` helpers that live as
/// long as the upload, so each keeps its Arrow reader and buffers from chunk to chunk.
pub fn read_json_lines_parallel(
    reader: impl Read,
    schema: &XdmSchema,
    arrow_schema: &SchemaRef,
    threads: usize,
    mut sink: impl FnMut(LinesChecked) -> bool,
) -> Result<(), EngineError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut next_row = 0;
    let mut checker = ChunkChecker::new(schema, arrow_schema)?;
    // Chunks come back once checked and are read into again, so their buffers (megabytes
    // each) are allocated once per upload rather than once per chunk.
    let mut spares = Vec::new();
    std::thread::scope(|scope| {
        let helpers = (1..threads.max(1))
            .map(|_| Helper::start(scope, schema, arrow_schema))
            .collect::<Result<Vec<_>, _>>()?;
        loop {
            let first = Chunk::read(&mut reader, &mut next_row, spares.pop())?;
            if first.ends.is_empty() {
                return Ok(());
            }
            let mut handed = 0;
            for helper in &helpers {
                let chunk = Chunk::read(&mut reader, &mut next_row, spares.pop())?;
                if chunk.ends.is_empty() {
                    break;
                }
                helper.give(chunk)?;
                handed += 1;
            }
            let outcome = checker.check_chunk(&first)?;
            spares.push(first);
            if !sink(outcome) {
                return Ok(());
            }
            for helper in &helpers[..handed] {
                let (chunk, outcome) = helper.take()?;
                spares.push(chunk);
                if !sink(outcome?) {
                    return Ok(());
                }
            }
        }
    })
}

type Checked = (Chunk, Result<LinesChecked, EngineError>);

/// A thread that checks the chunks it is given, one at a time, in turn.
struct Helper {
    chunks: std::sync::mpsc::SyncSender<Chunk>,
    outcomes: std::sync::mpsc::Receiver<Checked>,
}

impl Helper {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        schema: &'scope XdmSchema,
        arrow_schema: &'scope SchemaRef,
    ) -> Result<Self, EngineError> {
        let mut checker = ChunkChecker::new(schema, arrow_schema)?;
        let (chunks, inbox) = std::sync::mpsc::sync_channel::<Chunk>(1);
        let (outbox, outcomes) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            // Ends when the reader drops its sender (the upload is read or abandoned).
            for chunk in inbox {
                let outcome = checker.check_chunk(&chunk);
                if outbox.send((chunk, outcome)).is_err() {
                    return;
                }
            }
        });
        Ok(Self { chunks, outcomes })
    }

    fn give(&self, chunk: Chunk) -> Result<(), EngineError> {
        self.chunks.send(chunk).map_err(|_| helper_gone())
    }

    fn take(&self) -> Result<Checked, EngineError> {
        self.outcomes.recv().map_err(|_| helper_gone())
    }
}

fn helper_gone() -> EngineError {
    EngineError::Invalid("a JSON-lines reading thread panicked".into())
}

/// Up to [`CHUNK_LINES`] lines of the upload, as read: one buffer, not a string per line.
struct Chunk {
    /// The row number of the line before the first (rows are 1-based).
    rows_before: u64,
    text: Vec<u8>,
    /// Where each line ends in `text` (after its newline, if it has one).
    ends: Vec<usize>,
}

impl Chunk {
    /// The next lines of `reader`, read into `spare`'s buffers if given; no lines at the end of
    /// the input.
    fn read(reader: &mut impl BufRead, next_row: &mut u64, spare: Option<Chunk>) -> Result<Self, EngineError> {
        let mut chunk = spare.unwrap_or_else(|| Chunk {
            rows_before: 0,
            text: Vec::new(),
            ends: Vec::with_capacity(CHUNK_LINES),
        });
        chunk.rows_before = *next_row;
        chunk.text.clear();
        chunk.ends.clear();
        while chunk.ends.len() < CHUNK_LINES {
            let read = reader
                .read_until(b'\n', &mut chunk.text)
                .map_err(|e| EngineError::Invalid(format!("cannot read the upload: {e}")))?;
            if read == 0 {
                break;
            }
            chunk.ends.push(chunk.text.len());
        }
        *next_row += chunk.ends.len() as u64;
        Ok(chunk)
    }

    /// Its records: each non-blank line, trimmed, with its row number.
    fn records(&self) -> Result<Vec<(u64, &str)>, EngineError> {
        let text = std::str::from_utf8(&self.text)
            .map_err(|_| EngineError::Invalid("cannot read the upload: stream did not contain valid UTF-8".into()))?;
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        Ok((self.rows_before + 1..)
            .zip(starts.zip(&self.ends))
            .map(|(row, (start, end))| (row, text[start..*end].trim()))
            .filter(|(_, line)| !line.is_empty())
            .collect())
    }
}

/// Checks and decodes chunks for one thread, with what it keeps from chunk to chunk.
struct ChunkChecker<'a> {
    schema: &'a XdmSchema,
    arrow_schema: &'a SchemaRef,
    text: TextDecoder,
}

/// Valid rows and refused ones.
type Sorted = (Option<RecordBatch>, Vec<Rejected>);

impl<'a> ChunkChecker<'a> {
    fn new(schema: &'a XdmSchema, arrow_schema: &'a SchemaRef) -> Result<Self, EngineError> {
        Ok(Self {
            schema,
            arrow_schema,
            text: TextDecoder::new(arrow_schema.clone())?,
        })
    }

    /// One chunk, with the outcome the sequential reader and the writer would give: from its
    /// text when it can ([`Self::check_text`]), else record by record as values.
    fn check_chunk(&mut self, chunk: &Chunk) -> Result<LinesChecked, EngineError> {
        let lines = chunk.records()?;
        let records = lines.len() as u64;
        let (valid, rejected) = match self.check_text(&lines)? {
            Some(checked) => checked,
            None => self.check_values(&lines)?,
        };
        Ok(LinesChecked {
            valid,
            rejected,
            records,
        })
    }

    /// The chunk decided on its text, without a `serde_json::Value` per record. Lines the
    /// schema surely accepts ([`XdmSchema::surely_accepts`]) are decoded into Arrow straight
    /// from their text, then checked on whole columns for what types do not cover (an identity,
    /// the authenticated states, an event's `_id` and `timestamp`) as Parquet uploads are;
    /// every line in doubt is decided by the values' checks, so refusals read as they always
    /// have. `None` when a line in doubt turns out valid or the text does not decode: then the
    /// whole chunk goes the values' way, which keeps the rows in order.
    fn check_text(&mut self, lines: &[(u64, &str)]) -> Result<Option<Sorted>, EngineError> {
        let schema = self.schema;
        let mut sure = Vec::with_capacity(lines.len());
        let mut rejected = Vec::new();
        for &(row, line) in lines {
            if schema.surely_accepts(line) {
                sure.push((row, line));
            } else if !refused(schema, row, line, &mut rejected) {
                return Ok(None);
            }
        }
        if sure.is_empty() {
            return Ok(Some((None, rejected)));
        }
        let Some(rows) = self.text.decode(&sure) else {
            return Ok(None);
        };
        let doubtful = doubtful_rows(&rows, schema);
        if !doubtful.contains(&true) {
            return Ok(Some((Some(rows), rejected)));
        }
        for (&(row, line), _) in sure.iter().zip(&doubtful).filter(|(_, doubt)| **doubt) {
            if !refused(schema, row, line, &mut rejected) {
                return Ok(None);
            }
        }
        rejected.sort_by_key(|(row, _)| *row);
        let keep = BooleanArray::from(doubtful.iter().map(|doubt| !doubt).collect::<Vec<_>>());
        let rows = filter_record_batch(&rows, &keep)?;
        Ok(Some(((rows.num_rows() > 0).then_some(rows), rejected)))
    }

    /// The chunk record by record: each line parsed into a value, checked, and the valid values
    /// decoded into Arrow together.
    fn check_values(&self, lines: &[(u64, &str)]) -> Result<Sorted, EngineError> {
        let mut valid = Vec::with_capacity(lines.len());
        let mut rejected = Vec::new();
        for &(row, line) in lines {
            sort_record(self.schema, row, parse_line(line), &mut valid, &mut rejected);
        }
        Ok((decode(self.arrow_schema, &valid)?, rejected))
    }
}

/// Whether the values' checks refuse the line of row `row`, adding its problems to `rejected`
/// when they do.
fn refused(schema: &XdmSchema, row: u64, line: &str, rejected: &mut Vec<Rejected>) -> bool {
    let mut valid = Vec::new();
    sort_record(schema, row, parse_line(line), &mut valid, rejected);
    valid.is_empty()
}

fn parse_line(line: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(line)
        .map_err(|e| format!("line is not valid JSON: {e}"))
        .and_then(object_or_error)
}

/// Arrow's JSON reader, kept from chunk to chunk so that its buffers are reused.
struct TextDecoder {
    schema: SchemaRef,
    decoder: Decoder,
}

impl TextDecoder {
    fn new(schema: SchemaRef) -> Result<Self, EngineError> {
        let decoder = Self::build(&schema)?;
        Ok(Self { schema, decoder })
    }

    fn build(schema: &SchemaRef) -> Result<Decoder, EngineError> {
        Ok(arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(CHUNK_LINES)
            .build_decoder()?)
    }

    /// Lines decoded into the dataset's Arrow schema from their text, a row per line; `None`
    /// when Arrow's reader refuses the text or makes another number of rows of it.
    fn decode(&mut self, lines: &[(u64, &str)]) -> Option<RecordBatch> {
        let rows = self.try_decode(lines);
        if rows.is_none() {
            // A refused text can leave the reader inside a row: start the next chunk afresh.
            self.decoder = Self::build(&self.schema).ok()?;
        }
        rows
    }

    fn try_decode(&mut self, lines: &[(u64, &str)]) -> Option<RecordBatch> {
        for (_, line) in lines {
            let text = line.as_bytes();
            if self.decoder.decode(text).ok()? != text.len() {
                return None;
            }
        }
        let rows = self.decoder.flush().ok()??;
        (rows.num_rows() == lines.len()).then_some(rows)
    }
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

    /// A profile schema with a field of every type.
    fn shop_schema() -> XdmSchema {
        use dossier_model::xdm::{XdmField, XdmType};
        let mut schema = XdmSchema::builtin_profile();
        schema.fields.push(XdmField::new(
            "shop",
            XdmType::Object(vec![
                XdmField::new("points", XdmType::Integer),
                XdmField::new("ratio", XdmType::Number),
                XdmField::new("member", XdmType::Boolean),
                XdmField::new("since", XdmType::DateTime),
                XdmField::new("birthday", XdmType::Date),
                XdmField::new("tags", XdmType::Array(Box::new(XdmType::String))),
                XdmField::new("scores", XdmType::Map(Box::new(XdmType::Integer))),
            ]),
        ));
        schema
    }

    fn numbered(text: &str) -> Vec<(u64, &str)> {
        (1..).zip(text.lines()).collect()
    }

    #[test]
    fn records_decoded_from_their_text_equal_those_decoded_from_values() {
        let schema = shop_schema();
        let arrow_schema = schema.arrow_schema();
        let text = [
            r#"{"_id":"a","identityMap":{"Email":[{"id":"a@x","primary":true,"authenticatedState":"ambiguous"}]},"shop":{"points":-7,"ratio":0.1000000000000000055511151231257827,"member":false,"since":"2024-05-01T12:30:00.250+02:00","birthday":"1985-04-12","tags":["t\"1\"","\u00e9\ud83d\ude00",null],"scores":{"x":9223372036854775807,"y":-9223372036854775808,"z":0}}}"#,
            r#"{"_id":"b","identityMap":{"CRMID":[{"id":"c1"}],"Email":[{"id":""},{"id":"b@x","authenticatedState":"loggedOut"}]},"shop":{"ratio":1.5e300,"points":12,"since":"2024-05-01t12:30:00z","tags":[]},"unknown":null}"#,
            r#"  {"identityMap":{"Phone":[{"id":"+1 555"}]},"shop":null}  "#,
            r#"{"_id":"c","identityMap":{"Email":[{"id":"c@x"}]},"shop":{"ratio":7,"scores":{}}}"#,
        ]
        .join("\n");
        let lines = numbered(&text);
        let (from_text, refused) = ChunkChecker::new(&schema, &arrow_schema)
            .unwrap()
            .check_text(&lines)
            .unwrap()
            .expect("decided on text");
        let (from_values, expected_refused) = ChunkChecker::new(&schema, &arrow_schema)
            .unwrap()
            .check_values(&lines)
            .unwrap();
        assert_eq!(from_text, from_values);
        assert_eq!(refused, expected_refused);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(from_text.unwrap().num_rows(), 4);
    }

    #[test]
    fn refusals_from_text_read_as_refusals_from_values() {
        let schema = shop_schema();
        let arrow_schema = schema.arrow_schema();
        let text = [
            r#"{"_id":"ok1","identityMap":{"Email":[{"id":"a@x"}]}}"#,
            r#"{"_id":"no identity"}"#,
            r#"{"_id":"empty id","identityMap":{"Email":[{"id":""}]}}"#,
            r#"{"_id":"state","identityMap":{"Email":[{"id":"a@x","authenticatedState":"LOGGED_IN"}]}}"#,
            r#"{"_id":"type","identityMap":{"Email":[{"id":"a@x"}]},"shop":{"points":1.5,"member":"yes"}}"#,
            r#"{"_id":"unknown","identityMap":{"Email":[{"id":"a@x"}]},"nope":1}"#,
            r#"not json"#,
            r#"[1]"#,
            r#"{"_id":"ok2","identityMap":{"Email":[{"id":"b@x"}]}}"#,
        ]
        .join("\n");
        let lines = numbered(&text);
        let (from_text, refused) = ChunkChecker::new(&schema, &arrow_schema)
            .unwrap()
            .check_text(&lines)
            .unwrap()
            .expect("decided on text");
        let (from_values, expected_refused) = ChunkChecker::new(&schema, &arrow_schema)
            .unwrap()
            .check_values(&lines)
            .unwrap();
        assert_eq!(from_text, from_values);
        assert_eq!(from_text.unwrap().num_rows(), 2);
        assert_eq!(refused, expected_refused);
        assert_eq!(
            refused.iter().map(|(row, _)| *row).collect::<Vec<_>>(),
            [2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn a_doubted_line_that_is_valid_sends_its_chunk_the_values_way() {
        let schema = shop_schema();
        let arrow_schema = schema.arrow_schema();
        // A repeated key: the value keeps the last, so the text is not trusted to say the same.
        let text = [
            r#"{"_id":"a","identityMap":{"Email":[{"id":"a@x"}]}}"#,
            r#"{"_id":"first","_id":"last","identityMap":{"Email":[{"id":"b@x"}]}}"#,
        ]
        .join("\n");
        let lines = numbered(&text);
        assert!(
            ChunkChecker::new(&schema, &arrow_schema)
                .unwrap()
                .check_text(&lines)
                .unwrap()
                .is_none()
        );
        let chunk = Chunk {
            rows_before: 0,
            ends: vec![text.find('\n').unwrap() + 1, text.len()],
            text: text.clone().into_bytes(),
        };
        let checked = ChunkChecker::new(&schema, &arrow_schema)
            .unwrap()
            .check_chunk(&chunk)
            .unwrap();
        let (expected, _) = ChunkChecker::new(&schema, &arrow_schema)
            .unwrap()
            .check_values(&lines)
            .unwrap();
        assert_eq!(checked.valid, expected);
        let ids = checked.valid.unwrap();
        let ids = ids.column_by_name("_id").unwrap();
        assert_eq!(arrow::array::AsArray::as_string::<i32>(ids).value(1), "last");
    }

    #[test]
    fn an_upload_that_is_not_utf8_fails_as_before() {
        let schema = XdmSchema::builtin_profile();
        let text = b"{\"_id\":\"a\xff\"}\n";
        let error = read_json_lines_parallel(&text[..], &schema, &schema.arrow_schema(), 2, |_| true).unwrap_err();
        assert!(error.to_string().contains("valid UTF-8"), "{error}");
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
