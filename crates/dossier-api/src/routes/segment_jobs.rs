//! Segment jobs: `/data/core/ups/segment/jobs` — create (an array of `{segmentId}`), list, get
//! and cancel, in AEP's shapes. The jobs run on the job workers (see
//! `dossier_engine::jobs`); errors are UPS-shaped.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use dossier_engine::jobs::segments_of;
use dossier_model::ValidationError;
use dossier_model::listing::next_offset;
use dossier_model::schema::PROFILE_SCHEMA_NAME;
use dossier_model::segment_job::{SegmentJob, SegmentJobListQuery, segment_job_request};
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::{NewSegmentJob, SegmentJobCreation};

use crate::auth::Caller;
use crate::error::{ApiError, Service};
use crate::extract::{JsonBody, QueryParams};
use crate::request_context::current_request_id;
use crate::state::AppState;
use crate::views::sandbox_json;

const PATH: &str = "/data/core/ups/segment/jobs";
const NOT_FOUND: &str = "DOSSIER-SEGMENTJOB-404";
const INVALID_BODY: &str = "DOSSIER-SEGMENTJOB-400";
const UNKNOWN_SEGMENT: &str = "DOSSIER-SEGMENTJOB-SEGMENT-400";
const INVALID_QUERY: &str = "DOSSIER-SEGMENTJOB-QUERY-400";
const QUEUE_FULL: &str = "DOSSIER-SEGMENTJOB-QUEUE-429";
const CANCEL_MESSAGE: &str = "Segment job has been marked for cancelling";

fn not_found(id: &str, tenant: &Tenant) -> ApiError {
    ApiError::ups(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!(
            "Segment job not found: no segment job '{id}' in sandbox '{}'. List them with GET {PATH}.",
            tenant.sandbox
        ),
    )
}

fn status_counts_json(job: &SegmentJob) -> Value {
    let metrics = &job.metrics;
    let total_time = match (metrics.start, metrics.end) {
        (Some(start), Some(end)) => {
            json!({"startTimeInMs": start, "endTimeInMs": end, "totalTimeInMs": end - start})
        }
        (Some(start), None) => json!({"startTimeInMs": start}),
        _ => json!({}),
    };
    let segmentation_time = match (metrics.segmentation_start, metrics.segmentation_end) {
        (Some(start), Some(end)) => {
            json!({"startTimeInMs": start, "endTimeInMs": end, "totalTimeInMs": end - start})
        }
        (Some(start), None) => json!({"startTimeInMs": start}),
        _ => json!({}),
    };
    let by_status: Map<String, Value> = metrics
        .segmented_by_status
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                json!({"realized": c.realized, "existing": c.existing, "exited": c.exited}),
            )
        })
        .collect();
    json!({
        "totalTime": total_time,
        "profileSegmentationTime": segmentation_time,
        "segmentedProfileCounter": metrics.segmented_profiles,
        "segmentedProfileByNamespaceCounter": metrics.segmented_by_namespace,
        "segmentedProfileByStatusCounter": by_status,
        "totalProfiles": metrics.total_profiles,
        "totalProfilesByMergePolicy": metrics.total_profiles_by_merge_policy,
    })
}

/// A job as AEP shows it.
pub fn segment_job_json(job: &SegmentJob) -> Value {
    let segments: Vec<Value> = job
        .segments
        .iter()
        .map(|s| {
            json!({
                "segmentId": s.segment_id,
                "segment": {
                    "id": s.segment_id,
                    "expression": {"type": "PQL", "format": "pql/text", "value": s.expression},
                    "mergePolicyId": s.merge_policy_id,
                    "mergePolicy": {"id": s.merge_policy_id, "version": s.merge_policy_version},
                }
            })
        })
        .collect();
    json!({
        "id": job.id,
        "imsOrgId": job.tenant.org,
        "sandbox": sandbox_json(&job.tenant.sandbox),
        "profileInstanceId": "ups",
        "status": job.status.as_str(),
        "schema": {"name": PROFILE_SCHEMA_NAME},
        "segments": segments,
        "metrics": status_counts_json(job),
        "errors": job.errors,
        "requestId": job.request_id,
        "computeJobId": job.id,
        "creationTime": job.created,
        "updateTime": job.updated,
        "updateEpoch": job.updated / 1000,
    })
}

/// Creates a segment job evaluating the named definitions.
#[utoipa::path(
    post, path = "/segment/jobs", tag = "segment jobs",
    request_body(content = Object, description = "[{\"segmentId\": \"<definition id>\"}, ...]"),
    responses((status = 200, description = "The job (status NEW)"),
              (status = 400, description = "The body is not an array of {segmentId}, or names a definition the sandbox does not have"),
              (status = 429, description = "Too many segment jobs are queued"))
)]
pub async fn create_segment_job(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let ids = segment_job_request(&body).map_err(|e| ApiError::ups_invalid(INVALID_BODY, e))?;
    let job = queue_segment_job(&state, &caller, &ids).await?;
    Ok(Json(segment_job_json(&job)))
}

/// Queues a segment job evaluating the definitions `ids` names: what `POST /segment/jobs` does
/// with a valid body, and what a `batch_segmentation` schedule's tick does
/// (`crate::schedule_runner`).
pub(crate) async fn queue_segment_job(
    state: &AppState,
    caller: &Caller,
    ids: &[String],
) -> Result<SegmentJob, ApiError> {
    let segments = segments_of(&state.meta, &caller.tenant, ids)
        .await
        .map_err(|e| {
            ApiError::ups(
                StatusCode::INTERNAL_SERVER_ERROR,
                "DOSSIER-SEGMENTJOB-500",
                e.to_string(),
            )
        })?
        .map_err(|id| {
            let error = ValidationError::invalid(
                "segmentId",
                &id,
                format!(
                    "there is no segment definition '{id}' in sandbox '{}'; list them with GET \
                     /data/core/ups/segment/definitions",
                    caller.tenant.sandbox
                ),
            );
            ApiError::ups_invalid(UNKNOWN_SEGMENT, error)
        })?;
    let new = NewSegmentJob {
        tenant: caller.tenant.clone(),
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        request_id: current_request_id().unwrap_or_default(),
        segments,
        created_client: caller.client_id.clone(),
        created: now_millis(),
    };
    match state
        .meta
        .create_segment_job(&new, state.limits.max_queued_export_jobs)
        .await
        .map_err(|e| ApiError::storage(Service::Ups, e))?
    {
        SegmentJobCreation::Created(job) => {
            state.jobs.job_queued();
            tracing::info!(job_id = %job.id, segments = job.segments.len(), "segment job queued");
            Ok(*job)
        }
        SegmentJobCreation::QueueFull { queued } => Err(ApiError::ups(
            StatusCode::TOO_MANY_REQUESTS,
            QUEUE_FULL,
            format!(
                "{queued} segment jobs are waiting for a worker, the most this server queues \
                 (max_queued_export_jobs). Retry when some have started, or cancel jobs you no longer need."
            ),
        )),
    }
}

/// Lists the sandbox's segment jobs, newest first.
#[utoipa::path(
    get, path = "/segment/jobs", tag = "segment jobs",
    params(
        ("start" = Option<u64>, Query, description = "Jobs to skip"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("status" = Option<String>, Query, description = "NEW, PROCESSING, SUCCEEDED, FAILED, CANCELLING or CANCELLED"),
        ("sort" = Option<String>, Query, description = "creationTime:desc (default) or creationTime:asc"),
    ),
    responses((status = 200, description = "{_page {totalCount, pageSize, start, next}, children, _links}"),
              (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_segment_jobs(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let query = SegmentJobListQuery::from_params(&params).map_err(|e| ApiError::ups_invalid(INVALID_QUERY, e))?;
    let (jobs, total) = state
        .meta
        .list_segment_jobs(&caller.tenant, query.status, query.ascending, query.start, query.limit)
        .await
        .map_err(|e| ApiError::storage(Service::Ups, e))?;
    // `None` past the last offset a listing takes, so the link never wraps to the first page.
    let next_start = next_offset(query.start, jobs.len()).filter(|next| *next < total);
    let more = next_start.is_some();
    let next = if let Some(next_start) = next_start {
        let sort = if query.ascending { "asc" } else { "desc" };
        let status = query.status.map(|s| format!("&status={s}")).unwrap_or_default();
        Value::String(format!(
            "{PATH}?start={next_start}&limit={}&sort=creationTime:{sort}{status}",
            query.limit
        ))
    } else {
        Value::Null
    };
    let children: Vec<Value> = jobs.iter().map(segment_job_json).collect();
    let links = if more {
        json!({"next": {"href": next}})
    } else {
        json!({})
    };
    Ok(Json(json!({
        "_page": {"totalCount": total, "pageSize": children.len(), "start": query.start, "next": next},
        "children": children,
        "_links": links,
    })))
}

/// One segment job.
#[utoipa::path(
    get, path = "/segment/jobs/{id}", tag = "segment jobs",
    params(("id" = String, Path, description = "Segment job id")),
    responses((status = 200, description = "The job"), (status = 404, description = "No such job in this sandbox"))
)]
pub async fn get_segment_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state
        .meta
        .segment_job(&caller.tenant, &id)
        .await
        .map_err(|e| ApiError::storage(Service::Ups, e))?
        .ok_or_else(|| not_found(&id, &caller.tenant))?;
    Ok(Json(segment_job_json(&job)))
}

/// Cancels a segment job: a NEW one at once, a PROCESSING one within about a second (its
/// memberships stay as they were); an ended job is left as it is.
#[utoipa::path(
    delete, path = "/segment/jobs/{id}", tag = "segment jobs",
    params(("id" = String, Path, description = "Segment job id")),
    responses((status = 200, description = "{\"status\": true, \"message\": \"Segment job has been marked for cancelling\"}"),
              (status = 404, description = "No such job in this sandbox"))
)]
pub async fn cancel_segment_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .jobs
        .cancel_segment_job(&caller.tenant, &id)
        .await
        .map_err(|e| ApiError::storage(Service::Ups, e))?
        .ok_or_else(|| not_found(&id, &caller.tenant))?;
    Ok(Json(json!({ "status": true, "message": CANCEL_MESSAGE })))
}
