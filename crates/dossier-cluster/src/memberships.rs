//! Evaluated (`ups`) memberships on the cluster export, as the native engine lays them
//! (`dossier_engine::segments::memberships`): the current membership files (Parquet in the lake,
//! one per segment) are keyed to the profile each row lands on — its first identity under
//! `none`, the graph component of any of its identities under `pdg` — and joined to the merged
//! profiles by key. The rows each profile gets are then laid over its merged `segmentMembership`
//! by the engine's rule (per segment the latest `lastQualificationTime` wins, the evaluated entry
//! wins a tie) when filters are decided and when memberships are written.
//!
//! The plan part ([`evaluated_keys`], [`evaluated_by_key`]) is used by
//! [`merged_profiles`](crate::profiles::merged_profiles); the row part ([`Evaluated`]) by the
//! export.

use datafusion::arrow::array::{Array, AsArray, MapArray, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{TimestampMicrosecondType, TimestampMillisecondType};
use datafusion::common::DataFusionError;
use datafusion::datasource::file_format::options::ParquetReadOptions;
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::functions_aggregate::expr_fn::array_agg;
use datafusion::functions_nested::expr_fn::array_element;
use datafusion::logical_expr::JoinType;
use datafusion::prelude::{DataFrame, Expr, SessionContext, ident, lit};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use dossier_engine::EngineError;
use dossier_engine::export::{CancelFlag, ExportError, ExportStage};
use dossier_engine::jobs::{EngineExporter, segments_of};
use dossier_engine::profiles::json_columns::column_as_json;
use dossier_engine::profiles::merge::SEGMENT_MEMBERSHIP;
use dossier_engine::segments::SegmentError;
use dossier_engine::segments::evaluate::remove_files;
use dossier_engine::segments::memberships::{Entry, Status, UPS, overlay_entries, with_memberships};
use dossier_model::export_job::{QualificationWindow, SegmentFilter};
use dossier_model::tenancy::Tenant;
use dossier_model::time::{EpochMillis, now_millis};
use dossier_storage::meta::MembershipFile;

use crate::session::lake_file_url;

/// The column of the merged profiles' frame with each profile's evaluated entries (a list of
/// [`SEGMENT`], [`STATUS`], [`TIME`] structs; null when it has none).
pub const EVALUATED: &str = "evaluated";
/// Columns of [`evaluated_keys`]: the key of the profile an entry lands on, and the entry.
pub const EVALUATED_NAMESPACE: &str = "evaluated_namespace";
pub const EVALUATED_ID: &str = "evaluated_id";
const SEGMENT: &str = "segment";
const STATUS: &str = "status";
const TIME: &str = "lastQualificationTime";
const IDENTITIES: &str = "identities";
const IDENTITY: &str = "identity";

fn lake_options() -> ParquetReadOptions<'static> {
    // Lake files are named by the lake, not by extension.
    ParquetReadOptions {
        file_extension: "",
        ..ParquetReadOptions::default()
    }
}

/// One row per evaluated entry and profile key it lands on: [`EVALUATED_NAMESPACE`],
/// [`EVALUATED_ID`], [`SEGMENT`], [`STATUS`], [`TIME`]. `snapshot` is the pinned graph snapshot
/// under `pdg` (`None`: `none`, keyed by the row's first identity). `None` without files.
pub async fn evaluated_keys(
    ctx: &SessionContext,
    files: &[MembershipFile],
    snapshot: Option<&[ObjectPath]>,
) -> Result<Option<DataFrame>, DataFusionError> {
    let mut all: Option<DataFrame> = None;
    for file in files {
        let rows = ctx
            .read_parquet(lake_file_url(&ObjectPath::from(file.path.as_str())), lake_options())
            .await?;
        let keyed = match snapshot {
            None => rows.select(vec![
                get_field(array_element(ident(IDENTITIES), lit(1i64)), "namespace").alias(EVALUATED_NAMESPACE),
                get_field(array_element(ident(IDENTITIES), lit(1i64)), "id").alias(EVALUATED_ID),
                lit(file.segment_id.as_str()).alias(SEGMENT),
                ident(STATUS),
                ident(TIME),
            ])?,
            Some(snapshot) => by_component(ctx, rows, &file.segment_id, snapshot).await?,
        };
        all = Some(match all {
            Some(all) => all.union(keyed)?,
            None => keyed,
        });
    }
    Ok(all)
}

/// `pdg`: a row lands on the component of each of its identities (all one component unless
/// profiles merged since); one row per distinct component.
async fn by_component(
    ctx: &SessionContext,
    rows: DataFrame,
    segment: &str,
    snapshot: &[ObjectPath],
) -> Result<DataFrame, DataFusionError> {
    let graph = ctx
        .read_parquet(snapshot.iter().map(lake_file_url).collect::<Vec<_>>(), lake_options())
        .await?;
    let identities = rows
        .select(vec![ident(IDENTITIES).alias(IDENTITY), ident(STATUS), ident(TIME)])?
        .unnest_columns(&[IDENTITY])?
        .select(vec![
            get_field(ident(IDENTITY), "namespace").alias("member_namespace"),
            get_field(ident(IDENTITY), "id").alias("member_id"),
            ident(STATUS),
            ident(TIME),
        ])?;
    identities
        .join(
            graph,
            JoinType::Inner,
            &["member_namespace", "member_id"],
            &["namespace", "id"],
            None,
        )?
        .select(vec![
            ident("component_namespace").alias(EVALUATED_NAMESPACE),
            ident("component_id").alias(EVALUATED_ID),
            lit(segment).alias(SEGMENT),
            ident(STATUS),
            ident(TIME),
        ])?
        .distinct()
}

/// The keys of profiles with an evaluated entry for a `ups` segment `filters` name: they are
/// selected even when none of their fragments mentions the segment.
pub fn filtered_keys(evaluated: DataFrame, filters: &[SegmentFilter]) -> Result<Option<DataFrame>, DataFusionError> {
    let segments: Vec<Expr> = filters
        .iter()
        .filter(|f| f.segment_ns.eq_ignore_ascii_case(UPS))
        .map(|f| lit(f.segment_id.as_str()))
        .collect();
    if segments.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        evaluated
            .filter(ident(SEGMENT).in_list(segments, false))?
            .select(vec![ident(EVALUATED_NAMESPACE), ident(EVALUATED_ID)])?,
    ))
}

/// Each profile key's entries as one list ([`EVALUATED`]), to join to the merged profiles.
pub fn evaluated_by_key(evaluated: DataFrame) -> Result<DataFrame, DataFusionError> {
    let entry = named_struct(vec![
        lit(SEGMENT),
        ident(SEGMENT),
        lit(STATUS),
        ident(STATUS),
        lit(TIME),
        ident(TIME),
    ]);
    evaluated.aggregate(
        vec![ident(EVALUATED_NAMESPACE), ident(EVALUATED_ID)],
        vec![array_agg(entry).alias(EVALUATED)],
    )
}

/// The evaluated entries of each row of a batch of merged profiles, per segment the latest.
pub struct Evaluated {
    rows: Vec<Vec<(String, Entry)>>,
}

impl Evaluated {
    /// Reads [`EVALUATED`] of `rows` (none when the frame has no such column), each row's
    /// entries in the order of `files`: the engine lays them segment by segment in that order,
    /// which is the order of the keys it writes.
    pub fn of(rows: &RecordBatch, files: &[MembershipFile]) -> Self {
        let mut out = vec![Vec::new(); rows.num_rows()];
        if let Some(lists) = rows.column_by_name(EVALUATED).and_then(|c| c.as_list_opt::<i32>()) {
            for (row, entries) in out.iter_mut().enumerate() {
                if lists.is_valid(row) {
                    *entries = latest(lists.value(row).as_struct());
                    entries.sort_by_key(|(segment, _)| files.iter().position(|f| &f.segment_id == segment));
                }
            }
        }
        Self { rows: out }
    }

    fn is_empty(&self) -> bool {
        self.rows.iter().all(Vec::is_empty)
    }

    /// Row `row`'s entry for `segment`.
    fn entry(&self, row: usize, segment: &str) -> Option<Entry> {
        self.rows[row].iter().find(|(s, _)| s == segment).map(|(_, e)| *e)
    }

    /// The merged columns with the evaluated entries laid over `segmentMembership`, as the
    /// engine writes them (a column the merge does not have is left as it is).
    pub fn lay_over(&self, data: &StructArray) -> Result<RecordBatch, EngineError> {
        let merged = RecordBatch::from(data.clone());
        if self.is_empty() || merged.column_by_name(SEGMENT_MEMBERSHIP).is_none() {
            return Ok(merged);
        }
        let mut memberships = column_as_json(&merged, SEGMENT_MEMBERSHIP)?;
        for (value, entries) in memberships.iter_mut().zip(&self.rows) {
            overlay_entries(value, entries.iter().map(|(s, e)| (s.as_str(), *e)));
        }
        with_memberships(merged, memberships)
    }

    /// Whether row `row` passes `filter`: an entry of its merged `segmentMembership` (one per
    /// namespace spelling and segment) or its evaluated entry, which replaces the `ups` one
    /// qualified at the same time or earlier (the engine's `lay_overlay`).
    pub fn passes(
        &self,
        memberships: Option<&MapArray>,
        row: usize,
        filter: &SegmentFilter,
        window: QualificationWindow,
    ) -> bool {
        let laid = match filter.segment_ns.eq_ignore_ascii_case(UPS) {
            true => self.entry(row, &filter.segment_id),
            false => None,
        };
        let mut laid_wins = laid.is_some();
        let mut merged_hit = false;
        for (namespace, status, time) in merged_entries(memberships, row, filter) {
            if namespace == UPS
                && let Some(entry) = laid
                && time.is_none_or(|t| entry.time >= t)
            {
                continue;
            }
            if namespace == UPS {
                laid_wins = false;
            }
            merged_hit |= hit(filter, window, status.as_deref(), time);
        }
        let laid_hit = laid
            .filter(|_| laid_wins)
            .is_some_and(|e| hit(filter, window, Some(e.status.as_str()), Some(e.time)));
        merged_hit || laid_hit
    }
}

fn hit(filter: &SegmentFilter, window: QualificationWindow, status: Option<&str>, time: Option<EpochMillis>) -> bool {
    let wanted = status.is_some_and(|s| filter.statuses.iter().any(|w| w.as_str() == s));
    wanted && in_window(window, time)
}

fn in_window(window: QualificationWindow, time: Option<EpochMillis>) -> bool {
    if window.start.is_none() && window.end.is_none() {
        return true;
    }
    time.is_some_and(|t| window.start.is_none_or(|s| t >= s) && window.end.is_none_or(|e| t <= e))
}

/// The entries of row `row`'s merged `segmentMembership` for `filter`'s segment, in a namespace
/// spelling of its namespace: (spelling, status, time in milliseconds).
fn merged_entries(
    memberships: Option<&MapArray>,
    row: usize,
    filter: &SegmentFilter,
) -> Vec<(String, Option<String>, Option<EpochMillis>)> {
    let Some(memberships) = memberships.filter(|m| m.is_valid(row)) else {
        return Vec::new();
    };
    let namespaces = memberships.keys().as_string::<i32>();
    let Some(inner) = memberships.values().as_map_opt() else {
        return Vec::new();
    };
    let segments = inner.keys().as_string::<i32>();
    let values = inner.values().as_struct();
    let statuses = values.column_by_name(STATUS).and_then(|c| c.as_string_opt::<i32>());
    let times = values
        .column_by_name(TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
    let outer = memberships.value_offsets();
    let inner_offsets = inner.value_offsets();
    let mut out = Vec::new();
    for n in outer[row] as usize..outer[row + 1] as usize {
        if inner.is_null(n) || !filter.segment_ns.eq_ignore_ascii_case(namespaces.value(n)) {
            continue;
        }
        for s in inner_offsets[n] as usize..inner_offsets[n + 1] as usize {
            if segments.value(s) != filter.segment_id {
                continue;
            }
            let present = values.is_valid(s);
            let status = statuses
                .filter(|c| present && c.is_valid(s))
                .map(|c| c.value(s).to_owned());
            let time = times
                .filter(|t| present && t.is_valid(s))
                .map(|t| t.value(s).div_euclid(1000));
            out.push((namespaces.value(n).to_owned(), status, time));
        }
    }
    out
}

/// Per segment the entry with the latest time (a later one wins a tie, as the engine's
/// `entries_by_profile` keeps the later row).
fn latest(entries: &StructArray) -> Vec<(String, Entry)> {
    let (Some(segments), Some(statuses), Some(times)) = (
        entries.column_by_name(SEGMENT).and_then(|c| c.as_string_opt::<i32>()),
        entries.column_by_name(STATUS).and_then(|c| c.as_string_opt::<i32>()),
        entries
            .column_by_name(TIME)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>()),
    ) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Entry)> = Vec::new();
    for i in 0..entries.len() {
        let Some(status) = Status::parse(statuses.value(i)) else {
            continue;
        };
        let entry = Entry {
            status,
            time: times.value(i),
        };
        match out.iter_mut().find(|(s, _)| s == segments.value(i)) {
            Some((_, current)) if entry.time >= current.time => *current = entry,
            Some(_) => {}
            None => out.push((segments.value(i).to_owned(), entry)),
        }
    }
    out
}

/// `evaluationInfo.segmentation: true`, as the engine's exporter does it: the job's `ups`
/// segments evaluated first — each decision a plan on `ctx` — and the fresh memberships made
/// current before the export reads them.
pub async fn evaluate_for_export(
    ctx: &SessionContext,
    engine: &EngineExporter,
    tenant: &Tenant,
    job_id: i64,
    ids: &[String],
    cancel: &CancelFlag,
) -> Result<(), ExportError> {
    let storage = |source| ExportError::Storage {
        stage: ExportStage::Segmentation,
        source,
    };
    let (meta, lake) = (&engine.meta, &engine.lake);
    let segments = match segments_of(meta, tenant, ids).await {
        Ok(Ok(segments)) => segments,
        Ok(Err(id)) => return Err(ExportError::SegmentGone(id)),
        Err(error) => return Err(storage(error)),
    };
    let run_id = format!("export-{job_id}-{}", now_millis());
    let build = (&engine.settings, &engine.tables);
    let evaluation =
        crate::segments::evaluate_on_with(ctx, meta, lake, tenant, &segments, &run_id, now_millis(), cancel, build)
            .await
            .map_err(|error| match error {
                SegmentError::Cancelled => ExportError::Cancelled,
                SegmentError::Failed { code, message } => ExportError::Segmentation { code, message },
            })?;
    match meta.switch_membership_files(tenant, &evaluation.files).await {
        Ok(superseded) => {
            for path in superseded {
                // A superseded file nobody reads any more: left behind, it only takes space.
                if let Err(error) = lake.store().delete(&ObjectPath::from(path.as_str())).await {
                    tracing::warn!(%error, %path, "could not remove a superseded membership file");
                }
            }
            Ok(())
        }
        Err(error) => {
            remove_files(lake, &evaluation.files).await;
            Err(storage(error.into()))
        }
    }
}
