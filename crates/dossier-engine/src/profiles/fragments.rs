//! Loading a sandbox's fragments: every row of the committed batches of every profile-enabled
//! dataset (all of them, or those a pinned identity graph covers), with what merging needs to
//! know about it.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;

use dossier_model::catalog::Dataset;
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::{SchemaClass, XdmSchema};
use dossier_storage::meta::FileKind;
use dossier_storage::{Lake, MetaStore};

use crate::EngineError;
use crate::fragments::SYSTEM_METADATA;
use crate::identity::{FragmentIdentities, PinnedGraph, fragment_identities};
use crate::parquet_io::LakeFileReader;
use crate::schemas::dataset_schema;

/// Where a fragment row comes from, in the terms merge order is defined by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentOrigin {
    /// Index into [`SandboxFragments::datasets`].
    pub dataset: usize,
    /// The batch's commit time: the fragment's ingestion time.
    pub ingested: EpochMillis,
    /// The batch's commit sequence: orders batches committed in the same millisecond.
    pub batch_seq: i64,
    /// The row's position in its batch.
    pub row: i64,
}

/// The rows of one dataset's committed batches.
pub struct DatasetFragments {
    pub dataset: Dataset,
    pub schema: Arc<XdmSchema>,
    pub rows: Vec<RecordBatch>,
    pub origins: Vec<Vec<FragmentOrigin>>,
    pub identities: Vec<Vec<FragmentIdentities>>,
}

/// Every fragment of a sandbox, records and events.
pub struct SandboxFragments {
    pub datasets: Vec<DatasetFragments>,
}

async fn read_file(lake: &Lake, location: ObjectPath) -> Result<Vec<RecordBatch>, EngineError> {
    let stream = LakeFileReader::new(lake, location).builder().await?.build()?;
    Ok(stream.try_collect().await?)
}

fn row_ids(rows: &RecordBatch) -> Vec<i64> {
    let Some(system) = rows.column_by_name(SYSTEM_METADATA).and_then(|c| c.as_struct_opt()) else {
        return (0..rows.num_rows() as i64).collect();
    };
    match system
        .column_by_name("rowId")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
    {
        Some(ids) => ids.values().to_vec(),
        None => (0..rows.num_rows() as i64).collect(),
    }
}

impl SandboxFragments {
    /// Reads the fragments of the tenant's profile-enabled datasets: those of the batches
    /// `graph` covers, or of every committed batch without a graph (the `none` policy).
    pub async fn load(
        meta: &MetaStore,
        lake: &Lake,
        tenant: &Tenant,
        graph: Option<&PinnedGraph>,
    ) -> Result<Self, EngineError> {
        let mut datasets = Vec::new();
        for (index, dataset) in meta.profile_enabled_datasets(tenant).await?.into_iter().enumerate() {
            let schema = match dataset_schema(meta, tenant, &dataset).await {
                Ok(schema) => Arc::new(schema),
                // A dataset on the union schema is an export target, not a source of fragments.
                Err(_) => continue,
            };
            let mut loaded = DatasetFragments {
                dataset,
                schema,
                rows: Vec::new(),
                origins: Vec::new(),
                identities: Vec::new(),
            };
            for (batch, seq) in meta.committed_batches_in_order(tenant, &loaded.dataset.id).await? {
                if graph.is_some_and(|g| !g.covers(&batch.id)) {
                    continue;
                }
                let ingested = batch.completed.unwrap_or(batch.updated);
                for file in meta.batch_files(tenant, &batch.id, FileKind::Data).await? {
                    for rows in read_file(lake, ObjectPath::from(file.path)).await? {
                        let origins = row_ids(&rows)
                            .into_iter()
                            .map(|row| FragmentOrigin {
                                dataset: index,
                                ingested,
                                batch_seq: seq,
                                row,
                            })
                            .collect();
                        loaded
                            .identities
                            .push(fragment_identities(&rows, &loaded.schema.identities));
                        loaded.origins.push(origins);
                        loaded.rows.push(rows);
                    }
                }
            }
            datasets.push(loaded);
        }
        // Indices in origins refer to positions in `datasets`; datasets skipped above shift them.
        for (position, loaded) in datasets.iter_mut().enumerate() {
            for origins in &mut loaded.origins {
                for origin in origins {
                    origin.dataset = position;
                }
            }
        }
        Ok(Self { datasets })
    }

    pub fn of_class(&self, class: SchemaClass) -> impl Iterator<Item = (usize, &DatasetFragments)> {
        self.datasets
            .iter()
            .enumerate()
            .filter(move |(_, d)| d.schema.class == class)
    }
}
