//! The one error a PQL text can get: where, and what to write instead.

use std::fmt;

use super::span::Position;

/// Why a PQL text was refused, and where. The message names the construct as written and says
/// what is accepted, so that the user can fix the expression from the message alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PqlError {
    pub position: Position,
    pub message: String,
}

impl PqlError {
    pub fn at(position: Position, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }

    /// A construct outside the supported subset: `'<construct>' is not supported; <fix>`.
    pub fn unsupported(position: Position, construct: &str, fix: impl fmt::Display) -> Self {
        Self::at(position, format!("'{construct}' is not supported; {fix}"))
    }
}

impl fmt::Display for PqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.position, self.message)
    }
}

impl std::error::Error for PqlError {}
