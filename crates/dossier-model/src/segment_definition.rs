//! Segment definitions — a named PQL condition over profiles — and the validation of the requests
//! that create, patch, list and bulk-get them (`/data/core/ups/segment/definitions`).
//!
//! A request body becomes a [`SegmentDefinitionSpec`]: what the user chose, with the PQL still
//! text. The API then parses the text against the sandbox's union schemas ([`crate::pql`]) and
//! resolves the merge policy, which need the store, and stores a [`SegmentDefinition`].
//! Evaluation re-parses the stored text against the schemas of its own time.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};
use strum::VariantNames;

use crate::ValidationError;
use crate::ids::{MergePolicyId, SegmentDefinitionId};
use crate::listing::{Direction, MAX_OFFSET, PageSize, bool_param, parse_limit, parse_offset, sort_field};
use crate::patch::{self, OperationRules, each_operation, set_at};
use crate::pql::{self, Expr, PqlError, PqlSchemas};
use crate::schema::{PROFILE_CLASS_ID, PROFILE_SCHEMA_NAME};
use crate::tenancy::{OrgId, SandboxName, Tenant};
use crate::time::{EpochMillis, EpochSeconds};
use crate::validation::{lenient_bool, present, shown};

/// `expression.type`: the only language.
pub const EXPRESSION_TYPE: &str = "PQL";
/// `expression.format`: PQL as text, the only format accepted.
pub const EXPRESSION_FORMAT: &str = "pql/text";
/// The longest `expression.value`, in bytes: far beyond any hand-written or generated condition.
pub const MAX_EXPRESSION_BYTES: usize = 65_536;

/// What a user chooses about a segment definition: a validated create body, or the result of a
/// PATCH applied to the current definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDefinitionSpec {
    pub name: String,
    pub description: Option<String>,
    /// Always [`PROFILE_SCHEMA_NAME`]: definitions select profiles.
    pub schema_name: String,
    /// `expression.value`: PQL text, not yet checked against the schemas.
    pub expression: String,
    /// `None`: the sandbox's default merge policy, resolved when the definition is stored.
    pub merge_policy_id: Option<MergePolicyId>,
    /// `evaluationInfo.batch.enabled`: whether scheduled evaluation of all definitions includes
    /// this one. (Segment jobs evaluate any definition they name.)
    pub batch_enabled: bool,
    /// How long a qualification stays valid, when the user says.
    pub ttl_in_days: Option<u32>,
}

/// One segment definition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDefinition {
    pub id: SegmentDefinitionId,
    pub org: OrgId,
    pub sandbox: SandboxName,
    pub name: String,
    pub description: Option<String>,
    pub schema_name: String,
    pub expression: String,
    /// The merge policy that builds the profiles it is evaluated on.
    pub merge_policy_id: MergePolicyId,
    pub batch_enabled: bool,
    pub ttl_in_days: Option<u32>,
    /// The audiences its expression names with `inSegment`, in text order.
    pub dependencies: Vec<String>,
    pub creation_time: EpochMillis,
    /// Strictly increases with every change, so that clients can tell versions apart.
    pub update_time: EpochMillis,
}

impl SegmentDefinition {
    /// A new definition from a checked spec.
    pub fn new(id: SegmentDefinitionId, tenant: &Tenant, checked: CheckedSpec, now: EpochMillis) -> Self {
        let CheckedSpec {
            spec,
            merge_policy_id,
            dependencies,
        } = checked;
        Self {
            id,
            org: tenant.org.clone(),
            sandbox: tenant.sandbox.clone(),
            name: spec.name,
            description: spec.description,
            schema_name: spec.schema_name,
            expression: spec.expression,
            merge_policy_id,
            batch_enabled: spec.batch_enabled,
            ttl_in_days: spec.ttl_in_days,
            dependencies,
            creation_time: now,
            update_time: now,
        }
    }

    pub fn tenant(&self) -> Tenant {
        Tenant {
            org: self.org.clone(),
            sandbox: self.sandbox.clone(),
        }
    }

    /// `updateEpoch`: the update time in seconds, as AEP shows it.
    pub fn update_epoch(&self) -> EpochSeconds {
        self.update_time.div_euclid(1000)
    }

    /// What the user chose, with the merge policy as resolved.
    pub fn spec(&self) -> SegmentDefinitionSpec {
        SegmentDefinitionSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            schema_name: self.schema_name.clone(),
            expression: self.expression.clone(),
            merge_policy_id: Some(self.merge_policy_id.clone()),
            batch_enabled: self.batch_enabled,
            ttl_in_days: self.ttl_in_days,
        }
    }

    /// The definition after a change to `checked`; `update_time` moves past the current one
    /// even when the clock has not.
    pub fn changed(&self, checked: CheckedSpec, now: EpochMillis) -> Self {
        Self {
            creation_time: self.creation_time,
            update_time: now.max(self.update_time + 1),
            ..Self::new(self.id.clone(), &self.tenant(), checked, now)
        }
    }

    /// Whether `checked` says exactly what this definition says (a PATCH that changes nothing).
    /// The merge policy is compared as resolved: naming the default is the same as leaving it out.
    pub fn is_same(&self, checked: &CheckedSpec) -> bool {
        let unresolved = |spec: SegmentDefinitionSpec| SegmentDefinitionSpec {
            merge_policy_id: None,
            ..spec
        };
        unresolved(self.spec()) == unresolved(checked.spec.clone()) && self.merge_policy_id == checked.merge_policy_id
    }
}

/// A spec whose expression parsed against the union schemas and whose merge policy exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSpec {
    pub spec: SegmentDefinitionSpec,
    pub merge_policy_id: MergePolicyId,
    pub dependencies: Vec<String>,
}

impl CheckedSpec {
    /// Checks `spec`'s expression against `schemas`; `merge_policy_id` is the policy the caller
    /// resolved (the one named, after checking it exists, or the sandbox's default).
    pub fn check(
        spec: SegmentDefinitionSpec,
        schemas: PqlSchemas<'_>,
        merge_policy_id: MergePolicyId,
    ) -> Result<(Self, Expr), PqlError> {
        let expr = pql::parse(&spec.expression, schemas)?;
        let dependencies = expr.segment_dependencies();
        Ok((
            Self {
                spec,
                merge_policy_id,
                dependencies,
            },
            expr,
        ))
    }
}

/// The message for a refused expression: `Invalid PQL in expression.value at line 1, column 17:
/// 'foo' is not supported; ...`.
pub fn pql_error_message(error: &PqlError) -> String {
    format!("Invalid PQL in expression.value {error}")
}

fn parse_name(body: &Value) -> Result<String, ValidationError> {
    let example = "e.g. \"name\": \"People who ordered in the last 30 days\"";
    match present(body, "name") {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(name.clone()),
        Some(other) => Err(ValidationError::invalid(
            "name",
            shown(other),
            format!("give the segment definition a non-empty name, {example}"),
        )),
        None => Err(ValidationError::missing(
            "name",
            format!("give the segment definition a name, {example}"),
        )),
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

/// `schema`: `{name: "_xdm.context.profile"}` or `{id: "<profile class id>"}` (AEP accepts
/// either); absent means the profile class, the only one definitions select from.
fn parse_schema(body: &Value) -> Result<String, ValidationError> {
    let fix = format!("segment definitions select profiles: use {{\"name\": \"{PROFILE_SCHEMA_NAME}\"}}");
    let Some(schema) = present(body, "schema") else {
        return Ok(PROFILE_SCHEMA_NAME.to_owned());
    };
    if !schema.is_object() {
        return Err(ValidationError::invalid("schema", shown(schema), fix));
    }
    match (present(schema, "name"), present(schema, "id")) {
        (Some(Value::String(name)), _) if name == PROFILE_SCHEMA_NAME => Ok(name.clone()),
        (Some(other), _) => Err(ValidationError::invalid("schema.name", shown(other), fix)),
        (None, Some(Value::String(id))) if id == PROFILE_CLASS_ID => Ok(PROFILE_SCHEMA_NAME.to_owned()),
        (None, Some(other)) => Err(ValidationError::invalid("schema.id", shown(other), fix)),
        (None, None) => Ok(PROFILE_SCHEMA_NAME.to_owned()),
    }
}

fn parse_expression(body: &Value) -> Result<String, ValidationError> {
    let example = "e.g. \"expression\": {\"type\": \"PQL\", \"format\": \"pql/text\", \"value\": \"homeAddress.countryCode = \\\"US\\\"\"}";
    let Some(expression) = present(body, "expression") else {
        return Err(ValidationError::missing(
            "expression",
            format!("say which profiles belong, {example}"),
        ));
    };
    if !expression.is_object() {
        return Err(ValidationError::invalid("expression", shown(expression), example));
    }
    match present(expression, "type") {
        None => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case(EXPRESSION_TYPE) => {}
        Some(other) => {
            return Err(ValidationError::invalid(
                "expression.type",
                shown(other),
                "the only expression type is \"PQL\"",
            ));
        }
    }
    match present(expression, "format") {
        None => {}
        Some(Value::String(format)) if format.eq_ignore_ascii_case(EXPRESSION_FORMAT) => {}
        Some(other) => {
            return Err(ValidationError::invalid(
                "expression.format",
                shown(other),
                "send the expression as PQL text: \"format\": \"pql/text\" (pql/json is not supported)",
            ));
        }
    }
    match present(expression, "value") {
        Some(Value::String(text)) if text.len() > MAX_EXPRESSION_BYTES => Err(ValidationError::invalid(
            "expression.value",
            format!("{} bytes of PQL", text.len()),
            format!("an expression is at most {MAX_EXPRESSION_BYTES} bytes"),
        )),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(other) => Err(ValidationError::invalid(
            "expression.value",
            shown(other),
            format!("write the condition as PQL text, {example}"),
        )),
        None => Err(ValidationError::missing("expression.value", example)),
    }
}

fn parse_merge_policy_id(body: &Value) -> Result<Option<MergePolicyId>, ValidationError> {
    match present(body, "mergePolicyId") {
        None => Ok(None),
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(Some(MergePolicyId::from_string(id.trim()))),
        Some(other) => Err(ValidationError::invalid(
            "mergePolicyId",
            shown(other),
            "give the id of a merge policy of this sandbox, or leave it out for the default one",
        )),
    }
}

/// `evaluationInfo.<mode>.enabled`, when given.
fn evaluation_flag(info: &Value, mode: &str) -> Result<Option<bool>, ValidationError> {
    let Some(entry) = present(info, mode) else {
        return Ok(None);
    };
    let field = format!("evaluationInfo.{mode}");
    if !entry.is_object() {
        return Err(ValidationError::invalid(
            field,
            shown(entry),
            "expected {\"enabled\": true|false}",
        ));
    }
    present(entry, "enabled")
        .map(|value| lenient_bool(&format!("{field}.enabled"), value))
        .transpose()
}

/// `evaluationInfo`: batch is on unless turned off. Streaming (`continuous`) and edge
/// (`synchronous`) evaluation do not exist here: asking for them is refused rather than stored
/// and silently not done.
fn parse_batch_enabled(body: &Value) -> Result<bool, ValidationError> {
    let Some(info) = present(body, "evaluationInfo") else {
        return Ok(true);
    };
    if !info.is_object() {
        return Err(ValidationError::invalid(
            "evaluationInfo",
            shown(info),
            "expected {\"batch\": {\"enabled\": true}}",
        ));
    }
    for mode in ["continuous", "synchronous"] {
        if evaluation_flag(info, mode)? == Some(true) {
            return Err(ValidationError::invalid(
                format!("evaluationInfo.{mode}.enabled"),
                true,
                "Dossier evaluates segment definitions in batch only (segment jobs and the schedule); \
                 leave it out or set it to false",
            ));
        }
    }
    Ok(evaluation_flag(info, "batch")?.unwrap_or(true))
}

fn parse_ttl(body: &Value) -> Result<Option<u32>, ValidationError> {
    let Some(value) = present(body, "ttlInDays") else {
        return Ok(None);
    };
    value
        .as_u64()
        .and_then(|days| u32::try_from(days).ok())
        .filter(|days| *days >= 1)
        .map(Some)
        .ok_or_else(|| ValidationError::invalid("ttlInDays", shown(value), "a whole number of days, 1 or more"))
}

impl SegmentDefinitionSpec {
    /// Validates a create body. The fields the server keeps (`id`, `imsOrgId`, `sandbox`,
    /// `creationTime`, `updateTime`, `updateEpoch`, `dependents`, `dependencies`) and unknown
    /// fields (`profileInstanceId`, `payloadSchema`, ...) are ignored, so an object read with GET
    /// can be sent back.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                body,
                "send a JSON object with name, expression {type, format, value} and optionally description, \
                 schema, mergePolicyId, evaluationInfo and ttlInDays",
            ));
        }
        Ok(Self {
            name: parse_name(body)?,
            description: parse_description(body)?,
            schema_name: parse_schema(body)?,
            expression: parse_expression(body)?,
            merge_policy_id: parse_merge_policy_id(body)?,
            batch_enabled: parse_batch_enabled(body)?,
            ttl_in_days: parse_ttl(body)?,
        })
    }

    /// The spec as a request body; `from_json(&s.to_json()) == Ok(s)`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "name": self.name,
            "schema": { "name": self.schema_name },
            "expression": { "type": EXPRESSION_TYPE, "format": EXPRESSION_FORMAT, "value": self.expression },
            "evaluationInfo": {
                "batch": { "enabled": self.batch_enabled },
                "continuous": { "enabled": false },
                "synchronous": { "enabled": false },
            },
        });
        let object = body.as_object_mut().expect("json! built an object");
        if let Some(description) = &self.description {
            object.insert("description".into(), json!(description));
        }
        if let Some(id) = &self.merge_policy_id {
            object.insert("mergePolicyId".into(), json!(id));
        }
        if let Some(days) = self.ttl_in_days {
            object.insert("ttlInDays".into(), json!(days));
        }
        body
    }
}

// ---- PATCH ----------------------------------------------------------------------------------

/// Top-level fields a PATCH object may set.
const PATCHABLE_FIELDS: &[&str] = &[
    "name",
    "description",
    "schema",
    "expression",
    "mergePolicyId",
    "evaluationInfo",
    "ttlInDays",
];

/// Paths a JSON Patch operation may set, with dots or slashes.
const PATCHABLE_PATHS: &[&str] = &[
    "name",
    "description",
    "schema",
    "schema.name",
    "expression",
    "expression.type",
    "expression.format",
    "expression.value",
    "mergePolicyId",
    "evaluationInfo",
    "evaluationInfo.batch",
    "evaluationInfo.batch.enabled",
    "evaluationInfo.continuous",
    "evaluationInfo.continuous.enabled",
    "evaluationInfo.synchronous",
    "evaluationInfo.synchronous.enabled",
    "ttlInDays",
];

/// Paths that may be removed (they are optional).
const REMOVABLE_PATHS: &[&str] = &["description", "mergePolicyId", "ttlInDays"];

/// A validated PATCH body: AEP's form, an object with the fields to change (the whole object read
/// with GET may be sent back, server-kept fields ignored); or JSON Patch operations (`{"op",
/// "path", "value"}` or an array of them), as on merge policies.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentDefinitionPatch {
    Fields(Map<String, Value>),
    Operations(Vec<(String, Value)>),
}

/// What a segment definition's JSON Patch operations may do.
const OPERATION_RULES: OperationRules = OperationRules {
    example: "e.g. {\"op\": \"replace\", \"path\": \"/expression/value\", \"value\": \"...\"}",
    paths: PATCHABLE_PATHS,
    removable: REMOVABLE_PATHS,
    remove_fix: "only description, mergePolicyId and ttlInDays can be removed; replace the others",
};

fn parse_operation(operation: &Value, prefix: &str) -> Result<(String, Value), ValidationError> {
    patch::parse_operation(operation, prefix, &OPERATION_RULES)
}

impl SegmentDefinitionPatch {
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        match body {
            Value::Array(items) if items.is_empty() => Err(ValidationError::invalid(
                "body",
                "[]",
                "send at least one operation or an object with the fields to change",
            )),
            Value::Array(items) => each_operation(items, parse_operation).map(Self::Operations),
            Value::Object(object) if object.contains_key("op") => {
                Ok(Self::Operations(vec![parse_operation(body, "")?]))
            }
            Value::Object(object) => {
                let fields: Map<String, Value> = object
                    .iter()
                    .filter(|(key, _)| PATCHABLE_FIELDS.contains(&key.as_str()))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                if fields.is_empty() {
                    return Err(ValidationError::invalid(
                        "body",
                        body,
                        format!("send at least one of {}", PATCHABLE_FIELDS.join(", ")),
                    ));
                }
                Ok(Self::Fields(fields))
            }
            other => Err(ValidationError::invalid(
                "body",
                other,
                "send an object with the fields to change, or JSON Patch operations",
            )),
        }
    }

    /// The spec after the change, validated as a whole exactly as a create body is. A field set
    /// to `null` (or removed) returns to its default.
    pub fn apply(&self, current: &SegmentDefinitionSpec) -> Result<SegmentDefinitionSpec, ValidationError> {
        let mut body = current.to_json();
        match self {
            Self::Fields(fields) => {
                let object = body.as_object_mut().expect("to_json builds an object");
                for (key, value) in fields {
                    object.insert(key.clone(), value.clone());
                }
            }
            Self::Operations(operations) => {
                for (path, value) in operations {
                    set_at(&mut body, path, value.clone());
                }
            }
        }
        SegmentDefinitionSpec::from_json(&body)
    }
}

// ---- dependencies ---------------------------------------------------------------------------

/// A chain of `inSegment` references that would lead from `id` back to itself, if storing `id`
/// with `dependencies` closes one: `[id, a, b, id]`. `graph` holds the dependencies of the other
/// stored definitions; ids without an entry (external audiences) end a chain.
pub fn dependency_cycle(
    id: &SegmentDefinitionId,
    dependencies: &[String],
    graph: &HashMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let target = id.as_str();
    let mut visited = HashSet::new();
    // Depth-first with the path kept, iteratively so that no graph can exhaust the stack.
    let mut stack: Vec<Vec<String>> = dependencies
        .iter()
        .map(|dependency| vec![target.to_owned(), dependency.clone()])
        .collect();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("paths are never empty");
        if last == target {
            return Some(path);
        }
        if !visited.insert(last.clone()) {
            continue;
        }
        for next in graph.get(last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

// ---- listing --------------------------------------------------------------------------------

/// Fields `sort` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "camelCase")]
pub enum SegmentSortField {
    CreationTime,
    UpdateTime,
    Name,
    Id,
}

impl SegmentSortField {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One page of the listing, as asked for in the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDefinitionListQuery {
    pub limit: u32,
    /// How many definitions to skip.
    pub start: u64,
    pub sort: (SegmentSortField, Direction),
    /// `evaluationInfo.batch.enabled`.
    pub batch_enabled: Option<bool>,
    /// `evaluationInfo.continuous.enabled` or `.synchronous.enabled`: no definition here has
    /// either, so `true` lists nothing.
    pub streaming_or_edge: Option<bool>,
}

/// The page size when `limit` is absent: AEP's, and what clients such as aepp assume when they
/// compute further pages.
pub const DEFAULT_SEGMENT_LIMIT: u32 = 100;
/// The largest page; larger `limit`s are lowered to it.
pub const MAX_SEGMENT_LIMIT: u32 = 1000;

const SEGMENT_PAGE: PageSize = PageSize {
    default: DEFAULT_SEGMENT_LIMIT,
    max: MAX_SEGMENT_LIMIT,
};

/// Where the 1-based `page` of `limit` definitions starts, if within the offsets a listing takes.
fn page_start(page: u64, limit: u32) -> Option<u64> {
    (page - 1)
        .checked_mul(u64::from(limit))
        .filter(|start| *start <= MAX_OFFSET)
}

fn parse_whole(params: &HashMap<String, String>, name: &str, minimum: u64) -> Result<Option<u64>, ValidationError> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= minimum)
            .map(Some)
            .ok_or_else(|| ValidationError::invalid(name, raw, format!("{name} is a whole number from {minimum}"))),
    }
}

/// `sort`: AEP's `field:desc` / `field:asc`, and `-field` / `field`. Default: newest first.
fn parse_sort(raw: Option<&String>) -> Result<(SegmentSortField, Direction), ValidationError> {
    let default = (SegmentSortField::CreationTime, Direction::Desc);
    let Some(trimmed) = raw.map(|r| r.trim()).filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    let (name, direction) = match trimmed.split_once(':') {
        Some((name, dir)) if dir.eq_ignore_ascii_case("desc") => (name, Some(Direction::Desc)),
        Some((name, dir)) if dir.eq_ignore_ascii_case("asc") => (name, Some(Direction::Asc)),
        Some(_) => ("", None),
        None => match trimmed.strip_prefix('-') {
            Some(name) => (name, Some(Direction::Desc)),
            None => (trimmed.trim_start_matches('+'), Some(Direction::Asc)),
        },
    };
    let field = sort_field::<SegmentSortField>(name);
    match (field, direction) {
        (Some(field), Some(direction)) => Ok((field, direction)),
        _ => Err(ValidationError::invalid(
            "sort",
            trimmed,
            format!(
                "use FIELD:asc or FIELD:desc with FIELD one of {}",
                SegmentSortField::VARIANTS.join(", ")
            ),
        )),
    }
}

impl SegmentDefinitionListQuery {
    /// Reads `limit`, `start` or `page` (1-based, pages of `limit`), `sort` and the
    /// `evaluationInfo.*.enabled` filters. Other parameters are ignored.
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, ValidationError> {
        let limit = parse_limit("limit", params.get("limit").map(String::as_str), SEGMENT_PAGE)?;
        let start_raw = params.get("start").map(|v| v.trim()).filter(|v| !v.is_empty());
        let start = match (start_raw, parse_whole(params, "page", 1)?) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::invalid(
                    "page",
                    &params["page"],
                    "give start (definitions to skip) or page (1-based), not both",
                ));
            }
            (Some(raw), None) => parse_offset("start", Some(raw), "segment definitions")?,
            (None, Some(page)) => page_start(page, limit).ok_or_else(|| {
                ValidationError::invalid(
                    "page",
                    &params["page"],
                    format!("page times limit is at most {MAX_OFFSET}; no listing is that long. Start from page 1"),
                )
            })?,
            (None, None) => 0,
        };
        let continuous = bool_param(params, "evaluationInfo.continuous.enabled")?;
        let synchronous = bool_param(params, "evaluationInfo.synchronous.enabled")?;
        Ok(Self {
            limit,
            start,
            sort: parse_sort(params.get("sort"))?,
            batch_enabled: bool_param(params, "evaluationInfo.batch.enabled")?,
            streaming_or_edge: match (continuous, synchronous) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), _) | (_, Some(false)) => Some(false),
                (None, None) => None,
            },
        })
    }

    /// The query string of the page starting at `start`, with the same size, order and filter.
    pub fn to_query_string(&self, start: u64) -> String {
        let (field, direction) = self.sort;
        let direction = if direction == Direction::Desc { "desc" } else { "asc" };
        let mut pairs = vec![
            format!("start={start}"),
            format!("limit={}", self.limit),
            format!("sort={}:{direction}", field.as_str()),
        ];
        if let Some(batch) = self.batch_enabled {
            pairs.push(format!("evaluationInfo.batch.enabled={batch}"));
        }
        pairs.join("&")
    }
}

/// Reads a `bulk-get` body of segment definitions ids ([`crate::listing::bulk_get_ids`]).
pub fn bulk_get_ids(body: &Value) -> Result<Vec<SegmentDefinitionId>, ValidationError> {
    Ok(crate::listing::bulk_get_ids(body, "segment definitions")?
        .into_iter()
        .map(SegmentDefinitionId::from_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdm::XdmSchema;

    /// The create body of AEP's segment definitions guide.
    fn guide_body() -> Value {
        json!({
            "name": "People who ordered in the last 30 days",
            "profileInstanceId": "ups",
            "description": "Last 30 days",
            "expression": {"type": "PQL", "format": "pql/text", "value": "workAddress.country = \"US\""},
            "evaluationInfo": {"batch": {"enabled": true}, "continuous": {"enabled": false}, "synchronous": {"enabled": false}},
            "schema": {"name": "_xdm.context.profile"},
            "payloadSchema": "string"
        })
    }

    fn error_field(body: Value) -> String {
        SegmentDefinitionSpec::from_json(&body).unwrap_err().field
    }

    #[test]
    fn the_guide_body_is_accepted_and_round_trips() {
        let spec = SegmentDefinitionSpec::from_json(&guide_body()).unwrap();
        assert_eq!(spec.name, "People who ordered in the last 30 days");
        assert_eq!(spec.description.as_deref(), Some("Last 30 days"));
        assert_eq!(spec.expression, "workAddress.country = \"US\"");
        assert!(spec.batch_enabled && spec.merge_policy_id.is_none() && spec.ttl_in_days.is_none());
        assert_eq!(SegmentDefinitionSpec::from_json(&spec.to_json()), Ok(spec));

        let minimal = json!({"name": "n", "expression": {"value": "a = 1"}, "ttlInDays": 30, "mergePolicyId": " mp "});
        let spec = SegmentDefinitionSpec::from_json(&minimal).unwrap();
        assert_eq!(spec.schema_name, PROFILE_SCHEMA_NAME);
        assert_eq!(
            (spec.ttl_in_days, spec.merge_policy_id.unwrap().as_str()),
            (Some(30), "mp")
        );
    }

    #[test]
    fn each_invalid_field_is_named() {
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut with = |change: &dyn Fn(&mut Value), field: &'static str| {
            let mut body = guide_body();
            change(&mut body);
            cases.push((body, field));
        };
        with(&|b| drop(b.as_object_mut().unwrap().remove("name")), "name");
        with(&|b| b["name"] = json!(" "), "name");
        with(&|b| b["description"] = json!(3), "description");
        with(
            &|b| b["schema"]["name"] = json!("_xdm.context.experienceevent"),
            "schema.name",
        );
        with(
            &|b| b["schema"] = json!({"id": "https://ns.adobe.com/xdm/context/experienceevent"}),
            "schema.id",
        );
        with(&|b| drop(b.as_object_mut().unwrap().remove("expression")), "expression");
        with(&|b| b["expression"]["type"] = json!("SQL"), "expression.type");
        with(&|b| b["expression"]["format"] = json!("pql/json"), "expression.format");
        with(&|b| b["expression"]["value"] = json!(""), "expression.value");
        with(
            &|b| b["expression"]["value"] = json!("x".repeat(MAX_EXPRESSION_BYTES + 1)),
            "expression.value",
        );
        with(&|b| b["mergePolicyId"] = json!(7), "mergePolicyId");
        with(
            &|b| b["evaluationInfo"]["continuous"]["enabled"] = json!(true),
            "evaluationInfo.continuous.enabled",
        );
        with(
            &|b| b["evaluationInfo"]["synchronous"] = json!({"enabled": "true"}),
            "evaluationInfo.synchronous.enabled",
        );
        with(
            &|b| b["evaluationInfo"]["batch"] = json!({"enabled": "maybe"}),
            "evaluationInfo.batch.enabled",
        );
        with(&|b| b["ttlInDays"] = json!(0), "ttlInDays");
        with(&|b| *b = json!([1]), "body");
        for (body, field) in cases {
            assert_eq!(error_field(body.clone()), field, "{body}");
        }
        let mut body = guide_body();
        body["schema"] = json!({"id": PROFILE_CLASS_ID});
        body["evaluationInfo"] = json!({"batch": {"enabled": "false"}});
        let spec = SegmentDefinitionSpec::from_json(&body).unwrap();
        assert!(!spec.batch_enabled);
    }

    #[test]
    fn patches_take_objects_and_operations() {
        let current = SegmentDefinitionSpec::from_json(&guide_body()).unwrap();
        let mut aep_style = guide_body();
        aep_style["expression"]["value"] = json!("workAddress.country = \"CA\"");
        aep_style["updateTime"] = json!(0);
        aep_style["id"] = json!("ignored");
        let patched = SegmentDefinitionPatch::from_json(&aep_style)
            .unwrap()
            .apply(&current)
            .unwrap();
        assert_eq!(patched.expression, "workAddress.country = \"CA\"");
        assert_eq!(patched.name, current.name);

        let partial = SegmentDefinitionPatch::from_json(&json!({"description": null, "ttlInDays": 7})).unwrap();
        let patched = partial.apply(&current).unwrap();
        assert_eq!((patched.description, patched.ttl_in_days), (None, Some(7)));

        let operations = SegmentDefinitionPatch::from_json(&json!([
            {"op": "replace", "path": "/expression/value", "value": "a = 2"},
            {"op": "replace", "path": "/evaluationInfo.batch.enabled", "value": false},
            {"op": "remove", "path": "/description"},
        ]))
        .unwrap();
        let patched = operations.apply(&current).unwrap();
        assert_eq!((patched.expression.as_str(), patched.batch_enabled), ("a = 2", false));
        assert_eq!(patched.description, None);

        let field = |body: Value| SegmentDefinitionPatch::from_json(&body).unwrap_err().field;
        assert_eq!(field(json!({"op": "remove", "path": "/name"})), "op");
        assert_eq!(field(json!({"op": "replace", "path": "/id", "value": "x"})), "path");
        assert_eq!(field(json!([{"op": "add", "path": "/name"}])), "[0].value");
        assert_eq!(field(json!({"updateTime": 1})), "body");
        assert_eq!(field(json!([])), "body");
        let invalid = SegmentDefinitionPatch::from_json(&json!({"name": ""})).unwrap();
        assert_eq!(invalid.apply(&current).unwrap_err().field, "name");
    }

    #[test]
    fn checking_parses_the_expression_and_collects_dependencies() {
        let profile = XdmSchema::builtin_profile();
        let event = XdmSchema::builtin_experience_event();
        let schemas = PqlSchemas {
            profile: &profile,
            event: &event,
        };
        let mut spec = SegmentDefinitionSpec::from_json(&guide_body()).unwrap();
        spec.expression = "inSegment(\"a\") and homeAddress.country = \"US\"".into();
        let (checked, _) = CheckedSpec::check(spec.clone(), schemas, MergePolicyId::from_string("mp")).unwrap();
        assert_eq!(checked.dependencies, ["a"]);

        let tenant = Tenant {
            org: OrgId::parse("1BD6382559DF0C130A49422D@AdobeOrg").unwrap(),
            sandbox: SandboxName::prod(),
        };
        let definition = SegmentDefinition::new(SegmentDefinitionId::generate(), &tenant, checked.clone(), 5_000);
        assert_eq!((definition.creation_time, definition.update_epoch()), (5_000, 5));
        assert!(definition.is_same(&checked));
        let changed = definition.changed(checked, 4_000);
        assert_eq!(
            (changed.creation_time, changed.update_time),
            (5_000, 5_001),
            "update time only grows"
        );

        spec.expression = "homeAddress.nope = 1".into();
        let error = CheckedSpec::check(spec, schemas, MergePolicyId::from_string("mp")).unwrap_err();
        assert!(
            pql_error_message(&error)
                .starts_with("Invalid PQL in expression.value at line 1, column 13: there is no field 'nope'"),
            "{}",
            pql_error_message(&error)
        );
    }

    #[test]
    fn dependency_cycles_are_found_through_other_definitions() {
        let graph: HashMap<String, Vec<String>> = [
            ("b".to_owned(), vec!["c".to_owned(), "external".to_owned()]),
            ("c".to_owned(), vec!["a".to_owned()]),
            ("d".to_owned(), vec!["d".to_owned()]),
        ]
        .into();
        let a = SegmentDefinitionId::from_string("a");
        assert_eq!(
            dependency_cycle(&a, &["b".to_owned()], &graph),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            dependency_cycle(&a, &["a".to_owned()], &graph),
            Some(vec!["a".into(), "a".into()])
        );
        assert_eq!(
            dependency_cycle(&a, &["d".to_owned(), "external".to_owned()], &graph),
            None
        );
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn listing_parameters() {
        let q = SegmentDefinitionListQuery::from_params(&params(&[])).unwrap();
        assert_eq!((q.limit, q.start), (DEFAULT_SEGMENT_LIMIT, 0));
        assert_eq!(q.sort, (SegmentSortField::CreationTime, Direction::Desc));

        let q = SegmentDefinitionListQuery::from_params(&params(&[
            ("limit", "5000"),
            ("page", "3"),
            ("sort", "updateTime:asc"),
            ("evaluationInfo.continuous.enabled", "true"),
        ]))
        .unwrap();
        assert_eq!((q.limit, q.start), (MAX_SEGMENT_LIMIT, 2_000));
        assert_eq!(q.sort, (SegmentSortField::UpdateTime, Direction::Asc));
        assert_eq!(q.streaming_or_edge, Some(true));
        assert_eq!(q.to_query_string(7), "start=7&limit=1000&sort=updateTime:asc");
        let q = SegmentDefinitionListQuery::from_params(&params(&[("sort", "-name"), ("start", "4")])).unwrap();
        assert_eq!((q.sort, q.start), ((SegmentSortField::Name, Direction::Desc), 4));

        for (key, value) in [
            ("limit", "0"),
            ("start", "-1"),
            ("page", "0"),
            ("sort", "size:desc"),
            ("sort", "name:up"),
            ("evaluationInfo.batch.enabled", "yes"),
        ] {
            let err = SegmentDefinitionListQuery::from_params(&params(&[(key, value)])).unwrap_err();
            assert_eq!(err.field, key, "{key}={value}");
        }
        let both = SegmentDefinitionListQuery::from_params(&params(&[("start", "1"), ("page", "2")]));
        assert_eq!(both.unwrap_err().field, "page");
    }

    #[test]
    fn bulk_get_bodies() {
        let ids = bulk_get_ids(&json!({"ids": [{"id": "a"}, "b", {"id": "a"}]})).unwrap();
        assert_eq!(
            ids,
            [
                SegmentDefinitionId::from_string("a"),
                SegmentDefinitionId::from_string("b")
            ]
        );
        assert_eq!(bulk_get_ids(&json!({})).unwrap_err().field, "ids");
        assert_eq!(
            bulk_get_ids(&json!({"ids": [{"name": "b"}]})).unwrap_err().field,
            "ids[0]"
        );
        assert_eq!(bulk_get_ids(&json!({"ids": [""]})).unwrap_err().field, "ids[0]");
    }
}
