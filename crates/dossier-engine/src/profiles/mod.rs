//! Building merged profiles from fragments under a merge policy (semantics.md "Profiles and
//! merge policies"). Exports, segment evaluation and profile lookup key and read fragments through
//! one builder (`build/`) and merge through `merge.rs`; `fragments.rs` loads a whole sandbox, for
//! tests that compare against it. Nothing here imports `export::`.

pub mod align;
pub mod build;
pub mod fragments;
pub mod json_columns;
pub mod lookup;
pub mod merge;

pub use lookup::{MergedProfile, lookup_profile};
