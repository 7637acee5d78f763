//! Helpers to read typed values out of rows.

use serde::de::DeserializeOwned;

use crate::StorageError;

pub(crate) fn json_column<T: DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    raw: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(raw).map_err(|e| StorageError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

pub(crate) fn parsed_column<T, E: std::fmt::Display>(
    table: &'static str,
    column: &'static str,
    parsed: Result<T, E>,
) -> Result<T, StorageError> {
    parsed.map_err(|e| StorageError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model values always serialize")
}
