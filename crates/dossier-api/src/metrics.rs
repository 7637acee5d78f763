//! `GET /metrics`: the server's numbers in the Prometheus text format (docs/metrics.md).
//!
//! Each server holds its own [`Registry`] (in [`crate::state::AppState`]); nothing is
//! registered globally, so several servers in one process (the tests) each show only their
//! own requests and jobs. The HTTP numbers are counted here, by a layer around every request;
//! the engine counts jobs, ingestion, folds and lake bytes into its [`EngineMetrics`], which is
//! registered in the same registry.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use dossier_engine::metrics::EngineMetrics;

use crate::error::{ApiError, Service};
use crate::state::AppState;

/// The route label of a request no route matched: never its path, which a caller chooses (one
/// series per scanned URL would grow without bound).
pub const UNMATCHED_ROUTE: &str = "unmatched";

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// Latencies of an API that mostly answers from its metadata store in milliseconds, and of
/// uploads that stream large files for longer.
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

/// A server's metrics: its registry, and the HTTP numbers this crate counts into it.
#[derive(Clone)]
pub struct ServerMetrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// The engine's numbers, in the same registry; the queue depth is read into it at each scrape.
    engine: EngineMetrics,
}

impl ServerMetrics {
    /// A registry with the HTTP metrics and `engine`'s.
    pub fn new(engine: EngineMetrics) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "dossier_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "dossier_http_request_duration_seconds",
            "Time from a request's arrival to its response's headers, by method, route template and status",
            latency.clone(),
        );
        engine.register(&mut registry);
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            engine,
        }
    }

    fn observe(&self, labels: RequestLabels, started: Instant) {
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The route template a request matched, filled in by [`remember_route`] once routing ran: a
/// slot the outer layer puts in the request, so it survives whatever rebuilds the response.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// Methods outside the standard ones share one label, for the same reason as [`UNMATCHED_ROUTE`].
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ]
    .iter()
    .find(|known| *known == method)
    .map_or("OTHER", Method::as_str)
}

/// Middleware, outermost: counts every request and times it, under the route template that
/// [`remember_route`] found for it.
pub async fn record_http(State(metrics): State<ServerMetrics>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let route = slot.0.get().cloned().unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let status = response.status().as_u16();
    metrics.observe(RequestLabels { method, route, status }, started);
    response
}

/// Route middleware: runs only once a route matched, and records its template
/// (`/data/core/ups/export/jobs/{id}`) for [`record_http`].
pub async fn remember_route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(matched)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(matched.as_str().to_owned());
    }
    next.run(request).await
}

/// Whether the scraper asked for OpenMetrics rather than the classic text format.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// The server's metrics, in the Prometheus text format (version 0.0.4), or OpenMetrics when the
/// scraper's `Accept` asks for it. Public, like `/health`: it shows counts and timings, never
/// ids, tokens or data; the route labels are templates.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "The server's metrics, Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let metrics = &state.metrics;
    // A store that does not answer leaves the gauges at their last numbers; the scrape itself
    // still answers, so that the HTTP and job numbers stay visible while the store is down.
    if let Err(error) = metrics.engine.observe_queue(&state.meta).await {
        tracing::warn!(%error, "could not read the job queue's depth for /metrics");
    }
    let openmetrics = wants_openmetrics(&headers);
    let mut body = String::new();
    let encoded = if openmetrics {
        text::encode(&mut body, &metrics.registry)
    } else {
        prometheus_text::encode(&mut body, &metrics.registry)
    };
    if let Err(error) = encoded {
        return ApiError::for_service(
            Service::Platform,
            StatusCode::INTERNAL_SERVER_ERROR,
            "DOSSIER-METRICS-500",
            format!("The metrics could not be written out: {error}. Please report it."),
        )
        .into_response();
    }
    let content_type = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        prometheus_text::CONTENT_TYPE
    };
    ([(CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}
