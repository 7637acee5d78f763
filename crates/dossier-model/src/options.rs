//! Every tunable of a Dossier process, each with its default written once.
//!
//! [`Options`] is plain data: the binary fills it (defaults, then the TOML config file, then
//! environment and flags), and each part reads its own view of it: the API's limits and
//! connection timeouts, the export and build sizes, the job workers' pacing. A config file key is
//! a field of [`Options`] of the same name, so the doc comments below are the reference for
//! each key (README's settings table is checked against [`Options::default`] by a test).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The process's settings. Deserialized from the config file: every key is optional (absent
/// keys keep their default) and an unknown key is an error, so a typo never goes unnoticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Local working space (export spills, demo files); metadata and lake live in it unless
    /// their URLs say otherwise.
    pub data_dir: PathBuf,
    /// The metadata store's URL, `sqlite://<path>`; `None`: `<data dir>/meta.sqlite`.
    pub metadata_url: Option<String>,
    /// The lake's URL, `file://<path>`; `None`: `<data dir>/lake`.
    pub lake_url: Option<String>,
    /// The address `dossier serve` listens on.
    pub listen: SocketAddr,
    /// Seconds an issued access token stays valid.
    pub token_ttl_secs: u64,
    /// How logs are written to stderr.
    pub log_format: LogFormat,
    /// Jobs (exports and segment evaluations) run at once, one worker each; 0 leaves every job
    /// queued. With 2 or more, one sandbox holds at most `export_workers - 1` of them.
    pub export_workers: usize,
    /// Jobs that may wait (NEW) at once, across every sandbox; a create beyond it answers 429.
    pub max_queued_export_jobs: u64,
    /// Profiles whose fragments are held in memory at once (one partition): the knob that
    /// bounds the memory of the rows an export or an evaluation merges.
    pub export_partition_profiles: usize,
    /// Profiles keyed and selected at once (one shard); a larger population is exported shard
    /// by shard, its keying spilled under `<data dir>/spill`.
    pub export_shard_profiles: usize,
    /// Identity graph identities held in one hash map while fragments are keyed; a larger graph
    /// is joined bucket by bucket from spills.
    pub export_bucket_identities: usize,
    /// The largest JSON request body (dataset, job, policy, definition...); a larger one answers
    /// 413. Data goes through batch ingestion, whose uploads `max_upload_bytes` bounds instead.
    pub max_json_body_bytes: usize,
    /// The largest file one batch upload may carry.
    pub max_upload_bytes: u64,
    /// Seconds a client has to send a request's headers before the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay idle (no byte moving, no request at work) before it is
    /// closed.
    pub idle_timeout_secs: u64,
    /// Seconds between a running job's heartbeats (with its counters), when its cancel flag is
    /// also read back: the delay of a cancel sent to another process.
    pub job_heartbeat_secs: u64,
    /// Seconds between an idle worker's looks for jobs queued by another process (jobs queued
    /// by its own process wake it at once).
    pub job_idle_poll_secs: u64,
    /// Seconds a running job's lease lasts without a heartbeat. Past it the job's node is taken
    /// for dead: any node removes what the job wrote and queues it again. Longer than
    /// `job_heartbeat_secs` by a margin for pauses (a few heartbeats at least).
    pub job_lease_secs: u64,
    /// Runs a job gets when the nodes running it die: after this many, it ends FAILED saying
    /// so instead of being queued again.
    pub job_max_attempts: u32,
    /// This node's name in the job queue (workers claim as `<node>/worker-<n>`); unique among
    /// the nodes sharing a metadata store. `None`: the name kept in `<data dir>/node-id`,
    /// made once.
    pub node_name: Option<String>,
    /// Where export and segment jobs run: `native` (this process's engine) or `cluster` (as
    /// distributed plans on the Ballista cluster at `cluster_url`; needs a binary built with
    /// `--features cluster`).
    pub export_engine: ExportEngine,
    /// The Ballista scheduler jobs run on when `export_engine = "cluster"`: `df://HOST:PORT`.
    pub cluster_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./dossier-data"),
            metadata_url: None,
            lake_url: None,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            token_ttl_secs: 86_400,
            log_format: LogFormat::Text,
            export_workers: 2,
            max_queued_export_jobs: 100,
            export_partition_profiles: 250_000,
            export_shard_profiles: 2_000_000,
            export_bucket_identities: 4_000_000,
            max_json_body_bytes: 2 * 1024 * 1024,
            max_upload_bytes: 16 * 1024 * 1024 * 1024,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            job_heartbeat_secs: 1,
            job_idle_poll_secs: 1,
            job_lease_secs: 30,
            job_max_attempts: 3,
            node_name: None,
            export_engine: ExportEngine::Native,
            cluster_url: None,
        }
    }
}

/// The engine export and segment jobs run on.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ExportEngine {
    /// This process's engine (Arrow kernels), the jobs spread over the nodes' workers.
    #[default]
    Native,
    /// Distributed plans on an Apache DataFusion Ballista cluster.
    Cluster,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A setting whose value cannot work; each names the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    /// An export size of 0 would never make progress.
    NoExportUnit { key: &'static str, unit: &'static str },
    /// A timeout or period of 0 would close every connection at once or spin.
    ZeroSeconds { key: &'static str, effect: &'static str },
    /// A lease no longer than two heartbeats would take live jobs from their nodes.
    LeaseTooShort { lease: u64, heartbeat: u64 },
    /// A job with no attempt would never run.
    NoAttempt,
    /// `export_engine = "cluster"` without a scheduler to send jobs to.
    NoClusterUrl,
}

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoExportUnit { key, unit } => {
                write!(f, "{key} = 0: an export needs at least one per {unit}; use 1 or more")
            }
            Self::ZeroSeconds { key, effect } => write!(f, "{key} = 0 {effect}; use 1 or more seconds"),
            Self::LeaseTooShort { lease, heartbeat } => write!(
                f,
                "job_lease_secs = {lease} is not more than two heartbeats (job_heartbeat_secs = {heartbeat}): live \
                 jobs would be taken from their nodes; use at least {} seconds",
                heartbeat * 2 + 1
            ),
            Self::NoAttempt => write!(f, "job_max_attempts = 0 would never run a job; use 1 or more"),
            Self::NoClusterUrl => write!(
                f,
                "export_engine = \"cluster\" needs cluster_url, the Ballista scheduler (df://HOST:PORT, see \
                 `dossier cluster scheduler`); set it, or use export_engine = \"native\""
            ),
        }
    }
}

impl std::error::Error for OptionsError {}

impl Options {
    /// Refuses the export sizes and job periods no export or worker could run with.
    pub fn check_jobs(&self) -> Result<(), OptionsError> {
        let sizes = [
            ("export_partition_profiles", self.export_partition_profiles, "partition"),
            ("export_shard_profiles", self.export_shard_profiles, "shard"),
            ("export_bucket_identities", self.export_bucket_identities, "bucket"),
        ];
        if let Some((key, _, unit)) = sizes.into_iter().find(|(_, value, _)| *value == 0) {
            return Err(OptionsError::NoExportUnit { key, unit });
        }
        let periods = [
            ("job_heartbeat_secs", self.job_heartbeat_secs),
            ("job_idle_poll_secs", self.job_idle_poll_secs),
        ];
        no_zero_seconds(periods, "would make the job workers spin")?;
        if self.job_lease_secs <= self.job_heartbeat_secs.saturating_mul(2) {
            return Err(OptionsError::LeaseTooShort {
                lease: self.job_lease_secs,
                heartbeat: self.job_heartbeat_secs,
            });
        }
        if self.job_max_attempts == 0 {
            return Err(OptionsError::NoAttempt);
        }
        if self.export_engine == ExportEngine::Cluster && self.cluster_url.is_none() {
            return Err(OptionsError::NoClusterUrl);
        }
        Ok(())
    }

    /// Refuses connection timeouts of 0, which would close every connection at once. Checked
    /// only by the commands that serve, after their flags are applied.
    pub fn check_connections(&self) -> Result<(), OptionsError> {
        let timeouts = [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ];
        no_zero_seconds(timeouts, "would close every connection at once")
    }
}

/// The first key of `durations` set to 0 seconds, refused saying what 0 would do.
fn no_zero_seconds<const N: usize>(
    durations: [(&'static str, u64); N],
    effect: &'static str,
) -> Result<(), OptionsError> {
    match durations.into_iter().find(|(_, secs)| *secs == 0) {
        Some((key, _)) => Err(OptionsError::ZeroSeconds { key, effect }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_zero_is_refused_naming_its_key_and_the_fix() {
        let zero_shard = Options {
            export_shard_profiles: 0,
            ..Options::default()
        };
        assert_eq!(
            zero_shard.check_jobs().unwrap_err().to_string(),
            "export_shard_profiles = 0: an export needs at least one per shard; use 1 or more"
        );
        let zero_poll = Options {
            job_idle_poll_secs: 0,
            ..Options::default()
        };
        assert!(
            zero_poll
                .check_jobs()
                .unwrap_err()
                .to_string()
                .starts_with("job_idle_poll_secs = 0")
        );
        let zero_idle = Options {
            idle_timeout_secs: 0,
            ..Options::default()
        };
        assert_eq!(
            zero_idle.check_connections().unwrap_err().to_string(),
            "idle_timeout_secs = 0 would close every connection at once; use 1 or more seconds"
        );
        let short_lease = Options {
            job_lease_secs: 2,
            ..Options::default()
        };
        assert_eq!(
            short_lease.check_jobs().unwrap_err().to_string(),
            "job_lease_secs = 2 is not more than two heartbeats (job_heartbeat_secs = 1): live jobs would be taken \
             from their nodes; use at least 3 seconds"
        );
        let no_scheduler = Options {
            export_engine: ExportEngine::Cluster,
            ..Options::default()
        };
        assert!(
            no_scheduler
                .check_jobs()
                .unwrap_err()
                .to_string()
                .starts_with("export_engine = \"cluster\" needs cluster_url")
        );
        assert_eq!(Options::default().check_jobs(), Ok(()));
        assert_eq!(Options::default().check_connections(), Ok(()));
    }
}
