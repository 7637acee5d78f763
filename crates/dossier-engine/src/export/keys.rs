//! Pass one of an export: which profile every fragment belongs to, and what is known about
//! each profile before merging (last update, whether it has a record, its primary identity).
//!
//! Only the identity columns and the system column are read here, so this pass is cheap; it
//! decides which profiles can be skipped before any attribute is read.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use dossier_model::catalog::Dataset;
use dossier_model::merge_policy::{AttributeMerge, IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{SchemaClass, XdmSchema};
use dossier_storage::meta::FileKind;
use dossier_storage::{Lake, MetaStore};

use crate::EngineError;
use crate::identity::{ComponentIndex, Identity, PinnedGraph, current_graph, read_file_identities};
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
    pub components: Option<ComponentIndex>,
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

/// The profile a fragment with `primary` identity belongs to: its component's key under `pdg`,
/// the identity itself under `none`.
fn profile_key(graph: Option<&PinnedGraph>, primary: &Identity) -> Option<Identity> {
    match graph {
        Some(graph) => graph.components.key_of(primary).cloned(),
        None => Some(primary.clone()),
    }
}

impl KeyedSources {
    /// Reads every fragment's identities and assigns fragments to profiles under `policy`.
    /// Under `pdg` the sandbox's identity graph is pinned first, and only fragments of the
    /// batches that version covers are read: the export sees one consistent state.
    pub async fn load(
        meta: &MetaStore,
        lake: &Lake,
        tenant: &Tenant,
        policy: &MergePolicy,
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
        let mut interned: HashMap<Identity, u32> = HashMap::new();
        for file in files {
            let source = &sources.datasets[file.dataset];
            let is_record = source.schema.class == SchemaClass::Profile;
            if is_record && !source.in_scope {
                continue;
            }
            let (identities, row_ids) = read_file_identities(lake, &file.location, &source.schema).await?;
            let mut profiles = Vec::with_capacity(identities.len());
            for (fragment, row_id) in identities.iter().zip(&row_ids) {
                let Some(key) = fragment.primary().and_then(|p| profile_key(graph.as_ref(), p)) else {
                    profiles.push(NO_PROFILE);
                    continue;
                };
                let next = interned.len() as u32;
                let profile = *interned.entry(key.clone()).or_insert_with(|| {
                    sources.profiles.push(key);
                    sources.facts.push(ProfileFacts::default());
                    next
                });
                profiles.push(profile);
                let facts = &mut sources.facts[profile as usize];
                facts.last_update = facts.last_update.max(file.ingested);
                facts.has_record |= is_record;
                let rank = (is_record, file.ingested, file.batch_seq, *row_id);
                if facts.primary_namespace.is_none() || rank > facts.primary_rank {
                    facts.primary_rank = rank;
                    facts.primary_namespace = fragment.primary().map(|p| Arc::from(p.namespace.as_str()));
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
