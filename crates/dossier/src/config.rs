//! Settings from flags, environment and the optional TOML config file, applied onto
//! [`Options::default`] (flag, then environment, then config file, then default).
//!
//! The config file's keys are the fields of [`Options`] (documented there, with their
//! defaults), plus `[[static_tokens]]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tracing_subscriber::EnvFilter;

use dossier_api::StaticToken;
use dossier_model::options::{ExportEngine, LogFormat, Options};

use crate::storage::{LakeLocation, MetadataLocation, StorageLocations};

/// What the config file holds: the options it sets and the static tokens.
#[derive(Debug, Default)]
struct ConfigFile {
    options: Options,
    static_tokens: Vec<StaticToken>,
}

/// Settings after precedence is applied.
#[derive(Debug)]
pub struct Settings {
    /// Every tunable, flags and environment applied (except the serving flags, which
    /// [`serving_options`] applies).
    pub options: Options,
    /// Where metadata and the lake live; the storage resolver opens them.
    pub storage: StorageLocations,
    pub static_tokens: Vec<StaticToken>,
}

/// Settings every subcommand shares. Precedence: flag, then environment, then config file, then default.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Local working space (export spills, demo files), and metadata and lake unless their URLs say otherwise [default: ./dossier-data]
    #[arg(long, env = "DOSSIER_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The metadata store: sqlite://<path> (a relative path resolves against the working directory) or postgres://<user>[:<password>]@<host>[:<port>]/<database> [default: sqlite://<data dir>/meta.sqlite]
    #[arg(long, env = "DOSSIER_METADATA_URL", global = true)]
    pub metadata_url: Option<String>,
    /// The lake (datasets' files, export output): file://<path> (a relative path resolves against the working directory) or s3://<bucket>/<prefix> (credentials from AWS_* variables) [default: file://<data dir>/lake]
    #[arg(long, env = "DOSSIER_LAKE_URL", global = true)]
    pub lake_url: Option<String>,
    /// A TOML config file (keys and defaults: README's settings table; plus [[static_tokens]])
    #[arg(long, env = "DOSSIER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

impl GlobalArgs {
    fn apply(&self, options: &mut Options) {
        if let Some(data_dir) = &self.data_dir {
            options.data_dir = data_dir.clone();
        }
        if let Some(url) = &self.metadata_url {
            options.metadata_url = Some(url.clone());
        }
        if let Some(url) = &self.lake_url {
            options.lake_url = Some(url.clone());
        }
    }
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

/// Where `dossier serve` runs its jobs; each overrides the config file's key of the same name.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Where export and segment jobs run: native, or cluster (the Ballista cluster at --cluster-url) [default: native]
    #[arg(long, env = "DOSSIER_EXPORT_ENGINE")]
    pub export_engine: Option<ExportEngine>,
    /// The Ballista scheduler of --export-engine cluster: df://HOST:PORT
    #[arg(long, env = "DOSSIER_CLUSTER_URL")]
    pub cluster_url: Option<String>,
}

impl EngineArgs {
    /// Applies the flags to `options` and checks the pair (cluster needs a scheduler).
    pub fn apply(&self, options: &mut Options) -> anyhow::Result<()> {
        if let Some(engine) = self.export_engine {
            options.export_engine = engine;
        }
        if let Some(url) = &self.cluster_url {
            options.cluster_url = Some(url.clone());
        }
        options.check_jobs()?;
        Ok(())
    }
}

/// The options a command that serves runs with: the settings' options with its listen address
/// and connection flags (or environment) applied. A zero timeout would close every connection
/// at once, so it is refused with the fix.
pub fn serving_options(
    settings: &Settings,
    listen: Option<SocketAddr>,
    flags: ConnectionArgs,
) -> anyhow::Result<Options> {
    let mut options = settings.options.clone();
    if let Some(listen) = listen {
        options.listen = listen;
    }
    if let Some(secs) = flags.header_read_timeout_secs {
        options.header_read_timeout_secs = secs;
    }
    if let Some(secs) = flags.idle_timeout_secs {
        options.idle_timeout_secs = secs;
    }
    options.check_connections()?;
    Ok(options)
}

/// Reads the config file: `[[static_tokens]]` apart, every key is an [`Options`] field.
fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    let invalid = || format!("config file {} is not valid", path.display());
    let mut table: toml::Table = toml::from_str(&text).with_context(invalid)?;
    let static_tokens = match table.remove("static_tokens") {
        Some(tokens) => tokens.try_into().with_context(invalid)?,
        None => Vec::new(),
    };
    let options = table.try_into().with_context(invalid)?;
    Ok(ConfigFile { options, static_tokens })
}

/// The storage URLs of the options, or inside the data dir.
fn storage_locations(options: &Options) -> anyhow::Result<StorageLocations> {
    let metadata = match options.metadata_url.as_deref() {
        Some(url) => MetadataLocation::parse(url)?,
        None => MetadataLocation::in_data_dir(&options.data_dir),
    };
    let lake = match options.lake_url.as_deref() {
        Some(url) => LakeLocation::parse(url)?,
        None => LakeLocation::in_data_dir(&options.data_dir),
    };
    Ok(StorageLocations { metadata, lake })
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let file = args.config.as_deref().map(read_config).transpose()?.unwrap_or_default();
        let mut options = file.options;
        args.apply(&mut options);
        options.check_jobs()?;
        let storage = storage_locations(&options)?;
        Ok(Self {
            options,
            storage,
            static_tokens: file.static_tokens,
        })
    }
}

/// Logs go to stderr: text by default, JSON lines with `--log-json` or `log_format = "json"`.
/// `RUST_LOG` overrides the level; `serve_log_json` is `Some` for the server, which logs at info;
/// administrative commands only log warnings.
pub fn init_logging(serve_log_json: Option<bool>, settings: &Settings) {
    let file_json = settings.options.log_format == LogFormat::Json;
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
    use std::time::Duration;

    use dossier_api::{ConnectionSettings, Limits};
    use dossier_engine::export::ExportSettings;
    use dossier_engine::jobs::WorkerSettings;

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
        let set = settings_from("export_workers = 0\nmax_queued_export_jobs = 7\n").options;
        assert_eq!((set.export_workers, set.max_queued_export_jobs), (0, 7));
        let defaults = settings_from("").options;
        assert_eq!((defaults.export_workers, defaults.max_queued_export_jobs), (2, 100));
        assert_eq!(defaults.max_upload_bytes, 16 * 1024 * 1024 * 1024);
        assert_eq!(defaults.max_json_body_bytes, 2 * 1024 * 1024);
        assert_eq!(
            settings_from("max_json_body_bytes = 4096\n")
                .options
                .max_json_body_bytes,
            4096
        );
        assert_eq!(defaults.export_partition_profiles, 250_000);
        let small = settings_from("export_partition_profiles = 1000\n").options;
        assert_eq!(small.export_partition_profiles, 1000);
        assert_eq!(
            (defaults.export_shard_profiles, defaults.export_bucket_identities),
            (2_000_000, 4_000_000)
        );
        let spilled = settings_from("export_shard_profiles = 10\nexport_bucket_identities = 20\n").options;
        assert_eq!(
            (spilled.export_shard_profiles, spilled.export_bucket_identities),
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

    fn connections(flags: ConnectionArgs, settings: &Settings) -> anyhow::Result<ConnectionSettings> {
        serving_options(settings, None, flags).map(|options| ConnectionSettings::from(&options))
    }

    #[test]
    fn connection_timeouts_come_from_flags_then_the_config_file_then_defaults() {
        let none = ConnectionArgs::default();
        let defaults = connections(none, &settings_from("")).unwrap();
        assert_eq!(defaults, ConnectionSettings::default());
        assert_eq!(
            (defaults.header_read_timeout, defaults.idle_timeout),
            (Duration::from_secs(10), Duration::from_secs(60))
        );
        let file = settings_from("header_read_timeout_secs = 5\nidle_timeout_secs = 30\n");
        let from_file = connections(none, &file).unwrap();
        assert_eq!(
            (from_file.header_read_timeout, from_file.idle_timeout),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
        let flags = ConnectionArgs {
            header_read_timeout_secs: Some(2),
            idle_timeout_secs: None,
        };
        let flagged = connections(flags, &file).unwrap();
        assert_eq!(
            (flagged.header_read_timeout, flagged.idle_timeout),
            (Duration::from_secs(2), Duration::from_secs(30))
        );
        let zero = connections(none, &settings_from("idle_timeout_secs = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            zero.contains("idle_timeout_secs = 0") && zero.contains("use 1 or more"),
            "{zero}"
        );
    }

    /// An empty config file and no flag give `Options::default()`, and every part's view of it
    /// is that part's own default: no default is written anywhere else.
    #[test]
    fn every_default_is_the_options_default_through_every_view() {
        let settings = settings_from("");
        let options = &settings.options;
        assert_eq!(options, &Options::default());
        assert!(settings.static_tokens.is_empty());
        assert_eq!(settings.storage, storage_locations(&Options::default()).unwrap());
        assert_eq!(Limits::from(options), Limits::default());
        assert_eq!(ConnectionSettings::from(options), ConnectionSettings::default());
        assert_eq!(ExportSettings::from(options), ExportSettings::default());
        let workers = WorkerSettings::from(options);
        let default_workers = WorkerSettings::default();
        assert_eq!(
            (workers.workers, workers.heartbeat, workers.idle_poll),
            (
                default_workers.workers,
                default_workers.heartbeat,
                default_workers.idle_poll
            )
        );
        let server = dossier_api::ServerConfig::new(&options.data_dir, options.listen);
        assert_eq!(&server.options, options);
        // And the views read the options, not constants: a file's value reaches each of them.
        let set = settings_from(
            "max_upload_bytes = 5\nidle_timeout_secs = 6\nexport_shard_profiles = 7\nexport_workers = 8\njob_heartbeat_secs = 9\n",
        )
        .options;
        assert_eq!(Limits::from(&set).max_upload_bytes, 5);
        assert_eq!(ConnectionSettings::from(&set).idle_timeout, Duration::from_secs(6));
        assert_eq!(ExportSettings::from(&set).shard_profiles, 7);
        let workers = WorkerSettings::from(&set);
        assert_eq!((workers.workers, workers.heartbeat), (8, Duration::from_secs(9)));
    }

    #[test]
    fn an_unknown_key_and_static_tokens_beside_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let typo = write_config(dir.path(), "export_worker = 3\n");
        let error = Settings::resolve(&GlobalArgs {
            config: Some(typo),
            ..no_flags()
        })
        .unwrap_err();
        assert!(format!("{error:#}").contains("export_worker"), "{error:#}");
        let tokens = settings_from(
            "export_workers = 3\n[[static_tokens]]\ntoken = \"a-long-random-string-for-ci-0123456789\"\nclient_id = \"ci\"\norg = \"1BD6382559DF0C130A49422D@AdobeOrg\"\n",
        );
        assert_eq!(tokens.options.export_workers, 3);
        assert_eq!(tokens.static_tokens.len(), 1);
        assert_eq!(tokens.static_tokens[0].client_id, "ci");
    }

    /// README's settings table is the reference users read: each key of [`Options`] has a row,
    /// and each row's default is the `Options` default.
    #[test]
    fn the_readme_settings_table_lists_every_key_with_its_default() {
        let readme = include_str!("../../../README.md");
        let mut rows = std::collections::BTreeMap::new();
        for line in readme.lines().filter(|l| l.starts_with("| ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 6 {
                continue;
            }
            let key = cells[4].trim_matches('`').split([' ', '=']).next().unwrap_or("");
            if !key.is_empty() && key != "config key" {
                let default = cells[5].split(' ').next().unwrap_or("").trim_matches('`');
                rows.insert(key.to_string(), default.to_string());
            }
        }
        let defaults = toml::Table::try_from(Options::default()).unwrap();
        for key in ["metadata_url", "lake_url", "node_name"] {
            assert!(rows.contains_key(key), "README has no row for {key}");
        }
        for (key, value) in &defaults {
            let shown = match value {
                toml::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(rows.get(key), Some(&shown), "README's default of {key}");
        }
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
        let config = write_config(dir.path(), "lake_url = \"gs://bucket/lake\"\n");
        let error = Settings::resolve(&GlobalArgs {
            config: Some(config),
            ..no_flags()
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("lake_url") && error.contains("gs://bucket/lake") && error.contains("file://<path>"),
            "{error}"
        );
    }
}
