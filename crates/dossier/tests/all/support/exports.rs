//! What the export tests share: the record and event datasets they ingest into, and an export
//! run in this process (the engine on the server's storage, without the job queue) whose batch
//! is read back from the lake.

use arrow::array::RecordBatch;
use dossier_engine::export::{
    CancelFlag, ExportOutcome, ExportProgress, ExportRequest, ExportSettings, run_export_with,
};
use dossier_model::export_job::{ExportBatchTarget, ExportSpec, QualificationWindow};
use dossier_model::ids::{BatchId, DatasetId, MergePolicyId};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::Lake;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use super::{Caller, ORG, TestServer};

/// The sandbox every test caller works in: [`ORG`]'s `prod`.
pub fn prod_tenant() -> Tenant {
    Tenant {
        org: OrgId::parse(ORG).unwrap(),
        sandbox: SandboxName::prod(),
    }
}

/// Two profile datasets and one event dataset, profile-enabled.
pub struct ProfileAndEventDatasets {
    pub crm: String,
    pub loyalty: String,
    pub web: String,
}

/// Creates "CRM" and "Loyalty" (personal details, the deprecated `identities` array, `crm.tier`
/// and `loyalty.points`) and "Web" (events with environment details): one schema for both
/// profile datasets, so a test may put any of these fields in either.
pub async fn profile_and_event_datasets(caller: &Caller) -> ProfileAndEventDatasets {
    let groups = ["profile-personal-details", "profile-identities-deprecated"];
    let properties = json!({
        "crm": {"type": "object", "properties": {"tier": {"type": "string"}}},
        "loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}},
    });
    let crm = caller
        .create_dataset_with_groups("CRM", "profile", &groups, properties.clone())
        .await;
    let loyalty = caller
        .create_dataset_with_groups("Loyalty", "profile", &groups, properties)
        .await;
    ProfileAndEventDatasets {
        crm,
        loyalty,
        web: event_dataset(caller).await,
    }
}

/// Creates "Web", a profile-enabled event dataset with environment details (browser name and
/// version); returns its id.
pub async fn event_dataset(caller: &Caller) -> String {
    caller
        .create_dataset_with_groups(
            "Web",
            "experienceevent",
            &["experienceevent-environment-details"],
            json!({}),
        )
        .await
}

/// An export of every profile of the sandbox under `policy` into `target`: no fields, segments,
/// times or events; tests change what they select with `..export_spec(..)`.
pub fn export_spec(target: &str, policy: &str) -> ExportSpec {
    ExportSpec {
        fields: None,
        segments: Vec::new(),
        qualification: QualificationWindow::default(),
        from_ingest: None,
        empty_profiles: false,
        event_list: None,
        dataset_id: DatasetId::from_string(target),
        segment_per_batch: false,
        merge_policy_id: MergePolicyId::from_string(policy),
        merge_policy_version: 1,
        evaluate_segments: false,
    }
}

/// Settings that spill pass one to `spill` at its finest: one profile per shard, one identity per
/// bucket. An export must write the same rows with them as with the defaults.
pub fn spilled_settings(spill: &std::path::Path) -> ExportSettings {
    ExportSettings {
        shard_profiles: 1,
        bucket_identities: 1,
        spill_dir: Some(spill.to_path_buf()),
        ..ExportSettings::default()
    }
}

/// The names of what `folder` holds, sorted.
pub fn sorted_file_names(folder: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How many graph versions a spill folder keeps the buckets of, having checked that the builds
/// left nothing else there: their own folders are gone, and each kept version is whole.
pub fn kept_graph_versions(spill: &std::path::Path) -> usize {
    assert_eq!(
        sorted_file_names(spill),
        ["graph-buckets"],
        "nothing but the kept graph in {spill:?}"
    );
    let versions = sorted_file_names(&spill.join("graph-buckets"));
    for version in &versions {
        let buckets: usize = version.rsplit('-').next().unwrap().parse().unwrap();
        let files = sorted_file_names(&spill.join("graph-buckets").join(version));
        assert_eq!(files.len(), buckets, "every bucket of {version} kept: {files:?}");
    }
    versions.len()
}

/// Runs an export of `spec` into one new batch of its dataset in this process, on the server's
/// storage, with `settings`; returns the outcome and the batch's rows.
pub async fn run_export_in_process(
    server: &TestServer,
    spec: ExportSpec,
    settings: &ExportSettings,
) -> (ExportOutcome, Vec<RecordBatch>) {
    let batch = BatchId::generate();
    let dataset = spec.dataset_id.as_str().to_owned();
    let request = ExportRequest {
        tenant: prod_tenant(),
        job_id: 1,
        spec,
        batches: vec![ExportBatchTarget {
            batch_id: batch.clone(),
            segment: None,
        }],
    };
    let (meta, lake) = super::open_storage(&server.data_dir()).await.unwrap();
    let outcome = run_export_with(
        &meta,
        &lake,
        &request,
        &ExportProgress::default(),
        &CancelFlag::default(),
        settings,
    )
    .await
    .unwrap();
    (outcome, exported_batch(server, &dataset, &batch))
}

/// The rows of one batch of `dataset` in the sandbox, its files read in name order.
pub fn exported_batch(server: &TestServer, dataset: &str, batch: &BatchId) -> Vec<RecordBatch> {
    let prefix = Lake::batch_prefix(&prod_tenant(), &DatasetId::from_string(dataset), batch);
    let folder = server.data_dir().join("lake").join(prefix.as_ref());
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for path in files {
        let file = std::fs::File::open(path).unwrap();
        rows.extend(
            ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap),
        );
    }
    rows
}
