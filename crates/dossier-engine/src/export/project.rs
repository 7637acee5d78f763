//! `fields`: keeping only the named paths (and their ancestors) of a schema.
//!
//! A path to an object keeps the whole object; a path goes through arrays (`identities.id`
//! keeps `id` of every element of `identities`). Projection of data is then alignment to the
//! projected schema: the same function that widens fragments to the union narrows profiles.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

fn project_type(data_type: &DataType, rest: &[&str]) -> Option<DataType> {
    if rest.is_empty() {
        return Some(data_type.clone());
    }
    match data_type {
        DataType::Struct(fields) => {
            let child = fields.iter().find(|f| f.name() == rest[0])?;
            let projected = project_type(child.data_type(), &rest[1..])?;
            Some(DataType::Struct(Fields::from(vec![Field::new(
                child.name(),
                projected,
                true,
            )])))
        }
        DataType::List(item) => {
            let projected = project_type(item.data_type(), rest)?;
            Some(DataType::List(Arc::new(Field::new(item.name(), projected, true))))
        }
        _ => None,
    }
}

/// Merges two projections of the same type (union of their kept children, in schema order).
fn merge_types(original: &DataType, a: &DataType, b: &DataType) -> DataType {
    match (original, a, b) {
        (DataType::Struct(all), DataType::Struct(left), DataType::Struct(right)) => {
            let kept: Vec<Field> = all
                .iter()
                .filter_map(|field| {
                    let l = left.iter().find(|f| f.name() == field.name());
                    let r = right.iter().find(|f| f.name() == field.name());
                    let data_type = match (l, r) {
                        (Some(l), Some(r)) => merge_types(field.data_type(), l.data_type(), r.data_type()),
                        (Some(only), None) | (None, Some(only)) => only.data_type().clone(),
                        (None, None) => return None,
                    };
                    Some(Field::new(field.name(), data_type, true))
                })
                .collect();
            DataType::Struct(Fields::from(kept))
        }
        (DataType::List(item), DataType::List(l), DataType::List(r)) => DataType::List(Arc::new(Field::new(
            item.name(),
            merge_types(item.data_type(), l.data_type(), r.data_type()),
            true,
        ))),
        _ => original.clone(),
    }
}

/// The schema with only `paths` (and `always`, e.g. `identityMap`), in the schema's order.
/// Returns the paths that name nothing, so the caller can refuse them.
pub fn project_schema(schema: &Schema, paths: &[String], always: &[&str]) -> Result<SchemaRef, Vec<String>> {
    let mut kept: Vec<Option<DataType>> = vec![None; schema.fields().len()];
    let mut unknown = Vec::new();
    let all_paths = paths.iter().map(String::as_str).chain(always.iter().copied());
    for path in all_paths {
        let parts: Vec<&str> = path.split('.').collect();
        let Some(index) = schema.fields().iter().position(|f| f.name() == parts[0]) else {
            if !always.contains(&path) {
                unknown.push(path.to_owned());
            }
            continue;
        };
        let field = &schema.fields()[index];
        match project_type(field.data_type(), &parts[1..]) {
            Some(projected) => {
                kept[index] = Some(match &kept[index] {
                    Some(existing) => merge_types(field.data_type(), existing, &projected),
                    None => projected,
                });
            }
            None => unknown.push(path.to_owned()),
        }
    }
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(kept)
        .filter_map(|(field, kept)| kept.map(|data_type| Field::new(field.name(), data_type, true)))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let identity = DataType::Struct(Fields::from(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("primary", DataType::Boolean, true),
        ]));
        let email = DataType::Struct(Fields::from(vec![
            Field::new("address", DataType::Utf8, true),
            Field::new("type", DataType::Utf8, true),
        ]));
        Schema::new(vec![
            Field::new("_id", DataType::Utf8, true),
            Field::new(
                "identities",
                DataType::List(Arc::new(Field::new("item", identity, true))),
                true,
            ),
            Field::new("personalEmail", email, true),
            Field::new("identityMap", DataType::Utf8, true),
        ])
    }

    #[test]
    fn the_tutorials_fields_keep_paths_through_arrays_and_identity_map() {
        let projected = project_schema(
            &schema(),
            &["identities.id".into(), "personalEmail.address".into()],
            &["identityMap"],
        )
        .unwrap();
        let names: Vec<&String> = projected.fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["identities", "personalEmail", "identityMap"]);
        let DataType::List(item) = projected.field(0).data_type() else {
            panic!()
        };
        let DataType::Struct(inner) = item.data_type() else {
            panic!()
        };
        assert_eq!(inner.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["id"]);
    }

    #[test]
    fn an_object_path_keeps_the_object_and_paths_combine() {
        let projected = project_schema(&schema(), &["personalEmail.type".into(), "personalEmail".into()], &[]).unwrap();
        let DataType::Struct(inner) = projected.field(0).data_type() else {
            panic!()
        };
        assert_eq!(inner.len(), 2);
        assert_eq!(
            project_schema(&schema(), &["personalEmail.nope".into(), "nothing".into()], &[]).unwrap_err(),
            ["personalEmail.nope", "nothing"]
        );
    }
}
