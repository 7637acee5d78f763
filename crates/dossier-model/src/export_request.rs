//! The body of `POST /data/core/ups/export/jobs`, validated field by field, and the
//! [`ExportSpec`] built from it.
//!
//! Validation happens in two steps. [`ExportJobRequest::from_json`] checks everything the body
//! alone decides (types, defaults, RFC 3339 instants, status values, `segmentPerBatch` without
//! segments, `schema.name`). The `check_*` methods then judge the body against what only the
//! sandbox knows — the target dataset, the union schemas, the merge policy — once the caller has
//! looked those up. Every refusal is an [`ExportRequestError`]: the [`ExportRule`] that was broken
//! (the API gives each rule its own stable code) and a [`ValidationError`] naming the field, the
//! value and the fix.

use serde_json::{Map, Value, json};

use crate::ValidationError;
use crate::catalog::Dataset;
use crate::export_job::{
    DEFAULT_SEGMENT_NS, EventListSpec, ExportBatchTarget, ExportSpec, MembershipStatus, QualificationWindow,
    SegmentFilter,
};
use crate::ids::{BatchId, DatasetId, MergePolicyId};
use crate::merge_policy::MergePolicy;
use crate::schema::{PROFILE_SCHEMA_NAME, PROFILE_UNION_SCHEMA_ID};
use crate::time::EpochMillis;
use crate::validation::{lenient_bool, present, shown};
use crate::xdm::{PathTree, XdmSchema};

/// The statuses of a segment entry that names none: current members.
pub const DEFAULT_SEGMENT_STATUSES: [MembershipStatus; 2] = [MembershipStatus::Realized, MembershipStatus::Existing];

/// Each distinct way a create request can be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportRule {
    /// The body is not a JSON object.
    Body,
    /// `fields` is not a comma-separated list of dot paths.
    Fields,
    /// A `fields` path the profile union schema does not have.
    FieldNotInProfileUnion,
    /// `mergePolicy` is not `{id, version}`.
    MergePolicy,
    /// `mergePolicy.id` names no merge policy of the sandbox.
    UnknownMergePolicy,
    /// `mergePolicy.version` names no version of that policy.
    UnknownMergePolicyVersion,
    /// `filter` is not an object.
    Filter,
    /// `filter.segments` is not an array of objects.
    Segments,
    /// A segment entry without a usable `segmentId`.
    SegmentId,
    /// A `segmentNs` that is not a non-empty string.
    SegmentNamespace,
    /// A `status` that is not a non-empty array of strings.
    SegmentStatusList,
    /// A status other than realized, existing, exited.
    UnknownSegmentStatus,
    /// An instant that is not an RFC 3339 timestamp.
    Timestamp,
    /// `segmentQualificationTime` is not `{startTime, endTime}` or ends before it starts.
    QualificationWindow,
    /// `emptyProfiles` is not a boolean.
    EmptyProfiles,
    /// `additionalFields` or `additionalFields.eventList` is not an object of the right shape.
    EventList,
    /// `eventList.fields` is not a comma-separated list of dot paths.
    EventFields,
    /// An `eventList.fields` path the ExperienceEvent union schema does not have.
    EventFieldNotInEventUnion,
    /// `eventList.filter` ends before it starts.
    EventIngestWindow,
    /// `destination` is missing or not an object.
    Destination,
    /// `destination.datasetId` is missing or not a string.
    DatasetId,
    /// `destination.datasetId` names no dataset of the sandbox.
    UnknownDataset,
    /// The target dataset does not use the profile union schema.
    DatasetNotOnProfileUnion,
    /// `destination.segmentPerBatch` is not a boolean.
    SegmentPerBatch,
    /// `segmentPerBatch: true` without any `filter.segments`.
    SegmentPerBatchWithoutSegments,
    /// `schema` or `schema.name` is missing.
    MissingSchemaName,
    /// `schema.name` is not `_xdm.context.profile`.
    SchemaName,
    /// `evaluationInfo` is not `{segmentation: bool}`.
    EvaluationInfo,
}

/// A refused create request: the rule that was broken and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequestError {
    pub rule: ExportRule,
    pub error: ValidationError,
}

impl ExportRequestError {
    fn invalid(
        rule: ExportRule,
        field: impl Into<String>,
        value: impl std::fmt::Display,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            rule,
            error: ValidationError::invalid(field, value, fix),
        }
    }

    fn missing(rule: ExportRule, field: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            rule,
            error: ValidationError::missing(field, fix),
        }
    }
}

impl std::fmt::Display for ExportRequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// An instant of the request, as written (echoed back) and as epoch milliseconds (compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedInstant {
    pub text: String,
    pub millis: EpochMillis,
}

/// `mergePolicy` as the request names it; `version: None` means the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePolicyChoice {
    pub id: MergePolicyId,
    pub version: Option<u32>,
}

/// A comma-separated list of dot paths, as written and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldList {
    pub text: String,
    pub paths: Vec<String>,
}

/// `additionalFields.eventList`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventListRequest {
    pub fields: Option<FieldList>,
    pub from_ingest: Option<RequestedInstant>,
    pub to_ingest: Option<RequestedInstant>,
}

/// A create body that passed every check the body alone decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJobRequest {
    pub fields: Option<FieldList>,
    pub merge_policy: Option<MergePolicyChoice>,
    pub segments: Vec<SegmentFilter>,
    pub qualification_start: Option<RequestedInstant>,
    pub qualification_end: Option<RequestedInstant>,
    pub from_ingest: Option<RequestedInstant>,
    pub empty_profiles: bool,
    pub event_list: Option<EventListRequest>,
    pub dataset_id: DatasetId,
    pub segment_per_batch: bool,
    /// `evaluationInfo.segmentation`, `None` when the request has no `evaluationInfo`.
    pub evaluate_segments: Option<bool>,
}

/// An optional member that must be an object when present.
fn optional_object<'a>(
    parent: &'a Value,
    name: &str,
    field: &str,
    rule: ExportRule,
    example: &str,
) -> Result<Option<&'a Value>, ExportRequestError> {
    match present(parent, name) {
        None => Ok(None),
        Some(value) if value.is_object() => Ok(Some(value)),
        Some(other) => Err(ExportRequestError::invalid(
            rule,
            field,
            shown(other),
            format!("expected an object, e.g. {example}"),
        )),
    }
}

/// A boolean, as merge policies accept them (`"true"` and `"false"` strings too).
fn optional_bool(
    parent: &Value,
    name: &str,
    field: &str,
    rule: ExportRule,
) -> Result<Option<bool>, ExportRequestError> {
    present(parent, name)
        .map(|value| lenient_bool(field, value).map_err(|error| ExportRequestError { rule, error }))
        .transpose()
}

/// Whether `path` is a dot path: names separated by single dots, no spaces inside.
fn is_dot_path(path: &str) -> bool {
    path.split('.')
        .all(|name| !name.is_empty() && !name.chars().any(char::is_whitespace))
}

/// `fields` and `eventList.fields`: comma-separated dot paths; spaces around commas are
/// ignored, and so is a trailing comma, because hand-written lists often have one.
fn parse_field_list(
    parent: &Value,
    name: &str,
    field: &str,
    rule: ExportRule,
    example: &str,
) -> Result<Option<FieldList>, ExportRequestError> {
    let text = match present(parent, name) {
        None => return Ok(None),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(ExportRequestError::invalid(
                rule,
                field,
                shown(other),
                format!("expected one string of comma-separated dot paths, e.g. \"{example}\""),
            ));
        }
    };
    let paths: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if paths.is_empty() {
        return Err(ExportRequestError::invalid(
            rule,
            field,
            text,
            format!("name at least one dot path, e.g. \"{example}\", or leave {field} out to export every field"),
        ));
    }
    if let Some(bad) = paths.iter().find(|p| !is_dot_path(p)) {
        return Err(ExportRequestError::invalid(
            rule,
            field,
            text,
            format!(
                "'{bad}' is not a dot path: separate paths with commas and names with single dots, e.g. \"{example}\""
            ),
        ));
    }
    Ok(Some(FieldList {
        text: text.clone(),
        paths,
    }))
}

/// An RFC 3339 instant with any offset (`2018-10-25T13:22:04-07:00`, `...Z`).
fn parse_instant(parent: &Value, name: &str, field: &str) -> Result<Option<RequestedInstant>, ExportRequestError> {
    let fix = "expected an RFC 3339 timestamp with a time zone offset, e.g. \"2018-10-25T13:22:04-07:00\" or \"2019-09-01T00:00:00Z\"";
    let text = match present(parent, name) {
        None => return Ok(None),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(ExportRequestError::invalid(
                ExportRule::Timestamp,
                field,
                shown(other),
                fix,
            ));
        }
    };
    match text.trim().parse::<jiff::Timestamp>() {
        Ok(instant) => Ok(Some(RequestedInstant {
            text: text.clone(),
            millis: instant.as_millisecond(),
        })),
        Err(_) => Err(ExportRequestError::invalid(ExportRule::Timestamp, field, text, fix)),
    }
}

/// Refuses a window whose end is before its start: it could never match anything.
fn check_window(
    start: Option<&RequestedInstant>,
    end: Option<&RequestedInstant>,
    end_field: &str,
    start_field: &str,
    rule: ExportRule,
) -> Result<(), ExportRequestError> {
    match (start, end) {
        (Some(start), Some(end)) if end.millis < start.millis => Err(ExportRequestError::invalid(
            rule,
            end_field,
            &end.text,
            format!(
                "it is before {start_field} ({}); nothing could match, swap the two instants",
                start.text
            ),
        )),
        _ => Ok(()),
    }
}

fn parse_merge_policy(body: &Value) -> Result<Option<MergePolicyChoice>, ExportRequestError> {
    let example = "{\"id\": \"timestampOrdered-none-mp\", \"version\": 1}";
    let Some(policy) = optional_object(body, "mergePolicy", "mergePolicy", ExportRule::MergePolicy, example)? else {
        return Ok(None);
    };
    let id = match present(policy, "id") {
        Some(Value::String(id)) if !id.trim().is_empty() => MergePolicyId::from_string(id.trim()),
        Some(other) => {
            return Err(ExportRequestError::invalid(
                ExportRule::MergePolicy,
                "mergePolicy.id",
                shown(other),
                format!("expected a merge policy id, e.g. {example}"),
            ));
        }
        None => {
            return Err(ExportRequestError::missing(
                ExportRule::MergePolicy,
                "mergePolicy.id",
                format!("name the merge policy, e.g. {example}, or leave mergePolicy out to use the sandbox's default"),
            ));
        }
    };
    let version = match present(policy, "version") {
        None => None,
        Some(value) => match value.as_u64().filter(|v| (1..=u64::from(u32::MAX)).contains(v)) {
            Some(version) => Some(version as u32),
            None => {
                return Err(ExportRequestError::invalid(
                    ExportRule::MergePolicy,
                    "mergePolicy.version",
                    shown(value),
                    "versions are whole numbers from 1; leave version out for the latest",
                ));
            }
        },
    };
    Ok(Some(MergePolicyChoice { id, version }))
}

fn parse_segment_statuses(entry: &Value, field: &str) -> Result<Vec<MembershipStatus>, ExportRequestError> {
    let fix =
        "expected a non-empty array of statuses from realized, existing, exited, e.g. [\"realized\", \"existing\"]";
    let items = match present(entry, "status") {
        None => return Ok(DEFAULT_SEGMENT_STATUSES.to_vec()),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(other) => {
            return Err(ExportRequestError::invalid(
                ExportRule::SegmentStatusList,
                field,
                shown(other),
                fix,
            ));
        }
    };
    let mut statuses = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{index}]");
        let Value::String(text) = item else {
            return Err(ExportRequestError::invalid(
                ExportRule::SegmentStatusList,
                item_field,
                shown(item),
                fix,
            ));
        };
        let status = MembershipStatus::parse(&text.trim().to_ascii_lowercase()).ok_or_else(|| {
            ExportRequestError::invalid(
                ExportRule::UnknownSegmentStatus,
                &item_field,
                text,
                "use realized (entered the segment), existing (stayed in it) or exited (left it)",
            )
        })?;
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    Ok(statuses)
}

fn parse_segment(entry: &Value, index: usize) -> Result<SegmentFilter, ExportRequestError> {
    let prefix = format!("filter.segments[{index}]");
    if !entry.is_object() {
        return Err(ExportRequestError::invalid(
            ExportRule::Segments,
            &prefix,
            shown(entry),
            "each entry is an object, e.g. {\"segmentId\": \"4edc8488-2c35-4f6d-b4c6-9075c68d2df4\", \"segmentNs\": \"ups\", \"status\": [\"realized\"]}",
        ));
    }
    let id_field = format!("{prefix}.segmentId");
    let segment_id = match present(entry, "segmentId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        Some(other) => {
            return Err(ExportRequestError::invalid(
                ExportRule::SegmentId,
                id_field,
                shown(other),
                "expected the segment's id as a non-empty string",
            ));
        }
        None => {
            return Err(ExportRequestError::missing(
                ExportRule::SegmentId,
                id_field,
                "every entry of filter.segments names a segment, e.g. \"segmentId\": \"4edc8488-2c35-4f6d-b4c6-9075c68d2df4\"",
            ));
        }
    };
    let segment_ns = match present(entry, "segmentNs") {
        None => DEFAULT_SEGMENT_NS.to_owned(),
        Some(Value::String(ns)) if !ns.trim().is_empty() => ns.trim().to_owned(),
        Some(other) => {
            return Err(ExportRequestError::invalid(
                ExportRule::SegmentNamespace,
                format!("{prefix}.segmentNs"),
                shown(other),
                "expected a namespace such as \"ups\" (segments evaluated here) or \"AAM\"; leave it out for \"ups\"",
            ));
        }
    };
    Ok(SegmentFilter {
        segment_id,
        segment_ns,
        statuses: parse_segment_statuses(entry, &format!("{prefix}.status"))?,
    })
}

fn parse_segments(filter: &Value) -> Result<Vec<SegmentFilter>, ExportRequestError> {
    match present(filter, "segments") {
        None => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries
            .iter()
            .enumerate()
            .map(|(index, entry)| parse_segment(entry, index))
            .collect(),
        Some(other) => Err(ExportRequestError::invalid(
            ExportRule::Segments,
            "filter.segments",
            shown(other),
            "expected an array of {segmentId, segmentNs, status} objects",
        )),
    }
}

/// `filter.segmentQualificationTime` as (startTime, endTime).
type QualificationInstants = (Option<RequestedInstant>, Option<RequestedInstant>);

fn parse_qualification_time(filter: &Value) -> Result<QualificationInstants, ExportRequestError> {
    let field = "filter.segmentQualificationTime";
    let example = "{\"startTime\": \"2019-09-01T00:00:00Z\", \"endTime\": \"2019-09-02T00:00:00Z\"}";
    let Some(window) = optional_object(
        filter,
        "segmentQualificationTime",
        field,
        ExportRule::QualificationWindow,
        example,
    )?
    else {
        return Ok((None, None));
    };
    let start = parse_instant(window, "startTime", &format!("{field}.startTime"))?;
    let end = parse_instant(window, "endTime", &format!("{field}.endTime"))?;
    check_window(
        start.as_ref(),
        end.as_ref(),
        &format!("{field}.endTime"),
        &format!("{field}.startTime"),
        ExportRule::QualificationWindow,
    )?;
    Ok((start, end))
}

fn parse_event_list(body: &Value) -> Result<Option<EventListRequest>, ExportRequestError> {
    let example = "{\"eventList\": {\"fields\": \"environment.browserDetails.name\", \"filter\": {\"fromIngestTimestamp\": \"2018-10-25T13:22:04-07:00\"}}}";
    let Some(additional) = optional_object(
        body,
        "additionalFields",
        "additionalFields",
        ExportRule::EventList,
        example,
    )?
    else {
        return Ok(None);
    };
    let Some(event_list) = optional_object(
        additional,
        "eventList",
        "additionalFields.eventList",
        ExportRule::EventList,
        "{\"fields\": \"environment.browserDetails.name\", \"filter\": {\"fromIngestTimestamp\": \"2018-10-25T13:22:04-07:00\"}}",
    )?
    else {
        return Ok(None);
    };
    let fields = parse_field_list(
        event_list,
        "fields",
        "additionalFields.eventList.fields",
        ExportRule::EventFields,
        "environment.browserDetails.name,environment.browserDetails.version",
    )?;
    let prefix = "additionalFields.eventList.filter";
    let (from_ingest, to_ingest) = match optional_object(
        event_list,
        "filter",
        prefix,
        ExportRule::EventList,
        "{\"fromIngestTimestamp\": \"2018-10-25T13:22:04-07:00\", \"toIngestTimestamp\": \"2018-10-26T00:00:00Z\"}",
    )? {
        None => (None, None),
        Some(filter) => (
            parse_instant(filter, "fromIngestTimestamp", &format!("{prefix}.fromIngestTimestamp"))?,
            parse_instant(filter, "toIngestTimestamp", &format!("{prefix}.toIngestTimestamp"))?,
        ),
    };
    check_window(
        from_ingest.as_ref(),
        to_ingest.as_ref(),
        &format!("{prefix}.toIngestTimestamp"),
        &format!("{prefix}.fromIngestTimestamp"),
        ExportRule::EventIngestWindow,
    )?;
    Ok(Some(EventListRequest {
        fields,
        from_ingest,
        to_ingest,
    }))
}

/// `destination.datasetId`, or AEP's other spelling `dataSetId`; both may be sent if they agree.
fn parse_dataset_id(destination: &Value) -> Result<DatasetId, ExportRequestError> {
    let fix = "name the target dataset, e.g. \"destination\": {\"datasetId\": \"5b020a27e7040801dedba61b\"}; create one on the profile union schema with POST /data/foundation/catalog/dataSets";
    let mut ids = Vec::new();
    for name in ["datasetId", "dataSetId"] {
        match present(destination, name) {
            None => {}
            Some(Value::String(id)) if !id.trim().is_empty() => ids.push((name, id.trim().to_owned())),
            Some(other) => {
                return Err(ExportRequestError::invalid(
                    ExportRule::DatasetId,
                    format!("destination.{name}"),
                    shown(other),
                    fix,
                ));
            }
        }
    }
    match ids.as_slice() {
        [] => Err(ExportRequestError::missing(
            ExportRule::DatasetId,
            "destination.datasetId",
            fix,
        )),
        [(_, first), (_, second)] if first != second => Err(ExportRequestError::invalid(
            ExportRule::DatasetId,
            "destination.dataSetId",
            second,
            format!("destination.datasetId is '{first}': datasetId and dataSetId are one setting, send one of them"),
        )),
        [(_, id), ..] => Ok(DatasetId::from_string(id.clone())),
    }
}

fn parse_destination(body: &Value) -> Result<(DatasetId, bool), ExportRequestError> {
    let example = "{\"datasetId\": \"5b020a27e7040801dedba61b\", \"segmentPerBatch\": false}";
    let Some(destination) = optional_object(body, "destination", "destination", ExportRule::Destination, example)?
    else {
        return Err(ExportRequestError::missing(
            ExportRule::Destination,
            "destination",
            format!("say where the profiles go, e.g. \"destination\": {example}"),
        ));
    };
    let dataset_id = parse_dataset_id(destination)?;
    let segment_per_batch = optional_bool(
        destination,
        "segmentPerBatch",
        "destination.segmentPerBatch",
        ExportRule::SegmentPerBatch,
    )?
    .unwrap_or(false);
    Ok((dataset_id, segment_per_batch))
}

fn parse_schema_name(body: &Value) -> Result<(), ExportRequestError> {
    let fix =
        format!("exports write XDM Individual Profiles: send \"schema\": {{\"name\": \"{PROFILE_SCHEMA_NAME}\"}}");
    let name = match present(body, "schema") {
        None => {
            return Err(ExportRequestError::missing(
                ExportRule::MissingSchemaName,
                "schema.name",
                fix,
            ));
        }
        Some(schema) if schema.is_object() => present(schema, "name"),
        Some(other) => {
            return Err(ExportRequestError::invalid(
                ExportRule::SchemaName,
                "schema",
                shown(other),
                fix,
            ));
        }
    };
    match name {
        Some(Value::String(name)) if name == PROFILE_SCHEMA_NAME => Ok(()),
        Some(other) => Err(ExportRequestError::invalid(
            ExportRule::SchemaName,
            "schema.name",
            shown(other),
            fix,
        )),
        None => Err(ExportRequestError::missing(
            ExportRule::MissingSchemaName,
            "schema.name",
            fix,
        )),
    }
}

fn parse_evaluation_info(body: &Value) -> Result<Option<bool>, ExportRequestError> {
    let Some(info) = optional_object(
        body,
        "evaluationInfo",
        "evaluationInfo",
        ExportRule::EvaluationInfo,
        "{\"segmentation\": false}",
    )?
    else {
        return Ok(None);
    };
    let segmentation = optional_bool(
        info,
        "segmentation",
        "evaluationInfo.segmentation",
        ExportRule::EvaluationInfo,
    )?
    .unwrap_or(false);
    Ok(Some(segmentation))
}

/// Every path of `list` that `schema` has, or the first it lacks as an error.
fn check_paths(
    list: Option<&FieldList>,
    schema: &XdmSchema,
    field: &str,
    rule: ExportRule,
    union_name: &str,
) -> Result<(), ExportRequestError> {
    let Some(list) = list else { return Ok(()) };
    // One walk of the schema with every path at once: linear in the fields named, where
    // resolving each path alone scans every sibling of every step (issue 12).
    let tree = PathTree::new(&list.paths);
    match tree.missing_in(schema).first() {
        None => Ok(()),
        Some(missing) => Err(ExportRequestError::invalid(
            rule,
            field,
            missing,
            format!(
                "the {union_name} union schema of this sandbox has no field '{missing}'; paths go through objects and arrays \
                 (identities.id), see GET /data/foundation/schemaregistry/tenant/schemas/{} for the fields it has",
                if union_name == "profile" {
                    "_xdm.context.profile__union"
                } else {
                    "_xdm.context.experienceevent__union"
                }
            ),
        )),
    }
}

impl ExportJobRequest {
    /// Validates what the body alone decides; see the module documentation.
    pub fn from_json(body: &Value) -> Result<Self, ExportRequestError> {
        if !body.is_object() {
            return Err(ExportRequestError::invalid(
                ExportRule::Body,
                "body",
                shown(body),
                "send a JSON object with at least destination.datasetId and schema.name",
            ));
        }
        let fields = parse_field_list(
            body,
            "fields",
            "fields",
            ExportRule::Fields,
            "identities.id,personalEmail.address",
        )?;
        let merge_policy = parse_merge_policy(body)?;
        let empty = Value::Object(Map::new());
        let filter = optional_object(
            body,
            "filter",
            "filter",
            ExportRule::Filter,
            "{\"segments\": [{\"segmentId\": \"...\"}], \"emptyProfiles\": false}",
        )?
        .unwrap_or(&empty);
        let segments = parse_segments(filter)?;
        let (qualification_start, qualification_end) = parse_qualification_time(filter)?;
        let from_ingest = parse_instant(filter, "fromIngestTimestamp", "filter.fromIngestTimestamp")?;
        let empty_profiles = optional_bool(
            filter,
            "emptyProfiles",
            "filter.emptyProfiles",
            ExportRule::EmptyProfiles,
        )?
        .unwrap_or(false);
        let event_list = parse_event_list(body)?;
        let (dataset_id, segment_per_batch) = parse_destination(body)?;
        if segment_per_batch && segments.is_empty() {
            return Err(ExportRequestError::invalid(
                ExportRule::SegmentPerBatchWithoutSegments,
                "destination.segmentPerBatch",
                true,
                "segmentPerBatch writes one batch per entry of filter.segments, and there is none: add filter.segments or set segmentPerBatch to false",
            ));
        }
        parse_schema_name(body)?;
        let evaluate_segments = parse_evaluation_info(body)?;
        Ok(Self {
            fields,
            merge_policy,
            segments,
            qualification_start,
            qualification_end,
            from_ingest,
            empty_profiles,
            event_list,
            dataset_id,
            segment_per_batch,
            evaluate_segments,
        })
    }

    /// The target dataset (`None`: not found in the sandbox) must exist and use the profile
    /// union schema, the only shape an export writes.
    pub fn check_destination(&self, dataset: Option<&Dataset>) -> Result<(), ExportRequestError> {
        let field = "destination.datasetId";
        let Some(dataset) = dataset else {
            return Err(ExportRequestError::invalid(
                ExportRule::UnknownDataset,
                field,
                &self.dataset_id,
                "there is no such dataset in this sandbox; create one on the profile union schema with POST /data/foundation/catalog/dataSets \
                 (schemaRef.id https://ns.adobe.com/xdm/context/profile__union)",
            ));
        };
        if dataset.schema_ref.id != PROFILE_UNION_SCHEMA_ID {
            return Err(ExportRequestError::invalid(
                ExportRule::DatasetNotOnProfileUnion,
                field,
                &self.dataset_id,
                format!(
                    "dataset '{}' uses schema {}, but exports write the profile union schema: target a dataset whose schemaRef.id is {PROFILE_UNION_SCHEMA_ID}",
                    dataset.name, dataset.schema_ref.id
                ),
            ));
        }
        Ok(())
    }

    /// `fields` must name paths of the sandbox's profile union schema.
    pub fn check_profile_fields(&self, profile_union: &XdmSchema) -> Result<(), ExportRequestError> {
        check_paths(
            self.fields.as_ref(),
            profile_union,
            "fields",
            ExportRule::FieldNotInProfileUnion,
            "profile",
        )
    }

    /// `eventList.fields` must name paths of the sandbox's ExperienceEvent union schema.
    pub fn check_event_fields(&self, event_union: &XdmSchema) -> Result<(), ExportRequestError> {
        let fields = self.event_list.as_ref().and_then(|e| e.fields.as_ref());
        check_paths(
            fields,
            event_union,
            "additionalFields.eventList.fields",
            ExportRule::EventFieldNotInEventUnion,
            "ExperienceEvent",
        )
    }

    /// Judges the merge policy the request names: `found` is the policy (at the requested
    /// version) if it exists, `latest` its latest version when a version was asked for and not
    /// found. Returns `Ok` for a request that names no policy.
    pub fn check_merge_policy(
        &self,
        found: Option<&MergePolicy>,
        latest: Option<&MergePolicy>,
    ) -> Result<(), ExportRequestError> {
        let Some(choice) = &self.merge_policy else {
            return Ok(());
        };
        if found.is_some() {
            return Ok(());
        }
        match (choice.version, latest) {
            (Some(version), Some(latest)) => Err(ExportRequestError::invalid(
                ExportRule::UnknownMergePolicyVersion,
                "mergePolicy.version",
                version,
                format!(
                    "merge policy '{}' has versions 1 to {}; leave version out for the latest",
                    choice.id, latest.version
                ),
            )),
            _ => Err(ExportRequestError::invalid(
                ExportRule::UnknownMergePolicy,
                "mergePolicy.id",
                &choice.id,
                "there is no such merge policy in this sandbox; list them with GET /data/core/ups/config/mergePolicies, \
                 or leave mergePolicy out to use the sandbox's default",
            )),
        }
    }

    /// The spec the engine runs, with the merge policy the job was resolved to.
    pub fn to_spec(&self, policy: &MergePolicy) -> ExportSpec {
        let millis = |instant: &Option<RequestedInstant>| instant.as_ref().map(|i| i.millis);
        ExportSpec {
            fields: self.fields.as_ref().map(|f| f.paths.clone()),
            segments: self.segments.clone(),
            qualification: QualificationWindow {
                start: millis(&self.qualification_start),
                end: millis(&self.qualification_end),
            },
            from_ingest: millis(&self.from_ingest),
            empty_profiles: self.empty_profiles,
            event_list: self.event_list.as_ref().map(|events| EventListSpec {
                fields: events.fields.as_ref().map(|f| f.paths.clone()),
                from_ingest: millis(&events.from_ingest),
                to_ingest: millis(&events.to_ingest),
            }),
            dataset_id: self.dataset_id.clone(),
            segment_per_batch: self.segment_per_batch,
            merge_policy_id: policy.id.clone(),
            merge_policy_version: policy.version,
            evaluate_segments: self.evaluate_segments.unwrap_or(false),
        }
    }

    /// The job's batches: one per segment entry with `segmentPerBatch`, else one.
    pub fn batch_targets(&self, mut new_id: impl FnMut() -> BatchId) -> Vec<ExportBatchTarget> {
        if self.segment_per_batch {
            (0..self.segments.len())
                .map(|index| ExportBatchTarget {
                    batch_id: new_id(),
                    segment: Some(index),
                })
                .collect()
        } else {
            vec![ExportBatchTarget {
                batch_id: new_id(),
                segment: None,
            }]
        }
    }

    /// The request's fields as the job object echoes them: instants as written, defaults
    /// (`segmentNs`, `status`, `emptyProfiles`) filled in so a reader sees what the job does.
    pub fn echo(&self) -> Value {
        let mut echo = Map::new();
        if let Some(fields) = &self.fields {
            echo.insert("fields".into(), json!(fields.text));
        }
        echo.insert("filter".into(), self.filter_echo());
        if let Some(events) = &self.event_list {
            echo.insert(
                "additionalFields".into(),
                json!({ "eventList": event_list_echo(events) }),
            );
        }
        echo.insert("schema".into(), json!({ "name": PROFILE_SCHEMA_NAME }));
        if let Some(segmentation) = self.evaluate_segments {
            echo.insert("evaluationInfo".into(), json!({ "segmentation": segmentation }));
        }
        Value::Object(echo)
    }

    fn filter_echo(&self) -> Value {
        let mut filter = Map::new();
        if !self.segments.is_empty() {
            filter.insert(
                "segments".into(),
                Value::Array(self.segments.iter().map(segment_echo).collect()),
            );
        }
        if self.qualification_start.is_some() || self.qualification_end.is_some() {
            let mut window = Map::new();
            insert_instant(&mut window, "startTime", &self.qualification_start);
            insert_instant(&mut window, "endTime", &self.qualification_end);
            filter.insert("segmentQualificationTime".into(), Value::Object(window));
        }
        insert_instant(&mut filter, "fromIngestTimestamp", &self.from_ingest);
        filter.insert("emptyProfiles".into(), json!(self.empty_profiles));
        Value::Object(filter)
    }
}

/// One segment entry as the job object shows it (also under `destination.batches`).
pub fn segment_echo(segment: &SegmentFilter) -> Value {
    json!({
        "segmentId": segment.segment_id,
        "segmentNs": segment.segment_ns,
        "status": segment.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    })
}

fn insert_instant(object: &mut Map<String, Value>, name: &str, instant: &Option<RequestedInstant>) {
    if let Some(instant) = instant {
        object.insert(name.into(), json!(instant.text));
    }
}

fn event_list_echo(events: &EventListRequest) -> Value {
    let mut echo = Map::new();
    if let Some(fields) = &events.fields {
        echo.insert("fields".into(), json!(fields.text));
    }
    if events.from_ingest.is_some() || events.to_ingest.is_some() {
        let mut filter = Map::new();
        insert_instant(&mut filter, "fromIngestTimestamp", &events.from_ingest);
        insert_instant(&mut filter, "toIngestTimestamp", &events.to_ingest);
        echo.insert("filter".into(), Value::Object(filter));
    }
    Value::Object(echo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUTORIAL: &str = include_str!("../../dossier/assets/create-export-job.json");

    fn minimal() -> Value {
        json!({"destination": {"datasetId": "5b020a27e7040801dedba61b"}, "schema": {"name": "_xdm.context.profile"}})
    }

    fn with(mut body: Value, pointer: &str, value: Value) -> Value {
        let (parent, name) = pointer.rsplit_once('/').unwrap();
        let mut node = &mut body;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            node = node.as_object_mut().unwrap().entry(part).or_insert_with(|| json!({}));
        }
        node.as_object_mut().unwrap().insert(name.to_owned(), value);
        body
    }

    fn refused(body: &Value) -> ExportRequestError {
        ExportJobRequest::from_json(body).expect_err("should be refused")
    }

    #[test]
    fn the_tutorial_body_parses_with_its_instants_as_epoch_millis() {
        let body: Value = serde_json::from_str(TUTORIAL).unwrap();
        let request = ExportJobRequest::from_json(&body).unwrap();
        assert_eq!(
            request.fields.as_ref().unwrap().paths,
            ["identities.id", "personalEmail.address"]
        );
        assert_eq!(request.segments.len(), 2);
        assert_eq!(request.segments[1].segment_ns, "UPS");
        assert_eq!(request.segments[1].statuses, [MembershipStatus::Exited]);
        assert_eq!(request.qualification_start.as_ref().unwrap().millis, 1_567_296_000_000);
        // -07:00 is compared as an instant: 20:22:04 UTC.
        assert_eq!(request.from_ingest.as_ref().unwrap().millis, 1_540_498_924_000);
        assert!(request.segment_per_batch);
        let mut next = 0;
        let targets = request.batch_targets(|| {
            next += 1;
            BatchId::from_string(format!("b{next}"))
        });
        assert_eq!(
            targets.iter().map(|t| t.segment).collect::<Vec<_>>(),
            [Some(0), Some(1)]
        );
        // The echo keeps the instants as written.
        assert_eq!(
            request.echo()["filter"]["fromIngestTimestamp"],
            "2018-10-25T13:22:04-07:00"
        );
    }

    #[test]
    fn defaults_are_filled_in_and_echoed() {
        let body = with(minimal(), "/filter/segments", json!([{"segmentId": "s1"}]));
        let request = ExportJobRequest::from_json(&body).unwrap();
        assert_eq!(request.segments[0].segment_ns, "ups");
        assert_eq!(request.segments[0].statuses, DEFAULT_SEGMENT_STATUSES);
        assert!(!request.empty_profiles && !request.segment_per_batch);
        assert_eq!(
            request.echo(),
            json!({"filter": {"segments": [{"segmentId": "s1", "segmentNs": "ups", "status": ["realized", "existing"]}],
                              "emptyProfiles": false},
                   "schema": {"name": "_xdm.context.profile"}})
        );
        assert_eq!(request.batch_targets(BatchId::generate).len(), 1);
    }

    #[test]
    fn fields_ignore_spaces_around_commas_and_dataset_id_has_two_spellings() {
        let body = with(minimal(), "/fields", json!(" person.name , identities.id,"));
        let body = with(body, "/destination", json!({"dataSetId": "abc"}));
        let request = ExportJobRequest::from_json(&body).unwrap();
        assert_eq!(request.fields.unwrap().paths, ["person.name", "identities.id"]);
        assert_eq!(request.dataset_id.as_str(), "abc");
    }

    #[test]
    fn each_bad_field_breaks_its_own_rule_and_names_the_field() {
        let cases: Vec<(Value, ExportRule, &str)> = vec![
            (json!([1]), ExportRule::Body, "body"),
            (with(minimal(), "/fields", json!(7)), ExportRule::Fields, "fields"),
            (with(minimal(), "/fields", json!("a b.c")), ExportRule::Fields, "fields"),
            (
                with(minimal(), "/mergePolicy", json!({"version": 1})),
                ExportRule::MergePolicy,
                "mergePolicy.id",
            ),
            (
                with(minimal(), "/mergePolicy", json!({"id": "x", "version": 0})),
                ExportRule::MergePolicy,
                "mergePolicy.version",
            ),
            (with(minimal(), "/filter", json!("all")), ExportRule::Filter, "filter"),
            (
                with(minimal(), "/filter/segments", json!({})),
                ExportRule::Segments,
                "filter.segments",
            ),
            (
                with(minimal(), "/filter/segments", json!([{"segmentNs": "ups"}])),
                ExportRule::SegmentId,
                "filter.segments[0].segmentId",
            ),
            (
                with(
                    minimal(),
                    "/filter/segments",
                    json!([{"segmentId": "s", "segmentNs": 3}]),
                ),
                ExportRule::SegmentNamespace,
                "filter.segments[0].segmentNs",
            ),
            (
                with(minimal(), "/filter/segments", json!([{"segmentId": "s", "status": []}])),
                ExportRule::SegmentStatusList,
                "filter.segments[0].status",
            ),
            (
                with(
                    minimal(),
                    "/filter/segments",
                    json!([{"segmentId": "s", "status": ["gone"]}]),
                ),
                ExportRule::UnknownSegmentStatus,
                "filter.segments[0].status[0]",
            ),
            (
                with(minimal(), "/filter/fromIngestTimestamp", json!("2018-10-25 13:22")),
                ExportRule::Timestamp,
                "filter.fromIngestTimestamp",
            ),
            (
                with(
                    minimal(),
                    "/filter/segmentQualificationTime",
                    json!({"startTime": "2019-09-02T00:00:00Z", "endTime": "2019-09-01T00:00:00Z"}),
                ),
                ExportRule::QualificationWindow,
                "filter.segmentQualificationTime.endTime",
            ),
            (
                with(minimal(), "/filter/emptyProfiles", json!("yes")),
                ExportRule::EmptyProfiles,
                "filter.emptyProfiles",
            ),
            (
                with(minimal(), "/additionalFields/eventList", json!([])),
                ExportRule::EventList,
                "additionalFields.eventList",
            ),
            (
                with(minimal(), "/additionalFields/eventList/fields", json!(",")),
                ExportRule::EventFields,
                "additionalFields.eventList.fields",
            ),
            (
                with(
                    minimal(),
                    "/additionalFields/eventList/filter",
                    json!({"fromIngestTimestamp": "2020-01-02T00:00:00Z", "toIngestTimestamp": "2020-01-01T00:00:00Z"}),
                ),
                ExportRule::EventIngestWindow,
                "additionalFields.eventList.filter.toIngestTimestamp",
            ),
            (
                json!({"schema": {"name": "_xdm.context.profile"}}),
                ExportRule::Destination,
                "destination",
            ),
            (
                with(minimal(), "/destination", json!({"segmentPerBatch": false})),
                ExportRule::DatasetId,
                "destination.datasetId",
            ),
            (
                with(minimal(), "/destination/segmentPerBatch", json!(1)),
                ExportRule::SegmentPerBatch,
                "destination.segmentPerBatch",
            ),
            (
                with(minimal(), "/destination/segmentPerBatch", json!(true)),
                ExportRule::SegmentPerBatchWithoutSegments,
                "destination.segmentPerBatch",
            ),
            (
                with(minimal(), "/schema/name", json!("_xdm.context.experienceevent")),
                ExportRule::SchemaName,
                "schema.name",
            ),
            (
                with(minimal(), "/evaluationInfo", json!({"segmentation": "maybe"})),
                ExportRule::EvaluationInfo,
                "evaluationInfo.segmentation",
            ),
        ];
        for (body, rule, field) in cases {
            let error = refused(&body);
            assert_eq!((error.rule, error.error.field.as_str()), (rule, field), "{body}");
            assert!(!error.error.fix.is_empty());
        }
    }

    #[test]
    fn missing_schema_is_refused() {
        let mut body = minimal();
        body.as_object_mut().unwrap().remove("schema");
        let error = refused(&body);
        assert_eq!((error.rule, error.error.value), (ExportRule::MissingSchemaName, None));
    }

    #[test]
    fn fields_are_checked_against_the_union_through_arrays() {
        let union = XdmSchema::builtin_profile();
        let ok = with(minimal(), "/fields", json!("identities.id,personalEmail.address"));
        ExportJobRequest::from_json(&ok)
            .unwrap()
            .check_profile_fields(&union)
            .unwrap();
        let bad = with(minimal(), "/fields", json!("identities.id,loyalty.points"));
        let error = ExportJobRequest::from_json(&bad)
            .unwrap()
            .check_profile_fields(&union)
            .unwrap_err();
        assert_eq!(error.rule, ExportRule::FieldNotInProfileUnion);
        assert_eq!(error.error.value.as_deref(), Some("loyalty.points"));
    }
}
