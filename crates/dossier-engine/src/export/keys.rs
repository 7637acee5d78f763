//! Pass one of an export: which profile every fragment belongs to, and what is known about
//! each profile before merging (last update, whether it has a record, its primary identity).
//!
//! Only the identity columns and the system column are read here, so this pass is cheap; it
//! decides which profiles can be skipped before any attribute is read.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;

use dossier_model::catalog::Dataset;
use dossier_model::merge_policy::{AttributeMerge, IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{SchemaClass, XdmSchema};
use dossier_storage::meta::FileKind;
use dossier_storage::{Lake, MetaStore};

use crate::EngineError;
use crate::identity::{ComponentIndex, Identity, PinnedGraph, current_graph, read_file_primaries};
use crate::parquet_io::LakeFileReader;
use crate::profiles::merge::IDENTITY_MAP;
use crate::schemas::dataset_schema;

/// Marks a fragment that belongs to no profile (it has no identity).
pub const NO_PROFILE: u32 = u32::MAX;

/// A profile-enabled dataset that feeds profiles.
pub struct SourceDataset {
    pub dataset: Dataset,
    pub schema: Arc<XdmSchema>,
    /// Record datasets outside a `dataSetPrecedence` order contribute nothing.
    pub in_scope: bool,
    /// Higher wins; 0 under `timestampOrdered`.
    pub rank: i64,
}

/// One Parquet file of fragments.
pub struct SourceFile {
    pub dataset: usize,
    pub location: ObjectPath,
    pub ingested: EpochMillis,
    pub batch_seq: i64,
}

/// A source file with the profile of each of its rows.
pub struct KeyedFile {
    pub file: SourceFile,
    pub profiles: Vec<u32>,
    pub row_ids: Vec<i64>,
}

/// What is known about a profile before merging.
#[derive(Debug, Clone, Default)]
pub struct ProfileFacts {
    pub last_update: EpochMillis,
    pub has_record: bool,
    /// Merge order of the fragment whose primary identity names the profile's namespace.
    primary_rank: (bool, EpochMillis, i64, i64),
    pub primary_namespace: Option<Arc<str>>,
}

/// Every source of a sandbox, keyed to profiles.
pub struct KeyedSources {
    pub datasets: Vec<SourceDataset>,
    pub records: Vec<KeyedFile>,
    pub events: Vec<KeyedFile>,
    pub profiles: Vec<Identity>,
    pub facts: Vec<ProfileFacts>,
    /// The identity graph version profiles were keyed with (`pdg`); `None` under `none`.
    pub graph_version: Option<i64>,
    /// The components of that version: where a stored identity's profile is found (`pdg`).
    pub components: Option<Arc<ComponentIndex>>,
}

async fn source_datasets(
    meta: &MetaStore,
    tenant: &Tenant,
    policy: &MergePolicy,
) -> Result<Vec<SourceDataset>, EngineError> {
    let mut sources = Vec::new();
    for dataset in meta.profile_enabled_datasets(tenant).await? {
        let Ok(schema) = dataset_schema(meta, tenant, &dataset).await else {
            continue;
        };
        let (in_scope, rank) = match (&policy.attribute_merge, schema.class) {
            (AttributeMerge::DataSetPrecedence { order }, SchemaClass::Profile) => {
                match order.iter().position(|id| *id == dataset.id) {
                    Some(position) => (true, (order.len() - position) as i64),
                    None => (false, 0),
                }
            }
            _ => (true, 0),
        };
        sources.push(SourceDataset {
            dataset,
            schema: Arc::new(schema),
            in_scope,
            rank,
        });
    }
    Ok(sources)
}

/// The data files of the committed batches `graph` covers (every committed batch without one).
async fn source_files(
    meta: &MetaStore,
    tenant: &Tenant,
    datasets: &[SourceDataset],
    graph: Option<&PinnedGraph>,
) -> Result<Vec<SourceFile>, EngineError> {
    let mut files = Vec::new();
    for (index, source) in datasets.iter().enumerate() {
        for (batch, batch_seq) in meta.committed_batches_in_order(tenant, &source.dataset.id).await? {
            if graph.is_some_and(|g| !g.covers(&batch.id)) {
                continue;
            }
            let ingested = batch.completed.unwrap_or(batch.updated);
            for file in meta.batch_files(tenant, &batch.id, FileKind::Data).await? {
                files.push(SourceFile {
                    dataset: index,
                    location: ObjectPath::from(file.path),
                    ingested,
                    batch_seq,
                });
            }
        }
    }
    Ok(files)
}

/// Which event files pass one reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventScan {
    All,
    None,
    /// Only files ingested after this time: all a `fromIngestTimestamp` filter needs when no
    /// event is exported, since older events cannot make a profile's last update later.
    IngestedAfter(EpochMillis),
}

/// Numbers profiles in the order their first fragment is seen. A profile is a graph component
/// under `pdg` (looked up by number, so no identity is cloned or hashed twice) and a primary
/// identity under `none`.
#[derive(Default)]
struct ProfileNumbers {
    by_component: foldhash::HashMap<u32, u32>,
    by_identity: foldhash::HashMap<Identity, u32>,
    namespaces: Vec<Arc<str>>,
}

impl ProfileNumbers {
    /// The profile of a fragment whose primary identity is `primary`; `add` is called with the
    /// key of a profile seen for the first time. `None` when the graph does not know `primary`.
    fn number(
        &mut self,
        graph: Option<&PinnedGraph>,
        primary: &Identity,
        add: impl FnOnce(Identity) -> u32,
    ) -> Option<u32> {
        match graph {
            Some(graph) => {
                let component = graph.components.component(primary)?;
                Some(match self.by_component.get(&component) {
                    Some(&profile) => profile,
                    None => {
                        let profile = add(graph.components.key(component).clone());
                        self.by_component.insert(component, profile);
                        profile
                    }
                })
            }
            None => Some(match self.by_identity.get(primary) {
                Some(&profile) => profile,
                None => {
                    let profile = add(primary.clone());
                    self.by_identity.insert(primary.clone(), profile);
                    profile
                }
            }),
        }
    }

    /// One shared string per namespace.
    fn namespace(&mut self, namespace: &str) -> Arc<str> {
        match self.namespaces.iter().find(|n| n.as_ref() == namespace) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(namespace);
                self.namespaces.push(shared.clone());
                shared
            }
        }
    }
}

impl KeyedSources {
    /// Reads every fragment's identities and assigns fragments to profiles under `policy`.
    /// `events` says which event files to read: skipping them saves reading the largest
    /// datasets when the caller needs no event and no empty profile (a profile with a record
    /// takes its primary identity from its records anyway).
    /// Under `pdg` the sandbox's identity graph is pinned first, and only fragments of the
    /// batches that version covers are read: the export sees one consistent state.
    pub async fn load(
        meta: &MetaStore,
        lake: &Lake,
        tenant: &Tenant,
        policy: &MergePolicy,
        events: EventScan,
    ) -> Result<Self, EngineError> {
        let graph = match policy.identity_graph {
            IdentityGraphType::None => None,
            IdentityGraphType::Pdg => Some(current_graph(meta, lake, tenant).await?),
        };
        let datasets = source_datasets(meta, tenant, policy).await?;
        let files = source_files(meta, tenant, &datasets, graph.as_ref()).await?;
        let mut sources = Self {
            datasets,
            records: Vec::new(),
            events: Vec::new(),
            profiles: Vec::new(),
            facts: Vec::new(),
            graph_version: graph.as_ref().and_then(PinnedGraph::version_number),
            components: None,
        };
        let mut numbers = ProfileNumbers::default();
        for file in files {
            let source = &sources.datasets[file.dataset];
            let is_record = source.schema.class == SchemaClass::Profile;
            let skipped = if is_record {
                !source.in_scope
            } else {
                match events {
                    EventScan::All => false,
                    EventScan::None => true,
                    EventScan::IngestedAfter(from) => file.ingested <= from,
                }
            };
            if skipped {
                continue;
            }
            let (primaries, row_ids) = read_file_primaries(lake, &file.location, &source.schema).await?;
            let mut profiles = Vec::with_capacity(primaries.len());
            for (primary, row_id) in primaries.iter().zip(&row_ids) {
                let add = |key: Identity| {
                    sources.profiles.push(key);
                    sources.facts.push(ProfileFacts::default());
                    (sources.profiles.len() - 1) as u32
                };
                let Some(profile) = primary
                    .as_ref()
                    .and_then(|primary| numbers.number(graph.as_ref(), primary, add))
                else {
                    profiles.push(NO_PROFILE);
                    continue;
                };
                profiles.push(profile);
                let facts = &mut sources.facts[profile as usize];
                facts.last_update = facts.last_update.max(file.ingested);
                facts.has_record |= is_record;
                let rank = (is_record, file.ingested, file.batch_seq, *row_id);
                if facts.primary_namespace.is_none() || rank > facts.primary_rank {
                    facts.primary_rank = rank;
                    facts.primary_namespace = primary.as_ref().map(|p| numbers.namespace(&p.namespace));
                }
            }
            let keyed = KeyedFile {
                file,
                profiles,
                row_ids,
            };
            if is_record {
                sources.records.push(keyed)
            } else {
                sources.events.push(keyed)
            }
        }
        sources.components = graph.map(|g| g.components);
        Ok(sources)
    }
}

impl KeyedSources {
    /// The top-level columns that hold identities in any source: `identityMap` and the roots of
    /// the schemas' identity fields. What a reader needs to tell whose a row is.
    pub fn identity_columns(&self) -> Vec<String> {
        let mut columns = vec![IDENTITY_MAP.to_owned()];
        for dataset in &self.datasets {
            for field in &dataset.schema.identities {
                let root = field.path.split('.').next().unwrap_or(&field.path);
                if !columns.iter().any(|c| c == root) {
                    columns.push(root.to_owned());
                }
            }
        }
        columns
    }
}

/// Reads, of every file, the rows that belong to `wanted` profiles and only the top-level
/// columns `keep` names: a row selection and a projection, so unpicked rows and unread columns
/// are never materialized. Gives (file index, rows, their row numbers in the file).
pub async fn read_picked_rows(
    lake: &Lake,
    files: &[KeyedFile],
    wanted: &[bool],
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<(usize, RecordBatch, Vec<usize>)>, EngineError> {
    let mut out = Vec::new();
    for (index, keyed) in files.iter().enumerate() {
        let picked: Vec<usize> = (0..keyed.profiles.len())
            .filter(|&r| keyed.profiles[r] != NO_PROFILE && wanted[keyed.profiles[r] as usize])
            .collect();
        if picked.is_empty() {
            continue;
        }
        let builder = LakeFileReader::new(lake, keyed.file.location.clone()).builder().await?;
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| keep(f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let selection = RowSelection::from_consecutive_ranges(consecutive_ranges(&picked), keyed.profiles.len());
        let batches: Vec<RecordBatch> = builder
            .with_projection(mask)
            .with_row_selection(selection)
            .build()?
            .try_collect()
            .await?;
        let Some(first) = batches.first() else { continue };
        out.push((index, concat_batches(&first.schema(), &batches)?, picked));
    }
    Ok(out)
}

/// Sorted row numbers as runs of consecutive rows.
fn consecutive_ranges(rows: &[usize]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= rows.len() {
            return None;
        }
        let mut end = start + 1;
        while end < rows.len() && rows[end] == rows[end - 1] + 1 {
            end += 1;
        }
        let range = rows[start]..rows[end - 1] + 1;
        start = end;
        Some(range)
    })
}
