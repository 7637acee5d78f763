//! Merge policies — which fragments make one profile and how their attributes combine — and the
//! validation of the requests that create, replace, patch and list them
//! (`/data/core/ups/config/mergePolicies`).
//!
//! The exporter reads [`MergePolicy`] to build profiles: [`IdentityGraphType`] decides which
//! fragments belong together, [`AttributeMerge`] which value wins. Everything else here is about
//! turning what a user sent into those types, naming the field, the value and the fix when it
//! does not fit.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use strum::VariantNames;

use crate::ValidationError;
use crate::ids::{DatasetId, MergePolicyId};
use crate::listing::{Direction, PageSize, bool_param, parse_limit, parse_offset, sort_field};
use crate::patch::{each_operation, set_at};
use crate::schema::PROFILE_SCHEMA_NAME;
use crate::tenancy::{OrgId, SandboxName, Tenant};
use crate::time::EpochSeconds;
use crate::validation::{lenient_bool, present, shown};

/// The id of the merge policy every sandbox starts with.
pub const SEEDED_MERGE_POLICY_ID: &str = "timestampOrdered-none-mp";
/// The name of the merge policy every sandbox starts with.
pub const SEEDED_MERGE_POLICY_NAME: &str = "Default Timebased";

/// Which fragments make one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
#[strum(parse_err_ty = ValidationError, parse_err_fn = unknown_identity_graph)]
pub enum IdentityGraphType {
    /// Fragments with the same primary identity make one profile (no stitching).
    None,
    /// Fragments whose identities are in one component of the private identity graph make one
    /// profile.
    Pdg,
}

impl IdentityGraphType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn unknown_identity_graph(s: &str) -> ValidationError {
    ValidationError::invalid(
        "identityGraph.type",
        s,
        "use \"none\" (no identity stitching) or \"pdg\" (stitch through the private identity graph)",
    )
}

/// The kind of [`AttributeMerge`], without its dataset order: what listings filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "camelCase", ascii_case_insensitive)]
#[strum(parse_err_ty = ValidationError, parse_err_fn = unknown_attribute_merge)]
pub enum AttributeMergeType {
    TimestampOrdered,
    DataSetPrecedence,
}

impl AttributeMergeType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn unknown_attribute_merge(s: &str) -> ValidationError {
    ValidationError::invalid(
        "attributeMerge.type",
        s,
        "use \"timestampOrdered\" (latest ingested value wins) or \"dataSetPrecedence\" with an \"order\" of dataset ids",
    )
}

/// Which value of an attribute wins when fragments disagree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeMerge {
    /// The value from the most recently ingested fragment that has one.
    TimestampOrdered,
    /// The value from the highest-ranked dataset that has one; profile-record datasets not in
    /// `order` contribute nothing.
    DataSetPrecedence { order: Vec<DatasetId> },
}

impl AttributeMerge {
    pub fn merge_type(&self) -> AttributeMergeType {
        match self {
            Self::TimestampOrdered => AttributeMergeType::TimestampOrdered,
            Self::DataSetPrecedence { .. } => AttributeMergeType::DataSetPrecedence,
        }
    }

    /// The ranked datasets, highest first; empty for `timestampOrdered`.
    pub fn dataset_order(&self) -> &[DatasetId] {
        match self {
            Self::TimestampOrdered => &[],
            Self::DataSetPrecedence { order } => order,
        }
    }
}

/// One version of a merge policy, as stored and as the exporter uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePolicy {
    pub id: MergePolicyId,
    pub name: String,
    pub org: OrgId,
    pub sandbox: SandboxName,
    /// The XDM class the policy merges: always [`PROFILE_SCHEMA_NAME`] today.
    pub schema_name: String,
    /// 1 at creation, +1 on every change; every version stays readable.
    pub version: u32,
    pub identity_graph: IdentityGraphType,
    pub attribute_merge: AttributeMerge,
    /// Whether this is the policy used when a request names none (one per schema and sandbox).
    pub is_default: bool,
    pub is_active_on_edge: bool,
    /// When this version was written.
    pub update_epoch: EpochSeconds,
}

impl MergePolicy {
    /// Version 1 of a new policy.
    pub fn new(id: MergePolicyId, tenant: &Tenant, definition: MergePolicyDefinition, now: EpochSeconds) -> Self {
        Self {
            id,
            name: definition.name,
            org: tenant.org.clone(),
            sandbox: tenant.sandbox.clone(),
            schema_name: definition.schema_name,
            version: 1,
            identity_graph: definition.identity_graph,
            attribute_merge: definition.attribute_merge,
            is_default: definition.is_default,
            is_active_on_edge: definition.is_active_on_edge,
            update_epoch: now,
        }
    }

    /// The policy every sandbox starts with: timestamp ordered, no stitching, the default.
    pub fn seeded(tenant: &Tenant, now: EpochSeconds) -> Self {
        let definition = MergePolicyDefinition {
            name: SEEDED_MERGE_POLICY_NAME.to_owned(),
            schema_name: PROFILE_SCHEMA_NAME.to_owned(),
            identity_graph: IdentityGraphType::None,
            attribute_merge: AttributeMerge::TimestampOrdered,
            is_default: true,
            is_active_on_edge: false,
        };
        Self::new(
            MergePolicyId::from_string(SEEDED_MERGE_POLICY_ID),
            tenant,
            definition,
            now,
        )
    }

    pub fn tenant(&self) -> Tenant {
        Tenant {
            org: self.org.clone(),
            sandbox: self.sandbox.clone(),
        }
    }

    /// What a user chose for this version (everything but the server-kept fields).
    pub fn definition(&self) -> MergePolicyDefinition {
        MergePolicyDefinition {
            name: self.name.clone(),
            schema_name: self.schema_name.clone(),
            identity_graph: self.identity_graph,
            attribute_merge: self.attribute_merge.clone(),
            is_default: self.is_default,
            is_active_on_edge: self.is_active_on_edge,
        }
    }

    /// The version after this one, holding `definition`.
    pub fn next_version(&self, definition: MergePolicyDefinition, now: EpochSeconds) -> Self {
        Self {
            version: self.version + 1,
            ..Self::new(self.id.clone(), &self.tenant(), definition, now)
        }
    }
}

/// What a user chooses about a merge policy: a validated create or PUT body, or the result of a
/// PATCH applied to the current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePolicyDefinition {
    pub name: String,
    pub schema_name: String,
    pub identity_graph: IdentityGraphType,
    pub attribute_merge: AttributeMerge,
    pub is_default: bool,
    pub is_active_on_edge: bool,
}

fn optional_flag(body: &Value, field: &str) -> Result<Option<bool>, ValidationError> {
    present(body, field).map(|v| lenient_bool(field, v)).transpose()
}

fn parse_name(body: &Value) -> Result<String, ValidationError> {
    match present(body, "name") {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(name.clone()),
        Some(other) => Err(ValidationError::invalid(
            "name",
            shown(other),
            "give the merge policy a non-empty name, e.g. \"name\": \"Loyalty members ordered by ID\"",
        )),
        None => Err(ValidationError::missing(
            "name",
            "give the merge policy a name, e.g. \"name\": \"Loyalty members ordered by ID\"",
        )),
    }
}

/// `schema.name`: the only class merge policies exist for is the profile class, so it may be
/// left out; anything else is refused rather than stored and never used.
fn parse_schema_name(body: &Value) -> Result<String, ValidationError> {
    let fix = format!(
        "merge policies are made for the XDM Individual Profile class: use {{\"name\": \"{PROFILE_SCHEMA_NAME}\"}}"
    );
    let Some(schema) = present(body, "schema") else {
        return Ok(PROFILE_SCHEMA_NAME.to_owned());
    };
    if !schema.is_object() {
        return Err(ValidationError::invalid("schema", shown(schema), fix));
    }
    match present(schema, "name") {
        None => Ok(PROFILE_SCHEMA_NAME.to_owned()),
        Some(Value::String(name)) if name == PROFILE_SCHEMA_NAME => Ok(name.clone()),
        Some(other) => Err(ValidationError::invalid("schema.name", shown(other), fix)),
    }
}

fn parse_identity_graph(body: &Value) -> Result<IdentityGraphType, ValidationError> {
    let example = "e.g. \"identityGraph\": {\"type\": \"none\"} (or \"pdg\" to stitch identities)";
    let Some(graph) = present(body, "identityGraph") else {
        return Err(ValidationError::missing(
            "identityGraph",
            format!("say how fragments are grouped into profiles, {example}"),
        ));
    };
    if !graph.is_object() {
        return Err(ValidationError::invalid(
            "identityGraph",
            shown(graph),
            format!("expected an object, {example}"),
        ));
    }
    match present(graph, "type") {
        Some(Value::String(kind)) => kind.parse(),
        Some(other) => Err(ValidationError::invalid(
            "identityGraph.type",
            shown(other),
            "use \"none\" or \"pdg\"",
        )),
        None => Err(ValidationError::missing(
            "identityGraph.type",
            format!("use \"none\" or \"pdg\", {example}"),
        )),
    }
}

/// `attributeMerge`: absent means `timestampOrdered`, AEP's documented default. An `order` sent
/// with `timestampOrdered` is ignored (it has no meaning there), so a PATCH that only switches
/// the type back to `timestampOrdered` works.
fn parse_attribute_merge(body: &Value) -> Result<AttributeMerge, ValidationError> {
    let example =
        "e.g. {\"type\": \"dataSetPrecedence\", \"order\": [\"<datasetId>\", ...]} or {\"type\": \"timestampOrdered\"}";
    let Some(merge) = present(body, "attributeMerge") else {
        return Ok(AttributeMerge::TimestampOrdered);
    };
    if !merge.is_object() {
        return Err(ValidationError::invalid(
            "attributeMerge",
            shown(merge),
            format!("expected an object, {example}"),
        ));
    }
    let merge_type = match present(merge, "type") {
        Some(Value::String(kind)) => kind.parse::<AttributeMergeType>()?,
        Some(other) => return Err(ValidationError::invalid("attributeMerge.type", shown(other), example)),
        None => return Err(ValidationError::missing("attributeMerge.type", example)),
    };
    match merge_type {
        AttributeMergeType::TimestampOrdered => Ok(AttributeMerge::TimestampOrdered),
        AttributeMergeType::DataSetPrecedence => Ok(AttributeMerge::DataSetPrecedence {
            order: parse_dataset_order(merge)?,
        }),
    }
}

fn parse_dataset_order(merge: &Value) -> Result<Vec<DatasetId>, ValidationError> {
    let fix = "dataSetPrecedence needs \"order\": the ids of the profile datasets to merge, highest priority first, e.g. [\"5b76f86b85d0e00000be5c8b\", \"5b76f8d787a6af01e2ceda18\"]";
    let items = match present(merge, "order") {
        None => return Err(ValidationError::missing("attributeMerge.order", fix)),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(other) => return Err(ValidationError::invalid("attributeMerge.order", shown(other), fix)),
    };
    let mut seen = HashSet::new();
    let mut order = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = format!("attributeMerge.order[{index}]");
        let id = match item {
            Value::String(id) if !id.trim().is_empty() => id.trim(),
            other => {
                return Err(ValidationError::invalid(
                    field,
                    shown(other),
                    "expected a dataset id (a string)",
                ));
            }
        };
        if !seen.insert(id) {
            return Err(ValidationError::invalid(
                field,
                id,
                "each dataset may appear once in the order; remove the repeated id",
            ));
        }
        order.push(DatasetId::from_string(id));
    }
    Ok(order)
}

/// `isActiveOnEdge` (AEP's documented name) or `activeOnEdge` (the name some clients use);
/// both are accepted, and refused only if they disagree.
fn parse_active_on_edge(body: &Value) -> Result<bool, ValidationError> {
    let documented = optional_flag(body, "isActiveOnEdge")?;
    let alias = optional_flag(body, "activeOnEdge")?;
    match (documented, alias) {
        (Some(a), Some(b)) if a != b => Err(ValidationError::invalid(
            "activeOnEdge",
            b,
            format!("isActiveOnEdge is {a} but activeOnEdge is {b}: they are the same setting, send one of them"),
        )),
        (a, b) => Ok(a.or(b).unwrap_or(false)),
    }
}

impl MergePolicyDefinition {
    /// Validates a create (`POST`) or replace (`PUT`) body. The server-kept fields a client may
    /// echo back from a GET (`id`, `imsOrgId`, `sandbox`, `version`, `updateEpoch`) are ignored;
    /// `default` and `isActiveOnEdge` default to false. Whether the datasets of a
    /// `dataSetPrecedence` order exist is for the caller to check, since that needs the sandbox.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                body,
                "send a JSON object with name, identityGraph, attributeMerge, schema and optionally default and isActiveOnEdge",
            ));
        }
        Ok(Self {
            name: parse_name(body)?,
            schema_name: parse_schema_name(body)?,
            identity_graph: parse_identity_graph(body)?,
            attribute_merge: parse_attribute_merge(body)?,
            is_default: optional_flag(body, "default")?.unwrap_or(false),
            is_active_on_edge: parse_active_on_edge(body)?,
        })
    }

    /// The definition as a request body; `from_json(&d.to_json()) == Ok(d)`.
    pub fn to_json(&self) -> Value {
        let mut attribute_merge = json!({ "type": self.attribute_merge.merge_type().as_str() });
        if let AttributeMerge::DataSetPrecedence { order } = &self.attribute_merge {
            attribute_merge["order"] = json!(order);
        }
        json!({
            "name": self.name,
            "schema": { "name": self.schema_name },
            "identityGraph": { "type": self.identity_graph.as_str() },
            "attributeMerge": attribute_merge,
            "default": self.is_default,
            "isActiveOnEdge": self.is_active_on_edge,
        })
    }
}

/// Paths a PATCH may set, written with dots (`/identityGraph.type`, AEP's spelling) or slashes
/// (`/identityGraph/type`, JSON Pointer's); both mean the same field.
const PATCHABLE_PATHS: &[&str] = &[
    "name",
    "schema",
    "schema.name",
    "identityGraph",
    "identityGraph.type",
    "attributeMerge",
    "attributeMerge.type",
    "attributeMerge.order",
    "default",
    "isActiveOnEdge",
    "activeOnEdge",
];

/// Fields the server keeps; a PATCH that targets one is refused rather than silently ignored.
const READ_ONLY_PATHS: &[&str] = &["id", "imsOrgId", "sandbox", "version", "updateEpoch"];

/// One `add` or `replace` of a validated PATCH, on a field named by its dotted path.
#[derive(Debug, Clone, PartialEq)]
struct SetField {
    path: String,
    value: Value,
}

/// A validated PATCH body: AEP's single `{"op", "path", "value"}` object, or a JSON Patch array
/// of them (what aepp sends).
#[derive(Debug, Clone, PartialEq)]
pub struct MergePolicyPatch {
    operations: Vec<SetField>,
}

fn operation_field(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

fn parse_operation(operation: &Value, prefix: &str) -> Result<SetField, ValidationError> {
    let example = "e.g. {\"op\": \"replace\", \"path\": \"/identityGraph.type\", \"value\": \"pdg\"}";
    if !operation.is_object() {
        return Err(ValidationError::invalid(
            if prefix.is_empty() {
                "body"
            } else {
                prefix.trim_end_matches('.')
            },
            shown(operation),
            format!("each operation is an object, {example}"),
        ));
    }
    let op_field = operation_field(prefix, "op");
    match present(operation, "op") {
        Some(Value::String(op)) if op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("replace") => {}
        Some(Value::String(op)) if op.eq_ignore_ascii_case("remove") => {
            return Err(ValidationError::invalid(
                op_field,
                op,
                "a merge policy's fields cannot be removed; use \"replace\" with a new value",
            ));
        }
        Some(other) => {
            return Err(ValidationError::invalid(
                op_field,
                shown(other),
                format!("use \"add\" or \"replace\", {example}"),
            ));
        }
        None => {
            return Err(ValidationError::missing(
                op_field,
                format!("use \"add\" or \"replace\", {example}"),
            ));
        }
    }
    let path_field = operation_field(prefix, "path");
    let raw_path = match present(operation, "path") {
        Some(Value::String(path)) => path,
        Some(other) => return Err(ValidationError::invalid(path_field, shown(other), example)),
        None => return Err(ValidationError::missing(path_field, example)),
    };
    let path = raw_path.trim_start_matches('/').replace('/', ".");
    if READ_ONLY_PATHS.contains(&path.as_str()) {
        return Err(ValidationError::invalid(
            path_field,
            raw_path,
            format!("{path} is kept by the server and cannot be set (version goes up by itself on every change)"),
        ));
    }
    if !PATCHABLE_PATHS.contains(&path.as_str()) {
        return Err(ValidationError::invalid(
            path_field,
            raw_path,
            format!("use one of /{}", PATCHABLE_PATHS.join(", /")),
        ));
    }
    let value = match operation.get("value") {
        Some(value) => value.clone(),
        None => return Err(ValidationError::missing(operation_field(prefix, "value"), example)),
    };
    Ok(SetField { path, value })
}

impl MergePolicyPatch {
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        let operations = match body {
            Value::Array(items) if items.is_empty() => {
                return Err(ValidationError::invalid(
                    "body",
                    "[]",
                    "send at least one operation, e.g. [{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"New name\"}]",
                ));
            }
            Value::Array(items) => each_operation(items, parse_operation)?,
            single => vec![parse_operation(single, "")?],
        };
        Ok(Self { operations })
    }

    /// The definition after the operations, in order, validated as a whole exactly as a PUT body
    /// is: errors name the field as a PUT body would (`attributeMerge.order`).
    pub fn apply(&self, current: &MergePolicyDefinition) -> Result<MergePolicyDefinition, ValidationError> {
        let mut body = current.to_json();
        for SetField { path, value } in &self.operations {
            // Both spellings are one setting; keep one key so they never disagree.
            let path = if path == "activeOnEdge" { "isActiveOnEdge" } else { path };
            set_at(&mut body, path, value.clone());
        }
        MergePolicyDefinition::from_json(&body)
    }
}

/// Fields `orderBy` may name on merge policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "camelCase")]
pub enum MergePolicySortField {
    Name,
    UpdateEpoch,
    Id,
}

impl MergePolicySortField {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Equality filters of the merge policy listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergePolicyFilter {
    pub is_default: Option<bool>,
    pub schema_name: Option<String>,
    pub identity_graph: Option<IdentityGraphType>,
    pub attribute_merge: Option<AttributeMergeType>,
    pub is_active_on_edge: Option<bool>,
}

/// One page of the merge policy listing, as asked for in the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePolicyListQuery {
    pub limit: u32,
    /// How many policies to skip.
    pub start: u64,
    pub order_by: (MergePolicySortField, Direction),
    pub filter: MergePolicyFilter,
}

/// The page size when `limit` is absent (AEP's).
pub const DEFAULT_MERGE_POLICY_LIMIT: u32 = 20;
/// The largest page; larger `limit`s are lowered to it.
pub const MAX_MERGE_POLICY_LIMIT: u32 = 100;

const MERGE_POLICY_PAGE: PageSize = PageSize {
    default: DEFAULT_MERGE_POLICY_LIMIT,
    max: MAX_MERGE_POLICY_LIMIT,
};

/// `orderBy`: AEP's `name`, `+name` and `-name` (a `+` arrives as a space when not
/// URL-encoded), and the Catalog's `asc:name` / `desc:name`. Empty means the default, name
/// ascending, because AEP's own next links carry `orderBy=`.
fn parse_order_by(raw: Option<&String>) -> Result<(MergePolicySortField, Direction), ValidationError> {
    let default = (MergePolicySortField::Name, Direction::Asc);
    let Some(raw) = raw else {
        return Ok(default);
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(default);
    }
    let (direction, name) = if let Some(name) = trimmed.strip_prefix('-') {
        (Direction::Desc, name)
    } else if let Some(name) = trimmed.strip_prefix('+') {
        (Direction::Asc, name)
    } else if let Some(name) = trimmed.strip_prefix("desc:") {
        (Direction::Desc, name)
    } else if let Some(name) = trimmed.strip_prefix("asc:") {
        (Direction::Asc, name)
    } else {
        (Direction::Asc, trimmed)
    };
    sort_field::<MergePolicySortField>(name)
        .map(|field| (field, direction))
        .ok_or_else(|| {
            ValidationError::invalid(
                "orderBy",
                raw,
                format!(
                    "use FIELD, +FIELD or -FIELD with FIELD one of {}",
                    MergePolicySortField::VARIANTS.join(", ")
                ),
            )
        })
}

fn parse_filter(params: &HashMap<String, String>) -> Result<MergePolicyFilter, ValidationError> {
    let schema_name = match params.get("schema.name").map(|v| v.trim()) {
        None | Some("") => None,
        Some(PROFILE_SCHEMA_NAME) => Some(PROFILE_SCHEMA_NAME.to_owned()),
        Some(other) => {
            return Err(ValidationError::invalid(
                "schema.name",
                other,
                format!("merge policies exist only for {PROFILE_SCHEMA_NAME}"),
            ));
        }
    };
    let non_empty = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    Ok(MergePolicyFilter {
        is_default: bool_param(params, "default")?,
        schema_name,
        identity_graph: non_empty("identityGraph.type").map(str::parse).transpose()?,
        attribute_merge: non_empty("attributeMerge.type").map(str::parse).transpose()?,
        is_active_on_edge: bool_param(params, "isActiveOnEdge")?,
    })
}

impl MergePolicyListQuery {
    /// Reads `limit`, `start`, `orderBy` and the filters `default`, `schema.name`,
    /// `identityGraph.type`, `attributeMerge.type`, `isActiveOnEdge`. Other parameters are
    /// ignored.
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, ValidationError> {
        Ok(Self {
            limit: parse_limit("limit", params.get("limit").map(String::as_str), MERGE_POLICY_PAGE)?,
            start: parse_offset("start", params.get("start").map(String::as_str), "merge policies")?,
            order_by: parse_order_by(params.get("orderBy"))?,
            filter: parse_filter(params)?,
        })
    }

    /// The query string that asks for the page starting at `start` with the same order and
    /// filters, in the canonical spelling of each parameter. Every value is URL-safe as written.
    pub fn to_query_string(&self, start: u64) -> String {
        let (field, direction) = self.order_by;
        let sign = if direction == Direction::Desc { "-" } else { "" };
        let mut pairs = vec![
            format!("start={start}"),
            format!("orderBy={sign}{}", field.as_str()),
            format!("limit={}", self.limit),
        ];
        let filter = &self.filter;
        if let Some(is_default) = filter.is_default {
            pairs.push(format!("default={is_default}"));
        }
        if let Some(schema_name) = &filter.schema_name {
            pairs.push(format!("schema.name={schema_name}"));
        }
        if let Some(graph) = filter.identity_graph {
            pairs.push(format!("identityGraph.type={graph}"));
        }
        if let Some(merge) = filter.attribute_merge {
            pairs.push(format!("attributeMerge.type={merge}"));
        }
        if let Some(edge) = filter.is_active_on_edge {
            pairs.push(format!("isActiveOnEdge={edge}"));
        }
        pairs.join("&")
    }
}

/// Reads a `bulk-get` body of merge policies ids ([`crate::listing::bulk_get_ids`]).
pub fn bulk_get_ids(body: &Value) -> Result<Vec<MergePolicyId>, ValidationError> {
    Ok(crate::listing::bulk_get_ids(body, "merge policies")?
        .into_iter()
        .map(MergePolicyId::from_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            org: OrgId::parse("1BD6382559DF0C130A49422D@AdobeOrg").unwrap(),
            sandbox: SandboxName::prod(),
        }
    }

    /// The create body of AEP's merge policy tutorial.
    fn tutorial_body() -> Value {
        json!({
            "name": "Loyalty members ordered by ID",
            "identityGraph": {"type": "none"},
            "attributeMerge": {"type": "dataSetPrecedence", "order": ["5b76f86b85d0e00000be5c8b", "5b76f8d787a6af01e2ceda18"]},
            "schema": {"name": "_xdm.context.profile"},
            "isActiveOnEdge": true,
            "default": true
        })
    }

    fn error_field(body: Value) -> String {
        MergePolicyDefinition::from_json(&body).unwrap_err().field
    }

    #[test]
    fn the_tutorial_body_is_accepted() {
        let definition = MergePolicyDefinition::from_json(&tutorial_body()).unwrap();
        assert_eq!(definition.name, "Loyalty members ordered by ID");
        assert_eq!(definition.schema_name, PROFILE_SCHEMA_NAME);
        assert_eq!(definition.identity_graph, IdentityGraphType::None);
        assert_eq!(
            definition.attribute_merge.dataset_order(),
            [
                DatasetId::from_string("5b76f86b85d0e00000be5c8b"),
                DatasetId::from_string("5b76f8d787a6af01e2ceda18")
            ]
        );
        assert!(definition.is_default && definition.is_active_on_edge);
        assert_eq!(MergePolicyDefinition::from_json(&definition.to_json()), Ok(definition));
    }

    #[test]
    fn optional_fields_take_their_defaults() {
        let definition =
            MergePolicyDefinition::from_json(&json!({"name": "n", "identityGraph": {"type": "PDG"}})).unwrap();
        assert_eq!(definition.identity_graph, IdentityGraphType::Pdg);
        assert_eq!(definition.attribute_merge, AttributeMerge::TimestampOrdered);
        assert_eq!(definition.schema_name, PROFILE_SCHEMA_NAME);
        assert!(!definition.is_default && !definition.is_active_on_edge);
    }

    #[test]
    fn each_invalid_field_is_named() {
        let mut body = tutorial_body();
        body.as_object_mut().unwrap().remove("name");
        assert_eq!(error_field(body), "name");
        let mut body = tutorial_body();
        body["name"] = json!("  ");
        assert_eq!(error_field(body), "name");

        let mut body = tutorial_body();
        body["identityGraph"]["type"] = json!("cluster");
        let err = MergePolicyDefinition::from_json(&body).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.value.as_deref()),
            ("identityGraph.type", Some("cluster"))
        );
        let mut body = tutorial_body();
        body.as_object_mut().unwrap().remove("identityGraph");
        assert_eq!(error_field(body), "identityGraph");

        let mut body = tutorial_body();
        body["attributeMerge"] = json!({"type": "dataSetPrecedence"});
        assert_eq!(error_field(body), "attributeMerge.order");
        let mut body = tutorial_body();
        body["attributeMerge"]["order"] = json!([]);
        assert_eq!(error_field(body), "attributeMerge.order");
        let mut body = tutorial_body();
        body["attributeMerge"]["order"] = json!(["a", 7]);
        assert_eq!(error_field(body), "attributeMerge.order[1]");
        let mut body = tutorial_body();
        body["attributeMerge"]["order"] = json!(["a", "a"]);
        assert_eq!(error_field(body), "attributeMerge.order[1]");
        let mut body = tutorial_body();
        body["attributeMerge"]["type"] = json!("newestFirst");
        assert_eq!(error_field(body), "attributeMerge.type");

        let mut body = tutorial_body();
        body["schema"]["name"] = json!("_xdm.context.experienceevent");
        let err = MergePolicyDefinition::from_json(&body).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.value.as_deref()),
            ("schema.name", Some("_xdm.context.experienceevent"))
        );

        let mut body = tutorial_body();
        body["default"] = json!("yes");
        assert_eq!(error_field(body), "default");
        let mut body = tutorial_body();
        body["activeOnEdge"] = json!(false);
        assert_eq!(error_field(body), "activeOnEdge");
        assert_eq!(error_field(json!([1])), "body");
    }

    #[test]
    fn echoed_server_fields_are_ignored_and_order_is_dropped_for_timestamp_ordered() {
        let mut body = tutorial_body();
        body["id"] = json!("x");
        body["version"] = json!(9);
        body["updateEpoch"] = json!(1);
        body["attributeMerge"] = json!({"type": "timestampOrdered", "order": ["string"]});
        body["default"] = json!("false");
        body.as_object_mut().unwrap().remove("isActiveOnEdge");
        body["activeOnEdge"] = json!(true);
        let definition = MergePolicyDefinition::from_json(&body).unwrap();
        assert_eq!(definition.attribute_merge, AttributeMerge::TimestampOrdered);
        assert!(!definition.is_default);
        assert!(definition.is_active_on_edge);
    }

    #[test]
    fn patches_take_aep_and_json_patch_spellings() {
        let current = MergePolicy::seeded(&tenant(), 1).definition();
        let single = MergePolicyPatch::from_json(&json!({"op": "add", "path": "/default", "value": "false"})).unwrap();
        assert!(!single.apply(&current).unwrap().is_default);

        let many = MergePolicyPatch::from_json(&json!([
            {"op": "replace", "path": "/identityGraph.type", "value": "pdg"},
            {"op": "replace", "path": "/attributeMerge/type", "value": "dataSetPrecedence"},
            {"op": "add", "path": "/attributeMerge/order", "value": ["a", "b"]},
            {"op": "replace", "path": "/activeOnEdge", "value": true},
            {"op": "replace", "path": "/name", "value": "Stitched"},
        ]))
        .unwrap();
        let patched = many.apply(&current).unwrap();
        assert_eq!(patched.identity_graph, IdentityGraphType::Pdg);
        assert_eq!(patched.attribute_merge.dataset_order().len(), 2);
        assert!(patched.is_active_on_edge);
        assert_eq!(patched.name, "Stitched");

        let back = MergePolicyPatch::from_json(
            &json!({"op": "replace", "path": "/attributeMerge.type", "value": "timestampOrdered"}),
        )
        .unwrap()
        .apply(&patched)
        .unwrap();
        assert_eq!(back.attribute_merge, AttributeMerge::TimestampOrdered);
    }

    #[test]
    fn patch_errors_name_the_operation_field() {
        let current = MergePolicy::seeded(&tenant(), 1).definition();
        let field = |body: Value| MergePolicyPatch::from_json(&body).unwrap_err().field;
        assert_eq!(field(json!({"op": "remove", "path": "/name"})), "op");
        assert_eq!(field(json!({"op": "move", "path": "/name", "value": 1})), "op");
        assert_eq!(field(json!({"op": "add", "path": "/version", "value": 3})), "path");
        assert_eq!(field(json!({"op": "add", "path": "/colour", "value": 3})), "path");
        assert_eq!(
            field(json!([{"op": "add", "path": "/name", "value": "x"}, {"op": "add", "path": "/name"}])),
            "[1].value"
        );
        assert_eq!(field(json!([])), "body");

        let patch = MergePolicyPatch::from_json(
            &json!({"op": "replace", "path": "/attributeMerge/type", "value": "dataSetPrecedence"}),
        )
        .unwrap();
        assert_eq!(patch.apply(&current).unwrap_err().field, "attributeMerge.order");
        let patch =
            MergePolicyPatch::from_json(&json!({"op": "replace", "path": "/identityGraph/type", "value": "graph"}))
                .unwrap();
        assert_eq!(patch.apply(&current).unwrap_err().field, "identityGraph.type");
    }

    #[test]
    fn versions_count_up_and_keep_the_id() {
        let seeded = MergePolicy::seeded(&tenant(), 100);
        assert_eq!((seeded.id.as_str(), seeded.version), (SEEDED_MERGE_POLICY_ID, 1));
        let mut definition = seeded.definition();
        definition.name = "renamed".into();
        let next = seeded.next_version(definition, 200);
        assert_eq!(
            (next.id.clone(), next.version, next.update_epoch),
            (seeded.id.clone(), 2, 200)
        );
        assert_eq!(next.tenant(), tenant());
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bulk_get_bodies() {
        let ids = bulk_get_ids(&json!({"ids": [{"id": "a"}, "b", {"id": "a"}]})).unwrap();
        assert_eq!(ids, [MergePolicyId::from_string("a"), MergePolicyId::from_string("b")]);
        assert_eq!(bulk_get_ids(&json!({})).unwrap_err().field, "ids");
        assert_eq!(bulk_get_ids(&json!({"ids": "a"})).unwrap_err().field, "ids");
        assert_eq!(
            bulk_get_ids(&json!({"ids": [{"id": "a"}, {"name": "b"}]}))
                .unwrap_err()
                .field,
            "ids[1]"
        );
        assert_eq!(bulk_get_ids(&json!({"ids": [""]})).unwrap_err().field, "ids[0]");
    }

    #[test]
    fn listing_parameters() {
        let q = MergePolicyListQuery::from_params(&params(&[])).unwrap();
        assert_eq!((q.limit, q.start), (20, 0));
        assert_eq!(q.order_by, (MergePolicySortField::Name, Direction::Asc));
        assert_eq!(q.filter, MergePolicyFilter::default());

        let q = MergePolicyListQuery::from_params(&params(&[
            ("limit", "500"),
            ("start", "3"),
            ("orderBy", "-updateEpoch"),
            ("default", "true"),
            ("identityGraph.type", "pdg"),
            ("requestDataSource", "False"),
        ]))
        .unwrap();
        assert_eq!((q.limit, q.start), (100, 3));
        assert_eq!(q.order_by, (MergePolicySortField::UpdateEpoch, Direction::Desc));
        assert_eq!(q.filter.is_default, Some(true));
        assert_eq!(
            q.to_query_string(5),
            "start=5&orderBy=-updateEpoch&limit=100&default=true&identityGraph.type=pdg"
        );
        let plus_as_space = MergePolicyListQuery::from_params(&params(&[("orderBy", " name"), ("start", "")])).unwrap();
        assert_eq!(plus_as_space.order_by, (MergePolicySortField::Name, Direction::Asc));

        for (key, value) in [
            ("limit", "0"),
            ("limit", "x"),
            ("start", "-1"),
            ("orderBy", "-size"),
            ("default", "maybe"),
            ("schema.name", "_xdm.context.experienceevent"),
            ("identityGraph.type", "cluster"),
            ("attributeMerge.type", "x"),
        ] {
            let err = MergePolicyListQuery::from_params(&params(&[(key, value)])).unwrap_err();
            assert_eq!(err.field, key, "{key}={value}");
        }
    }
}
