//! Merging fragments into profiles, column by column, as semantics.md defines it.
//!
//! Fragments arrive as rows of one Arrow batch (aligned to the union schema) plus, per profile, the
//! row indices of its fragments in precedence order: the last fragment that has a value wins.
//! The caller decides the order (`timestampOrdered`: ingestion time, then batch, then row;
//! `dataSetPrecedence`: dataset rank first). Every leaf is one `take`: a struct is merged leaf by
//! leaf, an array or a map is one value (replaced, never concatenated). `identityMap` and
//! `segmentMembership` are merged key by key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, MapArray, RecordBatch, StringArray, StructArray, UInt32Array,
    new_null_array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, SchemaRef};

use dossier_model::xdm::AuthenticatedState;

use crate::EngineError;
use crate::identity::FragmentIdentities;

/// Profiles as groups of row indices: `order[bounds[g]]` are profile `g`'s fragments, in
/// precedence order (lowest first).
#[derive(Debug, Clone, Default)]
pub struct Groups {
    pub order: Vec<u32>,
    pub bounds: Vec<Range<usize>>,
}

impl Groups {
    fn rows(&self, group: usize) -> &[u32] {
        &self.order[self.bounds[group].clone()]
    }

    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }
}

fn merge_value(array: &ArrayRef, parent_valid: &[bool], groups: &Groups) -> Result<ArrayRef, EngineError> {
    let valid: Vec<bool> = parent_valid
        .iter()
        .enumerate()
        .map(|(row, parent)| *parent && array.is_valid(row))
        .collect();
    if let DataType::Struct(fields) = array.data_type() {
        let source = array.as_struct();
        let children = source
            .columns()
            .iter()
            .map(|child| merge_value(child, &valid, groups))
            .collect::<Result<Vec<_>, _>>()?;
        let present: Vec<bool> = (0..groups.len())
            .map(|g| groups.rows(g).iter().any(|&r| valid[r as usize]))
            .collect();
        return Ok(Arc::new(StructArray::try_new(
            fields.clone(),
            children,
            Some(NullBuffer::from(present)),
        )?));
    }
    let winners: UInt32Array = (0..groups.len())
        .map(|g| groups.rows(g).iter().rev().find(|&&r| valid[r as usize]).copied())
        .collect();
    Ok(take(array.as_ref(), &winners, None)?)
}

/// One entry of a merged `identityMap`: what a fragment gave for one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdentityEntry {
    id: String,
    primary: bool,
    state: Option<AuthenticatedState>,
}

/// One profile's merged `identityMap`: per namespace (sorted), its entries in the order first met.
type IdentityMapValue = BTreeMap<String, Vec<IdentityEntry>>;

/// The union of the identities of each profile's fragments (records in scope and events), per
/// namespace. For an identity seen in several fragments the entry of the fragment latest in
/// merge order wins whole (`primary` and `authenticatedState` together), as semantics.md says of
/// identityMap entries; its place in the list stays where it was first met.
fn merged_identity_maps(
    identities: &[FragmentIdentities],
    groups: &Groups,
    extra: &[Vec<FragmentIdentities>],
) -> Vec<IdentityMapValue> {
    (0..groups.len())
        .map(|g| {
            let mut by_namespace: IdentityMapValue = BTreeMap::new();
            let fragments = groups
                .rows(g)
                .iter()
                .map(|&r| &identities[r as usize])
                .chain(extra.get(g).into_iter().flatten());
            for fragment in fragments {
                for (i, identity) in fragment.all.iter().enumerate() {
                    let entry = IdentityEntry {
                        id: identity.id.clone(),
                        primary: fragment.primary == Some(i),
                        state: fragment.states.get(i).copied().flatten(),
                    };
                    let entries = match by_namespace.get_mut(&identity.namespace) {
                        Some(entries) => entries,
                        None => by_namespace.entry(identity.namespace.clone()).or_default(),
                    };
                    match entries.iter_mut().find(|e| e.id == identity.id) {
                        Some(current) => *current = entry,
                        None => entries.push(entry),
                    }
                }
            }
            by_namespace
        })
        .collect()
}

/// The `identityMap` column (of type `field`) of merged profiles, built directly as Arrow
/// arrays: a profile without identities is null.
fn identity_map_column(field: &Field, maps: &[IdentityMapValue]) -> Result<ArrayRef, EngineError> {
    let DataType::Map(entries_field, ordered) = field.data_type() else {
        return Err(EngineError::Invalid(format!(
            "identityMap is {}, not a map",
            field.data_type()
        )));
    };
    let DataType::Struct(entry_fields) = entries_field.data_type() else {
        return Err(EngineError::Invalid("identityMap entries are not a struct".into()));
    };
    let value_field = entry_fields[1].clone();
    let DataType::List(item_field) = value_field.data_type() else {
        return Err(EngineError::Invalid("identityMap values are not lists".into()));
    };
    let DataType::Struct(identity_fields) = item_field.data_type() else {
        return Err(EngineError::Invalid("identityMap items are not structs".into()));
    };
    let mut map_offsets = vec![0i32];
    let mut namespaces = Vec::new();
    let mut list_offsets = vec![0i32];
    let mut ids = Vec::new();
    let mut primaries = Vec::new();
    let mut states = Vec::new();
    for map in maps {
        for (namespace, entries) in map {
            namespaces.push(namespace.as_str());
            for entry in entries {
                ids.push(entry.id.as_str());
                primaries.push(entry.primary);
                states.push(entry.state.map(AuthenticatedState::as_str));
            }
            list_offsets.push(ids.len() as i32);
        }
        map_offsets.push(namespaces.len() as i32);
    }
    let identity_columns: Vec<ArrayRef> = identity_fields
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "id" => Arc::new(StringArray::from(ids.clone())),
                "primary" => Arc::new(BooleanArray::from(primaries.clone())),
                "authenticatedState" => Arc::new(StringArray::from(states.clone())),
                _ => new_null_array(f.data_type(), ids.len()),
            }
        })
        .collect();
    let items = StructArray::try_new(identity_fields.clone(), identity_columns, None)?;
    let lists = ListArray::try_new(
        item_field.clone(),
        OffsetBuffer::new(list_offsets.into()),
        Arc::new(items),
        None,
    )?;
    let entries = StructArray::try_new(
        entry_fields.clone(),
        vec![Arc::new(StringArray::from(namespaces)), Arc::new(lists)],
        None,
    )?;
    let present = NullBuffer::from(maps.iter().map(|m| !m.is_empty()).collect::<Vec<_>>());
    Ok(Arc::new(MapArray::try_new(
        entries_field.clone(),
        OffsetBuffer::new(map_offsets.into()),
        entries,
        Some(present),
        *ordered,
    )?))
}

/// The merged `segmentMembership` column (of type `field`) from the fragments' `column`, built
/// directly as Arrow arrays: per namespace and segment the entry with the latest
/// `lastQualificationTime` (a later fragment wins a tie) is taken whole; a profile without any
/// entry is null.
fn membership_column(column: &ArrayRef, field: &Field, groups: &Groups) -> Result<ArrayRef, EngineError> {
    let (DataType::Map(outer_entries, outer_ordered), Some(outer)) = (field.data_type(), column.as_map_opt()) else {
        return Err(EngineError::Invalid("segmentMembership is not a map".into()));
    };
    let DataType::Struct(outer_fields) = outer_entries.data_type() else {
        return Err(EngineError::Invalid(
            "segmentMembership entries are not a struct".into(),
        ));
    };
    let (DataType::Map(inner_entries, inner_ordered), Some(inner)) =
        (outer_fields[1].data_type(), outer.values().as_map_opt())
    else {
        return Err(EngineError::Invalid("segmentMembership values are not maps".into()));
    };
    let DataType::Struct(inner_fields) = inner_entries.data_type() else {
        return Err(EngineError::Invalid(
            "segmentMembership segments are not a struct".into(),
        ));
    };
    let namespaces = outer.keys().as_string::<i32>();
    let segments = inner.keys().as_string::<i32>();
    let values = inner.values();
    let times = values
        .as_struct_opt()
        .and_then(|v| v.column_by_name("lastQualificationTime"))
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>());
    let time_of = |entry: usize| times.filter(|t| t.is_valid(entry)).map(|t| t.value(entry));

    let (mut outer_offsets, mut inner_offsets) = (vec![0i32], vec![0i32]);
    let (mut namespace_keys, mut segment_keys, mut picked) = (Vec::new(), Vec::new(), Vec::new());
    let mut present = Vec::with_capacity(groups.len());
    for g in 0..groups.len() {
        let mut merged: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        for &row in groups.rows(g) {
            let row = row as usize;
            if outer.is_null(row) {
                continue;
            }
            let offsets = outer.value_offsets();
            for n in offsets[row] as usize..offsets[row + 1] as usize {
                if inner.is_null(n) {
                    continue;
                }
                let inner_offsets = inner.value_offsets();
                for e in inner_offsets[n] as usize..inner_offsets[n + 1] as usize {
                    // Made on the first entry: a namespace without segments adds nothing.
                    let slot = merged.entry(namespaces.value(n)).or_default();
                    let newer = slot
                        .get(segments.value(e))
                        .is_none_or(|&current| time_of(e) >= time_of(current));
                    if newer {
                        slot.insert(segments.value(e), e);
                    }
                }
            }
        }
        present.push(!merged.is_empty());
        for (namespace, entries) in merged {
            namespace_keys.push(namespace);
            for (segment, entry) in entries {
                segment_keys.push(segment);
                picked.push(entry as u32);
            }
            inner_offsets.push(segment_keys.len() as i32);
        }
        outer_offsets.push(namespace_keys.len() as i32);
    }
    let taken = take(values.as_ref(), &UInt32Array::from(picked), None)?;
    let inner_map = MapArray::try_new(
        inner_entries.clone(),
        OffsetBuffer::new(inner_offsets.into()),
        StructArray::try_new(
            inner_fields.clone(),
            vec![Arc::new(StringArray::from(segment_keys)), taken],
            None,
        )?,
        None,
        *inner_ordered,
    )?;
    Ok(Arc::new(MapArray::try_new(
        outer_entries.clone(),
        OffsetBuffer::new(outer_offsets.into()),
        StructArray::try_new(
            outer_fields.clone(),
            vec![Arc::new(StringArray::from(namespace_keys)), Arc::new(inner_map)],
            None,
        )?,
        Some(NullBuffer::from(present)),
        *outer_ordered,
    )?))
}

pub const IDENTITY_MAP: &str = "identityMap";
pub const SEGMENT_MEMBERSHIP: &str = "segmentMembership";

/// One merged row per group, with the columns of `schema` (the union). `identities` are the
/// identities of every row of `rows`; `extra_identities[g]` those of group `g`'s events.
pub fn merge_groups(
    rows: &RecordBatch,
    schema: &SchemaRef,
    groups: &Groups,
    identities: &[FragmentIdentities],
    extra_identities: &[Vec<FragmentIdentities>],
) -> Result<RecordBatch, EngineError> {
    let all_rows = vec![true; rows.num_rows()];
    let mut columns = Vec::with_capacity(schema.fields().len());
    // Columns by name, looked up once each: `column_by_name` per field is quadratic when wide.
    let source = rows.schema();
    let by_name: std::collections::HashMap<&str, &ArrayRef> = source
        .fields()
        .iter()
        .zip(rows.columns())
        .map(|(field, column)| (field.name().as_str(), column))
        .collect();
    for field in schema.fields() {
        let column = match field.name().as_str() {
            IDENTITY_MAP => identity_map_column(field, &merged_identity_maps(identities, groups, extra_identities))?,
            SEGMENT_MEMBERSHIP => match rows.column_by_name(SEGMENT_MEMBERSHIP) {
                Some(column) if column.as_map_opt().is_some() => membership_column(column, field, groups)?,
                _ => arrow::array::new_null_array(field.data_type(), groups.len()),
            },
            name => match by_name.get(name) {
                Some(column) => merge_value(column, &all_rows, groups)?,
                None => arrow::array::new_null_array(field.data_type(), groups.len()),
            },
        };
        columns.push(column);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(groups.len()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Fields, Schema};
    use proptest::prelude::*;

    /// A fragment: profile, merge rank, and two leaves of a struct (`None` = null).
    type Fragment = (u8, u32, Option<i64>, Option<String>);

    fn schema() -> SchemaRef {
        let inner = Fields::from(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        Arc::new(Schema::new(vec![Field::new("obj", DataType::Struct(inner), true)]))
    }

    fn rows(fragments: &[Fragment]) -> RecordBatch {
        let a: ArrayRef = Arc::new(fragments.iter().map(|f| f.2).collect::<Int64Array>());
        let b: ArrayRef = Arc::new(fragments.iter().map(|f| f.3.clone()).collect::<StringArray>());
        let DataType::Struct(fields) = schema().field(0).data_type().clone() else {
            unreachable!()
        };
        let obj = StructArray::new(fields, vec![a, b], None);
        RecordBatch::try_new(schema(), vec![Arc::new(obj)]).unwrap()
    }

    /// Groups by profile, each in rank order, whatever order the rows are stored in.
    fn groups(fragments: &[Fragment]) -> Groups {
        let mut order: Vec<u32> = (0..fragments.len() as u32).collect();
        order.sort_by_key(|&r| (fragments[r as usize].0, fragments[r as usize].1));
        let mut bounds = Vec::new();
        let mut start = 0;
        for i in 1..=order.len() {
            if i == order.len() || fragments[order[i] as usize].0 != fragments[order[start] as usize].0 {
                bounds.push(start..i);
                start = i;
            }
        }
        Groups { order, bounds }
    }

    fn merged(fragments: &[Fragment]) -> RecordBatch {
        let ids = vec![FragmentIdentities::default(); fragments.len()];
        let groups = groups(fragments);
        let extra = vec![Vec::new(); groups.len()];
        merge_groups(&rows(fragments), &schema(), &groups, &ids, &extra).unwrap()
    }

    #[test]
    fn each_leaf_comes_from_the_highest_ranked_fragment_that_has_it() {
        let fragments = vec![
            (0, 2, None, Some("late".into())),
            (0, 1, Some(1), Some("early".into())),
            (0, 0, Some(9), None),
        ];
        let out = merged(&fragments);
        let obj = out.column(0).as_struct();
        assert_eq!(obj.column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0), 1);
        assert_eq!(obj.column(1).as_string::<i32>().value(0), "late");
    }

    proptest! {
        /// Merging depends on ranks only: storing the same fragments in another order changes nothing.
        #[test]
        fn merge_is_independent_of_storage_order(
            mut fragments in proptest::collection::vec((0u8..4, any::<u32>(), proptest::option::of(0i64..100), proptest::option::of("[a-c]{1,2}")), 1..40),
            seed in any::<u64>(),
        ) {
            // Ranks are distinct, as (ingestion time, batch, row) always is.
            for (i, f) in fragments.iter_mut().enumerate() {
                f.1 = f.1.wrapping_mul(64).wrapping_add(i as u32);
            }
            let mut shuffled = fragments.clone();
            let n = shuffled.len();
            for i in (1..n).rev() {
                shuffled.swap(i, (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(merged(&fragments), merged(&shuffled));
        }
    }
}
