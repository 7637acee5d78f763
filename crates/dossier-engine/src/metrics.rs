//! What the engine measures for `GET /metrics`: jobs, ingestion, identity-graph folds and the
//! bytes it writes to the lake (docs/metrics.md lists every metric).
//!
//! [`EngineMetrics`] is a handle the server makes and hands down (to the job queue and the
//! ingestion), and registers in its own [`Registry`]: nothing is global, so two servers in one
//! process (the tests run many) each count only their own work. A handle that was never
//! registered still counts, into numbers nobody reads: what code without a server (unit tests,
//! tools) gets by default.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use dossier_model::catalog::BatchStatus;
use dossier_model::export_job::ExportJobStatus;
use dossier_model::segment_job::SegmentJobStatus;
use dossier_model::tenancy::Tenant;
use dossier_storage::meta::{JobKind, JobState};
use dossier_storage::{MetaStore, StorageError};

/// How a job run by this node's workers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded,
    Failed,
    Cancelled,
}

impl JobEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The end an export job's final status is; `None` for a status that is not an end.
    pub fn of_export(status: ExportJobStatus) -> Option<Self> {
        match status {
            ExportJobStatus::Succeeded => Some(Self::Succeeded),
            ExportJobStatus::Failed => Some(Self::Failed),
            ExportJobStatus::Cancelled => Some(Self::Cancelled),
            ExportJobStatus::New | ExportJobStatus::Processing => None,
        }
    }

    /// The end a segment job's final status is; `None` for a status that is not an end.
    pub fn of_segment(status: SegmentJobStatus) -> Option<Self> {
        match status {
            SegmentJobStatus::Succeeded => Some(Self::Succeeded),
            SegmentJobStatus::Failed => Some(Self::Failed),
            SegmentJobStatus::Cancelled => Some(Self::Cancelled),
            SegmentJobStatus::New | SegmentJobStatus::Processing | SegmentJobStatus::Cancelling => None,
        }
    }
}

/// Which output of the engine wrote bytes to the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeOutput {
    /// The files of a committed export batch.
    Export,
    /// The fragments (and row-error file) of a committed ingestion batch.
    Ingest,
}

/// What one ingestion batch's COMPLETE read and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Rows read from the batch's uploads.
    pub read: u64,
    /// Rows that failed the schema's checks (or could not be parsed).
    pub rejected: u64,
    /// Rows that became readable: those of a `success` batch that passed the checks.
    pub loaded: u64,
    /// Bytes of the batch's committed files.
    pub bytes: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindState {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    outcome: &'static str,
    result: &'static str,
}

/// A sandbox: the graph gauges' labels (one series per sandbox, a bounded number).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SandboxLabels {
    org: String,
    sandbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    output: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// The queue's kinds and states shown even when empty, so a drained queue reads 0 rather than
/// keeping its last number (an ingestion is never queued: the node that accepts it runs it).
const QUEUE_SERIES: [(JobKind, JobState); 5] = [
    (JobKind::Export, JobState::Queued),
    (JobKind::Export, JobState::Running),
    (JobKind::Segment, JobState::Queued),
    (JobKind::Segment, JobState::Running),
    (JobKind::Ingest, JobState::Running),
];

/// Job runs last from under a second (a small export) to hours (a large one).
fn job_duration_histogram() -> Histogram {
    Histogram::new([
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
    ])
}

/// The engine's metrics; cheap to clone (every clone counts into the same numbers).
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    jobs_started: Family<KindLabel, Counter>,
    jobs_finished: Family<KindState, Counter>,
    job_duration: HistogramFamily<KindState>,
    queue_depth: Family<KindState, Gauge>,
    export_rows: Counter,
    export_profiles: Counter,
    ingest_batches: Family<OutcomeLabel, Counter>,
    ingest_records: Family<RecordLabels, Counter>,
    graph_identities: Family<SandboxLabels, Gauge>,
    graph_components: Family<SandboxLabels, Gauge>,
    fold_duration: Histogram,
    lake_bytes: Family<OutputLabel, Counter>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            jobs_started: Family::default(),
            jobs_finished: Family::default(),
            job_duration: Family::new_with_constructor(job_duration_histogram),
            queue_depth: Family::default(),
            export_rows: Counter::default(),
            export_profiles: Counter::default(),
            ingest_batches: Family::default(),
            ingest_records: Family::default(),
            graph_identities: Family::default(),
            graph_components: Family::default(),
            fold_duration: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
            lake_bytes: Family::default(),
        }
    }
}

impl EngineMetrics {
    /// Adds every metric to `registry`, under the names docs/metrics.md lists (a counter's
    /// `_total` is added by the encoder).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dossier_jobs_started",
            "Jobs this node's workers started, by kind",
            self.jobs_started.clone(),
        );
        registry.register(
            "dossier_jobs_finished",
            "Jobs this node's workers ended, by kind and final state",
            self.jobs_finished.clone(),
        );
        registry.register(
            "dossier_job_duration_seconds",
            "Run time of the jobs this node's workers ended, from claim to end, by kind and final state",
            self.job_duration.clone(),
        );
        registry.register(
            "dossier_job_queue_depth",
            "Live jobs of every node on the queue, by kind and state, read from the metadata store at scrape time",
            self.queue_depth.clone(),
        );
        registry.register(
            "dossier_export_rows",
            "Rows written into the batches of succeeded export jobs",
            self.export_rows.clone(),
        );
        registry.register(
            "dossier_export_profiles",
            "Distinct profiles exported by succeeded export jobs",
            self.export_profiles.clone(),
        );
        registry.register(
            "dossier_ingest_batches",
            "Ingestion batches this node completed, by outcome (success, failed)",
            self.ingest_batches.clone(),
        );
        registry.register(
            "dossier_ingest_records",
            "Rows read by ingestion batches, by the batch's outcome and what became of the row (loaded, rejected, dropped)",
            self.ingest_records.clone(),
        );
        registry.register(
            "dossier_identity_graph_identities",
            "Identities in the sandbox's identity graph after its latest fold on this node",
            self.graph_identities.clone(),
        );
        registry.register(
            "dossier_identity_graph_components",
            "Components (pdg profiles) of the sandbox's identity graph after its latest fold on this node",
            self.graph_components.clone(),
        );
        registry.register(
            "dossier_identity_fold_duration_seconds",
            "Time of the identity graph folds that wrote a new version",
            self.fold_duration.clone(),
        );
        registry.register(
            "dossier_lake_written_bytes",
            "Bytes of committed files written to the lake, by output (export, ingest)",
            self.lake_bytes.clone(),
        );
    }

    pub fn job_started(&self, kind: JobKind) {
        let labels = KindLabel { kind: kind.as_str() };
        self.jobs_started.get_or_create(&labels).inc();
    }

    /// A job this node's worker ran ended as `end`, `ran` after its claim.
    pub fn job_finished(&self, kind: JobKind, end: JobEnd, ran: Duration) {
        let labels = KindState {
            kind: kind.as_str(),
            state: end.as_str(),
        };
        self.jobs_finished.get_or_create(&labels).inc();
        self.job_duration.get_or_create(&labels).observe(ran.as_secs_f64());
    }

    /// A succeeded export: its rows, distinct profiles and the bytes of its files.
    pub fn export_committed(&self, rows: u64, profiles: u64, bytes: u64) {
        self.export_rows.inc_by(rows);
        self.export_profiles.inc_by(profiles);
        self.lake_written(LakeOutput::Export, bytes);
    }

    /// An ingestion batch committed as `status` (`success` or `failed`) after reading `counts`.
    pub fn batch_ingested(&self, status: BatchStatus, counts: IngestCounts) {
        let outcome = batch_outcome(status);
        self.ingest_batches.get_or_create(&OutcomeLabel { outcome }).inc();
        // Valid rows of a failed batch are read but never become readable.
        let dropped = counts.read.saturating_sub(counts.rejected + counts.loaded);
        for (result, rows) in [
            ("loaded", counts.loaded),
            ("rejected", counts.rejected),
            ("dropped", dropped),
        ] {
            self.ingest_records
                .get_or_create(&RecordLabels { outcome, result })
                .inc_by(rows);
        }
        self.lake_written(LakeOutput::Ingest, counts.bytes);
    }

    /// An ingestion that stopped before reading its rows to the end (an internal error, or its
    /// nodes kept dying): the batch ends `failed`, with no rows counted.
    pub fn batch_failed(&self) {
        self.ingest_batches
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc();
    }

    /// A fold that wrote a new version of the sandbox's graph, of `identities` and `components`.
    pub fn graph_folded(&self, tenant: &Tenant, identities: i64, components: i64, took: Duration) {
        let labels = SandboxLabels {
            org: tenant.org.to_string(),
            sandbox: tenant.sandbox.to_string(),
        };
        self.graph_identities.get_or_create(&labels).set(identities);
        self.graph_components.get_or_create(&labels).set(components);
        self.fold_duration.observe(took.as_secs_f64());
    }

    fn lake_written(&self, output: LakeOutput, bytes: u64) {
        let output = match output {
            LakeOutput::Export => "export",
            LakeOutput::Ingest => "ingest",
        };
        self.lake_bytes.get_or_create(&OutputLabel { output }).inc_by(bytes);
    }

    /// Reads the queue's depth from the metadata store into its gauges: called at each scrape,
    /// so the numbers are those of every node sharing the store, as of now.
    pub async fn observe_queue(&self, meta: &MetaStore) -> Result<(), StorageError> {
        let depths = meta.queue_depth().await?;
        for (kind, state) in QUEUE_SERIES {
            let jobs = depths
                .iter()
                .filter(|d| d.kind == kind && d.state == state)
                .map(|d| d.jobs)
                .sum::<u64>();
            let labels = KindState {
                kind: kind.as_str(),
                state: state.as_str(),
            };
            self.queue_depth
                .get_or_create(&labels)
                .set(i64::try_from(jobs).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

fn batch_outcome(status: BatchStatus) -> &'static str {
    match status {
        BatchStatus::Success => "success",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(metrics: &EngineMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_failed_batch_counts_its_valid_rows_as_dropped() {
        let metrics = EngineMetrics::default();
        let counts = IngestCounts {
            read: 10,
            rejected: 3,
            loaded: 0,
            bytes: 120,
        };
        metrics.batch_ingested(BatchStatus::Failed, counts);
        let text = scrape(&metrics);
        for line in [
            "dossier_ingest_batches_total{outcome=\"failed\"} 1",
            "dossier_ingest_records_total{outcome=\"failed\",result=\"dropped\"} 7",
            "dossier_ingest_records_total{outcome=\"failed\",result=\"rejected\"} 3",
            "dossier_ingest_records_total{outcome=\"failed\",result=\"loaded\"} 0",
            "dossier_lake_written_bytes_total{output=\"ingest\"} 120",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn two_handles_count_apart() {
        let (one, other) = (EngineMetrics::default(), EngineMetrics::default());
        one.job_started(JobKind::Export);
        assert!(scrape(&one).contains("dossier_jobs_started_total{kind=\"export\"} 1"));
        assert!(!scrape(&other).contains("dossier_jobs_started_total{kind=\"export\"}"));
    }
}
