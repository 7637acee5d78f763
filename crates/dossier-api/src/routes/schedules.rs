//! Schedules: `/data/core/ups/config/schedules` — list, create, get, PATCH (JSON Patch) and
//! DELETE, in AEP's shapes. The scheduler that runs them is `dossier_engine::jobs::Scheduler`,
//! starting jobs through `schedule_runner.rs`; errors are UPS-shaped.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use dossier_model::listing::next_page_start;
use dossier_model::schedule::{Schedule, ScheduleListQuery, SchedulePatch, ScheduleSpec, schedule_json};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;

use crate::auth::Caller;
use crate::error::{ApiError, Service};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::views::sandbox_json;

const PATH: &str = "/data/core/ups/config/schedules";
const NOT_FOUND: &str = "DOSSIER-SCHEDULE-404";
const INVALID_BODY: &str = "DOSSIER-SCHEDULE-400";
const INVALID_PATCH: &str = "DOSSIER-SCHEDULE-PATCH-400";
const INVALID_QUERY: &str = "DOSSIER-SCHEDULE-QUERY-400";
/// How often a PATCH retries when other changes keep coming first.
const PATCH_ATTEMPTS: usize = 5;

fn not_found(id: &str, tenant: &Tenant) -> ApiError {
    ApiError::ups(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!(
            "Schedule not found: no schedule '{id}' in sandbox '{}'. List them with GET {PATH}.",
            tenant.sandbox
        ),
    )
}

fn storage_failure(error: dossier_storage::StorageError) -> ApiError {
    ApiError::storage(Service::Ups, error)
}

/// A schedule as AEP shows it.
fn shown(schedule: &Schedule) -> Value {
    schedule_json(schedule, sandbox_json(&schedule.sandbox))
}

/// Lists the sandbox's schedules, oldest first.
#[utoipa::path(
    get, path = "/config/schedules", tag = "schedules",
    params(
        ("start" = Option<u64>, Query, description = "Schedules to skip (default 0)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses((status = 200, description = "{_page {totalCount, pageSize}, children, _links {next {href}}}"),
              (status = 400, description = "start or limit is invalid"))
)]
pub async fn list_schedules(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let query = ScheduleListQuery::from_params(&params).map_err(|e| ApiError::ups_invalid(INVALID_QUERY, e))?;
    let page = state
        .meta
        .list_schedules(&caller.tenant, &query)
        .await
        .map_err(storage_failure)?;
    let children: Vec<Value> = page.items.iter().map(shown).collect();
    let next = next_page_start(query.start, children.len(), page.total)
        .map(|start| format!("@/config/schedules?start={start}&limit={}", query.limit))
        .unwrap_or_default();
    Ok(Json(json!({
        "_page": { "totalCount": page.total, "pageSize": children.len() },
        "children": children,
        "_links": { "next": { "href": next } },
    })))
}

/// Creates a schedule (inactive unless `state` says `active`).
#[utoipa::path(
    post, path = "/config/schedules", tag = "schedules",
    request_body(content = Object, description = "name, type (batch_segmentation or export), properties {segments} or {exportJob}, schedule (Quartz cron), state (active or inactive), description"),
    responses((status = 200, description = "The schedule, with id, imsOrgId, sandbox, createEpoch, updateEpoch"),
              (status = 400, description = "A field is missing or invalid; the message names it, the value and the fix"))
)]
pub async fn create_schedule(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let spec = ScheduleSpec::from_json(&body).map_err(|e| ApiError::ups_invalid(INVALID_BODY, e))?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let schedule = Schedule::new(id, &caller.tenant, spec, now_millis());
    state.meta.create_schedule(&schedule).await.map_err(storage_failure)?;
    tracing::info!(schedule_id = %schedule.id, state = %schedule.spec.state, "schedule created");
    Ok(Json(shown(&schedule)))
}

/// One schedule.
#[utoipa::path(
    get, path = "/config/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id")),
    responses((status = 200, description = "The schedule"),
              (status = 404, description = "No such schedule in this sandbox"))
)]
pub async fn get_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let schedule = state
        .meta
        .schedule(&caller.tenant, &id)
        .await
        .map_err(storage_failure)?
        .ok_or_else(|| not_found(&id, &caller.tenant))?;
    Ok(Json(shown(&schedule)))
}

/// Changes a schedule with JSON Patch operations, e.g. `[{"op": "add", "path": "/state",
/// "value": "active"}]`; answers 204 as AEP does.
#[utoipa::path(
    patch, path = "/config/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id")),
    request_body(content = Object, description = "[{\"op\": \"add\"|\"replace\"|\"remove\", \"path\": \"/state\"|\"/schedule\"|\"/name\"|\"/description\"|\"/properties/segments\"|\"/properties/exportJob\", \"value\": ...}]"),
    responses((status = 204, description = "Changed"),
              (status = 400, description = "An operation or the resulting schedule is invalid"),
              (status = 404, description = "No such schedule in this sandbox"))
)]
pub async fn patch_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let patch = SchedulePatch::from_json(&body).map_err(|e| ApiError::ups_invalid(INVALID_PATCH, e))?;
    // A compare-and-set on `updated`: a PATCH that lost a race reads the schedule again and
    // applies its operations to the newer version, so neither change is lost.
    for _ in 0..PATCH_ATTEMPTS {
        let current = state
            .meta
            .schedule(&caller.tenant, &id)
            .await
            .map_err(storage_failure)?
            .ok_or_else(|| not_found(&id, &caller.tenant))?;
        // The type is not patchable: `apply` keeps it.
        let spec = patch
            .apply(&current.spec)
            .map_err(|e| ApiError::ups_invalid(INVALID_PATCH, e))?;
        let changed = current.changed(spec, now_millis());
        if state
            .meta
            .replace_schedule(&changed, current.updated)
            .await
            .map_err(storage_failure)?
        {
            tracing::info!(schedule_id = %id, state = %changed.spec.state, "schedule changed");
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    Err(ApiError::ups(
        StatusCode::CONFLICT,
        "DOSSIER-SCHEDULE-409",
        format!("Schedule '{id}' kept changing while this PATCH applied; send it again."),
    ))
}

/// Deletes a schedule; jobs it started are kept.
#[utoipa::path(
    delete, path = "/config/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such schedule in this sandbox"))
)]
pub async fn delete_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !state
        .meta
        .delete_schedule(&caller.tenant, &id)
        .await
        .map_err(storage_failure)?
    {
        return Err(not_found(&id, &caller.tenant));
    }
    tracing::info!(schedule_id = %id, "schedule deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
