//! `dossier export`: creates an export job through the API, follows it with a progress bar,
//! and downloads the files of its batches when it succeeds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::remote::{Remote, RemoteArgs, json_or_error};

/// The options of `dossier export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The target dataset (on the profile union schema)
    #[arg(long)]
    pub dataset: String,
    /// A segment filter NS:ID or NS:ID:status,status (repeatable); statuses default to realized,existing
    #[arg(long = "segment")]
    pub segments: Vec<String>,
    /// Comma-separated profile fields to export (default: all)
    #[arg(long)]
    pub fields: Option<String>,
    /// The merge policy id (default: the sandbox's default)
    #[arg(long)]
    pub merge_policy: Option<String>,
    /// One batch per segment instead of one batch
    #[arg(long)]
    pub segment_per_batch: bool,
    /// Only profiles updated strictly after this RFC 3339 instant
    #[arg(long)]
    pub from_ingest: Option<String>,
    /// Also export profiles made only of events
    #[arg(long)]
    pub empty_profiles: bool,
    /// Include each profile's events (eventList)
    #[arg(long)]
    pub events: bool,
    /// Comma-separated event fields for eventList (default: all)
    #[arg(long)]
    pub event_fields: Option<String>,
    /// Where to download the files (one folder per batch)
    #[arg(long, default_value = "./export")]
    pub out: PathBuf,
}

/// `NS:ID[:status,...]` → a `filter.segments` entry.
fn segment_entry(text: &str) -> anyhow::Result<Value> {
    let mut parts = text.splitn(3, ':');
    let (Some(ns), Some(id)) = (parts.next(), parts.next()) else {
        bail!(
            "--segment {text}: write NAMESPACE:SEGMENT_ID[:status,...], e.g. ups:4edc8488-2c35-4f6d-b4c6-9075c68d2df4:realized"
        );
    };
    let mut entry = json!({"segmentNs": ns, "segmentId": id});
    if let Some(statuses) = parts.next() {
        entry["status"] = json!(statuses.split(',').map(str::trim).collect::<Vec<_>>());
    }
    Ok(entry)
}

fn job_body(args: &ExportArgs) -> anyhow::Result<Value> {
    let mut filter = json!({ "emptyProfiles": args.empty_profiles });
    if !args.segments.is_empty() {
        filter["segments"] = Value::Array(
            args.segments
                .iter()
                .map(|s| segment_entry(s))
                .collect::<anyhow::Result<_>>()?,
        );
    }
    if let Some(from) = &args.from_ingest {
        filter["fromIngestTimestamp"] = json!(from);
    }
    let mut body = json!({
        "filter": filter,
        "destination": {"datasetId": args.dataset, "segmentPerBatch": args.segment_per_batch},
        "schema": {"name": "_xdm.context.profile"},
    });
    if let Some(fields) = &args.fields {
        body["fields"] = json!(fields);
    }
    if let Some(policy) = &args.merge_policy {
        body["mergePolicy"] = json!({"id": policy});
    }
    if args.events || args.event_fields.is_some() {
        let mut event_list = json!({});
        if let Some(fields) = &args.event_fields {
            event_list["fields"] = json!(fields);
        }
        body["additionalFields"] = json!({"eventList": event_list});
    }
    Ok(body)
}

async fn follow(remote: &Remote, id: i64) -> anyhow::Result<Value> {
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}%")
            .expect("valid template")
            .progress_chars("=> "),
    );
    loop {
        let job = remote.get_json(&format!("/data/core/ups/export/jobs/{id}")).await?;
        let status = job["status"].as_str().unwrap_or("?").to_owned();
        let progress = &job["progress"];
        bar.set_position(progress["percent"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "{status}: {} profiles exported",
            progress["profilesExported"].as_u64().unwrap_or(0)
        ));
        if matches!(status.as_str(), "SUCCEEDED" | "FAILED" | "CANCELLED") {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn batch_ids(job: &Value) -> Vec<String> {
    let destination = &job["destination"];
    match destination["batches"].as_array() {
        Some(batches) => batches
            .iter()
            .filter_map(|b| b["batchId"].as_str().map(str::to_owned))
            .collect(),
        None => destination["batchId"].as_str().map(str::to_owned).into_iter().collect(),
    }
}

async fn download(remote: &Remote, href_path: &str, target: &Path) -> anyhow::Result<u64> {
    let response = remote.request(Method::GET, href_path).send().await?;
    if !response.status().is_success() {
        json_or_error(response, &format!("downloading {href_path}")).await?;
        bail!("downloading {href_path} failed");
    }
    let mut file = tokio::fs::File::create(target)
        .await
        .with_context(|| format!("cannot create {}", target.display()))?;
    let mut stream = response.bytes_stream();
    let mut written = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(written)
}

/// Downloads every file of a committed batch into `folder`; returns (files, bytes).
pub(crate) async fn download_batch(remote: &Remote, batch: &str, folder: &Path) -> anyhow::Result<(usize, u64)> {
    tokio::fs::create_dir_all(folder).await?;
    let listing = remote
        .get_json(&format!("/data/foundation/export/batches/{batch}/files?limit=100"))
        .await?;
    let mut bytes = 0;
    let mut count = 0;
    for file in listing["data"].as_array().into_iter().flatten() {
        let id = file["dataSetFileId"].as_str().context("a file without dataSetFileId")?;
        let described = remote.get_json(&format!("/data/foundation/export/files/{id}")).await?;
        for part in described["data"].as_array().into_iter().flatten() {
            let name = part["name"].as_str().context("a file without a name")?;
            bytes += download(
                remote,
                &format!("/data/foundation/export/files/{id}?path={name}"),
                &folder.join(name),
            )
            .await?;
            count += 1;
        }
    }
    Ok((count, bytes))
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let body = job_body(&args)?;
    let remote = Remote::connect(args.remote.clone()).await?;
    let job = remote.post_json("/data/core/ups/export/jobs", &body).await?;
    let id = job["id"].as_i64().context("the job answer has no id")?;
    eprintln!(
        "export job {id} created (merge policy {})",
        job["mergePolicy"]["id"].as_str().unwrap_or("?")
    );
    let job = follow(&remote, id).await?;
    if job["status"] != "SUCCEEDED" {
        for error in job["errors"].as_array().into_iter().flatten() {
            eprintln!(
                "{}: {}",
                error["code"].as_str().unwrap_or(""),
                error["msg"].as_str().unwrap_or("")
            );
        }
        bail!("export job {id} ended {}", job["status"]);
    }
    let (mut files, mut bytes) = (0, 0);
    for batch in batch_ids(&job) {
        let (f, b) = download_batch(&remote, &batch, &args.out.join(&batch)).await?;
        files += f;
        bytes += b;
    }
    println!(
        "export job {id}: SUCCEEDED — {} profiles, {files} file(s), {bytes} bytes in {} — {:.1} s",
        job["metrics"]["totalExportedProfileCounter"].as_u64().unwrap_or(0),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_flags_become_filter_entries() {
        assert_eq!(
            segment_entry("ups:abc").unwrap(),
            json!({"segmentNs": "ups", "segmentId": "abc"})
        );
        assert_eq!(
            segment_entry("AAM:x:realized,exited").unwrap()["status"],
            json!(["realized", "exited"])
        );
        assert!(segment_entry("nonamespace").is_err());
    }
}
