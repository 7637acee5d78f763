//! Errors as AEP shapes them, by service.
//!
//! Handlers return [`ApiError`]; it becomes one of AEP's three error bodies (gateway, UPS,
//! platform) at the edge. Every body carries the request id where the shape has a place for it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use dossier_model::ValidationError;
use dossier_storage::StorageError;

use crate::request_context;

/// Which of AEP's services a path belongs to, which decides the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Real-Time Customer Profile and Segmentation: `/data/core/ups`.
    Ups,
    /// Catalog, Data Access, Ingestion, Schema Registry: `/data/foundation/...` and the rest.
    Platform,
}

impl Service {
    pub fn for_path(path: &str) -> Self {
        if path.starts_with("/data/core/ups") {
            Self::Ups
        } else {
            Self::Platform
        }
    }
}

/// An error answered to a caller.
#[derive(Debug)]
pub enum ApiError {
    /// The gateway's header and token checks: `{"error_code", "message"}`.
    Gateway {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    },
    /// UPS endpoints: `{requestId, type, title, status, errors: {"<status>": [{code, message}]}}`.
    Ups {
        status: StatusCode,
        code: String,
        title: String,
        message: String,
    },
    /// Catalog, Data Access, Ingestion, Schema Registry: `{type, status, title, detail}`.
    Platform {
        status: StatusCode,
        code: String,
        title: &'static str,
        detail: String,
    },
}

fn platform_title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BadRequestError",
        StatusCode::NOT_FOUND => "NotFoundError",
        StatusCode::CONFLICT => "ConflictError",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedError",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLargeError",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaTypeError",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
        s if s.is_server_error() => "InternalServerError",
        _ => "RequestError",
    }
}

impl ApiError {
    /// An error for `service` with a stable code; the shape follows the service.
    pub fn for_service(
        service: Service,
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        match service {
            Service::Ups => Self::Ups {
                status,
                code: code.into(),
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                message: message.into(),
            },
            Service::Platform => Self::Platform {
                status,
                code: code.into(),
                title: platform_title(status),
                detail: message.into(),
            },
        }
    }

    /// A UPS (profile, segmentation, export jobs) error.
    pub fn ups(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::for_service(Service::Ups, status, code, message)
    }

    /// Invalid input to a UPS endpoint: names the field, the value and the fix.
    pub fn ups_invalid(code: &str, error: ValidationError) -> Self {
        Self::ups(StatusCode::BAD_REQUEST, code, error.to_string())
    }

    /// A platform (Catalog, Data Access, Ingestion) error.
    pub fn platform(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::for_service(Service::Platform, status, code, detail)
    }

    /// Invalid input to a platform endpoint: names the field, the value and the fix.
    pub fn platform_invalid(code: &str, error: ValidationError) -> Self {
        Self::platform(StatusCode::BAD_REQUEST, code, error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Gateway { status, .. } | Self::Ups { status, .. } | Self::Platform { status, .. } => *status,
        }
    }
}

impl ApiError {
    /// A storage failure in `service`'s shape: 503 when a dependency is down, else 500.
    pub fn storage(service: Service, error: StorageError) -> Self {
        let unavailable = error.is_unavailable();
        tracing::error!(%error, "storage failure");
        let status = if unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::for_service(
            service,
            status,
            "DOSSIER-STORAGE-500",
            format!("The server could not read or write its storage: {error}"),
        )
    }
}

/// A storage failure answered in the shape of the request's service, wherever it was converted.
impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::storage(request_context::current_service(), error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = request_context::current_request_id();
        let status = self.status();
        let body = match self {
            Self::Gateway { code, message, .. } => json!({ "error_code": code, "message": message }),
            Self::Ups {
                code, title, message, ..
            } => json!({
                "requestId": request_id,
                "type": format!("https://ns.adobe.com/aep/errors/{code}"),
                "title": title,
                "status": status.as_u16(),
                "errors": { status.as_str(): [{ "code": code, "message": message }] },
            }),
            Self::Platform {
                code, title, detail, ..
            } => json!({
                "type": format!("https://ns.adobe.com/aep/errors/{code}"),
                "status": status.as_u16(),
                "title": title,
                "detail": detail,
                "requestId": request_id,
            }),
        };
        (status, Json(body)).into_response()
    }
}
