//! The request id: taken from the caller's `x-request-id` or made up, echoed on every response,
//! recorded on every log line of the request, and put into error bodies. Also the service the
//! request's full path belongs to, so an error made far from the route (a storage failure
//! converted with `?`) still gets the route's error shape.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::Service;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
    static SERVICE: Service;
}

/// The service of the request being handled on this task; the platform's outside a request.
pub fn current_service() -> Service {
    SERVICE.try_with(|service| *service).unwrap_or(Service::Platform)
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn usable_caller_id(value: &HeaderValue) -> Option<String> {
    let id = value.to_str().ok()?.trim();
    (!id.is_empty() && id.len() <= 128).then(|| id.to_owned())
}

/// Middleware: assigns the request id, logs the request, and sets `x-request-id` on the answer.
pub async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(usable_caller_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    // This layer is outermost, so the path is the full one, before any nested router strips it.
    let service = Service::for_path(request.uri().path());
    let mut response = REQUEST_ID
        .scope(id.clone(), SERVICE.scope(service, next.run(request)))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
