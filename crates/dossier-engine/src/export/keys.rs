//! Pass one of an export: which profile every fragment belongs to, and what is known about
//! each profile before merging (last update, whether it has a record, its primary identity).
//!
//! Only the identity columns and the system column are read here, so this pass is cheap; it
//! decides which profiles can be skipped before any attribute is read.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ProjectionMask;

use dossier_model::catalog::Dataset;
use dossier_model::merge_policy::{AttributeMerge, IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{SchemaClass, XdmSchema};
use dossier_storage::meta::FileKind;
use dossier_storage::{Lake, MetaStore};

use crate::EngineError;
use crate::fragments::SYSTEM_METADATA;
use crate::identity::{FragmentIdentities, Identity, IdentityGraph, fragment_identities};
use crate::parquet_io::LakeFileReader;
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

async fn source_files(
    meta: &MetaStore,
    tenant: &Tenant,
    datasets: &[SourceDataset],
) -> Result<Vec<SourceFile>, EngineError> {
    let mut files = Vec::new();
    for (index, source) in datasets.iter().enumerate() {
        for (batch, batch_seq) in meta.committed_batches_in_order(tenant, &source.dataset.id).await? {
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

/// Reads the identity columns and row ids of one file.
async fn read_identities(
    lake: &Lake,
    file: &SourceFile,
    schema: &XdmSchema,
) -> Result<(Vec<FragmentIdentities>, Vec<i64>), EngineError> {
    let builder = LakeFileReader::new(lake, file.location.clone()).builder().await?;
    let mut roots: Vec<&str> = vec!["identityMap", SYSTEM_METADATA];
    roots.extend(schema.identities.iter().filter_map(|i| i.path.split('.').next()));
    let indices: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| roots.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let batches: Vec<RecordBatch> = builder.with_projection(mask).build()?.try_collect().await?;
    let mut identities = Vec::new();
    let mut row_ids = Vec::new();
    for rows in &batches {
        identities.extend(fragment_identities(rows, &schema.identities));
        let ids = rows
            .column_by_name(SYSTEM_METADATA)
            .and_then(|c| c.as_struct_opt())
            .and_then(|s| s.column_by_name("rowId"))
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        match ids {
            Some(ids) => row_ids.extend(ids.values().iter().copied()),
            None => row_ids.extend((row_ids.len() as i64)..(row_ids.len() + rows.num_rows()) as i64),
        }
    }
    Ok((identities, row_ids))
}

impl KeyedSources {
    /// Reads every fragment's identities and assigns fragments to profiles under `policy`.
    pub async fn load(
        meta: &MetaStore,
        lake: &Lake,
        tenant: &Tenant,
        policy: &MergePolicy,
    ) -> Result<Self, EngineError> {
        let datasets = source_datasets(meta, tenant, policy).await?;
        let files = source_files(meta, tenant, &datasets).await?;
        let mut graph = IdentityGraph::new();
        let mut read = Vec::with_capacity(files.len());
        for file in files {
            let (identities, row_ids) = read_identities(lake, &file, &datasets[file.dataset].schema).await?;
            if policy.identity_graph == IdentityGraphType::Pdg {
                // The graph links identities of every profile-enabled dataset, whatever the policy.
                for fragment in &identities {
                    graph.link(&fragment.all);
                }
            }
            read.push((file, identities, row_ids));
        }
        let components: Option<HashMap<Identity, Identity>> =
            (policy.identity_graph == IdentityGraphType::Pdg).then(|| graph.components().into_iter().collect());

        let mut sources = Self {
            datasets,
            records: Vec::new(),
            events: Vec::new(),
            profiles: Vec::new(),
            facts: Vec::new(),
        };
        let mut interned: HashMap<Identity, u32> = HashMap::new();
        for (file, identities, row_ids) in read {
            let source = &sources.datasets[file.dataset];
            let is_record = source.schema.class == SchemaClass::Profile;
            if is_record && !source.in_scope {
                continue;
            }
            let mut profiles = Vec::with_capacity(identities.len());
            for (fragment, row_id) in identities.iter().zip(&row_ids) {
                let key = fragment.primary().and_then(|primary| match &components {
                    Some(components) => components.get(primary).cloned(),
                    None => Some(primary.clone()),
                });
                let Some(key) = key else {
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
        Ok(sources)
    }
}
