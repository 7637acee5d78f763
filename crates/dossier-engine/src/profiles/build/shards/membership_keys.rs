//! Identities of evaluated memberships, resolved to components while the graph streams by.

use std::collections::{HashMap, HashSet};

use super::component_table::ComponentTable;
use super::identity_hash::identity_hash;
use crate::identity::Identity;
use crate::segments::memberships::Row;

/// Identities of evaluated memberships, to be resolved to their component while the graph is
/// streamed (the graph itself is never held whole).
pub(super) struct MembershipKeys {
    wanted: HashSet<Identity>,
    hashes: HashSet<u128>,
    pub(super) resolved: HashMap<Identity, u32>,
}

impl MembershipKeys {
    /// The identities of `segments`' rows, and `seeds` (those of a restricted build).
    pub(super) fn new<'a>(segments: &[(String, Vec<Row>)], seeds: impl Iterator<Item = &'a Identity>) -> Self {
        let wanted: HashSet<Identity> = segments
            .iter()
            .flat_map(|(_, rows)| rows.iter().flat_map(|r| r.identities.iter().cloned()))
            .chain(seeds.cloned())
            .collect();
        let hashes = wanted.iter().map(|i| identity_hash(&i.namespace, &i.id)).collect();
        Self {
            wanted,
            hashes,
            resolved: HashMap::new(),
        }
    }

    /// Resolves every wanted identity through the sealed table of the graph version, when the
    /// snapshot is not scanned again (the table is keyed by the same 128-bit hashes).
    pub(super) fn resolve_in(&mut self, table: &ComponentTable) {
        for identity in &self.wanted {
            if let Some(component) = table.get(identity_hash(&identity.namespace, &identity.id)) {
                self.resolved.insert(identity.clone(), component);
            }
        }
    }

    pub(super) fn offer(&mut self, hash: u128, identity: (&str, &str), component: u32) {
        if !self.hashes.contains(&hash) {
            return;
        }
        let identity = Identity::new(identity.0, identity.1);
        if self.wanted.contains(&identity) {
            self.resolved.insert(identity, component);
        }
    }
}
