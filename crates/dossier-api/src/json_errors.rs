//! Makes every error body JSON.
//!
//! Our handlers answer errors as [`ApiError`]s, but a few answers come from the router and the
//! extractors themselves (405 for a wrong method, 415 for a body without a JSON content type, a
//! bad path parameter). This layer gives those the shape of the service the path belongs to.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Service};

const MAX_REASON_BYTES: usize = 4096;

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"))
}

pub async fn ensure_json_errors(request: Request, next: Next) -> Response {
    let service = Service::for_path(request.uri().path());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let reason = match to_bytes(body, MAX_REASON_BYTES).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let message = match status.as_u16() {
        404 => format!("No resource at {method} {path}. Check the path against the API reference (GET /openapi.json)."),
        405 => format!(
            "{method} is not supported on {path}. Check the method against the API reference (GET /openapi.json)."
        ),
        415 => format!("{reason}. Send the body with the header 'Content-Type: application/json'."),
        _ => reason,
    };
    let code = format!("DOSSIER-HTTP-{}", status.as_u16());
    let mut rebuilt = ApiError::for_service(service, status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}
