//! What an export takes in and gives back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use dossier_model::export_job::{ExportBatchTarget, ExportSpec};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::meta::BatchFile;

use crate::EngineError;
pub use crate::cancel::CancelFlag;
/// The sizes exports build profiles with: the profile builder's settings (segment evaluation
/// reads the same ones).
pub use crate::profiles::build::BuildSettings as ExportSettings;

/// One export job as the engine runs it.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub tenant: Tenant,
    pub job_id: i64,
    pub spec: ExportSpec,
    /// One target without a segment, or (segmentPerBatch) one per entry of `spec.segments`.
    pub batches: Vec<ExportBatchTarget>,
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

/// Why an export did not finish. Each variant knows the stable code and the stage the job's
/// `errors` entry shows; the queue builds that entry from [`ExportError::code`],
/// [`ExportError::stage`] and the message (its `Display`).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the job was cancelled")]
    Cancelled,
    /// The pinned merge policy version was deleted after the job was created.
    #[error("merge policy {id} version {version} no longer exists; create the job again with an existing policy")]
    MergePolicyGone { id: String, version: u32 },
    /// Requested fields that left the union schema after the job was created.
    #[error("{}", fields_gone(.event_list, .fields))]
    FieldsGone { event_list: bool, fields: Vec<String> },
    /// A segment to evaluate first was deleted after the job was created.
    #[error("segment definition {0} no longer exists; create the job again without it")]
    SegmentGone(String),
    /// Evaluating the job's segments failed with a code of segment evaluation's own.
    #[error("{message}")]
    Segmentation { code: &'static str, message: String },
    /// The metadata store failed.
    #[error("{source}")]
    Storage { stage: ExportStage, source: EngineError },
    /// Reading fragments (keying, selecting, partitions) failed: the lake, Parquet, a spill.
    #[error(transparent)]
    Read(EngineError),
    /// Merging, projecting or assembling output rows failed.
    #[error(transparent)]
    Merge(EngineError),
    /// Writing the output files failed.
    #[error(transparent)]
    Write(EngineError),
    /// The job asks for something `engine` cannot do yet: failing says so, where going on
    /// would write rows that differ from the native engine's.
    #[error("{feature} is not supported by the {engine} export engine yet; use export_engine = native")]
    Unsupported { engine: &'static str, feature: String },
}

fn fields_gone(event_list: &bool, fields: &[String]) -> String {
    let (what, union) = match event_list {
        true => ("eventList fields", "event"),
        false => ("fields", "profile"),
    };
    format!(
        "{what} {} are not in the {union} union schema any more",
        fields.join(", ")
    )
}

/// Where in the pipeline an export stopped, as the job's `errors[].callStack` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStage {
    Segmentation,
    Planning,
    Reading,
    Merging,
    Writing,
}

impl ExportStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Segmentation => "segmentation",
            Self::Planning => "planning",
            Self::Reading => "reading",
            Self::Merging => "merging",
            Self::Writing => "writing",
        }
    }
}

impl ExportError {
    /// A read failure, unless it is the cancel the reader noticed.
    pub fn reading(error: EngineError) -> Self {
        match error {
            EngineError::Cancelled => Self::Cancelled,
            error => Self::Read(error),
        }
    }

    /// The stable code of the job's `errors` entry.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Cancelled => "EXPORT-CANCELLED",
            Self::MergePolicyGone { .. } => "EXPORT-MERGEPOLICY-404",
            Self::FieldsGone { .. } => "EXPORT-FIELDS-400",
            Self::SegmentGone(_) => "EXPORT-SEGMENT-404",
            Self::Segmentation { code, .. } => code,
            Self::Storage { .. } => "EXPORT-STORAGE-500",
            Self::Read(_) => "EXPORT-READ-500",
            Self::Merge(_) => "EXPORT-MERGE-500",
            Self::Write(_) => "EXPORT-WRITE-500",
            Self::Unsupported { .. } => "EXPORT-UNSUPPORTED-501",
        }
    }

    /// The stage the export stopped in.
    pub fn stage(&self) -> ExportStage {
        match self {
            Self::Cancelled | Self::Read(_) => ExportStage::Reading,
            Self::MergePolicyGone { .. } | Self::FieldsGone { .. } | Self::Unsupported { .. } => ExportStage::Planning,
            Self::SegmentGone(_) | Self::Segmentation { .. } => ExportStage::Segmentation,
            Self::Storage { stage, .. } => *stage,
            Self::Merge(_) => ExportStage::Merging,
            Self::Write(_) => ExportStage::Writing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The job's `errors` entries read as they did when these were strings.
    #[test]
    fn each_error_keeps_its_code_stage_and_message() {
        let cases = [
            (
                ExportError::MergePolicyGone {
                    id: "m1".into(),
                    version: 2,
                },
                "EXPORT-MERGEPOLICY-404",
                "planning",
                "merge policy m1 version 2 no longer exists; create the job again with an existing policy",
            ),
            (
                ExportError::FieldsGone {
                    event_list: false,
                    fields: vec!["a.b".into(), "c".into()],
                },
                "EXPORT-FIELDS-400",
                "planning",
                "fields a.b, c are not in the profile union schema any more",
            ),
            (
                ExportError::FieldsGone {
                    event_list: true,
                    fields: vec!["x".into()],
                },
                "EXPORT-FIELDS-400",
                "planning",
                "eventList fields x are not in the event union schema any more",
            ),
            (
                ExportError::SegmentGone("s9".into()),
                "EXPORT-SEGMENT-404",
                "segmentation",
                "segment definition s9 no longer exists; create the job again without it",
            ),
            (
                ExportError::Unsupported {
                    engine: "cluster",
                    feature: "eventList".into(),
                },
                "EXPORT-UNSUPPORTED-501",
                "planning",
                "eventList is not supported by the cluster export engine yet; use export_engine = native",
            ),
            (
                ExportError::Write(EngineError::Invalid("disk full".into())),
                "EXPORT-WRITE-500",
                "writing",
                "disk full",
            ),
            (
                ExportError::reading(EngineError::Invalid("bad file".into())),
                "EXPORT-READ-500",
                "reading",
                "bad file",
            ),
        ];
        for (error, code, stage, message) in cases {
            assert_eq!((error.code(), error.stage().as_str()), (code, stage));
            assert_eq!(error.to_string(), message);
        }
        assert!(matches!(
            ExportError::reading(EngineError::Cancelled),
            ExportError::Cancelled
        ));
    }
}
