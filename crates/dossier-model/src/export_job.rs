//! Export jobs: what a user asks for (`POST /data/core/ups/export/jobs`) once validated, and the
//! job as it is stored and answered.
//!
//! The engine exports from an [`ExportSpec`]; the API builds one from the request body and the
//! job queue stores it. Times in a spec are epoch milliseconds, already converted from the
//! RFC 3339 strings of the request (any offset, compared as instants).

use crate::ids::{BatchId, DatasetId, MergePolicyId};
use crate::time::EpochMillis;

/// A membership status an export can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MembershipStatus {
    Realized,
    Existing,
    Exited,
}

impl MembershipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realized => "realized",
            Self::Existing => "existing",
            Self::Exited => "exited",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "realized" => Some(Self::Realized),
            "existing" => Some(Self::Existing),
            "exited" => Some(Self::Exited),
            _ => None,
        }
    }
}

/// One entry of `filter.segments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFilter {
    pub segment_id: String,
    /// As the user wrote it (`UPS`, `AAM`); compared with memberships case-insensitively.
    pub segment_ns: String,
    /// Default `[realized, existing]`.
    pub statuses: Vec<MembershipStatus>,
}

/// `filter.segmentQualificationTime`: both ends inclusive, either optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualificationWindow {
    pub start: Option<EpochMillis>,
    pub end: Option<EpochMillis>,
}

/// `additionalFields.eventList`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventListSpec {
    /// Dot paths of the event to keep; `None`: every field. `_id` and `timestamp` are always kept.
    pub fields: Option<Vec<String>>,
    /// Events ingested strictly after this instant.
    pub from_ingest: Option<EpochMillis>,
    /// Events ingested at or before this instant.
    pub to_ingest: Option<EpochMillis>,
}

/// Everything that decides which rows an export writes, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// Dot paths of profile attributes to keep; `None`: every attribute of the union schema.
    pub fields: Option<Vec<String>>,
    /// Empty: every profile.
    pub segments: Vec<SegmentFilter>,
    pub qualification: QualificationWindow,
    /// Profiles whose last update is strictly after this instant.
    pub from_ingest: Option<EpochMillis>,
    pub empty_profiles: bool,
    pub event_list: Option<EventListSpec>,
    pub dataset_id: DatasetId,
    pub segment_per_batch: bool,
    /// The merge policy and version the job was resolved to at creation (pinned).
    pub merge_policy_id: MergePolicyId,
    pub merge_policy_version: u32,
    pub evaluate_segments: bool,
}

/// Where one batch of a job goes: the whole job's rows, or (with `segmentPerBatch`) the rows of
/// one entry of `filter.segments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportBatchTarget {
    pub batch_id: BatchId,
    /// Index into [`ExportSpec::segments`]; `None` for the single batch of a job.
    pub segment: Option<usize>,
}
