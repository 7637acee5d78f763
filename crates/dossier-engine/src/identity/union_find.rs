//! Connected components of identities: a union-find over interned identity keys.

use std::collections::HashMap;

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
#[derive(Debug, Default, Clone)]
pub struct IdentityGraph {
    index: HashMap<Identity, u32>,
    identities: Vec<Identity>,
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl IdentityGraph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Whether the graph has seen `identity`.
    pub fn contains(&self, identity: &Identity) -> bool {
        self.index.contains_key(identity)
    }

    /// Every identity the graph has seen, in the order it first saw them.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    fn intern(&mut self, identity: &Identity) -> u32 {
        if let Some(&node) = self.index.get(identity) {
            return node;
        }
        let node = self.identities.len() as u32;
        self.identities.push(identity.clone());
        self.index.insert(identity.clone(), node);
        self.parent.push(node);
        self.size.push(1);
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
        let mut first = None;
        for identity in fragment {
            let node = self.intern(identity);
            match first {
                None => first = Some(node),
                Some(head) => self.union(head, node),
            }
        }
    }

    /// Every identity with the key of its component: the smallest identity in it, so the key
    /// does not depend on the order links arrived in.
    pub fn components(&mut self) -> Vec<(Identity, Identity)> {
        let n = self.identities.len();
        let mut smallest: HashMap<u32, u32> = HashMap::new();
        for node in 0..n as u32 {
            let root = self.root(node);
            let entry = smallest.entry(root).or_insert(node);
            if self.identities[node as usize] < self.identities[*entry as usize] {
                *entry = node;
            }
        }
        (0..n as u32)
            .map(|node| {
                let root = self.root(node);
                (
                    self.identities[node as usize].clone(),
                    self.identities[smallest[&root] as usize].clone(),
                )
            })
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
