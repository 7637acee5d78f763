//! Aligning fragments of different datasets to one schema (the union): missing columns and
//! missing struct fields become nulls, so fragments of every dataset merge column by column.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, ListArray, MapArray, RecordBatch, RecordBatchOptions, StructArray, new_null_array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::error::ArrowError;

/// Each field's position by name. `column_by_name` searches the fields one by one, so looking up
/// every target field that way is quadratic in the width of wide objects (issue 12).
fn positions(fields: &Fields) -> HashMap<&str, usize> {
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| (field.name().as_str(), index))
        .collect()
}

/// `array` with the type `target`: the same values, nulls where the source has no such field.
pub fn align_array(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    match (array.data_type(), target) {
        (DataType::Struct(source_fields), DataType::Struct(target_fields)) => {
            let source = array.as_struct();
            let positions = positions(source_fields);
            let children = target_fields
                .iter()
                .map(|field| match positions.get(field.name().as_str()) {
                    Some(&index) => align_array(source.column(index), field.data_type()),
                    None => Ok(new_null_array(field.data_type(), source.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                target_fields.clone(),
                children,
                source.nulls().cloned(),
            )?))
        }
        (DataType::List(_), DataType::List(item)) => {
            let source = array.as_list::<i32>();
            let values = align_array(source.values(), item.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                item.clone(),
                source.offsets().clone(),
                values,
                source.nulls().cloned(),
            )?))
        }
        (DataType::Map(_, _), DataType::Map(entries, ordered)) => {
            let source = array.as_map();
            let DataType::Struct(entry_fields) = entries.data_type() else {
                return Err(ArrowError::SchemaError("a map's entries must be a struct".into()));
            };
            let keys = align_array(source.keys(), entry_fields[0].data_type())?;
            let values = align_array(source.values(), entry_fields[1].data_type())?;
            let entries_array = StructArray::try_new(entry_fields.clone(), vec![keys, values], None)?;
            Ok(Arc::new(MapArray::try_new(
                entries.clone(),
                source.offsets().clone(),
                entries_array,
                source.nulls().cloned(),
                *ordered,
            )?))
        }
        _ => cast(array, target),
    }
}

/// `rows` with exactly the columns of `target`, in its order.
pub fn align_batch(rows: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let schema = rows.schema();
    let positions = positions(schema.fields());
    let columns = target
        .fields()
        .iter()
        .map(|field| match positions.get(field.name().as_str()) {
            Some(&index) => align_array(rows.column(index), field.data_type()),
            None => Ok(new_null_array(field.data_type(), rows.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Fields, Schema};

    #[test]
    fn missing_fields_become_nulls_at_every_depth() {
        let narrow = Fields::from(vec![Field::new("points", DataType::Int64, true)]);
        let wide = Fields::from(vec![
            Field::new("points", DataType::Int64, true),
            Field::new("tier", DataType::Utf8, true),
        ]);
        let loyalty: ArrayRef = Arc::new(StructArray::new(
            narrow.clone(),
            vec![Arc::new(Int64Array::from(vec![5, 6]))],
            None,
        ));
        let source = Arc::new(Schema::new(vec![Field::new("loyalty", DataType::Struct(narrow), true)]));
        let rows = RecordBatch::try_new(source, vec![loyalty]).unwrap();
        let target = Arc::new(Schema::new(vec![
            Field::new("_id", DataType::Utf8, true),
            Field::new("loyalty", DataType::Struct(wide), true),
        ]));
        let aligned = align_batch(&rows, &target).unwrap();
        assert_eq!(aligned.schema(), target);
        assert_eq!(aligned.column(0).null_count(), 2);
        let loyalty = aligned.column(1).as_struct();
        assert_eq!(
            loyalty.column(0).as_primitive::<arrow::datatypes::Int64Type>().value(1),
            6
        );
        assert!(
            loyalty
                .column_by_name("tier")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .is_null(0)
        );
    }
}
