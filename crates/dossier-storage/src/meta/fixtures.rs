//! Values tests build their stores from: two organizations, sandboxes, datasets, batches,
//! schemas and jobs with fixed, recognizable fields.
//!
//! The backend suite (`meta/suite/`) and the SQLite tests use them; other crates' tests get them
//! with this crate's `test-fixtures` feature (a dev-dependency feature: never in a build).

use serde_json::json;

use dossier_model::catalog::{Batch, BatchStatus, DataBehavior, Dataset, FileDescription, SchemaRef, Tags};
use dossier_model::export_job::{ExportBatchTarget, ExportJob, ExportSpec, QualificationWindow};
use dossier_model::ids::{BatchId, ClientId, DatasetId, MergePolicyId};
use dossier_model::merge_policy::SEEDED_MERGE_POLICY_ID;
use dossier_model::pql::{PqlError, PqlSchemas};
use dossier_model::schema::PROFILE_UNION_SCHEMA_ID;
use dossier_model::segment_definition::{CheckedSpec, SegmentDefinitionSpec};
use dossier_model::segment_job::SegmentJob;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{RegisteredSchema, SchemaIds, XdmSchema};

use crate::meta::{
    BatchFile, BatchOutcome, ExportJobCreation, FileKind, IdempotencyKey, MetaStore, NewExportJob, NewSegmentJob,
    SegmentJobCreation,
};

pub const ORG_A: &str = "1BD6382559DF0C130A49422D@AdobeOrg";
pub const ORG_B: &str = "2CE7493660EA1D241B5A533E@AdobeOrg";

pub fn org(raw: &str) -> OrgId {
    OrgId::parse(raw).expect("a valid org id")
}

pub fn sandbox(name: &str) -> SandboxName {
    SandboxName::parse(name).expect("a valid sandbox name")
}

pub fn tenant(org_id: &str, sandbox_name: &str) -> Tenant {
    Tenant {
        org: org(org_id),
        sandbox: sandbox(sandbox_name),
    }
}

/// `ORG_A/prod`: the tenant most cases write to.
pub fn prod() -> Tenant {
    tenant(ORG_A, "prod")
}

/// Makes the three tenants the tenancy cases compare: `ORG_A/prod`, `ORG_A/dev` and
/// `ORG_B/prod`, returned in that order.
pub async fn three_tenants(store: &MetaStore) -> [Tenant; 3] {
    store.ensure_org(&org(ORG_A)).await.unwrap();
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    store.ensure_org(&org(ORG_B)).await.unwrap();
    [tenant(ORG_A, "prod"), tenant(ORG_A, "dev"), tenant(ORG_B, "prod")]
}

/// Creates `ORG_A` (so `ORG_A/prod`) and returns that tenant.
pub async fn with_prod(store: &MetaStore) -> Tenant {
    store.ensure_org(&org(ORG_A)).await.unwrap();
    prod()
}

pub fn client() -> ClientId {
    ClientId::from_string("suite-client")
}

pub fn profile_enabled_tags() -> Tags {
    let mut tags = Tags::new();
    tags.insert("unifiedProfile".into(), vec!["enabled:true".into()]);
    tags
}

/// A dataset on `schema_id`, profile-enabled or not, created at `created`.
pub fn dataset_on(tenant: &Tenant, name: &str, schema_id: &str, enabled: bool, created: EpochMillis) -> Dataset {
    Dataset {
        id: DatasetId::generate(),
        org: tenant.org.clone(),
        sandbox: tenant.sandbox.clone(),
        name: name.into(),
        description: Some(format!("{name} description")),
        schema_ref: SchemaRef {
            id: schema_id.into(),
            content_type: "application/vnd.adobe.xed+json;version=1".into(),
        },
        file_description: FileDescription::default(),
        tags: if enabled { profile_enabled_tags() } else { Tags::new() },
        aspect: None,
        data_behavior: DataBehavior::Record,
        created,
        updated: created,
        created_client: client(),
        last_batch_id: None,
        last_batch_status: None,
    }
}

/// A dataset on the profile union, not profile-enabled.
pub fn dataset(tenant: &Tenant, name: &str, created: EpochMillis) -> Dataset {
    dataset_on(tenant, name, PROFILE_UNION_SCHEMA_ID, false, created)
}

/// Inserts [`dataset`] and returns it as stored.
pub async fn stored_dataset(store: &MetaStore, tenant: &Tenant, name: &str, created: EpochMillis) -> Dataset {
    let dataset = dataset(tenant, name, created);
    store.insert_dataset(&dataset).await.unwrap();
    dataset
}

/// An ingestion batch of `dataset` in `status`, created at `created`.
pub fn batch(dataset: &Dataset, status: BatchStatus, created: EpochMillis) -> Batch {
    Batch {
        id: BatchId::generate(),
        org: dataset.org.clone(),
        sandbox: dataset.sandbox.clone(),
        dataset_id: dataset.id.clone(),
        status,
        created,
        updated: created,
        started: None,
        completed: None,
        record_count: None,
        size: None,
        records_read: None,
        errors: Vec::new(),
        input_format: Some(json!({"format": "json"})),
        created_client: client(),
        partial_ingestion: false,
    }
}

/// Inserts a `loading` batch of `dataset` and moves it to `processing`, as COMPLETE does.
pub async fn processing_batch(store: &MetaStore, dataset: &Dataset, created: EpochMillis) -> Batch {
    let tenant = dataset_tenant(dataset);
    let loading = batch(dataset, BatchStatus::Loading, created);
    store.insert_batch(&loading).await.unwrap();
    let (processing, changed) = store
        .transition_batch(
            &tenant,
            &loading.id,
            &[BatchStatus::Loading],
            BatchStatus::Processing,
            created,
        )
        .await
        .unwrap()
        .expect("the batch exists");
    assert!(changed);
    processing
}

/// Takes a batch through `loading` and `processing` and commits it `success` at `completed`
/// with one data file; returns the batch as stored afterwards.
pub async fn committed_batch(
    store: &MetaStore,
    dataset: &Dataset,
    created: EpochMillis,
    completed: EpochMillis,
) -> Batch {
    let tenant = dataset_tenant(dataset);
    let batch = processing_batch(store, dataset, created).await;
    let outcome = success(&batch, completed, &["part-00000.parquet"]);
    assert!(store.commit_batch(&tenant, &batch.id, &outcome).await.unwrap());
    store
        .get_batch(&tenant, &batch.id)
        .await
        .unwrap()
        .expect("committed batch")
}

pub fn data_file(batch: &Batch, name: &str, created: EpochMillis) -> BatchFile {
    BatchFile {
        file_id: format!("{}-{name}", batch.id),
        batch_id: batch.id.clone(),
        dataset_id: batch.dataset_id.clone(),
        kind: FileKind::Data,
        name: name.into(),
        path: format!(
            "{}/{}/datasets/{}/batches/{}/{name}",
            batch.org, batch.sandbox, batch.dataset_id, batch.id
        ),
        size: 100,
        records: 10,
        created,
    }
}

/// A `success` outcome with one data file per name.
pub fn success(batch: &Batch, completed: EpochMillis, files: &[&str]) -> BatchOutcome {
    BatchOutcome {
        status: BatchStatus::Success,
        completed,
        records_read: 10 * files.len() as i64,
        record_count: 10 * files.len() as i64,
        size: 100 * files.len() as i64,
        errors: Vec::new(),
        files: files.iter().map(|name| data_file(batch, name, completed)).collect(),
    }
}

pub fn dataset_tenant(dataset: &Dataset) -> Tenant {
    Tenant {
        org: dataset.org.clone(),
        sandbox: dataset.sandbox.clone(),
    }
}

/// A profile schema registered in `tenant` with `properties` (an XDM `properties` object).
pub fn profile_schema(tenant: &Tenant, title: &str, properties: serde_json::Value) -> RegisteredSchema {
    let body = json!({
        "title": title,
        "meta:class": "https://ns.adobe.com/xdm/context/profile",
        "properties": properties,
    });
    let schema = XdmSchema::from_json(&body, SchemaIds::generate(&tenant.org)).expect("a valid schema body");
    RegisteredSchema {
        schema,
        org: tenant.org.clone(),
        sandbox: tenant.sandbox.clone(),
        created: 1,
        updated: 1,
        created_client: client(),
    }
}

/// A job exporting into `dataset` with one batch, created at `created`, with an optional
/// `(Idempotency-Key, body digest)`.
pub fn new_export_job(
    tenant: &Tenant,
    dataset: &DatasetId,
    created: EpochMillis,
    key: Option<(&str, &str)>,
) -> NewExportJob {
    NewExportJob {
        tenant: tenant.clone(),
        request_id: format!("req-{created}"),
        request: json!({"schema": {"name": "_xdm.context.profile"}}),
        spec: ExportSpec {
            fields: None,
            segments: Vec::new(),
            qualification: QualificationWindow::default(),
            from_ingest: None,
            empty_profiles: false,
            event_list: None,
            dataset_id: dataset.clone(),
            segment_per_batch: false,
            merge_policy_id: MergePolicyId::from_string(SEEDED_MERGE_POLICY_ID),
            merge_policy_version: 1,
            evaluate_segments: false,
        },
        batches: vec![ExportBatchTarget {
            batch_id: BatchId::generate(),
            segment: None,
        }],
        created_client: client(),
        created,
        idempotency: key.map(|(key, digest)| IdempotencyKey {
            key: key.into(),
            body_sha256: digest.into(),
        }),
    }
}

/// Creates the job, which must be `Created`, and returns it as created.
pub async fn created_export(store: &MetaStore, new: &NewExportJob) -> ExportJob {
    match store.create_export_job(new, 1_000).await.unwrap() {
        ExportJobCreation::Created(job) => job,
        other => panic!("expected a created job, got {other:?}"),
    }
}

/// Creates the job, which must be `Created`, and returns its id.
pub async fn created_export_job(store: &MetaStore, new: &NewExportJob) -> i64 {
    created_export(store, new).await.id
}

/// A segment job `id` with no segments named, created at `created`.
pub fn new_segment_job(tenant: &Tenant, id: &str, created: EpochMillis) -> NewSegmentJob {
    NewSegmentJob {
        tenant: tenant.clone(),
        id: id.into(),
        request_id: "request".into(),
        segments: Vec::new(),
        created_client: client(),
        created,
    }
}

/// Creates the segment job, which must be `Created`, and returns it as created.
pub async fn created_segment_job(store: &MetaStore, new: &NewSegmentJob) -> SegmentJob {
    match store.create_segment_job(new, 1_000).await.unwrap() {
        SegmentJobCreation::Created(job) => *job,
        other => panic!("expected a created segment job, got {other:?}"),
    }
}

/// A segment definition spec named `name` with PQL `expression` and the default merge policy.
pub fn segment_spec(name: &str, expression: &str) -> SegmentDefinitionSpec {
    SegmentDefinitionSpec::from_json(&json!({"name": name, "expression": {"value": expression}}))
        .expect("a valid segment definition body")
}

/// What the API passes as `check`: PQL parsed against the built-in profile and event schemas.
pub fn check_pql(spec: SegmentDefinitionSpec, merge_policy_id: MergePolicyId) -> Result<CheckedSpec, PqlError> {
    let profile = XdmSchema::builtin_profile();
    let event = XdmSchema::builtin_experience_event();
    let schemas = PqlSchemas {
        profile: &profile,
        event: &event,
    };
    CheckedSpec::check(spec, schemas, merge_policy_id).map(|(checked, _)| checked)
}

/// Sorted copy, for comparing results a method returns "in no particular order".
pub fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}
