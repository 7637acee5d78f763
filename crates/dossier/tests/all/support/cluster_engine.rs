//! The suite's servers on the cluster engine (`DOSSIER_TEST_EXPORT_ENGINE`): with `cluster`, a
//! server's jobs run through `ClusterExporter` on a Ballista cluster of real processes (one
//! scheduler, two executors of this build's `dossier` binary) over the server's lake; with
//! `cluster-local`, on a DataFusion session of the test process (quicker, same plans, no
//! serialization between processes).

use dossier_cluster::export::ClusterExporter;
use dossier_engine::export::{CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest};
use dossier_engine::jobs::{EngineExporter, Exporter};
use dossier_engine::segments::{Evaluation, SegmentError};
use dossier_model::segment_job::SegmentJob;
use dossier_testkit::ballista::BallistaCluster;
use std::sync::Arc;

use tokio::sync::{Mutex, OnceCell};

/// Where a server's process cluster lives once started: shared with the `TestServer`, which
/// stops the cluster when it is dropped. A dropped server does not stop its job workers (only
/// `shutdown` does), so the exporter, and a cluster it owned, would outlive the test.
pub type ClusterSlot = Arc<std::sync::Mutex<Option<BallistaCluster>>>;

/// Where the suite's jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteEngine {
    Native,
    /// Plans on a DataFusion session of the test process.
    ClusterLocal,
    /// Plans on a process cluster started for each server at its first job.
    ClusterProcesses,
}

impl SuiteEngine {
    pub fn from_env() -> Self {
        match std::env::var("DOSSIER_TEST_EXPORT_ENGINE").as_deref() {
            Ok("cluster") => Self::ClusterProcesses,
            Ok("cluster-local") => Self::ClusterLocal,
            Ok("native") | Err(_) => Self::Native,
            Ok(other) => panic!("DOSSIER_TEST_EXPORT_ENGINE={other}: use native, cluster or cluster-local"),
        }
    }
}

/// The cluster engine's exporter for one server, on `engine`.
pub enum SuiteClusterExporter {
    Local(ClusterExporter),
    Processes(Box<ProcessClusterExporter>),
}

impl SuiteClusterExporter {
    pub fn new(kind: SuiteEngine, engine: EngineExporter, lake_url: String, slot: ClusterSlot) -> Self {
        match kind {
            SuiteEngine::ClusterProcesses => Self::Processes(Box::new(ProcessClusterExporter {
                lake_url,
                slot,
                engine: Mutex::new(Some(engine)),
                started: OnceCell::new(),
            })),
            _ => {
                let ctx = dossier_cluster::session::local_context(&engine.lake).expect("a DataFusion session");
                Self::Local(ClusterExporter::new(engine, ctx))
            }
        }
    }

    async fn exporter(&self) -> &ClusterExporter {
        match self {
            Self::Local(exporter) => exporter,
            Self::Processes(lazy) => lazy.exporter().await,
        }
    }
}

/// A process cluster started at the server's first job (most servers of the suite run none),
/// and stopped with the server.
pub struct ProcessClusterExporter {
    lake_url: String,
    slot: ClusterSlot,
    engine: Mutex<Option<EngineExporter>>,
    started: OnceCell<ClusterExporter>,
}

impl ProcessClusterExporter {
    async fn exporter(&self) -> &ClusterExporter {
        self.started
            .get_or_init(|| async {
                let engine = self.engine.lock().await.take().expect("started once");
                let lake_url = self.lake_url.clone();
                let cluster = tokio::task::spawn_blocking(move || {
                    BallistaCluster::start(std::path::Path::new(env!("CARGO_BIN_EXE_dossier")), &lake_url, 2)
                })
                .await
                .expect("the cluster's start does not panic")
                .expect("a process cluster starts");
                let ctx = dossier_cluster::node::connect(&cluster.url(), &engine.lake)
                    .await
                    .expect("the server connects to its cluster");
                *self.slot.lock().expect("the slot's lock") = Some(cluster);
                ClusterExporter::new(engine, ctx)
            })
            .await
    }
}

impl Exporter for SuiteClusterExporter {
    async fn export(
        &self,
        request: &ExportRequest,
        progress: &ExportProgress,
        cancel: &CancelFlag,
    ) -> Result<ExportOutcome, ExportError> {
        self.exporter().await.export(request, progress, cancel).await
    }

    async fn evaluate(&self, job: &SegmentJob, cancel: &CancelFlag) -> Result<Evaluation, SegmentError> {
        self.exporter().await.evaluate(job, cancel).await
    }
}
