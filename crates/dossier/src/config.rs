//! Settings from flags, environment and the optional TOML config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use dossier_api::{ConnectionSettings, Limits, StaticToken};

use crate::storage::{LakeLocation, MetadataLocation, StorageLocations};

pub const DEFAULT_DATA_DIR: &str = "./dossier-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The config file's keys. Unknown keys are an error, so a typo never goes unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    /// The metadata store's URL, `sqlite://<path>`.
    metadata_url: Option<String>,
    /// The lake's URL, `file://<path>`.
    lake_url: Option<String>,
    listen: Option<SocketAddr>,
    token_ttl_secs: Option<u64>,
    log_format: Option<LogFormat>,
    /// Export jobs run at once.
    export_workers: Option<usize>,
    /// Export jobs that may wait at once; beyond it a create answers 429.
    max_queued_export_jobs: Option<u64>,
    /// Profiles an export holds in memory at once.
    export_partition_profiles: Option<usize>,
    /// Profiles an export keys at once; more are exported shard by shard, spilled to disk.
    export_shard_profiles: Option<usize>,
    /// Identity graph identities an export joins at once; more are joined bucket by bucket.
    export_bucket_identities: Option<usize>,
    /// The largest JSON request body; a larger one answers 413.
    max_json_body_bytes: Option<usize>,
    /// Seconds a client has to send a request's headers.
    header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may stay idle before it is closed.
    idle_timeout_secs: Option<u64>,
    #[serde(default)]
    static_tokens: Vec<StaticToken>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Settings after precedence is applied.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Where metadata and the lake live; the storage resolver opens them.
    pub storage: StorageLocations,
    pub listen: SocketAddr,
    pub token_ttl: Duration,
    pub log_format: LogFormat,
    pub static_tokens: Vec<StaticToken>,
    pub limits: Limits,
    /// The config file's connection timeouts (flags of `serve` override them).
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
}

/// Settings every subcommand shares. Precedence: flag, then environment, then config file, then default.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Local working space (export spills, demo files), and metadata and lake unless their URLs say otherwise [default: ./dossier-data]
    #[arg(long, env = "DOSSIER_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The metadata store: sqlite://<path>; a relative path resolves against the working directory [default: sqlite://<data dir>/meta.sqlite]
    #[arg(long, env = "DOSSIER_METADATA_URL", global = true)]
    pub metadata_url: Option<String>,
    /// The lake (datasets' files, export output): file://<path>; a relative path resolves against the working directory [default: file://<data dir>/lake]
    #[arg(long, env = "DOSSIER_LAKE_URL", global = true)]
    pub lake_url: Option<String>,
    /// A TOML config file (keys: data_dir, metadata_url, lake_url, listen, token_ttl_secs, log_format, export_workers, max_queued_export_jobs, export_partition_profiles, export_shard_profiles, export_bucket_identities, header_read_timeout_secs, idle_timeout_secs, [[static_tokens]])
    #[arg(long, env = "DOSSIER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// Connection limits of `dossier serve`; each overrides the config file's key of the same name.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ConnectionArgs {
    /// Seconds a client has to send a request's headers before the connection is closed [default: 10]
    #[arg(long, env = "DOSSIER_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may stay idle (no byte moving, no request at work) before it is closed [default: 60]
    #[arg(long, env = "DOSSIER_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
}

/// The connection timeouts: flag (or environment), then config file, then default. A zero
/// timeout would close every connection at once, so it is refused with the fix.
pub fn connection_settings(flags: ConnectionArgs, settings: &Settings) -> anyhow::Result<ConnectionSettings> {
    let defaults = ConnectionSettings::default();
    let pick = |key: &str, flag: Option<u64>, file: Option<u64>, default: Duration| match flag.or(file) {
        Some(0) => anyhow::bail!("{key} = 0 would close every connection at once; use 1 or more seconds"),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Ok(default),
    };
    Ok(ConnectionSettings {
        header_read_timeout: pick(
            "header_read_timeout_secs",
            flags.header_read_timeout_secs,
            settings.header_read_timeout_secs,
            defaults.header_read_timeout,
        )?,
        idle_timeout: pick(
            "idle_timeout_secs",
            flags.idle_timeout_secs,
            settings.idle_timeout_secs,
            defaults.idle_timeout,
        )?,
    })
}

/// The server's limits: the defaults, with what the config file sets.
fn limits(file: &ConfigFile) -> anyhow::Result<Limits> {
    let defaults = Limits::default();
    let zero = [
        ("export_partition_profiles", file.export_partition_profiles, "partition"),
        ("export_shard_profiles", file.export_shard_profiles, "shard"),
        ("export_bucket_identities", file.export_bucket_identities, "bucket"),
    ]
    .into_iter()
    .find(|(_, value, _)| *value == Some(0));
    if let Some((key, _, unit)) = zero {
        anyhow::bail!("{key} = 0: an export needs at least one per {unit}; use 1 or more");
    }
    Ok(Limits {
        export_workers: file.export_workers.unwrap_or(defaults.export_workers),
        max_queued_export_jobs: file.max_queued_export_jobs.unwrap_or(defaults.max_queued_export_jobs),
        export_partition_profiles: file
            .export_partition_profiles
            .unwrap_or(defaults.export_partition_profiles),
        export_shard_profiles: file.export_shard_profiles.unwrap_or(defaults.export_shard_profiles),
        export_bucket_identities: file
            .export_bucket_identities
            .unwrap_or(defaults.export_bucket_identities),
        max_json_body_bytes: file.max_json_body_bytes.unwrap_or(defaults.max_json_body_bytes),
        ..defaults
    })
}

fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

/// The storage URLs: flag (or environment), then config file, then inside the data dir.
fn storage_locations(args: &GlobalArgs, file: &ConfigFile, data_dir: &Path) -> anyhow::Result<StorageLocations> {
    let metadata = match args.metadata_url.as_deref().or(file.metadata_url.as_deref()) {
        Some(url) => MetadataLocation::parse(url)?,
        None => MetadataLocation::in_data_dir(data_dir),
    };
    let lake = match args.lake_url.as_deref().or(file.lake_url.as_deref()) {
        Some(url) => LakeLocation::parse(url)?,
        None => LakeLocation::in_data_dir(data_dir),
    };
    Ok(StorageLocations { metadata, lake })
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let file = args.config.as_deref().map(read_config).transpose()?.unwrap_or_default();
        let limits = limits(&file)?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let storage = storage_locations(args, &file, &data_dir)?;
        Ok(Self {
            data_dir,
            storage,
            listen: file
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses")),
            token_ttl: Duration::from_secs(file.token_ttl_secs.unwrap_or(86_400)),
            log_format: file.log_format.unwrap_or_default(),
            static_tokens: file.static_tokens,
            limits,
            header_read_timeout_secs: file.header_read_timeout_secs,
            idle_timeout_secs: file.idle_timeout_secs,
        })
    }
}

/// Logs go to stderr: text by default, JSON lines with `--log-json` or `log_format = "json"`.
/// `RUST_LOG` overrides the level; `serve_log_json` is `Some` for the server, which logs at info;
/// administrative commands only log warnings.
pub fn init_logging(serve_log_json: Option<bool>, settings: &Settings) {
    let file_json = settings.log_format == LogFormat::Json;
    let (default_level, json) = match serve_log_json {
        Some(flag) => ("info", flag || file_json),
        None => ("warn", file_json),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_flags() -> GlobalArgs {
        GlobalArgs {
            data_dir: None,
            metadata_url: None,
            lake_url: None,
            config: None,
        }
    }

    fn settings_from(toml: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dossier.toml");
        std::fs::write(&path, toml).unwrap();
        let args = GlobalArgs {
            config: Some(path),
            ..no_flags()
        };
        Settings::resolve(&args).unwrap()
    }

    #[test]
    fn export_limits_come_from_the_config_file_or_default() {
        let set = settings_from("export_workers = 0\nmax_queued_export_jobs = 7\n");
        assert_eq!((set.limits.export_workers, set.limits.max_queued_export_jobs), (0, 7));
        let defaults = settings_from("");
        assert_eq!(
            (defaults.limits.export_workers, defaults.limits.max_queued_export_jobs),
            (2, 100)
        );
        assert_eq!(defaults.limits.max_upload_bytes, Limits::default().max_upload_bytes);
        assert_eq!(defaults.limits.max_json_body_bytes, 2 * 1024 * 1024);
        assert_eq!(
            settings_from("max_json_body_bytes = 4096\n").limits.max_json_body_bytes,
            4096
        );
        assert_eq!(defaults.limits.export_partition_profiles, 250_000);
        let small = settings_from("export_partition_profiles = 1000\n");
        assert_eq!(small.limits.export_partition_profiles, 1000);
        assert_eq!(
            (
                defaults.limits.export_shard_profiles,
                defaults.limits.export_bucket_identities
            ),
            (2_000_000, 4_000_000)
        );
        let spilled = settings_from("export_shard_profiles = 10\nexport_bucket_identities = 20\n");
        assert_eq!(
            (
                spilled.limits.export_shard_profiles,
                spilled.limits.export_bucket_identities
            ),
            (10, 20)
        );
    }

    #[test]
    fn a_partition_of_no_profile_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dossier.toml");
        std::fs::write(&path, "export_partition_profiles = 0\n").unwrap();
        let args = GlobalArgs {
            config: Some(path),
            ..no_flags()
        };
        let error = Settings::resolve(&args).unwrap_err().to_string();
        assert!(
            error.contains("export_partition_profiles = 0") && error.contains("use 1 or more"),
            "{error}"
        );
    }

    #[test]
    fn connection_timeouts_come_from_flags_then_the_config_file_then_defaults() {
        let none = ConnectionArgs::default();
        let defaults = connection_settings(none, &settings_from("")).unwrap();
        assert_eq!(defaults, ConnectionSettings::default());
        assert_eq!(
            (defaults.header_read_timeout, defaults.idle_timeout),
            (Duration::from_secs(10), Duration::from_secs(60))
        );
        let file = settings_from("header_read_timeout_secs = 5\nidle_timeout_secs = 30\n");
        let from_file = connection_settings(none, &file).unwrap();
        assert_eq!(
            (from_file.header_read_timeout, from_file.idle_timeout),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
        let flags = ConnectionArgs {
            header_read_timeout_secs: Some(2),
            idle_timeout_secs: None,
        };
        let flagged = connection_settings(flags, &file).unwrap();
        assert_eq!(
            (flagged.header_read_timeout, flagged.idle_timeout),
            (Duration::from_secs(2), Duration::from_secs(30))
        );
        let zero = connection_settings(none, &settings_from("idle_timeout_secs = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            zero.contains("idle_timeout_secs = 0") && zero.contains("use 1 or more"),
            "{zero}"
        );
    }

    fn write_config(dir: &Path, toml: &str) -> PathBuf {
        let path = dir.join("dossier.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    #[test]
    fn storage_urls_come_from_flags_then_the_config_file_then_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = Settings::resolve(&GlobalArgs {
            data_dir: Some("/srv/dossier".into()),
            ..no_flags()
        })
        .unwrap();
        assert_eq!(defaults.storage.metadata.url(), "sqlite:///srv/dossier/meta.sqlite");
        assert_eq!(defaults.storage.lake.url(), "file:///srv/dossier/lake");
        let unset = Settings::resolve(&no_flags()).unwrap();
        assert_eq!(unset.storage.metadata.url(), "sqlite://./dossier-data/meta.sqlite");

        let config = write_config(
            dir.path(),
            "data_dir = \"/srv/dossier\"\nmetadata_url = \"sqlite:///etc/meta.sqlite\"\nlake_url = \"file://lake\"\n",
        );
        let from_file = Settings::resolve(&GlobalArgs {
            config: Some(config.clone()),
            ..no_flags()
        })
        .unwrap();
        assert_eq!(
            from_file.storage,
            StorageLocations {
                metadata: MetadataLocation::Sqlite("/etc/meta.sqlite".into()),
                lake: LakeLocation::Local("lake".into()),
            }
        );
        let flagged = Settings::resolve(&GlobalArgs {
            config: Some(config),
            metadata_url: Some("sqlite://flag.sqlite".into()),
            ..no_flags()
        })
        .unwrap();
        assert_eq!(flagged.storage.metadata, MetadataLocation::Sqlite("flag.sqlite".into()));
        assert_eq!(
            flagged.storage.lake,
            LakeLocation::Local("lake".into()),
            "the file's lake_url stays"
        );
    }

    #[test]
    fn storage_urls_come_from_the_environment_unless_a_flag_is_given() {
        use clap::Parser;
        // SAFETY: no other test of this binary reads these two variables (the others build
        // their flags without clap), so setting them cannot race a reader.
        unsafe {
            std::env::set_var("DOSSIER_METADATA_URL", "sqlite:///from/env.sqlite");
            std::env::set_var("DOSSIER_LAKE_URL", "file:///from/env/lake");
        }
        let parse = |args: &[&str]| {
            let cli = crate::cli::Cli::try_parse_from(args).unwrap();
            Settings::resolve(&cli.global).unwrap().storage
        };
        let from_env = parse(&["dossier", "sandboxes", "list"]);
        let flagged = parse(&["dossier", "sandboxes", "list", "--lake-url", "file:///from/flag"]);
        unsafe {
            std::env::remove_var("DOSSIER_METADATA_URL");
            std::env::remove_var("DOSSIER_LAKE_URL");
        }
        assert_eq!(from_env.metadata, MetadataLocation::Sqlite("/from/env.sqlite".into()));
        assert_eq!(from_env.lake, LakeLocation::Local("/from/env/lake".into()));
        assert_eq!(flagged.lake, LakeLocation::Local("/from/flag".into()));
        assert_eq!(flagged.metadata, from_env.metadata);
    }

    #[test]
    fn an_unsupported_storage_url_in_the_config_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "lake_url = \"s3://bucket/lake\"\n");
        let error = Settings::resolve(&GlobalArgs {
            config: Some(config),
            ..no_flags()
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("lake_url") && error.contains("s3://bucket/lake") && error.contains("file://<path>"),
            "{error}"
        );
    }
}
