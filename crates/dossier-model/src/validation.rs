//! The one error type for input that does not fit the model.

use std::fmt;

use serde_json::Value;

/// Input that does not fit the model: which field, which value, and how to fix it.
///
/// Every 4xx the API answers for bad input is built from one of these, so the user always learns
/// the field, the value they sent and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dot path of the offending field as the user wrote it (`schemaRef.id`, `limit`).
    pub field: String,
    /// The offending value as sent, or `None` when the field was missing.
    pub value: Option<String>,
    /// What is wrong and what would be accepted.
    pub fix: String,
}

impl ValidationError {
    pub fn missing(field: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: None,
            fix: fix.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: impl fmt::Display, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: Some(value.to_string()),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "Field '{}' is required: {}", self.field, self.fix),
            Some(v) => write!(f, "Field '{}' has an invalid value '{}': {}", self.field, v, self.fix),
        }
    }
}

impl std::error::Error for ValidationError {}

/// A member of a JSON object, `None` when absent or `null` (both mean "not given").
pub(crate) fn present<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

/// A value as the user wrote it, for error messages: strings without their JSON quotes.
pub(crate) fn shown(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// A boolean; `"true"` and `"false"` as strings are accepted too, because AEP's own PATCH
/// example sends `"value": "true"`.
pub(crate) fn lenient_bool(field: &str, value: &Value) -> Result<bool, ValidationError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ValidationError::invalid(field, shown(other), "expected true or false")),
    }
}
