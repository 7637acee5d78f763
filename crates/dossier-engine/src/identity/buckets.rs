//! Bucketed versions of the identity graph: what lets a fold read and write only what its
//! batches touch.
//!
//! A version is a manifest (a small JSON file, the path its `identity_graph_versions` row
//! names) and two sets of B Parquet bucket files with the snapshot's four columns, each sorted
//! by component key, then identity:
//!
//! - **component buckets**: bucket `b` holds every row whose component key hashes to `b`, so a
//!   component is whole in one bucket; reading the buckets in order gives every component as a
//!   contiguous run of rows, which is what streaming readers need;
//! - **identity buckets**: bucket `b` holds every row whose identity hashes to `b`: where a
//!   fold or a lookup finds the component of a given identity without reading the graph.
//!
//! A bucket with no row has no file. A fold writes only the buckets it changes; the manifest
//! names the others' files of the previous version, so a file belongs to every version from
//! the one that wrote it until one rewrites its bucket (garbage collection counts references).
//! B is chosen when a sandbox's first bucketed version is written and kept by every later
//! one (it is in the manifest).
//!
//! Versions written by earlier releases are one Parquet file (their path ends in `.parquet`):
//! readers read them as one component bucket, and the next fold converts them.

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use dossier_storage::Lake;

use super::snapshot::{SnapshotCounts, SnapshotWriter, snapshot_schema};
use crate::EngineError;

/// Buckets of a sandbox's first bucketed version. At 10 M profiles (36 M identities) a bucket
/// holds some 140 k rows (a few MB); a fold of a few hundred identities touches a fraction of
/// them.
pub const DEFAULT_BUCKETS: u32 = 256;

/// The manifest format this release writes and reads.
const MANIFEST_FORMAT: u32 = 1;

/// The bucket of an identity (or of a component, by its key) among `buckets`: FNV-1a over the
/// namespace, a separator and the id, then a 64-bit finalizer (FNV's low bits mix poorly).
/// Spelled out rather than a library hasher because files written today must be found by
/// every later release: the function may never change.
pub fn bucket_of(namespace: &str, id: &str, buckets: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.bytes().chain([0xff]).chain(id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash % u64::from(buckets)) as u32
}

/// One bucket's file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketFile {
    /// The object's path in the lake.
    pub path: String,
    /// Rows (identities).
    pub nodes: i64,
    /// Rows that are their component's key (in a component bucket: its components).
    pub components: i64,
}

/// Which files make one version of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub buckets: u32,
    /// By hash of the component key; `None` for a bucket without rows.
    pub components: Vec<Option<BucketFile>>,
    /// By hash of the identity.
    pub identities: Vec<Option<BucketFile>>,
}

/// Which half of a version a bucket is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    Component,
    Identity,
}

impl Manifest {
    /// A version with no rows in `buckets` buckets: what a sandbox's first fold starts from.
    pub fn empty(buckets: u32) -> Self {
        Self {
            format: MANIFEST_FORMAT,
            buckets,
            components: vec![None; buckets as usize],
            identities: vec![None; buckets as usize],
        }
    }

    /// Whether `path` (a version row's) names a manifest rather than an earlier release's
    /// single snapshot file.
    pub fn is_manifest(path: &str) -> bool {
        path.ends_with(".json")
    }

    pub async fn read(lake: &Lake, location: &ObjectPath) -> Result<Self, EngineError> {
        let bytes = lake.store().get(location).await?.bytes().await?;
        let manifest: Self = serde_json::from_slice(&bytes).map_err(|error| {
            EngineError::Invalid(format!("identity graph manifest {location} is not valid JSON: {error}"))
        })?;
        let sized = manifest.components.len() == manifest.buckets as usize
            && manifest.identities.len() == manifest.buckets as usize;
        if manifest.format != MANIFEST_FORMAT || !sized || manifest.buckets == 0 {
            return Err(EngineError::Invalid(format!(
                "identity graph manifest {location} has format {} with {} buckets; this release reads format {MANIFEST_FORMAT}",
                manifest.format, manifest.buckets
            )));
        }
        Ok(manifest)
    }

    /// Writes the manifest at `location` (whole or not at all: one put).
    pub async fn write(&self, lake: &Lake, location: &ObjectPath) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(self).map_err(|error| EngineError::Invalid(error.to_string()))?;
        lake.store().put(location, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The bucket list of `kind`.
    pub fn files(&self, kind: BucketKind) -> &[Option<BucketFile>] {
        match kind {
            BucketKind::Component => &self.components,
            BucketKind::Identity => &self.identities,
        }
    }

    fn files_mut(&mut self, kind: BucketKind) -> &mut Vec<Option<BucketFile>> {
        match kind {
            BucketKind::Component => &mut self.components,
            BucketKind::Identity => &mut self.identities,
        }
    }

    /// Sets bucket `bucket` of `kind` (a rewritten bucket, or `None` when it became empty).
    pub fn set(&mut self, kind: BucketKind, bucket: u32, file: Option<BucketFile>) {
        self.files_mut(kind)[bucket as usize] = file;
    }

    /// The file of bucket `bucket` of `kind`, if it has rows.
    pub fn file(&self, kind: BucketKind, bucket: u32) -> Option<ObjectPath> {
        self.files(kind)[bucket as usize]
            .as_ref()
            .map(|f| ObjectPath::from(f.path.as_str()))
    }

    /// What the version holds: the sum of its component buckets.
    pub fn counts(&self) -> SnapshotCounts {
        let files = self.components.iter().flatten();
        SnapshotCounts {
            nodes: files.clone().map(|f| f.nodes).sum(),
            components: files.map(|f| f.components).sum(),
        }
    }

    /// Every file the manifest names: what keeps them from garbage collection.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.components
            .iter()
            .chain(&self.identities)
            .flatten()
            .map(|f| f.path.as_str())
    }
}

/// Where a version whose manifest is at `manifest` puts bucket `bucket` of `kind`:
/// `v<N>-<nonce>-c0042.parquet` beside `v<N>-<nonce>.json`.
pub fn bucket_location(manifest: &ObjectPath, kind: BucketKind, bucket: u32) -> ObjectPath {
    let stem = manifest.as_ref().strip_suffix(".json").unwrap_or(manifest.as_ref());
    let letter = match kind {
        BucketKind::Component => 'c',
        BucketKind::Identity => 'i',
    };
    ObjectPath::from(format!("{stem}-{letter}{bucket:04}.parquet"))
}

/// The files a reader streams, in order, for every component of a version: the component
/// buckets of a manifest, or an earlier release's single file.
pub async fn component_files(lake: &Lake, version_path: &str) -> Result<Vec<ObjectPath>, EngineError> {
    if !Manifest::is_manifest(version_path) {
        return Ok(vec![ObjectPath::from(version_path)]);
    }
    let manifest = Manifest::read(lake, &ObjectPath::from(version_path)).await?;
    Ok((0..manifest.buckets)
        .filter_map(|b| manifest.file(BucketKind::Component, b))
        .collect())
}

/// Every file of the version at `version_path`: its manifest and the buckets it names, or an
/// earlier release's single file. A manifest already deleted names nothing.
pub async fn version_files(lake: &Lake, version_path: &str) -> Result<Vec<String>, EngineError> {
    let mut files = vec![version_path.to_owned()];
    if Manifest::is_manifest(version_path) {
        match Manifest::read(lake, &ObjectPath::from(version_path)).await {
            Ok(manifest) => files.extend(manifest.paths().map(str::to_owned)),
            Err(EngineError::Lake(object_store::Error::NotFound { .. })) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(files)
}

/// A bucket file written only once it has a row (an empty bucket has no file).
pub struct BucketSink {
    lake: Lake,
    location: ObjectPath,
    writer: Option<SnapshotWriter>,
}

impl BucketSink {
    pub fn new(lake: &Lake, location: ObjectPath) -> Self {
        Self {
            lake: lake.clone(),
            location,
            writer: None,
        }
    }

    /// Appends rows in (component, identity) order.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(SnapshotWriter::create_bucket(&self.lake, &self.location)?);
        }
        self.writer.as_mut().expect("created above").write(rows).await
    }

    /// Closes the file; `None` when no row came.
    pub async fn finish(self) -> Result<Option<BucketFile>, EngineError> {
        let Some(writer) = self.writer else {
            return Ok(None);
        };
        let counts = writer.finish().await?;
        Ok(Some(BucketFile {
            path: self.location.to_string(),
            nodes: counts.nodes,
            components: counts.components,
        }))
    }
}

/// Writes a whole bucketed version from rows that arrive sorted by component, then identity
/// (a distributed rebuild's plan, or an earlier release's single file being converted): each
/// row goes to its component's bucket and to its identity's, which keeps both sorted.
pub struct BucketedWriter {
    manifest_location: ObjectPath,
    buckets: u32,
    components: Vec<BucketSink>,
    identities: Vec<BucketSink>,
}

impl BucketedWriter {
    /// Starts the version whose manifest will be at `manifest_location`.
    pub fn create(lake: &Lake, manifest_location: &ObjectPath, buckets: u32) -> Self {
        let sinks = |kind| {
            (0..buckets)
                .map(|b| BucketSink::new(lake, bucket_location(manifest_location, kind, b)))
                .collect()
        };
        Self {
            manifest_location: manifest_location.clone(),
            buckets,
            components: sinks(BucketKind::Component),
            identities: sinks(BucketKind::Identity),
        }
    }

    /// Appends rows with the snapshot's four string columns (by name; any string type is
    /// cast). They must follow the rows written before in (component, identity) order.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<(), EngineError> {
        let rows = SnapshotWriter::conform(&snapshot_schema(), rows)?;
        let [namespace, id, key_namespace, key_id] = [0, 1, 2, 3].map(|i| rows.column(i).as_string::<i32>());
        let mut by_component: Vec<Vec<u32>> = vec![Vec::new(); self.buckets as usize];
        let mut by_identity: Vec<Vec<u32>> = vec![Vec::new(); self.buckets as usize];
        for row in 0..rows.num_rows() {
            let component = bucket_of(key_namespace.value(row), key_id.value(row), self.buckets);
            by_component[component as usize].push(row as u32);
            let identity = bucket_of(namespace.value(row), id.value(row), self.buckets);
            by_identity[identity as usize].push(row as u32);
        }
        for (sinks, groups) in [
            (&mut self.components, by_component),
            (&mut self.identities, by_identity),
        ] {
            for (sink, group) in sinks.iter_mut().zip(groups) {
                if !group.is_empty() {
                    let taken = arrow::compute::take_record_batch(&rows, &UInt32Array::from(group))?;
                    sink.write(&taken).await?;
                }
            }
        }
        Ok(())
    }

    /// Closes every bucket and writes the manifest; gives it.
    pub async fn finish(self, lake: &Lake) -> Result<Manifest, EngineError> {
        let mut manifest = Manifest::empty(self.buckets);
        for (kind, sinks) in [
            (BucketKind::Component, self.components),
            (BucketKind::Identity, self.identities),
        ] {
            for (bucket, sink) in sinks.into_iter().enumerate() {
                manifest.set(kind, bucket as u32, sink.finish().await?);
            }
        }
        manifest.write(lake, &self.manifest_location).await?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_function_never_changes() {
        // Files written by this release are found by this function in every later one.
        // The values are pinned (an independent implementation of the spelled-out function
        // gives them): a change here strands every bucketed version already written.
        assert_eq!(bucket_of("Email", "ana@example.com", 256), 33);
        assert_eq!(bucket_of("CRMID", "c1", 256), 238);
        assert_eq!(bucket_of("ECID", "", 1 << 30), 607_437_666);
        let spread: std::collections::HashSet<u32> =
            (0..2000).map(|n| bucket_of("CRMID", &format!("c{n}"), 64)).collect();
        assert_eq!(spread.len(), 64, "2000 identities reach every one of 64 buckets");
        assert_ne!(bucket_of("Email", "a", 1 << 30), bucket_of("Emaila", "", 1 << 30));
    }

    #[test]
    fn bucket_files_sit_beside_their_manifest() {
        let manifest = ObjectPath::from("g/v3-00ff.json");
        assert_eq!(
            bucket_location(&manifest, BucketKind::Component, 7).as_ref(),
            "g/v3-00ff-c0007.parquet"
        );
        assert_eq!(
            bucket_location(&manifest, BucketKind::Identity, 255).as_ref(),
            "g/v3-00ff-i0255.parquet"
        );
    }
}
