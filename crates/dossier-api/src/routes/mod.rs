//! The route table: which handler answers which path, and the layers around them.

mod catalog;
mod console;
mod data_access;
mod export_jobs;
mod health;
mod import;
mod ims;
mod merge_policies;
mod profile_access;
mod schedule_runner;
mod schedules;
mod schemas;
mod segment_definitions;
mod segment_jobs;
mod ups_resource;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, middleware};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Service};
use crate::gateway::require_caller;
use crate::state::AppState;
use crate::{json_errors, metrics, request_context};

pub(crate) use schedule_runner::ApiScheduleRunner;

#[derive(OpenApi)]
#[openapi(
    info(title = "Dossier", description = "Adobe Experience Platform's Real-Time Customer Profile export API, self-hosted."),
    tags(
        (name = "auth", description = "IMS-compatible client-credentials tokens"),
        (name = "catalog", description = "Catalog Service: datasets and batches"),
        (name = "ingestion", description = "Batch ingestion"),
        (name = "data access", description = "Listing and downloading the files of committed batches"),
        (name = "merge policies", description = "Real-Time Customer Profile merge policies"),
        (name = "export jobs", description = "Exports of merged profiles into a dataset, queued and run by workers"),
        (name = "profile access", description = "The merged profile of one identity"),
        (name = "segment definitions", description = "Segment definitions: named PQL conditions over profiles"),
        (name = "segment jobs", description = "Evaluations of segment definitions into ups memberships, run by the job workers"),
        (name = "schedules", description = "Schedules: a Quartz cron expression that starts a segment job or an export job at each tick"),
        (name = "schemaregistry", description = "Schema Registry (subset): tenant schemas, union schemas, identity descriptors"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// Routes that every caller reaches without a token.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(metrics::metrics))
        .routes(routes!(ims::issue_token))
}

/// Routes behind the gateway checks (token, API key, org, sandbox): everything under `/data`.
fn protected_routes() -> OpenApiRouter<AppState> {
    let catalog = OpenApiRouter::new()
        .routes(routes!(catalog::create_dataset, catalog::list_datasets))
        .routes(routes!(
            catalog::get_dataset,
            catalog::patch_dataset,
            catalog::delete_dataset
        ))
        .routes(routes!(catalog::list_batches))
        .routes(routes!(catalog::get_batch));
    let import = OpenApiRouter::new()
        .routes(routes!(import::create_batch))
        .routes(routes!(import::batch_action))
        .routes(routes!(import::upload_file));
    let data_access = OpenApiRouter::new()
        .routes(routes!(data_access::batch_files))
        .routes(routes!(data_access::file))
        .routes(routes!(data_access::failed_files))
        .routes(routes!(data_access::preview));
    let schema_registry = OpenApiRouter::new()
        .routes(routes!(schemas::create_schema, schemas::list_schemas))
        .routes(routes!(schemas::get_schema))
        .routes(routes!(schemas::create_descriptor, schemas::list_descriptors))
        .routes(routes!(schemas::get_descriptor));
    OpenApiRouter::new()
        .nest("/data/core/ups", ups_routes())
        .nest("/data/foundation/catalog", catalog)
        .nest("/data/foundation/export", data_access)
        .nest("/data/foundation/import", import)
        .nest("/data/foundation/schemaregistry", schema_registry)
}

/// Real-Time Customer Profile and Segmentation, under `/data/core/ups`.
fn ups_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            merge_policies::list_merge_policies,
            merge_policies::create_merge_policy
        ))
        .routes(routes!(profile_access::get_entity))
        .routes(routes!(export_jobs::list_export_jobs, export_jobs::create_export_job))
        .routes(routes!(export_jobs::get_export_job, export_jobs::cancel_export_job))
        // A static segment wins over `{id}`, so `bulk-get` is never read as a policy id.
        .routes(routes!(merge_policies::bulk_get_merge_policies))
        .routes(routes!(
            merge_policies::get_merge_policy,
            merge_policies::put_merge_policy,
            merge_policies::patch_merge_policy,
            merge_policies::delete_merge_policy
        ))
        .routes(routes!(
            segment_definitions::list_segment_definitions,
            segment_definitions::create_segment_definition
        ))
        .routes(routes!(
            segment_jobs::list_segment_jobs,
            segment_jobs::create_segment_job
        ))
        .routes(routes!(segment_jobs::get_segment_job, segment_jobs::cancel_segment_job))
        // As for merge policies, the static `bulk-get` wins over `{id}`.
        .routes(routes!(segment_definitions::bulk_get_segment_definitions))
        .routes(routes!(
            segment_definitions::get_segment_definition,
            segment_definitions::patch_segment_definition,
            segment_definitions::post_segment_definition,
            segment_definitions::delete_segment_definition
        ))
        .routes(routes!(schedules::list_schedules, schedules::create_schedule))
        .routes(routes!(
            schedules::get_schedule,
            schedules::patch_schedule,
            schedules::delete_schedule
        ))
}

async fn no_route(request: Request) -> Response {
    let path = request.uri().path();
    ApiError::for_service(
        Service::for_path(path),
        StatusCode::NOT_FOUND,
        "DOSSIER-ROUTE-404",
        format!(
            "No resource at {} {path}. Check the path against the API reference (GET /openapi.json).",
            request.method()
        ),
    )
    .into_response()
}

/// The whole application: every route, the OpenAPI document generated from them, and the
/// layers every request passes (the HTTP metrics outermost, then the request id, then JSON error
/// bodies).
pub fn router(state: AppState) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public_routes())
        .merge(protected_routes())
        .split_for_parts();
    let openapi_json = serde_json::to_value(&openapi).expect("the OpenAPI document serializes");
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { Json(openapi_json) }),
        )
        .merge(console::routes())
        .fallback(no_route)
        // The gateway checks guard the whole `/data` tree, unknown paths included, so a caller
        // without a valid token learns nothing about which paths exist.
        .layer(middleware::from_fn_with_state(state.clone(), require_caller))
        // Only a matched route runs this: it names the route template the metrics count under.
        .route_layer(middleware::from_fn(metrics::remember_route))
        .with_state(state.clone())
        .layer(middleware::from_fn(json_errors::ensure_json_errors))
        .layer(middleware::from_fn(request_context::with_request_id))
        .layer(middleware::from_fn_with_state(state.metrics, metrics::record_http))
}
