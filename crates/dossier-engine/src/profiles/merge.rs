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

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use serde_json::{Map, Value, json};

use super::json_columns::{column_as_json, column_from_json};
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

/// The union of the identities of each profile's fragments (records in scope and events), as
/// `identityMap` values; later fragments' flags win for an identity seen twice.
fn merged_identity_maps(
    identities: &[FragmentIdentities],
    groups: &Groups,
    extra: &[Vec<FragmentIdentities>],
) -> Vec<Value> {
    (0..groups.len())
        .map(|g| {
            let mut by_namespace: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
            let fragments = groups
                .rows(g)
                .iter()
                .map(|&r| &identities[r as usize])
                .chain(extra.get(g).into_iter().flatten());
            for fragment in fragments {
                for (i, identity) in fragment.all.iter().enumerate() {
                    let entries = by_namespace.entry(identity.namespace.clone()).or_default();
                    let primary = fragment.primary == Some(i);
                    match entries.iter_mut().find(|(id, _)| *id == identity.id) {
                        Some(entry) => entry.1 = primary,
                        None => entries.push((identity.id.clone(), primary)),
                    }
                }
            }
            if by_namespace.is_empty() {
                return Value::Null;
            }
            let object: Map<String, Value> = by_namespace
                .into_iter()
                .map(|(ns, ids)| {
                    (
                        ns,
                        Value::Array(
                            ids.into_iter()
                                .map(|(id, primary)| json!({"id": id, "primary": primary}))
                                .collect(),
                        ),
                    )
                })
                .collect();
            Value::Object(object)
        })
        .collect()
}

fn qualification_time(entry: &Value) -> Option<jiff::Timestamp> {
    entry
        .get("lastQualificationTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
}

/// Per namespace and segment, the entry with the latest `lastQualificationTime` (a later
/// fragment wins a tie).
pub fn merged_memberships(memberships: &[Value], groups: &Groups) -> Vec<Value> {
    (0..groups.len())
        .map(|g| {
            let mut merged: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
            for &row in groups.rows(g) {
                let Some(namespaces) = memberships[row as usize].as_object() else {
                    continue;
                };
                for (namespace, segments) in namespaces {
                    let Some(segments) = segments.as_object() else { continue };
                    for (segment, entry) in segments {
                        let slot = merged.entry(namespace.clone()).or_default();
                        let newer = slot
                            .get(segment)
                            .is_none_or(|current| qualification_time(entry) >= qualification_time(current));
                        if newer {
                            slot.insert(segment.clone(), entry.clone());
                        }
                    }
                }
            }
            if merged.is_empty() {
                return Value::Null;
            }
            Value::Object(
                merged
                    .into_iter()
                    .map(|(ns, segs)| (ns, Value::Object(segs.into_iter().collect())))
                    .collect(),
            )
        })
        .collect()
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
    for field in schema.fields() {
        let column = match field.name().as_str() {
            IDENTITY_MAP => column_from_json(field, merged_identity_maps(identities, groups, extra_identities))?,
            SEGMENT_MEMBERSHIP => column_from_json(
                field,
                merged_memberships(&column_as_json(rows, SEGMENT_MEMBERSHIP)?, groups),
            )?,
            name => match rows.column_by_name(name) {
                Some(column) => merge_value(column, &all_rows, groups)?,
                None => arrow::array::new_null_array(field.data_type(), groups.len()),
            },
        };
        columns.push(column);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(groups.len()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}
