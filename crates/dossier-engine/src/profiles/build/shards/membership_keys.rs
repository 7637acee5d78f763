//! Identities of evaluated memberships and a restricted build's seeds, resolved to components
//! while the graph streams by.

use std::collections::HashMap;

use super::component_table::ComponentLookup;
use super::identity_hash::identity_hash;
use crate::identity::Identity;
use crate::segments::memberships::Row;

/// Why an identity hash is wanted: a bit each, as one hash can be both.
const MEMBERSHIP: u8 = 1;
const SEED: u8 = 2;

/// Identities to resolve to their component while the graph is streamed (the graph itself is
/// never held whole): those of evaluated memberships, kept by identity because the overlay asks
/// by identity, and a restricted build's seeds, kept by hash alone. Every graph row is offered,
/// so the test is one lookup of its 128-bit hash in a fast map, not a SipHash of owned strings.
pub(super) struct MembershipKeys {
    wanted: foldhash::HashMap<u128, u8>,
    pub(super) resolved: HashMap<Identity, u32>,
    pub(super) seed_components: foldhash::HashMap<u128, u32>,
}

impl MembershipKeys {
    /// The identities of `segments`' rows, and `seeds` (the identity hashes of a restricted
    /// build).
    pub(super) fn new(segments: &[(String, Vec<Row>)], seeds: impl Iterator<Item = u128>) -> Self {
        let mut wanted: foldhash::HashMap<u128, u8> = foldhash::HashMap::default();
        for identity in segments
            .iter()
            .flat_map(|(_, rows)| rows.iter().flat_map(|r| &r.identities))
        {
            *wanted
                .entry(identity_hash(&identity.namespace, &identity.id))
                .or_default() |= MEMBERSHIP;
        }
        for seed in seeds {
            *wanted.entry(seed).or_default() |= SEED;
        }
        Self {
            wanted,
            resolved: HashMap::new(),
            seed_components: foldhash::HashMap::default(),
        }
    }

    /// Resolves every wanted identity through the graph version's table or kept buckets, when
    /// the snapshot is not scanned again (both are keyed by the same 128-bit hashes).
    pub(super) fn resolve_in(&mut self, graph: &impl ComponentLookup, segments: &[(String, Vec<Row>)]) {
        for (&hash, &why) in &self.wanted {
            if why & SEED != 0
                && let Some(component) = graph.get(hash)
            {
                self.seed_components.insert(hash, component);
            }
        }
        for identity in segments
            .iter()
            .flat_map(|(_, rows)| rows.iter().flat_map(|r| &r.identities))
        {
            if let Some(component) = graph.get(identity_hash(&identity.namespace, &identity.id)) {
                self.resolved.insert(identity.clone(), component);
            }
        }
    }

    pub(super) fn offer(&mut self, hash: u128, identity: (&str, &str), component: u32) {
        let Some(&why) = self.wanted.get(&hash) else {
            return;
        };
        if why & SEED != 0 {
            self.seed_components.insert(hash, component);
        }
        if why & MEMBERSHIP != 0 {
            self.resolved.insert(Identity::new(identity.0, identity.1), component);
        }
    }
}
