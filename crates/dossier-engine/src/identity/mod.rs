//! The identity graph: identities that appear together in a fragment are linked; the linked
//! identities form components, and under the `pdg` merge policy a component is one profile.
//!
//! `union_find` is the graph in memory, `snapshot` the Parquet files of a version, `buckets`
//! how a version is split into buckets a fold rewrites one by one, and
//! `store` the versioned graph of a sandbox: folds that add committed batches, and readers that
//! pin one version.

pub mod buckets;
pub mod extract;
pub mod fold;
pub mod read;
pub mod snapshot;
pub mod store;
pub mod union_find;

pub use extract::{FragmentIdentities, fragment_identities, fragment_primaries};
pub use read::{read_file_identities, read_file_primaries};
pub use snapshot::ComponentIndex;
pub use store::{FoldOutcome, PinnedGraph, fold_pending, pin_latest};
pub use union_find::{Identity, IdentityGraph};
