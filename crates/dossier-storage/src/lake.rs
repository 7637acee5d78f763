//! The lake: data files in an object store, laid out by tenant, dataset and batch.
//!
//! ```text
//! <org>/<sandbox>/datasets/<datasetId>/batches/<batchId>/<file>
//! <org>/<sandbox>/_staging/<batchId>/<file>
//! <org>/<sandbox>/_profile/identity-graph/v<N>-<random>.parquet
//! ```
//!
//! Two backends: a folder on local disk ([`Lake::local`], the default) and an S3 bucket under a
//! prefix ([`Lake::s3`]). Neither is trusted to rename atomically: what a reader may see is decided
//! by the metadata commit alone, since readers only ever open files the metadata store names as
//! committed (batch files, snapshot and membership rows), never a listing of the lake.
//!
//! Ingestion writers put files under the staging prefix; a batch's files are promoted into place
//! just before its metadata commits (a rename on local disk; on S3, which has no rename, a
//! server-side copy then a delete, so no byte goes through Dossier twice). Exports, identity-graph
//! snapshots and membership files are written straight to their final, unique paths. Whatever
//! is left under `_staging` after a crash is swept at startup.
//!
//! On local disk the object store writes each object to a temp file (`<name>#<n>`) and renames
//! it when done; its listings never show those files, so a write cut short (a crash, a client
//! gone mid-upload) leaves one that only a walk of the disk finds. [`Lake::remove_staging`] and
//! [`Lake::sweep_staging`] walk the disk too. On S3 a write cut short is a multipart upload never
//! completed, which listings do not show either and which S3 has no cheap way to enumerate per
//! prefix: the writer aborts it when it can, and a bucket lifecycle rule
//! (`AbortIncompleteMultipartUpload`) removes those a crash left.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetResult, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::Tenant;

use crate::StorageError;

/// Why streaming a body into the lake stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteStreamError {
    #[error("the body is larger than the limit of {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    #[error("the body could not be read: {0}")]
    Source(String),
    #[error("the lake could not store the body: {0}")]
    Lake(String),
}

/// Why an S3 lake could not be opened. The bucket is probed with one listing, so a lake that
/// opens is one the server can read.
#[derive(Debug, thiserror::Error)]
pub enum S3LakeError {
    #[error("the S3 settings are not usable: {0}")]
    Settings(#[source] object_store::Error),
    #[error("the prefix '{prefix}' is not a valid object path: {source}")]
    Prefix {
        prefix: String,
        #[source]
        source: object_store::path::Error,
    },
    #[error("bucket '{bucket}' does not exist at {endpoint}")]
    NoSuchBucket { bucket: String, endpoint: String },
    #[error("{endpoint} did not accept the credentials for bucket '{bucket}' (or none were found): {source}")]
    Denied {
        bucket: String,
        endpoint: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot list bucket '{bucket}' at {endpoint}: {source}")]
    Unreachable {
        bucket: String,
        endpoint: String,
        #[source]
        source: object_store::Error,
    },
}

/// The lake. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// The root folder of a lake on local disk: lets staging be cleaned of the store's temp files.
    local_root: Option<Arc<PathBuf>>,
}

const STAGING: &str = "_staging";
const PROFILE_STORE: &str = "_profile";

impl Lake {
    /// A lake on the local disk under `root`, created if missing.
    pub fn local(root: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(|source| StorageError::DataDir {
            path: root.display().to_string(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(Arc::new(root.to_path_buf())),
        })
    }

    /// A lake in an S3 bucket under `prefix` (empty: the bucket's root), with the bucket,
    /// credentials, region and endpoint of `settings` (the binary starts from
    /// [`AmazonS3Builder::from_env`]). Conditional puts use `If-None-Match` (object_store's
    /// default for S3). Lists the lake's root once, so that a missing bucket or refused
    /// credentials fail here, not at the first request.
    pub async fn s3(settings: AmazonS3Builder, prefix: &str) -> Result<Self, S3LakeError> {
        let bucket = settings
            .get_config_value(&AmazonS3ConfigKey::Bucket)
            .unwrap_or_default();
        let endpoint = settings
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| {
                let region = settings
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                format!("AWS S3 ({region})")
            });
        let store = settings.build().map_err(S3LakeError::Settings)?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            let path = ObjectPath::parse(prefix).map_err(|source| S3LakeError::Prefix {
                prefix: prefix.to_owned(),
                source,
            })?;
            Arc::new(PrefixStore::new(store, path))
        };
        let Err(source) = store.list_with_delimiter(None).await else {
            return Ok(Self::with_store(store));
        };
        // object_store wraps a failed listing in `Error::Generic` whose HTTP status and S3 error
        // code are only in the text (its retry error type is private).
        let text = format!("{source:?}");
        let denied = [
            "status: 401",
            "status: 403",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ];
        Err(
            if matches!(source, object_store::Error::NotFound { .. }) || text.contains("NoSuchBucket") {
                S3LakeError::NoSuchBucket { bucket, endpoint }
            } else if matches!(
                source,
                object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
            ) || denied.iter().any(|marker| text.contains(marker))
            {
                S3LakeError::Denied {
                    bucket,
                    endpoint,
                    source,
                }
            } else {
                S3LakeError::Unreachable {
                    bucket,
                    endpoint,
                    source,
                }
            },
        )
    }

    /// [`Lake::s3`] in `bucket` with the standard AWS variables of the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...); without keys, object_store looks for
    /// credentials in a web identity token or the instance metadata service.
    pub async fn s3_from_env(bucket: &str, prefix: &str) -> Result<Self, S3LakeError> {
        Self::s3(AmazonS3Builder::from_env().with_bucket_name(bucket), prefix).await
    }

    /// A lake on any object store (S3, GCS, Azure, or memory in tests of this crate).
    pub fn with_store(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            local_root: None,
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn tenant_prefix(tenant: &Tenant) -> ObjectPath {
        ObjectPath::from_iter([tenant.org.as_str(), tenant.sandbox.as_str()])
    }

    pub fn dataset_prefix(tenant: &Tenant, dataset: &DatasetId) -> ObjectPath {
        Self::tenant_prefix(tenant).join("datasets").join(dataset.as_str())
    }

    pub fn batch_prefix(tenant: &Tenant, dataset: &DatasetId, batch: &BatchId) -> ObjectPath {
        Self::dataset_prefix(tenant, dataset)
            .join("batches")
            .join(batch.as_str())
    }

    pub fn staging_prefix(tenant: &Tenant, batch: &BatchId) -> ObjectPath {
        Self::tenant_prefix(tenant).join(STAGING).join(batch.as_str())
    }

    /// Where an uploaded file of an open ingestion batch waits for COMPLETE.
    pub fn upload_prefix(tenant: &Tenant, batch: &BatchId) -> ObjectPath {
        Self::staging_prefix(tenant, batch).join("uploads")
    }

    /// A new, unique place for one upload named `name`: a folder of its own under the batch's
    /// upload prefix, so two uploads (even of one name) never write into each other, and a
    /// refused upload's bytes can be removed without touching the others.
    pub fn new_upload_path(tenant: &Tenant, batch: &BatchId, name: &str) -> ObjectPath {
        let nonce: u64 = rand::random();
        Self::upload_prefix(tenant, batch)
            .join(format!("{nonce:016x}"))
            .join(name)
    }

    /// Where a writer puts a batch's files before they are promoted into the batch folder.
    pub fn output_prefix(tenant: &Tenant, batch: &BatchId) -> ObjectPath {
        Self::staging_prefix(tenant, batch).join("out")
    }

    /// Where the snapshots of the sandbox's identity graph live, one file per version.
    pub fn identity_graph_prefix(tenant: &Tenant) -> ObjectPath {
        Self::tenant_prefix(tenant).join(PROFILE_STORE).join("identity-graph")
    }

    /// A new, unique path for the snapshot file of one version of the sandbox's identity graph.
    /// The random part keeps two writers that race for the same version number (two processes
    /// on one store) from overwriting each other's file: the loser's file is just never named
    /// by a committed row.
    pub fn new_identity_graph_snapshot(tenant: &Tenant, version: i64) -> ObjectPath {
        let nonce: u64 = rand::random();
        Self::identity_graph_prefix(tenant).join(format!("v{version}-{nonce:016x}.parquet"))
    }

    /// A new, unique path for the manifest of one version of the sandbox's identity graph (its
    /// bucket files sit beside it, named after it); unique for the same reason as
    /// [`Self::new_identity_graph_snapshot`].
    pub fn new_identity_graph_manifest(tenant: &Tenant, version: i64) -> ObjectPath {
        let nonce: u64 = rand::random();
        Self::identity_graph_prefix(tenant).join(format!("v{version}-{nonce:016x}.json"))
    }

    /// A folder of the sandbox for one distributed job's intermediate files (e.g. the rounds of
    /// an identity graph rebuild), which the job deletes when done. `job` names it uniquely.
    pub fn scratch_prefix(tenant: &Tenant, job: &str) -> ObjectPath {
        Self::tenant_prefix(tenant).join("_scratch").join(job)
    }

    /// Where the membership files of one segment live (`ups` memberships written by evaluation).
    pub fn segment_memberships_prefix(tenant: &Tenant, segment_id: &str) -> ObjectPath {
        Self::tenant_prefix(tenant)
            .join(PROFILE_STORE)
            .join("segment-memberships")
            .join(segment_id)
    }

    /// The membership file one job writes for one segment; the job id keeps files of two jobs
    /// apart, so the current file is never overwritten.
    pub fn segment_membership_file(tenant: &Tenant, segment_id: &str, job_id: &str) -> ObjectPath {
        Self::segment_memberships_prefix(tenant, segment_id).join(format!("{job_id}.parquet"))
    }

    /// Streams `chunks` into the object at `location` without holding more than a part in memory;
    /// gives up (removing what was written) once more than `max_bytes` arrive.
    pub async fn write_stream<E: std::fmt::Display>(
        &self,
        location: &ObjectPath,
        mut chunks: impl futures::Stream<Item = Result<Bytes, E>> + Unpin,
        max_bytes: u64,
    ) -> Result<u64, WriteStreamError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), location.clone());
        let mut written: u64 = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(WriteStreamError::Source(e.to_string()));
                }
            };
            written += chunk.len() as u64;
            if written > max_bytes {
                let _ = writer.abort().await;
                return Err(WriteStreamError::TooLarge { max_bytes });
            }
            writer
                .write_all(&chunk)
                .await
                .map_err(|e| WriteStreamError::Lake(e.to_string()))?;
        }
        writer
            .shutdown()
            .await
            .map_err(|e| WriteStreamError::Lake(e.to_string()))?;
        Ok(written)
    }

    /// The bytes of what `get` returned, as a stream of pieces. A file on local disk is read a
    /// MiB at a time: the object store's own stream reads it in 8 KiB pieces, each by a blocking
    /// task of its own, and a download spent its time waiting on the runtime between them.
    pub fn object_bytes(got: GetResult) -> BoxStream<'static, std::io::Result<Bytes>> {
        let range = got.range.clone();
        match got.payload {
            GetResultPayload::File(file, _) => file_pieces(file, range).boxed(),
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        }
    }

    pub async fn put(&self, location: &ObjectPath, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(location, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Stores `bytes` at `location` unless an object is already there: `false` when one is, and
    /// then that object is left as it was. Two writers racing for one path cannot both win (on
    /// S3 a conditional put, `If-None-Match: *`; on local disk an exclusive create).
    pub async fn put_if_absent(&self, location: &ObjectPath, bytes: Bytes) -> Result<bool, StorageError> {
        let options = PutOptions::from(PutMode::Create);
        match self.store.put_opts(location, PutPayload::from(bytes), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`, sorted by path.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        let mut objects: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Moves every file under `batch`'s output prefix into the batch's folder of `dataset`. On
    /// local disk a rename; elsewhere a server-side copy then a delete of the staged object (S3
    /// has no rename). Either way nothing is visible to readers until the batch's metadata
    /// commits, and running it again after a crash midway redoes what is left.
    pub async fn promote_staged(
        &self,
        tenant: &Tenant,
        dataset: &DatasetId,
        batch: &BatchId,
    ) -> Result<u64, StorageError> {
        let staging = Self::output_prefix(tenant, batch);
        let target = Self::batch_prefix(tenant, dataset, batch);
        let mut moved = 0;
        for object in self.list(&staging).await? {
            let relative = object.location.prefix_match(&staging).into_iter().flatten();
            let destination = relative.fold(target.clone(), ObjectPath::join);
            if self.local_root.is_some() {
                self.store.rename(&object.location, &destination).await?;
            } else {
                self.store.copy(&object.location, &destination).await?;
                self.store.delete(&object.location).await?;
            }
            moved += 1;
        }
        Ok(moved)
    }

    /// Deletes every object under `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &ObjectPath) -> Result<u64, StorageError> {
        let mut deleted = 0;
        for object in self.list(prefix).await? {
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// Removes everything staged for `batch`: its uploads, its unpromoted output, and the temp
    /// files of writes cut short, which the store's listing does not show. Returns how many
    /// files were removed.
    pub async fn remove_staging(&self, tenant: &Tenant, batch: &BatchId) -> Result<u64, StorageError> {
        self.remove_staged_folder(&Self::staging_prefix(tenant, batch)).await
    }

    /// Removes the folder of one upload (see [`Lake::new_upload_path`]) with whatever is in it.
    pub async fn remove_upload(&self, upload: &ObjectPath) -> Result<u64, StorageError> {
        let folder = ObjectPath::from_iter(upload.parts().take(upload.parts().count().saturating_sub(1)));
        self.remove_staged_folder(&folder).await
    }

    async fn remove_staged_folder(&self, prefix: &ObjectPath) -> Result<u64, StorageError> {
        let mut removed = self.delete_prefix(prefix).await?;
        if let Some(dir) = self.local_dir(prefix) {
            removed += remove_dir_counting(&dir, &|_, _| true)?;
        }
        Ok(removed)
    }

    /// The folder on disk of `prefix` in a local lake. Every part the lake names (org, sandbox,
    /// ids, checked file names) is stored on disk as written.
    fn local_dir(&self, prefix: &ObjectPath) -> Option<PathBuf> {
        let root = self.local_root.as_deref()?;
        Some(prefix.parts().fold(root.clone(), |dir, part| dir.join(part.as_ref())))
    }

    /// Removes staged files left by writers that never finished (a crash, a kill), except those
    /// of batches `keep` names (uploads of batches still open). In those, the temp files of
    /// writes cut short go once they are stale — unchanged since `stale_before` — since with
    /// several nodes on one lake a temp file may be another node's upload in flight, which keeps
    /// it fresh. Run at startup. Returns how many files were removed.
    pub async fn sweep_staging(
        &self,
        keep: impl Fn(&str) -> bool,
        stale_before: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        let mut swept = 0;
        for staging in self.staging_folders().await? {
            let staged: Vec<_> = self.store.list(Some(&staging)).try_collect().await?;
            for object in staged {
                let parts: Vec<_> = object.location.parts().collect();
                let kept = parts.get(3).is_some_and(|batch| keep(batch.as_ref()));
                if !kept {
                    match self.store.delete(&object.location).await {
                        Ok(()) => swept += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if let Some(root) = self.local_dir(&ObjectPath::default()) {
            swept += sweep_local_staging(&root, &keep, stale_before)?;
        }
        Ok(swept)
    }

    /// `<org>/<sandbox>/_staging` of every sandbox in the lake, found by listing two levels of
    /// folders rather than every object: on S3 a listing of the whole lake at each start would
    /// cost a request per thousand data files.
    async fn staging_folders(&self) -> Result<Vec<ObjectPath>, StorageError> {
        let mut folders = Vec::new();
        for org in self.store.list_with_delimiter(None).await?.common_prefixes {
            for sandbox in self.store.list_with_delimiter(Some(&org)).await?.common_prefixes {
                folders.push(sandbox.join(STAGING));
            }
        }
        Ok(folders)
    }
}

/// A temp file of the local object store: `<name>#<n>`, renamed to `<name>` when a write ends.
fn is_temp_file(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// Walks `<root>/<org>/<sandbox>/_staging/<batch>` on disk: removes the folders of batches not
/// kept, and the temp files in those kept.
fn sweep_local_staging(
    root: &Path,
    keep: &impl Fn(&str) -> bool,
    stale_before: std::time::SystemTime,
) -> Result<u64, StorageError> {
    let stale_temp = |name: &str, path: &Path| {
        is_temp_file(name)
            && std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < stale_before)
    };
    let mut swept = 0;
    for org in subdirs(root)? {
        for sandbox in subdirs(&org)? {
            for batch in subdirs(&sandbox.join(STAGING))? {
                let name = batch.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                swept += if keep(name) {
                    remove_dir_counting(&batch, &stale_temp)?
                } else {
                    remove_dir_counting(&batch, &|_, _| true)?
                };
            }
        }
    }
    Ok(swept)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(local_error(dir, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| local_error(dir, e))?;
        if entry.file_type().map_err(|e| local_error(dir, e))?.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Removes the files under `dir` whose name `remove` picks, and the folders left empty
/// (`dir` included); a missing `dir` is nothing to do. Returns how many files were removed.
fn remove_dir_counting(dir: &Path, remove: &dyn Fn(&str, &Path) -> bool) -> Result<u64, StorageError> {
    let mut removed = 0;
    for sub in subdirs(dir)? {
        removed += remove_dir_counting(&sub, remove)?;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(local_error(dir, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_file() && remove(&name.to_string_lossy(), &path) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(local_error(&path, e)),
            }
        }
    }
    // Fails harmlessly when something was kept in it.
    let _ = std::fs::remove_dir(dir);
    Ok(removed)
}

fn local_error(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

/// Bytes read from a local file: a piece per blocking task.
const FILE_PIECE: u64 = 1 << 20;

fn file_pieces(file: std::fs::File, range: std::ops::Range<u64>) -> impl Stream<Item = std::io::Result<Bytes>> {
    futures::stream::try_unfold((file, range), |(mut file, range)| async move {
        if range.is_empty() {
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let take = (range.end - range.start).min(FILE_PIECE);
            let mut piece = vec![0; take as usize];
            file.seek(SeekFrom::Start(range.start))?;
            file.read_exact(&mut piece)?;
            Ok(Some((Bytes::from(piece), (file, range.start + take..range.end))))
        })
        .await
        .map_err(std::io::Error::other)?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dossier_model::tenancy::{OrgId, SandboxName};

    fn tenant(sandbox: &str) -> Tenant {
        Tenant {
            org: OrgId::parse("1BD6382559DF0C130A49422D@AdobeOrg").unwrap(),
            sandbox: SandboxName::parse(sandbox).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_local_object_reads_back_whole_and_by_range_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let location = ObjectPath::from("a/file.bin");
        let bytes: Vec<u8> = (0..(FILE_PIECE * 5 / 2)).map(|i| (i % 251) as u8).collect();
        lake.put(&location, Bytes::from(bytes.clone())).await.unwrap();
        for range in [None, Some(100..FILE_PIECE * 2 + 7), Some(FILE_PIECE..FILE_PIECE + 1)] {
            let options = object_store::GetOptions {
                range: range.clone().map(object_store::GetRange::Bounded),
                ..Default::default()
            };
            let got = lake.store().get_opts(&location, options).await.unwrap();
            let pieces: Vec<Bytes> = Lake::object_bytes(got).try_collect().await.unwrap();
            let read: Vec<u8> = pieces.concat();
            let range = range.unwrap_or(0..bytes.len() as u64);
            assert_eq!(read, bytes[range.start as usize..range.end as usize], "{range:?}");
            assert!(pieces.iter().all(|piece| piece.len() as u64 <= FILE_PIECE));
        }
    }

    #[tokio::test]
    async fn staged_files_are_promoted_into_the_batch_folder() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let (t, ds, batch) = (tenant("prod"), DatasetId::generate(), BatchId::generate());
        lake.put(
            &Lake::output_prefix(&t, &batch).join("part-0.parquet"),
            Bytes::from_static(b"PAR1"),
        )
        .await
        .unwrap();
        assert_eq!(lake.promote_staged(&t, &ds, &batch).await.unwrap(), 1);
        let files = lake.list(&Lake::batch_prefix(&t, &ds, &batch)).await.unwrap();
        assert_eq!(files.len(), 1);
        let expected_suffix = format!("/batches/{batch}/part-0.parquet");
        assert!(
            files[0].location.as_ref().ends_with(&expected_suffix),
            "{}",
            files[0].location
        );
        let on_disk = dir
            .path()
            .join("1BD6382559DF0C130A49422D@AdobeOrg/prod/datasets")
            .join(ds.as_str())
            .join("batches")
            .join(batch.as_str())
            .join("part-0.parquet");
        assert!(on_disk.exists(), "expected {on_disk:?}");
        assert!(lake.list(&Lake::staging_prefix(&t, &batch)).await.unwrap().is_empty());
        let streamed = Lake::upload_prefix(&t, &batch).join("big.json");
        let chunks = futures::stream::iter([
            Ok::<_, String>(Bytes::from_static(b"0123")),
            Ok(Bytes::from_static(b"4567")),
        ]);
        assert_eq!(lake.write_stream(&streamed, chunks, 8).await.unwrap(), 8);
        let chunks = futures::stream::iter([
            Ok::<_, String>(Bytes::from_static(b"0123")),
            Ok(Bytes::from_static(b"45678")),
        ]);
        assert!(matches!(
            lake.write_stream(&streamed.clone(), chunks, 8).await,
            Err(WriteStreamError::TooLarge { max_bytes: 8 })
        ));
    }

    #[tokio::test]
    async fn sweep_removes_only_staged_files() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let (t, ds, committed, orphan) = (
            tenant("dev"),
            DatasetId::generate(),
            BatchId::generate(),
            BatchId::generate(),
        );
        lake.put(
            &Lake::batch_prefix(&t, &ds, &committed).join("a.parquet"),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
        lake.put(
            &Lake::staging_prefix(&t, &orphan).join("b.parquet"),
            Bytes::from_static(b"y"),
        )
        .await
        .unwrap();
        let open = BatchId::generate();
        lake.put(
            &Lake::upload_prefix(&t, &open).join("upload.json"),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
        // Temp files of writes cut short, which listings never show: one in the open batch,
        // one in a batch that is gone.
        let open_dir = lake.local_dir(&Lake::upload_prefix(&t, &open)).unwrap();
        std::fs::write(open_dir.join("cut.json#1"), b"{").unwrap();
        let gone_dir = lake.local_dir(&Lake::upload_prefix(&t, &BatchId::generate())).unwrap();
        std::fs::create_dir_all(gone_dir.join("0123")).unwrap();
        std::fs::write(gone_dir.join("0123").join("late.json#12"), b"{").unwrap();
        // A temp file still fresh may be another node's upload in flight: kept.
        let now = std::time::SystemTime::now();
        let a_lease_ago = now - std::time::Duration::from_secs(30);
        assert_eq!(
            lake.sweep_staging(|batch| batch == open.as_str(), a_lease_ago)
                .await
                .unwrap(),
            2
        );
        assert!(open_dir.join("cut.json#1").exists());
        let later = now + std::time::Duration::from_secs(1);
        assert_eq!(
            lake.sweep_staging(|batch| batch == open.as_str(), later).await.unwrap(),
            1
        );
        assert_eq!(lake.list(&Lake::staging_prefix(&t, &open)).await.unwrap().len(), 1);
        assert!(!open_dir.join("cut.json#1").exists());
        assert!(!gone_dir.exists());
        assert!(is_temp_file("a.json#3") && !is_temp_file("a.json") && !is_temp_file("a#b.json"));
        assert_eq!(lake.list(&Lake::dataset_prefix(&t, &ds)).await.unwrap().len(), 1);
        assert_eq!(lake.delete_prefix(&Lake::dataset_prefix(&t, &ds)).await.unwrap(), 1);
        assert!(lake.list(&Lake::dataset_prefix(&t, &ds)).await.unwrap().is_empty());
    }
}
