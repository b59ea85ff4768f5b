//! Cluster identities shared between nodes: a store (the agent's kvstore, e.g. etcd) that gives
//! every node the same number for the same identity-relevant label set. The [`Cluster`]
//! consults it for each label set new to it, instead of numbering locally.
//!
//! [`Cluster`]: crate::cluster::Cluster

use ir::NumericIdentity;
use std::collections::BTreeSet;

/// A cluster-wide identity allocator.
pub trait SharedIdentities: Send + Sync + std::fmt::Debug {
    /// The cluster-wide number of the label set `key` (its canonical text,
    /// [`key_of`](super::alloc::key_of)): the one already stored, or a new one allocated
    /// atomically, trying `candidate` first (the number local allocation would give).
    fn allocate(&self, key: &str, candidate: NumericIdentity) -> Result<NumericIdentity, String>;

    /// Told, after a change took effect, every label set this node uses: the store may drop
    /// this node's claim on the others and free numbers no node claims any more.
    fn retain(&self, _in_use: &BTreeSet<String>) -> Result<(), String> {
        Ok(())
    }
}
