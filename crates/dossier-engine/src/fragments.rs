//! Fragment files: how rows of a profile-store dataset sit in the lake.
//!
//! Every file carries the dataset's schema columns plus `_acp_system_metadata`, the system
//! struct AEP adds to dataset files: `commitBatchId` (the batch that wrote the row) and `rowId`
//! (the row's position in its batch). Together with the batch's commit time they order fragments
//! for merges — "later batch, then later row" — without relying on file order.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

/// The name of the system column.
pub const SYSTEM_METADATA: &str = "_acp_system_metadata";

fn system_fields() -> Fields {
    Fields::from(vec![
        Field::new("commitBatchId", DataType::Utf8, false),
        Field::new("rowId", DataType::Int64, false),
    ])
}

/// The Arrow type of `_acp_system_metadata`.
pub fn system_metadata_type() -> DataType {
    DataType::Struct(system_fields())
}

/// A dataset's file schema: its data columns followed by the system column.
pub fn file_schema(data: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = data.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(SYSTEM_METADATA, system_metadata_type(), false)));
    Arc::new(Schema::new(fields))
}

/// Appends the system column to a batch of data rows numbered from `first_row`.
pub fn with_system_metadata(
    rows: RecordBatch,
    file_schema: &SchemaRef,
    batch_id: &str,
    first_row: i64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.num_rows();
    let commit: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(batch_id, n)));
    let row_ids: ArrayRef = Arc::new(Int64Array::from_iter_values(first_row..first_row + n as i64));
    let system: ArrayRef = Arc::new(StructArray::try_new(system_fields(), vec![commit, row_ids], None)?);
    let mut columns = rows.columns().to_vec();
    columns.push(system);
    RecordBatch::try_new(file_schema.clone(), columns)
}
