//! The one error type for input that does not fit the model.

use std::fmt;

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
