//! Objects as AEP's JSON shows them.

use serde_json::{Map, Value, json};

use dossier_model::catalog::{Batch, Dataset};
use dossier_model::export_job::{ExportJob, ExportJobMetrics, ExportJobProgress, ExportJobStatus, MetricSpan};
use dossier_model::export_request::segment_echo;
use dossier_model::ids::SegmentDefinitionId;
use dossier_model::merge_policy::{AttributeMerge, MergePolicy};
use dossier_model::schema::PROFILE_SCHEMA_NAME;
use dossier_model::segment_definition::{EXPRESSION_FORMAT, EXPRESSION_TYPE, SegmentDefinition};
use dossier_model::tenancy::{DEFAULT_SANDBOX, SandboxName};

/// A dataset as `GET /dataSets/{id}` shows it (the value under its id).
pub fn dataset_json(dataset: &Dataset) -> Value {
    json!({
        "name": dataset.name,
        "description": dataset.description,
        "imsOrg": dataset.org,
        "sandboxName": dataset.sandbox,
        "created": dataset.created,
        "updated": dataset.updated,
        "createdClient": dataset.created_client,
        "createdUser": dataset.created_client,
        "updatedUser": dataset.created_client,
        "version": "1.0.0",
        "schemaRef": dataset.schema_ref,
        "fileDescription": dataset.file_description,
        "tags": dataset.tags,
        "classification": { "dataBehavior": dataset.data_behavior.as_str() },
        "aspect": dataset.aspect,
        "lastBatchId": dataset.last_batch_id,
        "lastBatchStatus": dataset.last_batch_status.map(|s| s.as_str()),
        "files": format!("@/dataSetFiles?dataSetId={}", dataset.id),
    })
}

/// A batch as the Catalog and the ingestion API show it.
pub fn batch_json(batch: &Batch) -> Value {
    let mut value = json!({
        "id": batch.id,
        "imsOrg": batch.org,
        "sandboxName": batch.sandbox,
        "status": batch.status.as_str(),
        "created": batch.created,
        "updated": batch.updated,
        "createdClient": batch.created_client,
        "createdUser": batch.created_client,
        "updatedUser": batch.created_client,
        "version": "1.0.0",
        "relatedObjects": [{ "type": "dataSet", "id": batch.dataset_id }],
        "errors": batch.errors,
        "metrics": { "recordsRead": batch.records_read, "recordsWritten": batch.record_count },
    });
    let object = value.as_object_mut().expect("json! built an object");
    for (key, field) in [
        ("started", batch.started),
        ("completed", batch.completed),
        ("recordCount", batch.record_count),
        ("size", batch.size),
    ] {
        if let Some(v) = field {
            object.insert(key.to_owned(), json!(v));
        }
    }
    if let Some(input) = &batch.input_format {
        object.insert("inputFormat".to_owned(), input.clone());
    }
    value
}

/// Objects keyed by id, in the given order, optionally cut down to `properties`.
pub fn keyed_by_id<'a>(items: impl IntoIterator<Item = (&'a str, Value)>, properties: Option<&[String]>) -> Value {
    let mut keyed = Map::new();
    for (id, mut value) in items {
        if let (Some(keep), Some(object)) = (properties, value.as_object_mut()) {
            object.retain(|key, _| keep.iter().any(|p| p == key));
        }
        keyed.insert(id.to_owned(), value);
    }
    Value::Object(keyed)
}

/// The `sandbox` object UPS puts on its objects. Sandboxes have no separate id here, so
/// `sandboxId` is the name; `prod` is the production (and default) sandbox, the others are
/// development sandboxes.
pub fn sandbox_json(sandbox: &SandboxName) -> Value {
    let is_prod = sandbox.as_str() == DEFAULT_SANDBOX;
    json!({
        "sandboxId": sandbox,
        "sandboxName": sandbox,
        "type": if is_prod { "production" } else { "development" },
        "default": is_prod,
    })
}

/// A merge policy as UPS shows it. `isActiveOnEdge` is AEP's documented name; `activeOnEdge`
/// carries the same value for clients that read that spelling.
pub fn merge_policy_json(policy: &MergePolicy) -> Value {
    let mut attribute_merge = json!({ "type": policy.attribute_merge.merge_type().as_str() });
    if let AttributeMerge::DataSetPrecedence { order } = &policy.attribute_merge {
        attribute_merge["order"] = json!(order);
    }
    json!({
        "id": policy.id,
        "name": policy.name,
        "imsOrgId": policy.org,
        "sandbox": sandbox_json(&policy.sandbox),
        "schema": { "name": policy.schema_name },
        "version": policy.version,
        "identityGraph": { "type": policy.identity_graph.as_str() },
        "attributeMerge": attribute_merge,
        "isActiveOnEdge": policy.is_active_on_edge,
        "activeOnEdge": policy.is_active_on_edge,
        "default": policy.is_default,
        "updateEpoch": policy.update_epoch,
    })
}

/// A segment definition as UPS shows it, with the definitions that name it with `inSegment`.
/// Streaming and edge evaluation are always off here (they are refused at creation).
pub fn segment_definition_json(definition: &SegmentDefinition, dependents: &[SegmentDefinitionId]) -> Value {
    let mut value = json!({
        "id": definition.id,
        "schema": { "name": definition.schema_name },
        "profileInstanceId": "ups",
        "imsOrgId": definition.org,
        "sandbox": sandbox_json(&definition.sandbox),
        "name": definition.name,
        "expression": {
            "type": EXPRESSION_TYPE,
            "format": EXPRESSION_FORMAT,
            "value": definition.expression,
        },
        "mergePolicyId": definition.merge_policy_id,
        "evaluationInfo": {
            "batch": { "enabled": definition.batch_enabled },
            "continuous": { "enabled": false },
            "synchronous": { "enabled": false },
        },
        "dependents": dependents,
        "dependencies": definition.dependencies,
        "creationTime": definition.creation_time,
        "updateEpoch": definition.update_epoch(),
        "updateTime": definition.update_time,
    });
    let object = value.as_object_mut().expect("json! built an object");
    if let Some(description) = &definition.description {
        object.insert("description".to_owned(), json!(description));
    }
    if let Some(days) = definition.ttl_in_days {
        object.insert("ttlInDays".to_owned(), json!(days));
    }
    value
}

/// A metric span as AEP shows it: `{startTimeInMs, endTimeInMs, totalTimeInMs}`, the last two
/// once it ended.
fn metric_span_json(span: &MetricSpan) -> Value {
    match span.end {
        None => json!({ "startTimeInMs": span.start }),
        Some(end) => json!({ "startTimeInMs": span.start, "endTimeInMs": end, "totalTimeInMs": end - span.start }),
    }
}

fn export_metrics_json(metrics: &ExportJobMetrics) -> Value {
    let mut object = Map::new();
    object.insert("totalTime".into(), metric_span_json(&metrics.total_time));
    if let Some(span) = &metrics.profile_export_time {
        object.insert("profileExportTime".into(), metric_span_json(span));
    }
    if let Some(span) = &metrics.dataset_write_time {
        object.insert("aCPDatasetWriteTime".into(), metric_span_json(span));
    }
    // The counters are known once an export finished; before, they are left out rather than 0.
    if let Some(exported) = metrics.exported_profiles {
        object.insert("totalExportedProfileCounter".into(), json!(exported));
        object.insert(
            "exportedProfileByNamespaceCounter".into(),
            json!(metrics.exported_by_namespace),
        );
        object.insert(
            "leftOutProfileByReasonCounter".into(),
            json!(metrics.left_out_by_reason),
        );
    }
    Value::Object(object)
}

/// `destination`: the dataset and one `batchId`, or with `segmentPerBatch` one entry per segment
/// under `batches`.
fn export_destination_json(job: &ExportJob) -> Value {
    let spec = &job.spec;
    if !spec.segment_per_batch {
        let batch_id = job.batches.first().map(|b| b.batch_id.as_str()).unwrap_or_default();
        return json!({ "datasetId": spec.dataset_id, "segmentPerBatch": false, "batchId": batch_id });
    }
    let batches: Vec<Value> = job
        .batches
        .iter()
        .map(|target| {
            let mut entry = target
                .segment
                .and_then(|index| spec.segments.get(index))
                .map(segment_echo)
                .unwrap_or_else(|| json!({}));
            entry["batchId"] = json!(target.batch_id);
            entry
        })
        .collect();
    json!({ "datasetId": spec.dataset_id, "segmentPerBatch": true, "batches": batches })
}

/// An export job as POST, GET and the listing show it. `live` is the progress of a job this
/// process is running; otherwise the last progress a worker recorded is shown.
pub fn export_job_json(job: &ExportJob, live: Option<ExportJobProgress>) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(job.id));
    object.insert("jobType".into(), json!("BATCH"));
    object.insert("status".into(), json!(job.status.as_str()));
    object.insert("profileInstanceId".into(), json!("ups"));
    object.insert("imsOrgId".into(), json!(job.tenant.org));
    object.insert("requestId".into(), json!(job.request_id));
    for name in ["fields", "filter", "additionalFields", "evaluationInfo"] {
        if let Some(value) = job.request.get(name) {
            object.insert(name.into(), value.clone());
        }
    }
    object.insert(
        "mergePolicy".into(),
        json!({ "id": job.spec.merge_policy_id, "version": job.spec.merge_policy_version }),
    );
    object.insert("schema".into(), json!({ "name": PROFILE_SCHEMA_NAME }));
    object.insert("destination".into(), export_destination_json(job));
    object.insert("computeGatewayJobId".into(), json!({}));
    object.insert("metrics".into(), export_metrics_json(&job.metrics));
    if job.status == ExportJobStatus::Processing {
        let progress = live.or(job.progress).unwrap_or_default();
        object.insert("progress".into(), json!(progress));
    }
    if !job.errors.is_empty() {
        object.insert("errors".into(), json!(job.errors));
    }
    object.insert("creationTime".into(), json!(job.created));
    object.insert("updateTime".into(), json!(job.updated));
    Value::Object(object)
}

/// The 207 answer of a bulk-get: each asked id under `results` with its object, or under
/// `errors` with a 404 entry when it is not in the sandbox.
pub fn bulk_get_response<Id: std::fmt::Display>(
    ids: &[Id],
    object_of: impl Fn(&Id) -> Option<Value>,
    not_found: impl Fn(&Id) -> (&'static str, String),
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut results = Map::new();
    let mut errors = Map::new();
    for id in ids {
        match object_of(id) {
            Some(object) => {
                results.insert(id.to_string(), object);
            }
            None => {
                let (code, message) = not_found(id);
                errors.insert(
                    id.to_string(),
                    json!({ "status": 404, "code": code, "message": message }),
                );
            }
        }
    }
    let body = json!({ "results": results, "errors": errors });
    (axum::http::StatusCode::MULTI_STATUS, axum::Json(body)).into_response()
}
