//! The stores a benchmark's server runs on: SQLite and the lake folder of its data dir (one
//! node's setup), or PostgreSQL and an S3 bucket (the several-node setup of
//! docs/deployment.md), both started by the benchmark itself in its work folder with the test
//! kit's code and stopped at the end, so every run starts from empty stores.
//!
//! The benchmark reads what the server wrote (exported batches, identity graph snapshots)
//! through the [`Lake`], never a folder, so the peer's inputs are the same on either.

use std::path::{Path, PathBuf};

use anyhow::Context;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;

use dossier_engine::identity::buckets::component_files;
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::Lake;
use dossier_testkit::postgres::{Durability, PgCluster};
use dossier_testkit::s3::SeaweedFs;

use crate::commands::demo::DEMO_ORG;
use crate::storage::{LakeLocation, MetadataLocation, StorageLocations};

/// Which stores the benchmark's server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoresKind {
    /// SQLite and a lake folder, both in the server's data dir
    Sqlite,
    /// A private PostgreSQL 15 cluster and a SeaweedFS S3 server (`weed mini`), started in the
    /// work folder for the run and stopped after it
    PostgresS3,
}

impl StoresKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::PostgresS3 => "postgres-s3",
        }
    }

    /// How reports and tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite + local disk",
            Self::PostgresS3 => "PostgreSQL + SeaweedFS (S3)",
        }
    }
}

/// The servers a postgres-s3 run started.
struct Started {
    postgres: PgCluster,
    seaweedfs: SeaweedFs,
}

/// Where one run's `dossier serve` keeps its metadata and its lake.
pub struct BenchStores {
    pub kind: StoresKind,
    /// The server's `--data-dir`.
    pub data_dir: PathBuf,
    pub locations: StorageLocations,
    /// What the server's process needs in its environment (the S3 credentials and endpoint).
    pub env: Vec<(&'static str, String)>,
    started: Option<Started>,
}

impl BenchStores {
    /// Empties `dir` and makes fresh stores in it: the data dir itself (sqlite, today's layout),
    /// or `dir/data` with a new PostgreSQL cluster in `dir/postgres-<pid>` and SeaweedFS in
    /// `dir/seaweedfs-<pid>` (postgres-s3), removed when this process exits.
    pub fn fresh(kind: StoresKind, dir: &Path) -> anyhow::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        match kind {
            StoresKind::Sqlite => Ok(Self::existing_sqlite(dir)),
            StoresKind::PostgresS3 => {
                let data_dir = dir.join("data");
                std::fs::create_dir_all(&data_dir)?;
                eprintln!("starting PostgreSQL 15 and SeaweedFS in {}", dir.display());
                // Named by process: a watchdog of an earlier run removes its folders once that
                // run has exited, maybe while this one runs.
                let pid = std::process::id();
                let postgres = PgCluster::start_in(&dir.join(format!("postgres-{pid}")), Durability::Durable)?;
                let seaweedfs = match SeaweedFs::start_in(&dir.join(format!("seaweedfs-{pid}"))) {
                    Ok(seaweedfs) => seaweedfs,
                    Err(error) => {
                        let _ = postgres.stop();
                        return Err(error);
                    }
                };
                let database = postgres.create_database("dossier_bench")?;
                let bucket = seaweedfs.bucket("dossier-bench")?;
                let locations = StorageLocations {
                    metadata: MetadataLocation::parse(&database.url)?,
                    lake: LakeLocation::parse(&bucket.lake_url("lake"))?,
                };
                Ok(Self {
                    kind,
                    data_dir,
                    locations,
                    env: bucket.env(),
                    started: Some(Started { postgres, seaweedfs }),
                })
            }
        }
    }

    /// The stores of a SQLite data dir as they are (for `--reuse-load`, and the other bench
    /// commands, which run on SQLite only).
    pub fn existing_sqlite(dir: &Path) -> Self {
        Self {
            kind: StoresKind::Sqlite,
            data_dir: dir.to_path_buf(),
            locations: StorageLocations::in_data_dir(dir),
            env: Vec::new(),
            started: None,
        }
    }

    /// The `--metadata-url` to give the server: a PostgreSQL URL with its password, if any
    /// (the shown form hides it).
    pub fn metadata_arg(&self) -> String {
        match &self.locations.metadata {
            MetadataLocation::Postgres(url) => url.connect_url().to_owned(),
            other => other.url(),
        }
    }

    /// Opens the lake as the server sees it, for reading what it wrote.
    pub async fn open_lake(&self) -> anyhow::Result<Lake> {
        match &self.locations.lake {
            LakeLocation::Local(path) => Ok(Lake::local(path)?),
            LakeLocation::S3 { bucket, prefix } => {
                let mut settings = AmazonS3Builder::new().with_bucket_name(bucket);
                for (key, value) in &self.env {
                    settings = match *key {
                        "AWS_ACCESS_KEY_ID" => settings.with_access_key_id(value),
                        "AWS_SECRET_ACCESS_KEY" => settings.with_secret_access_key(value),
                        "AWS_REGION" => settings.with_region(value),
                        "AWS_ENDPOINT_URL" => settings.with_endpoint(value),
                        "AWS_ALLOW_HTTP" => settings.with_allow_http(value == "true"),
                        _ => settings,
                    };
                }
                Ok(Lake::s3(settings, prefix).await?)
            }
        }
    }

    /// Stops the servers this run started.
    pub fn stop(&self) -> anyhow::Result<()> {
        if let Some(started) = &self.started {
            started.postgres.stop()?;
            started.seaweedfs.stop()?;
        }
        Ok(())
    }
}

impl Drop for BenchStores {
    fn drop(&mut self) {
        // A run that failed midway still stops its servers; stopping twice is harmless.
        if let Some(started) = &self.started {
            let _ = started.postgres.stop();
            let _ = started.seaweedfs.stop();
        }
    }
}

/// The benchmark's sandbox.
fn tenant() -> anyhow::Result<Tenant> {
    Ok(Tenant {
        org: OrgId::parse(DEMO_ORG)?,
        sandbox: SandboxName::parse("prod")?,
    })
}

/// Local copies (or, on a local lake, the files themselves) of what the server wrote, for the
/// peer, which reads files.
pub struct LakeFiles {
    lake: Lake,
    /// The root folder of a local lake: its objects are read in place.
    local_root: Option<PathBuf>,
    /// Where objects of a remote lake are copied to.
    copies: PathBuf,
}

impl LakeFiles {
    /// Reads `stores`' lake; copies of remote objects go under `copies` (emptied now).
    pub async fn new(stores: &BenchStores, copies: &Path) -> anyhow::Result<Self> {
        if copies.exists() {
            std::fs::remove_dir_all(copies).with_context(|| format!("cannot clear {}", copies.display()))?;
        }
        let local_root = match &stores.locations.lake {
            LakeLocation::Local(path) => Some(path.clone()),
            LakeLocation::S3 { .. } => None,
        };
        Ok(Self {
            lake: stores.open_lake().await?,
            local_root,
            copies: copies.to_path_buf(),
        })
    }

    /// A file holding the object at `location`.
    async fn file(&self, location: &ObjectPath) -> anyhow::Result<PathBuf> {
        if let Some(root) = &self.local_root {
            let path = root.join(location.as_ref());
            if path.is_file() {
                return Ok(path);
            }
        }
        let path = self.copies.join(location.as_ref());
        std::fs::create_dir_all(path.parent().context("an object path has a parent")?)?;
        let bytes = self
            .lake
            .store()
            .get(location)
            .await
            .with_context(|| format!("cannot read {location} from the lake"))?
            .bytes()
            .await?;
        std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The Parquet files of a batch of `dataset`, sorted.
    pub async fn batch_files(&self, dataset: &str, batch: &str) -> anyhow::Result<Vec<PathBuf>> {
        let prefix = Lake::batch_prefix(
            &tenant()?,
            &DatasetId::from_string(dataset),
            &BatchId::from_string(batch),
        );
        let mut files = Vec::new();
        for object in self.lake.list(&prefix).await? {
            if object.location.as_ref().ends_with(".parquet") {
                files.push(self.file(&object.location).await?);
            }
        }
        Ok(files)
    }

    /// The files of the newest identity graph version, the components the exports keyed
    /// profiles by: its component buckets in order (or an earlier release's single file).
    pub async fn latest_snapshot(&self) -> anyhow::Result<Vec<PathBuf>> {
        let prefix = Lake::identity_graph_prefix(&tenant()?);
        // A version is named by its manifest (`v<N>-<nonce>.json`) or, before buckets, by its
        // one file (`v<N>-<nonce>.parquet`); bucket files carry a third part.
        let is_version =
            |name: &str| name.ends_with(".json") || (name.ends_with(".parquet") && name.matches('-').count() == 1);
        let newest = self
            .lake
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|o| is_version(o.location.filename().unwrap_or_default()))
            .max_by_key(|o| {
                o.location
                    .filename()
                    .unwrap_or_default()
                    .trim_start_matches('v')
                    .split('-')
                    .next()
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(-1)
            })
            .context("the server wrote no identity graph snapshot")?;
        let mut files = Vec::new();
        for location in component_files(&self.lake, newest.location.as_ref()).await? {
            files.push(self.file(&location).await?);
        }
        Ok(files)
    }
}
