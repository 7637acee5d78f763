//! A graph version hashed into a layout's buckets, kept on local disk for the builds after the
//! first, and looked up through memory maps. A version's snapshot never changes once written,
//! and scanning it (every identity's strings read, compared and hashed) then spilling fragments
//! to buckets, joining them and merging them back into file order was most of the time a large
//! population took to key: at 25 M profiles, 75-140 s of every export.
//!
//! A bucket is a file of its identities' 128-bit hashes and components sorted by hash
//! ([`ComponentTable::write_sorted`]). A version's buckets are written into a staging folder
//! and renamed into place whole: a reader finds all of them or none. A build maps them and looks
//! each fragment's primary identity up as it reads it, through a small index of where each run
//! of equal top bits starts (half a byte per identity). The mapped pages are the page cache's:
//! they count in the process's resident memory while used, and the kernel takes them back
//! under pressure (lookups then read from disk) rather than the build running out of memory.
//!
//! The [`VERSIONS_KEPT`] most lately used versions are kept; a reader maps every bucket before it
//! reads one, so a folder removed meanwhile stays readable to it. The folder lives under the
//! spill root and outlives a restart ([`clear_stale_spills`] leaves it): each bucket is synced to
//! disk before its version is renamed into place, and a version whose files do not have whole
//! entries is removed and scanned again.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::super::spill::{Spill, fragment_rows};
use super::component_table::{ComponentLookup, ComponentTable, ENTRY_BYTES};
use super::identity_hash::identity_hash;
use super::layout::part_of;
use crate::EngineError;

/// The folder under the spill root that holds the kept versions.
const FOLDER: &str = "graph-buckets";

/// Versions kept: the current one and the one before it (exports that pinned it just before a
/// fold), and one more for a second sandbox.
const VERSIONS_KEPT: usize = 3;

/// Entries per run of equal top bits in a bucket's index, about: a lookup compares a few.
const ENTRIES_PER_RUN: usize = 8;

/// The buckets of one graph version, mapped for lookups.
pub(super) struct GraphBuckets {
    buckets: Vec<MappedBucket>,
}

/// One bucket's sorted entries, mapped, and where each run of equal top bits starts.
struct MappedBucket {
    /// `None` for an empty bucket (an empty file cannot be mapped).
    map: Option<Mmap>,
    shift: u32,
    starts: Vec<u32>,
}

impl GraphBuckets {
    /// The buckets kept for the snapshot at `snapshot` in a layout of `buckets`, if a build kept
    /// them before.
    pub(super) fn open(root: &Path, snapshot: &str, buckets: usize) -> Result<Option<Self>, EngineError> {
        let folder = folder_of(root, snapshot, buckets);
        let Ok(files) = (0..buckets)
            .map(|bucket| File::open(folder.join(bucket_name(bucket))))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Ok(None);
        };
        if !files.iter().all(whole_entries) {
            tracing::warn!(folder = %folder.display(), "a kept graph version is damaged: scanning it again");
            let _ = std::fs::remove_dir_all(&folder);
            return Ok(None);
        }
        // Marks the version used, for the eviction of the least lately used.
        if let Ok(handle) = File::open(&folder) {
            let _ = handle.set_modified(std::time::SystemTime::now());
        }
        Ok(Some(Self::map(files)?))
    }

    /// Sorts each bucket a fresh scan spilled (rows keyed by identity hash, the component in
    /// `file`), keeps them for the snapshot at `snapshot`, and maps them.
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
        Self::map(opened)
    }

    fn map(files: Vec<File>) -> Result<Self, EngineError> {
        let buckets = files.iter().map(MappedBucket::map).collect::<Result<_, _>>()?;
        Ok(Self { buckets })
    }
}

impl ComponentLookup for GraphBuckets {
    fn get(&self, hash: u128) -> Option<u32> {
        self.buckets[part_of(hash, self.buckets.len())].get(hash)
    }
}

impl MappedBucket {
    fn map(file: &File) -> Result<Self, EngineError> {
        let entries = file.metadata()?.len() as usize / ENTRY_BYTES;
        let bits = (usize::BITS - (entries / ENTRIES_PER_RUN).leading_zeros()).clamp(1, 30);
        let shift = 64 - bits;
        if entries == 0 {
            return Ok(Self {
                map: None,
                shift,
                starts: vec![0; (1 << bits) + 1],
            });
        }
        // SAFETY: a kept bucket is written whole in a staging folder before it is renamed into
        // place and never written again (eviction only unlinks it, which leaves a mapping
        // intact), so the mapped bytes cannot change under the map.
        let map = unsafe { Mmap::map(file)? };
        let mut starts = vec![0u32; (1 << bits) + 1];
        for entry in map.chunks_exact(ENTRY_BYTES) {
            starts[(high(entry) >> shift) as usize + 1] += 1;
        }
        for run in 0..(1usize << bits) {
            starts[run + 1] += starts[run];
        }
        // Lookups land anywhere: reading ahead around each would only fill memory.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Self {
            map: Some(map),
            shift,
            starts,
        })
    }

    fn get(&self, hash: u128) -> Option<u32> {
        let map = self.map.as_ref()?;
        let (hi, lo) = ((hash >> 64) as u64, hash as u64);
        let run = (hi >> self.shift) as usize;
        let (start, end) = (self.starts[run] as usize, self.starts[run + 1] as usize);
        map[start * ENTRY_BYTES..end * ENTRY_BYTES]
            .chunks_exact(ENTRY_BYTES)
            .find(|entry| high(entry) == hi && le64(&entry[8..16]) == lo)
            .map(|entry| u32::from_le_bytes(entry[16..20].try_into().expect("4 bytes")))
    }
}

fn high(entry: &[u8]) -> u64 {
    le64(&entry[..8])
}

fn le64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

/// The folder of a version's buckets: named by a hash of its snapshot's path (unique to a
/// tenant's version) and the bucket count.
fn folder_of(root: &Path, snapshot: &str, buckets: usize) -> PathBuf {
    let key = identity_hash("snapshot", snapshot);
    root.join(FOLDER).join(format!("{key:032x}-{buckets}"))
}

/// Removes what builds a crash interrupted left under the spill root: every export's spill
/// folder, and staging folders of graph versions being kept. The kept versions stay.
pub fn clear_stale_spills(root: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name() != FOLDER {
            remove_entry(&entry.path())?;
            continue;
        }
        for kept in std::fs::read_dir(entry.path())? {
            let kept = kept?;
            if kept.file_name().to_string_lossy().starts_with('.') {
                remove_entry(&kept.path())?;
            }
        }
    }
    Ok(())
}

fn remove_entry(path: &Path) -> std::io::Result<()> {
    match path.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    }
}

/// Whether a bucket file holds whole entries (a kept version cut short reads as damaged).
fn whole_entries(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.len() % ENTRY_BYTES as u64 == 0)
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
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    table.write_sorted(&mut out)?;
    // On disk before the version is renamed into place: a kept version outlives a restart.
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
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
        assert!(GraphBuckets::open(root.path(), "v1", 4).unwrap().is_none());
        let kept = GraphBuckets::keep(root.path(), "v1", scanned(1000, 4)).unwrap();
        let reopened = GraphBuckets::open(root.path(), "v1", 4).unwrap().expect("kept");
        let other_layout = GraphBuckets::open(root.path(), "v1", 5).unwrap();
        assert!(other_layout.is_none(), "another layout is not kept");
        for graph in [&kept, &reopened] {
            for i in 0..1000u32 {
                assert_eq!(graph.get(identity_hash("ECID", &i.to_string())), Some(i / 2));
            }
            assert_eq!(graph.get(identity_hash("ECID", "absent")), None);
            assert_eq!(graph.get(identity_hash("Email", "1")), None);
        }
        let empty = GraphBuckets::keep(root.path(), "v0", scanned(0, 3)).unwrap();
        assert_eq!(
            empty.get(identity_hash("ECID", "0")),
            None,
            "empty buckets map as empty"
        );
    }

    #[test]
    fn the_latest_versions_are_kept_and_one_being_read_stays_readable_when_evicted() {
        let root = tempfile::tempdir().unwrap();
        let first = GraphBuckets::keep(root.path(), "v1", scanned(100, 2)).unwrap();
        for version in ["v2", "v3", "v4"] {
            std::thread::sleep(std::time::Duration::from_millis(20));
            GraphBuckets::keep(root.path(), version, scanned(100, 2)).unwrap();
        }
        let kept: Vec<bool> = ["v1", "v2", "v3", "v4"]
            .iter()
            .map(|v| GraphBuckets::open(root.path(), v, 2).unwrap().is_some())
            .collect();
        assert_eq!(kept, [false, true, true, true]);
        assert_eq!(
            first.get(identity_hash("ECID", "7")),
            Some(3),
            "read after its folder went"
        );
    }

    #[test]
    fn a_restart_clears_interrupted_spills_and_keeps_whole_versions_only() {
        let root = tempfile::tempdir().unwrap();
        GraphBuckets::keep(root.path(), "v1", scanned(100, 2)).unwrap();
        let kept = root.path().join(FOLDER);
        std::fs::create_dir_all(root.path().join("export-interrupted")).unwrap();
        std::fs::create_dir_all(kept.join(".staging-interrupted")).unwrap();
        clear_stale_spills(root.path()).unwrap();
        let names = |folder: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(folder)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(root.path()), [FOLDER]);
        assert_eq!(names(&kept).len(), 1, "{:?}", names(&kept));
        let graph = GraphBuckets::open(root.path(), "v1", 2)
            .unwrap()
            .expect("kept across a restart");
        assert_eq!(graph.get(identity_hash("ECID", "7")), Some(3));

        // A bucket cut short mid-entry: the version is dropped, to be scanned again.
        let version = kept.join(&names(&kept)[0]);
        let bucket = std::fs::OpenOptions::new()
            .append(true)
            .open(version.join("bucket-1"))
            .unwrap();
        std::io::Write::write_all(&mut &bucket, &[0; 7]).unwrap();
        assert!(GraphBuckets::open(root.path(), "v1", 2).unwrap().is_none());
        assert!(!version.exists());
        clear_stale_spills(&root.path().join("absent")).unwrap();
    }
}
