//! What keying gives: the sources of a sandbox's profiles (datasets, files), which rows of each
//! file belong to which profile, and what is known about each profile before merging (last
//! update, whether it has a record, its primary identity); and reading a file's picked rows.
//!
//! Only the identity columns and the system column are read while keying, so it is cheap; it
//! decides which profiles can be skipped before any attribute is read.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;

use dossier_model::catalog::Dataset;
use dossier_model::merge_policy::{AttributeMerge, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{SchemaClass, XdmSchema};
use dossier_storage::meta::FileKind;
use dossier_storage::{Lake, MetaStore};

use crate::EngineError;
use crate::identity::{Identity, PinnedGraph};
use crate::parquet_io::{LakeFileReader, decode_in_parallel};
use crate::profiles::merge::IDENTITY_MAP;
use crate::schemas::dataset_schema;

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
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub dataset: usize,
    pub location: ObjectPath,
    pub ingested: EpochMillis,
    pub batch_seq: i64,
}

/// A source file with the rows that belong to a profile (a fragment without an identity, or
/// of a profile another shard holds, is not listed).
pub struct KeyedFile {
    pub file: SourceFile,
    /// Row numbers in the file, ascending.
    pub rows: Vec<u32>,
    /// Per entry of `rows`: its profile, and its `_acp_system_metadata.rowId` (merge order).
    pub profiles: Vec<u32>,
    pub row_ids: Vec<i64>,
}

impl KeyedFile {
    pub fn new(file: SourceFile) -> Self {
        Self {
            file,
            rows: Vec::new(),
            profiles: Vec::new(),
            row_ids: Vec::new(),
        }
    }

    pub fn push(&mut self, row: u32, profile: u32, row_id: i64) {
        self.rows.push(row);
        self.profiles.push(profile);
        self.row_ids.push(row_id);
    }
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

impl ProfileFacts {
    /// Takes a fragment of `file` (row `row_id`) whose primary identity is in `namespace` into
    /// account: the latest update, whether a record exists, and the namespace of the fragment
    /// first in merge order.
    pub fn observe(&mut self, is_record: bool, file: &SourceFile, row_id: i64, namespace: impl FnOnce() -> Arc<str>) {
        self.last_update = self.last_update.max(file.ingested);
        self.has_record |= is_record;
        let rank = (is_record, file.ingested, file.batch_seq, row_id);
        if self.primary_namespace.is_none() || rank > self.primary_rank {
            self.primary_rank = rank;
            self.primary_namespace = Some(namespace());
        }
    }
}

/// Every source of a sandbox, keyed to profiles.
pub struct KeyedSources {
    pub datasets: Arc<Vec<SourceDataset>>,
    pub records: Vec<KeyedFile>,
    pub events: Vec<KeyedFile>,
    pub profiles: Vec<Identity>,
    pub facts: Vec<ProfileFacts>,
}

pub async fn source_datasets(
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
pub async fn source_files(
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

impl EventScan {
    /// Whether pass one reads `file` of `source`.
    pub fn reads(self, source: &SourceDataset, file: &SourceFile) -> bool {
        if source.schema.class == SchemaClass::Profile {
            return source.in_scope;
        }
        match self {
            EventScan::All => true,
            EventScan::None => false,
            EventScan::IngestedAfter(from) => file.ingested > from,
        }
    }
}

/// Numbers the namespaces of fragments' primary identities, in the order they are first seen:
/// what keying spills instead of the namespace itself.
#[derive(Default)]
pub(crate) struct NamespaceNumbers {
    namespaces: Vec<Arc<str>>,
    last_namespace: usize,
}

impl NamespaceNumbers {
    /// The number of a namespace, in the order namespaces are first seen.
    pub(crate) fn namespace_number(&mut self, namespace: &str) -> u16 {
        // Rows of a file mostly share one namespace: try the last one first.
        if self
            .namespaces
            .get(self.last_namespace)
            .is_some_and(|n| n.as_ref() == namespace)
        {
            return self.last_namespace as u16;
        }
        let number = match self.namespaces.iter().position(|n| n.as_ref() == namespace) {
            Some(number) => number,
            None => {
                self.namespaces.push(Arc::from(namespace));
                self.namespaces.len() - 1
            }
        };
        self.last_namespace = number;
        number as u16
    }

    pub(crate) fn namespaces(&self) -> &[Arc<str>] {
        &self.namespaces
    }
}

impl KeyedSources {
    /// Profile `profile`'s key when keying knows it: its primary identity under `none`. A
    /// shard keyed by graph component (`pdg`) knows its profiles by component only.
    pub fn key(&self, profile: u32) -> Option<&Identity> {
        self.profiles
            .get(profile as usize)
            .filter(|key| !(key.namespace.is_empty() && key.id.is_empty()))
    }

    /// The top-level columns that hold identities in any source: `identityMap` and the roots of
    /// the schemas' identity fields. What a reader needs to tell whose a row is.
    pub fn identity_columns(&self) -> Vec<String> {
        identity_columns(&self.datasets)
    }
}

/// [`KeyedSources::identity_columns`] of `datasets`.
pub fn identity_columns(datasets: &[SourceDataset]) -> Vec<String> {
    let mut columns = vec![IDENTITY_MAP.to_owned()];
    for dataset in datasets {
        for field in &dataset.schema.identities {
            let root = field.path.split('.').next().unwrap_or(&field.path);
            if !columns.iter().any(|c| c == root) {
                columns.push(root.to_owned());
            }
        }
    }
    columns
}

/// Reads, of every file, the rows that belong to `wanted` profiles and only the top-level
/// columns `keep` names: a row selection and a projection, so unpicked rows and unread columns
/// are never materialized. Gives (file index, rows, their entries in the file's `rows`).
pub async fn read_picked_rows(
    lake: &Lake,
    files: &[KeyedFile],
    wanted: &[bool],
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<(usize, RecordBatch, Vec<usize>)>, EngineError> {
    let mut reads = Vec::new();
    for (index, keyed) in files.iter().enumerate() {
        let picked: Vec<usize> = (0..keyed.profiles.len())
            .filter(|&i| wanted[keyed.profiles[i] as usize])
            .collect();
        if picked.is_empty() {
            continue;
        }
        let rows: Vec<usize> = picked.iter().map(|&i| keyed.rows[i] as usize).collect();
        let builder = LakeFileReader::new(lake, keyed.file.location.clone())
            .selective_builder()
            .await?;
        let total_rows = builder.metadata().file_metadata().num_rows() as usize;
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| keep(f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let selection = RowSelection::from_consecutive_ranges(consecutive_ranges(&rows), total_rows);
        let stream = builder.with_projection(mask).with_row_selection(selection).build()?;
        reads.push(((index, picked), stream));
    }
    let mut out = Vec::new();
    for ((index, picked), batches) in decode_in_parallel(reads).await? {
        let Some(first) = batches.first() else { continue };
        out.push((index, concat_batches(&first.schema(), &batches)?, picked));
    }
    Ok(out)
}

/// The selection of a file's `rows` (ascending row numbers) among its `total_rows`.
pub fn keyed_selection(rows: &[u32], total_rows: usize) -> RowSelection {
    let rows: Vec<usize> = rows.iter().map(|&r| r as usize).collect();
    RowSelection::from_consecutive_ranges(consecutive_ranges(&rows), total_rows)
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
