//! Building merged profiles from fragments under a merge policy (semantics.md "Profiles and
//! merge policies"). Profile lookup uses it now; exports stream through the same merge.

pub mod align;
pub mod fragments;
pub(crate) mod json_columns;
pub mod lookup;
pub mod merge;

pub use lookup::{MergedProfile, lookup_profile};
