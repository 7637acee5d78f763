//! Segment definitions: `/data/core/ups/segment/definitions` — list, create, get, patch, delete
//! and bulk-get, in AEP's shapes. Expressions are PQL text, parsed at creation (and on every
//! change) against the sandbox's union schemas; a refused expression is a 400 whose message
//! says where and what. Errors are UPS-shaped.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use dossier_model::ValidationError;
use dossier_model::ids::{MergePolicyId, SegmentDefinitionId};
use dossier_model::listing::{Direction, next_page_start};
use dossier_model::pql::{PqlError, PqlSchemas};
use dossier_model::segment_definition::{
    CheckedSpec, SegmentDefinition, SegmentDefinitionListQuery, SegmentDefinitionPatch, SegmentDefinitionSpec,
    bulk_get_ids, pql_error_message,
};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_model::xdm::XdmSchema;
use dossier_storage::meta::SegmentDefinitionWriteError;
use dossier_storage::{MetaStore, StorageError};

use super::ups_resource::{self, UpsCollection, UpsResource, storage_failure};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::views::segment_definition_json;

const PATH: &str = "/data/core/ups/segment/definitions";

const NOT_FOUND: &str = "DOSSIER-SEGMENT-404";
const INVALID_BODY: &str = "DOSSIER-SEGMENT-400";
const INVALID_PQL: &str = "DOSSIER-SEGMENT-PQL-400";
const INVALID_PATCH: &str = "DOSSIER-SEGMENT-PATCH-400";
const INVALID_QUERY: &str = "DOSSIER-SEGMENT-QUERY-400";
const INVALID_BULK_GET: &str = "DOSSIER-SEGMENT-BULK-400";
const UNKNOWN_MERGE_POLICY: &str = "DOSSIER-SEGMENT-MERGEPOLICY-400";
const CYCLE: &str = "DOSSIER-SEGMENT-CYCLE-400";
const NAME_TAKEN: &str = "DOSSIER-SEGMENT-NAME-409";
const HAS_DEPENDENTS: &str = "DOSSIER-SEGMENT-DEPENDENTS-409";
const NO_DEFAULT_MERGE_POLICY: &str = "DOSSIER-SEGMENT-MERGEPOLICY-409";

const SEGMENT_DEFINITION: UpsResource = UpsResource::new("Segment definition", PATH, NOT_FOUND);

fn not_found(id: &SegmentDefinitionId, tenant: &Tenant) -> ApiError {
    SEGMENT_DEFINITION.not_found(id, tenant)
}

/// Turns a refused write into the answer that tells the caller what to do instead.
fn write_error(error: SegmentDefinitionWriteError, tenant: &Tenant) -> ApiError {
    match error {
        SegmentDefinitionWriteError::NotFound(id) => not_found(&id, tenant),
        SegmentDefinitionWriteError::Invalid(error) => ApiError::ups_invalid(INVALID_BODY, error),
        SegmentDefinitionWriteError::Pql(error) => {
            ApiError::ups(StatusCode::BAD_REQUEST, INVALID_PQL, pql_error_message(&error))
        }
        SegmentDefinitionWriteError::UnknownMergePolicy(id) => ApiError::ups_invalid(
            UNKNOWN_MERGE_POLICY,
            ValidationError::invalid(
                "mergePolicyId",
                &id,
                format!(
                    "there is no merge policy '{id}' in sandbox '{}'; list them with GET \
                     /data/core/ups/config/mergePolicies, or leave mergePolicyId out for the default one",
                    tenant.sandbox
                ),
            ),
        ),
        SegmentDefinitionWriteError::NoDefaultMergePolicy => ApiError::ups(
            StatusCode::CONFLICT,
            NO_DEFAULT_MERGE_POLICY,
            "The sandbox has no default merge policy for profiles; name one with mergePolicyId.",
        ),
        SegmentDefinitionWriteError::NameTaken { name, id } => ApiError::ups(
            StatusCode::CONFLICT,
            NAME_TAKEN,
            format!(
                "Segment definition '{id}' is already named '{name}', and names are unique within a sandbox. \
                 Choose another name, or change that definition with PATCH {PATH}/{id}."
            ),
        ),
        SegmentDefinitionWriteError::Cycle(path) => ApiError::ups(
            StatusCode::BAD_REQUEST,
            CYCLE,
            format!(
                "Invalid PQL in expression.value: its inSegment references lead back to this definition ({}), \
                 so it could never be evaluated. Remove one of the references.",
                path.join(" -> ")
            ),
        ),
        SegmentDefinitionWriteError::HasDependents { id, dependents } => {
            let names: Vec<&str> = dependents.iter().map(|d| d.as_str()).collect();
            ApiError::ups(
                StatusCode::CONFLICT,
                HAS_DEPENDENTS,
                format!(
                    "Segment definition '{id}' cannot be deleted: inSegment(\"{id}\") is used by {}. Change or \
                     delete those first.",
                    names.join(", ")
                ),
            )
        }
        SegmentDefinitionWriteError::Storage(error) => storage_failure(error),
    }
}

/// The sandbox's profile and event unions, which field paths in expressions are checked against.
async fn union_schemas(state: &AppState, tenant: &Tenant) -> Result<(XdmSchema, XdmSchema), ApiError> {
    let profile = state.meta.profile_union(tenant).await.map_err(storage_failure)?;
    let event = state.meta.event_union(tenant).await.map_err(storage_failure)?;
    Ok((profile, event))
}

/// Parses a spec's expression against the unions (the check the store runs once it has resolved
/// the merge policy).
fn check_against(
    schemas: &(XdmSchema, XdmSchema),
) -> impl FnOnce(SegmentDefinitionSpec, MergePolicyId) -> Result<CheckedSpec, PqlError> + Send + '_ {
    move |spec, merge_policy_id| {
        let schemas = PqlSchemas {
            profile: &schemas.0,
            event: &schemas.1,
        };
        CheckedSpec::check(spec, schemas, merge_policy_id).map(|(checked, _)| checked)
    }
}

/// Definitions as shown, each with the definitions that depend on it.
async fn shown(state: &AppState, tenant: &Tenant, definitions: &[SegmentDefinition]) -> Result<Vec<Value>, ApiError> {
    let ids: Vec<&SegmentDefinitionId> = definitions.iter().map(|d| &d.id).collect();
    let dependents = state
        .meta
        .segment_dependents(tenant, &ids)
        .await
        .map_err(storage_failure)?;
    Ok(definitions
        .iter()
        .map(|definition| {
            let of_this = dependents.get(&definition.id).map_or(&[][..], Vec::as_slice);
            segment_definition_json(definition, of_this)
        })
        .collect())
}

async fn shown_one(state: &AppState, tenant: &Tenant, definition: &SegmentDefinition) -> Result<Value, ApiError> {
    let mut all = shown(state, tenant, std::slice::from_ref(definition)).await?;
    Ok(all.pop().expect("one definition shown"))
}

/// A listing page as AEP pages segment definitions.
fn page_json(segments: Vec<Value>, total: u64, query: &SegmentDefinitionListQuery) -> Value {
    let link = match next_page_start(query.start, segments.len(), total) {
        Some(next_start) => json!({ "next": format!("{PATH}?{}", query.to_query_string(next_start)) }),
        None => json!({}),
    };
    let (field, direction) = query.sort;
    let page_size = segments.len();
    json!({
        "segments": segments,
        "page": {
            "totalCount": total,
            "totalPages": total.div_ceil(u64::from(query.limit)),
            "sortField": field.as_str(),
            "sort": if direction == Direction::Desc { "desc" } else { "asc" },
            "pageSize": page_size,
            "limit": query.limit,
        },
        "link": link,
    })
}

/// Lists the sandbox's segment definitions.
#[utoipa::path(
    get, path = "/segment/definitions", tag = "segment definitions",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("start" = Option<u64>, Query, description = "Definitions to skip (as in link.next)"),
        ("page" = Option<u64>, Query, description = "1-based page of `limit` definitions, instead of start"),
        ("sort" = Option<String>, Query, description = "creationTime, updateTime, name or id, with :asc or :desc; default creationTime:desc"),
        ("evaluationInfo.batch.enabled" = Option<bool>, Query, description = "Only definitions in (true) or out of (false) scheduled evaluation"),
        ("evaluationInfo.continuous.enabled" = Option<bool>, Query, description = "Streaming evaluation: never on here, so true lists nothing"),
        ("evaluationInfo.synchronous.enabled" = Option<bool>, Query, description = "Edge evaluation: never on here, so true lists nothing"),
    ),
    responses((status = 200, description = "{segments: [...], page: {totalCount, totalPages, sortField, sort, pageSize, limit}, link: {next?}}"),
              (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_segment_definitions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let query =
        SegmentDefinitionListQuery::from_params(&params).map_err(|e| ApiError::ups_invalid(INVALID_QUERY, e))?;
    let page = state
        .meta
        .list_segment_definitions(&caller.tenant, &query)
        .await
        .map_err(storage_failure)?;
    let segments = shown(&state, &caller.tenant, &page.items).await?;
    Ok(Json(page_json(segments, page.total, &query)))
}

/// Creates a segment definition. Its PQL expression is parsed against the sandbox's union
/// schemas; an expression outside the supported subset is refused with where and what.
#[utoipa::path(
    post, path = "/segment/definitions", tag = "segment definitions",
    request_body(content = Object, description = "name, expression {type: PQL, format: pql/text, value}, and optionally description, schema {name}, mergePolicyId, evaluationInfo {batch {enabled}}, ttlInDays"),
    responses((status = 200, description = "The new segment definition"),
              (status = 400, description = "A field is missing or invalid, the PQL is refused (message: at line L, column C: ...), the merge policy does not exist, or inSegment references form a cycle"),
              (status = 409, description = "Another definition of the sandbox has this name"))
)]
pub async fn create_segment_definition(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let spec = SegmentDefinitionSpec::from_json(&body).map_err(|e| ApiError::ups_invalid(INVALID_BODY, e))?;
    let schemas = union_schemas(&state, &caller.tenant).await?;
    let definition = state
        .meta
        .create_segment_definition(
            &caller.tenant,
            SegmentDefinitionId::generate(),
            spec,
            now_millis(),
            check_against(&schemas),
        )
        .await
        .map_err(|e| write_error(e, &caller.tenant))?;
    tracing::info!(segment_definition_id = %definition.id, "segment definition created");
    Ok(Json(segment_definition_json(&definition, &[])))
}

/// One segment definition.
#[utoipa::path(
    get, path = "/segment/definitions/{id}", tag = "segment definitions",
    params(("id" = String, Path, description = "Segment definition id")),
    responses((status = 200, description = "The segment definition"), (status = 404, description = "No such definition in this sandbox"))
)]
pub async fn get_segment_definition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = SegmentDefinitionId::from_string(id);
    let definition = state
        .meta
        .segment_definition(&caller.tenant, &id)
        .await
        .map_err(storage_failure)?
        .ok_or_else(|| not_found(&id, &caller.tenant))?;
    Ok(Json(shown_one(&state, &caller.tenant, &definition).await?))
}

async fn update(state: &AppState, caller: &Caller, id: String, body: &Value) -> Result<Json<Value>, ApiError> {
    let id = SegmentDefinitionId::from_string(id);
    let patch = SegmentDefinitionPatch::from_json(body).map_err(|e| ApiError::ups_invalid(INVALID_PATCH, e))?;
    let schemas = union_schemas(state, &caller.tenant).await?;
    let definition = state
        .meta
        .update_segment_definition(
            &caller.tenant,
            &id,
            now_millis(),
            |current: &SegmentDefinition| patch.apply(&current.spec()),
            check_against(&schemas),
        )
        .await
        .map_err(|e| write_error(e, &caller.tenant))?;
    Ok(Json(shown_one(state, &caller.tenant, &definition).await?))
}

/// Changes a segment definition: AEP's body (an object with the fields to change, or the whole
/// object as read) or JSON Patch operations. The result is checked as a new definition is.
#[utoipa::path(
    patch, path = "/segment/definitions/{id}", tag = "segment definitions",
    params(("id" = String, Path, description = "Segment definition id")),
    request_body(content = Object, description = "{name?, description?, expression?, mergePolicyId?, evaluationInfo?, ttlInDays?, schema?} (other fields ignored), or {op, path, value} / an array of them"),
    responses((status = 200, description = "The segment definition as it now is"),
              (status = 400, description = "The body, the resulting definition or its PQL is invalid"),
              (status = 404, description = "No such definition in this sandbox"),
              (status = 409, description = "Another definition of the sandbox has the new name"))
)]
pub async fn patch_segment_definition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    update(&state, &caller, id, &body).await
}

/// The same change as PATCH, for clients that send updates with POST (aepp's `updateSegment`).
#[utoipa::path(
    post, path = "/segment/definitions/{id}", tag = "segment definitions",
    params(("id" = String, Path, description = "Segment definition id")),
    request_body(content = Object, description = "As for PATCH"),
    responses((status = 200, description = "The segment definition as it now is"), (status = 400, description = "As for PATCH"), (status = 404, description = "No such definition in this sandbox"), (status = 409, description = "As for PATCH"))
)]
pub async fn post_segment_definition(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    patch_segment_definition(state, caller, id, body).await
}

/// Deletes a segment definition. One that another definition names with inSegment is refused.
#[utoipa::path(
    delete, path = "/segment/definitions/{id}", tag = "segment definitions",
    params(("id" = String, Path, description = "Segment definition id")),
    responses((status = 200, description = "Deleted; empty body"),
              (status = 404, description = "No such definition in this sandbox"),
              (status = 409, description = "Another definition uses it with inSegment"))
)]
pub async fn delete_segment_definition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ups_resource::delete::<SegmentDefinitions>(&state, &caller, id).await
}

/// Several segment definitions by id: 207 with `results` keyed by id, and `errors` keyed by the
/// ids that are not in this sandbox.
#[utoipa::path(
    post, path = "/segment/definitions/bulk-get", tag = "segment definitions",
    request_body(content = Object, description = "{ids: [{id}, ...]}"),
    responses((status = 207, description = "{results: {<id>: definition}, errors: {<id>: {status, code, message}}}"),
              (status = 400, description = "The body is not {ids: [...]}"))
)]
pub async fn bulk_get_segment_definitions(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    ups_resource::bulk_get::<SegmentDefinitions>(&state, &caller, &body).await
}

/// Segment definitions for the handlers they share with merge policies.
struct SegmentDefinitions;

impl UpsCollection for SegmentDefinitions {
    type Id = SegmentDefinitionId;
    type Item = SegmentDefinition;
    type WriteError = SegmentDefinitionWriteError;
    const RESOURCE: UpsResource = SEGMENT_DEFINITION;
    const INVALID_BULK_GET: &'static str = INVALID_BULK_GET;

    fn parse_id(raw: String) -> SegmentDefinitionId {
        SegmentDefinitionId::from_string(raw)
    }

    fn bulk_get_ids(body: &Value) -> Result<Vec<SegmentDefinitionId>, ValidationError> {
        bulk_get_ids(body)
    }

    fn id_of(definition: &SegmentDefinition) -> &SegmentDefinitionId {
        &definition.id
    }

    fn write_error(error: SegmentDefinitionWriteError, tenant: &Tenant) -> ApiError {
        write_error(error, tenant)
    }

    async fn by_ids(
        meta: &MetaStore,
        tenant: &Tenant,
        ids: &[SegmentDefinitionId],
    ) -> Result<Vec<SegmentDefinition>, StorageError> {
        meta.segment_definitions_by_id(tenant, ids).await
    }

    async fn delete(
        meta: &MetaStore,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
    ) -> Result<(), SegmentDefinitionWriteError> {
        meta.delete_segment_definition(tenant, id).await
    }

    /// With the definitions that depend on each.
    async fn show(
        state: &AppState,
        tenant: &Tenant,
        definitions: &[SegmentDefinition],
    ) -> Result<Vec<Value>, ApiError> {
        shown(state, tenant, definitions).await
    }
}
