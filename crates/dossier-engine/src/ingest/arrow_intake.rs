//! Parquet uploads checked on Arrow, without a trip through JSON.
//!
//! A Parquet upload used to be written out as JSON lines, parsed back into `serde_json` values,
//! checked record by record, and decoded into Arrow again: most of ingestion's time. When the
//! file's columns already have the dataset's types (what a writer using the dataset's schema,
//! like the bench generator, produces), its batches are used as they are, and the checks that
//! types do not already guarantee run on whole columns:
//!
//! - every row has an identity (an `identityMap` entry with an id, or a value in an identity
//!   field),
//! - every `identityMap` `authenticatedState` is one of XDM's values,
//! - every event has `_id` and `timestamp`,
//! - and the row reads the same through JSON: no NaN or infinite number (JSON has none and the
//!   JSON path reads them as absent), no date outside the years 1000–9999 (the JSON path's
//!   text form changes shape there), no map entry whose value is null (JSON drops it) or whose
//!   key repeats in its map (JSON keeps the last).
//!
//! A row that passes is accepted exactly as the JSON path would have accepted it. A row that
//! does not is rendered as JSON and checked by the JSON path's own [`check_record`], so its
//! errors in the failed-records report are word for word those the JSON path gives. Should such
//! a row turn out valid after all (the column checks are conservative), its whole chunk goes
//! the JSON way; a file whose columns do not match the dataset's types goes the JSON way
//! entirely. Either way the outcome is the JSON path's.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, BooleanArray, MapArray, RecordBatch, RecordBatchOptions, StringArray,
    StructArray, new_null_array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use serde_json::Value;

use dossier_model::xdm::{AuthenticatedState, SchemaClass, XdmSchema, XdmType};

use super::validate::check_record;

/// 1000-01-01 and 9999-12-31 in days since 1970-01-01: dates the JSON path writes as
/// `YYYY-MM-DD` and reads back unchanged.
const FIRST_PLAIN_DAY: i64 = -354_285;
const LAST_PLAIN_DAY: i64 = 2_932_896;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What one chunk of an upload came to.
#[derive(Debug)]
pub enum Checked {
    /// The rows to keep, in the dataset's Arrow schema, and the rows refused with why.
    Rows {
        valid: RecordBatch,
        rejected: Vec<Rejected>,
    },
    /// The chunk must go the JSON way: its rows as JSON records (row number, record).
    AsJson(Vec<(u64, Result<Value, String>)>),
}

/// A refused row: its 1-based row number in the file and its problems (field path, reason).
pub type Rejected = (u64, Vec<(Option<String>, String)>);

/// How the columns of one upload map onto the dataset's; `None` from [`ArrowIntake::plan`]
/// when they do not.
#[derive(Debug)]
pub struct ArrowIntake {
    target: SchemaRef,
    /// For each dataset column: the upload's column index, if it has one.
    sources: Vec<Option<usize>>,
    schema: Arc<XdmSchema>,
}

impl ArrowIntake {
    /// The intake of an upload of `file` columns into a dataset of `schema`; `None` when a
    /// column is not the schema's, has another type, or an identity field's path leaves the
    /// structs (the JSON path decides those).
    pub fn plan(file: &Schema, schema: Arc<XdmSchema>) -> Option<Self> {
        let target = schema.arrow_schema();
        for field in file.fields() {
            let (_, wanted) = target.column_with_name(field.name())?;
            if !compatible(field.data_type(), wanted.data_type()) {
                return None;
            }
        }
        if !schema
            .identities
            .iter()
            .all(|identity| stays_in_structs(&target, &identity.path))
        {
            return None;
        }
        let sources = target
            .fields()
            .iter()
            .map(|field| file.index_of(field.name()).ok())
            .collect();
        Some(Self {
            target,
            sources,
            schema,
        })
    }

    /// Checks one chunk of the upload whose first row is row `first_row` (0-based) of the file.
    pub fn check(&self, rows: &RecordBatch, first_row: u64) -> Result<Checked, ArrowError> {
        let conformed = self.conform(rows)?;
        let doubtful = doubtful_rows(&conformed, &self.schema);
        if !doubtful.contains(&true) {
            return Ok(Checked::Rows {
                valid: conformed,
                rejected: Vec::new(),
            });
        }
        let mask = BooleanArray::from(doubtful.clone());
        let mut rejected = Vec::new();
        let numbers = doubtful
            .iter()
            .enumerate()
            .filter(|(_, d)| **d)
            .map(|(i, _)| first_row + i as u64 + 1);
        for (row, record) in numbers.zip(as_json(&filter_record_batch(rows, &mask)?)?) {
            let problems = match record {
                Ok(record) => check_record(&self.schema, &record),
                Err(reason) => return Err(ArrowError::JsonError(reason)),
            };
            if problems.is_empty() {
                // The column checks were stricter than the JSON path here: let it decide.
                return Ok(Checked::AsJson(json_records(rows, first_row)?));
            }
            rejected.push((row, problems.into_iter().map(|e| (Some(e.path), e.reason)).collect()));
        }
        let keep = BooleanArray::from(doubtful.iter().map(|d| !d).collect::<Vec<_>>());
        Ok(Checked::Rows {
            valid: filter_record_batch(&conformed, &keep)?,
            rejected,
        })
    }

    /// The chunk in the dataset's schema: its columns by name, nested names as the dataset's,
    /// absent columns null.
    fn conform(&self, rows: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let columns = self
            .target
            .fields()
            .iter()
            .zip(&self.sources)
            .map(|(field, source)| match source {
                Some(index) => relabel(rows.column(*index), field.data_type()),
                None => Ok(new_null_array(field.data_type(), rows.num_rows())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        RecordBatch::try_new_with_options(self.target.clone(), columns, &options)
    }
}

/// A row's 1-based number in its file, and the row as JSON or why it is not.
pub type NumberedRecord = (u64, Result<Value, String>);

/// Every row of `rows` as the JSON path reads it: Arrow's JSON lines, parsed, with its 1-based
/// row number in the file.
pub fn json_records(rows: &RecordBatch, first_row: u64) -> Result<Vec<NumberedRecord>, ArrowError> {
    Ok((first_row + 1..).zip(as_json(rows)?).collect())
}

fn as_json(rows: &RecordBatch) -> Result<Vec<Result<Value, String>>, ArrowError> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(rows)?;
    writer.finish()?;
    let text = writer.into_inner();
    Ok(text
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice::<Value>(line).map_err(|e| format!("line is not valid JSON: {e}")))
        .collect())
}

/// Whether a column of type `file` can be read as the dataset's `wanted` type as it is: the same
/// types and struct field names in the same order; list item and map entry names may differ
/// (Parquet writers name them differently), and a non-null column fits a nullable one.
fn compatible(file: &DataType, wanted: &DataType) -> bool {
    match (file, wanted) {
        (DataType::Struct(have), DataType::Struct(want)) => {
            have.len() == want.len()
                && have.iter().zip(want).all(|(h, w)| {
                    h.name() == w.name()
                        && (w.is_nullable() || !h.is_nullable())
                        && compatible(h.data_type(), w.data_type())
                })
        }
        (DataType::List(have), DataType::List(want)) => {
            (want.is_nullable() || !have.is_nullable()) && compatible(have.data_type(), want.data_type())
        }
        (DataType::Map(have, have_sorted), DataType::Map(want, want_sorted)) => {
            have_sorted == want_sorted && entries_compatible(have.data_type(), want.data_type())
        }
        _ => file == wanted,
    }
}

/// Map entries: keys and values by position (their names vary between writers).
fn entries_compatible(have: &DataType, want: &DataType) -> bool {
    match (have, want) {
        (DataType::Struct(have), DataType::Struct(want)) if have.len() == 2 && want.len() == 2 => have
            .iter()
            .zip(want)
            .all(|(h, w)| (w.is_nullable() || !h.is_nullable()) && compatible(h.data_type(), w.data_type())),
        _ => false,
    }
}

/// Whether every step of `path` before its last is a struct field of `schema` (or the path
/// leaves the schema, where the JSON path never finds a value either).
fn stays_in_structs(schema: &Schema, path: &str) -> bool {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else { return true };
    let Ok(mut field) = schema.field_with_name(first) else {
        return true;
    };
    for part in parts {
        let DataType::Struct(children) = field.data_type() else {
            return false;
        };
        match children.iter().find(|child| child.name() == part) {
            Some(child) => field = child,
            None => return true,
        }
    }
    true
}

/// `array` with the dataset's type `to`, which [`compatible`] accepted: only names and
/// nullability flags change, the buffers are shared.
fn relabel(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    Ok(arrow::array::make_array(relabel_data(array.to_data(), to)?))
}

fn relabel_data(data: ArrayData, to: &DataType) -> Result<ArrayData, ArrowError> {
    if data.data_type() == to {
        return Ok(data);
    }
    let child_types: Vec<&DataType> = match to {
        DataType::List(item) | DataType::Map(item, _) => vec![item.data_type()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        _ => Vec::new(),
    };
    let children = data
        .child_data()
        .iter()
        .zip(child_types)
        .map(|(child, ty)| relabel_data(child.clone(), ty))
        .collect::<Result<Vec<_>, _>>()?;
    data.into_builder().data_type(to.clone()).child_data(children).build()
}

/// For each row of `rows` (in the dataset's schema), whether it is not proven valid.
pub(crate) fn doubtful_rows(rows: &RecordBatch, schema: &XdmSchema) -> Vec<bool> {
    let n = rows.num_rows();
    let mut doubtful = identity_rows(rows, schema)
        .into_iter()
        .map(|has| !has)
        .collect::<Vec<_>>();
    if let Some(map) = rows.column_by_name("identityMap").and_then(|c| c.as_map_opt()) {
        bad_states(map, &mut doubtful);
    }
    if schema.class == SchemaClass::ExperienceEvent {
        for required in ["_id", "timestamp"] {
            if !matches!(schema.resolve_path(required), Some(XdmType::String | XdmType::DateTime)) {
                continue;
            }
            match rows.column_by_name(required) {
                Some(column) => (0..n).for_each(|row| doubtful[row] |= column.is_null(row)),
                None => doubtful.fill(true),
            }
        }
    }
    for column in rows.columns() {
        changed_by_json(column.as_ref(), &mut doubtful);
    }
    doubtful
}

/// Whether each row has an identity, as [`check_record`] decides it.
fn identity_rows(rows: &RecordBatch, schema: &XdmSchema) -> Vec<bool> {
    let mut has = match rows.column_by_name("identityMap").and_then(|c| c.as_map_opt()) {
        Some(map) => identity_map_rows(map),
        None => vec![false; rows.num_rows()],
    };
    for identity in &schema.identities {
        if let Some(present) = present_at(rows, &identity.path) {
            has.iter_mut().zip(present).for_each(|(has, present)| *has |= present);
        }
    }
    has
}

/// Rows whose `identityMap` has an entry with a non-empty id.
fn identity_map_rows(map: &MapArray) -> Vec<bool> {
    let Some(lists) = map.values().as_list_opt::<i32>() else {
        return vec![false; map.len()];
    };
    let items = lists.values().as_struct_opt();
    let ids = items
        .and_then(|items| items.column_by_name("id"))
        .and_then(|c| c.as_string_opt::<i32>());
    let (Some(items), Some(ids)) = (items, ids) else {
        return vec![false; map.len()];
    };
    let item_ok: Vec<bool> = (0..items.len())
        .map(|i| items.is_valid(i) && ids.is_valid(i) && !ids.value(i).is_empty())
        .collect();
    let entry_ok: Vec<bool> = any_in_ranges(lists.value_offsets(), &item_ok)
        .into_iter()
        .enumerate()
        .map(|(entry, any)| any && lists.is_valid(entry))
        .collect();
    any_in_ranges(map.value_offsets(), &entry_ok)
        .into_iter()
        .enumerate()
        .map(|(row, any)| any && map.is_valid(row))
        .collect()
}

/// Flags rows whose `identityMap` has an `authenticatedState` that is not XDM's.
fn bad_states(map: &MapArray, doubtful: &mut [bool]) {
    let Some(lists) = map.values().as_list_opt::<i32>() else {
        return;
    };
    let Some(items) = lists.values().as_struct_opt() else {
        return;
    };
    let Some(states) = items
        .column_by_name("authenticatedState")
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return;
    };
    let item_bad: Vec<bool> = (0..states.len())
        .map(|i| states.is_valid(i) && AuthenticatedState::parse(states.value(i)).is_none())
        .collect();
    let entry_bad = any_in_ranges(lists.value_offsets(), &item_bad);
    for (row, bad) in any_in_ranges(map.value_offsets(), &entry_bad).into_iter().enumerate() {
        doubtful[row] |= bad;
    }
}

/// Whether each row has a value at the struct path `path` (a non-empty one if it is text).
fn present_at(rows: &RecordBatch, path: &str) -> Option<Vec<bool>> {
    let mut parts = path.split('.');
    let mut column: &dyn Array = rows.column_by_name(parts.next()?)?.as_ref();
    let mut present: Vec<bool> = (0..rows.num_rows()).map(|row| column.is_valid(row)).collect();
    for part in parts {
        let parent: &StructArray = column.as_struct_opt()?;
        column = parent.column_by_name(part)?.as_ref();
        present
            .iter_mut()
            .enumerate()
            .for_each(|(row, p)| *p &= column.is_valid(row));
    }
    if let Some(text) = column.as_string_opt::<i32>() {
        present
            .iter_mut()
            .enumerate()
            .for_each(|(row, p)| *p &= !text.value(row).is_empty());
    }
    Some(present)
}

/// For each range `offsets[i]..offsets[i + 1]`, whether any flag in it is set.
fn any_in_ranges(offsets: &[i32], flags: &[bool]) -> Vec<bool> {
    offsets
        .windows(2)
        .map(|range| flags[range[0] as usize..range[1] as usize].contains(&true))
        .collect()
}

/// Whether values of this type can read differently through JSON (see the module's list).
fn may_change(ty: &DataType) -> bool {
    match ty {
        DataType::Float64 | DataType::Date32 | DataType::Timestamp(..) | DataType::Map(..) => true,
        DataType::Struct(fields) => fields.iter().any(|f| may_change(f.data_type())),
        DataType::List(item) => may_change(item.data_type()),
        _ => false,
    }
}

/// Flags the elements of `array` whose value would read differently through JSON.
fn changed_by_json(array: &dyn Array, flags: &mut [bool]) {
    if !may_change(array.data_type()) {
        return;
    }
    let mark = |flags: &mut [bool], bad: &dyn Fn(usize) -> bool| {
        (0..array.len()).for_each(|i| flags[i] |= array.is_valid(i) && bad(i));
    };
    match array.data_type() {
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            mark(flags, &|i| !values.value(i).is_finite());
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>();
            mark(flags, &|i| {
                !(FIRST_PLAIN_DAY..=LAST_PLAIN_DAY).contains(&i64::from(days.value(i)))
            });
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>();
            let plain = FIRST_PLAIN_DAY * MICROS_PER_DAY..(LAST_PLAIN_DAY + 1) * MICROS_PER_DAY;
            mark(flags, &|i| !plain.contains(&micros.value(i)));
        }
        // Other units are not the dataset's types, so never reach here; be safe anyway.
        DataType::Timestamp(..) => mark(flags, &|_| true),
        DataType::Struct(_) => {
            for child in array.as_struct().columns() {
                changed_by_json(child.as_ref(), flags);
            }
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let mut items = vec![false; list.values().len()];
            changed_by_json(list.values().as_ref(), &mut items);
            for (row, bad) in any_in_ranges(list.value_offsets(), &items).into_iter().enumerate() {
                flags[row] |= bad;
            }
        }
        DataType::Map(..) => changed_maps(array.as_map(), flags),
        _ => {}
    }
}

/// Map rows with a null value, a repeated key, or a value that changes through JSON.
fn changed_maps(map: &MapArray, flags: &mut [bool]) {
    let values = map.values();
    let mut entries: Vec<bool> = (0..values.len()).map(|i| values.is_null(i)).collect();
    changed_by_json(values.as_ref(), &mut entries);
    let keys: Option<&StringArray> = map.keys().as_string_opt::<i32>();
    for (row, range) in map.value_offsets().windows(2).enumerate() {
        let (start, end) = (range[0] as usize, range[1] as usize);
        flags[row] |= entries[start..end].contains(&true) || keys.is_some_and(|keys| repeats(keys, start, end));
    }
}

/// Whether a key repeats among `keys[start..end]`.
fn repeats(keys: &StringArray, start: usize, end: usize) -> bool {
    const SCAN_AT_MOST: usize = 16;
    if end - start <= SCAN_AT_MOST {
        return (start..end).any(|i| (i + 1..end).any(|j| keys.value(i) == keys.value(j)));
    }
    let mut seen = HashSet::with_capacity(end - start);
    !(start..end).all(|i| seen.insert(keys.value(i)))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;
    use serde_json::json;

    use dossier_model::xdm::{IdentityField, XdmField};

    use super::*;

    fn profile_schema() -> Arc<XdmSchema> {
        let mut schema = XdmSchema::builtin_profile();
        schema.fields.push(XdmField::new(
            "loyalty",
            XdmType::Object(vec![
                XdmField::new("points", XdmType::Integer),
                XdmField::new("ratio", XdmType::Number),
                XdmField::new("joined", XdmType::DateTime),
                XdmField::new("crmId", XdmType::String),
            ]),
        ));
        schema.identities.push(IdentityField {
            path: "loyalty.crmId".into(),
            namespace: "CRMID".into(),
            primary: false,
        });
        Arc::new(schema)
    }

    /// Rows as a Parquet upload in the dataset's own types would hold them.
    fn rows(schema: &XdmSchema, values: &[Value]) -> RecordBatch {
        let mut decoder = arrow::json::ReaderBuilder::new(schema.arrow_schema())
            .build_decoder()
            .unwrap();
        decoder.serialize(values).unwrap();
        decoder.flush().unwrap().unwrap()
    }

    /// What the JSON path makes of the same rows: the valid ones decoded, the others' errors.
    fn through_json(schema: &XdmSchema, batch: &RecordBatch) -> (RecordBatch, Vec<Rejected>) {
        let mut valid = Vec::new();
        let mut rejected = Vec::new();
        for (row, record) in json_records(batch, 0).unwrap() {
            let record = record.unwrap();
            let problems = check_record(schema, &record);
            if problems.is_empty() {
                valid.push(record);
            } else {
                rejected.push((row, problems.into_iter().map(|e| (Some(e.path), e.reason)).collect()));
            }
        }
        let mut decoder = arrow::json::ReaderBuilder::new(schema.arrow_schema())
            .build_decoder()
            .unwrap();
        decoder.serialize(&valid).unwrap();
        let valid = decoder
            .flush()
            .unwrap()
            .unwrap_or_else(|| RecordBatch::new_empty(schema.arrow_schema()));
        (valid, rejected)
    }

    fn good(id: &str) -> Value {
        json!({"_id": id, "identityMap": {"Email": [{"id": format!("{id}@example.com"), "primary": true, "authenticatedState": "authenticated"}]},
               "loyalty": {"points": 3, "ratio": 0.5, "joined": "2024-05-01T12:30:00.123456Z"}})
    }

    #[test]
    fn valid_rows_are_kept_as_they_are_and_bad_ones_get_the_json_paths_errors() {
        let schema = profile_schema();
        let values = vec![
            good("a"),
            json!({"_id": "no-identity", "loyalty": {"points": 1}}),
            json!({"_id": "crm-only", "loyalty": {"crmId": "c-1"}}),
            json!({"_id": "empty-crm", "loyalty": {"crmId": ""}}),
            json!({"_id": "bad-state", "identityMap": {"Email": [{"id": "x"}, {"id": "y", "authenticatedState": "AUTH"}]}}),
            json!({"_id": "empty-id", "identityMap": {"Email": [{"id": ""}]}}),
            good("b"),
        ];
        let batch = rows(&schema, &values);
        let intake = ArrowIntake::plan(&batch.schema(), schema.clone()).expect("same types");
        let Checked::Rows { valid, rejected } = intake.check(&batch, 100).unwrap() else {
            panic!("no row needed the JSON way")
        };
        let (expected_valid, expected_rejected) = through_json(&schema, &batch);
        assert_eq!(valid, expected_valid);
        let shifted: Vec<Rejected> = expected_rejected.into_iter().map(|(row, p)| (row + 100, p)).collect();
        assert_eq!(rejected, shifted);
        assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [102, 104, 105, 106]);
    }

    #[test]
    fn rows_that_read_differently_through_json_go_the_json_way() {
        let schema = profile_schema();
        let mut batch = rows(&schema, &[good("a"), good("b")]);
        // A NaN ratio: the JSON path reads it as absent, and the row is valid.
        let loyalty = batch.column_by_name("loyalty").unwrap().as_struct().clone();
        let (fields, mut columns, nulls) = loyalty.into_parts();
        let ratio = fields.iter().position(|f| f.name() == "ratio").unwrap();
        columns[ratio] = Arc::new(arrow::array::Float64Array::from(vec![Some(f64::NAN), Some(1.0)]));
        let loyalty = StructArray::new(fields, columns, nulls);
        let index = batch.schema().index_of("loyalty").unwrap();
        let mut all = batch.columns().to_vec();
        all[index] = Arc::new(loyalty);
        batch = RecordBatch::try_new(batch.schema(), all).unwrap();

        let intake = ArrowIntake::plan(&batch.schema(), schema.clone()).unwrap();
        let Checked::AsJson(records) = intake.check(&batch, 0).unwrap() else {
            panic!("the NaN row must be decided by the JSON path")
        };
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, 1);
        // JSON has no NaN: Arrow writes it as null, which the JSON path reads as absent.
        assert!(records[0].1.as_ref().unwrap()["loyalty"]["ratio"].is_null());
    }

    #[test]
    fn a_column_of_another_type_or_outside_the_schema_sends_the_file_the_json_way() {
        let schema = profile_schema();
        let target = schema.arrow_schema();
        let mut fields: Vec<Field> = target.fields().iter().map(|f| f.as_ref().clone()).collect();
        assert!(ArrowIntake::plan(&Schema::new(fields.clone()), schema.clone()).is_some());
        fields.push(Field::new("extra", DataType::Utf8, true));
        assert!(ArrowIntake::plan(&Schema::new(fields.clone()), schema.clone()).is_none());
        fields.pop();
        let id = fields.iter().position(|f| f.name() == "_id").unwrap();
        fields[id] = Field::new("_id", DataType::Int64, true);
        assert!(ArrowIntake::plan(&Schema::new(fields), schema.clone()).is_none());
        // Fewer columns than the schema is fine: the others are absent.
        let identity_only = Schema::new(vec![target.field_with_name("identityMap").unwrap().clone()]);
        assert!(ArrowIntake::plan(&identity_only, schema).is_some());
    }

    #[test]
    fn maps_with_null_values_or_repeated_keys_are_doubtful() {
        let map = rows(&profile_schema(), &[good("a")]);
        let identity = map.column_by_name("identityMap").unwrap().as_map();
        let mut flags = vec![false; 1];
        changed_maps(identity, &mut flags);
        assert_eq!(flags, [false]);

        let keys = StringArray::from(vec!["a", "b", "a", "c"]);
        assert!(repeats(&keys, 0, 3));
        assert!(!repeats(&keys, 1, 4));
        let many = StringArray::from((0..40).map(|i| format!("k{}", i % 39)).collect::<Vec<_>>());
        assert!(repeats(&many, 0, 40));
        assert!(!repeats(&many, 0, 39));
    }

    #[test]
    fn the_plain_date_range_is_what_the_json_path_reads_back() {
        use dossier_model::xdm::parse_date;
        assert_eq!(parse_date("1000-01-01").map(i64::from), Some(FIRST_PLAIN_DAY));
        assert_eq!(parse_date("9999-12-31").map(i64::from), Some(LAST_PLAIN_DAY));
    }
}
