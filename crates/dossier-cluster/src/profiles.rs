//! Merged profiles as a DataFusion plan: the committed fragments of the pinned batches (Parquet
//! in the lake, one scan per batch), keyed to their profile (the primary identity under `none`,
//! joined to the pinned identity graph snapshot under `pdg`), grouped by profile and merged by
//! [`dossier_merge_profile`](crate::functions::merge_profile), which calls the engine's merge.
//!
//! The plan, per batch of fragments (`scan` → `fragment`), then for all of them:
//!
//! ```text
//! union(fragments of every batch)
//!   -> [pdg] inner join graph snapshot on (primary namespace, id) = (namespace, id)
//!   -> [segment filters] left semi join the keys of fragments whose memberships mention a
//!      filtered segment (read from the membership column alone)
//!   -> group by profile key: array_agg(fragment) FILTER (is_record), max(ingested), bool_or(is_record)
//!      [emptyProfiles: the event fragments] [eventList: array_agg(event) FILTER (listed)]
//!   -> filter has_record (not with emptyProfiles)
//!   -> select last_update, dossier_merge_profile(fragments, or event fragments) AS profile [, eventList]
//! ```
//!
//! What eventList and emptyProfiles add is [`crate::event_list`]'s.
//!
//! The engine decides everything the plan names as literals (which batches, their ingestion
//! time and sequence, dataset ranks, identity fields), from the same metadata store the native
//! engine reads, so both see the same fragments in the same merge order.

use std::collections::BTreeMap;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::common::DataFusionError;
use datafusion::datasource::file_format::options::ParquetReadOptions;
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::functions_aggregate::expr_fn::{array_agg, bool_or, max};
use datafusion::logical_expr::{ExprFunctionExt, JoinType, when};
use datafusion::prelude::{DataFrame, Expr, SessionContext, ident, lit};
use object_store::path::Path as ObjectPath;

use dossier_engine::EngineError;
use dossier_engine::fragments::SYSTEM_METADATA;
use dossier_engine::identity::buckets::component_files;
use dossier_engine::identity::store::current_graph_unloaded;
use dossier_engine::profiles::build::keys::{EventScan, SourceDataset, SourceFile, source_datasets, source_files};
use dossier_engine::profiles::merge::{IDENTITY_MAP, SEGMENT_MEMBERSHIP};
use dossier_model::export_job::SegmentFilter;
use dossier_model::merge_policy::{IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::SchemaClass;
use dossier_storage::meta::MembershipFile;
use dossier_storage::{Lake, MetaStore};

use crate::event_list::{self, EVENT, EVENT_FRAGMENTS, EVENT_LIST, EventListing, LISTED};
use crate::functions::align::{align, typed_null};
use crate::functions::identities::{self, fragment_identities_expr};
use crate::functions::mentions::mentions_segments;
use crate::functions::merge_profile::{self, merge_profile, profile_type};
use crate::memberships::{EVALUATED, EVALUATED_ID, EVALUATED_NAMESPACE};
use crate::memberships::{evaluated_by_key, evaluated_keys, filtered_keys};
use crate::session::lake_file_url;

/// Columns of [`MergedProfiles::frame`]: the latest ingestion time of the profile's fragments
/// (records and the event files scanned) and the merged profile ([`profile_type`]).
pub const LAST_UPDATE: &str = "last_update";
pub const PROFILE: &str = "profile";

/// Intermediate columns.
const IS_RECORD: &str = "is_record";
const INGESTED: &str = "ingested";
const IDS: &str = "ids";
const DATA: &str = "data";
const ROW_ID: &str = "row_id";
const PRIMARY_NAMESPACE: &str = "primary_namespace";
const PRIMARY_ID: &str = "primary_id";
const FRAGMENT: &str = "fragment";
const FRAGMENTS: &str = "fragments";
const HAS_RECORD: &str = "has_record";
const MENTIONS: &str = "mentions";
const KEY_NAMESPACE: &str = "key_namespace";
const KEY_ID: &str = "key_id";

/// Which fragments and profiles a caller needs besides the records.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Which event files are scanned (they count in [`LAST_UPDATE`] only).
    pub events: EventScan,
    /// Segment filters: only profiles with a fragment that mentions one of these segments are
    /// merged (none: every profile).
    pub segments: &'a [SegmentFilter],
    /// The current membership files whose evaluated (`ups`) entries are joined to the profiles
    /// they land on, as [`EVALUATED`] (none: no such column).
    pub evaluated: &'a [MembershipFile],
    /// eventList: each profile's listed events in [`EVENT_LIST`] (see [`crate::event_list`]).
    pub listing: Option<&'a EventListing>,
    /// emptyProfiles: profiles made of events only are merged too (from their events).
    pub empty_profiles: bool,
}

/// The merged profiles of a sandbox, as a plan not yet run.
pub struct MergedProfiles {
    /// One row per profile with a record: [`LAST_UPDATE`] and [`PROFILE`].
    pub frame: DataFrame,
    /// The identity graph version keyed against (`pdg`); `None` under `none`.
    pub graph_version: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    /// Reading the metadata store or the graph's version failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] DataFusionError),
    /// A fragment file without `_acp_system_metadata.rowId`: its rows would have no merge order.
    #[error("fragment file {0} has no {SYSTEM_METADATA}.rowId")]
    NoRowIds(String),
}

/// One committed batch of a source dataset: its files are scanned together.
struct SourceBatch {
    dataset: usize,
    ingested: EpochMillis,
    batch_seq: i64,
    files: Vec<ObjectPath>,
}

/// The source files grouped by batch (files of a batch share its rank), keeping those `events`
/// reads (records: in scope; events: as the export needs them).
fn source_batches(datasets: &[SourceDataset], files: Vec<SourceFile>, events: EventScan) -> Vec<SourceBatch> {
    let mut batches: BTreeMap<(usize, i64, EpochMillis), Vec<ObjectPath>> = BTreeMap::new();
    for file in files.into_iter().filter(|f| events.reads(&datasets[f.dataset], f)) {
        batches
            .entry((file.dataset, file.batch_seq, file.ingested))
            .or_default()
            .push(file.location);
    }
    batches
        .into_iter()
        .map(|((dataset, batch_seq, ingested), files)| SourceBatch {
            dataset,
            ingested,
            batch_seq,
            files,
        })
        .collect()
}

/// The merged profiles of `tenant` under `policy`, with the columns of `merge_schema` merged,
/// of the fragments and profiles `wanted` says.
pub async fn merged_profiles(
    ctx: &SessionContext,
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    policy: &MergePolicy,
    merge_schema: &SchemaRef,
    wanted: Wanted<'_>,
) -> Result<MergedProfiles, ProfilesError> {
    let graph = match policy.identity_graph {
        IdentityGraphType::None => None,
        IdentityGraphType::Pdg => Some(current_graph_unloaded(meta, lake, tenant).await?),
    };
    let graph_version = graph.as_ref().and_then(|g| g.version_number());
    let datasets = source_datasets(meta, tenant, policy).await?;
    let files = source_files(meta, tenant, &datasets, graph.as_ref()).await?;
    let data_type = DataType::Struct(merge_schema.fields().clone());
    let mut fragments: Option<DataFrame> = None;
    for batch in source_batches(&datasets, files, wanted.events) {
        let Some(frame) = batch_fragments(ctx, &datasets[batch.dataset], &batch, &data_type, wanted).await? else {
            continue;
        };
        fragments = Some(match fragments {
            Some(all) => all.union(frame)?,
            None => frame,
        });
    }
    // The pinned version's component buckets (or an earlier release's single file); a version
    // with no rows has none, and keys nothing, as no version does.
    let snapshot: Option<Option<Vec<ObjectPath>>> = match graph.as_ref().map(|g| g.version.as_ref()) {
        None => None,
        Some(None) => Some(None),
        Some(Some(version)) => {
            let files = component_files(lake, &version.path).await?;
            Some((!files.is_empty()).then_some(files))
        }
    };
    let evaluated = match (&snapshot, wanted.evaluated.is_empty()) {
        // Without a graph (`pdg`) or files there is nothing to key the entries to.
        (Some(None), _) | (_, true) => None,
        (Some(Some(snapshot)), false) => evaluated_keys(ctx, wanted.evaluated, Some(snapshot.as_slice())).await?,
        (None, false) => evaluated_keys(ctx, wanted.evaluated, None).await?,
    };
    let keyed = match (fragments, snapshot) {
        // No fragments, or (`pdg`) no graph yet: nothing was committed, nothing to key.
        (None, _) | (_, Some(None)) => None,
        (Some(fragments), None) => Some(
            fragments.select(
                [
                    ident(PRIMARY_NAMESPACE).alias(KEY_NAMESPACE),
                    ident(PRIMARY_ID).alias(KEY_ID),
                ]
                .into_iter()
                .chain(carried(wanted))
                .collect::<Vec<Expr>>(),
            )?,
        ),
        (Some(fragments), Some(Some(snapshot))) => Some(join_graph(ctx, fragments, &snapshot, wanted).await?),
    };
    let frame = match keyed {
        Some(keyed) if !wanted.segments.is_empty() => {
            let also = match &evaluated {
                Some(evaluated) => filtered_keys(evaluated.clone(), wanted.segments)?,
                None => None,
            };
            grouped(mentioned(keyed, also)?, wanted)?
        }
        Some(keyed) => grouped(keyed, wanted)?,
        None => empty(ctx, &data_type, wanted)?,
    };
    let frame = match evaluated {
        Some(evaluated) => with_evaluated(frame, evaluated, wanted)?,
        None => frame.select(result_columns(wanted))?,
    };
    Ok(MergedProfiles { frame, graph_version })
}

/// The fragments of one batch: `is_record`, `ingested`, the primary identity, and the fragment
/// struct the merge takes. `None` when its files have no identity column (nothing to key).
async fn batch_fragments(
    ctx: &SessionContext,
    dataset: &SourceDataset,
    batch: &SourceBatch,
    data_type: &DataType,
    wanted: Wanted<'_>,
) -> Result<Option<DataFrame>, ProfilesError> {
    let segments = wanted.segments;
    let urls: Vec<String> = batch.files.iter().map(lake_file_url).collect();
    // Lake files are named by the lake, not by extension.
    let options = ParquetReadOptions {
        file_extension: "",
        ..ParquetReadOptions::default()
    };
    let scan = ctx.read_parquet(urls, options).await?;
    let columns: std::collections::HashSet<String> = scan.schema().fields().iter().map(|f| f.name().clone()).collect();
    let has = |name: &str| columns.contains(name);
    let mut roots: Vec<String> = vec![IDENTITY_MAP.to_owned()];
    for field in &dataset.schema.identities {
        let root = field.path.split('.').next().unwrap_or(&field.path).to_owned();
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots.retain(|root| has(root));
    if roots.is_empty() {
        return Ok(None);
    }
    if !has(SYSTEM_METADATA) {
        return Err(ProfilesError::NoRowIds(batch.files[0].to_string()));
    }
    let is_record = dataset.schema.class == SchemaClass::Profile;
    let mentions = match is_record && !segments.is_empty() && has(SEGMENT_MEMBERSHIP) {
        true => mentions_segments(ident(SEGMENT_MEMBERSHIP), segments),
        false => lit(false),
    };
    let roots = named_struct(roots.iter().flat_map(|r| [lit(r.as_str()), ident(r)]).collect());
    let mut columns = vec![
        lit(is_record).alias(IS_RECORD),
        lit(batch.ingested).alias(INGESTED),
        get_field(ident(SYSTEM_METADATA), "rowId").alias(ROW_ID),
        fragment_identities_expr(roots, &dataset.schema.identities).alias(IDS),
        fragment_data(data_type, is_record, &has)?.alias(DATA),
        mentions.alias(MENTIONS),
    ];
    if let Some(listing) = wanted.listing {
        columns.extend(event_list::fragment_columns(listing, is_record, batch.ingested, &has)?);
    }
    let first = scan.select(columns)?;
    // Events merge no attribute; ranked by dataset position they merge an empty profile's
    // identities in the order the engine reads its event files (dataset, batch, row).
    let rank = match is_record {
        true => dataset.rank,
        false => batch.dataset as i64,
    };
    let fragment = named_struct(vec![
        lit(merge_profile::DATASET_RANK),
        lit(rank),
        lit(merge_profile::INGESTED),
        ident(INGESTED),
        lit(merge_profile::BATCH_SEQ),
        lit(batch.batch_seq),
        lit(merge_profile::ROW_ID),
        ident(ROW_ID),
        lit(merge_profile::IDENTITIES),
        ident(IDS),
        lit(merge_profile::DATA),
        ident(DATA),
    ]);
    let mut columns = vec![
        ident(IS_RECORD),
        ident(INGESTED),
        get_field(ident(IDS), identities::PRIMARY_NAMESPACE).alias(PRIMARY_NAMESPACE),
        get_field(ident(IDS), identities::PRIMARY_ID).alias(PRIMARY_ID),
        ident(MENTIONS),
        fragment.alias(FRAGMENT),
    ];
    if wanted.listing.is_some() {
        columns.extend([ident(EVENT), ident(LISTED)]);
    }
    let frame = first
        .select(columns)?
        // A fragment without a primary identity belongs to no profile.
        .filter(ident(PRIMARY_NAMESPACE).is_not_null())?;
    Ok(Some(frame))
}

/// The merged columns of a fragment, aligned to the union; nulls for an event (it merges
/// nothing) and for `identityMap` (merged from the fragments' identities, not its values).
fn fragment_data(data_type: &DataType, is_record: bool, has: &dyn Fn(&str) -> bool) -> Result<Expr, ProfilesError> {
    let DataType::Struct(fields) = data_type else {
        unreachable!("the merged columns are a struct")
    };
    let mut args = Vec::with_capacity(fields.len() * 2);
    for field in fields {
        let name = field.name().as_str();
        let value = match is_record && name != IDENTITY_MAP && has(name) {
            true => align(ident(name), field.data_type())?,
            false => typed_null(field.data_type())?,
        };
        args.extend([lit(name), value]);
    }
    Ok(named_struct(args))
}

/// `pdg`: each fragment's profile is the component of its primary identity in the pinned
/// snapshot; a fragment whose primary identity the snapshot lacks belongs to no profile.
async fn join_graph(
    ctx: &SessionContext,
    fragments: DataFrame,
    snapshot: &[ObjectPath],
    wanted: Wanted<'_>,
) -> Result<DataFrame, ProfilesError> {
    let options = ParquetReadOptions {
        file_extension: "",
        ..ParquetReadOptions::default()
    };
    let graph = ctx
        .read_parquet(snapshot.iter().map(lake_file_url).collect::<Vec<_>>(), options)
        .await?;
    // The graph is the build side (left): four slim columns, where the fragments carry every
    // record's data. With the fragments there, each task of the join collected all of them
    // (a `CollectLeft` over a shuffle of unknown size), once per partition of the graph's scan.
    let joined = graph.join(
        fragments,
        JoinType::Inner,
        &["namespace", "id"],
        &[PRIMARY_NAMESPACE, PRIMARY_ID],
        None,
    )?;
    Ok(joined.select(
        [
            ident("component_namespace").alias(KEY_NAMESPACE),
            ident("component_id").alias(KEY_ID),
        ]
        .into_iter()
        .chain(carried(wanted))
        .collect::<Vec<Expr>>(),
    )?)
}

/// The columns of a keyed fragment besides its key.
fn carried(wanted: Wanted<'_>) -> Vec<Expr> {
    let mut columns = vec![ident(IS_RECORD), ident(INGESTED), ident(MENTIONS), ident(FRAGMENT)];
    if wanted.listing.is_some() {
        columns.extend([ident(EVENT), ident(LISTED)]);
    }
    columns
}

/// Only the fragments of profiles one of whose fragments mentions a filtered segment: a left
/// semi join with those profiles' keys, so the others are never grouped or merged.
/// `also`: further keys ([`EVALUATED_NAMESPACE`], [`EVALUATED_ID`]), of profiles with an
/// evaluated entry for a filtered segment.
fn mentioned(keyed: DataFrame, also: Option<DataFrame>) -> Result<DataFrame, ProfilesError> {
    let (hit_namespace, hit_id) = ("hit_namespace", "hit_id");
    let hits = keyed.clone().filter(ident(MENTIONS))?.select(vec![
        ident(KEY_NAMESPACE).alias(hit_namespace),
        ident(KEY_ID).alias(hit_id),
    ])?;
    let hits = match also {
        Some(also) => hits.union(also.select(vec![
            ident(EVALUATED_NAMESPACE).alias(hit_namespace),
            ident(EVALUATED_ID).alias(hit_id),
        ])?)?,
        None => hits,
    }
    .distinct()?;
    Ok(keyed.join(
        hits,
        JoinType::LeftSemi,
        &[KEY_NAMESPACE, KEY_ID],
        &[hit_namespace, hit_id],
        None,
    )?)
}

/// The merged profiles with each one's evaluated entries ([`EVALUATED`], null for none), joined
/// by profile key.
fn with_evaluated(frame: DataFrame, evaluated: DataFrame, wanted: Wanted<'_>) -> Result<DataFrame, ProfilesError> {
    let joined = frame.join(
        evaluated_by_key(evaluated)?,
        JoinType::Left,
        &[KEY_NAMESPACE, KEY_ID],
        &[EVALUATED_NAMESPACE, EVALUATED_ID],
        None,
    )?;
    let mut columns = result_columns(wanted);
    columns.push(ident(EVALUATED));
    Ok(joined.select(columns)?)
}

/// The columns a caller gets: the last update, the profile and, with an eventList, its events.
fn result_columns(wanted: Wanted<'_>) -> Vec<Expr> {
    let mut columns = vec![ident(LAST_UPDATE), ident(PROFILE)];
    if wanted.listing.is_some() {
        columns.push(ident(EVENT_LIST));
    }
    columns
}

/// Grouped by profile key and merged, with their key; only profiles with a record unless empty
/// profiles are wanted (merged from their events' fragments: identities only).
fn grouped(keyed: DataFrame, wanted: Wanted<'_>) -> Result<DataFrame, ProfilesError> {
    let fragments = array_agg(ident(FRAGMENT)).filter(ident(IS_RECORD)).build()?;
    let mut aggregates = vec![
        fragments.alias(FRAGMENTS),
        max(ident(INGESTED)).alias(LAST_UPDATE),
        bool_or(ident(IS_RECORD)).alias(HAS_RECORD),
    ];
    if wanted.empty_profiles {
        let events = array_agg(ident(FRAGMENT)).filter(!ident(IS_RECORD)).build()?;
        aggregates.push(events.alias(EVENT_FRAGMENTS));
    }
    if wanted.listing.is_some() {
        aggregates.push(event_list::listed_events()?);
    }
    let grouped = keyed.aggregate(vec![ident(KEY_NAMESPACE), ident(KEY_ID)], aggregates)?;
    let (grouped, merged) = match wanted.empty_profiles {
        true => (
            grouped,
            when(ident(HAS_RECORD), ident(FRAGMENTS)).otherwise(ident(EVENT_FRAGMENTS))?,
        ),
        false => (grouped.filter(ident(HAS_RECORD))?, ident(FRAGMENTS)),
    };
    let mut columns = vec![
        ident(KEY_NAMESPACE),
        ident(KEY_ID),
        ident(LAST_UPDATE),
        merge_profile(merged).alias(PROFILE),
    ];
    if wanted.listing.is_some() {
        columns.push(ident(EVENT_LIST));
    }
    Ok(grouped.select(columns)?)
}

/// No profiles, with the columns a plan would have: typed nulls over one row, filtered out.
/// Built of plan nodes the protobuf codec carries (an in-memory table would not reach a
/// Ballista scheduler).
fn empty(ctx: &SessionContext, data_type: &DataType, wanted: Wanted<'_>) -> Result<DataFrame, ProfilesError> {
    let mut columns = vec![
        typed_null(&DataType::Utf8)?.alias(KEY_NAMESPACE),
        typed_null(&DataType::Utf8)?.alias(KEY_ID),
        typed_null(&DataType::Int64)?.alias(LAST_UPDATE),
        typed_null(&profile_type(data_type))?.alias(PROFILE),
    ];
    if let Some(listing) = wanted.listing {
        let item = Field::new_list_field(DataType::Struct(listing.item.fields().clone()), true);
        columns.push(typed_null(&DataType::List(Arc::new(item)))?.alias(EVENT_LIST));
    }
    Ok(ctx.read_empty()?.select(columns)?.filter(lit(false))?)
}
