//! The checks a record passes before it becomes a fragment, beyond its schema's types.

use serde_json::Value;

use dossier_model::xdm::{AuthenticatedState, FieldError, SchemaClass, XdmSchema, XdmType};

/// A row that cannot be ingested, as `GET /batches/{id}/failed` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub file: String,
    pub row: u64,
    /// Dot path of the offending field, when the problem is one field.
    pub field: Option<String>,
    pub reason: String,
}

fn value_at<'a>(record: &'a Value, dot_path: &str) -> Option<&'a Value> {
    dot_path
        .split('.')
        .try_fold(record, |value, part| value.get(part))
        .filter(|v| !v.is_null())
}

fn has_identity_map_entry(record: &Value) -> bool {
    let Some(Value::Object(namespaces)) = record.get("identityMap") else {
        return false;
    };
    namespaces.values().any(|entries| {
        entries.as_array().is_some_and(|list| {
            list.iter()
                .any(|entry| entry.get("id").and_then(Value::as_str).is_some_and(|id| !id.is_empty()))
        })
    })
}

/// The path of one identityMap entry's field: `identityMap.Email[0].authenticatedState`, or
/// `identityMap["my ns"][0]...` when the namespace is not a plain name.
fn identity_entry_path(namespace: &str, index: usize, field: &str) -> String {
    let plain = !namespace.is_empty()
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("identityMap.{namespace}[{index}].{field}")
    } else {
        format!("identityMap[{}][{index}].{field}", Value::String(namespace.to_owned()))
    }
}

/// `authenticatedState` is one of XDM's three values: anything else could not come back out of
/// a merged profile, so it is refused here rather than dropped later.
fn authenticated_state_errors(record: &Value) -> Vec<FieldError> {
    let Some(Value::Object(namespaces)) = record.get("identityMap") else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for (namespace, entries) in namespaces {
        for (index, entry) in entries.as_array().into_iter().flatten().enumerate() {
            // A value that is no string at all is already reported by the schema's type check.
            let Some(state) = entry.get("authenticatedState").and_then(Value::as_str) else {
                continue;
            };
            if AuthenticatedState::parse(state).is_some() {
                continue;
            }
            let allowed: Vec<&str> = AuthenticatedState::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(FieldError {
                path: identity_entry_path(namespace, index, "authenticatedState"),
                reason: format!(
                    "\"{state}\" is not an authenticatedState: use one of {} (case matters), or leave it out",
                    allowed.join(", ")
                ),
            });
        }
    }
    errors
}

/// Sorts one parsed (or unparseable) record of row `row` into `valid` or `rejected`, with the
/// reasons the failed-records report gives: the parse error alone, or each field's problem.
pub fn sort_record(
    schema: &XdmSchema,
    row: u64,
    record: Result<Value, String>,
    valid: &mut Vec<Value>,
    rejected: &mut Vec<super::arrow_intake::Rejected>,
) {
    match record {
        Err(reason) => rejected.push((row, vec![(None, reason)])),
        Ok(record) => {
            let problems = check_record(schema, &record);
            if problems.is_empty() {
                valid.push(record);
            } else {
                rejected.push((row, problems.into_iter().map(|e| (Some(e.path), e.reason)).collect()));
            }
        }
    }
}

/// Why `record` cannot be a fragment of a dataset with `schema`, field by field; empty if it can.
pub fn check_record(schema: &XdmSchema, record: &Value) -> Vec<FieldError> {
    let mut errors = match schema.validate_record(record) {
        Ok(()) => Vec::new(),
        Err(errors) => errors,
    };
    let has_identity = has_identity_map_entry(record)
        || schema
            .identities
            .iter()
            .any(|identity| value_at(record, &identity.path).is_some_and(|v| v.as_str().is_none_or(|s| !s.is_empty())));
    if !has_identity {
        let fields: Vec<&str> = schema.identities.iter().map(|i| i.path.as_str()).collect();
        let hint = if fields.is_empty() {
            String::new()
        } else {
            format!(" or a value in an identity field ({})", fields.join(", "))
        };
        errors.push(FieldError {
            path: "identityMap".into(),
            reason: format!("the record has no identity: give it an identityMap entry with an id{hint}"),
        });
    }
    errors.extend(authenticated_state_errors(record));
    if schema.class == SchemaClass::ExperienceEvent {
        for required in ["_id", "timestamp"] {
            if value_at(record, required).is_none()
                && matches!(schema.resolve_path(required), Some(XdmType::String | XdmType::DateTime))
            {
                errors.push(FieldError {
                    path: required.into(),
                    reason: format!("every event needs '{required}'"),
                });
            }
        }
    }
    errors
}
