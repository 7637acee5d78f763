//! Pass one with memory bounded by configuration, whatever the population: profiles are split
//! into shards that are keyed, selected and exported one after the other. What does not fit is
//! spilled to local disk (`super::spill`).
//!
//! Under `pdg`, every identity of the pinned graph version is hashed (128 bits) with its
//! component number, and every fragment's primary identity is hashed the same way and looked up
//! as it is read; each fragment then goes to the shard of its component. A graph within one
//! bucket (`bucket_identities`) is one sorted table in memory; a larger one is hashed into
//! buckets on local disk once per version and kept for the version's later builds, which look
//! fragments up in them through memory maps (`graph_buckets`): only the first build of a
//! version scans its snapshot. Under `none` a profile is its primary identity, so fragments go
//! straight to the shard of that identity's hash.
//!
//! A population that fits one shard and one bucket (the configured sizes) never touches disk:
//! the graph is streamed into one table and fragments are keyed as they are read.

mod component_table;
mod graph_buckets;
mod graph_scan;
pub mod identity_hash;
mod keying;
mod layout;
mod membership_keys;
mod read_shard;
mod restrict;
mod router;
mod sidecar;
mod spills;

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use dossier_model::merge_policy::{IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_storage::{Lake, MetaStore};

use super::BuildSettings;
use super::keys::{EventScan, NamespaceNumbers, SourceDataset, SourceFile, source_datasets, source_files};
use super::spill::Spill;
use crate::EngineError;
use crate::cancel::CancelFlag;
use crate::identity::Identity;
use crate::identity::store::current_graph_unloaded;
use crate::segments::memberships::{Row, current_memberships};

pub use component_table::ComponentTables;
pub use graph_buckets::clear_stale_spills;
pub use layout::ShardLayout;
pub use restrict::Restriction;
use restrict::Seeds;
pub use sidecar::{KeySidecarEncoder, sidecar_location, write_key_sidecar};
use spills::{finish, spill_folder, spills};

/// Keying of a whole population, shard by shard: what [`ShardedKeys::build`] spilled, and
/// [`ShardedKeys::shard`] reads back as the [`KeyedSources`] of one shard.
pub struct ShardedKeys {
    pub layout: ShardLayout,
    datasets: Arc<Vec<SourceDataset>>,
    /// Every file pass one read; a spilled row's `file` indexes this.
    files: Vec<SourceFile>,
    /// Per shard: its fragments, keyed by component (`pdg`) or primary identity hash (`none`),
    /// in file order.
    shards: Vec<Option<Spill>>,
    namespaces: Vec<Arc<str>>,
    graph_version: Option<i64>,
    memberships: Vec<(String, Vec<Row>)>,
    /// `pdg`: the component of each identity of an evaluated membership.
    resolved: Option<HashMap<Identity, u32>>,
    /// A restricted build's seed identities: only the profiles they reach are keyed.
    seeds: Option<Seeds>,
    _folder: Option<tempfile::TempDir>,
}

/// What building needs besides storage.
pub struct KeyingContext<'a> {
    pub tenant: &'a Tenant,
    pub policy: &'a MergePolicy,
    pub events: EventScan,
    pub settings: &'a BuildSettings,
    pub cancel: &'a CancelFlag,
    /// The exporter's sealed graph tables: a graph version keyed once is not scanned again.
    pub tables: &'a ComponentTables,
    /// The evaluated memberships whose entries each shard's overlay gives its profiles: the
    /// tenant's current ones when `None` (an export), the ones given otherwise (segment
    /// evaluation: the stored and fresh rows it reads).
    pub memberships: Option<&'a [(String, Vec<Row>)]>,
    /// The profiles to build: every one, or only those a job's filters can select.
    pub restriction: &'a Restriction,
}

impl ShardedKeys {
    /// Reads every fragment's primary identity once and sends it to its shard.
    pub async fn build(meta: &MetaStore, lake: &Lake, context: &KeyingContext<'_>) -> Result<Self, EngineError> {
        let tenant = context.tenant;
        let graph = match context.policy.identity_graph {
            IdentityGraphType::None => None,
            IdentityGraphType::Pdg => Some(current_graph_unloaded(meta, lake, tenant).await?),
        };
        // Under `none` the graph's size still bounds the number of primary identities.
        let version = match &graph {
            Some(graph) => graph.version.clone(),
            None => meta.latest_identity_graph_version(tenant).await?,
        };
        let (identities, components) = version.as_ref().map_or((0, 0), |v| (v.nodes, v.components));
        let profiles = if graph.is_some() { components } else { identities };
        let layout = ShardLayout::for_population(context.settings, identities.max(0) as u64, profiles.max(0) as u64);
        let datasets = source_datasets(meta, tenant, context.policy).await?;
        let files: Vec<SourceFile> = source_files(meta, tenant, &datasets, graph.as_ref())
            .await?
            .into_iter()
            .filter(|f| context.events.reads(&datasets[f.dataset], f))
            .collect();
        let folder = match layout.spills_to_disk() {
            true => Some(spill_folder(&context.settings.spill_root())?),
            false => None,
        };
        let memberships = match context.memberships {
            Some(given) => given.to_vec(),
            None => current_memberships(meta, lake, tenant).await?,
        };
        let mut keyed = Self {
            layout,
            datasets: Arc::new(datasets),
            files,
            shards: Vec::new(),
            namespaces: Vec::new(),
            graph_version: graph.as_ref().and_then(|g| g.version_number()),
            memberships,
            resolved: None,
            seeds: None,
            _folder: None,
        };
        keyed.seeds = keyed.find_seeds(lake, context.restriction).await?;
        let folder_path = folder.as_ref().map(|f| f.path().to_path_buf());
        let mut numbers = NamespaceNumbers::default();
        match version.filter(|_| graph.is_some()) {
            Some(version) => {
                let snapshot = ObjectPath::from(version.path.as_str());
                let nodes = (version.nodes.max(0) as usize, version.components.max(0) as usize);
                keyed
                    .key_by_component(lake, &snapshot, nodes, folder_path.as_deref(), &mut numbers, context)
                    .await?
            }
            None if graph.is_some() => {
                // No graph yet: nothing was ever committed, so there is nothing to key.
                keyed.shards = finish(spills(None, "shard", layout.shards, false)?)?;
                keyed.files.clear();
            }
            None => {
                keyed
                    .key_by_primary(lake, folder_path.as_deref(), &mut numbers, context.cancel)
                    .await?
            }
        }
        keyed.namespaces = numbers.namespaces().to_vec();
        keyed._folder = folder;
        Ok(keyed)
    }
    pub fn graph_version(&self) -> Option<i64> {
        self.graph_version
    }

    pub fn datasets(&self) -> &[SourceDataset] {
        &self.datasets
    }
}
