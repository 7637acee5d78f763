//! Building only the profiles a job can select. A job filtered by segments, or by
//! `fromIngestTimestamp`, exports a few of the profiles; keying, selecting and merging all of
//! them costs in proportion to the sandbox, not to the job. A [`Restriction`] names seed
//! identities whose profiles are the only candidates, found without keying anything:
//!
//! - `segments`: the primary identities of the record fragments holding an entry for a filtered
//!   segment (from the segment index, `segments::member_index`), and every identity of the
//!   evaluated (`ups`) memberships of a filtered `ups` segment;
//! - `touched_after`: the primary identities of the fragments of the files pass one reads that
//!   were ingested strictly after the time (a profile's last update is after it exactly when
//!   one of its fragments was).
//!
//! Under `pdg` seeds are resolved to their components while the graph is read, and a fragment
//! is kept when its component is reached by every criterion; under `none` when its primary
//! identity is a seed of every criterion. All of a kept profile's fragments are kept, from
//! every file, so it is merged in full. The seeds are a superset of the selection: the exact
//! decision (statuses, windows, empty profiles) is still made on the merged profiles.

use dossier_model::export_job::SegmentFilter;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::SchemaClass;
use dossier_storage::Lake;

use super::ShardedKeys;
use super::identity_hash::identity_hash;
use super::sidecar::{Primary, visit_sidecar};
use crate::EngineError;
use crate::identity::read_file_primaries;
use crate::segments::member_index::candidate_identities;
use crate::segments::memberships::UPS;

/// Which profiles a build keys: every one by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restriction {
    /// Only profiles with a fragment ingested strictly after this time.
    pub touched_after: Option<EpochMillis>,
    /// Only profiles that may hold an entry for one of these segments.
    pub segments: Vec<SegmentFilter>,
}

impl Restriction {
    pub fn is_everything(&self) -> bool {
        self.touched_after.is_none() && self.segments.is_empty()
    }
}

/// The seeds of each criterion of a restriction, as identity hashes (the 128-bit hashes the
/// graph and the key sidecars use): a profile is built when every set reaches it. Hashes, not
/// identities: a segment of a million members would otherwise be a million owned strings,
/// hashed and compared again at every step.
pub(super) struct Seeds {
    sets: Vec<HashSet<u128>>,
}

type HashSet<T> = foldhash::HashSet<T>;

impl Seeds {
    pub(super) fn hashes(&self) -> impl Iterator<Item = u128> + '_ {
        self.sets.iter().flatten().copied()
    }

    /// `pdg`: the components every criterion reaches, as a mask over component numbers.
    pub(super) fn component_mask(&self, resolved: &foldhash::HashMap<u128, u32>, components: usize) -> Vec<bool> {
        let mut reached = vec![0u8; components];
        let mut seen = vec![false; components];
        for set in &self.sets {
            seen.fill(false);
            for &component in set.iter().filter_map(|hash| resolved.get(hash)) {
                let c = component as usize;
                if c < components && !seen[c] {
                    seen[c] = true;
                    reached[c] += 1;
                }
            }
        }
        let needed = self.sets.len() as u8;
        reached.into_iter().map(|count| count == needed).collect()
    }

    /// `none`: the primary identity hashes every criterion names.
    pub(super) fn primary_hashes(&self) -> HashSet<u128> {
        let mut sets = self.sets.iter();
        let first = sets.next().cloned().unwrap_or_default();
        sets.fold(first, |kept, next| kept.intersection(next).copied().collect())
    }
}

impl ShardedKeys {
    /// The seeds of `restriction` over the files this build reads, or `None` for every profile.
    pub(super) async fn find_seeds(
        &self,
        lake: &Lake,
        restriction: &Restriction,
    ) -> Result<Option<Seeds>, EngineError> {
        if restriction.is_everything() {
            return Ok(None);
        }
        let mut sets = Vec::new();
        if let Some(from) = restriction.touched_after {
            sets.push(self.touched_after(lake, from).await?);
        }
        if !restriction.segments.is_empty() {
            sets.push(self.segment_candidates(lake, &restriction.segments).await?);
        }
        Ok(Some(Seeds { sets }))
    }

    /// Primary identities of the fragments ingested after `from`, from the files' key
    /// sidecars where they are usable.
    async fn touched_after(&self, lake: &Lake, from: EpochMillis) -> Result<HashSet<u128>, EngineError> {
        let mut seeds = HashSet::default();
        for file in self.files.iter().filter(|f| f.ingested > from) {
            let schema = &self.datasets[file.dataset].schema;
            let from_sidecar = visit_sidecar(lake, &file.location, schema, false, |_, primary: &Primary<'_>| {
                seeds.insert(primary.hash);
                Ok(())
            })
            .await?;
            if !from_sidecar {
                let (primaries, _) = read_file_primaries(lake, &file.location, schema).await?;
                seeds.extend(primaries.iter().flatten().map(|p| identity_hash(&p.namespace, &p.id)));
            }
        }
        Ok(seeds)
    }

    /// Identities whose profiles may be members of one of `filters`: from the segment index of
    /// the record files read, and from the evaluated memberships.
    async fn segment_candidates(&self, lake: &Lake, filters: &[SegmentFilter]) -> Result<HashSet<u128>, EngineError> {
        let records: Vec<_> = self
            .files
            .iter()
            .filter(|f| self.datasets[f.dataset].schema.class == SchemaClass::Profile)
            .map(|f| (f.location.clone(), self.datasets[f.dataset].schema.clone()))
            .collect();
        let mut seeds: HashSet<u128> = candidate_identities(lake, &records, filters, identity_hash)
            .await?
            .into_iter()
            .collect();
        for (segment, rows) in &self.memberships {
            let filtered = filters
                .iter()
                .any(|f| f.segment_id == *segment && f.segment_ns.eq_ignore_ascii_case(UPS));
            if filtered {
                seeds.extend(
                    rows.iter()
                        .flat_map(|r| &r.identities)
                        .map(|i| identity_hash(&i.namespace, &i.id)),
                );
            }
        }
        Ok(seeds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<u128> {
        ids.iter().map(|id| identity_hash("ECID", id)).collect()
    }

    #[test]
    fn a_component_is_kept_when_every_criterion_reaches_it() {
        let seeds = Seeds {
            sets: vec![set(&["a", "b"]), set(&["c"])],
        };
        let resolved: foldhash::HashMap<u128, u32> = [("a", 0), ("b", 1), ("c", 1)]
            .into_iter()
            .map(|(id, c)| (identity_hash("ECID", id), c))
            .collect();
        assert_eq!(seeds.component_mask(&resolved, 3), vec![false, true, false]);
    }

    #[test]
    fn under_none_a_primary_must_be_a_seed_of_every_criterion() {
        let seeds = Seeds {
            sets: vec![set(&["a", "b"]), set(&["b", "c"])],
        };
        assert_eq!(
            seeds.primary_hashes(),
            [identity_hash("ECID", "b")].into_iter().collect()
        );
    }
}
