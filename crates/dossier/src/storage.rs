//! The storage resolver: the one place where a storage URL becomes a backend.
//!
//! `metadata_url` picks the metadata store and `lake_url` the lake. Everything below the binary
//! (API, engine) takes the opened [`Storage`] and never learns which backend it is. A new backend
//! is a new scheme here: a variant of [`MetadataLocation`] or [`LakeLocation`], its parse arm and
//! its open arm. The metadata store is SQLite (`sqlite://`, one process) or PostgreSQL
//! (`postgres://` or `postgresql://`, shared by several nodes).
//!
//! An S3 lake (`s3://<bucket>/<prefix>`) takes its credentials, region and endpoint from the
//! standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`), never from the URL, so that no secret is
//! written in a setting that gets logged.

use std::path::{Path, PathBuf};

use anyhow::Context;

use dossier_api::Storage;
use dossier_storage::meta::postgres::PostgresMetaStore;
use dossier_storage::meta::sqlite::SqliteMetaStore;
use dossier_storage::{Lake, MetaStore, S3LakeError};

/// The metadata store's URL setting, as flag, environment variable and config key.
static METADATA_SETTING: Setting = Setting {
    key: "metadata_url",
    flag: "--metadata-url",
    env: "DOSSIER_METADATA_URL",
    supported: "sqlite://<path> or postgres://<user>[:<password>]@<host>[:<port>]/<database>",
    note: "postgresql:// is taken for postgres://",
};

/// The lake's URL setting, as flag, environment variable and config key.
static LAKE_SETTING: Setting = Setting {
    key: "lake_url",
    flag: "--lake-url",
    env: "DOSSIER_LAKE_URL",
    supported: "file://<path> or s3://<bucket>/<prefix>",
    note: "other object stores are future work",
};

/// How a URL setting is named to the operator, and what it accepts.
#[derive(Debug)]
pub struct Setting {
    key: &'static str,
    flag: &'static str,
    env: &'static str,
    supported: &'static str,
    /// Said after what is supported when a scheme is refused.
    note: &'static str,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.key, self.flag, self.env)
    }
}

/// A storage URL that names no backend Dossier has. The value is shown with any password hidden.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error(
        "{setting} = \"{value}\" has no scheme; write it as {} (a relative path resolves against the working directory)",
        setting.supported
    )]
    NoScheme { setting: &'static Setting, value: String },
    #[error(
        "{setting} = \"{value}\": the scheme {scheme}:// is not supported; use {} ({})",
        setting.supported, setting.note
    )]
    UnsupportedScheme {
        setting: &'static Setting,
        value: String,
        scheme: String,
    },
    #[error("{setting} = \"{value}\" names no path; write it as {}", setting.supported)]
    NoPath { setting: &'static Setting, value: String },
    #[error(
        "{setting} = \"{value}\" names no S3 bucket (3 to 63 lower-case letters, digits, dots and hyphens); write it as s3://<bucket>/<prefix>"
    )]
    BadBucket { setting: &'static Setting, value: String },
}

/// Where the metadata store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataLocation {
    /// A SQLite database file (created on first use).
    Sqlite(PathBuf),
    /// A PostgreSQL database (which must exist; its tables are created on first use).
    Postgres(PostgresUrl),
}

/// A `postgres://` URL as given, password included (the connection needs it). Shown, logged or
/// debug-printed, the password is hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL to connect with, password included: never for logs.
    pub fn connect_url(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// Where the lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A folder on the local file system (created on first use).
    Local(PathBuf),
    /// A prefix (possibly empty) in an existing S3 bucket.
    S3 { bucket: String, prefix: String },
}

impl MetadataLocation {
    /// `sqlite://<path>`: `sqlite:///var/lib/dossier/meta.sqlite` is absolute,
    /// `sqlite://data/meta.sqlite` relative to the working directory. `postgres://...` or
    /// `postgresql://...`: a PostgreSQL connection URL, kept whole (host, port, database, user,
    /// password and query parameters such as `sslmode` are the driver's to read).
    pub fn parse(value: &str) -> Result<Self, UrlError> {
        if let Some((scheme, rest)) = value.split_once("://")
            && matches!(scheme.to_ascii_lowercase().as_str(), "postgres" | "postgresql")
        {
            if rest.is_empty() {
                return Err(UrlError::NoPath {
                    setting: &METADATA_SETTING,
                    value: redact(value),
                });
            }
            return Ok(Self::Postgres(PostgresUrl(value.to_owned())));
        }
        match split(&METADATA_SETTING, value)? {
            ("sqlite", path) => Ok(Self::Sqlite(path)),
            (scheme, _) => Err(unsupported(&METADATA_SETTING, value, scheme)),
        }
    }

    /// The default: `meta.sqlite` in the data dir.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::Sqlite(data_dir.join("meta.sqlite"))
    }

    /// The URL as shown to operators: a PostgreSQL password is hidden.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => url.to_string(),
        }
    }
}

impl LakeLocation {
    /// `file://<path>`: `file:///var/lib/dossier/lake` is absolute, `file://lake` relative to
    /// the working directory. `s3://<bucket>/<prefix>`: the lake's objects are keyed
    /// `<prefix>/<org>/...` in the bucket; the prefix may be empty (`s3://<bucket>`).
    pub fn parse(value: &str) -> Result<Self, UrlError> {
        match split(&LAKE_SETTING, value)? {
            ("file", path) => Ok(Self::Local(path)),
            ("s3", rest) => {
                let rest = rest.to_string_lossy();
                let (bucket, prefix) = rest.split_once('/').unwrap_or((&rest, ""));
                if !is_bucket_name(bucket) {
                    return Err(UrlError::BadBucket {
                        setting: &LAKE_SETTING,
                        value: redact(value),
                    });
                }
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
            (scheme, _) => Err(unsupported(&LAKE_SETTING, value, scheme)),
        }
    }

    /// The default: `lake/` in the data dir.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::Local(data_dir.join("lake"))
    }

    pub fn url(&self) -> String {
        match self {
            Self::Local(path) => format!("file://{}", path.display()),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Splits `scheme://rest` into the lower-cased scheme and `rest` as a path. Everything after
/// `://` is the path, so a relative path stays relative (to the working directory).
fn split(setting: &'static Setting, value: &str) -> Result<(&'static str, PathBuf), UrlError> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(UrlError::NoScheme {
            setting,
            value: redact(value),
        });
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => "sqlite",
        "file" => "file",
        "s3" => "s3",
        _ => return Err(unsupported(setting, value, scheme)),
    };
    if rest.is_empty() {
        return Err(UrlError::NoPath {
            setting,
            value: redact(value),
        });
    }
    Ok((scheme, PathBuf::from(rest)))
}

/// S3's rule for new buckets, loosely: enough to catch a URL written wrong, not a validator.
fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn unsupported(setting: &'static Setting, value: &str, scheme: &str) -> UrlError {
    UrlError::UnsupportedScheme {
        setting,
        value: redact(value),
        scheme: scheme.to_owned(),
    }
}

/// Hides the password of `scheme://user:password@host/...`: URLs go to logs and terminals.
fn redact(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => value.to_owned(),
    }
}

/// The resolved storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageLocations {
    pub metadata: MetadataLocation,
    pub lake: LakeLocation,
}

impl StorageLocations {
    /// Both stores inside `data_dir`, where they lived before URLs existed.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            metadata: MetadataLocation::in_data_dir(data_dir),
            lake: LakeLocation::in_data_dir(data_dir),
        }
    }

    /// Opens (creating on first use) the metadata store and the lake.
    pub async fn open(&self) -> anyhow::Result<Storage> {
        let meta = self.open_metadata().await?;
        let lake = self.open_lake().await?;
        Ok(Storage { meta, lake })
    }

    /// Opens the lake alone, for processes that never touch the metadata store (the cluster's
    /// scheduler and executors).
    pub async fn open_lake(&self) -> anyhow::Result<Lake> {
        match &self.lake {
            LakeLocation::Local(path) => {
                Lake::local(path).with_context(|| format!("cannot open the lake at {}", self.lake.url()))
            }
            LakeLocation::S3 { bucket, prefix } => Lake::s3_from_env(bucket, prefix)
                .await
                .map_err(|error| anyhow::anyhow!(s3_open_error(&self.lake, &error))),
        }
    }

    /// Opens the metadata store alone, for commands that never touch the lake.
    pub async fn open_metadata(&self) -> anyhow::Result<MetaStore> {
        match &self.metadata {
            MetadataLocation::Sqlite(path) => open_sqlite(path).await,
            MetadataLocation::Postgres(url) => open_postgres(url).await,
        }
    }
}

async fn open_postgres(url: &PostgresUrl) -> anyhow::Result<MetaStore> {
    // sqlx's errors name the host and the database, never the password.
    let backend = PostgresMetaStore::open(url.connect_url())
        .await
        .with_context(|| format!("cannot open the metadata store {url}"))?;
    Ok(MetaStore::new(backend))
}

/// Why an S3 lake did not open, naming the setting, its value and what to change.
fn s3_open_error(location: &LakeLocation, error: &S3LakeError) -> String {
    let at = format!("{LAKE_SETTING} = \"{}\"", location.url());
    let fix = match error {
        S3LakeError::NoSuchBucket { bucket, .. } => format!(
            "create the bucket (`aws s3 mb s3://{bucket}`) or name an existing one; the server is the one AWS_ENDPOINT_URL names (AWS itself when unset)"
        ),
        S3LakeError::Denied { .. } => {
            let missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
                .into_iter()
                .filter(|name| std::env::var_os(name).is_none())
                .collect::<Vec<_>>();
            let set = if missing.is_empty() {
                String::new()
            } else {
                format!(" ({} not set)", missing.join(" and "))
            };
            format!(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY{set} (and AWS_SESSION_TOKEN for temporary credentials) to a key that may list, read, write and delete in the bucket"
            )
        }
        S3LakeError::Unreachable { .. } => "check AWS_ENDPOINT_URL and AWS_REGION, and set AWS_ALLOW_HTTP=true for an http:// endpoint; without AWS_ACCESS_KEY_ID the credentials are looked for in the instance metadata service".to_owned(),
        S3LakeError::Settings(_) | S3LakeError::Prefix { .. } => {
            "check the AWS_* variables and the URL's prefix".to_owned()
        }
    };
    format!("{at}: cannot open the lake: {error}; {fix}")
}

async fn open_sqlite(path: &Path) -> anyhow::Result<MetaStore> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder of the metadata store, {}", parent.display()))?;
    }
    let backend = SqliteMetaStore::open(path)
        .await
        .with_context(|| format!("cannot open the metadata store sqlite://{}", path.display()))?;
    Ok(MetaStore::new(backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_file_urls_name_absolute_or_relative_paths() {
        assert_eq!(
            MetadataLocation::parse("sqlite:///var/lib/dossier/meta.sqlite").unwrap(),
            MetadataLocation::Sqlite("/var/lib/dossier/meta.sqlite".into())
        );
        assert_eq!(
            MetadataLocation::parse("sqlite://data/meta.sqlite").unwrap(),
            MetadataLocation::Sqlite("data/meta.sqlite".into())
        );
        assert_eq!(
            LakeLocation::parse("FILE:///srv/lake").unwrap(),
            LakeLocation::Local("/srv/lake".into())
        );
        assert_eq!(LakeLocation::parse("file://./lake").unwrap().url(), "file://./lake");
    }

    #[test]
    fn postgres_urls_select_postgresql_and_hide_their_password() {
        for url in [
            "postgres://dossier:s3cret@db:5432/dossier",
            "postgresql://dossier:s3cret@db:5432/dossier?sslmode=require",
            "POSTGRES://dossier:s3cret@db/dossier",
        ] {
            let location = MetadataLocation::parse(url).unwrap();
            let MetadataLocation::Postgres(parsed) = &location else {
                panic!("{url} selects PostgreSQL")
            };
            assert_eq!(parsed.connect_url(), url, "kept whole to connect");
            for shown in [location.url(), parsed.to_string(), format!("{location:?}")] {
                assert!(!shown.contains("s3cret"), "the password is hidden: {shown}");
                assert!(shown.contains("dossier:***@db"), "{shown}");
            }
        }
        let error = MetadataLocation::parse("postgres://").unwrap_err().to_string();
        assert!(error.contains("names no path"), "{error}");
    }

    #[test]
    fn an_unknown_scheme_names_the_setting_the_value_and_what_is_supported() {
        let error = MetadataLocation::parse("mysql://dossier:s3cret@db:3306/dossier")
            .unwrap_err()
            .to_string();
        for expected in [
            "metadata_url",
            "--metadata-url",
            "DOSSIER_METADATA_URL",
            "mysql://dossier:***@db:3306/dossier",
            "sqlite://<path>",
            "postgres://<user>[:<password>]@<host>[:<port>]/<database>",
        ] {
            assert!(error.contains(expected), "{expected:?} missing from: {error}");
        }
        assert!(!error.contains("s3cret"), "the password is hidden: {error}");

        let error = LakeLocation::parse("gs://bucket/lake").unwrap_err().to_string();
        for expected in [
            "lake_url",
            "gs://bucket/lake",
            "file://<path>",
            "s3://<bucket>/<prefix>",
        ] {
            assert!(error.contains(expected), "{expected:?} missing from: {error}");
        }
        // A file URL given for the metadata store, and the reverse, are refused too.
        assert!(MetadataLocation::parse("file:///x").is_err());
        assert!(LakeLocation::parse("sqlite:///x").is_err());
    }

    #[test]
    fn an_s3_url_names_a_bucket_and_a_prefix() {
        assert_eq!(
            LakeLocation::parse("s3://dossier-lake/prod/lake/").unwrap(),
            LakeLocation::S3 {
                bucket: "dossier-lake".into(),
                prefix: "prod/lake".into()
            }
        );
        let root = LakeLocation::parse("S3://dossier-lake").unwrap();
        assert_eq!(
            root,
            LakeLocation::S3 {
                bucket: "dossier-lake".into(),
                prefix: String::new()
            }
        );
        assert_eq!(root.url(), "s3://dossier-lake/");
        for bad in [
            "s3://Upper/lake",
            "s3://ab/lake",
            "s3:///lake",
            "s3://user:secret@bucket/lake",
        ] {
            let error = LakeLocation::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("lake_url") && error.contains("s3://<bucket>/<prefix>"),
                "{error}"
            );
            assert!(!error.contains("secret"), "the password is hidden: {error}");
        }
    }

    #[test]
    fn a_bare_path_or_an_empty_path_is_refused_with_the_fix() {
        let error = LakeLocation::parse("/srv/lake").unwrap_err().to_string();
        assert!(
            error.contains("no scheme") && error.contains("file://<path>"),
            "{error}"
        );
        let error = MetadataLocation::parse("sqlite://").unwrap_err().to_string();
        assert!(error.contains("names no path"), "{error}");
    }
}
