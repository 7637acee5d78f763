//! What an export takes in and gives back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dossier_model::export_job::{ExportBatchTarget, ExportSpec};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::meta::BatchFile;

/// One export job as the engine runs it.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub tenant: Tenant,
    pub job_id: i64,
    pub spec: ExportSpec,
    /// One target without a segment, or (segmentPerBatch) one per entry of `spec.segments`.
    pub batches: Vec<ExportBatchTarget>,
}

/// How an export may use the machine: configuration, not part of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// Profiles whose fragments are held in memory at once (one partition); smaller means less
    /// memory and more passes over the files.
    pub partition_profiles: usize,
    /// Profiles keyed and selected at once (one shard); a larger population is split into
    /// shards exported one after the other, its pass one spilled to disk.
    pub shard_profiles: usize,
    /// Identity graph identities held in one hash map while fragments are keyed; a larger graph
    /// is joined in hash buckets spilled to disk.
    pub bucket_identities: usize,
    /// Where spills go (a folder per export, removed when it ends); `None`: the system's
    /// temporary folder.
    pub spill_dir: Option<PathBuf>,
}

impl ExportSettings {
    pub fn spill_root(&self) -> PathBuf {
        self.spill_dir.clone().unwrap_or_else(default_spill_root)
    }
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            partition_profiles: 250_000,
            shard_profiles: 2_000_000,
            bucket_identities: 4_000_000,
            spill_dir: None,
        }
    }
}

/// Live counters of a running export, read by the job queue for `progress`.
#[derive(Debug, Default)]
pub struct ExportProgress {
    pub profiles_scanned: AtomicU64,
    pub profiles_exported: AtomicU64,
    pub bytes_written: AtomicU64,
    /// 0 to 100.
    pub percent: AtomicU64,
}

impl ExportProgress {
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.profiles_scanned.load(Ordering::Relaxed),
            self.profiles_exported.load(Ordering::Relaxed),
            self.bytes_written.load(Ordering::Relaxed),
            self.percent.load(Ordering::Relaxed),
        )
    }
}

/// Set by whoever cancels the job; the export checks it between record batches.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A time span of the job's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: EpochMillis,
    pub end: EpochMillis,
}

/// The staged result of one batch, ready to commit. Its files sit in the batch folder of the
/// target dataset but are not readable until the batch's metadata commits.
#[derive(Debug, Clone)]
pub struct StagedBatch {
    pub target: ExportBatchTarget,
    pub files: Vec<BatchFile>,
    /// Rows written (a profile in two segments counts once per batch).
    pub records: i64,
    pub size: i64,
}

/// What a finished export reports.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    pub batches: Vec<StagedBatch>,
    /// The version of the sandbox's identity graph the export read (`pdg` policies); it saw
    /// exactly the batches that version covers. `None` under `none`.
    pub identity_graph_version: Option<i64>,
    /// Distinct profiles exported.
    pub exported_profiles: u64,
    /// Primary identity namespace → exported profiles.
    pub by_namespace: BTreeMap<String, u64>,
    /// Guardrail reason → profiles left out.
    pub left_out: BTreeMap<String, u64>,
    /// Reading, merging, filtering.
    pub profile_export_time: Span,
    /// Writing files.
    pub dataset_write_time: Span,
}

/// Why an export did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the job was cancelled")]
    Cancelled,
    /// A failure with a stable code and a message a user can act on.
    #[error("{code}: {message}")]
    Failed {
        code: &'static str,
        message: String,
        stage: &'static str,
    },
}

/// The default spill root: the system's temporary folder.
pub fn default_spill_root() -> PathBuf {
    std::env::temp_dir().join("dossier-spill")
}
