//! The partition reader: the record fragments of some profiles of a shard, read with a row
//! selection and a projection, aligned to one schema, ordered by profile and merge rank and
//! grouped by profile. What exports, segment evaluation and lookup merge.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;

use dossier_model::time::EpochMillis;
use dossier_storage::Lake;

use super::keys::{KeyedSources, identity_columns, read_picked_rows};
use crate::EngineError;
use crate::identity::{FragmentIdentities, Identity, fragment_identities};
use crate::profiles::align::align_batch;
use crate::profiles::merge::Groups;

/// Some profiles of a shard (their numbers, ascending), and which profiles that is as a mask
/// over the shard's profiles, as [`read_picked_rows`] takes it.
pub struct Partition<'a> {
    pub profiles: &'a [u32],
    pub wanted: Vec<bool>,
}

impl<'a> Partition<'a> {
    /// `profiles` (ascending) of `sources`.
    pub fn new(sources: &KeyedSources, profiles: &'a [u32]) -> Self {
        let mut wanted = vec![false; sources.profiles.len()];
        for &p in profiles {
            wanted[p as usize] = true;
        }
        Self { profiles, wanted }
    }
}

/// Where a fragment stands in its profile's merge order: profile, dataset rank (0 under
/// `timestampOrdered`), ingestion time, batch sequence, row id; lowest first.
pub type MergeRank = (u32, i64, EpochMillis, i64, i64);

/// The record fragments of a partition, aligned to one schema and ordered by profile and merge
/// rank.
pub struct PartitionRecords {
    /// Every fragment, in read order.
    pub rows: RecordBatch,
    /// Per row: the fragment's identities.
    pub identities: Vec<FragmentIdentities>,
    /// Per row: its merge rank.
    pub ranks: Vec<MergeRank>,
    /// Per profile of the partition (in its order): its rows in merge order.
    pub groups: Groups,
}

impl PartitionRecords {
    /// The rows of the partition's `g`-th profile, in merge order.
    pub fn rows_of(&self, g: usize) -> &[u32] {
        &self.groups.order[self.groups.bounds[g].clone()]
    }

    /// The primary identity of the `g`-th profile's most recently ingested record fragment.
    pub fn latest_primary(&self, g: usize) -> Option<&Identity> {
        let latest = self.rows_of(g).iter().max_by_key(|&&r| {
            let (_, _, ingested, batch_seq, row_id) = self.ranks[r as usize];
            (ingested, batch_seq, row_id)
        });
        latest.and_then(|&r| self.identities[r as usize].primary())
    }
}

/// Reads the record fragments of `partition`, with only the top-level columns of `schema` and
/// those identities are taken from, aligned to `schema`.
pub async fn read_records(
    lake: &Lake,
    sources: &KeyedSources,
    partition: &Partition<'_>,
    schema: &SchemaRef,
) -> Result<PartitionRecords, EngineError> {
    let identity_columns = identity_columns(&sources.datasets);
    // A set: a union schema can have thousands of top-level fields.
    let columns: HashSet<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .chain(identity_columns.iter().map(String::as_str))
        .collect();
    let keep = |name: &str| columns.contains(name);
    let mut aligned = Vec::new();
    let mut ranks = Vec::new();
    let mut identities = Vec::new();
    for (index, rows, picked) in read_picked_rows(lake, &sources.records, &partition.wanted, &keep).await? {
        let keyed = &sources.records[index];
        let dataset = &sources.datasets[keyed.file.dataset];
        identities.extend(fragment_identities(&rows, &dataset.schema.identities));
        for &r in &picked {
            ranks.push((
                keyed.profiles[r],
                dataset.rank,
                keyed.file.ingested,
                keyed.file.batch_seq,
                keyed.row_ids[r],
            ));
        }
        aligned.push(align_batch(&rows, schema)?);
    }
    let rows = concat_batches(schema, &aligned)?;
    let groups = group_by_profile(&ranks, partition.profiles);
    Ok(PartitionRecords {
        rows,
        identities,
        ranks,
        groups,
    })
}

/// Per profile of `partition` (in its order), the identities of each of its events: what a
/// profile of events only shows as its `identityMap`.
pub async fn read_event_identities(
    lake: &Lake,
    sources: &KeyedSources,
    partition: &Partition<'_>,
) -> Result<Vec<Vec<FragmentIdentities>>, EngineError> {
    let mut position = std::collections::HashMap::with_capacity(partition.profiles.len());
    for (g, &p) in partition.profiles.iter().enumerate() {
        position.insert(p, g);
    }
    let columns = identity_columns(&sources.datasets);
    let keep = |name: &str| columns.iter().any(|c| c == name);
    let mut out = vec![Vec::new(); partition.profiles.len()];
    for (index, rows, picked) in read_picked_rows(lake, &sources.events, &partition.wanted, &keep).await? {
        let keyed = &sources.events[index];
        let dataset = &sources.datasets[keyed.file.dataset];
        for (fragment, &r) in fragment_identities(&rows, &dataset.schema.identities)
            .into_iter()
            .zip(&picked)
        {
            out[position[&keyed.profiles[r]]].push(fragment);
        }
    }
    Ok(out)
}

/// Rows ordered by merge rank, and the run of each of `profiles` (ascending) in that order.
fn group_by_profile(ranks: &[MergeRank], profiles: &[u32]) -> Groups {
    let mut order: Vec<u32> = (0..ranks.len() as u32).collect();
    order.sort_unstable_by_key(|&r| ranks[r as usize]);
    let mut bounds = Vec::with_capacity(profiles.len());
    let mut cursor = 0;
    for &profile in profiles {
        let start = cursor;
        while cursor < order.len() && ranks[order[cursor] as usize].0 == profile {
            cursor += 1;
        }
        bounds.push(start..cursor);
    }
    Groups { order, bounds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_grouped_by_profile_in_merge_order_and_a_profile_without_rows_is_empty() {
        let ranks = vec![
            (2, 0, 5, 1, 1),
            (0, 0, 9, 1, 1),
            (2, 0, 3, 1, 7),
            (0, 1, 1, 1, 1),
            (0, 0, 9, 1, 0),
        ];
        let groups = group_by_profile(&ranks, &[0, 1, 2]);
        assert_eq!(groups.order, vec![4, 1, 3, 2, 0]);
        assert_eq!(groups.bounds, vec![0..3, 3..3, 3..5]);
    }
}
