//! Request extractors whose rejections are AEP-shaped errors naming what was wrong.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::Value;

use crate::error::{ApiError, Service};

/// A JSON body, any shape: the model validates it field by field so errors can name the field.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let service = Service::for_path(request.uri().path());
        match Json::<Value>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(service, rejection)),
        }
    }
}

fn json_rejection(service: Service, rejection: JsonRejection) -> ApiError {
    let (status, code, message) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "DOSSIER-BODY-415",
            "The body must be JSON: send the header 'Content-Type: application/json'.".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(e) => (
            StatusCode::BAD_REQUEST,
            "DOSSIER-BODY-400",
            format!(
                "The body is not valid JSON: {}. Check quotes, commas and brackets.",
                e.body_text()
            ),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            "DOSSIER-BODY-400",
            format!("The body could not be read: {}", other.body_text()),
        ),
    };
    ApiError::for_service(service, status, code, message)
}

/// The query string as name → value; unknown parameters are simply not looked at.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let service = Service::for_path(parts.uri.path());
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
