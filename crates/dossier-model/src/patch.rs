//! What the PATCH bodies of merge policies, segment definitions and schedules share: operations
//! given as an array (errors name the entry, `[2].path`), one `{"op", "path", "value"}` read
//! against a resource's [`OperationRules`], and setting a value at a dotted path.
//!
//! AEP's subset of JSON Patch is not RFC 6902: paths mix slashes and dots (`/identityGraph.type`)
//! and only `add`, `replace` and (on some fields) `remove` exist, so a JSON Patch crate would
//! refuse what AEP's clients send and could not name our fields in its errors. Merge policies keep
//! their own reader: they refuse `remove` and server-kept fields, and name a non-object entry
//! itself.

use serde_json::{Map, Value};

use crate::ValidationError;
use crate::validation::{present, shown};

/// What one resource allows in a JSON Patch operation.
pub(crate) struct OperationRules<'a> {
    /// An example operation, for the fix of a malformed one (`e.g. {"op": ...}`).
    pub example: &'a str,
    /// The paths that may be set, dotted (`expression.value`); operations may write them with
    /// slashes or dots, with or without the leading slash.
    pub paths: &'a [&'a str],
    /// The paths `remove` may name (optional fields), dotted.
    pub removable: &'a [&'a str],
    /// The fix of a `remove` on any other path.
    pub remove_fix: &'a str,
}

/// One operation of a PATCH body, as `(dotted path, value)`: `remove` gives `null` (the field's
/// default). `prefix` is what its errors put before the field (`[2].` for the third entry).
pub(crate) fn parse_operation(
    operation: &Value,
    prefix: &str,
    rules: &OperationRules,
) -> Result<(String, Value), ValidationError> {
    let example = rules.example;
    let field = |name: &str| format!("{prefix}{name}");
    if !operation.is_object() {
        return Err(ValidationError::invalid(
            field("op"),
            shown(operation),
            format!("each operation is an object, {example}"),
        ));
    }
    let op = match present(operation, "op") {
        Some(Value::String(op)) => op.to_ascii_lowercase(),
        Some(other) => return Err(ValidationError::invalid(field("op"), shown(other), example)),
        None => return Err(ValidationError::missing(field("op"), example)),
    };
    let raw_path = match present(operation, "path") {
        Some(Value::String(path)) => path,
        Some(other) => return Err(ValidationError::invalid(field("path"), shown(other), example)),
        None => return Err(ValidationError::missing(field("path"), example)),
    };
    let path = raw_path.trim_start_matches('/').replace('/', ".");
    if !rules.paths.contains(&path.as_str()) {
        return Err(ValidationError::invalid(
            field("path"),
            raw_path,
            format!("use one of /{}", rules.paths.join(", /").replace('.', "/")),
        ));
    }
    match op.as_str() {
        "add" | "replace" => match operation.get("value") {
            Some(value) => Ok((path, value.clone())),
            None => Err(ValidationError::missing(field("value"), example)),
        },
        "remove" if rules.removable.contains(&path.as_str()) => Ok((path, Value::Null)),
        "remove" => Err(ValidationError::invalid(field("op"), "remove", rules.remove_fix)),
        _ => Err(ValidationError::invalid(
            field("op"),
            op,
            format!("use add, replace or remove, {example}"),
        )),
    }
}

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
