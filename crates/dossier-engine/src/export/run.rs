//! Running one export: pass one keys fragments to profiles (identity columns only), then each
//! partition of profiles is read, merged, filtered, projected and written.
//!
//! Memory is bounded by the partition size, not by the population: profiles are split into
//! partitions of at most `ExportSettings::partition_profiles`, and at most two partitions'
//! fragments are held at a time (one merging, the next being read on another thread).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, StructArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{concat_batches, filter_record_batch, take, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use futures::StreamExt;
use tracing::Instrument;

use dossier_model::export_job::ExportSpec;
use dossier_model::merge_policy::MergePolicy;
use dossier_model::time::{EpochMillis, now_millis};
use dossier_storage::{Lake, MetaStore};

use super::project::{ProjectError, project_schema};
use super::selection::select;
use super::types::{
    CancelFlag, ExportError, ExportOutcome, ExportProgress, ExportRequest, ExportSettings, ExportStage, Span,
    StagedBatch,
};
use super::writer::{BatchWriter, SplitLimits};
use crate::EngineError;
use crate::identity::{FragmentIdentities, fragment_identities};
use crate::profiles::align::align_batch;
use crate::profiles::build::keys::{EventScan, KeyedSources, identity_columns, read_picked_rows};
use crate::profiles::build::partition::{Partition, PartitionRecords, read_records};
use crate::profiles::build::{ComponentTables, KeyingContext, Restriction, ShardedKeys};
use crate::profiles::json_columns::column_as_json;
use crate::profiles::merge::{Groups, SEGMENT_MEMBERSHIP, merge_groups};
use crate::segments::memberships::{MembershipOverlay, with_memberships};

/// Profiles merged and written per Arrow batch.
const PROFILES_PER_CHUNK: usize = 4096;
/// A profile with more identities than this is left out (semantics.md "Identity graph").
pub const MAX_IDENTITIES: usize = 50;
pub const GUARDRAIL_REASON: &str = "identityGraphTooLarge";

/// A metadata store failure while planning.
pub fn planning_storage(error: dossier_storage::StorageError) -> ExportError {
    ExportError::Storage {
        stage: ExportStage::Planning,
        source: error.into(),
    }
}

/// A cancel requested while planning, seen between steps.
pub fn check_cancel(cancel: &CancelFlag) -> Result<(), ExportError> {
    match cancel.is_cancelled() {
        true => Err(ExportError::Cancelled),
        false => Ok(()),
    }
}

/// Everything fixed before the first partition.
struct Plan {
    spec: ExportSpec,
    /// The union's top-level columns the output needs: only these are merged.
    merge_schema: SchemaRef,
    output_schema: SchemaRef,
    event_schema: Option<SchemaRef>,
    /// The same for event files: eventList's columns and the identities.
    event_columns: HashSet<String>,
}

/// One shard of the population: its keyed fragments and the profiles it exports.
struct Shard {
    sources: KeyedSources,
    /// The profiles to export, in keying order, and (in step) the batches each goes to.
    profiles: Vec<u32>,
    targets: Vec<Vec<usize>>,
    /// Evaluated (`ups`) memberships laid over the profiles' own.
    overlay: MembershipOverlay,
}

/// The schemas an export writes, fixed before keying.
struct Schemas {
    /// The profile union, whole.
    union: SchemaRef,
    /// The output: the union projected to the job's fields, plus eventList.
    output: SchemaRef,
    /// eventList's item, projected to its fields.
    events: Option<SchemaRef>,
}

/// Plans the export, then keys its fragments (pass one).
async fn plan(
    meta: &MetaStore,
    lake: &Lake,
    request: &ExportRequest,
    settings: &ExportSettings,
    cancel: &CancelFlag,
    tables: &ComponentTables,
) -> Result<(Plan, ShardedKeys), ExportError> {
    // Planning reads the store and walks schemas that can be wide: a DELETE is honoured between
    // steps and during the walks, not only once keying starts.
    let policy = pinned_policy(meta, request).await?;
    let schemas = output_schemas(meta, request, cancel).await?;
    check_cancel(cancel)?;
    let merge_schema = merge_schema(&schemas);
    let context = KeyingContext {
        tenant: &request.tenant,
        policy: &policy,
        events: event_scan(&request.spec),
        settings,
        cancel,
        tables,
        memberships: None,
        restriction: &restriction(&request.spec),
    };
    let keyed = key_fragments(meta, lake, request.job_id, &context).await?;
    let identity_columns = identity_columns(keyed.datasets());
    let event_columns = schemas
        .events
        .iter()
        .flat_map(|schema| schema.fields().iter().map(|f| f.name().clone()))
        .chain(identity_columns.iter().cloned())
        .collect();
    let plan = Plan {
        spec: request.spec.clone(),
        merge_schema,
        output_schema: schemas.output,
        event_schema: schemas.events,
        event_columns,
    };
    Ok((plan, keyed))
}

/// The merge policy version the job pinned, which may have been deleted since.
pub async fn pinned_policy(meta: &MetaStore, request: &ExportRequest) -> Result<MergePolicy, ExportError> {
    let spec = &request.spec;
    meta.merge_policy(&request.tenant, &spec.merge_policy_id, Some(spec.merge_policy_version))
        .await
        .map_err(planning_storage)?
        .ok_or_else(|| ExportError::MergePolicyGone {
            id: spec.merge_policy_id.to_string(),
            version: spec.merge_policy_version,
        })
}

/// The union, the output schema and the eventList schema of the job.
async fn output_schemas(
    meta: &MetaStore,
    request: &ExportRequest,
    cancel: &CancelFlag,
) -> Result<Schemas, ExportError> {
    let spec = &request.spec;
    let union = meta.profile_union(&request.tenant).await.map_err(planning_storage)?;
    check_cancel(cancel)?;
    let union = union.arrow_schema();
    check_cancel(cancel)?;
    let output = match &spec.fields {
        None => union.clone(),
        Some(paths) => projected(&union, paths, &["identityMap"], false, cancel)?,
    };
    let events = event_schema(meta, request, cancel).await?;
    let output = match &events {
        None => output,
        Some(events) => {
            let mut fields: Vec<Field> = output.fields().iter().map(|f| f.as_ref().clone()).collect();
            let item = Field::new_list_field(DataType::Struct(events.fields().clone()), true);
            fields.push(Field::new("eventList", DataType::List(Arc::new(item)), true));
            Arc::new(Schema::new(fields))
        }
    };
    Ok(Schemas { union, output, events })
}

/// eventList's item schema: the event union, projected to the job's eventList fields.
async fn event_schema(
    meta: &MetaStore,
    request: &ExportRequest,
    cancel: &CancelFlag,
) -> Result<Option<SchemaRef>, ExportError> {
    let Some(events) = &request.spec.event_list else {
        return Ok(None);
    };
    let full = meta
        .event_union(&request.tenant)
        .await
        .map_err(planning_storage)?
        .arrow_schema();
    Ok(Some(match &events.fields {
        None => full,
        Some(paths) => projected(&full, paths, &["_id", "timestamp"], true, cancel)?,
    }))
}

/// `schema` projected to `paths` (and `always`), or which paths it no longer has.
fn projected(
    schema: &SchemaRef,
    paths: &[String],
    always: &[&str],
    event_list: bool,
    cancel: &CancelFlag,
) -> Result<SchemaRef, ExportError> {
    project_schema(schema, paths, always, &|| cancel.is_cancelled()).map_err(|error| match error {
        ProjectError::Cancelled => ExportError::Cancelled,
        ProjectError::Unknown(fields) => ExportError::FieldsGone { event_list, fields },
    })
}

/// The union's top-level columns the output needs: only these are merged.
fn merge_schema(schemas: &Schemas) -> SchemaRef {
    // A set of the output's names: `field_with_name` per union field is quadratic when wide.
    let output_names: HashSet<&str> = schemas.output.fields().iter().map(|f| f.name().as_str()).collect();
    Arc::new(Schema::new(
        schemas
            .union
            .fields()
            .iter()
            .filter(|f| output_names.contains(f.name().as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// The profiles the job can select, found before keying: those touched after
/// `fromIngestTimestamp` and those that may be members of a filtered segment. The selection
/// itself is still decided on the merged profiles ([`select_shard`]).
fn restriction(spec: &ExportSpec) -> Restriction {
    Restriction {
        touched_after: spec.from_ingest,
        segments: spec.segments.clone(),
    }
}

/// Which event files pass one reads: all when events are listed or make profiles, else only
/// those ingested after `fromIngest` (they can make a profile changed), else none.
fn event_scan(spec: &ExportSpec) -> EventScan {
    match spec.from_ingest {
        _ if spec.event_list.is_some() || spec.empty_profiles => EventScan::All,
        Some(from) => EventScan::IngestedAfter(from),
        None => EventScan::None,
    }
}

/// Pass one: every fragment keyed to its profile and shard.
async fn key_fragments(
    meta: &MetaStore,
    lake: &Lake,
    job_id: i64,
    context: &KeyingContext<'_>,
) -> Result<ShardedKeys, ExportError> {
    let started = std::time::Instant::now();
    let keyed = ShardedKeys::build(meta, lake, context)
        .await
        .map_err(ExportError::reading)?;
    let tenant = context.tenant;
    tracing::info!(
        job_id, org = %tenant.org, sandbox = %tenant.sandbox,
        identity_graph_version = ?keyed.graph_version(), shards = keyed.layout.shards, buckets = keyed.layout.buckets,
        elapsed_ms = started.elapsed().as_millis() as u64, "export keyed its fragments"
    );
    Ok(keyed)
}

/// Shard `index`: its fragments keyed to profiles, and the profiles the job selects.
async fn select_shard(
    lake: &Lake,
    request: &ExportRequest,
    keyed: &mut ShardedKeys,
    index: usize,
) -> Result<Shard, ExportError> {
    let started = std::time::Instant::now();
    let spec = &request.spec;
    let (sources, overlay) = keyed.shard(index).map_err(ExportError::reading)?;
    let candidates = (0..sources.profiles.len() as u32)
        .filter(|&p| {
            let facts = &sources.facts[p as usize];
            (facts.has_record || spec.empty_profiles) && spec.from_ingest.is_none_or(|from| facts.last_update > from)
        })
        .collect();
    let (profiles, targets): (Vec<u32>, Vec<Vec<usize>>) = select(lake, &sources, request, &overlay, candidates)
        .await
        .map_err(ExportError::Read)?
        .into_iter()
        .unzip();
    tracing::info!(
        job_id = request.job_id,
        shard = index,
        profiles = sources.profiles.len(),
        selected = profiles.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "export selected the profiles of a shard"
    );
    Ok(Shard {
        sources,
        profiles,
        targets,
        overlay,
    })
}

/// The events of one partition: rows aligned to the eventList schema, and per profile its
/// events in the window, ordered by timestamp then `_id`; plus every event's identities.
struct PartitionEvents {
    rows: Option<RecordBatch>,
    listed: Vec<Vec<u32>>,
    identities: Vec<Vec<FragmentIdentities>>,
}

async fn partition_events(
    lake: &Lake,
    plan: &Plan,
    shard: &Shard,
    partition: &Partition<'_>,
) -> Result<PartitionEvents, EngineError> {
    let profiles = partition.profiles;
    let mut position = vec![usize::MAX; shard.sources.profiles.len()];
    for (i, &p) in profiles.iter().enumerate() {
        position[p as usize] = i;
    }
    let mut listed_keys: Vec<Vec<(i64, String, u32)>> = vec![Vec::new(); profiles.len()];
    let mut identities: Vec<Vec<FragmentIdentities>> = vec![Vec::new(); profiles.len()];
    let mut aligned = Vec::new();
    let mut offset = 0u32;
    let window = plan.spec.event_list.as_ref();
    let keep = |name: &str| plan.event_columns.contains(name);
    for (index, rows, picked) in read_picked_rows(lake, &shard.sources.events, &partition.wanted, &keep).await? {
        let keyed = &shard.sources.events[index];
        let dataset = &shard.sources.datasets[keyed.file.dataset];
        let fragment_ids = fragment_identities(&rows, &dataset.schema.identities);
        for (i, &r) in picked.iter().enumerate() {
            identities[position[keyed.profiles[r] as usize]].push(fragment_ids[i].clone());
        }
        let (Some(schema), Some(window)) = (&plan.event_schema, window) else {
            continue;
        };
        let ingested = keyed.file.ingested;
        let in_window =
            window.from_ingest.is_none_or(|from| ingested > from) && window.to_ingest.is_none_or(|to| ingested <= to);
        if !in_window {
            continue;
        }
        let events = align_batch(&rows, schema)?;
        let times = events
            .column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
        let ids = events.column_by_name("_id").and_then(|c| c.as_string_opt::<i32>());
        for (i, &r) in picked.iter().enumerate() {
            let time = times.filter(|t| t.is_valid(i)).map_or(i64::MIN, |t| t.value(i));
            let id = ids
                .filter(|c| c.is_valid(i))
                .map_or(String::new(), |c| c.value(i).to_owned());
            listed_keys[position[keyed.profiles[r] as usize]].push((time, id, offset + i as u32));
        }
        offset += events.num_rows() as u32;
        aligned.push(events);
    }
    let rows = match &plan.event_schema {
        Some(schema) if window.is_some() => Some(concat_batches(schema, &aligned)?),
        _ => None,
    };
    let listed = listed_keys
        .into_iter()
        .map(|mut events| {
            events.sort();
            events.into_iter().map(|(_, _, row)| row).collect()
        })
        .collect();
    Ok(PartitionEvents {
        rows,
        listed,
        identities,
    })
}

fn event_list_column(events: &PartitionEvents, chosen: &[usize], field: &Field) -> Result<ArrayRef, EngineError> {
    let DataType::List(item) = field.data_type() else {
        unreachable!("eventList is a list")
    };
    let mut offsets = vec![0i32];
    let mut indices = Vec::new();
    for &group in chosen {
        indices.extend_from_slice(&events.listed[group]);
        offsets.push(indices.len() as i32);
    }
    let values: ArrayRef = match &events.rows {
        Some(rows) => {
            let structs: ArrayRef = Arc::new(StructArray::from(rows.clone()));
            take(structs.as_ref(), &UInt32Array::from(indices), None)?
        }
        None => arrow::array::new_empty_array(item.data_type()),
    };
    Ok(Arc::new(ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        values,
        None,
    )?))
}

/// One partition's merged inputs, shared by the threads that build chunks.
struct PartitionWork {
    records: PartitionRecords,
    /// `records.rows` with only the columns of [`Plan::merge_schema`].
    merge_rows: RecordBatch,
    events: PartitionEvents,
    extra: Vec<Vec<FragmentIdentities>>,
    /// The partition's profiles, by group: what the overlay of evaluated memberships is keyed by.
    profiles: Vec<u32>,
}

/// Merges, projects and assembles the output rows of one chunk of profiles.
fn build_chunk(
    plan: &Plan,
    shard: &Shard,
    work: &PartitionWork,
    chunk: &[(usize, Vec<usize>)],
) -> Result<RecordBatch, EngineError> {
    let groups: Vec<usize> = chunk.iter().map(|(g, _)| *g).collect();
    let mut order = Vec::new();
    let mut bounds = Vec::with_capacity(groups.len());
    for &g in &groups {
        let start = order.len();
        order.extend_from_slice(&work.records.groups.order[work.records.groups.bounds[g].clone()]);
        bounds.push(start..order.len());
    }
    // The chunk's fragments are taken out of the partition first, so merging costs what the
    // chunk holds, not what the partition holds.
    let rows = take_record_batch(&work.merge_rows, &UInt32Array::from(order.clone()))?;
    let identities: Vec<FragmentIdentities> = order
        .iter()
        .map(|&r| work.records.identities[r as usize].clone())
        .collect();
    let sub = Groups {
        order: (0..order.len() as u32).collect(),
        bounds,
    };
    let sub_extra: Vec<Vec<FragmentIdentities>> = groups.iter().map(|&g| work.extra[g].clone()).collect();
    let merged = merge_groups(&rows, &plan.merge_schema, &sub, &identities, &sub_extra)?;
    // Written memberships carry the evaluated entries too, laid over the merged ones.
    let merged = if shard.overlay.is_empty() || merged.column_by_name(SEGMENT_MEMBERSHIP).is_none() {
        merged
    } else {
        let mut memberships = column_as_json(&merged, SEGMENT_MEMBERSHIP)?;
        let profiles: Vec<u32> = groups.iter().map(|&g| work.profiles[g]).collect();
        shard.overlay.apply(&mut memberships, &profiles);
        with_memberships(merged, memberships)?
    };
    let mut columns: Vec<ArrayRef> = Vec::new();
    for field in plan.output_schema.fields() {
        if field.name() == "eventList" {
            columns.push(event_list_column(&work.events, &groups, field)?);
        } else {
            let projected = align_batch(&merged, &Arc::new(Schema::new(vec![field.as_ref().clone()])))?;
            columns.push(projected.column(0).clone());
        }
    }
    Ok(RecordBatch::try_new(plan.output_schema.clone(), columns)?)
}

struct Totals {
    exported: u64,
    by_namespace: BTreeMap<String, u64>,
    left_out: BTreeMap<String, u64>,
}

/// Where one partition's output goes and what it counts into.
struct PartitionOutput<'a> {
    writers: &'a mut [BatchWriter],
    totals: &'a mut Totals,
    progress: &'a ExportProgress,
    cancel: &'a CancelFlag,
}

/// Exports one partition of a shard from its fragments, read beforehand: leaves out the
/// profiles over the guardrail, merges the rest chunk by chunk and writes them to their batches.
async fn export_partition(
    plan: &Arc<Plan>,
    shard: &Arc<Shard>,
    (profiles, targets): (&[u32], &[Vec<usize>]),
    (records, events): (PartitionRecords, PartitionEvents),
    out: PartitionOutput<'_>,
) -> Result<(), ExportError> {
    let started = std::time::Instant::now();
    if out.cancel.is_cancelled() {
        return Err(ExportError::Cancelled);
    }
    let extra = extra_identities(&records, &events);
    let chosen = within_guardrail(&records, &extra, targets, out.totals);
    out.progress
        .profiles_scanned
        .fetch_add(profiles.len() as u64, Ordering::Relaxed);
    let merge_columns: Vec<usize> = plan
        .merge_schema
        .fields()
        .iter()
        .filter_map(|f| records.rows.schema().index_of(f.name()).ok())
        .collect();
    let merge_rows = records
        .rows
        .project(&merge_columns)
        .map_err(|e| ExportError::Merge(e.into()))?;
    let work = Arc::new(PartitionWork {
        records,
        merge_rows,
        events,
        extra,
        profiles: profiles.to_vec(),
    });
    merge_and_write(plan, shard, &work, chosen, out).await?;
    tracing::info!(
        profiles = profiles.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "export merged and wrote a partition"
    );
    Ok(())
}

/// A partition's read, started on a blocking thread of its own so that it overlaps the merge
/// of the partition before it (the job's runtime is single-threaded).
type PartitionRead = tokio::task::JoinHandle<Result<(PartitionRecords, PartitionEvents), ExportError>>;

fn start_reading(lake: &Lake, plan: &Arc<Plan>, shard: &Arc<Shard>, profiles: &[u32]) -> PartitionRead {
    let (lake, plan, shard, profiles) = (lake.clone(), plan.clone(), shard.clone(), profiles.to_vec());
    let handle = tokio::runtime::Handle::current();
    // The blocking thread does not inherit the job's span: its log lines would lose the job id.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(read_partition(&lake, &plan, &shard, &profiles).instrument(span))
    })
}

/// The record fragments of a partition's profiles, and their events when the job needs them.
async fn read_partition(
    lake: &Lake,
    plan: &Plan,
    shard: &Shard,
    profiles: &[u32],
) -> Result<(PartitionRecords, PartitionEvents), ExportError> {
    let partition = Partition::new(&shard.sources, profiles);
    let started = std::time::Instant::now();
    let records = read_records(lake, &shard.sources, &partition, &plan.merge_schema)
        .await
        .map_err(ExportError::Read)?;
    let records_read = started.elapsed();
    let needs_events = plan.spec.event_list.is_some() || plan.spec.empty_profiles;
    let events = if needs_events {
        partition_events(lake, plan, shard, &partition)
            .await
            .map_err(ExportError::Read)?
    } else {
        PartitionEvents {
            rows: None,
            listed: vec![Vec::new(); profiles.len()],
            identities: vec![Vec::new(); profiles.len()],
        }
    };
    tracing::info!(
        profiles = profiles.len(),
        fragments = records.rows.num_rows(),
        records_ms = records_read.as_millis() as u64,
        events_ms = (started.elapsed() - records_read).as_millis() as u64,
        "export read a partition"
    );
    Ok((records, events))
}

/// Per profile, the identities its identityMap takes besides its records': the union of its
/// records' identities when it has records, its events' identities when it is empty.
fn extra_identities(records: &PartitionRecords, events: &PartitionEvents) -> Vec<Vec<FragmentIdentities>> {
    (0..records.groups.bounds.len())
        .map(|g| {
            if records.groups.bounds[g].is_empty() {
                events.identities[g].clone()
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// The profiles (by group) with at most [`MAX_IDENTITIES`] identities, with their targets; the
/// others are counted as left out.
fn within_guardrail(
    records: &PartitionRecords,
    extra: &[Vec<FragmentIdentities>],
    targets: &[Vec<usize>],
    totals: &mut Totals,
) -> Vec<(usize, Vec<usize>)> {
    let mut chosen = Vec::new();
    for (g, targets) in targets.iter().enumerate() {
        let mut distinct: Vec<&crate::identity::Identity> = Vec::new();
        let rows = &records.groups.order[records.groups.bounds[g].clone()];
        for fragment in rows.iter().map(|&r| &records.identities[r as usize]).chain(&extra[g]) {
            for identity in &fragment.all {
                if !distinct.contains(&identity) {
                    distinct.push(identity);
                }
            }
        }
        if distinct.len() > MAX_IDENTITIES {
            *totals.left_out.entry(GUARDRAIL_REASON.to_owned()).or_default() += 1;
            continue;
        }
        chosen.push((g, targets.clone()));
    }
    chosen
}

/// Merges the chosen profiles chunk by chunk and writes each chunk to the batches its
/// profiles go to.
async fn merge_and_write(
    plan: &Arc<Plan>,
    shard: &Arc<Shard>,
    work: &Arc<PartitionWork>,
    chosen: Vec<(usize, Vec<usize>)>,
    out: PartitionOutput<'_>,
) -> Result<(), ExportError> {
    let chunks: Vec<Vec<(usize, Vec<usize>)>> = chosen.chunks(PROFILES_PER_CHUNK).map(<[_]>::to_vec).collect();
    // Merging is CPU work: it runs on blocking threads, two chunks at a time (both cores), while
    // this task writes finished chunks in order.
    let mut built = futures::stream::iter(chunks.into_iter().map(|chunk| {
        let (plan, shard, work) = (plan.clone(), shard.clone(), work.clone());
        async move {
            tokio::task::spawn_blocking(move || build_chunk(&plan, &shard, &work, &chunk).map(|rows| (chunk, rows)))
                .await
        }
    }))
    .buffered(2);
    while let Some(result) = built.next().await {
        if out.cancel.is_cancelled() {
            return Err(ExportError::Cancelled);
        }
        let (chunk, rows) = result
            .map_err(|e| ExportError::Merge(e.into()))?
            .map_err(ExportError::Merge)?;
        write_chunk(out.writers, &chunk, &rows).await?;
        for (g, _) in &chunk {
            let namespace = shard.sources.facts[work.profiles[*g] as usize]
                .primary_namespace
                .as_deref()
                .unwrap_or("unknown");
            *out.totals.by_namespace.entry(namespace.to_owned()).or_default() += 1;
        }
        out.totals.exported += chunk.len() as u64;
        out.progress
            .profiles_exported
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Writes each batch the rows of a chunk whose profiles go to it.
async fn write_chunk(
    writers: &mut [BatchWriter],
    chunk: &[(usize, Vec<usize>)],
    rows: &RecordBatch,
) -> Result<(), ExportError> {
    for (target, writer) in writers.iter_mut().enumerate() {
        let mask: BooleanArray = chunk
            .iter()
            .map(|(_, targets)| Some(targets.contains(&target)))
            .collect();
        let selected = filter_record_batch(rows, &mask).map_err(|e| ExportError::Write(e.into()))?;
        if selected.num_rows() > 0 {
            writer.write(&selected).await.map_err(ExportError::Write)?;
        }
    }
    Ok(())
}

/// Runs an export to the point where every batch's files are written and ready to commit, with
/// the default [`ExportSettings`].
pub async fn run_export(
    meta: &MetaStore,
    lake: &Lake,
    request: &ExportRequest,
    progress: &ExportProgress,
    cancel: &CancelFlag,
) -> Result<ExportOutcome, ExportError> {
    run_export_with(meta, lake, request, progress, cancel, &ExportSettings::default()).await
}

/// [`run_export`] with explicit settings (and no graph tables kept from an earlier export).
pub async fn run_export_with(
    meta: &MetaStore,
    lake: &Lake,
    request: &ExportRequest,
    progress: &ExportProgress,
    cancel: &CancelFlag,
    settings: &ExportSettings,
) -> Result<ExportOutcome, ExportError> {
    let tables = ComponentTables::default();
    run_export_sharing(meta, lake, request, progress, cancel, settings, &tables).await
}

/// [`run_export_with`] keying against the sealed graph tables of `tables`, and leaving there
/// the table of the version it keyed: what an exporter running export after export passes.
pub async fn run_export_sharing(
    meta: &MetaStore,
    lake: &Lake,
    request: &ExportRequest,
    progress: &ExportProgress,
    cancel: &CancelFlag,
    settings: &ExportSettings,
    tables: &ComponentTables,
) -> Result<ExportOutcome, ExportError> {
    let started: EpochMillis = now_millis();
    let (plan, mut keyed) = plan(meta, lake, request, settings, cancel, tables).await?;
    let plan = Arc::new(plan);
    let mut writers = batch_writers(lake, request, &plan);
    let mut totals = Totals {
        exported: 0,
        by_namespace: BTreeMap::new(),
        left_out: BTreeMap::new(),
    };
    let shard_count = keyed.layout.shards;
    for index in 0..shard_count {
        let shard = Arc::new(select_shard(lake, request, &mut keyed, index).await?);
        let out = PartitionOutput {
            writers: &mut writers,
            totals: &mut totals,
            progress,
            cancel,
        };
        export_shard(
            lake,
            &plan,
            &shard,
            (index, shard_count),
            settings.partition_profiles,
            out,
        )
        .await?;
    }
    let merged_at = now_millis();
    let batches = finish_batches(request, writers, progress).await?;
    progress.percent.store(100, Ordering::Relaxed);
    let finished = now_millis();
    Ok(ExportOutcome {
        batches,
        identity_graph_version: keyed.graph_version(),
        exported_profiles: totals.exported,
        by_namespace: totals.by_namespace,
        left_out: totals.left_out,
        profile_export_time: Span {
            start: started,
            end: merged_at,
        },
        dataset_write_time: Span {
            start: started,
            end: finished,
        },
    })
}

/// One writer per batch of the job, each into its batch's staging folder.
fn batch_writers(lake: &Lake, request: &ExportRequest, plan: &Plan) -> Vec<BatchWriter> {
    request
        .batches
        .iter()
        .map(|target| {
            BatchWriter::new(
                lake.store().clone(),
                Lake::batch_prefix(&request.tenant, &request.spec.dataset_id, &target.batch_id),
                target.batch_id.clone(),
                request.spec.dataset_id.clone(),
                plan.output_schema.clone(),
                SplitLimits::default(),
            )
        })
        .collect()
}

/// Exports shard `index` of `count`, partition by partition, moving `percent` as each ends.
async fn export_shard(
    lake: &Lake,
    plan: &Arc<Plan>,
    shard: &Arc<Shard>,
    (index, shard_count): (usize, usize),
    partition_profiles: usize,
    out: PartitionOutput<'_>,
) -> Result<(), ExportError> {
    let partition_profiles = partition_profiles.max(1);
    let partitions: Vec<(&[u32], &[Vec<usize>])> = shard
        .profiles
        .chunks(partition_profiles)
        .zip(shard.targets.chunks(partition_profiles))
        .collect();
    let count = partitions.len().max(1);
    let PartitionOutput {
        writers,
        totals,
        progress,
        cancel,
    } = out;
    // While one partition merges, the next is read: two partitions' fragments are held at most.
    let mut next = partitions
        .first()
        .map(|(profiles, _)| start_reading(lake, plan, shard, profiles));
    for (done, partition) in partitions.iter().enumerate() {
        // No read was started after a cancel.
        let Some(read) = next.take() else {
            return Err(ExportError::Cancelled);
        };
        let fragments = read
            .await
            .map_err(|e| ExportError::Read(EngineError::Invalid(format!("a partition's read stopped: {e}"))))??;
        next = partitions
            .get(done + 1)
            .filter(|_| !cancel.is_cancelled())
            .map(|(profiles, _)| start_reading(lake, plan, shard, profiles));
        let out = PartitionOutput {
            writers: &mut *writers,
            totals: &mut *totals,
            progress,
            cancel,
        };
        export_partition(plan, shard, *partition, fragments, out).await?;
        let finished = (index * count + done + 1) as u64;
        let percent = finished * 99 / (shard_count * count) as u64;
        progress.percent.fetch_max(percent, Ordering::Relaxed);
    }
    Ok(())
}

/// Closes every batch's writer: its files, ready to commit.
pub async fn finish_batches(
    request: &ExportRequest,
    writers: Vec<BatchWriter>,
    progress: &ExportProgress,
) -> Result<Vec<StagedBatch>, ExportError> {
    let mut batches = Vec::new();
    for (target, writer) in request.batches.iter().zip(writers) {
        let files = writer.finish().await.map_err(ExportError::Write)?;
        let records = files.iter().map(|f| f.records).sum();
        let size = files.iter().map(|f| f.size).sum();
        progress.bytes_written.fetch_add(size as u64, Ordering::Relaxed);
        batches.push(StagedBatch {
            target: target.clone(),
            files,
            records,
            size,
        });
    }
    Ok(batches)
}
