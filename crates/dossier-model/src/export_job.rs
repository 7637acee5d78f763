//! Export jobs: what a user asks for (`POST /data/core/ups/export/jobs`) once validated, and the
//! job as it is stored and answered.
//!
//! The engine exports from an [`ExportSpec`]; the API builds one from the request body and the
//! job queue stores it. Times in a spec are epoch milliseconds, already converted from the
//! RFC 3339 strings of the request (any offset, compared as instants).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ValidationError;
use crate::ids::{BatchId, DatasetId, MergePolicyId};
use crate::listing::{PageSize, offset_too_large, parse_limit, parse_offset};
use crate::tenancy::Tenant;
use crate::time::EpochMillis;

/// The namespace of a segment entry that names none: memberships computed by segmentation.
pub const DEFAULT_SEGMENT_NS: &str = "ups";

/// A membership status an export can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum MembershipStatus {
    Realized,
    Existing,
    Exited,
}

impl MembershipStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status spelled exactly `text` (lowercase, as stored); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// A current member is realized or existing.
    pub fn is_member(self) -> bool {
        !matches!(self, Self::Exited)
    }
}

/// One entry of `filter.segments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentFilter {
    pub segment_id: String,
    /// As the user wrote it (`UPS`, `AAM`); compared with memberships case-insensitively.
    pub segment_ns: String,
    /// Default `[realized, existing]`.
    pub statuses: Vec<MembershipStatus>,
}

/// `filter.segmentQualificationTime`: both ends inclusive, either optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualificationWindow {
    pub start: Option<EpochMillis>,
    pub end: Option<EpochMillis>,
}

/// `additionalFields.eventList`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventListSpec {
    /// Dot paths of the event to keep; `None`: every field. `_id` and `timestamp` are always kept.
    pub fields: Option<Vec<String>>,
    /// Events ingested strictly after this instant.
    pub from_ingest: Option<EpochMillis>,
    /// Events ingested at or before this instant.
    pub to_ingest: Option<EpochMillis>,
}

/// Everything that decides which rows an export writes, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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

impl ExportSpec {
    /// The `ups` segments (namespace compared case-insensitively) a job with
    /// `evaluationInfo.segmentation: true` evaluates before exporting, each once, in filter order.
    pub fn segments_to_evaluate(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        if !self.evaluate_segments {
            return ids;
        }
        for filter in &self.segments {
            if filter.segment_ns.eq_ignore_ascii_case(DEFAULT_SEGMENT_NS) && !ids.contains(&filter.segment_id) {
                ids.push(filter.segment_id.clone());
            }
        }
        ids
    }
}

/// Where one batch of a job goes: the whole job's rows, or (with `segmentPerBatch`) the rows of
/// one entry of `filter.segments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportBatchTarget {
    pub batch_id: BatchId,
    /// Index into [`ExportSpec::segments`]; `None` for the single batch of a job.
    pub segment: Option<usize>,
}

/// Where a job is in its life: `NEW` → `PROCESSING` → `SUCCEEDED` | `FAILED` | `CANCELLED`.
/// Terminal states never change.
///
/// Parsing is as the list's `status` parameter gives it; case does not matter, because clients
/// write `status=succeeded` as often as `SUCCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE", ascii_case_insensitive)]
#[strum(parse_err_ty = ValidationError, parse_err_fn = unknown_export_job_status)]
pub enum ExportJobStatus {
    New,
    Processing,
    Succeeded,
    Failed,
    Cancelled,
}

impl ExportJobStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

fn unknown_export_job_status(s: &str) -> ValidationError {
    ValidationError::invalid("status", s, "use one of NEW, PROCESSING, SUCCEEDED, FAILED, CANCELLED")
}

/// One entry of a failed job's `errors`: a stable code, what a user can act on, and where it
/// happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJobError {
    pub code: String,
    pub msg: String,
    #[serde(rename = "callStack")]
    pub call_stack: String,
}

/// A span of a job's metrics; `end` is unknown while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpan {
    pub start: EpochMillis,
    pub end: Option<EpochMillis>,
}

impl MetricSpan {
    pub fn open(start: EpochMillis) -> Self {
        Self { start, end: None }
    }

    pub fn closed(start: EpochMillis, end: EpochMillis) -> Self {
        Self { start, end: Some(end) }
    }
}

/// What a job measured. `total_time` starts when the job is created (as AEP's does) and ends
/// when it reaches a terminal state; the rest fill in when an export finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportJobMetrics {
    pub total_time: MetricSpan,
    pub profile_export_time: Option<MetricSpan>,
    pub dataset_write_time: Option<MetricSpan>,
    pub exported_profiles: Option<u64>,
    /// Primary identity namespace → exported profiles.
    pub exported_by_namespace: BTreeMap<String, u64>,
    /// Guardrail reason → profiles left out of the export.
    pub left_out_by_reason: BTreeMap<String, u64>,
}

impl ExportJobMetrics {
    pub fn started_at(created: EpochMillis) -> Self {
        Self {
            total_time: MetricSpan::open(created),
            profile_export_time: None,
            dataset_write_time: None,
            exported_profiles: None,
            exported_by_namespace: BTreeMap::new(),
            left_out_by_reason: BTreeMap::new(),
        }
    }
}

/// Counters of a running export, as `progress` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportJobProgress {
    pub profiles_scanned: u64,
    pub profiles_exported: u64,
    pub bytes_written: u64,
    /// 0 to 100.
    pub percent: u64,
}

/// An export job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    /// Increasing within a sandbox.
    pub id: i64,
    pub tenant: Tenant,
    pub status: ExportJobStatus,
    /// The id of the request that created the job.
    pub request_id: String,
    /// The request's fields as the job object echoes them (`fields`, `filter`,
    /// `additionalFields`, `schema`, `evaluationInfo`), defaults filled in.
    pub request: Value,
    pub spec: ExportSpec,
    /// Assigned at creation: one batch, or one per segment with `segmentPerBatch`.
    pub batches: Vec<ExportBatchTarget>,
    pub metrics: ExportJobMetrics,
    /// The last counters a worker recorded while the job ran.
    pub progress: Option<ExportJobProgress>,
    pub errors: Vec<ExportJobError>,
    /// A DELETE arrived while the job was PROCESSING; the worker stops and ends it CANCELLED.
    pub cancel_requested: bool,
    pub created: EpochMillis,
    pub updated: EpochMillis,
}

/// The page size of the job listing when `limit` is absent.
pub const DEFAULT_EXPORT_JOB_LIMIT: u32 = 100;
/// The largest page of the job listing; larger `limit`s are lowered to it.
pub const MAX_EXPORT_JOB_LIMIT: u32 = 1000;

/// Where a page of the job listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportJobOffset {
    /// The first page.
    Start,
    /// After the job with this `(creationTime, id)` (`offset=<creationTime>_<id>`, the form the
    /// listing's `link.next` uses).
    After(EpochMillis, i64),
    /// After skipping this many jobs (`offset=2`, the form Adobe's tutorial shows).
    Skip(u64),
}

/// A `GET /export/jobs` query: `limit`, `offset`, `status`; `start`, `page` and `sort` are
/// tolerated and ignored, as every unknown parameter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJobListQuery {
    pub limit: u32,
    pub offset: ExportJobOffset,
    pub status: Option<ExportJobStatus>,
}

/// `<creationTime>_<id>`: the listing's cursor, made of digits and `_` so it needs no escaping.
pub fn export_job_cursor(created: EpochMillis, id: i64) -> String {
    format!("{created}_{id}")
}

const EXPORT_JOB_PAGE: PageSize = PageSize {
    default: DEFAULT_EXPORT_JOB_LIMIT,
    max: MAX_EXPORT_JOB_LIMIT,
};

fn parse_export_job_offset(raw: Option<&String>) -> Result<ExportJobOffset, ValidationError> {
    let Some(raw) = raw.map(|r| r.trim()).filter(|r| !r.is_empty()) else {
        return Ok(ExportJobOffset::Start);
    };
    let invalid = || {
        ValidationError::invalid(
            "offset",
            raw,
            "use the page.pageOffset of the previous page (<creationTime>_<id>, as in link.next), or a number of jobs to skip",
        )
    };
    match raw.split_once('_') {
        Some((created, id)) => Ok(ExportJobOffset::After(
            created.parse().map_err(|_| invalid())?,
            id.parse().map_err(|_| invalid())?,
        )),
        // Digits too many for the count form are the same mistake as a count past MAX_OFFSET.
        None if raw.bytes().all(|b| b.is_ascii_digit()) => match parse_offset("offset", Some(raw), "jobs") {
            Ok(skip) => Ok(ExportJobOffset::Skip(skip)),
            Err(_) => Err(offset_too_large("offset", raw)),
        },
        None => Err(invalid()),
    }
}

impl ExportJobListQuery {
    pub fn from_params(params: &std::collections::HashMap<String, String>) -> Result<Self, ValidationError> {
        let status = params
            .get("status")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .transpose()?;
        Ok(Self {
            limit: parse_limit("limit", params.get("limit").map(String::as_str), EXPORT_JOB_PAGE)?,
            offset: parse_export_job_offset(params.get("offset"))?,
            status,
        })
    }

    /// The path of the page after the one that ended with the job `(created, id)`, as
    /// `link.next` gives it (relative to `/data/core/ups`, as AEP writes it).
    pub fn next_link(&self, created: EpochMillis, id: i64) -> String {
        let mut link = format!(
            "/export/jobs/?limit={}&offset={}",
            self.limit,
            export_job_cursor(created, id)
        );
        if let Some(status) = self.status {
            link.push_str(&format!("&status={status}"));
        }
        link
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_listing_query_has_defaults_a_cursor_a_skip_and_a_status() {
        let q = ExportJobListQuery::from_params(&params(&[("start", "3"), ("sort", "x"), ("page", "2")])).unwrap();
        assert_eq!(
            q,
            ExportJobListQuery {
                limit: 100,
                offset: ExportJobOffset::Start,
                status: None
            }
        );
        let q = ExportJobListQuery::from_params(&params(&[
            ("limit", "5000"),
            ("offset", "1538573416687_722"),
            ("status", "succeeded"),
        ]))
        .unwrap();
        assert_eq!(q.limit, 1000);
        assert_eq!(q.offset, ExportJobOffset::After(1_538_573_416_687, 722));
        assert_eq!(q.status, Some(ExportJobStatus::Succeeded));
        assert_eq!(
            q.next_link(1, 2),
            "/export/jobs/?limit=1000&offset=1_2&status=SUCCEEDED"
        );
        let q = ExportJobListQuery::from_params(&params(&[("offset", "2")])).unwrap();
        assert_eq!(q.offset, ExportJobOffset::Skip(2));
    }

    #[test]
    fn bad_listing_parameters_name_themselves() {
        for (key, value) in [
            ("limit", "0"),
            ("limit", "ten"),
            ("offset", "x_1"),
            ("offset", "-1"),
            ("offset", "9223372036854775808"),
            ("offset", "18446744073709551616"),
            ("status", "DONE"),
        ] {
            let error = ExportJobListQuery::from_params(&params(&[(key, value)])).unwrap_err();
            assert_eq!(error.field, key);
        }
    }

    #[test]
    fn the_stored_spec_reads_back_unchanged() {
        let spec = ExportSpec {
            fields: Some(vec!["identities.id".into()]),
            segments: vec![SegmentFilter {
                segment_id: "s".into(),
                segment_ns: "AAM".into(),
                statuses: vec![MembershipStatus::Exited],
            }],
            qualification: QualificationWindow {
                start: Some(1),
                end: None,
            },
            from_ingest: Some(2),
            empty_profiles: true,
            event_list: Some(EventListSpec::default()),
            dataset_id: DatasetId::from_string("d"),
            segment_per_batch: true,
            merge_policy_id: MergePolicyId::from_string("m"),
            merge_policy_version: 3,
            evaluate_segments: false,
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ExportSpec>(&text).unwrap(), spec);
    }
}
