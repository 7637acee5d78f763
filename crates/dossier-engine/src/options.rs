//! The engine's views of the process's [`Options`]: export sizes and job worker pacing take
//! their values (and so their defaults) from it, never from literals of their own.

use std::time::Duration;

use dossier_model::options::Options;

use crate::export::ExportSettings;
use crate::jobs::WorkerSettings;

impl From<&Options> for ExportSettings {
    /// Spills go to the system's temporary folder; the server points them at its data dir.
    fn from(options: &Options) -> Self {
        Self {
            partition_profiles: options.export_partition_profiles,
            shard_profiles: options.export_shard_profiles,
            bucket_identities: options.export_bucket_identities,
            spill_dir: None,
        }
    }
}

impl From<&Options> for WorkerSettings {
    /// Without `node_name`, the node is `local`; the server names it from its data dir first.
    fn from(options: &Options) -> Self {
        Self {
            workers: options.export_workers,
            heartbeat: Duration::from_secs(options.job_heartbeat_secs),
            idle_poll: Duration::from_secs(options.job_idle_poll_secs),
            node: options.node_name.clone().unwrap_or_else(|| "local".into()),
            lease: Duration::from_secs(options.job_lease_secs),
            max_attempts: options.job_max_attempts,
        }
    }
}
