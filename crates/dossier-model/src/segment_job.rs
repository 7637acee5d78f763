//! Segment jobs (`/data/core/ups/segment/jobs`): one evaluation of named segment definitions,
//! queued and run by the same workers as export jobs. What a request may contain, the job as
//! stored, and its metrics in AEP's shape.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ValidationError;
use crate::export_job::ExportJobError;
use crate::listing::{PageSize, parse_limit, parse_offset};
use crate::tenancy::Tenant;
use crate::time::EpochMillis;

/// Where a job is in its life: `NEW` → `PROCESSING` → `SUCCEEDED` | `FAILED` | `CANCELLED`; a
/// cancel of a PROCESSING job passes through `CANCELLING` until its worker stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE", ascii_case_insensitive)]
pub enum SegmentJobStatus {
    New,
    Processing,
    Succeeded,
    Failed,
    Cancelling,
    Cancelled,
}

impl SegmentJobStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the job has ended and never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// One definition a job evaluates, as it was when the job was created (AEP echoes the
/// definition's expression and merge policy on the job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentJobSegment {
    pub segment_id: String,
    pub expression: String,
    pub merge_policy_id: String,
    pub merge_policy_version: u32,
}

/// Counts by status of one segment after evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub realized: u64,
    pub existing: u64,
    pub exited: u64,
}

/// A job's metrics; times in epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentJobMetrics {
    pub start: Option<EpochMillis>,
    pub end: Option<EpochMillis>,
    /// When evaluation (reading, merging, evaluating) started and ended.
    pub segmentation_start: Option<EpochMillis>,
    pub segmentation_end: Option<EpochMillis>,
    /// Segment → current members (realized + existing).
    pub segmented_profiles: BTreeMap<String, u64>,
    /// Segment → primary identity namespace → current members.
    pub segmented_by_namespace: BTreeMap<String, BTreeMap<String, u64>>,
    pub segmented_by_status: BTreeMap<String, StatusCounts>,
    pub total_profiles: u64,
    pub total_profiles_by_merge_policy: BTreeMap<String, u64>,
}

/// A segment job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentJob {
    pub id: String,
    pub tenant: Tenant,
    pub status: SegmentJobStatus,
    pub request_id: String,
    pub segments: Vec<SegmentJobSegment>,
    pub metrics: SegmentJobMetrics,
    pub errors: Vec<ExportJobError>,
    pub created: EpochMillis,
    pub updated: EpochMillis,
}

/// The segment ids a create body names: AEP's array of `{"segmentId": "..."}` (a single object
/// is accepted too). Each id once, in the order written.
pub fn segment_job_request(body: &Value) -> Result<Vec<String>, ValidationError> {
    const FIX: &str =
        "send an array of objects naming segment definitions, e.g. [{\"segmentId\": \"<definition id>\"}]";
    let items: Vec<&Value> = match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![body],
        other => return Err(ValidationError::invalid("body", other, FIX)),
    };
    if items.is_empty() {
        return Err(ValidationError::invalid("body", "[]", FIX));
    }
    let mut ids: Vec<String> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let field = format!("[{index}].segmentId");
        let id = match item.get("segmentId") {
            None => return Err(ValidationError::missing(field, FIX)),
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
            Some(other) => return Err(ValidationError::invalid(field, other, FIX)),
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A segment job listing's page sizes; a larger `limit` is lowered to the maximum.
pub const SEGMENT_JOB_PAGE: PageSize = PageSize {
    default: 100,
    max: 1000,
};

/// `GET /segment/jobs?start=&limit=&status=&sort=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentJobListQuery {
    pub start: u64,
    pub limit: u32,
    pub status: Option<SegmentJobStatus>,
    pub ascending: bool,
}

impl SegmentJobListQuery {
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, ValidationError> {
        let start = parse_offset("start", params.get("start").map(String::as_str), "segment jobs")?;
        let limit = parse_limit("limit", params.get("limit").map(String::as_str), SEGMENT_JOB_PAGE)?;
        let status = match params.get("status") {
            None => None,
            Some(raw) => Some(raw.parse().map_err(|_| {
                ValidationError::invalid(
                    "status",
                    raw,
                    "use NEW, PROCESSING, SUCCEEDED, FAILED, CANCELLING or CANCELLED",
                )
            })?),
        };
        let ascending = match params.get("sort").map(String::as_str) {
            None | Some("creationTime:desc") | Some("-creationTime") => false,
            Some("creationTime:asc") | Some("creationTime") => true,
            Some(other) => {
                return Err(ValidationError::invalid(
                    "sort",
                    other,
                    "use creationTime:desc (newest first) or creationTime:asc",
                ));
            }
        };
        Ok(Self {
            start,
            limit,
            status,
            ascending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_names_each_segment_once() {
        let ids = segment_job_request(&json!([{"segmentId": "a"}, {"segmentId": "b"}, {"segmentId": "a"}])).unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(segment_job_request(&json!({"segmentId": "x"})).unwrap(), ["x"]);
    }

    #[test]
    fn a_bad_request_names_the_field() {
        assert_eq!(segment_job_request(&json!([])).unwrap_err().field, "body");
        assert_eq!(
            segment_job_request(&json!([{"id": "a"}])).unwrap_err().field,
            "[0].segmentId"
        );
        assert_eq!(
            segment_job_request(&json!([{"segmentId": "a"}, {"segmentId": 3}]))
                .unwrap_err()
                .field,
            "[1].segmentId"
        );
        assert_eq!(segment_job_request(&json!("a")).unwrap_err().field, "body");
    }
}
