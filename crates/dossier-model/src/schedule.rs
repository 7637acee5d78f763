//! Schedules (`/data/core/ups/config/schedules`): a Quartz cron expression that starts a segment
//! job (`batch_segmentation`, AEP's type) or an export job (`export`, Dossier's own) at each tick,
//! and the validation of the requests that create, patch and list them.
//!
//! A body becomes a [`ScheduleSpec`] (what the user chose); the store keeps a [`Schedule`] (the
//! spec, its tenant and times, and `next_run_at`, the tick the workers wait for). Ticks are
//! computed in UTC by [`Cron`], which reads Quartz's syntax with `croner`.

use std::str::FromStr;

use croner::parser::{CronParser, Seconds};
use serde_json::{Map, Value, json};

use crate::ValidationError;
use crate::export_request::ExportJobRequest;
use crate::listing::{PageSize, parse_limit, parse_offset};
use crate::patch::{self, OperationRules, each_operation, set_at};
use crate::tenancy::{OrgId, SandboxName, Tenant};
use crate::time::{EpochMillis, EpochSeconds};
use crate::validation::{present, shown};

/// `properties.segments` meaning every segment definition of the sandbox whose batch evaluation
/// is on (`evaluationInfo.batch.enabled`), as AEP's `["*"]`.
pub const ALL_SEGMENTS: &str = "*";
/// The value of `filter.fromIngestTimestamp` in a carried export body that each run replaces
/// with the start of the schedule's previous successful export (or drops, on the first run).
pub const LAST_RUN: &str = "lastRun";
/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// What a schedule starts at each tick.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::AsRefStr, strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum ScheduleType {
    /// AEP's: a segment job evaluating `properties.segments`.
    BatchSegmentation,
    /// Dossier's: the export job body in `properties.exportJob`.
    Export,
}

impl ScheduleType {
    pub fn as_str(&self) -> &str {
        self.as_ref()
    }
}

/// Whether the workers run a schedule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::AsRefStr, strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum ScheduleState {
    Active,
    Inactive,
}

impl ScheduleState {
    pub fn as_str(&self) -> &str {
        self.as_ref()
    }
}

/// A parsed Quartz cron expression: seconds, minutes, hours, day of month, month, day of week
/// and an optional year; `?`, ranges, steps (`0/10` too), `L`, `W`, `#` and the names of days
/// (`MON-FRI`) and months; days of week numbered as Quartz does (1 = Sunday). Ticks are in UTC.
#[derive(Debug, Clone)]
pub struct Cron(croner::Cron);

impl Cron {
    /// Parses `text`; the error names `field` and shows an example.
    pub fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        let parser = CronParser::builder()
            .seconds(Seconds::Required)
            .alternative_weekdays(true)
            .sloppy_ranges(true)
            .build();
        parser.parse(text.trim()).map(Self).map_err(|error| {
            ValidationError::invalid(
                field,
                text,
                format!(
                    "{error}. Write a Quartz cron expression with the seconds field first: \
                     \"0 0 1 * * ?\" (01:00 UTC every day), \"*/30 * * * * ?\" (every 30 seconds), \
                     \"0 15 10 ? * MON-FRI\" (10:15 UTC on weekdays)"
                ),
            )
        })
    }

    /// The first tick strictly after `after`, or `None` when the expression never fires again
    /// (a year in the past).
    pub fn next_after(&self, after: EpochMillis) -> Option<EpochMillis> {
        let start = jiff::Timestamp::from_millisecond(after)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC);
        self.0
            .find_next_occurrence(&start, false)
            .ok()
            .map(|next| next.timestamp().as_millisecond())
    }
}

/// What a user chooses about a schedule: a validated create body, or a PATCH applied to one.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub name: String,
    pub description: Option<String>,
    pub kind: ScheduleType,
    /// `properties.segments`: definition ids, or `["*"]`; empty for an export schedule.
    pub segments: Vec<String>,
    /// `properties.exportJob`: the export job body posted at each tick (type `export` only).
    pub export_job: Option<Value>,
    /// The Quartz cron expression as written.
    pub cron: String,
    pub state: ScheduleState,
}

/// One schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: String,
    pub org: OrgId,
    pub sandbox: SandboxName,
    pub spec: ScheduleSpec,
    pub created: EpochMillis,
    /// Strictly increases with every change: the compare-and-set of a PATCH.
    pub updated: EpochMillis,
    /// The tick the workers wait for; `None` while inactive (or when the expression never fires
    /// again). Moved by a compare-and-set when a worker claims the tick.
    pub next_run_at: Option<EpochMillis>,
}

impl Schedule {
    /// A new schedule with its first tick after `now`.
    pub fn new(id: String, tenant: &Tenant, spec: ScheduleSpec, now: EpochMillis) -> Self {
        let next_run_at = first_tick(&spec, now);
        Self {
            id,
            org: tenant.org.clone(),
            sandbox: tenant.sandbox.clone(),
            spec,
            created: now,
            updated: now,
            next_run_at,
        }
    }

    pub fn tenant(&self) -> Tenant {
        Tenant {
            org: self.org.clone(),
            sandbox: self.sandbox.clone(),
        }
    }

    /// The schedule after a change to `spec`: the next tick is computed again when the
    /// expression or the state changed, kept otherwise.
    pub fn changed(&self, spec: ScheduleSpec, now: EpochMillis) -> Self {
        let next_run_at = if spec.cron == self.spec.cron && spec.state == self.spec.state {
            self.next_run_at
        } else {
            first_tick(&spec, now)
        };
        Self {
            spec,
            updated: now.max(self.updated + 1),
            next_run_at,
            ..self.clone()
        }
    }

    /// The tick after the one a worker claims at `now`: the first one after `now`, so that
    /// ticks missed while no node ran start one job, not one per missed tick.
    pub fn following_tick(&self, now: EpochMillis) -> Option<EpochMillis> {
        first_tick(&self.spec, now)
    }
}

/// The first tick after `now` of an active spec.
fn first_tick(spec: &ScheduleSpec, now: EpochMillis) -> Option<EpochMillis> {
    if spec.state != ScheduleState::Active {
        return None;
    }
    Cron::parse("schedule", &spec.cron).ok()?.next_after(now)
}

fn epoch_seconds(millis: EpochMillis) -> EpochSeconds {
    millis.div_euclid(1000)
}

fn parse_name(body: &Value) -> Result<String, ValidationError> {
    let fix = format!(
        "give the schedule a name of 1 to {MAX_NAME_CHARS} characters, e.g. \"name\": \"Nightly segmentation\""
    );
    match present(body, "name") {
        Some(Value::String(name)) if !name.trim().is_empty() && name.chars().count() <= MAX_NAME_CHARS => {
            Ok(name.clone())
        }
        Some(other) => Err(ValidationError::invalid("name", shown(other), fix)),
        None => Err(ValidationError::missing("name", fix)),
    }
}

fn parse_description(body: &Value) -> Result<Option<String>, ValidationError> {
    match present(body, "description") {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(ValidationError::invalid(
            "description",
            shown(other),
            "the description is a string",
        )),
    }
}

fn parse_type(body: &Value) -> Result<ScheduleType, ValidationError> {
    let fix = "use \"batch_segmentation\" (a segment job at each tick) or \"export\" (Dossier's: the export job \
               in properties.exportJob at each tick)";
    match present(body, "type") {
        Some(Value::String(kind)) => {
            ScheduleType::from_str(kind.trim()).map_err(|_| ValidationError::invalid("type", kind, fix))
        }
        Some(other) => Err(ValidationError::invalid("type", shown(other), fix)),
        None => Err(ValidationError::missing("type", fix)),
    }
}

fn parse_state(body: &Value) -> Result<ScheduleState, ValidationError> {
    parse_state_value(present(body, "state")).map(|state| state.unwrap_or(ScheduleState::Inactive))
}

/// `state`: absent is inactive, as AEP creates schedules that are turned on later by a PATCH.
fn parse_state_value(value: Option<&Value>) -> Result<Option<ScheduleState>, ValidationError> {
    let fix = "use \"active\" (the workers run it) or \"inactive\" (kept, not run)";
    match value {
        None => Ok(None),
        Some(Value::String(state)) => ScheduleState::from_str(state.trim())
            .map(Some)
            .map_err(|_| ValidationError::invalid("state", state, fix)),
        Some(other) => Err(ValidationError::invalid("state", shown(other), fix)),
    }
}

fn parse_cron(body: &Value) -> Result<String, ValidationError> {
    match present(body, "schedule") {
        Some(Value::String(text)) => Cron::parse("schedule", text).map(|_| text.trim().to_owned()),
        Some(other) => Err(ValidationError::invalid(
            "schedule",
            shown(other),
            "the schedule is a Quartz cron expression as a string, e.g. \"0 0 1 * * ?\"",
        )),
        None => Err(ValidationError::missing(
            "schedule",
            "say when it runs with a Quartz cron expression, e.g. \"schedule\": \"0 0 1 * * ?\" (01:00 UTC daily)",
        )),
    }
}

/// `properties.segments`: a non-empty array of definition ids, or `["*"]`.
fn parse_segments(properties: &Value) -> Result<Vec<String>, ValidationError> {
    let field = "properties.segments";
    let fix = "list the segment definition ids to evaluate, or [\"*\"] for every definition with batch evaluation on";
    let items = match present(properties, "segments") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(other) => return Err(ValidationError::invalid(field, shown(other), fix)),
        None => return Err(ValidationError::missing(field, fix)),
    };
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(str::trim) {
            Some(id) if !id.is_empty() => {
                if !ids.iter().any(|known| known == id) {
                    ids.push(id.to_owned());
                }
            }
            _ => return Err(ValidationError::invalid(format!("{field}[{i}]"), shown(item), fix)),
        }
    }
    if ids.len() > 1 && ids.iter().any(|id| id == ALL_SEGMENTS) {
        return Err(ValidationError::invalid(
            field,
            Value::from(ids).to_string(),
            "\"*\" already means every definition: send [\"*\"] alone, or only ids",
        ));
    }
    Ok(ids)
}

/// The carried body with `lastRun` replaced by `last_run` (RFC 3339), or the field dropped when
/// there was no previous successful run: the body an export schedule posts.
pub fn resolve_last_run(body: &Value, last_run: Option<EpochMillis>) -> Value {
    let mut body = body.clone();
    let Some(filter) = body.get_mut("filter").and_then(Value::as_object_mut) else {
        return body;
    };
    if filter.get("fromIngestTimestamp").and_then(Value::as_str) != Some(LAST_RUN) {
        return body;
    }
    match last_run.and_then(|millis| jiff::Timestamp::from_millisecond(millis).ok()) {
        Some(instant) => {
            filter.insert("fromIngestTimestamp".into(), json!(instant.to_string()));
        }
        None => {
            filter.remove("fromIngestTimestamp");
        }
    }
    body
}

/// `properties.exportJob`: an export job body as POST /export/jobs takes it, checked now (with
/// `lastRun` standing for a time) so a schedule never carries a body every tick would refuse.
fn parse_export_job(properties: &Value) -> Result<Value, ValidationError> {
    let field = "properties.exportJob";
    let fix = "carry the body of an export job, as POST /data/core/ups/export/jobs takes it, e.g. {\"fields\": \
               \"identityMap\", \"destination\": {\"datasetId\": \"<id>\"}, \"schema\": {\"name\": \
               \"_xdm.context.profile\"}, \"filter\": {\"fromIngestTimestamp\": \"lastRun\"}}";
    let body = match present(properties, "exportJob") {
        Some(body @ Value::Object(_)) => body,
        Some(other) => return Err(ValidationError::invalid(field, shown(other), fix)),
        None => return Err(ValidationError::missing(field, fix)),
    };
    ExportJobRequest::from_json(&resolve_last_run(body, Some(0))).map_err(|refused| {
        let error = refused.error;
        ValidationError {
            field: format!("{field}.{}", error.field),
            ..error
        }
    })?;
    Ok(body.clone())
}

/// `properties` by type: segments for `batch_segmentation`; the export body for `export`.
fn parse_properties(body: &Value, kind: ScheduleType) -> Result<(Vec<String>, Option<Value>), ValidationError> {
    let properties = match present(body, "properties") {
        Some(properties @ Value::Object(_)) => properties,
        Some(other) => {
            return Err(ValidationError::invalid(
                "properties",
                shown(other),
                "properties is an object: {\"segments\": [\"*\"]} for batch_segmentation, {\"exportJob\": {...}} for export",
            ));
        }
        None if kind == ScheduleType::Export => {
            return Err(ValidationError::missing(
                "properties.exportJob",
                "an export schedule carries the export job body in properties.exportJob",
            ));
        }
        None => {
            return Err(ValidationError::missing(
                "properties.segments",
                "list the segment definition ids to evaluate, or [\"*\"] for every one",
            ));
        }
    };
    match kind {
        ScheduleType::BatchSegmentation => Ok((parse_segments(properties)?, None)),
        ScheduleType::Export => Ok((Vec::new(), Some(parse_export_job(properties)?))),
    }
}

impl ScheduleSpec {
    /// Validates a create body. Fields the server keeps (`id`, `imsOrgId`, `sandbox`,
    /// `createEpoch`, `updateEpoch`) and unknown ones are ignored, so an object read with GET can
    /// be sent back.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                shown(body),
                "send a JSON object with name, type, properties, schedule and state, e.g. {\"name\": \"Nightly\", \
                 \"type\": \"batch_segmentation\", \"properties\": {\"segments\": [\"*\"]}, \"schedule\": \
                 \"0 0 1 * * ?\", \"state\": \"active\"}",
            ));
        }
        let kind = parse_type(body)?;
        let name = parse_name(body)?;
        let description = parse_description(body)?;
        let (segments, export_job) = parse_properties(body, kind)?;
        Ok(Self {
            name,
            description,
            kind,
            segments,
            export_job,
            cron: parse_cron(body)?,
            state: parse_state(body)?,
        })
    }

    /// The spec as a request body; `from_json(&s.to_json()) == Ok(s)`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "name": self.name,
            "type": self.kind.as_str(),
            "properties": self.properties_json(),
            "schedule": self.cron,
            "state": self.state.as_str(),
        });
        if let Some(description) = &self.description {
            body["description"] = json!(description);
        }
        body
    }

    fn properties_json(&self) -> Value {
        match (&self.export_job, self.kind) {
            (Some(export_job), ScheduleType::Export) => json!({ "exportJob": export_job }),
            _ => json!({ "segments": self.segments }),
        }
    }
}

/// A schedule as AEP shows it (times in epoch seconds), with Dossier's `nextRunEpoch`.
pub fn schedule_json(schedule: &Schedule, sandbox: Value) -> Value {
    let mut body = schedule.spec.to_json();
    let object = body.as_object_mut().expect("to_json builds an object");
    let mut shown = Map::new();
    shown.insert("id".into(), json!(schedule.id));
    shown.insert("imsOrgId".into(), json!(schedule.org));
    shown.insert("sandbox".into(), sandbox);
    shown.append(object);
    shown.insert("createEpoch".into(), json!(epoch_seconds(schedule.created)));
    shown.insert("updateEpoch".into(), json!(epoch_seconds(schedule.updated)));
    shown.insert(
        "nextRunEpoch".into(),
        schedule.next_run_at.map_or(Value::Null, |t| json!(epoch_seconds(t))),
    );
    Value::Object(shown)
}

// ---- PATCH ----------------------------------------------------------------------------------

/// Paths a PATCH operation may set, dotted; operations write them with slashes (AEP documents
/// `/state` and `/schedule`).
const PATCHABLE_PATHS: &[&str] = &[
    "name",
    "description",
    "state",
    "schedule",
    "properties",
    "properties.segments",
    "properties.exportJob",
];

/// A validated PATCH body: AEP's JSON Patch operations, `[{"op": "add", "path": "/state",
/// "value": "active"}]` (`add` and `replace` set a value; `remove` only the description).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulePatch(Vec<(String, Value)>);

/// What a schedule's JSON Patch operations may do.
const OPERATION_RULES: OperationRules = OperationRules {
    example: "e.g. [{\"op\": \"add\", \"path\": \"/state\", \"value\": \"active\"}]",
    paths: PATCHABLE_PATHS,
    removable: &["description"],
    remove_fix: "only /description can be removed; replace the others, or set /state to inactive to stop a schedule",
};

fn parse_operation(operation: &Value, prefix: &str) -> Result<(String, Value), ValidationError> {
    patch::parse_operation(operation, prefix, &OPERATION_RULES)
}

impl SchedulePatch {
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        match body {
            Value::Array(items) if items.is_empty() => Err(ValidationError::invalid(
                "body",
                "[]",
                "send at least one operation, e.g. [{\"op\": \"add\", \"path\": \"/state\", \"value\": \"active\"}]",
            )),
            Value::Array(items) => each_operation(items, parse_operation).map(Self),
            Value::Object(object) if object.contains_key("op") => Ok(Self(vec![parse_operation(body, "")?])),
            other => Err(ValidationError::invalid(
                "body",
                shown(other),
                "send JSON Patch operations, e.g. [{\"op\": \"add\", \"path\": \"/state\", \"value\": \"active\"}]",
            )),
        }
    }

    /// The spec after the operations, validated as a create body is (the type cannot change).
    /// A `null` (a removed description) reads as absent.
    pub fn apply(&self, current: &ScheduleSpec) -> Result<ScheduleSpec, ValidationError> {
        let mut body = current.to_json();
        for (path, value) in &self.0 {
            set_at(&mut body, path, value.clone());
        }
        ScheduleSpec::from_json(&body)
    }
}

// ---- listing --------------------------------------------------------------------------------

/// AEP's page sizes for schedules: 100 by default.
pub const SCHEDULE_PAGE: PageSize = PageSize {
    default: 100,
    max: 1000,
};

/// One page of the listing: `start` schedules skipped (oldest first), `limit` shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleListQuery {
    pub start: u64,
    pub limit: u32,
}

impl ScheduleListQuery {
    pub fn from_params(params: &std::collections::HashMap<String, String>) -> Result<Self, ValidationError> {
        Ok(Self {
            limit: parse_limit("limit", params.get("limit").map(String::as_str), SCHEDULE_PAGE)?,
            start: parse_offset("start", params.get("start").map(String::as_str), "schedules")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> EpochMillis {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn segmentation() -> Value {
        json!({"name": "Nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
               "schedule": "0 0 1 * * ?", "state": "active"})
    }

    #[test]
    fn quartz_expressions_tick_in_utc() {
        let cases = [
            ("0 0 1 * * ?", "2026-12-06T23:00:00Z", "2026-12-07T01:00:00Z"),
            ("*/2 * * * * ?", "2026-12-06T23:00:00Z", "2026-12-06T23:00:02Z"),
            ("0 15 10 ? * MON-FRI", "2026-12-05T00:00:00Z", "2026-12-07T10:15:00Z"),
            // Quartz numbers days from Sunday = 1: 2 is Monday.
            ("0 0 12 ? * 2", "2026-12-05T00:00:00Z", "2026-12-07T12:00:00Z"),
            ("0 0/30 8-9 * * ?", "2026-12-06T08:10:00Z", "2026-12-06T08:30:00Z"),
            ("0 0 0 L * ?", "2026-12-06T00:00:00Z", "2026-12-31T00:00:00Z"),
            ("0 0 0 ? JAN 6#2", "2026-12-06T00:00:00Z", "2027-01-08T00:00:00Z"),
        ];
        for (text, from, expected) in cases {
            let cron = Cron::parse("schedule", text).unwrap();
            assert_eq!(cron.next_after(at(from)), Some(at(expected)), "{text}");
        }
    }

    #[test]
    fn bad_expressions_name_the_field() {
        for text in ["0 0 1 * *", "every day", "0 0 25 * * ?", "0 0 1 * * FOO"] {
            let mut body = segmentation();
            body["schedule"] = json!(text);
            let error = ScheduleSpec::from_json(&body).unwrap_err();
            assert_eq!((error.field.as_str(), error.value.as_deref()), ("schedule", Some(text)));
            assert!(error.fix.contains("0 0 1 * * ?"), "{}", error.fix);
        }
    }

    #[test]
    fn bodies_round_trip_and_refuse_by_field() {
        let spec = ScheduleSpec::from_json(&segmentation()).unwrap();
        assert_eq!(spec.segments, vec!["*"]);
        assert_eq!(ScheduleSpec::from_json(&spec.to_json()).unwrap(), spec);
        let cases = [
            ("/type", json!("streaming"), "type"),
            ("/name", json!(""), "name"),
            ("/state", json!("paused"), "state"),
            ("/properties/segments", json!([]), "properties.segments"),
            ("/properties/segments", json!(["*", "a"]), "properties.segments"),
            ("/properties/segments", json!(["a", 3]), "properties.segments[1]"),
        ];
        for (pointer, value, field) in cases {
            let mut body = segmentation();
            *body.pointer_mut(pointer).unwrap() = value;
            assert_eq!(ScheduleSpec::from_json(&body).unwrap_err().field, field, "{pointer}");
        }
    }

    #[test]
    fn export_schedules_carry_a_checked_body_and_resolve_last_run() {
        let export = json!({"fields": "identityMap", "destination": {"datasetId": "d1"},
                            "schema": {"name": "_xdm.context.profile"},
                            "filter": {"fromIngestTimestamp": "lastRun"}});
        let body = json!({"name": "Daily export", "type": "export", "schedule": "0 0 2 * * ?",
                          "properties": {"exportJob": export}});
        let spec = ScheduleSpec::from_json(&body).unwrap();
        assert_eq!(spec.state, ScheduleState::Inactive);
        assert_eq!(spec.export_job.as_ref(), Some(&export));
        let first = resolve_last_run(&export, None);
        assert!(first["filter"].get("fromIngestTimestamp").is_none());
        let next = resolve_last_run(&export, Some(at("2026-12-06T23:00:00Z")));
        assert_eq!(next["filter"]["fromIngestTimestamp"], "2026-12-06T23:00:00Z");
        let mut bad = body.clone();
        bad["properties"]["exportJob"]["destination"] = json!({});
        assert_eq!(
            ScheduleSpec::from_json(&bad).unwrap_err().field,
            "properties.exportJob.destination.datasetId"
        );
    }

    #[test]
    fn patches_set_state_and_schedule_and_move_the_next_tick() {
        let tenant = Tenant {
            org: OrgId::parse("ACME@AdobeOrg").unwrap(),
            sandbox: SandboxName::parse("prod").unwrap(),
        };
        let mut spec = ScheduleSpec::from_json(&segmentation()).unwrap();
        spec.state = ScheduleState::Inactive;
        let now = at("2026-12-06T23:00:00Z");
        let schedule = Schedule::new("s1".into(), &tenant, spec, now);
        assert_eq!(schedule.next_run_at, None);
        let patch = SchedulePatch::from_json(&json!([
            {"op": "add", "path": "/state", "value": "active"},
            {"op": "replace", "path": "/schedule", "value": "0 30 * * * ?"}
        ]))
        .unwrap();
        let changed = schedule.changed(patch.apply(&schedule.spec).unwrap(), now);
        assert_eq!(changed.next_run_at, Some(at("2026-12-06T23:30:00Z")));
        assert!(changed.updated > schedule.updated);
        // A missed tick is claimed once: the following tick is after now, not after the miss.
        assert_eq!(
            changed.following_tick(at("2026-12-07T05:10:00Z")),
            Some(at("2026-12-07T05:30:00Z"))
        );
        for (body, field) in [
            (json!([]), "body"),
            (json!([{"op": "add", "path": "/id", "value": "x"}]), "[0].path"),
            (json!([{"op": "remove", "path": "/state"}]), "[0].op"),
            (json!([{"op": "add", "path": "/state"}]), "[0].value"),
        ] {
            assert_eq!(SchedulePatch::from_json(&body).unwrap_err().field, field);
        }
        let bad = SchedulePatch::from_json(&json!([{"op": "add", "path": "/state", "value": "on"}])).unwrap();
        assert_eq!(bad.apply(&schedule.spec).unwrap_err().field, "state");
    }
}
