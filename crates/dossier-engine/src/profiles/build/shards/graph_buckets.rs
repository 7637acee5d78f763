//! A graph version hashed into a layout's buckets, kept on local disk for the builds after the
//! first. A version's snapshot never changes once written, and scanning it (every identity's
//! strings read, compared and hashed) was most of the time a large population took to key: at
//! 10 M profiles, 20-45 s of every export.
//!
//! A bucket is a file of its identities' 128-bit hashes and components sorted by hash
//! ([`ComponentTable::write_sorted`]), so a join reads it straight into a table. A version's
//! buckets are written into a staging folder and renamed into place whole: a reader finds all
//! of them or none. The [`VERSIONS_KEPT`] most lately used versions are kept; a reader opens
//! every bucket file before it reads one, so a folder removed meanwhile stays readable to it.
//! The folder lives under the spill root, which a server empties when it starts.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::super::spill::{Spill, fragment_rows};
use super::component_table::ComponentTable;
use super::identity_hash::identity_hash;
use crate::EngineError;

/// The folder under the spill root that holds the kept versions.
const FOLDER: &str = "graph-buckets";

/// Versions kept: the current one and the one before it (exports that pinned it just before a
/// fold), and one more for a second sandbox.
const VERSIONS_KEPT: usize = 3;

/// The buckets of one graph version, open for reading.
pub(super) struct GraphBuckets {
    files: Vec<File>,
}

impl GraphBuckets {
    /// The buckets kept for the snapshot at `snapshot` in a layout of `buckets`, if a build kept
    /// them before.
    pub(super) fn open(root: &Path, snapshot: &str, buckets: usize) -> Option<Self> {
        let folder = folder_of(root, snapshot, buckets);
        let files = (0..buckets)
            .map(|bucket| File::open(folder.join(bucket_name(bucket))))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        // Marks the version used, for the eviction of the least lately used.
        if let Ok(handle) = File::open(&folder) {
            let _ = handle.set_modified(std::time::SystemTime::now());
        }
        Some(Self { files })
    }

    /// Sorts each bucket a fresh scan spilled (rows keyed by identity hash, the component in
    /// `file`), keeps them for the snapshot at `snapshot`, and opens them.
    pub(super) fn keep(root: &Path, snapshot: &str, spilled: Vec<Option<Spill>>) -> Result<Self, EngineError> {
        let kept = root.join(FOLDER);
        std::fs::create_dir_all(&kept)?;
        let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(&kept)?;
        let mut opened = Vec::with_capacity(spilled.len());
        for (bucket, spill) in spilled.into_iter().enumerate() {
            let path = staging.path().join(bucket_name(bucket));
            write_bucket(&path, spill)?;
            opened.push(File::open(&path)?);
        }
        let folder = folder_of(root, snapshot, opened.len());
        // Another build of the same version may have kept it first: its folder is as good.
        if std::fs::rename(staging.path(), &folder).is_err() && !folder.is_dir() {
            tracing::warn!(folder = %folder.display(), "could not keep a graph version's buckets");
        }
        evict(&kept, &folder);
        Ok(Self { files: opened })
    }

    /// The sealed table of bucket `bucket`.
    pub(super) fn table(&mut self, bucket: usize) -> Result<ComponentTable, EngineError> {
        let file = &mut self.files[bucket];
        let mut bytes = Vec::with_capacity(file.metadata()?.len() as usize);
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        Ok(ComponentTable::from_sorted_bytes(&bytes))
    }
}

/// The folder of a version's buckets: named by a hash of its snapshot's path (unique to a
/// tenant's version) and the bucket count.
fn folder_of(root: &Path, snapshot: &str, buckets: usize) -> PathBuf {
    let key = identity_hash("snapshot", snapshot);
    root.join(FOLDER).join(format!("{key:032x}-{buckets}"))
}

fn bucket_name(bucket: usize) -> String {
    format!("bucket-{bucket}")
}

/// Writes one spilled bucket as a sorted table file.
fn write_bucket(path: &Path, spill: Option<Spill>) -> Result<(), EngineError> {
    let mut table = ComponentTable::default();
    if let Some(spill) = spill {
        for batch in spill.into_batches()? {
            for row in fragment_rows(&batch?).0 {
                table.push(row.key, row.file);
            }
        }
    }
    table.write_sorted(BufWriter::with_capacity(1 << 20, File::create(path)?))?;
    Ok(())
}

/// Removes the kept versions beyond the [`VERSIONS_KEPT`] most lately used, never `current`.
/// (Staging folders a crashed build left go when the server next starts and empties the root.)
fn evict(kept: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(kept) else {
        return;
    };
    let mut versions: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| entry.path() != current && !entry.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    versions.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
    for (_, stale) in versions.into_iter().skip(VERSIONS_KEPT - 1) {
        let _ = std::fs::remove_dir_all(stale);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::spill::FragmentRow;
    use super::super::spills::spills;
    use super::*;

    /// Buckets spilled as a scan spills them: identity `i` of bucket `i % buckets`, component `i / 2`.
    fn scanned(identities: u32, buckets: usize) -> Vec<Option<Spill>> {
        let mut spilled = spills(None, "graph", buckets, false).unwrap();
        for i in 0..identities {
            let key = identity_hash("ECID", &i.to_string());
            let row = FragmentRow {
                key,
                file: i / 2,
                row: 0,
                row_id: 0,
                namespace: 0,
            };
            spilled[super::super::layout::part_of(key, buckets)]
                .push(row, None)
                .unwrap();
        }
        spilled
            .into_iter()
            .map(|s| s.finish().map(Some))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn kept_buckets_read_back_every_identity_and_reopen_for_the_next_build() {
        let root = tempfile::tempdir().unwrap();
        assert!(GraphBuckets::open(root.path(), "v1", 4).is_none());
        let mut kept = GraphBuckets::keep(root.path(), "v1", scanned(1000, 4)).unwrap();
        let mut reopened = GraphBuckets::open(root.path(), "v1", 4).expect("kept");
        assert!(
            GraphBuckets::open(root.path(), "v1", 5).is_none(),
            "another layout is not kept"
        );
        for graph in [&mut kept, &mut reopened] {
            let tables: Vec<ComponentTable> = (0..4).map(|b| graph.table(b).unwrap()).collect();
            for i in 0..1000u32 {
                let key = identity_hash("ECID", &i.to_string());
                let bucket = super::super::layout::part_of(key, 4);
                assert_eq!(tables[bucket].get(key), Some(i / 2));
                assert_eq!(tables[(bucket + 1) % 4].get(key), None);
            }
        }
    }

    #[test]
    fn the_latest_versions_are_kept_and_one_being_read_stays_readable_when_evicted() {
        let root = tempfile::tempdir().unwrap();
        let mut first = GraphBuckets::keep(root.path(), "v1", scanned(100, 2)).unwrap();
        for version in ["v2", "v3", "v4"] {
            std::thread::sleep(std::time::Duration::from_millis(20));
            GraphBuckets::keep(root.path(), version, scanned(100, 2)).unwrap();
        }
        let kept: Vec<bool> = ["v1", "v2", "v3", "v4"]
            .iter()
            .map(|v| GraphBuckets::open(root.path(), v, 2).is_some())
            .collect();
        assert_eq!(kept, [false, true, true, true]);
        let key = identity_hash("ECID", "7");
        let bucket = super::super::layout::part_of(key, 2);
        assert_eq!(
            first.table(bucket).unwrap().get(key),
            Some(3),
            "read after its folder went"
        );
    }
}
