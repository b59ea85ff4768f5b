//! Numeric identity allocation: a label set's identity is derived from a hash of its canonical
//! text, probing linearly on collision, so it does not depend on which other endpoints exist
//! (only on the rare label sets that collide with it, which are resolved in sorted order when a
//! whole cluster is built at once).

use ir::{LabelSet, NumericIdentity};
use std::collections::{BTreeMap, HashMap};

/// Allocates identities for distinct label sets within `[first, last]`.
#[derive(Clone, Debug)]
pub struct IdAllocator {
    first: u32,
    last: u32,
    by_key: HashMap<String, NumericIdentity>,
    used: BTreeMap<NumericIdentity, String>,
}

/// 64-bit FNV-1a: stable across platforms and releases (unlike `std`'s hasher).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl IdAllocator {
    /// Cluster-scoped identities for endpoint label sets: 256..=65535.
    pub fn cluster() -> Self {
        Self::range(NumericIdentity::MIN_ALLOCATED.0, 65535)
    }
    /// Node-local identities for CIDR prefixes: the local-scope bit set, 24 bits of number.
    pub fn local() -> Self {
        Self::range(
            NumericIdentity::LOCAL_SCOPE | 1,
            NumericIdentity::LOCAL_SCOPE | 0x00ff_ffff,
        )
    }
    /// Identities of remote nodes: the remote-node scope, 24 bits of number.
    pub fn remote_node() -> Self {
        Self::range(
            NumericIdentity::REMOTE_NODE_SCOPE | 1,
            NumericIdentity::REMOTE_NODE_SCOPE | 0x00ff_ffff,
        )
    }
    fn range(first: u32, last: u32) -> Self {
        IdAllocator {
            first,
            last,
            by_key: HashMap::new(),
            used: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<NumericIdentity> {
        self.by_key.get(key).copied()
    }

    /// The identity of `key`, allocating it if new. Returns `(id, newly_allocated)`.
    /// `None` when the range is exhausted.
    pub fn allocate(&mut self, key: &str) -> Option<(NumericIdentity, bool)> {
        if let Some(id) = self.by_key.get(key) {
            return Some((*id, false));
        }
        let id = self.candidate(key)?;
        self.used.insert(id, key.to_string());
        self.by_key.insert(key.to_string(), id);
        Some((id, true))
    }

    /// The number [`allocate`](Self::allocate) would give `key` now (its own if it has one),
    /// without allocating it. `None` when the range is exhausted.
    pub fn candidate(&self, key: &str) -> Option<NumericIdentity> {
        if let Some(id) = self.by_key.get(key) {
            return Some(*id);
        }
        let span = (self.last - self.first + 1) as u64;
        if self.used.len() as u64 >= span {
            return None;
        }
        let mut n = (fnv1a(key) % span) as u32;
        loop {
            let id = NumericIdentity(self.first + n);
            if !self.used.contains_key(&id) {
                return Some(id);
            }
            n = (n + 1) % span as u32;
        }
    }

    /// Records `key` → `id` decided elsewhere (a [`SharedIdentities`] store). Returns whether it
    /// is new here; an error names the label set already holding `id`, or a number outside the
    /// range.
    ///
    /// [`SharedIdentities`]: super::SharedIdentities
    pub fn assign(&mut self, key: &str, id: NumericIdentity) -> Result<bool, String> {
        if self.by_key.get(key) == Some(&id) {
            return Ok(false);
        }
        if id.0 < self.first || id.0 > self.last {
            return Err(format!(
                "identity {} for {key} is outside {}..={}",
                id.0, self.first, self.last
            ));
        }
        if let Some(other) = self.used.get(&id) {
            return Err(format!("identity {} is held by {other}, not {key}", id.0));
        }
        if let Some(old) = self.by_key.insert(key.to_string(), id) {
            self.used.remove(&old);
        }
        self.used.insert(id, key.to_string());
        Ok(true)
    }

    /// Frees `key`'s identity (its number may later go to another label set).
    pub fn release(&mut self, key: &str) -> Option<NumericIdentity> {
        let id = self.by_key.remove(key)?;
        self.used.remove(&id);
        Some(id)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The canonical key of a label set (its text form).
pub fn key_of(labels: &LabelSet) -> String {
    labels.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_when_unrelated_sets_are_added() {
        let mut a = IdAllocator::cluster();
        let (x, new) = a.allocate("k8s:id=app1").unwrap();
        assert!(new);
        assert!(x.0 >= 256 && x.0 <= 65535);
        let mut b = IdAllocator::cluster();
        for i in 0..1000 {
            b.allocate(&format!("k8s:id=other{i}")).unwrap();
        }
        let (y, _) = b.allocate("k8s:id=app1").unwrap();
        // Equal unless one of the 1000 others happened to take app1's slot first.
        assert!(y == x || b.get("k8s:id=app1") == Some(y));
        assert_eq!(a.allocate("k8s:id=app1").unwrap(), (x, false));
    }

    #[test]
    fn collisions_probe_and_exhaustion_is_reported() {
        let mut a = IdAllocator::range(10, 12);
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|k| a.allocate(k).unwrap().0)
            .collect();
        assert_eq!(
            ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
            3
        );
        assert!(a.allocate("d").is_none());
        a.release("b");
        assert!(a.allocate("d").is_some());
    }

    #[test]
    fn assigned_numbers_are_kept_and_skipped_by_local_allocation() {
        let mut a = IdAllocator::range(10, 12);
        let c = a.candidate("a").unwrap();
        assert_eq!(a.assign("x", c), Ok(true));
        assert_eq!(a.assign("x", c), Ok(false));
        assert!(a.assign("y", c).is_err(), "a number held by another key");
        assert!(
            a.assign("y", NumericIdentity(99)).is_err(),
            "outside the range"
        );
        assert_ne!(a.allocate("a").unwrap().0, c);
        assert_eq!(a.get("x"), Some(c));
    }

    #[test]
    fn local_identities_have_the_scope_bit() {
        let mut a = IdAllocator::local();
        assert!(a.allocate("cidr:10.0.0.0/8").unwrap().0.is_local());
        let mut n = IdAllocator::remote_node();
        let id = n.allocate("k8s:a=b,reserved:remote-node").unwrap().0;
        assert!(id.is_node() && !id.is_local() && id.0 & (1 << 31) == 0);
    }
}
