//! `fields`: keeping only the named paths (and their ancestors) of a schema.
//!
//! A path to an object keeps the whole object; a path goes through arrays (`identities.id`
//! keeps `id` of every element of `identities`). Projection of data is then alignment to the
//! projected schema: the same function that widens fragments to the union narrows profiles.
//!
//! The paths are first gathered into a [`PathTree`] (children indexed by name), then the schema
//! is walked once alongside it: each object on a named path is visited once, its fields looked up
//! in the tree. Planning costs the fields named plus the width of the objects they go through,
//! where resolving and merging path by path was quadratic (issue 12: 5,000 fields of a
//! 10,000-field object held a worker for minutes). The walk checks the job's cancel flag.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use dossier_model::xdm::{PathNode, PathTree};

/// Why a projection did not give a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectError {
    /// The paths that name nothing, in the order given, so the caller can refuse them.
    Unknown(Vec<String>),
    /// The cancel check answered true during the walk.
    Cancelled,
}

/// How often (in fields visited) the walk asks whether the job was cancelled.
const CANCEL_CHECK_EVERY: usize = 1024;

struct Walk<'a> {
    unknown: Vec<usize>,
    visited: usize,
    cancelled: &'a dyn Fn() -> bool,
    stopped: bool,
}

impl Walk<'_> {
    /// Counts a visited field; true once the job is cancelled (the walk then unwinds).
    fn stop(&mut self) -> bool {
        self.visited += 1;
        if !self.stopped && self.visited.is_multiple_of(CANCEL_CHECK_EVERY) {
            self.stopped = (self.cancelled)();
        }
        self.stopped
    }

    /// The projection of `fields` to the children of `node`, in schema order.
    fn fields(&mut self, fields: &Fields, node: &PathNode) -> Vec<Field> {
        let mut kept = Vec::with_capacity(node.child_count().min(fields.len()));
        for field in fields {
            if self.stop() {
                return kept;
            }
            let Some(child) = node.child(field.name()) else {
                continue;
            };
            if let Some(data_type) = self.data_type(field.data_type(), child) {
                kept.push(Field::new(field.name(), data_type, true));
            }
        }
        if kept.len() < node.child_count() {
            // Some children matched no field: their paths are unknown. (A child that matched
            // but kept nothing already recorded its unknown paths below.)
            let names: std::collections::HashSet<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            node.paths_below_unknown_children(|name| names.contains(name), &mut self.unknown);
        }
        kept
    }

    /// The projection of a value of `data_type` to `node`; `None` when nothing below is kept.
    fn data_type(&mut self, data_type: &DataType, node: &PathNode) -> Option<DataType> {
        if node.child_count() == 0 {
            return Some(data_type.clone());
        }
        let projected = match data_type {
            DataType::Struct(fields) => {
                let kept = self.fields(fields, node);
                (!kept.is_empty()).then(|| DataType::Struct(Fields::from(kept)))
            }
            DataType::List(item) => self
                .data_type(item.data_type(), node)
                .map(|projected| DataType::List(Arc::new(Field::new(item.name(), projected, true)))),
            // Below a leaf or a map's keys (data, not fields) no path names anything.
            _ => {
                node.paths_below_unknown_children(|_| false, &mut self.unknown);
                None
            }
        };
        // A path ending here keeps the whole value; the paths below it were still checked.
        if node.keeps_whole() {
            Some(data_type.clone())
        } else {
            projected
        }
    }
}

/// The schema with only `paths` (and `always`, e.g. `identityMap`), in the schema's order.
/// An `always` name the schema lacks is skipped; any other path that names nothing is returned
/// in [`ProjectError::Unknown`]. `cancelled` is asked every thousand fields or so.
pub fn project_schema(
    schema: &Schema,
    paths: &[String],
    always: &[&str],
    cancelled: &dyn Fn() -> bool,
) -> Result<SchemaRef, ProjectError> {
    let mut tree = PathTree::new(paths);
    for name in always {
        tree.insert(name);
    }
    let mut walk = Walk {
        unknown: Vec::new(),
        visited: 0,
        cancelled,
        stopped: false,
    };
    let kept = walk.fields(schema.fields(), tree.root());
    if walk.stopped {
        return Err(ProjectError::Cancelled);
    }
    let mut unknown = walk.unknown;
    unknown.retain(|&index| index < paths.len());
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        return Err(ProjectError::Unknown(
            unknown.into_iter().map(|index| paths[index].clone()).collect(),
        ));
    }
    Ok(Arc::new(Schema::new(kept)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let identity = DataType::Struct(Fields::from(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("primary", DataType::Boolean, true),
        ]));
        let email = DataType::Struct(Fields::from(vec![
            Field::new("address", DataType::Utf8, true),
            Field::new("type", DataType::Utf8, true),
        ]));
        Schema::new(vec![
            Field::new("_id", DataType::Utf8, true),
            Field::new(
                "identities",
                DataType::List(Arc::new(Field::new("item", identity, true))),
                true,
            ),
            Field::new("personalEmail", email, true),
            Field::new("identityMap", DataType::Utf8, true),
        ])
    }

    #[test]
    fn the_tutorials_fields_keep_paths_through_arrays_and_identity_map() {
        let projected = project_schema(
            &schema(),
            &["identities.id".into(), "personalEmail.address".into()],
            &["identityMap"],
            &|| false,
        )
        .unwrap();
        let names: Vec<&String> = projected.fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["identities", "personalEmail", "identityMap"]);
        let DataType::List(item) = projected.field(0).data_type() else {
            panic!()
        };
        let DataType::Struct(inner) = item.data_type() else {
            panic!()
        };
        assert_eq!(inner.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["id"]);
    }

    #[test]
    fn an_object_path_keeps_the_object_and_paths_combine() {
        let projected = project_schema(
            &schema(),
            &["personalEmail.type".into(), "personalEmail".into()],
            &[],
            &|| false,
        )
        .unwrap();
        let DataType::Struct(inner) = projected.field(0).data_type() else {
            panic!()
        };
        assert_eq!(inner.len(), 2);
        assert_eq!(
            project_schema(
                &schema(),
                &["personalEmail.nope".into(), "nothing".into()],
                &[],
                &|| false
            )
            .unwrap_err(),
            ProjectError::Unknown(vec!["personalEmail.nope".into(), "nothing".into()])
        );
    }
}

#[cfg(test)]
mod wide_tests {
    use super::*;

    fn wide(width: usize) -> Schema {
        let inner: Vec<Field> = (0..width)
            .map(|i| Field::new(format!("f{i:05}"), DataType::Utf8, true))
            .collect();
        Schema::new(vec![
            Field::new("wide", DataType::Struct(Fields::from(inner)), true),
            Field::new("identityMap", DataType::Utf8, true),
        ])
    }

    #[test]
    fn thousands_of_paths_under_one_object_keep_schema_order() {
        // Named in reverse: the output still follows the schema.
        let paths: Vec<String> = (0..10_000).step_by(2).rev().map(|i| format!("wide.f{i:05}")).collect();
        let projected = project_schema(&wide(10_000), &paths, &["identityMap"], &|| false).unwrap();
        let DataType::Struct(inner) = projected.field(0).data_type() else {
            panic!()
        };
        assert_eq!(inner.len(), 5_000);
        assert_eq!(inner[0].name(), "f00000");
        assert_eq!(inner[4_999].name(), "f09998");
        assert_eq!(projected.field(1).name(), "identityMap");
    }

    #[test]
    fn a_cancel_stops_the_walk() {
        let paths: Vec<String> = (0..5_000).map(|i| format!("wide.f{i:05}")).collect();
        let asked = std::cell::Cell::new(0);
        let cancelled = || {
            asked.set(asked.get() + 1);
            true
        };
        assert_eq!(
            project_schema(&wide(10_000), &paths, &[], &cancelled).unwrap_err(),
            ProjectError::Cancelled
        );
        assert_eq!(asked.get(), 1, "the walk stops at the first check that sees the cancel");
    }
}
