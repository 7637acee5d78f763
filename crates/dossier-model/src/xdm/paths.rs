//! A tree of named dot paths (`fields`, `eventList.fields`), children indexed by name.
//!
//! Resolving each path on its own against a schema costs a scan of every sibling at every step,
//! and combining the results costs a rebuild of every object the paths share: with thousands of
//! paths under one wide object that is quadratic (or worse) in the fields named. The tree is built
//! in one pass over the paths, then walked once alongside the schema, so checking and projecting
//! cost the fields named plus the width of the objects they go through.

use std::collections::HashMap;

use super::{XdmField, XdmSchema, XdmType};

/// One name of a path and what the paths say below it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathNode {
    /// Indexes (into the paths the tree was built from) of the paths that end here. A path that
    /// ends at an object keeps the whole object.
    ending: Vec<usize>,
    children: HashMap<String, PathNode>,
}

impl PathNode {
    /// Whether a path ends here, so the whole value (object, array, leaf) is kept.
    pub fn keeps_whole(&self) -> bool {
        !self.ending.is_empty()
    }

    /// The node of the child `name`, if a path goes through it.
    pub fn child(&self, name: &str) -> Option<&PathNode> {
        self.children.get(name)
    }

    /// How many distinct names the paths go through below this node.
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// The children by name, in no particular order.
    pub fn children(&self) -> impl Iterator<Item = (&str, &PathNode)> {
        self.children.iter().map(|(name, node)| (name.as_str(), node))
    }

    /// Every path index that ends at this node or below it.
    pub fn paths_below(&self, into: &mut Vec<usize>) {
        into.extend_from_slice(&self.ending);
        for child in self.children.values() {
            child.paths_below(into);
        }
    }

    /// The path indexes below the children whose names `known` does not accept.
    pub fn paths_below_unknown_children(&self, known: impl Fn(&str) -> bool, into: &mut Vec<usize>) {
        for (name, child) in &self.children {
            if !known(name) {
                child.paths_below(into);
            }
        }
    }
}

/// The named paths as a tree rooted at the schema's top level.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathTree {
    root: PathNode,
    paths: Vec<String>,
}

impl PathTree {
    /// The tree of `paths` (dot paths, e.g. `person.name.firstName`). Linear in their length.
    pub fn new<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> Self {
        let mut tree = Self::default();
        for path in paths {
            tree.insert(path.as_ref());
        }
        tree
    }

    /// Adds one path; returns its index.
    pub fn insert(&mut self, path: &str) -> usize {
        let index = self.paths.len();
        let mut node = &mut self.root;
        for name in path.split('.') {
            node = node.children.entry(name.to_owned()).or_default();
        }
        node.ending.push(index);
        self.paths.push(path.to_owned());
        index
    }

    pub fn root(&self) -> &PathNode {
        &self.root
    }

    /// The path with index `index`, as it was given.
    pub fn path(&self, index: usize) -> &str {
        &self.paths[index]
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The paths `schema` does not have, in the order they were given. Arrays are transparent
    /// (`identities.id`); maps are leaves (their keys are data), as in
    /// [`XdmSchema::resolve_path`].
    pub fn missing_in(&self, schema: &XdmSchema) -> Vec<&str> {
        let mut missing = Vec::new();
        missing_in_fields(&schema.fields, &self.root, &mut missing);
        missing.sort_unstable();
        missing.dedup();
        missing.into_iter().map(|index| self.path(index)).collect()
    }
}

/// Below `node`, the paths that name no field of `fields` (or go on past a leaf).
fn missing_in_fields(fields: &[XdmField], node: &PathNode, missing: &mut Vec<usize>) {
    // One pass over the object's fields, each looked up in the node's children (a hash map).
    let mut found = 0;
    for field in fields {
        if let Some(child) = node.child(&field.name) {
            found += 1;
            missing_in_type(&field.ty, child, missing);
        }
    }
    if found < node.child_count() {
        let names: std::collections::HashSet<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        node.paths_below_unknown_children(|name| names.contains(name), missing);
    }
}

fn missing_in_type(ty: &XdmType, node: &PathNode, missing: &mut Vec<usize>) {
    if node.child_count() == 0 {
        return;
    }
    match ty {
        XdmType::Object(fields) => missing_in_fields(fields, node, missing),
        XdmType::Array(item) => missing_in_type(item, node, missing),
        // Anything below a leaf or a map's keys names nothing.
        _ => node.paths_below_unknown_children(|_| false, missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_share_their_prefixes_and_remember_where_they_end() {
        let tree = PathTree::new(["person.name.firstName", "person.name", "identities.id"]);
        assert_eq!(tree.len(), 3);
        let person = tree.root().child("person").unwrap();
        assert!(!person.keeps_whole());
        let name = person.child("name").unwrap();
        assert!(name.keeps_whole());
        assert!(name.child("firstName").unwrap().keeps_whole());
        assert_eq!(tree.root().child_count(), 2);
        assert_eq!(tree.path(2), "identities.id");
    }

    #[test]
    fn missing_paths_are_found_in_one_walk_in_the_order_given() {
        let profile = XdmSchema::builtin_profile();
        let tree = PathTree::new([
            "identityMap.Email",
            "identities.id",
            "person.nope",
            "personalEmail.address",
            "personalEmail.address.more",
            "nope",
            "person.birthDate",
        ]);
        assert_eq!(
            tree.missing_in(&profile),
            ["identityMap.Email", "person.nope", "personalEmail.address.more", "nope"]
        );
        assert!(
            PathTree::new(["identities.namespace.code", "person.name"])
                .missing_in(&profile)
                .is_empty()
        );
    }

    #[test]
    fn agrees_with_resolve_path_one_path_at_a_time() {
        let profile = XdmSchema::builtin_profile();
        for path in [
            "identities.id",
            "identities.namespace.code",
            "personalEmail.address",
            "person.birthDate",
            "person.name",
            "identities",
            "identityMap",
            "nope",
            "identities.nope",
            "personalEmail.address.more",
            "identityMap.Email",
        ] {
            let missing = PathTree::new([path]).missing_in(&profile).is_empty();
            assert_eq!(missing, profile.resolve_path(path).is_some(), "{path}");
        }
    }
}
