//! `POST /ims/token/v3`: client-credentials tokens, as Adobe IMS answers them.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

fn ims_error(status: StatusCode, error: &str, description: String) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Exchanges a client id and secret for an access token (`grant_type=client_credentials`).
#[utoipa::path(
    post, path = "/ims/token/v3", tag = "auth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
                 description = "grant_type=client_credentials&client_id=..&client_secret=..&scope=.."),
    responses(
        (status = 200, description = "{\"access_token\", \"token_type\": \"bearer\", \"expires_in\"}"),
        (status = 400, description = "A parameter is missing or the grant type is not client_credentials"),
        (status = 401, description = "Unknown client, wrong secret, or revoked client"),
    )
)]
pub async fn issue_token(State(state): State<AppState>, Form(form): Form<HashMap<String, String>>) -> Response {
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return ims_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type '{other}' is not supported; use client_credentials"),
            );
        }
        None => {
            return ims_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type parameter; use grant_type=client_credentials".into(),
            );
        }
    }
    let (Some(client_id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing client_id or client_secret parameter".into(),
        );
    };
    let client = match state.meta.authenticate_client(client_id, secret).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return ims_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client_id, wrong client_secret, or the client was revoked".into(),
            );
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let token = state.tokens.issue(&client);
    Json(json!({ "access_token": token.access_token, "token_type": "bearer", "expires_in": token.expires_in_secs }))
        .into_response()
}
