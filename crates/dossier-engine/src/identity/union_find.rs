//! Connected components of identities: a union-find over interned identity keys.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// An identity as the graph keys it: namespace code and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub namespace: String,
    pub id: String,
}

impl Identity {
    pub fn new(namespace: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            id: id.into(),
        }
    }
}

/// Identities linked when they appear in one fragment; components are the profiles of `pdg`.
///
/// Compact, since a fold may hold every identity a large batch touches: each identity is a
/// namespace code and a span of one shared text buffer, found through a table of 64-bit hashes
/// (about 40 bytes an identity with its id's bytes, where owned strings in a map of identities
/// took some 250).
#[derive(Debug, Default, Clone)]
pub struct IdentityGraph {
    namespaces: Vec<String>,
    /// The node whose hash it is; a node whose hash another node took first is in `collided`.
    by_hash: foldhash::HashMap<u64, u32>,
    collided: HashMap<Identity, u32>,
    /// Each node's namespace code, and where its id ends in `ids` (it starts where the previous
    /// node's ends).
    namespace_of: Vec<u16>,
    id_end: Vec<u64>,
    ids: String,
    parent: Vec<u32>,
    size: Vec<u32>,
}

/// The hash of an identity the graph's table is keyed by.
fn identity_hash(namespace: &str, id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x1d_f01d).hash_one((namespace, id))
}

impl IdentityGraph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Namespace and id of `node`, borrowed from the graph.
    pub fn identity_of(&self, node: u32) -> (&str, &str) {
        let node = node as usize;
        let start = if node == 0 { 0 } else { self.id_end[node - 1] as usize };
        (
            &self.namespaces[self.namespace_of[node] as usize],
            &self.ids[start..self.id_end[node] as usize],
        )
    }

    fn owned(&self, node: u32) -> Identity {
        let (namespace, id) = self.identity_of(node);
        Identity::new(namespace, id)
    }

    /// The node of an identity, if the graph has seen it.
    fn node(&self, namespace: &str, id: &str) -> Option<u32> {
        let node = *self.by_hash.get(&identity_hash(namespace, id))?;
        if self.identity_of(node) == (namespace, id) {
            return Some(node);
        }
        self.collided.get(&Identity::new(namespace, id)).copied()
    }

    /// Whether the graph has seen the identity `namespace`/`id`.
    pub fn contains(&self, namespace: &str, id: &str) -> bool {
        self.node(namespace, id).is_some()
    }

    fn namespace_code(&mut self, namespace: &str) -> u16 {
        match self.namespaces.iter().position(|n| n == namespace) {
            Some(code) => code as u16,
            None => {
                self.namespaces.push(namespace.to_owned());
                (self.namespaces.len() - 1) as u16
            }
        }
    }

    fn intern(&mut self, namespace: &str, id: &str) -> u32 {
        if let Some(node) = self.node(namespace, id) {
            return node;
        }
        let node = self.parent.len() as u32;
        let code = self.namespace_code(namespace);
        self.namespace_of.push(code);
        self.ids.push_str(id);
        self.id_end.push(self.ids.len() as u64);
        self.parent.push(node);
        self.size.push(1);
        match self.by_hash.entry(identity_hash(namespace, id)) {
            Entry::Vacant(slot) => {
                slot.insert(node);
            }
            // Two identities with one 64-bit hash: the first keeps the table's slot.
            Entry::Occupied(_) => {
                self.collided.insert(Identity::new(namespace, id), node);
            }
        }
        node
    }

    fn root(&mut self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            // Path halving keeps trees flat without recursion.
            let grandparent = self.parent[self.parent[node as usize] as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
        node
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra == rb {
            return;
        }
        let (big, small) = if self.size[ra as usize] >= self.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
    }

    /// Links every identity of one fragment with each other (a fragment with one identity just
    /// adds it).
    pub fn link<'a>(&mut self, fragment: impl IntoIterator<Item = &'a Identity>) {
        self.link_borrowed(fragment.into_iter().map(|i| (i.namespace.as_str(), i.id.as_str())));
    }

    /// [`Self::link`] from borrowed namespaces and ids.
    pub fn link_borrowed<'a>(&mut self, fragment: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut first = None;
        for (namespace, id) in fragment {
            let node = self.intern(namespace, id);
            match first {
                None => first = Some(node),
                Some(head) => self.union(head, node),
            }
        }
    }

    /// Every node with the node of its component's key: the smallest identity in it, so the
    /// key does not depend on the order links arrived in. Sorted by key, then identity: the
    /// order of a snapshot's rows.
    pub fn component_nodes(&mut self) -> Vec<(u32, u32)> {
        let n = self.len() as u32;
        // Every node's place in identity order, from one sort by text: then the keys and the
        // rows' order are decided on integers (the text comparisons, each two random reads, were
        // most of a large fold's sort).
        let rank = self.identity_ranks();
        // Each root's smallest member, kept in the root's own slot of a scratch array.
        let mut smallest: Vec<u32> = (0..n).collect();
        for node in 0..n {
            let root = self.root(node) as usize;
            if rank[node as usize] < rank[smallest[root] as usize] {
                smallest[root] = node;
            }
        }
        let mut rows: Vec<(u32, u32)> = (0..n)
            .map(|node| {
                let root = self.root(node);
                (node, smallest[root as usize])
            })
            .collect();
        drop(smallest);
        rows.sort_unstable_by_key(|&(node, key)| {
            (u64::from(rank[key as usize]) << 32) | u64::from(rank[node as usize])
        });
        rows
    }

    /// Each node's place among all nodes sorted by identity (namespace, then id), sorted in two
    /// halves on two threads and merged.
    fn identity_ranks(&self) -> Vec<u32> {
        let n = self.len() as u32;
        let by_identity = |a: &u32, b: &u32| self.identity_of(*a).cmp(&self.identity_of(*b));
        let mut nodes: Vec<u32> = (0..n).collect();
        let (left, right) = nodes.split_at_mut(n as usize / 2);
        std::thread::scope(|scope| {
            scope.spawn(|| left.sort_unstable_by(by_identity));
            right.sort_unstable_by(by_identity);
        });
        let (left, right) = nodes.split_at(n as usize / 2);
        let mut rank = vec![0u32; n as usize];
        let (mut l, mut r) = (0, 0);
        for place in 0..n {
            let take_left = r == right.len() || (l < left.len() && by_identity(&left[l], &right[r]).is_lt());
            let node = if take_left {
                l += 1;
                left[l - 1]
            } else {
                r += 1;
                right[r - 1]
            };
            rank[node as usize] = place;
        }
        rank
    }

    /// Every identity with the key of its component (see [`Self::component_nodes`]), sorted by
    /// key, then identity.
    pub fn components(&mut self) -> Vec<(Identity, Identity)> {
        self.component_nodes()
            .into_iter()
            .map(|(node, key)| (self.owned(node), self.owned(key)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(ns: &str, v: &str) -> Identity {
        Identity::new(ns, v)
    }

    #[test]
    fn shared_identities_join_components() {
        let mut graph = IdentityGraph::new();
        graph.link(&[id("CRM", "1"), id("Email", "a@x")]);
        graph.link(&[id("Loyalty", "L9"), id("Email", "a@x")]);
        graph.link(&[id("CRM", "2")]);
        let components: HashMap<Identity, Identity> = graph.components().into_iter().collect();
        assert_eq!(components[&id("Loyalty", "L9")], id("CRM", "1"));
        assert_eq!(components[&id("Email", "a@x")], id("CRM", "1"));
        assert_eq!(components[&id("CRM", "2")], id("CRM", "2"));
    }

    #[test]
    fn an_identity_whose_hash_another_took_is_still_found() {
        let mut graph = IdentityGraph::new();
        graph.link(&[id("CRM", "1")]);
        // As if `Email/b` hashed like `CRM/1`: its slot is taken when it arrives.
        graph.by_hash.insert(identity_hash("Email", "b"), 0);
        graph.link(&[id("Email", "b"), id("Loyalty", "L")]);
        assert!(graph.contains("Email", "b") && graph.contains("CRM", "1"));
        assert!(!graph.contains("Email", "c"));
        let components: HashMap<Identity, Identity> = graph.components().into_iter().collect();
        assert_eq!(components[&id("Loyalty", "L")], id("Email", "b"));
        assert_eq!(components[&id("CRM", "1")], id("CRM", "1"));
    }

    proptest! {
        #[test]
        fn components_do_not_depend_on_link_order(
            fragments in proptest::collection::vec(proptest::collection::vec(0u8..20, 1..4), 1..30),
            seed in any::<u64>(),
        ) {
            let as_ids = |f: &Vec<u8>| f.iter().map(|n| id("NS", &n.to_string())).collect::<Vec<_>>();
            let mut forward = IdentityGraph::new();
            for f in &fragments { forward.link(&as_ids(f)); }
            let mut shuffled = fragments.clone();
            let len = shuffled.len();
            for i in 0..len { shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % len); }
            let mut backward = IdentityGraph::new();
            for f in shuffled.iter().rev() { backward.link(&as_ids(f)); }
            let a: HashMap<_, _> = forward.components().into_iter().collect();
            let b: HashMap<_, _> = backward.components().into_iter().collect();
            prop_assert_eq!(a, b);
        }
    }
}
