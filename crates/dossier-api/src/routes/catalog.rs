//! Catalog: `/data/foundation/catalog` — datasets and batches.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header::LOCATION};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use dossier_model::ValidationError;
use dossier_model::catalog::{BatchStatus, DataBehavior, Dataset, DatasetPatch, NewDataset};
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::listing::ListQuery;
use dossier_model::schema::PROFILE_UNION_SCHEMA_ID;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_model::xdm::UnionConflict;
use dossier_storage::meta::{BATCH_SORTABLE, BatchFilter, DATASET_SORTABLE, DatasetDeletion, DatasetFilter};
use dossier_storage::{Lake, MetaStore};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::views::{batch_json, dataset_json, keyed_by_id};

fn dataset_not_found(id: &DatasetId) -> ApiError {
    ApiError::platform(
        StatusCode::NOT_FOUND,
        "CAT-DATASET-404",
        format!("DataSet not found: no dataset '{id}' in this sandbox."),
    )
}

fn batch_not_found(id: &BatchId) -> ApiError {
    ApiError::platform(
        StatusCode::NOT_FOUND,
        "CAT-BATCH-404",
        format!("Batch not found: no batch '{id}' in this sandbox."),
    )
}

/// The schema a new dataset names, as `(canonical $id, data behavior)`. It is the profile union
/// (export targets, records) or a schema of the sandbox's registry, named by `$id` or
/// `meta:altId`, whose class decides whether the dataset holds records or time series.
async fn dataset_schema(
    meta: &MetaStore,
    tenant: &Tenant,
    schema_id: &str,
) -> Result<(String, DataBehavior), ApiError> {
    if schema_id == PROFILE_UNION_SCHEMA_ID {
        return Ok((schema_id.to_owned(), DataBehavior::Record));
    }
    match meta.get_schema(tenant, schema_id).await? {
        Some(registered) => Ok((registered.schema.id, registered.schema.class.data_behavior())),
        None => Err(ApiError::platform_invalid(
            "CAT-SCHEMA-400",
            ValidationError::invalid(
                "schemaRef.id",
                schema_id,
                format!(
                    "no such schema in sandbox '{}'; create one with POST /data/foundation/schemaregistry/tenant/schemas, \
                     or use {PROFILE_UNION_SCHEMA_ID} for export targets",
                    tenant.sandbox
                ),
            ),
        )),
    }
}

/// A dataset whose schema does not fit its class's union cannot feed the profile store: the
/// user must rename or retype the field, Dossier never picks one of the two types.
/// `refused` says what was refused, e.g. "Dataset '…' cannot be enabled for the profile store".
fn union_conflict(refused: &str, conflict: &UnionConflict) -> ApiError {
    ApiError::platform(
        StatusCode::CONFLICT,
        "CAT-UNION-409",
        format!(
            "{refused} (unifiedProfile): schema '{}' declares field '{}' as {}, but the union schema of its \
             class has it as {} (from the built-in class or the schema of another profile-enabled dataset). \
             Use a schema that gives the field the union's type or another name.",
            conflict.schema_id, conflict.path, conflict.schema_type, conflict.union_type
        ),
    )
}

/// Creates a dataset.
#[utoipa::path(
    post, path = "/dataSets", tag = "catalog",
    request_body(content = Object, description = "name, description, schemaRef {id, contentType}, fileDescription, tags, aspect"),
    responses((status = 201, description = "[\"@/dataSets/<id>\"] with a Location header"), (status = 400, description = "A field is missing or invalid, or the schema is unknown"), (status = 409, description = "unifiedProfile enabled on a schema that conflicts with its class's union schema"))
)]
pub async fn create_dataset(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut new = NewDataset::from_json(&body).map_err(|e| ApiError::platform_invalid("CAT-DATASET-400", e))?;
    let (schema_id, data_behavior) = dataset_schema(&state.meta, &caller.tenant, &new.schema_ref.id).await?;
    new.schema_ref.id = schema_id;
    let now = now_millis();
    let dataset = Dataset {
        id: DatasetId::generate(),
        org: caller.tenant.org.clone(),
        sandbox: caller.tenant.sandbox.clone(),
        name: new.name,
        description: new.description,
        schema_ref: new.schema_ref,
        file_description: new.file_description,
        tags: new.tags,
        aspect: new.aspect,
        data_behavior,
        created: now,
        updated: now,
        created_client: caller.client_id,
        last_batch_id: None,
        last_batch_status: None,
    };
    state
        .meta
        .insert_dataset_checked(&dataset)
        .await?
        .map_err(|conflict| union_conflict("The dataset cannot be created enabled for the profile store", &conflict))?;
    tracing::info!(dataset_id = %dataset.id, "dataset created");
    let reference = format!("@/dataSets/{}", dataset.id);
    let location = format!("/data/foundation/catalog/dataSets/{}", dataset.id);
    let mut response = (StatusCode::CREATED, Json(json!([reference]))).into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_str(&location).expect("ids are URL-safe"));
    Ok(response)
}

/// Lists datasets, keyed by id.
#[utoipa::path(
    get, path = "/dataSets", tag = "catalog",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
        ("start" = Option<u64>, Query, description = "Objects to skip"),
        ("orderBy" = Option<String>, Query, description = "[asc:|desc:]created|updated|name"),
        ("properties" = Option<String>, Query, description = "Comma list of fields to return"),
        ("name" = Option<String>, Query, description = "Only datasets with exactly this name"),
    ),
    responses((status = 200, description = "An object keyed by dataset id"), (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_datasets(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = ListQuery::from_params(&params, DATASET_SORTABLE)
        .map_err(|e| ApiError::platform_invalid("CAT-QUERY-400", e))?;
    let filter = DatasetFilter {
        name: params.get("name").cloned(),
    };
    let datasets = state.meta.list_datasets(&caller.tenant, &query, &filter).await?;
    Ok(Json(keyed_by_id(
        datasets.iter().map(|d| (d.id.as_str(), dataset_json(d))),
        query.properties.as_deref(),
    )))
}

/// One dataset, keyed by its id.
#[utoipa::path(get, path = "/dataSets/{id}", tag = "catalog", params(("id" = String, Path, description = "Dataset id")),
    responses((status = 200, description = "{\"<id>\": {...}}"), (status = 404, description = "No such dataset in this sandbox")))]
pub async fn get_dataset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = DatasetId::from_string(id);
    let dataset = state
        .meta
        .get_dataset(&caller.tenant, &id)
        .await?
        .ok_or_else(|| dataset_not_found(&id))?;
    let properties: Option<Vec<String>> = params
        .get("properties")
        .map(|p| p.split(',').map(|s| s.trim().to_owned()).collect());
    Ok(Json(keyed_by_id(
        [(dataset.id.as_str(), dataset_json(&dataset))],
        properties.as_deref(),
    )))
}

/// Changes a dataset's name, description or tags.
#[utoipa::path(patch, path = "/dataSets/{id}", tag = "catalog", params(("id" = String, Path, description = "Dataset id")),
    request_body(content = Object, description = "name, description, tags"),
    responses((status = 200, description = "[\"@/dataSets/<id>\"]"), (status = 400, description = "Invalid or immutable field"), (status = 404, description = "No such dataset in this sandbox"), (status = 409, description = "The patch enables unifiedProfile on a schema that conflicts with its class's union schema")))]
pub async fn patch_dataset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = DatasetId::from_string(id);
    let patch = DatasetPatch::from_json(&body).map_err(|e| ApiError::platform_invalid("CAT-DATASET-400", e))?;
    state
        .meta
        .update_dataset_checked(&caller.tenant, &id, &patch, now_millis())
        .await?
        .map_err(|conflict| {
            union_conflict(
                &format!("Dataset '{id}' cannot be enabled for the profile store"),
                &conflict,
            )
        })?
        .ok_or_else(|| dataset_not_found(&id))?;
    Ok(Json(json!([format!("@/dataSets/{id}")])))
}

/// Deletes a dataset with its batches and files.
#[utoipa::path(delete, path = "/dataSets/{id}", tag = "catalog", params(("id" = String, Path, description = "Dataset id")),
    responses((status = 200, description = "[\"@/dataSets/<id>\"]"), (status = 404, description = "No such dataset in this sandbox"),
              (status = 409, description = "An export job that is NEW or PROCESSING writes into the dataset")))]
pub async fn delete_dataset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = DatasetId::from_string(id);
    match state.meta.delete_dataset(&caller.tenant, &id).await? {
        DatasetDeletion::Deleted => {}
        DatasetDeletion::NotFound => return Err(dataset_not_found(&id)),
        DatasetDeletion::ExportInProgress { job_id } => {
            return Err(ApiError::platform(
                StatusCode::CONFLICT,
                "CAT-DATASET-EXPORT-409",
                format!(
                    "Dataset '{id}' cannot be deleted while export job {job_id} writes into it. Wait until the job \
                     ends (GET /data/core/ups/export/jobs/{job_id}) or cancel it (DELETE on the same path), then retry."
                ),
            ));
        }
    }
    // The metadata is gone, so no reader can reach these files any more; removing them is
    // cleanup, and a failure here leaves unreachable files rather than a half-deleted dataset.
    if let Err(error) = state
        .lake
        .delete_prefix(&Lake::dataset_prefix(&caller.tenant, &id))
        .await
    {
        tracing::warn!(%error, dataset_id = %id, "dataset deleted but some of its files could not be removed");
    }
    tracing::info!(dataset_id = %id, "dataset deleted");
    Ok(Json(json!([format!("@/dataSets/{id}")])))
}

/// Lists batches, keyed by id.
#[utoipa::path(
    get, path = "/batches", tag = "catalog",
    params(
        ("dataSet" = Option<String>, Query, description = "Only batches of this dataset"),
        ("status" = Option<String>, Query, description = "loading, processing, success, failed, aborted"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
        ("start" = Option<u64>, Query, description = "Objects to skip"),
        ("orderBy" = Option<String>, Query, description = "[asc:|desc:]created|updated|status"),
    ),
    responses((status = 200, description = "An object keyed by batch id"), (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_batches(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query =
        ListQuery::from_params(&params, BATCH_SORTABLE).map_err(|e| ApiError::platform_invalid("CAT-QUERY-400", e))?;
    let status = params
        .get("status")
        .map(|s| s.parse::<BatchStatus>())
        .transpose()
        .map_err(|e| ApiError::platform_invalid("CAT-QUERY-400", e))?;
    let filter = BatchFilter {
        dataset_id: params.get("dataSet").map(|id| DatasetId::from_string(id.clone())),
        status,
    };
    let batches = state.meta.list_batches(&caller.tenant, &query, &filter).await?;
    Ok(Json(keyed_by_id(
        batches.iter().map(|b| (b.id.as_str(), batch_json(b))),
        query.properties.as_deref(),
    )))
}

/// One batch, keyed by its id.
#[utoipa::path(get, path = "/batches/{id}", tag = "catalog", params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, description = "{\"<id>\": {...}}"), (status = 404, description = "No such batch in this sandbox")))]
pub async fn get_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = BatchId::from_string(id);
    let batch = state
        .meta
        .get_batch(&caller.tenant, &id)
        .await?
        .ok_or_else(|| batch_not_found(&id))?;
    Ok(Json(keyed_by_id([(batch.id.as_str(), batch_json(&batch))], None)))
}
