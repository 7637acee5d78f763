//! Moving single columns between Arrow and JSON, for the two maps merged key by key.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_empty_array};
use arrow::datatypes::{Field, Schema};
use arrow::json::ReaderBuilder;
use serde_json::{Map, Value};

use crate::EngineError;

/// The values of column `name` of `rows` as JSON, `Null` where absent.
pub fn column_as_json(rows: &RecordBatch, name: &str) -> Result<Vec<Value>, EngineError> {
    let Some(column) = rows.column_by_name(name) else {
        return Ok(vec![Value::Null; rows.num_rows()]);
    };
    let field = rows.schema().field_with_name(name)?.clone();
    let single = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column.clone()])?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(&single)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(vec![Value::Null; rows.num_rows()]);
    }
    let objects: Vec<Map<String, Value>> =
        serde_json::from_slice(&bytes).map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(objects
        .into_iter()
        .map(|mut o| o.remove(name).unwrap_or(Value::Null))
        .collect())
}

/// A column of type `field` holding `values` (JSON `null` for absent).
pub fn column_from_json(field: &Field, values: Vec<Value>) -> Result<ArrayRef, EngineError> {
    if values.is_empty() {
        return Ok(new_empty_array(field.data_type()));
    }
    let schema = Arc::new(Schema::new(vec![field.clone()]));
    let count = values.len();
    let mut decoder = ReaderBuilder::new(schema).with_batch_size(count).build_decoder()?;
    let rows: Vec<Value> = values
        .into_iter()
        .map(|v| Value::Object(Map::from_iter([(field.name().clone(), v)])))
        .collect();
    decoder.serialize(&rows)?;
    let batch = decoder
        .flush()?
        .ok_or_else(|| EngineError::Invalid("no rows decoded".into()))?;
    Ok(batch.column(0).clone())
}
