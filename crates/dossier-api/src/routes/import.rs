//! Batch ingestion: `/data/foundation/import`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use dossier_model::ValidationError;
use dossier_model::catalog::{Batch, BatchStatus, NewIngestBatch};
use dossier_model::ids::BatchId;
use dossier_model::time::now_millis;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
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
    if state.meta.get_dataset(&caller.tenant, &new.dataset_id).await?.is_none() {
        return Err(ApiError::platform_invalid(
            "INGEST-DATASET-400",
            ValidationError::invalid(
                "datasetId",
                &new.dataset_id,
                "no dataset with this id in this sandbox; create it with POST /data/foundation/catalog/dataSets",
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
    };
    state.meta.insert_batch(&batch).await?;
    tracing::info!(batch_id = %batch.id, dataset_id = %batch.dataset_id, "ingestion batch opened");
    Ok((StatusCode::CREATED, Json(batch_json(&batch))))
}
