//! Loading a generated workload (`dossier-bench`'s output folder) into a running server through
//! the public API, as a user would: register the schemas and identity descriptors, create
//! profile-enabled datasets, ingest every file. Shared by `dossier demo` and the benchmarks.

use std::path::Path;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::commands::ingest::{upload, wait_for};
use crate::remote::{Remote, json_or_error};

/// A dataset of the workload once loaded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadedDataset {
    pub key: String,
    pub dataset_id: String,
    pub records: i64,
    /// When the batch was committed (its Catalog `completed`, epoch ms): its fragments' ingestion time.
    pub completed_ms: i64,
    /// From creating the batch to seeing it `success`: upload, validation, conversion, commit.
    pub seconds: f64,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

async fn register_schema(remote: &Remote, dir: &Path, entry: &Value) -> anyhow::Result<String> {
    let schema = read_json(&dir.join(entry["schema"].as_str().context("manifest entry without schema")?))?;
    let created = remote
        .post_json("/data/foundation/schemaregistry/tenant/schemas", &schema)
        .await?;
    let schema_id = created["$id"]
        .as_str()
        .context("the registry answered no $id")?
        .to_owned();
    if let Some(descriptors) = entry["descriptors"].as_str() {
        for mut descriptor in read_json(&dir.join(descriptors))?
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            descriptor["xdm:sourceSchema"] = json!(schema_id);
            remote
                .post_json("/data/foundation/schemaregistry/tenant/descriptors", &descriptor)
                .await?;
        }
    }
    Ok(schema_id)
}

/// Ingests `files` (manifest entries, paths relative to `dir`) into `dataset` as one batch and
/// waits for it to end; gives the batch.
pub async fn ingest_files(
    remote: &Remote,
    dir: &Path,
    dataset: &str,
    format: &str,
    files: &[Value],
) -> anyhow::Result<Value> {
    let batch = remote
        .post_json(
            "/data/foundation/import/batches",
            &json!({"datasetId": dataset, "inputFormat": {"format": format}}),
        )
        .await?;
    let batch_id = batch["id"].as_str().context("the batch answer has no id")?.to_owned();
    for file in files {
        let path = dir.join(file["path"].as_str().context("manifest file without path")?);
        upload(remote, &batch_id, dataset, &path).await?;
    }
    let response = remote
        .request(
            Method::POST,
            &format!("/data/foundation/import/batches/{batch_id}?action=COMPLETE"),
        )
        .send()
        .await?;
    json_or_error(response, "completing the batch").await?;
    let done = wait_for(remote, &batch_id).await?;
    if done["status"] != "success" {
        bail!("loading dataset {dataset} failed: {}", done["errors"]);
    }
    Ok(done)
}

/// Registers, creates and ingests every dataset of the workload in `dir`.
pub async fn load_generated(remote: &Remote, dir: &Path) -> anyhow::Result<Vec<LoadedDataset>> {
    let manifest = read_json(&dir.join(dossier_bench::MANIFEST_FILE))?;
    let format = manifest["format"].as_str().unwrap_or("json").to_owned();
    let mut loaded = Vec::new();
    for (key, entry) in manifest["datasets"].as_object().context("manifest without datasets")? {
        let schema_id = register_schema(remote, dir, entry).await?;
        let body = json!({
            "name": entry["name"],
            "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
            "tags": {"unifiedProfile": ["enabled:true"]},
        });
        let created = remote.post_json("/data/foundation/catalog/dataSets", &body).await?;
        let reference = created[0].as_str().context("the dataset answer has no reference")?;
        let dataset_id = reference.trim_start_matches("@/dataSets/").to_owned();
        let files = entry["files"].as_array().cloned().unwrap_or_default();
        let started = std::time::Instant::now();
        let done = ingest_files(remote, dir, &dataset_id, &format, &files).await?;
        loaded.push(LoadedDataset {
            key: key.clone(),
            dataset_id,
            records: done["recordCount"].as_i64().unwrap_or(0),
            completed_ms: done["completed"].as_i64().unwrap_or(0),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(loaded)
}
