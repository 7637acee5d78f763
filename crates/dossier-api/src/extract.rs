//! Request extractors whose rejections are AEP-shaped errors naming what was wrong.
//!
//! The error shape follows the service of the request's full path. Routes are nested (the UPS
//! routes under `/data/core/ups`), and a nested router sees the path with its prefix stripped,
//! so the shape is decided from [`OriginalUri`], never from the path the handler sees.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Query, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use futures::StreamExt;
use serde_json::Value;

use crate::error::{ApiError, Service};
use crate::state::AppState;

/// The service whose error shape a request gets, by its full original path.
pub fn request_service(extensions: &Extensions, uri: &Uri) -> Service {
    let path = extensions
        .get::<OriginalUri>()
        .map_or_else(|| uri.path(), |original| original.0.path());
    Service::for_path(path)
}

/// A JSON body, any shape: the model validates it field by field so errors can name the field.
/// At most `max_json_body_bytes` ([`crate::Limits`]) are read; a larger body answers 413.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let service = request_service(request.extensions(), request.uri());
        let (parts, body) = request.into_parts();
        if !is_json_content_type(&parts.headers) {
            return Err(ApiError::for_service(
                service,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "DOSSIER-BODY-415",
                "The body must be JSON: send the header 'Content-Type: application/json'.",
            ));
        }
        let limit = state.limits.max_json_body_bytes;
        let bytes = read_limited(&parts.headers, body, limit)
            .await
            .map_err(|error| body_error(service, error, limit))?;
        match Json::<Value>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(service, rejection)),
        }
    }
}

/// `application/json`, or any `+json` media type (Adobe's `application/vnd.adobe.xed+json`),
/// with or without parameters.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Why a body could not be read.
enum BodyError {
    /// More than the limit: by its `Content-Length`, or counted while reading.
    TooLarge,
    /// The connection failed while the body was read.
    Read(axum::Error),
}

/// Reads the body, stopping as soon as it is known to be over `limit` bytes, so an oversized
/// body costs at most `limit` bytes of memory.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::with_capacity(declared.map_or(0, |length| length as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if buffer.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

fn body_error(service: Service, error: BodyError, limit: usize) -> ApiError {
    match error {
        BodyError::TooLarge => ApiError::for_service(
            service,
            StatusCode::PAYLOAD_TOO_LARGE,
            "DOSSIER-BODY-413",
            format!(
                "The JSON body is larger than the limit of {limit} bytes (max_json_body_bytes). Send records \
                 through batch ingestion instead (POST /data/foundation/import/batches, then upload files of any \
                 size to the batch), split the request, or ask the operator to raise max_json_body_bytes."
            ),
        ),
        BodyError::Read(error) => ApiError::for_service(
            service,
            StatusCode::BAD_REQUEST,
            "DOSSIER-BODY-400",
            format!("The body could not be read: {error}. Send it again."),
        ),
    }
}

fn json_rejection(service: Service, rejection: JsonRejection) -> ApiError {
    let message = match &rejection {
        JsonRejection::JsonSyntaxError(e) => format!(
            "The body is not valid JSON: {}. Check quotes, commas and brackets.",
            e.body_text()
        ),
        other => format!("The body could not be read: {}", other.body_text()),
    };
    ApiError::for_service(service, StatusCode::BAD_REQUEST, "DOSSIER-BODY-400", message)
}

/// The query string as name → value; unknown parameters are simply not looked at.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let service = request_service(&parts.extensions, &parts.uri);
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| Self(params))
            .map_err(|e| {
                ApiError::for_service(
                    service,
                    StatusCode::BAD_REQUEST,
                    "DOSSIER-QUERY-400",
                    format!("The query string could not be read: {}", e.body_text()),
                )
            })
    }
}
