//! The identity → component table a graph within one bucket is joined through, and the cache
//! of sealed tables an exporter keeps between its exports.

use std::sync::{Arc, Mutex};

/// Identity hashes and their components, sorted, with where each run of equal top bits starts:
/// a lookup reads one run of a few entries. Three times smaller than a hash map of the same
/// pairs, which matters most in a fresh process, where every page touched is a page zeroed.
/// Where a build finds the component of an identity hash: a table in memory, or a graph
/// version's kept buckets.
pub(super) trait ComponentLookup {
    fn get(&self, hash: u128) -> Option<u32>;
}

impl ComponentLookup for ComponentTable {
    fn get(&self, hash: u128) -> Option<u32> {
        ComponentTable::get(self, hash)
    }
}

/// The bytes of one entry as [`ComponentTable::write_sorted`] writes it: the hash's high and low
/// halves and the component, little-endian.
pub(super) const ENTRY_BYTES: usize = 20;

#[derive(Default)]
pub(super) struct ComponentTable {
    entries: Vec<(u64, u64, u32)>,
    shift: u32,
    starts: Vec<u32>,
}

impl ComponentTable {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            ..Self::default()
        }
    }

    pub(super) fn push(&mut self, hash: u128, component: u32) {
        self.entries.push(((hash >> 64) as u64, hash as u64, component));
    }

    /// Sorts the entries and indexes them by their top bits (about one run per entry).
    pub(super) fn seal(&mut self) {
        self.entries.sort_unstable_by_key(|e| (e.0, e.1));
        self.index();
    }

    /// Writes the entries, sorted, as [`ENTRY_BYTES`]-byte records (what a graph version's kept
    /// buckets are made of).
    pub(super) fn write_sorted(mut self, mut out: impl std::io::Write) -> std::io::Result<()> {
        self.entries.sort_unstable_by_key(|e| (e.0, e.1));
        for &(high, low, component) in &self.entries {
            out.write_all(&high.to_le_bytes())?;
            out.write_all(&low.to_le_bytes())?;
            out.write_all(&component.to_le_bytes())?;
        }
        out.flush()
    }

    /// Indexes sorted entries by their top bits.
    fn index(&mut self) {
        let bits = (usize::BITS - self.entries.len().leading_zeros()).clamp(1, 30);
        self.shift = 64 - bits;
        let runs = 1usize << bits;
        let mut starts = vec![0u32; runs + 1];
        for entry in &self.entries {
            starts[(entry.0 >> self.shift) as usize + 1] += 1;
        }
        for run in 0..runs {
            starts[run + 1] += starts[run];
        }
        self.starts = starts;
    }

    pub(super) fn get(&self, hash: u128) -> Option<u32> {
        let (high, low) = ((hash >> 64) as u64, hash as u64);
        let run = (high >> self.shift) as usize;
        let (start, end) = (*self.starts.get(run)? as usize, self.starts[run + 1] as usize);
        self.entries[start..end]
            .iter()
            .find(|e| e.0 == high && e.1 == low)
            .map(|e| e.2)
    }
}

/// Sealed tables of the graph versions an exporter lately keyed against, by snapshot path. A
/// snapshot never changes once written, and a table exists only for a graph within one bucket,
/// so what is kept is bounded by `bucket_identities`, and saves every later export of the
/// version its scan (about a second per 2 M identities).
///
/// Owned by whoever runs exports (the export queue's exporter) and lent to each export, so two
/// exporters (two servers in one test process) never share tables. Cheap to clone: clones
/// share one cache.
#[derive(Clone, Default)]
pub struct ComponentTables {
    kept: Arc<Mutex<Vec<KeptTable>>>,
}

/// A sealed table and the snapshot path it was built from.
type KeptTable = (String, Arc<ComponentTable>);

/// The current version and the one before it, for exports that pinned it just before a fold.
const TABLES_KEPT: usize = 2;

impl ComponentTables {
    pub(super) fn get(&self, path: &str) -> Option<Arc<ComponentTable>> {
        let tables = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        tables.iter().find(|(p, _)| p == path).map(|(_, table)| table.clone())
    }

    pub(super) fn keep(&self, path: &str, table: Arc<ComponentTable>) {
        let mut tables = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        tables.retain(|(p, _)| p != path);
        tables.push((path.to_owned(), table));
        if tables.len() > TABLES_KEPT {
            tables.remove(0);
        }
    }
}

impl std::fmt::Debug for ComponentTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.kept.lock().map_or(0, |t| t.len());
        f.debug_struct("ComponentTables").field("kept", &kept).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::identity_hash::identity_hash;
    use super::*;

    #[test]
    fn a_component_table_finds_every_identity_it_holds_and_nothing_else() {
        for count in [0u32, 1, 2, 3, 1000, 70_000] {
            let mut table = ComponentTable::default();
            for i in 0..count {
                table.push(identity_hash("ECID", &i.to_string()), i * 3);
            }
            table.seal();
            for i in 0..count {
                assert_eq!(table.get(identity_hash("ECID", &i.to_string())), Some(i * 3));
            }
            assert_eq!(table.get(identity_hash("ECID", "absent")), None);
            assert_eq!(table.get(identity_hash("Email", "0")), None);
        }
    }

    #[test]
    fn the_cache_keeps_the_two_latest_versions_and_clones_share_it() {
        let tables = ComponentTables::default();
        let shared = tables.clone();
        for path in ["v1", "v2", "v3"] {
            tables.keep(path, Arc::new(ComponentTable::default()));
        }
        assert!(shared.get("v1").is_none());
        assert!(shared.get("v2").is_some() && shared.get("v3").is_some());
        assert!(ComponentTables::default().get("v3").is_none());
    }
}
