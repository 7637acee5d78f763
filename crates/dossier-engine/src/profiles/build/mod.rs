//! The one profile builder: exports, segment evaluation and profile lookup build merged profiles
//! through it.
//!
//! Building is two steps, each with Arrow batches at its seams:
//! 1. keying ([`shards`], over [`keys`]): every fragment's primary identity read once and sent
//!    to the shard of its profile, memory bounded by [`BuildSettings`] (what does not fit is
//!    spilled under [`BuildSettings::spill_root`]); a shard reads back as [`keys::KeyedSources`];
//! 2. the partition reader ([`partition`]): the picked rows of a partition of a shard's
//!    profiles read, aligned to one schema, ordered by profile and merge rank and grouped, ready
//!    for [`super::merge::merge_groups`].
//!
//! A lookup keys just the one profile it shows ([`one`]) and reads it through the same reader.
//!
//! What is done with the merged profiles (filters, projection, writers, segment expressions) is
//! the caller's.

pub mod keys;
pub mod one;
pub mod partition;
pub mod shards;
mod spill;

use std::path::PathBuf;

pub use keys::{EventScan, KeyedFile, KeyedSources, ProfileFacts, SourceDataset, SourceFile, identity_columns};
pub use one::{OneProfile, key_one_profile};
pub use partition::{Partition, PartitionRecords, read_event_identities, read_records};
pub use shards::{ComponentTables, KeyingContext, Restriction, ShardLayout, ShardedKeys, clear_stale_spills};

/// How building profiles may use the machine: configuration, not part of a job. Exports take
/// them as `ExportSettings`; segment evaluation reads the same ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// Profiles whose fragments are held in memory at once (one partition); smaller means less
    /// memory and more passes over the files.
    pub partition_profiles: usize,
    /// Profiles keyed and selected at once (one shard); a larger population is split into
    /// shards built one after the other, its keying spilled to disk.
    pub shard_profiles: usize,
    /// Identity graph identities held in one hash map while fragments are keyed; a larger graph
    /// is joined in hash buckets spilled to disk.
    pub bucket_identities: usize,
    /// Where spills go (a folder per build, removed when it ends); `None`: the system's
    /// temporary folder.
    pub spill_dir: Option<PathBuf>,
}

impl BuildSettings {
    pub fn spill_root(&self) -> PathBuf {
        self.spill_dir.clone().unwrap_or_else(default_spill_root)
    }
}

impl Default for BuildSettings {
    /// The sizes' defaults are the [`dossier_model::options::Options`] defaults.
    fn default() -> Self {
        Self::from(&dossier_model::options::Options::default())
    }
}

/// The default spill root: the system's temporary folder.
pub fn default_spill_root() -> PathBuf {
    std::env::temp_dir().join("dossier-spill")
}
