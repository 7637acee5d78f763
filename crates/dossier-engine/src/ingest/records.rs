//! Reading uploaded files as a stream of JSON records, one format at a time.
//!
//! Every format is read incrementally from a `Read`, so a file of any size is converted with
//! bounded memory; every record comes with its row number in the file (1-based) so that errors
//! point at the row a user can find.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// One record read from a file: its row number and either the record or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub row: u64,
    pub record: Result<Value, String>,
}

pub(crate) fn object_or_error(value: Value) -> Result<Value, String> {
    match value {
        Value::Object(_) => Ok(value),
        other => Err(format!("a record must be a JSON object, found {}", json_kind(&other))),
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON lines: one object per line; blank lines are skipped but still counted.
pub fn read_json_lines(
    reader: impl Read,
    mut sink: impl FnMut(SourceRecord) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line = String::new();
    let mut row = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        row += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let record = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("line is not valid JSON: {e}"))
            .and_then(object_or_error);
        if sink(SourceRecord { row, record }).is_break() {
            return Ok(());
        }
    }
}

/// Multi-line JSON: an array of objects, or objects one after another, each possibly spanning
/// many lines. Elements are handed over one at a time, never the whole array.
pub fn read_multi_line_json(
    reader: impl Read,
    mut sink: impl FnMut(SourceRecord) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let starts_with_array = loop {
        let buffer = reader.fill_buf()?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let is_array = buffer[i] == b'[';
                break is_array;
            }
            None if buffer.is_empty() => return Ok(()),
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    };
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    if starts_with_array {
        let mut row = 0;
        let outcome = ElementsOf {
            sink: &mut sink,
            row: &mut row,
        }
        .deserialize(&mut deserializer);
        if let Err(e) = outcome.and_then(|()| deserializer.end()) {
            let _ = sink(SourceRecord {
                row: row + 1,
                record: Err(format!("the file is not valid JSON: {e}")),
            });
        }
        return Ok(());
    }
    for (index, value) in deserializer.into_iter::<Value>().enumerate() {
        let row = index as u64 + 1;
        let (record, stop) = match value {
            Ok(value) => (object_or_error(value), false),
            Err(e) => (Err(format!("the file is not valid JSON: {e}")), true),
        };
        if sink(SourceRecord { row, record }).is_break() || stop {
            break;
        }
    }
    Ok(())
}

/// A serde visitor that hands each element of a JSON array to the sink as it is parsed.
struct ElementsOf<'a, F> {
    sink: &'a mut F,
    row: &'a mut u64,
}

impl<'de, F: FnMut(SourceRecord) -> ControlFlow<()>> DeserializeSeed<'de> for ElementsOf<'_, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(SourceRecord) -> ControlFlow<()>> Visitor<'de> for ElementsOf<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            *self.row += 1;
            if (self.sink)(SourceRecord {
                row: *self.row,
                record: object_or_error(value),
            })
            .is_break()
            {
                // Stop reading; the rest of the array is left unparsed on purpose.
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// Puts `value` at a dot path inside `record`, creating objects on the way.
pub fn insert_at_path(record: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut current = record;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        current = entry.as_object_mut().expect("made an object above");
    }
}

/// Flat CSV: a header of dot paths (`person.name.firstName`), one record per row. Empty cells
/// are absent values; `coerce` turns a cell's text into the JSON value its field's type wants.
pub fn read_csv(
    reader: impl Read,
    coerce: impl Fn(&str, &str) -> Result<Value, String>,
    mut sink: impl FnMut(SourceRecord) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut csv = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
    let headers: Vec<String> = match csv.headers() {
        Ok(headers) => headers.iter().map(|h| h.trim().to_owned()).collect(),
        Err(e) => {
            let _ = sink(SourceRecord {
                row: 1,
                record: Err(format!("the CSV header cannot be read: {e}")),
            });
            return Ok(());
        }
    };
    for (index, row) in csv.records().enumerate() {
        let row_number = index as u64 + 1;
        let record = row
            .map_err(|e| format!("the CSV row cannot be read: {e}"))
            .and_then(|cells| {
                let mut record = Map::new();
                for (path, cell) in headers.iter().zip(cells.iter()) {
                    if cell.is_empty() {
                        continue;
                    }
                    let value = coerce(path, cell).map_err(|reason| format!("column '{path}': {reason}"))?;
                    insert_at_path(&mut record, path, value);
                }
                Ok(Value::Object(record))
            });
        if sink(SourceRecord {
            row: row_number,
            record,
        })
        .is_break()
        {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(read: impl FnOnce(&mut dyn FnMut(SourceRecord) -> ControlFlow<()>)) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        read(&mut |r| {
            out.push(r);
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn json_lines_count_rows_and_report_bad_lines() {
        let text = "{\"a\":1}\n\nnot json\n[1]\n{\"b\":2}\n";
        let rows = collect(|sink| read_json_lines(text.as_bytes(), sink).unwrap());
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0],
            SourceRecord {
                row: 1,
                record: Ok(json!({"a": 1}))
            }
        );
        assert_eq!(rows[1].row, 3);
        assert!(rows[1].record.as_ref().unwrap_err().contains("not valid JSON"));
        assert!(rows[2].record.as_ref().unwrap_err().contains("an array"));
        assert_eq!(
            rows[3],
            SourceRecord {
                row: 5,
                record: Ok(json!({"b": 2}))
            }
        );
    }

    #[test]
    fn multi_line_json_arrays_and_concatenated_objects() {
        let array = "  [\n {\"a\":\n 1},\n {\"a\": 2}\n]\n";
        let rows = collect(|sink| read_multi_line_json(array.as_bytes(), sink).unwrap());
        assert_eq!(
            rows.iter().map(|r| r.record.clone().unwrap()).collect::<Vec<_>>(),
            [json!({"a": 1}), json!({"a": 2})]
        );

        let objects = "{\"a\": 1}\n{\n \"a\": 2\n}";
        let rows = collect(|sink| read_multi_line_json(objects.as_bytes(), sink).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].row, 2);

        let broken = "[{\"a\": 1}, {\"a\": ]";
        let rows = collect(|sink| read_multi_line_json(broken.as_bytes(), sink).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].row, 2);
        assert!(rows[1].record.as_ref().unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn csv_builds_nested_records_from_dot_paths() {
        let text = "_id,person.name.firstName,loyalty.points\nr1,Ana,12\nr2,,\n";
        let coerce = |path: &str, cell: &str| {
            if path == "loyalty.points" {
                cell.parse::<i64>().map(Value::from).map_err(|e| e.to_string())
            } else {
                Ok(json!(cell))
            }
        };
        let rows = collect(|sink| read_csv(text.as_bytes(), coerce, sink).unwrap());
        assert_eq!(
            rows[0].record,
            Ok(json!({"_id": "r1", "person": {"name": {"firstName": "Ana"}}, "loyalty": {"points": 12}}))
        );
        assert_eq!(rows[1].record, Ok(json!({"_id": "r2"})));

        let bad = "_id,loyalty.points\nr1,many\n";
        let rows = collect(|sink| read_csv(bad.as_bytes(), coerce, sink).unwrap());
        assert!(rows[0].record.as_ref().unwrap_err().contains("loyalty.points"));
    }
}
