//! Merge policies: `/data/core/ups/config/mergePolicies` — list, create, get (any version),
//! replace, patch, delete and bulk-get, in AEP's shapes. Errors are UPS-shaped.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use dossier_model::ValidationError;
use dossier_model::ids::MergePolicyId;
use dossier_model::listing::next_page_start;
use dossier_model::merge_policy::{
    MergePolicy, MergePolicyDefinition, MergePolicyListQuery, MergePolicyPatch, bulk_get_ids,
};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_seconds;
use dossier_storage::meta::{MergePolicyPage, MergePolicyWriteError};
use dossier_storage::{MetaStore, StorageError};

use super::ups_resource::{self, UpsCollection, UpsResource, storage_failure};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::views::merge_policy_json;

/// AEP's code for "merge policy not found".
const NOT_FOUND: &str = "UPLIB-101221-404";
const VERSION_NOT_FOUND: &str = "DOSSIER-MERGEPOLICY-VERSION-404";
const INVALID_BODY: &str = "DOSSIER-MERGEPOLICY-400";
const INVALID_PATCH: &str = "DOSSIER-MERGEPOLICY-PATCH-400";
const INVALID_QUERY: &str = "DOSSIER-MERGEPOLICY-QUERY-400";
const INVALID_BULK_GET: &str = "DOSSIER-MERGEPOLICY-BULK-400";
const UNKNOWN_DATASET: &str = "DOSSIER-MERGEPOLICY-DATASET-400";
const DEFAULT_REQUIRED: &str = "DOSSIER-MERGEPOLICY-DEFAULT-409";
const DEFAULT_NOT_DELETABLE: &str = "DOSSIER-MERGEPOLICY-DELETE-DEFAULT-409";
const EDGE_TAKEN: &str = "DOSSIER-MERGEPOLICY-EDGE-409";
const EDGE_NOT_DELETABLE: &str = "DOSSIER-MERGEPOLICY-DELETE-EDGE-409";

const MERGE_POLICY: UpsResource = UpsResource::new("Merge policy", "/data/core/ups/config/mergePolicies", NOT_FOUND);

fn not_found(id: &MergePolicyId, tenant: &Tenant) -> ApiError {
    MERGE_POLICY.not_found(id, tenant)
}

/// Turns a refused write into the answer that tells the caller what to do instead.
fn write_error(error: MergePolicyWriteError, tenant: &Tenant) -> ApiError {
    match error {
        MergePolicyWriteError::NotFound(id) => not_found(&id, tenant),
        MergePolicyWriteError::Invalid(error) => ApiError::ups_invalid(INVALID_BODY, error),
        MergePolicyWriteError::UnknownDataset(dataset) => ApiError::ups_invalid(
            UNKNOWN_DATASET,
            ValidationError::invalid(
                "attributeMerge.order",
                &dataset,
                format!(
                    "there is no dataset '{dataset}' in sandbox '{}'; dataSetPrecedence ranks existing datasets \
                     (list them with GET /data/foundation/catalog/dataSets)",
                    tenant.sandbox
                ),
            ),
        ),
        MergePolicyWriteError::DefaultCannotBeCleared { id, schema_name } => ApiError::ups(
            StatusCode::CONFLICT,
            DEFAULT_REQUIRED,
            format!(
                "Merge policy '{id}' is the default for {schema_name}, and exports and profile lookups that name no \
                 merge policy use it. To change the default, set \"default\": true on another policy; this one then \
                 stops being the default by itself."
            ),
        ),
        MergePolicyWriteError::DefaultCannotBeDeleted { id, schema_name } => ApiError::ups(
            StatusCode::CONFLICT,
            DEFAULT_NOT_DELETABLE,
            format!(
                "Merge policy '{id}' is the default for {schema_name} and cannot be deleted: exports and profile \
                 lookups that name no merge policy use it. Make another policy the default first \
                 (PATCH it with {{\"op\": \"replace\", \"path\": \"/default\", \"value\": true}}), then delete this one."
            ),
        ),
        MergePolicyWriteError::EdgeTaken { active } => ApiError::ups(
            StatusCode::CONFLICT,
            EDGE_TAKEN,
            format!(
                "Merge policy '{active}' is already active on edge, and a sandbox can have only one. Set \
                 \"isActiveOnEdge\": false on it first."
            ),
        ),
        MergePolicyWriteError::ActiveOnEdgeCannotBeDeleted(id) => ApiError::ups(
            StatusCode::CONFLICT,
            EDGE_NOT_DELETABLE,
            format!(
                "Merge policy '{id}' is active on edge and cannot be deleted. Set \"isActiveOnEdge\": false on it \
                 first (PATCH or PUT), then delete it."
            ),
        ),
        MergePolicyWriteError::Storage(error) => storage_failure(error),
    }
}

/// `?version=`: a whole number from 1.
fn requested_version(params: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    let Some(raw) = params.get("version").map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<u32>() {
        Ok(version) if version >= 1 => Ok(Some(version)),
        _ => Err(ApiError::ups_invalid(
            INVALID_QUERY,
            ValidationError::invalid(
                "version",
                raw,
                "versions are whole numbers from 1; leave it out for the latest",
            ),
        )),
    }
}

/// A listing page as AEP pages merge policies. The last page still has `_links.next` with an
/// empty `href`, as AEP documents it and as clients such as aepp read it.
fn page_json(page: &MergePolicyPage, query: &MergePolicyListQuery) -> Value {
    let children: Vec<Value> = page.items.iter().map(merge_policy_json).collect();
    let href = next_page_start(query.start, children.len(), page.total)
        .map(|next_start| format!("@/mergePolicies?{}", query.to_query_string(next_start)))
        .unwrap_or_default();
    json!({
        "_page": { "totalCount": page.total, "pageSize": children.len() },
        "children": children,
        "_links": { "next": { "href": href } },
    })
}

/// Lists the latest version of each merge policy of the sandbox.
#[utoipa::path(
    get, path = "/config/mergePolicies", tag = "merge policies",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
        ("start" = Option<u64>, Query, description = "Policies to skip, as given in _links.next.href"),
        ("orderBy" = Option<String>, Query, description = "name, +name, -name, updateEpoch, -updateEpoch, id, -id; default name"),
        ("default" = Option<bool>, Query, description = "Only default (true) or non-default (false) policies"),
        ("schema.name" = Option<String>, Query, description = "_xdm.context.profile"),
        ("identityGraph.type" = Option<String>, Query, description = "none or pdg"),
        ("attributeMerge.type" = Option<String>, Query, description = "timestampOrdered or dataSetPrecedence"),
        ("isActiveOnEdge" = Option<bool>, Query, description = "Only policies active (or not) on edge"),
    ),
    responses((status = 200, description = "{_page: {totalCount, pageSize}, children: [...], _links: {next: {href}}}"),
              (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_merge_policies(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let query = MergePolicyListQuery::from_params(&params).map_err(|e| ApiError::ups_invalid(INVALID_QUERY, e))?;
    let page = state
        .meta
        .list_merge_policies(&caller.tenant, &query)
        .await
        .map_err(storage_failure)?;
    Ok(Json(page_json(&page, &query)))
}

/// Creates a merge policy (version 1). Making it the default clears the previous default.
#[utoipa::path(
    post, path = "/config/mergePolicies", tag = "merge policies",
    request_body(content = Object, description = "name, identityGraph {type}, attributeMerge {type, order}, schema {name}, default, isActiveOnEdge"),
    responses((status = 200, description = "The new merge policy"),
              (status = 400, description = "A field is missing or invalid, or an order dataset does not exist"),
              (status = 409, description = "Another policy is already active on edge"))
)]
pub async fn create_merge_policy(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let definition = MergePolicyDefinition::from_json(&body).map_err(|e| ApiError::ups_invalid(INVALID_BODY, e))?;
    let policy = MergePolicy::new(MergePolicyId::generate(), &caller.tenant, definition, now_seconds());
    state
        .meta
        .create_merge_policy(&policy)
        .await
        .map_err(|e| write_error(e, &caller.tenant))?;
    tracing::info!(merge_policy_id = %policy.id, default = policy.is_default, "merge policy created");
    Ok(Json(merge_policy_json(&policy)))
}

/// One merge policy: the latest version, or `?version=N`.
#[utoipa::path(
    get, path = "/config/mergePolicies/{id}", tag = "merge policies",
    params(("id" = String, Path, description = "Merge policy id"),
           ("version" = Option<u32>, Query, description = "A version to read instead of the latest")),
    responses((status = 200, description = "The merge policy"), (status = 404, description = "No such policy or version in this sandbox"))
)]
pub async fn get_merge_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let id = MergePolicyId::from_string(id);
    let version = requested_version(&params)?;
    let meta = &state.meta;
    if let Some(policy) = meta
        .merge_policy(&caller.tenant, &id, version)
        .await
        .map_err(storage_failure)?
    {
        return Ok(Json(merge_policy_json(&policy)));
    }
    let latest = match version {
        Some(_) => meta
            .merge_policy(&caller.tenant, &id, None)
            .await
            .map_err(storage_failure)?,
        None => None,
    };
    match (latest, version) {
        (Some(latest), Some(version)) => Err(ApiError::ups(
            StatusCode::NOT_FOUND,
            VERSION_NOT_FOUND,
            format!(
                "Merge policy '{id}' has no version {version}: its versions are 1 to {}. Leave out ?version= for the latest.",
                latest.version
            ),
        )),
        _ => Err(not_found(&id, &caller.tenant)),
    }
}

/// Writes the next version of a policy: `edit` turns the current definition into the new one
/// inside the store's transaction (PUT ignores it, PATCH applies its operations to it).
async fn update(
    state: &AppState,
    caller: &Caller,
    id: String,
    edit: impl FnOnce(&MergePolicy) -> Result<MergePolicyDefinition, ValidationError> + Send,
) -> Result<Json<Value>, ApiError> {
    let id = MergePolicyId::from_string(id);
    let policy = state
        .meta
        .update_merge_policy(&caller.tenant, &id, now_seconds(), edit)
        .await
        .map_err(|e| write_error(e, &caller.tenant))?;
    Ok(Json(merge_policy_json(&policy)))
}

/// Replaces a merge policy's definition, writing its next version.
#[utoipa::path(
    put, path = "/config/mergePolicies/{id}", tag = "merge policies",
    params(("id" = String, Path, description = "Merge policy id")),
    request_body(content = Object, description = "The whole policy, as for create; id, imsOrgId, version and updateEpoch are ignored"),
    responses((status = 200, description = "The merge policy as it now is"),
              (status = 400, description = "A field is missing or invalid"),
              (status = 404, description = "No such policy in this sandbox"),
              (status = 409, description = "The change would leave no default, or a second policy active on edge"))
)]
pub async fn put_merge_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let definition = MergePolicyDefinition::from_json(&body).map_err(|e| ApiError::ups_invalid(INVALID_BODY, e))?;
    update(&state, &caller, id, |_: &MergePolicy| Ok(definition)).await
}

/// Changes fields of a merge policy, writing its next version.
#[utoipa::path(
    patch, path = "/config/mergePolicies/{id}", tag = "merge policies",
    params(("id" = String, Path, description = "Merge policy id")),
    request_body(content = Object, description = "{op: add|replace, path, value} or an array of them; paths /name, /identityGraph.type, /attributeMerge.type, /attributeMerge.order, /schema.name, /default, /isActiveOnEdge (dots or slashes)"),
    responses((status = 200, description = "The merge policy as it now is"),
              (status = 400, description = "An operation or the resulting policy is invalid"),
              (status = 404, description = "No such policy in this sandbox"),
              (status = 409, description = "The change would leave no default, or a second policy active on edge"))
)]
pub async fn patch_merge_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let patch = MergePolicyPatch::from_json(&body).map_err(|e| ApiError::ups_invalid(INVALID_PATCH, e))?;
    update(&state, &caller, id, |current: &MergePolicy| {
        patch.apply(&current.definition())
    })
    .await
}

/// Deletes a merge policy and all its versions. The default and a policy active on edge are
/// refused with 409.
#[utoipa::path(
    delete, path = "/config/mergePolicies/{id}", tag = "merge policies",
    params(("id" = String, Path, description = "Merge policy id")),
    responses((status = 200, description = "Deleted; empty body"),
              (status = 404, description = "No such policy in this sandbox"),
              (status = 409, description = "The policy is the default or active on edge"))
)]
pub async fn delete_merge_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ups_resource::delete::<MergePolicies>(&state, &caller, id).await
}

/// Several merge policies by id: 207 with `results` keyed by id, and `errors` keyed by the ids
/// that are not in this sandbox.
#[utoipa::path(
    post, path = "/config/mergePolicies/bulk-get", tag = "merge policies",
    request_body(content = Object, description = "{ids: [{id}, ...]}"),
    responses((status = 207, description = "{results: {<id>: policy}, errors: {<id>: {status, code, message}}}"),
              (status = 400, description = "The body is not {ids: [...]}"))
)]
pub async fn bulk_get_merge_policies(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    ups_resource::bulk_get::<MergePolicies>(&state, &caller, &body).await
}

/// Merge policies for the handlers they share with segment definitions.
struct MergePolicies;

impl UpsCollection for MergePolicies {
    type Id = MergePolicyId;
    type Item = MergePolicy;
    type WriteError = MergePolicyWriteError;
    const RESOURCE: UpsResource = MERGE_POLICY;
    const INVALID_BULK_GET: &'static str = INVALID_BULK_GET;

    fn parse_id(raw: String) -> MergePolicyId {
        MergePolicyId::from_string(raw)
    }

    fn bulk_get_ids(body: &Value) -> Result<Vec<MergePolicyId>, ValidationError> {
        bulk_get_ids(body)
    }

    fn id_of(policy: &MergePolicy) -> &MergePolicyId {
        &policy.id
    }

    fn write_error(error: MergePolicyWriteError, tenant: &Tenant) -> ApiError {
        write_error(error, tenant)
    }

    async fn by_ids(
        meta: &MetaStore,
        tenant: &Tenant,
        ids: &[MergePolicyId],
    ) -> Result<Vec<MergePolicy>, StorageError> {
        meta.merge_policies_by_id(tenant, ids).await
    }

    async fn delete(meta: &MetaStore, tenant: &Tenant, id: &MergePolicyId) -> Result<(), MergePolicyWriteError> {
        meta.delete_merge_policy(tenant, id).await
    }

    async fn show(_: &AppState, _: &Tenant, policies: &[MergePolicy]) -> Result<Vec<Value>, ApiError> {
        Ok(policies.iter().map(merge_policy_json).collect())
    }
}
