//! Export jobs: `/data/core/ups/export/jobs` — create (with `Idempotency-Key`), list, get and
//! cancel, in AEP's shapes. Errors are UPS-shaped; every refused create has its own code.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use dossier_engine::jobs::segments_of;
use dossier_model::ValidationError;
use dossier_model::export_job::DEFAULT_SEGMENT_NS;
use dossier_model::export_job::{ExportJob, ExportJobListQuery, ExportJobOffset, export_job_cursor};
use dossier_model::export_request::{ExportJobRequest, ExportRequestError, ExportRule};
use dossier_model::ids::BatchId;
use dossier_model::merge_policy::MergePolicy;
use dossier_model::schema::PROFILE_SCHEMA_NAME;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_storage::meta::{ExportJobCreation, ExportJobListing, IdempotencyKey, NewExportJob};
use dossier_storage::{MetaStore, StorageError};

use crate::auth::Caller;
use crate::error::{ApiError, Service};
use crate::extract::{JsonBody, QueryParams};
use crate::request_context::current_request_id;
use crate::state::AppState;
use crate::views::export_job_json;

const NOT_FOUND: &str = "DOSSIER-EXPORTJOB-404";
const UNKNOWN_SEGMENT_DEFINITION: &str = "DOSSIER-EXPORTJOB-SEGMENT-DEFINITION-400";
const INVALID_QUERY: &str = "DOSSIER-EXPORTJOB-QUERY-400";
const INVALID_IDEMPOTENCY_KEY: &str = "DOSSIER-EXPORTJOB-IDEMPOTENCY-KEY-400";
const IDEMPOTENCY_KEY_REUSED: &str = "DOSSIER-EXPORTJOB-IDEMPOTENCY-409";
const QUEUE_FULL: &str = "DOSSIER-EXPORTJOB-QUEUE-429";
const NO_DEFAULT_MERGE_POLICY: &str = "DOSSIER-EXPORTJOB-DEFAULT-MERGEPOLICY-500";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const CANCEL_MESSAGE: &str = "Export job has been marked for cancelling";

/// The code of each refused create: stable, one per rule.
fn rule_code(rule: ExportRule) -> &'static str {
    match rule {
        ExportRule::Body => "DOSSIER-EXPORTJOB-BODY-400",
        ExportRule::Fields => "DOSSIER-EXPORTJOB-FIELDS-400",
        ExportRule::FieldNotInProfileUnion => "DOSSIER-EXPORTJOB-FIELDS-UNKNOWN-400",
        ExportRule::MergePolicy => "DOSSIER-EXPORTJOB-MERGEPOLICY-400",
        ExportRule::UnknownMergePolicy => "DOSSIER-EXPORTJOB-MERGEPOLICY-UNKNOWN-400",
        ExportRule::UnknownMergePolicyVersion => "DOSSIER-EXPORTJOB-MERGEPOLICY-VERSION-400",
        ExportRule::Filter => "DOSSIER-EXPORTJOB-FILTER-400",
        ExportRule::Segments => "DOSSIER-EXPORTJOB-SEGMENTS-400",
        ExportRule::SegmentId => "DOSSIER-EXPORTJOB-SEGMENT-ID-400",
        ExportRule::SegmentNamespace => "DOSSIER-EXPORTJOB-SEGMENT-NS-400",
        ExportRule::SegmentStatusList => "DOSSIER-EXPORTJOB-SEGMENT-STATUS-400",
        ExportRule::UnknownSegmentStatus => "DOSSIER-EXPORTJOB-SEGMENT-STATUS-UNKNOWN-400",
        ExportRule::Timestamp => "DOSSIER-EXPORTJOB-TIMESTAMP-400",
        ExportRule::QualificationWindow => "DOSSIER-EXPORTJOB-QUALIFICATION-WINDOW-400",
        ExportRule::EmptyProfiles => "DOSSIER-EXPORTJOB-EMPTYPROFILES-400",
        ExportRule::EventList => "DOSSIER-EXPORTJOB-EVENTLIST-400",
        ExportRule::EventFields => "DOSSIER-EXPORTJOB-EVENTLIST-FIELDS-400",
        ExportRule::EventFieldNotInEventUnion => "DOSSIER-EXPORTJOB-EVENTLIST-FIELDS-UNKNOWN-400",
        ExportRule::EventIngestWindow => "DOSSIER-EXPORTJOB-EVENTLIST-WINDOW-400",
        ExportRule::Destination => "DOSSIER-EXPORTJOB-DESTINATION-400",
        ExportRule::DatasetId => "DOSSIER-EXPORTJOB-DATASETID-400",
        ExportRule::UnknownDataset => "DOSSIER-EXPORTJOB-DATASET-UNKNOWN-400",
        ExportRule::DatasetNotOnProfileUnion => "DOSSIER-EXPORTJOB-DATASET-SCHEMA-400",
        ExportRule::SegmentPerBatch => "DOSSIER-EXPORTJOB-SEGMENTPERBATCH-400",
        ExportRule::SegmentPerBatchWithoutSegments => "DOSSIER-EXPORTJOB-SEGMENTPERBATCH-NOSEGMENTS-400",
        ExportRule::MissingSchemaName => "DOSSIER-EXPORTJOB-SCHEMA-MISSING-400",
        ExportRule::SchemaName => "DOSSIER-EXPORTJOB-SCHEMA-NAME-400",
        ExportRule::EvaluationInfo => "DOSSIER-EXPORTJOB-EVALUATIONINFO-400",
    }
}

fn refused(error: ExportRequestError) -> ApiError {
    ApiError::ups(StatusCode::BAD_REQUEST, rule_code(error.rule), error.error.to_string())
}

fn storage_failure(error: StorageError) -> ApiError {
    ApiError::storage(Service::Ups, error)
}

fn not_found(id: &str, tenant: &Tenant) -> ApiError {
    ApiError::ups(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!(
            "Export job not found: no export job '{id}' in sandbox '{}'. List them with GET /data/core/ups/export/jobs.",
            tenant.sandbox
        ),
    )
}

/// Job ids are integers; anything else names no job (404, as an unknown id).
fn job_id(raw: &str, tenant: &Tenant) -> Result<i64, ApiError> {
    raw.trim().parse().map_err(|_| not_found(raw, tenant))
}

/// A body with its object keys sorted, so that a client that sends the same body with its keys
/// in another order is still retrying, not reusing the key.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let sorted: BTreeMap<&String, Value> = object.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The `Idempotency-Key` header with the digest of the body it came with.
fn idempotency_key(headers: &HeaderMap, body: &Value) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::ups(
                StatusCode::BAD_REQUEST,
                INVALID_IDEMPOTENCY_KEY,
                ValidationError::invalid(
                    "Idempotency-Key",
                    String::from_utf8_lossy(raw.as_bytes()),
                    "use 1 to 255 visible ASCII characters, e.g. a UUID, and send the same key when you retry",
                )
                .to_string(),
            )
        })?;
    let digest = Sha256::digest(canonical(body).to_string().as_bytes());
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        body_sha256: hex::encode(digest),
    }))
}

fn key_reused(key: &IdempotencyKey, job_id: i64) -> ApiError {
    ApiError::ups(
        StatusCode::CONFLICT,
        IDEMPOTENCY_KEY_REUSED,
        format!(
            "Idempotency-Key '{}' was already used to create export job {job_id} with a different body. Retry with the \
             same body to get that job back, or use a new key for a new job.",
            key.key
        ),
    )
}

/// What a job looks like to a caller of this process: with its live progress if it runs here.
fn shown(state: &AppState, job: &ExportJob) -> Value {
    export_job_json(job, state.jobs.live_progress(&job.tenant, job.id))
}

/// The merge policy the job uses: the one named (at the version named, else the latest);
/// otherwise the merge policy of the first segment — segments are external ids here, with no
/// definition to carry a policy, so that step falls through — and finally the sandbox's default.
async fn resolve_merge_policy(
    meta: &MetaStore,
    tenant: &Tenant,
    request: &ExportJobRequest,
) -> Result<MergePolicy, ApiError> {
    if let Some(choice) = &request.merge_policy {
        let found = meta
            .merge_policy(tenant, &choice.id, choice.version)
            .await
            .map_err(storage_failure)?;
        let latest = match (&found, choice.version) {
            (None, Some(_)) => meta
                .merge_policy(tenant, &choice.id, None)
                .await
                .map_err(storage_failure)?,
            _ => None,
        };
        request
            .check_merge_policy(found.as_ref(), latest.as_ref())
            .map_err(refused)?;
        return Ok(found.expect("check_merge_policy refuses a policy that was not found"));
    }
    meta.default_merge_policy(tenant, PROFILE_SCHEMA_NAME)
        .await
        .map_err(storage_failure)?
        .ok_or_else(|| {
            ApiError::ups(
                StatusCode::INTERNAL_SERVER_ERROR,
                NO_DEFAULT_MERGE_POLICY,
                format!(
                    "Sandbox '{}' has no default merge policy, which should never happen. Name one in mergePolicy.id.",
                    tenant.sandbox
                ),
            )
        })
}

/// The checks only the sandbox can answer: the target dataset, the union schemas, the merge
/// policy. Returns the policy the job will use.
async fn check_against_sandbox(
    meta: &MetaStore,
    tenant: &Tenant,
    request: &ExportJobRequest,
) -> Result<MergePolicy, ApiError> {
    let dataset = meta
        .get_dataset(tenant, &request.dataset_id)
        .await
        .map_err(storage_failure)?;
    request.check_destination(dataset.as_ref()).map_err(refused)?;
    if request.fields.is_some() {
        let union = meta.profile_union(tenant).await.map_err(storage_failure)?;
        request.check_profile_fields(&union).map_err(refused)?;
    }
    if request.event_list.as_ref().is_some_and(|e| e.fields.is_some()) {
        let union = meta.event_union(tenant).await.map_err(storage_failure)?;
        request.check_event_fields(&union).map_err(refused)?;
    }
    check_segments_to_evaluate(meta, tenant, request).await?;
    resolve_merge_policy(meta, tenant, request).await
}

/// With `evaluationInfo.segmentation: true` every `ups` segment of `filter.segments` is
/// evaluated first, so each must be a definition of the sandbox.
async fn check_segments_to_evaluate(
    meta: &MetaStore,
    tenant: &Tenant,
    request: &ExportJobRequest,
) -> Result<(), ApiError> {
    if request.evaluate_segments != Some(true) {
        return Ok(());
    }
    let mut ids: Vec<String> = Vec::new();
    for filter in &request.segments {
        if filter.segment_ns.eq_ignore_ascii_case(DEFAULT_SEGMENT_NS) && !ids.contains(&filter.segment_id) {
            ids.push(filter.segment_id.clone());
        }
    }
    let found = segments_of(meta, tenant, &ids).await.map_err(|e| {
        ApiError::ups(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DOSSIER-EXPORTJOB-500",
            e.to_string(),
        )
    })?;
    if let Err(id) = found {
        return Err(ApiError::ups(
            StatusCode::BAD_REQUEST,
            UNKNOWN_SEGMENT_DEFINITION,
            ValidationError::invalid(
                "filter.segments.segmentId",
                &id,
                format!(
                    "evaluationInfo.segmentation is true, so every ups segment is evaluated first, and there is no \
                     segment definition '{id}' in sandbox '{}'; create it, name an existing definition, or set \
                     evaluationInfo.segmentation to false to export the memberships as they stand",
                    tenant.sandbox
                ),
            )
            .to_string(),
        ));
    }
    Ok(())
}

/// Creates an export job: validated against the sandbox, then queued with its batches.
#[utoipa::path(
    post, path = "/export/jobs", tag = "export jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the create safe to retry: the same key with the same body returns the first job")),
    request_body(content = Object, description = "fields, mergePolicy {id, version}, filter {segments, segmentQualificationTime, fromIngestTimestamp, emptyProfiles}, additionalFields {eventList}, destination {datasetId, segmentPerBatch}, schema {name}, evaluationInfo"),
    responses((status = 200, description = "The job (status NEW), with its batch ids"),
              (status = 400, description = "A field is invalid, or names a dataset, field or merge policy the sandbox does not have"),
              (status = 409, description = "The Idempotency-Key was used with a different body"),
              (status = 429, description = "Too many jobs are queued"))
)]
pub async fn create_export_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let idempotency = idempotency_key(&headers, &body)?;
    // A retry returns the first job even if the sandbox changed since (say the dataset is gone).
    if let Some(key) = &idempotency
        && let Some((job, digest)) = state
            .meta
            .export_job_by_idempotency_key(&caller.tenant, &key.key)
            .await
            .map_err(storage_failure)?
    {
        return if digest == key.body_sha256 {
            Ok(Json(shown(&state, &job)))
        } else {
            Err(key_reused(key, job.id))
        };
    }
    let job = queue_export_job(&state, &caller, &body, idempotency).await?;
    Ok(Json(shown(&state, &job)))
}

/// Validates `body` against the sandbox and queues the export job it asks for: what
/// `POST /export/jobs` does once no earlier job answers its `Idempotency-Key`, and what an export
/// schedule's tick does (`crate::schedule_runner`).
pub(crate) async fn queue_export_job(
    state: &AppState,
    caller: &Caller,
    body: &Value,
    idempotency: Option<IdempotencyKey>,
) -> Result<ExportJob, ApiError> {
    let request = ExportJobRequest::from_json(body).map_err(refused)?;
    let policy = check_against_sandbox(&state.meta, &caller.tenant, &request).await?;
    let new = NewExportJob {
        tenant: caller.tenant.clone(),
        request_id: current_request_id().unwrap_or_default(),
        request: request.echo(),
        spec: request.to_spec(&policy),
        batches: request.batch_targets(BatchId::generate),
        created_client: caller.client_id.clone(),
        created: now_millis(),
        idempotency: idempotency.clone(),
    };
    let created = state
        .meta
        .create_export_job(&new, state.limits.max_queued_export_jobs)
        .await
        .map_err(storage_failure)?;
    match created {
        ExportJobCreation::Created(job) => {
            state.jobs.job_queued();
            tracing::info!(job_id = job.id, dataset_id = %job.spec.dataset_id, "export job queued");
            Ok(job)
        }
        ExportJobCreation::Replayed(job) => Ok(job),
        ExportJobCreation::KeyReused { job_id } => Err(key_reused(
            idempotency.as_ref().expect("only a keyed create is a reuse"),
            job_id,
        )),
        ExportJobCreation::QueueFull { queued } => Err(ApiError::ups(
            StatusCode::TOO_MANY_REQUESTS,
            QUEUE_FULL,
            format!(
                "{queued} export jobs are waiting for a worker, the most this server queues \
                 (max_queued_export_jobs). Retry when some have started, or cancel jobs you no longer need."
            ),
        )),
        ExportJobCreation::DatasetGone => Err(refused(
            request
                .check_destination(None)
                .expect_err("a missing dataset is refused"),
        )),
    }
}

/// The page's `page` and `link` objects. `link` is `{}` on the last page, never `null`, and
/// never points at an empty page.
fn paging_json(query: &ExportJobListQuery, jobs: &[ExportJob], more: bool) -> (Value, Value) {
    let last = jobs.last();
    let page = json!({
        "sortField": "createdTime",
        "sort": "desc",
        "pageOffset": last.map(|j| export_job_cursor(j.created, j.id)).unwrap_or_default(),
        "pageSize": jobs.len(),
    });
    let link = match last {
        Some(last) if more => json!({ "next": query.next_link(last.created, last.id) }),
        _ => json!({}),
    };
    (page, link)
}

/// Lists the sandbox's export jobs, newest first.
#[utoipa::path(
    get, path = "/export/jobs", tag = "export jobs",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("offset" = Option<String>, Query, description = "page.pageOffset of the previous page (<creationTime>_<id>), or a number of jobs to skip"),
        ("status" = Option<String>, Query, description = "NEW, PROCESSING, SUCCEEDED, FAILED or CANCELLED"),
    ),
    responses((status = 200, description = "{records, page {sortField, sort, pageOffset, pageSize}, link {next}}"),
              (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_export_jobs(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let query = ExportJobListQuery::from_params(&params)
        .map_err(|e| ApiError::ups(StatusCode::BAD_REQUEST, INVALID_QUERY, e.to_string()))?;
    let (after, skip) = match query.offset {
        ExportJobOffset::Start => (None, 0),
        ExportJobOffset::After(created, id) => (Some((created, id)), 0),
        ExportJobOffset::Skip(skip) => (None, skip),
    };
    // One more than the page, to know whether a next page exists without counting.
    let listing = ExportJobListing {
        status: query.status,
        after,
        skip,
        limit: query.limit + 1,
    };
    let mut jobs = state
        .meta
        .list_export_jobs(&caller.tenant, &listing)
        .await
        .map_err(storage_failure)?;
    let more = jobs.len() > query.limit as usize;
    jobs.truncate(query.limit as usize);
    let (page, link) = paging_json(&query, &jobs, more);
    let records: Vec<Value> = jobs.iter().map(|job| shown(&state, job)).collect();
    Ok(Json(json!({ "records": records, "page": page, "link": link })))
}

/// One export job.
#[utoipa::path(
    get, path = "/export/jobs/{id}", tag = "export jobs",
    params(("id" = i64, Path, description = "Export job id")),
    responses((status = 200, description = "The job"), (status = 404, description = "No such job in this sandbox"))
)]
pub async fn get_export_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = job_id(&raw_id, &caller.tenant)?;
    let job = state
        .meta
        .export_job(&caller.tenant, id)
        .await
        .map_err(storage_failure)?
        .ok_or_else(|| not_found(&raw_id, &caller.tenant))?;
    Ok(Json(shown(&state, &job)))
}

/// Cancels an export job: a NEW job at once, a PROCESSING one within about a second (what it
/// wrote is removed); an ended job is left as it is. The job stays readable.
#[utoipa::path(
    delete, path = "/export/jobs/{id}", tag = "export jobs",
    params(("id" = i64, Path, description = "Export job id")),
    responses((status = 200, description = "{\"status\": true, \"message\": \"Export job has been marked for cancelling\"}"),
              (status = 404, description = "No such job in this sandbox"))
)]
pub async fn cancel_export_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = job_id(&raw_id, &caller.tenant)?;
    state
        .jobs
        .cancel_export_job(&caller.tenant, id)
        .await
        .map_err(storage_failure)?
        .ok_or_else(|| not_found(&raw_id, &caller.tenant))?;
    Ok(Json(json!({ "status": true, "message": CANCEL_MESSAGE })))
}
