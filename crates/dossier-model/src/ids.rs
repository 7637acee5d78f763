//! Identifiers the server issues.
//!
//! Datasets get 24 lower-case hex characters and batches 32, as AEP's do. Both start with the
//! creation time so that ids sort roughly by age, and end with random bits so they never collide.
//! Merge policies and segment definitions get UUIDs, as AEP's do (except each sandbox's seeded default, whose id is the
//! readable `timestampOrdered-none-mp`).

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

fn time_prefixed_hex(prefix_hex: usize, total_hex: usize) -> String {
    let now = crate::time::now_millis() as u64;
    let mut random = vec![0u8; total_hex.div_ceil(2)];
    rand::rng().fill_bytes(&mut random);
    let time_part = format!("{now:016x}");
    let time_part = &time_part[16 - prefix_hex..];
    let mut id = String::with_capacity(total_hex);
    id.push_str(time_part);
    id.push_str(&hex::encode(random)[..total_hex - prefix_hex]);
    id
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id received from a caller or read from storage.
            pub fn from_string(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A Catalog dataset id: 24 lower-case hex characters.
    DatasetId
);
string_id!(
    /// A Catalog batch id: 32 lower-case hex characters.
    BatchId
);
string_id!(
    /// An API client id, sent by callers as `x-api-key`.
    ClientId
);
string_id!(
    /// A merge policy id: a lower-case hyphenated UUID, or the seeded `timestampOrdered-none-mp`.
    MergePolicyId
);
string_id!(
    /// A segment definition id: a lower-case hyphenated UUID.
    SegmentDefinitionId
);

impl DatasetId {
    pub fn generate() -> Self {
        // 10 hex digits of milliseconds last until the year 2004 + 34 years; the leading digits
        // are dropped, which is fine: the id only needs to be unique, sorting is a convenience.
        Self(time_prefixed_hex(10, 24))
    }
}

impl BatchId {
    pub fn generate() -> Self {
        Self(time_prefixed_hex(12, 32))
    }
}

impl ClientId {
    pub fn generate() -> Self {
        Self(time_prefixed_hex(0, 32))
    }
}

impl MergePolicyId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }
}

impl SegmentDefinitionId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_aep_shapes() {
        let d = DatasetId::generate();
        assert_eq!(d.as_str().len(), 24);
        assert!(
            d.as_str()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let b = BatchId::generate();
        assert_eq!(b.as_str().len(), 32);
        assert_ne!(BatchId::generate(), b);
        assert_eq!(ClientId::generate().as_str().len(), 32);
        let m = MergePolicyId::generate();
        assert!(uuid::Uuid::parse_str(m.as_str()).is_ok(), "{m}");
        assert_eq!(m.as_str(), m.as_str().to_ascii_lowercase());
    }
}
