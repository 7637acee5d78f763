//! How many shards and hash buckets a population is split into.

use super::super::BuildSettings;

/// How pass one splits a population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLayout {
    /// Profiles go to this many shards, each keyed, selected and exported on its own.
    pub shards: usize,
    /// Graph identities and fragments are joined in this many hash buckets, one at a time.
    pub buckets: usize,
}

impl ShardLayout {
    /// The layout for a graph of `identities` identities in `profiles` components.
    pub fn for_population(settings: &BuildSettings, identities: u64, profiles: u64) -> Self {
        let parts = |count: u64, per: usize| count.div_ceil(per.max(1) as u64).max(1) as usize;
        Self {
            // Shards are numbered in two bytes per profile while fragments are routed.
            shards: parts(profiles, settings.shard_profiles).min(usize::from(u16::MAX) - 1),
            buckets: parts(identities, settings.bucket_identities),
        }
    }

    pub(super) fn spills_to_disk(self) -> bool {
        self.shards > 1 || self.buckets > 1
    }
}

/// The part (shard or bucket) a 128-bit key falls in.
pub(super) fn part_of(key: u128, parts: usize) -> usize {
    (key as u64 % parts as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_population_within_the_configured_sizes_is_one_shard_and_one_bucket() {
        let settings = BuildSettings::default();
        let layout = ShardLayout::for_population(&settings, 3_650_000, 1_360_000);
        assert_eq!(layout, ShardLayout { shards: 1, buckets: 1 });
        assert!(!layout.spills_to_disk());
    }

    #[test]
    fn a_larger_population_is_split_by_the_configured_sizes() {
        let settings = BuildSettings {
            shard_profiles: 1000,
            bucket_identities: 3000,
            ..BuildSettings::default()
        };
        let layout = ShardLayout::for_population(&settings, 9001, 2500);
        assert_eq!(layout, ShardLayout { shards: 3, buckets: 4 });
        assert!(layout.spills_to_disk());
        assert_eq!(
            ShardLayout::for_population(&settings, 0, 0),
            ShardLayout { shards: 1, buckets: 1 }
        );
    }
}
