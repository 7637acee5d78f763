//! Batch ingestion: `/data/foundation/import`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use dossier_model::ValidationError;
use dossier_model::catalog::{Batch, BatchStatus, NewIngestBatch};
use dossier_model::ids::BatchId;
use dossier_model::time::now_millis;
use dossier_storage::meta::{BatchUpload, UploadRecording};
use dossier_storage::{Lake, WriteStreamError};
use object_store::path::Path as ObjectPath;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::views::batch_json;

/// Opens an ingestion batch on a dataset; files are uploaded into it next.
#[utoipa::path(
    post, path = "/batches", tag = "ingestion",
    request_body(content = Object, description = "{\"datasetId\", \"inputFormat\": {\"format\": \"json\"|\"parquet\"|\"csv\", \"isMultiLineJson\"}}"),
    responses((status = 201, description = "The batch, status loading"), (status = 400, description = "Invalid body or unknown dataset"))
)]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewIngestBatch::from_json(&body).map_err(|e| ApiError::platform_invalid("INGEST-BATCH-400", e))?;
    let Some(dataset) = state.meta.get_dataset(&caller.tenant, &new.dataset_id).await? else {
        return Err(ApiError::platform_invalid(
            "INGEST-DATASET-400",
            ValidationError::invalid(
                "datasetId",
                &new.dataset_id,
                "no dataset with this id in this sandbox; create it with POST /data/foundation/catalog/dataSets",
            ),
        ));
    };
    if dataset.schema_ref.id == dossier_model::schema::PROFILE_UNION_SCHEMA_ID {
        return Err(ApiError::platform_invalid(
            "INGEST-DATASET-400",
            ValidationError::invalid(
                "datasetId",
                &new.dataset_id,
                "this dataset uses the profile union schema and receives exports; ingest into a dataset of a profile or event schema",
            ),
        ));
    }
    let now = now_millis();
    let batch = Batch {
        id: BatchId::generate(),
        org: caller.tenant.org.clone(),
        sandbox: caller.tenant.sandbox.clone(),
        dataset_id: new.dataset_id.clone(),
        status: BatchStatus::Loading,
        created: now,
        updated: now,
        started: None,
        completed: None,
        record_count: None,
        size: None,
        records_read: None,
        errors: Vec::new(),
        input_format: Some(new.input_format_json()),
        created_client: caller.client_id,
        partial_ingestion: new.partial_ingestion,
    };
    state.meta.insert_batch(&batch).await?;
    tracing::info!(batch_id = %batch.id, dataset_id = %batch.dataset_id, "ingestion batch opened");
    Ok((StatusCode::CREATED, Json(batch_json(&batch))))
}

fn batch_not_found(id: &BatchId) -> ApiError {
    ApiError::platform(
        StatusCode::NOT_FOUND,
        "INGEST-BATCH-404",
        format!("Batch not found: no ingestion batch '{id}' in this sandbox."),
    )
}

/// A file name is one path segment a user would recognise: no folders, no dot-files.
fn check_file_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::platform_invalid(
            "INGEST-FILE-400",
            ValidationError::invalid(
                "fileName",
                name,
                "use 1 to 255 letters, digits, '.', '_' or '-', not starting with '.'",
            ),
        ))
    }
}

/// Uploads one file into an open batch, streamed to the lake (never held in memory).
#[utoipa::path(
    put, path = "/batches/{batchId}/datasets/{datasetId}/files/{fileName}", tag = "ingestion",
    params(("batchId" = String, Path), ("datasetId" = String, Path), ("fileName" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Stored"), (status = 404, description = "No such batch"), (status = 409, description = "The batch is no longer open"), (status = 413, description = "Larger than the upload limit"))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((batch_id, dataset_id, file_name)): Path<(String, String, String)>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let batch_id = BatchId::from_string(batch_id);
    check_file_name(&file_name)?;
    let batch = state
        .meta
        .get_batch(&caller.tenant, &batch_id)
        .await?
        .filter(|b| b.is_ingestion())
        .ok_or_else(|| batch_not_found(&batch_id))?;
    if batch.dataset_id.as_str() != dataset_id {
        return Err(ApiError::platform_invalid(
            "INGEST-DATASET-400",
            ValidationError::invalid(
                "datasetId",
                &dataset_id,
                format!("batch {batch_id} loads into dataset {}", batch.dataset_id),
            ),
        ));
    }
    if batch.status != BatchStatus::Loading {
        return Err(batch_not_loading(&batch_id, batch.status));
    }
    let location = Lake::new_upload_path(&caller.tenant, &batch_id, &file_name);
    let streamed = state
        .lake
        .write_stream(&location, body.into_data_stream(), state.limits.max_upload_bytes)
        .await;
    let written = match streamed {
        Ok(written) => written,
        Err(error) => {
            // Whatever a cut-short write left (the store's temp file) goes with the refusal.
            let _ = state.lake.remove_upload(&location).await;
            return Err(upload_failed(&state, &caller, &batch_id, &file_name, error).await);
        }
    };
    let upload = BatchUpload {
        name: file_name.clone(),
        path: location.to_string(),
        size: written as i64,
    };
    match state
        .meta
        .record_upload(&caller.tenant, &batch_id, &upload, now_millis())
        .await?
    {
        UploadRecording::Recorded { replaced } => {
            // An earlier upload of the same name is replaced, as a re-PUT of a file is.
            if let Some(Ok(old)) = replaced.as_deref().map(ObjectPath::parse) {
                let _ = state.lake.remove_upload(&old).await;
            }
        }
        UploadRecording::NotLoading(status) => {
            let _ = state.lake.remove_upload(&location).await;
            return Err(batch_not_loading(&batch_id, status));
        }
        UploadRecording::NoBatch => {
            let _ = state.lake.remove_upload(&location).await;
            return Err(batch_not_found(&batch_id));
        }
    }
    tracing::info!(batch_id = %batch_id, file = %file_name, bytes = written, "file uploaded");
    Ok(StatusCode::OK)
}

/// 409 for an upload to a batch that is not (or no longer) loading.
fn batch_not_loading(batch_id: &BatchId, status: BatchStatus) -> ApiError {
    ApiError::platform(
        StatusCode::CONFLICT,
        "INGEST-BATCH-409",
        format!(
            "Batch {batch_id} is {status}; files can only be uploaded while it is loading, and this upload was not \
             stored. Open a new batch and upload the file there."
        ),
    )
}

/// The answer to an upload whose bytes could not be staged. A lake failure while the batch left
/// `loading` (COMPLETE or ABORT cleared its staging folder under the upload) is that conflict.
async fn upload_failed(
    state: &AppState,
    caller: &Caller,
    batch_id: &BatchId,
    file_name: &str,
    error: WriteStreamError,
) -> ApiError {
    match error {
        WriteStreamError::TooLarge { max_bytes } => ApiError::platform(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INGEST-FILE-413",
            format!(
                "File '{file_name}' is larger than the upload limit of {max_bytes} bytes; split it into several files of one batch."
            ),
        ),
        WriteStreamError::Source(reason) => ApiError::platform(
            StatusCode::BAD_REQUEST,
            "INGEST-FILE-400",
            format!("The upload of '{file_name}' broke off: {reason}"),
        ),
        WriteStreamError::Lake(reason) => {
            let status = state
                .meta
                .get_batch(&caller.tenant, batch_id)
                .await
                .ok()
                .flatten()
                .map(|b| b.status);
            match status {
                Some(status) if status != BatchStatus::Loading => batch_not_loading(batch_id, status),
                _ => ApiError::platform(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "INGEST-LAKE-503",
                    format!("The lake could not store '{file_name}': {reason}"),
                ),
            }
        }
    }
}

/// `?action=COMPLETE` starts loading the batch; `?action=ABORT` discards it.
#[utoipa::path(
    post, path = "/batches/{batchId}", tag = "ingestion",
    params(("batchId" = String, Path), ("action" = String, Query, description = "COMPLETE or ABORT")),
    responses((status = 200, description = "Accepted; poll the Catalog batch for its status"), (status = 400, description = "Unknown action"), (status = 404, description = "No such batch"), (status = 409, description = "The batch cannot take this action in its state"))
)]
pub async fn batch_action(
    State(state): State<AppState>,
    caller: Caller,
    Path(batch_id): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<StatusCode, ApiError> {
    let batch_id = BatchId::from_string(batch_id);
    let action = params.get("action").map(|a| a.to_ascii_uppercase());
    let now = now_millis();
    let tenant = &caller.tenant;
    let exists = state
        .meta
        .get_batch(tenant, &batch_id)
        .await?
        .is_some_and(|b| b.is_ingestion());
    if !exists {
        return Err(batch_not_found(&batch_id));
    }
    match action.as_deref() {
        Some("COMPLETE") => {
            let (batch, started) = state
                .meta
                .start_ingestion(tenant, &batch_id, &state.ingestion.worker(), now)
                .await?
                .ok_or_else(|| batch_not_found(&batch_id))?;
            if started {
                state.ingestion.spawn(tenant.clone(), batch_id);
            } else if batch.status == BatchStatus::Aborted {
                return Err(ApiError::platform(
                    StatusCode::CONFLICT,
                    "INGEST-BATCH-409",
                    format!("Batch {batch_id} was aborted; it cannot be completed."),
                ));
            }
            // Completing a batch that is already processing or done changes nothing: COMPLETE is safe to retry.
            Ok(StatusCode::OK)
        }
        Some("ABORT") => {
            let (batch, aborted) = state
                .meta
                .transition_batch(
                    tenant,
                    &batch_id,
                    &[BatchStatus::Loading, BatchStatus::Processing],
                    BatchStatus::Aborted,
                    now,
                )
                .await?
                .ok_or_else(|| batch_not_found(&batch_id))?;
            if aborted {
                state.lake.remove_staging(tenant, &batch_id).await?;
            } else if batch.status != BatchStatus::Aborted {
                return Err(ApiError::platform(
                    StatusCode::CONFLICT,
                    "INGEST-BATCH-409",
                    format!(
                        "Batch {batch_id} is {}; only a loading or processing batch can be aborted.",
                        batch.status
                    ),
                ));
            }
            Ok(StatusCode::OK)
        }
        other => Err(ApiError::platform_invalid(
            "INGEST-ACTION-400",
            ValidationError::invalid(
                "action",
                other.unwrap_or(""),
                "use ?action=COMPLETE to load the batch or ?action=ABORT to discard it",
            ),
        )),
    }
}
