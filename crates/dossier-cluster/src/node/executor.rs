//! `dossier cluster executor`: a Ballista executor that reads the lake and knows Dossier's
//! functions. It serves shuffle files on its Flight port and takes tasks on its gRPC port
//! (Ballista's push-staged scheduling), and heartbeats the scheduler every
//! [`super::scheduler::HEARTBEAT_SECS`] s so that its loss is noticed within
//! [`super::scheduler::EXECUTOR_TIMEOUT_SECS`] s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::RuntimeProducer;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_config_producer;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use dossier_storage::Lake;

use super::NodeError;
use super::scheduler::HEARTBEAT_SECS;

/// How long an executor keeps trying to reach its scheduler at start-up: scheduler and
/// executors are usually started together, in any order. Waited for here, not by Ballista,
/// whose own retry loop (`scheduler_connect_timeout_seconds`) never gives up.
pub const SCHEDULER_WAIT: Duration = Duration::from_secs(10);

/// What `dossier cluster executor` was asked for.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler's address (its `--listen`).
    pub scheduler: SchedulerAddress,
    /// Where the executor serves shuffle files over Flight (and the host it advertises).
    pub listen: SocketAddr,
    /// The port of the gRPC service the scheduler pushes tasks to.
    pub grpc_port: u16,
    /// Where shuffle files and spills go (created if missing). One per executor: two executors
    /// in one folder would write the same shuffle paths.
    pub work_dir: PathBuf,
    /// Tasks run at once (Ballista's vcores); 0 for one per core.
    pub concurrent_tasks: usize,
    /// Bytes of memory all tasks may hold before spilling; when `None`, 70 % of the machine's
    /// (or cgroup's) memory.
    pub memory_limit: Option<u64>,
}

impl ExecutorSettings {
    /// Refuses what Ballista would take but could not work: a port chosen by the system (the
    /// scheduler must be told the real one) or one port for both services.
    pub fn check(&self) -> Result<(), NodeError> {
        if self.listen.port() == 0 {
            return Err(NodeError::NoPort { address: self.listen });
        }
        if self.grpc_port == self.listen.port() {
            return Err(NodeError::SamePorts { port: self.grpc_port });
        }
        Ok(())
    }
}

/// `HOST:PORT` of a scheduler: a name or an address (IPv6 in brackets), as executors on other
/// machines know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerAddress {
    pub host: String,
    pub port: u16,
}

/// Why a `--scheduler` value is not `HOST:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("\"{value}\" is not HOST:PORT (a host name or IP address, and a port from 1 to 65535)")]
pub struct BadSchedulerAddress {
    value: String,
}

impl std::str::FromStr for SchedulerAddress {
    type Err = BadSchedulerAddress;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = || BadSchedulerAddress {
            value: value.to_owned(),
        };
        let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().ok().filter(|port| *port != 0).ok_or_else(bad)?;
        // An IPv6 address keeps its brackets: Ballista writes the host into an http:// URL.
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for SchedulerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Runs an executor until SIGTERM, Ctrl-C or the scheduler stops it.
pub async fn run(settings: ExecutorSettings, lake: &Lake) -> Result<(), NodeError> {
    settings.check()?;
    std::fs::create_dir_all(&settings.work_dir).map_err(|source| NodeError::WorkDir {
        path: settings.work_dir.clone(),
        source,
    })?;
    wait_for_scheduler(&settings.scheduler).await?;
    let config = process_config(&settings, lake)?;
    start_executor_process(Arc::new(config))
        .await
        .map_err(|source| NodeError::Executor {
            address: settings.listen,
            scheduler: settings.scheduler.to_string(),
            source,
        })
}

/// Returns once the scheduler answers, or fails after [`SCHEDULER_WAIT`] naming it.
async fn wait_for_scheduler(scheduler: &SchedulerAddress) -> Result<(), NodeError> {
    let deadline = Instant::now() + SCHEDULER_WAIT;
    loop {
        match super::client::answers(&scheduler.to_string()).await {
            Ok(()) => return Ok(()),
            Err(reason) if Instant::now() > deadline => {
                return Err(NodeError::SchedulerUnreachable {
                    scheduler: scheduler.to_string(),
                    waited: SCHEDULER_WAIT,
                    reason,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn process_config(settings: &ExecutorSettings, lake: &Lake) -> Result<ExecutorProcessConfig, NodeError> {
    let host = settings.listen.ip();
    let functions = function_registry(lake).map_err(|source| NodeError::Executor {
        address: settings.listen,
        scheduler: settings.scheduler.to_string(),
        source: source.into(),
    })?;
    Ok(ExecutorProcessConfig {
        bind_host: host.to_string(),
        // An executor bound to every interface advertises what the scheduler sees it as.
        external_host: (!host.is_unspecified()).then(|| host.to_string()),
        port: settings.listen.port(),
        grpc_port: settings.grpc_port,
        scheduler_host: settings.scheduler.host.clone(),
        scheduler_port: settings.scheduler.port,
        // Connected once: the scheduler answered just now.
        scheduler_connect_timeout_seconds: 0,
        vcores: settings.concurrent_tasks,
        work_dir: Some(settings.work_dir.display().to_string()),
        memory_pool_size: settings.memory_limit,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECS,
        override_function_registry: Some(Arc::new(functions)),
        override_runtime_producer: Some(runtime_producer(lake.clone(), settings.work_dir.clone())),
        override_logical_codec: Some(crate::codec::logical()),
        override_physical_codec: Some(crate::codec::physical()),
        ..ExecutorProcessConfig::default()
    })
}

/// The functions tasks may name: Ballista's defaults and Dossier's, as the scheduler has them.
fn function_registry(lake: &Lake) -> datafusion::error::Result<BallistaFunctionRegistry> {
    let state = super::session_state(default_config_producer(), lake)?;
    Ok(BallistaFunctionRegistry::from(&state))
}

/// Each task's runtime: spills in the work dir, and the lake under
/// [`crate::session::LAKE_URL`] (Ballista keeps the object stores when it adds a task's memory
/// pool).
fn runtime_producer(lake: Lake, work_dir: PathBuf) -> RuntimeProducer {
    Arc::new(move |_: &SessionConfig| {
        let runtime = RuntimeEnvBuilder::new().with_temp_file_path(work_dir.clone()).build()?;
        runtime.register_object_store(crate::session::lake_url().as_ref(), Arc::clone(lake.store()));
        Ok(Arc::new(runtime))
    })
}
