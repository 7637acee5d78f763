//! `dossier ingest`: loads files into a dataset through the batch ingestion API, with progress.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::remote::{Remote, RemoteArgs, json_or_error};

/// The options of `dossier ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The dataset to load into
    #[arg(long)]
    pub dataset: String,
    /// json, csv or parquet; by default from the first file's extension
    #[arg(long)]
    pub format: Option<String>,
    /// Keep the good rows when some are bad (AEP's partial ingestion)
    #[arg(long)]
    pub partial: bool,
    /// The files of the batch
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn format_of(path: &Path) -> anyhow::Result<&'static str> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json" | "jsonl" | "ndjson") => Ok("json"),
        Some("csv") => Ok("csv"),
        Some("parquet") => Ok("parquet"),
        _ => bail!(
            "cannot tell the format of {} from its extension; pass --format json|csv|parquet",
            path.display()
        ),
    }
}

/// A JSON file whose first character is `[` holds an array: AEP calls that multi-line JSON.
async fn starts_with_array(path: &Path) -> anyhow::Result<bool> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut head = vec![0u8; 4096];
    let n = file.read(&mut head).await?;
    Ok(head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['))
}

fn bar(len: u64, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(name.to_owned());
    bar
}

pub(crate) async fn upload(remote: &Remote, batch: &str, dataset: &str, path: &Path) -> anyhow::Result<u64> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("file names must be UTF-8")?
        .to_owned();
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().await?.len();
    let progress = bar(size, &name);
    let counted = progress.clone();
    let stream = ReaderStream::with_capacity(file, 1 << 20).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counted.inc(bytes.len() as u64);
        }
    });
    let response = remote
        .request(
            Method::PUT,
            &format!("/data/foundation/import/batches/{batch}/datasets/{dataset}/files/{name}"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .with_context(|| format!("uploading {}", path.display()))?;
    json_or_error(response, &format!("uploading {}", path.display())).await?;
    progress.finish();
    Ok(size)
}

pub(crate) async fn wait_for(remote: &Remote, batch: &str) -> anyhow::Result<Value> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("loading: validating and converting to Parquet");
    spinner.enable_steady_tick(Duration::from_millis(120));
    loop {
        let body = remote
            .get_json(&format!("/data/foundation/catalog/batches/{batch}"))
            .await?;
        let object = body[batch].clone();
        match object["status"].as_str() {
            Some("loading" | "processing") => tokio::time::sleep(Duration::from_millis(250)).await,
            _ => {
                spinner.finish_and_clear();
                return Ok(object);
            }
        }
    }
}

async fn print_row_errors(remote: &Remote, batch: &str) -> anyhow::Result<()> {
    let failed = remote
        .get_json(&format!("/data/foundation/export/batches/{batch}/failed"))
        .await?;
    for file in failed["data"].as_array().into_iter().flatten() {
        let name = file["name"].as_str().unwrap_or_default();
        let response = remote
            .request(
                Method::GET,
                &format!("/data/foundation/export/batches/{batch}/failed?path={name}"),
            )
            .send()
            .await?;
        let text = response.text().await?;
        for line in text.lines().take(10) {
            let error: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let field = error["field"].as_str().map(|f| format!(" {f}:")).unwrap_or_default();
            eprintln!(
                "  {} row {}:{field} {}",
                error["file"].as_str().unwrap_or(""),
                error["row"],
                error["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let format = match &args.format {
        Some(f) => f.to_ascii_lowercase(),
        None => format_of(&args.files[0])?.to_owned(),
    };
    let mut input = json!({ "format": format });
    if format == "json" {
        input["isMultiLineJson"] = json!(starts_with_array(&args.files[0]).await?);
    }
    let remote = Remote::connect(args.remote.clone()).await?;
    let batch = remote
        .post_json(
            "/data/foundation/import/batches",
            &json!({"datasetId": args.dataset, "inputFormat": input, "partialIngestion": args.partial}),
        )
        .await?;
    let batch_id = batch["id"].as_str().context("the batch answer has no id")?.to_owned();
    eprintln!("batch {batch_id} opened on dataset {}", args.dataset);
    let mut bytes = 0;
    for path in &args.files {
        bytes += upload(&remote, &batch_id, &args.dataset, path).await?;
    }
    let response = remote
        .request(
            Method::POST,
            &format!("/data/foundation/import/batches/{batch_id}?action=COMPLETE"),
        )
        .send()
        .await?;
    json_or_error(response, "completing the batch").await?;
    let done = wait_for(&remote, &batch_id).await?;
    let seconds = started.elapsed().as_secs_f64();
    let records = done["recordCount"].as_i64().unwrap_or(0);
    println!(
        "batch {batch_id}: {} — {records} records from {} file(s), {bytes} bytes, in {seconds:.1} s ({:.0} records/s)",
        done["status"].as_str().unwrap_or("?"),
        args.files.len(),
        records as f64 / seconds.max(0.001)
    );
    for error in done["errors"].as_array().into_iter().flatten() {
        eprintln!(
            "{}: {}",
            error["code"].as_str().unwrap_or(""),
            error["description"].as_str().unwrap_or("")
        );
    }
    if done["status"] != "success" {
        print_row_errors(&remote, &batch_id).await?;
        bail!("batch {batch_id} ended {}", done["status"]);
    }
    Ok(())
}
