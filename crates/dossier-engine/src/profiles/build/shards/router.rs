//! Routing keyed fragments to the shard of their component.

use super::super::spill::{FragmentRow, FragmentSpill};
use crate::EngineError;

/// Sends each fragment to the shard of its component. Components are given shards in the order
/// they are first met (fragments arrive in file order), a shard's worth at a time: one byte...
/// two per component is all that is kept of the whole population.
pub(super) struct ShardRouter {
    pub(super) shards: Vec<FragmentSpill>,
    shard_of: Vec<u16>,
    per_shard: usize,
    assigned: usize,
    /// When the build is restricted: which components are kept (by number); others are dropped.
    keep: Option<Vec<bool>>,
}

impl ShardRouter {
    pub(super) fn new(shards: Vec<FragmentSpill>, components: usize) -> Self {
        let per_shard = components.div_ceil(shards.len()).max(1);
        Self {
            shard_of: Vec::with_capacity(if shards.len() > 1 { components } else { 0 }),
            shards,
            per_shard,
            assigned: 0,
            keep: None,
        }
    }

    /// Keeps only the fragments of the components `keep` marks, and spreads those over the
    /// shards (a restricted build fills fewer shards, not emptier ones).
    pub(super) fn keep_only(&mut self, keep: Vec<bool>) {
        let kept = keep.iter().filter(|&&k| k).count();
        self.per_shard = kept.div_ceil(self.shards.len()).max(1);
        self.keep = Some(keep);
    }

    pub(super) fn route(&mut self, fragment: FragmentRow) -> Result<(), EngineError> {
        if let Some(keep) = &self.keep
            && !keep.get(fragment.key as usize).copied().unwrap_or(false)
        {
            return Ok(());
        }
        if self.shards.len() == 1 {
            return self.shards[0].push(fragment, None);
        }
        let component = fragment.key as usize;
        if component >= self.shard_of.len() {
            self.shard_of.resize(component + 1, u16::MAX);
        }
        if self.shard_of[component] == u16::MAX {
            let shard = (self.assigned / self.per_shard).min(self.shards.len() - 1);
            self.shard_of[component] = shard as u16;
            self.assigned += 1;
        }
        let shard = self.shard_of[component] as usize;
        self.shards[shard].push(fragment, None)
    }
}
