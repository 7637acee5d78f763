//! The identities of each fragment in a batch of rows: its `identityMap` entries plus the values
//! of the schema's identity fields, with the fragment's primary identity.

use arrow::array::{Array, AsArray, BooleanArray, ListArray, MapArray, RecordBatch, StringArray, StructArray};

use dossier_model::xdm::IdentityField;

use super::union_find::Identity;

/// The identities of one fragment. `primary` indexes `all`; `None` only when `all` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentIdentities {
    pub all: Vec<Identity>,
    pub primary: Option<usize>,
}

impl FragmentIdentities {
    pub fn primary(&self) -> Option<&Identity> {
        self.primary.map(|i| &self.all[i])
    }
}

/// The string column at a dot path through structs, if every step exists and is a struct.
fn string_column_at<'a>(rows: &'a RecordBatch, path: &str) -> Option<(&'a StringArray, Vec<&'a StructArray>)> {
    let mut parts = path.split('.');
    let mut column = rows.column_by_name(parts.next()?)?;
    let mut parents = Vec::new();
    for part in parts {
        let parent = column.as_struct_opt()?;
        parents.push(parent);
        column = parent.column_by_name(part)?;
    }
    Some((column.as_string_opt::<i32>()?, parents))
}

fn identity_map_of(rows: &RecordBatch) -> Option<&MapArray> {
    rows.column_by_name("identityMap").and_then(|c| c.as_map_opt())
}

fn push_identity_map_entries(map: &MapArray, row: usize, out: &mut FragmentIdentities) {
    if map.is_null(row) {
        return;
    }
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let keys = map.keys().as_string::<i32>();
    let values: &ListArray = map.values().as_list::<i32>();
    for entry in start..end {
        if values.is_null(entry) {
            continue;
        }
        let namespace = keys.value(entry);
        let list = values.value(entry);
        let Some(items) = list.as_struct_opt() else { continue };
        let ids = items.column_by_name("id").and_then(|c| c.as_string_opt::<i32>());
        let primaries: Option<&BooleanArray> = items.column_by_name("primary").and_then(|c| c.as_boolean_opt());
        let Some(ids) = ids else { continue };
        for i in 0..items.len() {
            if items.is_null(i) || ids.is_null(i) || ids.value(i).is_empty() {
                continue;
            }
            let identity = Identity::new(namespace, ids.value(i));
            if out.all.contains(&identity) {
                continue;
            }
            let flagged = primaries.is_some_and(|p| p.is_valid(i) && p.value(i));
            if flagged && out.primary.is_none() {
                out.primary = Some(out.all.len());
            }
            out.all.push(identity);
        }
    }
}

/// The identities of every row of `rows`, whose schema declares `identity_fields`.
pub fn fragment_identities(rows: &RecordBatch, identity_fields: &[IdentityField]) -> Vec<FragmentIdentities> {
    let mut out = vec![FragmentIdentities::default(); rows.num_rows()];
    if let Some(map) = identity_map_of(rows) {
        for (row, identities) in out.iter_mut().enumerate() {
            push_identity_map_entries(map, row, identities);
        }
    }
    for field in identity_fields {
        let Some((column, parents)) = string_column_at(rows, &field.path) else {
            continue;
        };
        for (row, identities) in out.iter_mut().enumerate() {
            let present =
                column.is_valid(row) && parents.iter().all(|p| p.is_valid(row)) && !column.value(row).is_empty();
            if !present {
                continue;
            }
            let identity = Identity::new(field.namespace.as_str(), column.value(row));
            if identities.all.contains(&identity) {
                continue;
            }
            if field.primary && identities.primary.is_none() {
                identities.primary = Some(identities.all.len());
            }
            identities.all.push(identity);
        }
    }
    for identities in &mut out {
        if identities.primary.is_none() && !identities.all.is_empty() {
            identities.primary = Some(0);
        }
    }
    out
}
