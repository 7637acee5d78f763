//! The identities of each fragment in a batch of rows: its `identityMap` entries plus the values
//! of the schema's identity fields, with the fragment's primary identity.

use arrow::array::{Array, AsArray, BooleanArray, ListArray, MapArray, RecordBatch, StringArray, StructArray};

use dossier_model::xdm::{AuthenticatedState, IdentityField};

use super::union_find::Identity;

/// The identities of one fragment. `primary` indexes `all`; `None` only when `all` is empty.
/// `states[i]` is the `authenticatedState` the fragment gave `all[i]` (`None` when its entry had
/// none, or the identity came from a schema identity field), so merged profiles can give it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentIdentities {
    pub all: Vec<Identity>,
    pub states: Vec<Option<AuthenticatedState>>,
    pub primary: Option<usize>,
}

impl FragmentIdentities {
    pub fn primary(&self) -> Option<&Identity> {
        self.primary.map(|i| &self.all[i])
    }

    /// Adds `identity` with its state; keeps `all` and `states` in step.
    fn push(&mut self, identity: Identity, state: Option<AuthenticatedState>) {
        self.all.push(identity);
        self.states.push(state);
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
        let states = items
            .column_by_name("authenticatedState")
            .and_then(|c| c.as_string_opt::<i32>());
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
            let state = states
                .filter(|s| s.is_valid(i))
                .and_then(|s| AuthenticatedState::parse(s.value(i)));
            out.push(identity, state);
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
            identities.push(identity, None);
        }
    }
    for identities in &mut out {
        if identities.primary.is_none() && !identities.all.is_empty() {
            identities.primary = Some(0);
        }
    }
    out
}

/// The primary identity of every row, as [`fragment_identities`] would choose it, without
/// materializing the others: what keying a fragment to its profile needs. The first identity
/// flagged primary in `identityMap` wins; then the first primary identity field whose identity
/// is not already in the map or an earlier field; then the first identity of the row.
pub fn fragment_primaries(rows: &RecordBatch, identity_fields: &[IdentityField]) -> Vec<Option<Identity>> {
    let map = identity_map_of(rows);
    let fields: Vec<_> = identity_fields
        .iter()
        .filter_map(|field| string_column_at(rows, &field.path).map(|(column, parents)| (field, column, parents)))
        .collect();
    (0..rows.num_rows())
        .map(|row| {
            let mut seen: Vec<(&str, &str)> = Vec::new();
            if let Some(map) = map
                && let Some(flagged) = map_entries(map, row, &mut seen)
            {
                return Some(Identity::new(flagged.0, flagged.1));
            }
            let mut primary = None;
            for (field, column, parents) in &fields {
                let present =
                    column.is_valid(row) && parents.iter().all(|p| p.is_valid(row)) && !column.value(row).is_empty();
                if !present {
                    continue;
                }
                let identity = (field.namespace.as_str(), column.value(row));
                if seen.contains(&identity) {
                    continue;
                }
                if field.primary && primary.is_none() {
                    primary = Some(identity);
                }
                seen.push(identity);
            }
            primary
                .or_else(|| seen.first().copied())
                .map(|(namespace, id)| Identity::new(namespace, id))
        })
        .collect()
}

/// Walks one row's `identityMap` entries into `seen` (deduplicated, in order); gives the first
/// entry flagged primary.
fn map_entries<'a>(map: &'a MapArray, row: usize, seen: &mut Vec<(&'a str, &'a str)>) -> Option<(&'a str, &'a str)> {
    if map.is_null(row) {
        return None;
    }
    let keys = map.keys().as_string::<i32>();
    let values: &ListArray = map.values().as_list::<i32>();
    let items = values.values().as_struct_opt()?;
    let ids = items.column_by_name("id").and_then(|c| c.as_string_opt::<i32>())?;
    let primaries: Option<&BooleanArray> = items.column_by_name("primary").and_then(|c| c.as_boolean_opt());
    let map_offsets = map.value_offsets();
    let list_offsets = values.value_offsets();
    for entry in map_offsets[row] as usize..map_offsets[row + 1] as usize {
        if values.is_null(entry) {
            continue;
        }
        let namespace = keys.value(entry);
        for i in list_offsets[entry] as usize..list_offsets[entry + 1] as usize {
            if items.is_null(i) || ids.is_null(i) || ids.value(i).is_empty() {
                continue;
            }
            let identity = (namespace, ids.value(i));
            if seen.contains(&identity) {
                continue;
            }
            if primaries.is_some_and(|p| p.is_valid(i) && p.value(i)) {
                return Some(identity);
            }
            seen.push(identity);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Fields, Schema};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use dossier_model::xdm::identity_map_type;

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("identityMap", identity_map_type(), true),
            Field::new(
                "crm",
                DataType::Struct(Fields::from(vec![Field::new("crmId", DataType::Utf8, true)])),
                true,
            ),
            Field::new("email", DataType::Utf8, true),
        ]))
    }

    fn rows(values: &[Value]) -> RecordBatch {
        let mut decoder = arrow::json::ReaderBuilder::new(schema()).build_decoder().unwrap();
        decoder.serialize(values).unwrap();
        decoder.flush().unwrap().unwrap()
    }

    fn identity_entry() -> impl Strategy<Value = (String, Value)> {
        (
            prop::sample::select(vec!["CRMID", "Email", "ECID"]),
            prop::sample::select(vec!["a", "b", "c", ""]),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(ns, id, primary)| {
                let mut item = json!({"id": id});
                if let Some(primary) = primary {
                    item["primary"] = json!(primary);
                }
                (ns.to_owned(), item)
            })
    }

    fn row() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(identity_entry(), 0..5),
            prop::option::of(prop::sample::select(vec!["a", "b", ""])),
            prop::option::of(prop::sample::select(vec!["a", "c", ""])),
        )
            .prop_map(|(entries, crm_id, email)| {
                let mut map = serde_json::Map::new();
                for (ns, item) in entries {
                    map.entry(ns)
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                        .unwrap()
                        .push(item);
                }
                let mut row = json!({"identityMap": map});
                if let Some(id) = crm_id {
                    row["crm"] = json!({"crmId": id});
                }
                if let Some(email) = email {
                    row["email"] = json!(email);
                }
                row
            })
    }

    proptest! {
        /// Keying by the primary alone must pick the fragment's primary exactly as the full
        /// extraction does, whatever the flags, duplicates, empties and field order.
        #[test]
        fn primaries_are_the_primaries_of_the_full_extraction(
            values in prop::collection::vec(row(), 1..20),
            crm_primary in any::<bool>(),
            email_primary in any::<bool>(),
        ) {
            let fields = vec![
                IdentityField { path: "crm.crmId".into(), namespace: "CRMID".into(), primary: crm_primary },
                IdentityField { path: "email".into(), namespace: "Email".into(), primary: email_primary },
            ];
            let batch = rows(&values);
            let full: Vec<Option<Identity>> =
                fragment_identities(&batch, &fields).iter().map(|f| f.primary().cloned()).collect();
            prop_assert_eq!(fragment_primaries(&batch, &fields), full);
        }
    }
}
