//! Map deltas: the entry-level difference between what a map holds and what it should hold,
//! applied in a chosen order, refused whole when the map would overflow, rolled back when the
//! kernel refuses an operation half-way.

use crate::error::{LoaderError, Result};
use crate::rawmap::{Entries, RawMap};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapOp {
    Insert {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Replace {
        key: Vec<u8>,
        old: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
        old: Vec<u8>,
    },
}

impl MapOp {
    pub fn key(&self) -> &[u8] {
        match self {
            MapOp::Insert { key, .. } | MapOp::Replace { key, .. } | MapOp::Delete { key, .. } => {
                key
            }
        }
    }
    /// The value the entry has after this op (`None`: removed).
    pub fn new_value(&self) -> Option<&[u8]> {
        match self {
            MapOp::Insert { value, .. } | MapOp::Replace { value, .. } => Some(value),
            MapOp::Delete { .. } => None,
        }
    }
    /// The value the entry had before this op (`None`: absent).
    pub fn old_value(&self) -> Option<&[u8]> {
        match self {
            MapOp::Insert { .. } => None,
            MapOp::Replace { old, .. } | MapOp::Delete { old, .. } => Some(old),
        }
    }
    fn size_change(&self) -> i64 {
        match self {
            MapOp::Insert { .. } => 1,
            MapOp::Replace { .. } => 0,
            MapOp::Delete { .. } => -1,
        }
    }
}

/// An ordered list of entry operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapDelta {
    pub ops: Vec<MapOp>,
}

/// What applying a delta did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    pub inserted: usize,
    pub replaced: usize,
    pub deleted: usize,
}

impl MapDelta {
    /// The ops that turn `old` into `new`, values compared byte for byte, inserts and
    /// replacements before deletions.
    pub fn between(old: &Entries, new: &Entries) -> MapDelta {
        Self::between_with(
            old,
            new,
            |a, b| a == b,
            |op| u8::from(matches!(op, MapOp::Delete { .. })),
        )
    }

    /// Like [`MapDelta::between`], with `same(old, new)` deciding whether two values are equal
    /// for enforcement (e.g. ignoring counters that the datapath updates) and `rank(op)` the
    /// order in which ops are applied (lower first; stable within a rank). Callers rank
    /// changes that restrict before changes that widen, so that no intermediate state of the
    /// map allows more than both the old and the new policy.
    pub fn between_with(
        old: &Entries,
        new: &Entries,
        same: impl Fn(&[u8], &[u8]) -> bool,
        rank: impl Fn(&MapOp) -> u8,
    ) -> MapDelta {
        let mut ops = Vec::new();
        for (k, v) in new {
            match old.get(k) {
                None => ops.push(MapOp::Insert {
                    key: k.clone(),
                    value: v.clone(),
                }),
                Some(o) if !same(o, v) => ops.push(MapOp::Replace {
                    key: k.clone(),
                    old: o.clone(),
                    value: v.clone(),
                }),
                Some(_) => {}
            }
        }
        for (k, o) in old {
            if !new.contains_key(k) {
                ops.push(MapOp::Delete {
                    key: k.clone(),
                    old: o.clone(),
                });
            }
        }
        ops.sort_by_key(|op| rank(op));
        MapDelta { ops }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The largest number of entries the map holds at any point while the ops are applied to a
    /// map that holds `current_len` entries.
    pub fn peak_len(&self, current_len: usize) -> u64 {
        let mut n = current_len as i64;
        let mut peak = n;
        for op in &self.ops {
            n += op.size_change();
            peak = peak.max(n);
        }
        peak.max(0) as u64
    }

    /// Applies the ops in order. Refuses before writing anything when the map would overflow;
    /// when the kernel refuses an op, reverts the ops already applied and returns the error.
    pub fn apply(&self, map: &RawMap, current_len: usize) -> Result<DeltaStats> {
        let peak = self.peak_len(current_len);
        if peak > u64::from(map.max_entries()) {
            return Err(LoaderError::MapFull {
                path: map.path().into(),
                needed: peak,
                max: map.max_entries(),
            });
        }
        let mut stats = DeltaStats::default();
        for (i, op) in self.ops.iter().enumerate() {
            let res = match op {
                MapOp::Insert { key, value } | MapOp::Replace { key, value, .. } => {
                    map.update(key, value)
                }
                MapOp::Delete { key, .. } => map.delete(key).map(|_| ()),
            };
            if let Err(e) = res {
                self.revert(map, i);
                return Err(e);
            }
            match op {
                MapOp::Insert { .. } => stats.inserted += 1,
                MapOp::Replace { .. } => stats.replaced += 1,
                MapOp::Delete { .. } => stats.deleted += 1,
            }
        }
        Ok(stats)
    }

    /// Undoes ops `0..upto` in reverse order (best effort: logged, not returned).
    fn revert(&self, map: &RawMap, upto: usize) {
        for op in self.ops[..upto].iter().rev() {
            let res = match op.old_value() {
                Some(old) => map.update(op.key(), old),
                None => map.delete(op.key()).map(|_| ()),
            };
            if let Err(e) = res {
                tracing::error!(map = %map.path().display(), error = %e, "rolling back a map delta failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(kv: &[(u8, u8)]) -> Entries {
        kv.iter().map(|(k, v)| (vec![*k], vec![*v])).collect()
    }

    #[test]
    fn only_changed_entries_are_written() {
        let old = entries(&[(1, 10), (2, 20), (3, 30)]);
        let new = entries(&[(1, 10), (2, 21), (4, 40)]);
        let d = MapDelta::between(&old, &new);
        assert_eq!(
            d.ops,
            vec![
                MapOp::Replace {
                    key: vec![2],
                    old: vec![20],
                    value: vec![21]
                },
                MapOp::Insert {
                    key: vec![4],
                    value: vec![40]
                },
                MapOp::Delete {
                    key: vec![3],
                    old: vec![30]
                },
            ]
        );
        assert!(MapDelta::between(&old, &old).is_empty());
    }

    #[test]
    fn peak_counts_inserts_before_deletes() {
        let old = entries(&[(1, 1), (2, 2)]);
        let new = entries(&[(3, 3), (4, 4)]);
        let d = MapDelta::between(&old, &new);
        assert_eq!(d.peak_len(2), 4);
        let deletes_first = MapDelta::between_with(
            &old,
            &new,
            |a, b| a == b,
            |op| u8::from(!matches!(op, MapOp::Delete { .. })),
        );
        assert_eq!(deletes_first.peak_len(2), 2);
    }

    #[test]
    fn equality_can_ignore_counter_bytes() {
        let old = entries(&[(1, 0x10)]);
        let new = entries(&[(1, 0x1f)]);
        let high_nibble = |a: &[u8], b: &[u8]| a[0] >> 4 == b[0] >> 4;
        assert!(MapDelta::between_with(&old, &new, high_nibble, |_| 0).is_empty());
    }
}
