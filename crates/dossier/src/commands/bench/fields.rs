//! `dossier bench fields`: an export naming many fields of a wide schema (issue 12: 5,000 fields
//! of a 10,000-field object held a worker for minutes). Two measurements:
//!
//! - planning alone, in this process: the job-creation check of the named paths against the XDM
//!   schema and the projection of the Arrow schema (`project_schema`), the work that was quadratic;
//! - the whole job over HTTP on a child server: a profile schema with one object of `--width`
//!   string fields, `--profiles` records with a few values each, and an export naming `--named`
//!   of the fields, timed from POST to SUCCEEDED.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use reqwest::Method;
use serde_json::{Value, json};

use dossier_model::xdm::{PathTree, XdmField, XdmSchema, XdmType};

use super::run::{BenchServer, wait_until_ended};
use crate::commands::ingest::{upload, wait_for};
use crate::remote::json_or_error;

const TARGET_DATASET: &str = include_str!("../../../assets/create-dataset.json");

#[derive(Debug, clap::Args)]
pub struct FieldsArgs {
    /// String fields of the wide object
    #[arg(long, default_value_t = 10_000)]
    pub width: usize,
    /// Fields the export names (spread evenly over the object)
    #[arg(long, default_value_t = 5_000)]
    pub named: usize,
    /// Profiles ingested (each with a few values of the wide object)
    #[arg(long, default_value_t = 1_000)]
    pub profiles: usize,
    /// Runs of each measurement; the median is reported
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Work folder (the server's data dir goes under it)
    #[arg(long, default_value = "bench-work")]
    pub work: PathBuf,
}

fn field_name(i: usize) -> String {
    format!("f{i:05}")
}

/// The named fields: `named` of `width`, spread evenly, listed from the last.
fn named_fields(width: usize, named: usize) -> Vec<String> {
    let step = (width / named.max(1)).max(1);
    (0..width)
        .step_by(step)
        .take(named)
        .rev()
        .map(|i| format!("wide.{}", field_name(i)))
        .collect()
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

pub async fn run(args: FieldsArgs) -> anyhow::Result<()> {
    if args.named > args.width || args.named == 0 || args.runs == 0 {
        bail!("--named must be between 1 and --width, and --runs at least 1");
    }
    let paths = named_fields(args.width, args.named);
    let (check, project) = planning(&args, &paths)?;
    println!(
        "planning {} of {} fields, in process (median of {}): check {:.1} ms, projection {:.1} ms",
        args.named,
        args.width,
        args.runs,
        check * 1e3,
        project * 1e3
    );
    let job = whole_job(&args, &paths).await?;
    println!(
        "export job naming {} of {} fields over {} profiles (median of {}): {job:.2} s from POST to SUCCEEDED",
        args.named, args.width, args.profiles, args.runs
    );
    Ok(())
}

/// Median seconds of the fields check and of the projection.
fn planning(args: &FieldsArgs, paths: &[String]) -> anyhow::Result<(f64, f64)> {
    let wide_fields: Vec<XdmField> = (0..args.width)
        .map(|i| XdmField::new(field_name(i), XdmType::String))
        .collect();
    let mut schema = XdmSchema::builtin_profile();
    schema.fields.push(XdmField::new("wide", XdmType::Object(wide_fields)));
    let arrow_schema = Schema::new(vec![
        Field::new(
            "wide",
            DataType::Struct(Fields::from(
                (0..args.width)
                    .map(|i| Field::new(field_name(i), DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            )),
            true,
        ),
        Field::new("identityMap", DataType::Utf8, true),
    ]);
    let (mut checks, mut projections) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let started = Instant::now();
        let tree = PathTree::new(paths);
        let missing = tree.missing_in(&schema).len();
        checks.push(started.elapsed().as_secs_f64());
        if missing > 0 {
            bail!("the check found {missing} paths missing");
        }
        let started = Instant::now();
        let projected = dossier_engine::export::project_schema(&arrow_schema, paths, &["identityMap"], &|| false)
            .map_err(|error| anyhow::anyhow!("projection failed: {error:?}"))?;
        projections.push(started.elapsed().as_secs_f64());
        let DataType::Struct(kept) = projected.field(0).data_type() else {
            bail!("the projection lost the wide object");
        };
        if kept.len() != args.named {
            bail!("the projection kept {} fields, not {}", kept.len(), args.named);
        }
    }
    Ok((median(checks), median(projections)))
}

/// Median seconds of the export job, POST to SUCCEEDED, on a child server.
async fn whole_job(args: &FieldsArgs, paths: &[String]) -> anyhow::Result<f64> {
    std::fs::create_dir_all(&args.work)?;
    let work = std::fs::canonicalize(&args.work)?;
    let bench_server = BenchServer::create(&work.join(format!("fields-{}", args.width))).await?;
    let (server, remote) = bench_server.start().await?;
    let properties: serde_json::Map<String, Value> = (0..args.width)
        .map(|i| (field_name(i), json!({"type": "string"})))
        .collect();
    let schema = remote
        .post_json(
            "/data/foundation/schemaregistry/tenant/schemas",
            &json!({"title": "Bench wide profile", "type": "object",
                    "meta:class": "https://ns.adobe.com/xdm/context/profile",
                    "properties": {"wide": {"type": "object", "properties": properties}}}),
        )
        .await?;
    let dataset = remote
        .post_json(
            "/data/foundation/catalog/dataSets",
            &json!({"name": "Bench wide", "schemaRef": {"id": schema["$id"]},
                    "tags": {"unifiedProfile": ["enabled:true"]}}),
        )
        .await?;
    let dataset = dataset_id(&dataset)?;
    let records = work.join(format!("fields-{}-records.json", args.width));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&records)?);
    for n in 0..args.profiles {
        let values: serde_json::Map<String, Value> = (0..6)
            .map(|k| {
                let i = (n * 7 + k * 1_667) % args.width;
                (field_name(i), json!(format!("v{n}-{i}")))
            })
            .collect();
        let record = json!({"_id": format!("w{n}"), "wide": values,
                            "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]}});
        writeln!(file, "{record}")?;
    }
    file.flush()?;
    drop(file);
    let batch = remote
        .post_json(
            "/data/foundation/import/batches",
            &json!({"datasetId": dataset, "inputFormat": {"format": "json"}}),
        )
        .await?;
    let batch = batch["id"].as_str().context("the batch answer has no id")?.to_owned();
    upload(&remote, &batch, &dataset, &records).await?;
    let response = remote
        .request(
            Method::POST,
            &format!("/data/foundation/import/batches/{batch}?action=COMPLETE"),
        )
        .send()
        .await?;
    json_or_error(response, "completing the batch").await?;
    if wait_for(&remote, &batch).await?["status"] != "success" {
        bail!("the wide records were not ingested");
    }
    let target = remote
        .post_json(
            "/data/foundation/catalog/dataSets",
            &serde_json::from_str::<Value>(TARGET_DATASET)?,
        )
        .await?;
    let target = dataset_id(&target)?;
    let body = json!({"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"},
                      "fields": paths.join(",")});
    let mut runs = Vec::new();
    for run in 0..args.runs {
        let started = Instant::now();
        let created = remote.post_json("/data/core/ups/export/jobs", &body).await?;
        let id = created["id"].as_i64().context("the job answer has no id")?;
        let job = wait_until_ended(&remote, &format!("/data/core/ups/export/jobs/{id}")).await?;
        let seconds = started.elapsed().as_secs_f64();
        if job["status"] != "SUCCEEDED" {
            bail!("export job {id} ended {}: {}", job["status"], job["errors"]);
        }
        eprintln!("  run {}: {seconds:.2} s", run + 1);
        runs.push(seconds);
    }
    server.stop()?;
    Ok(median(runs))
}

/// The id in a Catalog create answer, `["@/dataSets/<id>"]`.
fn dataset_id(created: &Value) -> anyhow::Result<String> {
    created[0]
        .as_str()
        .and_then(|s| s.strip_prefix("@/dataSets/"))
        .map(str::to_owned)
        .context("the Catalog answered no dataset id")
}
