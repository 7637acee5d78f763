//! Organizations and sandboxes: the two keys that scope every object.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The sandbox every organization starts with, and the one a request without
/// `x-sandbox-name` addresses.
pub const DEFAULT_SANDBOX: &str = "prod";

/// An IMS organization id, such as `1BD6382559DF0C130A49422D@AdobeOrg`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    /// Accepts what AEP's org ids are made of (letters, digits, `@ . _ -`), at most 255 long.
    /// The id becomes a folder name in the lake, so nothing else is allowed.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= 255
            && !raw.starts_with('.')
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::invalid(
                "org",
                raw,
                "an organization id is 1 to 255 letters, digits, '@', '.', '_' or '-', e.g. 1BD6382559DF0C130A49422D@AdobeOrg",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sandbox name: lower-case letters, digits and hyphens, starting with a letter, as AEP's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SandboxName(String);

impl SandboxName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= 256
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::invalid(
                "sandbox",
                raw,
                "a sandbox name is lower-case letters, digits and '-', starting with a letter, e.g. dev or prod-eu",
            ))
        }
    }

    pub fn prod() -> Self {
        Self(DEFAULT_SANDBOX.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SandboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The (organization, sandbox) pair that owns every dataset, batch, job and profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub org: OrgId,
    pub sandbox: SandboxName,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_as_aep_writes_them_are_accepted() {
        assert!(OrgId::parse("1BD6382559DF0C130A49422D@AdobeOrg").is_ok());
        for bad in ["", "a/b", "../x", ".hidden", "with space"] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn sandbox_names_follow_aep_rules() {
        for good in ["prod", "dev", "prod-eu", "dev2"] {
            assert!(SandboxName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Prod", "2dev", "dev_1", "a/b"] {
            assert!(SandboxName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
