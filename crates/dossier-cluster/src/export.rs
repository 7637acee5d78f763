//! Exports on a DataFusion session: the merged profiles plan ([`merged_profiles`]) run on `ctx`
//! (a local session in tests, a Ballista one on the cluster), its rows filtered, projected and
//! written by the engine's [`BatchWriter`] into the job's batch folders, as the native engine
//! writes them.
//!
//! `eventList` and `emptyProfiles` are part of the plan ([`crate::event_list`]). Evaluated
//! (`ups`) memberships are joined to the profiles and laid over their own
//! ([`crate::memberships`]); `evaluationInfo.segmentation` evaluates first ([`ClusterExporter`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, MapArray, RecordBatch, StructArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::prelude::{SessionContext, ident, lit};
use futures::StreamExt;

use dossier_engine::EngineError;
use dossier_engine::export::{
    BatchWriter, CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, GUARDRAIL_REASON,
    MAX_IDENTITIES, ProjectError, Span, SplitLimits, check_cancel, finish_batches, pinned_policy, planning_storage,
    project_schema,
};
use dossier_engine::jobs::{EngineExporter, Exporter};
use dossier_engine::profiles::align::align_batch;
use dossier_engine::profiles::build::keys::EventScan;
use dossier_engine::profiles::merge::SEGMENT_MEMBERSHIP;
use dossier_engine::segments::memberships::UPS;
use dossier_engine::segments::{Evaluation, SegmentError};
use dossier_model::segment_job::SegmentJob;
use dossier_model::time::now_millis;
use dossier_storage::meta::MembershipFile;
use dossier_storage::{Lake, MetaStore};

use crate::event_list::{self, EVENT_LIST};
use crate::functions::merge_profile::{DATA, IDENTITY_COUNT, PRIMARY_NAMESPACE};
use crate::memberships::{Evaluated, evaluate_for_export};
use crate::profiles::{LAST_UPDATE, PROFILE, ProfilesError, Wanted, merged_profiles};

/// A failure of the plan: planning and running it read the lake, so it is a read failure.
fn plan_failed(error: impl std::error::Error + Send + Sync + 'static) -> ExportError {
    ExportError::Read(EngineError::Invalid(error.to_string()))
}

fn from_profiles(error: ProfilesError) -> ExportError {
    match error {
        ProfilesError::Engine(error) => ExportError::reading(error),
        error => plan_failed(error),
    }
}

/// The current membership files whose entries can change the rows: with a `ups` filter, or
/// `segmentMembership` in the output (none otherwise: the plan joins nothing).
async fn evaluated_files(
    meta: &MetaStore,
    request: &ExportRequest,
    output: &SchemaRef,
) -> Result<Vec<MembershipFile>, ExportError> {
    let ups_filter = request
        .spec
        .segments
        .iter()
        .any(|f| f.segment_ns.eq_ignore_ascii_case(UPS));
    let writes_memberships = output.field_with_name(SEGMENT_MEMBERSHIP).is_ok();
    if !ups_filter && !writes_memberships {
        return Ok(Vec::new());
    }
    meta.membership_files(&request.tenant).await.map_err(planning_storage)
}

/// The union and the output (the union projected to the job's fields).
async fn schemas(
    meta: &MetaStore,
    request: &ExportRequest,
    cancel: &CancelFlag,
) -> Result<(SchemaRef, SchemaRef), ExportError> {
    let union = meta
        .profile_union(&request.tenant)
        .await
        .map_err(planning_storage)?
        .arrow_schema();
    check_cancel(cancel)?;
    let output = match &request.spec.fields {
        None => union.clone(),
        Some(paths) => {
            project_schema(&union, paths, &["identityMap"], &|| cancel.is_cancelled()).map_err(|error| match error {
                ProjectError::Cancelled => ExportError::Cancelled,
                ProjectError::Unknown(fields) => ExportError::FieldsGone {
                    event_list: false,
                    fields,
                },
            })?
        }
    };
    Ok((union, output))
}

/// The union's top-level columns to merge: the output's, and `segmentMembership` when segment
/// filters read it.
fn merge_schema(union: &SchemaRef, output: &SchemaRef, filters: bool) -> SchemaRef {
    let names: HashSet<&str> = output.fields().iter().map(|f| f.name().as_str()).collect();
    let wanted = |name: &str| names.contains(name) || (filters && name == SEGMENT_MEMBERSHIP);
    Arc::new(Schema::new(
        union
            .fields()
            .iter()
            .filter(|f| wanted(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

struct Totals {
    exported: u64,
    by_namespace: BTreeMap<String, u64>,
    left_out: BTreeMap<String, u64>,
}

/// Runs `request` as a plan on `ctx`, to the point where every batch's files are written and
/// ready to commit: what [`dossier_engine::export::run_export`] gives, computed by DataFusion.
pub async fn run_export_on(
    ctx: &SessionContext,
    meta: &MetaStore,
    lake: &Lake,
    request: &ExportRequest,
    progress: &ExportProgress,
    cancel: &CancelFlag,
) -> Result<ExportOutcome, ExportError> {
    let started = now_millis();
    let spec = &request.spec;
    let policy = pinned_policy(meta, request).await?;
    let (union, output) = schemas(meta, request, cancel).await?;
    let evaluated = evaluated_files(meta, request, &output).await?;
    check_cancel(cancel)?;
    let merge_schema = merge_schema(&union, &output, !spec.segments.is_empty());
    let listing = event_list::listing(meta, request, cancel).await?;
    let output = match &listing {
        Some(listing) => event_list::with_event_list(&output, listing),
        None => output,
    };
    // As the engine's pass one: every event when events are listed or make profiles; else only
    // those that can move a profile's last update past `fromIngest`.
    let events = match spec.from_ingest {
        _ if spec.event_list.is_some() || spec.empty_profiles => EventScan::All,
        Some(from) => EventScan::IngestedAfter(from),
        None => EventScan::None,
    };
    let wanted = Wanted {
        events,
        segments: &spec.segments,
        evaluated: &evaluated,
        listing: listing.as_ref(),
        empty_profiles: spec.empty_profiles,
    };
    let merged = merged_profiles(ctx, meta, lake, &request.tenant, &policy, &merge_schema, wanted)
        .await
        .map_err(from_profiles)?;
    let frame = match spec.from_ingest {
        Some(from) => merged
            .frame
            .filter(ident(LAST_UPDATE).gt(lit(from)))
            .map_err(plan_failed)?,
        None => merged.frame,
    };
    check_cancel(cancel)?;
    let mut stream = frame.execute_stream().await.map_err(plan_failed)?;
    let mut writers = batch_writers(lake, request, &output);
    let mut totals = Totals {
        exported: 0,
        by_namespace: BTreeMap::new(),
        left_out: BTreeMap::new(),
    };
    while let Some(rows) = stream.next().await {
        check_cancel(cancel)?;
        let rows = rows.map_err(plan_failed)?;
        let laid = Evaluated::of(&rows, &evaluated);
        export_rows(request, &output, &rows, &laid, &mut writers, &mut totals, progress).await?;
    }
    let merged_at = now_millis();
    let batches = finish_batches(request, writers, progress).await?;
    progress.percent.store(100, Ordering::Relaxed);
    Ok(ExportOutcome {
        batches,
        identity_graph_version: merged.graph_version,
        exported_profiles: totals.exported,
        by_namespace: totals.by_namespace,
        left_out: totals.left_out,
        profile_export_time: Span {
            start: started,
            end: merged_at,
        },
        dataset_write_time: Span {
            start: started,
            end: now_millis(),
        },
    })
}

/// One writer per batch of the job, each into its batch's staging folder.
fn batch_writers(lake: &Lake, request: &ExportRequest, output: &SchemaRef) -> Vec<BatchWriter> {
    request
        .batches
        .iter()
        .map(|target| {
            BatchWriter::new(
                lake.store().clone(),
                Lake::batch_prefix(&request.tenant, &request.spec.dataset_id, &target.batch_id),
                target.batch_id.clone(),
                request.spec.dataset_id.clone(),
                output.clone(),
                SplitLimits::default(),
            )
        })
        .collect()
}

/// One batch of merged profiles: selected by segment, held to the guardrail, projected to the
/// output and written to the batches each profile goes to.
async fn export_rows(
    request: &ExportRequest,
    output: &SchemaRef,
    rows: &RecordBatch,
    evaluated: &Evaluated,
    writers: &mut [BatchWriter],
    totals: &mut Totals,
    progress: &ExportProgress,
) -> Result<(), ExportError> {
    let merge_failed = |what: &str| ExportError::Merge(EngineError::Invalid(format!("merged profiles lack {what}")));
    let profiles = rows
        .column_by_name(PROFILE)
        .and_then(|c| c.as_struct_opt())
        .ok_or_else(|| merge_failed(PROFILE))?;
    let data = profiles
        .column_by_name(DATA)
        .and_then(|c| c.as_struct_opt())
        .ok_or_else(|| merge_failed(DATA))?;
    let counts = profiles
        .column_by_name(IDENTITY_COUNT)
        .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>())
        .ok_or_else(|| merge_failed(IDENTITY_COUNT))?;
    let namespaces = profiles
        .column_by_name(PRIMARY_NAMESPACE)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| merge_failed(PRIMARY_NAMESPACE))?;
    let memberships = data.column_by_name(SEGMENT_MEMBERSHIP).and_then(|c| c.as_map_opt());
    let mut chosen: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut selected = 0u64;
    for row in 0..rows.num_rows() {
        let targets = targets(request, memberships, evaluated, row);
        if targets.is_empty() {
            continue;
        }
        selected += 1;
        if counts.value(row) as usize > MAX_IDENTITIES {
            *totals.left_out.entry(GUARDRAIL_REASON.to_owned()).or_default() += 1;
            continue;
        }
        chosen.push((row, targets));
    }
    progress.profiles_scanned.fetch_add(selected, Ordering::Relaxed);
    // Written memberships carry the evaluated entries too, laid over the merged ones.
    let data = StructArray::from(evaluated.lay_over(data).map_err(ExportError::Merge)?);
    let events = rows.column_by_name(EVENT_LIST);
    let projected = project(&data, events, output).map_err(ExportError::Merge)?;
    // One mask per batch, set in one pass over the chosen rows (not a search per row and batch:
    // that was quadratic in the record batch's rows).
    let mut masks = vec![vec![false; rows.num_rows()]; writers.len()];
    for (row, targets) in &chosen {
        for &target in targets {
            masks[target][*row] = true;
        }
    }
    for (writer, mask) in writers.iter_mut().zip(masks) {
        let mask = BooleanArray::from(mask);
        let selected = filter_record_batch(&projected, &mask).map_err(|e| ExportError::Write(e.into()))?;
        if selected.num_rows() > 0 {
            writer.write(&selected).await.map_err(ExportError::Write)?;
        }
    }
    for (row, _) in &chosen {
        let namespace = match namespaces.is_valid(*row) {
            true => namespaces.value(*row),
            false => "unknown",
        };
        *totals.by_namespace.entry(namespace.to_owned()).or_default() += 1;
    }
    totals.exported += chosen.len() as u64;
    progress
        .profiles_exported
        .fetch_add(chosen.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// The merged columns (and the listed events) projected to the output, as the engine projects
/// them.
fn project(data: &StructArray, events: Option<&ArrayRef>, output: &SchemaRef) -> Result<RecordBatch, EngineError> {
    let merged = RecordBatch::from(data.clone());
    let merged = match events {
        Some(events) => {
            let events = event_list::in_order(events)?;
            let mut fields: Vec<Field> = merged.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(EVENT_LIST, events.data_type().clone(), true));
            let mut columns = merged.columns().to_vec();
            columns.push(events);
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?
        }
        None => merged,
    };
    Ok(align_batch(&merged, output)?)
}

/// The indices of the batches profile `row` goes to: every batch without segment filters;
/// otherwise those of the filters its merged memberships pass (semantics.md "Segment filters").
fn targets(request: &ExportRequest, memberships: Option<&MapArray>, evaluated: &Evaluated, row: usize) -> Vec<usize> {
    let spec = &request.spec;
    if spec.segments.is_empty() {
        return (0..request.batches.len()).collect();
    }
    let hits: Vec<bool> = spec
        .segments
        .iter()
        .map(|filter| evaluated.passes(memberships, row, filter, spec.qualification))
        .collect();
    request
        .batches
        .iter()
        .enumerate()
        .filter(|(_, target)| match target.segment {
            Some(index) => hits[index],
            None => hits.iter().any(|&h| h),
        })
        .map(|(i, _)| i)
        .collect()
}

/// The exporter of `export_engine = "cluster"`: exports run as plans on `ctx` (a Ballista
/// session), segment jobs still on the engine.
pub struct ClusterExporter {
    pub engine: EngineExporter,
    pub ctx: SessionContext,
}

impl ClusterExporter {
    pub fn new(engine: EngineExporter, ctx: SessionContext) -> Self {
        Self { engine, ctx }
    }
}

impl Exporter for ClusterExporter {
    async fn export(
        &self,
        request: &ExportRequest,
        progress: &ExportProgress,
        cancel: &CancelFlag,
    ) -> Result<ExportOutcome, ExportError> {
        let engine = &self.engine;
        // `evaluationInfo.segmentation: true`: fresh memberships first, then the export.
        let ids = request.spec.segments_to_evaluate();
        if !ids.is_empty() {
            evaluate_for_export(&self.ctx, engine, &request.tenant, request.job_id, &ids, cancel).await?;
        }
        run_export_on(&self.ctx, &engine.meta, &engine.lake, request, progress, cancel).await
    }

    async fn evaluate(&self, job: &SegmentJob, cancel: &CancelFlag) -> Result<Evaluation, SegmentError> {
        // As the engine's: memberships as of the claim, which the job shows as its start; the
        // profiles from the engine's builder, each segment's decision a plan on the cluster.
        let engine = &self.engine;
        let now = job.metrics.start.unwrap_or_else(now_millis);
        let build = (&engine.settings, &engine.tables);
        crate::segments::evaluate_on_with(
            &self.ctx,
            &engine.meta,
            &engine.lake,
            &job.tenant,
            &job.segments,
            &job.id,
            now,
            cancel,
            build,
        )
        .await
    }
}
