//! `/health` and `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// Liveness and readiness: answers 200 when the metadata store and the lake answer, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "The server and its storage are up"), (status = 503, description = "A dependency is down")))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let metadata = state.meta.ping().await;
    let body = json!({ "status": if metadata.is_ok() { "ok" } else { "unavailable" }, "metadataStore": metadata.as_ref().map_or_else(|e| e.to_string(), |_| "ok".to_owned()) });
    let status = if metadata.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
