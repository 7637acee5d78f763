//! What the PATCH bodies of merge policies and segment definitions share: operations given as
//! an array (errors name the entry, `[2].path`) and setting a value at a dotted path. How one
//! operation is read differs by resource (allowed paths, `remove`), so each parses its own.

use serde_json::{Map, Value};

use crate::ValidationError;

/// Each operation of an array body, read by `parse` with the prefix its errors name fields with.
pub(crate) fn each_operation<T>(
    items: &[Value],
    parse: impl Fn(&Value, &str) -> Result<T, ValidationError>,
) -> Result<Vec<T>, ValidationError> {
    items
        .iter()
        .enumerate()
        .map(|(i, op)| parse(op, &format!("[{i}].")))
        .collect()
}

/// Sets `value` at a dotted path of a JSON object, creating (or replacing non-object)
/// intermediate objects.
pub(crate) fn set_at(target: &mut Value, path: &str, value: Value) {
    let mut node = target;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let object = node.as_object_mut().expect("made an object above");
        if segments.peek().is_none() {
            object.insert(segment.to_owned(), value);
            return;
        }
        node = object
            .entry(segment.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
