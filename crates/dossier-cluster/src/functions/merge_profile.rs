//! `dossier_merge_profile(fragments)`: one merged profile per list of its fragments (what
//! `array_agg` of a profile's fragments gives), by the engine's [`merge_groups`], so each leaf,
//! `identityMap` and `segmentMembership` come out exactly as the native engine merges them.
//!
//! A fragment is a struct of its merge rank (`dataset_rank`, `ingested`, `batch_seq`, `row_id`:
//! the engine's order, lowest first), its `identities` (see [`super::identities`]) and its
//! `data`, aligned to the columns being merged. The function merges a whole batch of profiles
//! in one call: every fragment of the batch is one row of `merge_groups`' input.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringArray, StructArray, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use dossier_engine::identity::FragmentIdentities;
use dossier_engine::profiles::merge::{Groups, merge_groups};

use super::identities::fragment_identities_of;

pub const NAME: &str = "dossier_merge_profile";

/// Fields of a fragment.
pub const DATASET_RANK: &str = "dataset_rank";
pub const INGESTED: &str = "ingested";
pub const BATCH_SEQ: &str = "batch_seq";
pub const ROW_ID: &str = "row_id";
pub const IDENTITIES: &str = "identities";
pub const DATA: &str = "data";

/// Fields of a merged profile: its merged columns, the namespace of the primary identity of its
/// latest record fragment (what the job's counters group by) and how many distinct identities
/// its fragments have (what the guardrail compares).
pub const PRIMARY_NAMESPACE: &str = "primary_namespace";
pub const IDENTITY_COUNT: &str = "identity_count";

/// The type of a merged profile whose fragments' `data` is `data`.
pub fn profile_type(data: &DataType) -> DataType {
    DataType::Struct(profile_fields(data))
}

fn profile_fields(data: &DataType) -> Fields {
    Fields::from(vec![
        Field::new(DATA, data.clone(), true),
        Field::new(PRIMARY_NAMESPACE, DataType::Utf8, true),
        Field::new(IDENTITY_COUNT, DataType::UInt64, false),
    ])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MergeProfile {
    signature: Signature,
}

impl Default for MergeProfile {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The `data` type of a list of fragments.
fn data_type_of(fragments: &DataType) -> Result<DataType> {
    let DataType::List(item) = fragments else {
        return exec_err!("{NAME} takes a list of fragments, not {fragments}");
    };
    let DataType::Struct(fields) = item.data_type() else {
        return exec_err!("{NAME}: a fragment is a struct, not {}", item.data_type());
    };
    match fields.find(DATA) {
        Some((_, field)) => Ok(field.data_type().clone()),
        None => exec_err!("{NAME}: a fragment has no '{DATA}'"),
    }
}

impl ScalarUDFImpl for MergeProfile {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(profile_type(&data_type_of(&arg_types[0])?))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let lists = args.args[0].to_array(args.number_rows)?;
        let Some(lists) = lists.as_list_opt::<i32>() else {
            return exec_err!("{NAME} takes a list of fragments");
        };
        Ok(ColumnarValue::Array(merge_lists(lists, args.return_field.data_type())?))
    }
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(MergeProfile::default())
}

pub fn merge_profile(fragments: Expr) -> Expr {
    udf().call(vec![fragments])
}

/// A fragment's merge rank.
type Rank = (i64, i64, i64, i64);

fn ranks_of(fragments: &StructArray) -> Result<Vec<Rank>> {
    let column = |name: &str| {
        fragments
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| DataFusionError::Execution(format!("{NAME}: a fragment's '{name}' is not an Int64")))
    };
    let (rank, ingested, batch, row) = (
        column(DATASET_RANK)?,
        column(INGESTED)?,
        column(BATCH_SEQ)?,
        column(ROW_ID)?,
    );
    Ok((0..fragments.len())
        .map(|i| (rank.value(i), ingested.value(i), batch.value(i), row.value(i)))
        .collect())
}

/// Each list's fragments as a group of the flattened fragments, in merge order.
fn groups_of(lists: &datafusion::arrow::array::ListArray, ranks: &[Rank]) -> Groups {
    let offsets = lists.value_offsets();
    let mut order = Vec::with_capacity(ranks.len());
    let mut bounds = Vec::with_capacity(lists.len());
    for row in 0..lists.len() {
        let start = order.len();
        if lists.is_valid(row) {
            let mut rows: Vec<u32> = (offsets[row] as u32..offsets[row + 1] as u32).collect();
            rows.sort_unstable_by_key(|&r| ranks[r as usize]);
            order.extend(rows);
        }
        bounds.push(start..order.len());
    }
    Groups { order, bounds }
}

fn merge_lists(lists: &datafusion::arrow::array::ListArray, return_type: &DataType) -> Result<ArrayRef> {
    let DataType::Struct(profile_fields) = return_type else {
        return exec_err!("{NAME} returns a struct");
    };
    let fragments = lists.values().as_struct();
    let ranks = ranks_of(fragments)?;
    let groups = groups_of(lists, &ranks);
    let Some(identities) = fragments.column_by_name(IDENTITIES).and_then(|c| c.as_struct_opt()) else {
        return exec_err!("{NAME}: a fragment has no '{IDENTITIES}' struct");
    };
    let identities = fragment_identities_of(identities)?;
    let Some(data) = fragments.column_by_name(DATA).and_then(|c| c.as_struct_opt()) else {
        return exec_err!("{NAME}: a fragment has no '{DATA}' struct");
    };
    let schema = Arc::new(Schema::new(data.fields().clone()));
    let rows = RecordBatch::try_new_with_options(
        schema.clone(),
        data.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(data.len())),
    )?;
    let extra = vec![Vec::new(); groups.len()];
    let merged = merge_groups(&rows, &schema, &groups, &identities, &extra)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let merged_data = StructArray::try_new(data.fields().clone(), merged.columns().to_vec(), None)?;
    let (namespaces, counts) = group_facts(&groups, &ranks, &identities);
    Ok(Arc::new(StructArray::try_new(
        profile_fields.clone(),
        vec![Arc::new(merged_data), Arc::new(namespaces), Arc::new(counts)],
        Some(NullBuffer::from_iter((0..lists.len()).map(|row| lists.is_valid(row)))),
    )?))
}

/// Per group: the namespace of the primary identity of its latest fragment by (ingested, batch,
/// row) — the engine's `ProfileFacts`, which ranks records by ingestion, not dataset rank — and
/// the number of distinct identities of its fragments.
fn group_facts(groups: &Groups, ranks: &[Rank], identities: &[FragmentIdentities]) -> (StringArray, UInt64Array) {
    let mut namespaces = Vec::with_capacity(groups.len());
    let mut counts = Vec::with_capacity(groups.len());
    for bounds in &groups.bounds {
        let rows = &groups.order[bounds.clone()];
        let latest = rows.iter().max_by_key(|&&r| {
            let (_, ingested, batch, row) = ranks[r as usize];
            (ingested, batch, row)
        });
        namespaces.push(latest.and_then(|&r| identities[r as usize].primary().map(|p| p.namespace.clone())));
        let distinct: HashSet<_> = rows.iter().flat_map(|&r| &identities[r as usize].all).collect();
        counts.push(distinct.len() as u64);
    }
    (StringArray::from(namespaces), UInt64Array::from(counts))
}
