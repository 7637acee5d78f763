//! `dossier cluster scheduler`: Ballista's scheduler, with its REST API on (`/api/executors`,
//! `/api/jobs`, ... on the same port, for operators and for the tests' readiness check).
//!
//! Failure detection, tuned so that a dead executor's tasks are rerun well within 60 s:
//! executors heartbeat every [`HEARTBEAT_SECS`] s (set on the executor side,
//! [`super::executor`]); the scheduler looks for silent executors every
//! [`EXPIRY_CHECK_SECS`] s and declares one dead after [`EXECUTOR_TIMEOUT_SECS`] s without a
//! heartbeat (three missed heartbeats), so a dead executor is removed at most 18 s after its
//! last heartbeat and its tasks are rescheduled then. Measured (tests/all/cluster.rs, debug
//! build, a loaded 2-core machine): an executor killed -9 mid-query was dropped 17.6 s later. A task is tried [`TASK_MAX_FAILURES`] times and a stage
//! [`STAGE_MAX_FAILURES`] times before the job fails. (A shuffle fetch from a dead executor
//! fails at once and reruns the stage that wrote it, usually well before the expiry.)

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use dossier_storage::Lake;

use super::NodeError;

/// Seconds between an executor's heartbeats (Ballista's default: 60).
pub const HEARTBEAT_SECS: u64 = 5;
/// Seconds without a heartbeat after which the scheduler drops an executor (default: 180). An
/// executor dropped by mistake (a heartbeat late under load) registers again at its next one.
pub const EXECUTOR_TIMEOUT_SECS: u64 = 15;
/// Seconds between the scheduler's checks for silent executors (default: 15).
pub const EXPIRY_CHECK_SECS: u64 = 3;
/// Attempts of one task before its job fails.
pub const TASK_MAX_FAILURES: usize = 4;
/// Attempts of one stage (reruns after lost shuffle files) before its job fails.
pub const STAGE_MAX_FAILURES: usize = 4;

/// A scheduler bound to its address, not serving yet.
pub struct Scheduler {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    config: Arc<SchedulerConfig>,
}

impl Scheduler {
    /// Binds `listen` (port 0 picks a free port, see [`Scheduler::address`]) and builds the
    /// scheduler's configuration with the lake and Dossier's functions in its sessions.
    pub async fn bind(listen: SocketAddr, lake: &Lake) -> Result<Self, NodeError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| NodeError::Listen {
                address: listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| NodeError::Listen {
            address: listen,
            source,
        })?;
        Ok(Self {
            listener,
            address,
            config: Arc::new(config(address, lake.clone())),
        })
    }

    /// The address it listens on (the bound port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the process ends.
    pub async fn serve(self) -> Result<(), NodeError> {
        let address = self.address;
        let failed = |source: BallistaError| NodeError::Scheduler { address, source };
        let cluster = BallistaCluster::new_from_config(&self.config).await.map_err(failed)?;
        let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, self.config)
            .await
            .map_err(failed)?;
        start_grpc_service_with_listener(self.listener, scheduler)
            .await
            .map_err(failed)
    }
}

/// Ballista's scheduler configuration with Dossier's sessions and codecs and the failure
/// detection of this module's constants.
fn config(address: SocketAddr, lake: Lake) -> SchedulerConfig {
    let mut config = SchedulerConfig::default()
        .with_hostname(address.ip().to_string())
        .with_port(address.port())
        .with_override_session_builder(Arc::new(move |config: SessionConfig| {
            super::session_state(config, &lake)
        }));
    config.bind_host = address.ip().to_string();
    config.override_logical_codec = Some(crate::codec::logical());
    config.override_physical_codec = Some(crate::codec::physical());
    config.executor_timeout_seconds = EXECUTOR_TIMEOUT_SECS;
    config.expire_dead_executor_interval_seconds = EXPIRY_CHECK_SECS;
    // Jobs wait this long for an executor to come back when the last one is lost.
    config.no_executors_grace_period_seconds = EXECUTOR_TIMEOUT_SECS;
    config.task_max_failures = TASK_MAX_FAILURES;
    config.stage_max_failures = STAGE_MAX_FAILURES;
    // Ballista's default (`Bias`) fills one executor's slots before the next's: a stage of as
    // many tasks as one executor has slots ran on that executor alone, and its memory and
    // shuffle files with it. One task per executor in turn spreads every stage.
    config.task_distribution = TaskDistributionPolicy::RoundRobin;
    config
}
