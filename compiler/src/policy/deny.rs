//! Deny precedence in the map state: every deny entry is also installed at each more specific
//! key it overlaps with an allow, so a datapath that stops at the most specific hit still denies.

use ir::{MapEntry, MapKey, MapVerdict, NumericIdentity, RuleId};
use std::collections::BTreeMap;

fn id_overlap(a: NumericIdentity, b: NumericIdentity) -> Option<NumericIdentity> {
    match (a, b) {
        (NumericIdentity::WILDCARD, x) | (x, NumericIdentity::WILDCARD) => Some(x),
        (x, y) if x == y => Some(x),
        _ => None,
    }
}

fn proto_overlap(a: u8, b: u8) -> Option<u8> {
    match (a, b) {
        (0, x) | (x, 0) => Some(x),
        (x, y) if x == y => Some(x),
        _ => None,
    }
}

/// The key both `a` and `d` cover, if they overlap.
pub fn intersect(a: &MapKey, d: &MapKey) -> Option<MapKey> {
    if a.direction != d.direction {
        return None;
    }
    let identity = id_overlap(a.identity, d.identity)?;
    let protocol = proto_overlap(a.protocol, d.protocol)?;
    let (wide, narrow) = if a.port_prefix_len <= d.port_prefix_len {
        (a, d)
    } else {
        (d, a)
    };
    if !super::ports::port_in(wide.port, wide.port_prefix_len, narrow.port) {
        return None;
    }
    Some(MapKey {
        identity,
        direction: a.direction,
        protocol,
        port: narrow.port,
        port_prefix_len: narrow.port_prefix_len,
    })
}

/// Merges `verdict` from `rules` into the entry at `key` (deny over redirect over allow).
pub fn merge(
    entries: &mut BTreeMap<MapKey, MapEntry>,
    key: MapKey,
    verdict: MapVerdict,
    rules: &[RuleId],
) {
    let rank = |v: &MapVerdict| match v {
        MapVerdict::Allow => 0,
        MapVerdict::Redirect { .. } => 1,
        MapVerdict::Deny => 2,
    };
    let e = entries.entry(key).or_insert(MapEntry {
        verdict,
        rules: Vec::new(),
        audited: Vec::new(),
    });
    if rank(&verdict) > rank(&e.verdict) {
        e.verdict = verdict;
    }
    if e.verdict == MapVerdict::Deny {
        // A deny is enforced even in audit mode: nothing here passes.
        e.audited.clear();
    }
    for r in rules {
        if let Err(i) = e.rules.binary_search(r) {
            e.rules.insert(i, *r);
        }
    }
}

/// Installs deny entries at every allow key they overlap.
pub fn propagate(entries: &mut BTreeMap<MapKey, MapEntry>) {
    let denies: Vec<(MapKey, Vec<RuleId>)> = entries
        .iter()
        .filter(|(_, e)| e.verdict == MapVerdict::Deny)
        .map(|(k, e)| (*k, e.rules.clone()))
        .collect();
    if denies.is_empty() {
        return;
    }
    let allows: Vec<MapKey> = entries
        .iter()
        .filter(|(_, e)| e.verdict != MapVerdict::Deny)
        .map(|(k, _)| *k)
        .collect();
    for a in allows {
        for (d, rules) in &denies {
            if let Some(k) = intersect(&a, d) {
                merge(entries, k, MapVerdict::Deny, rules);
            }
        }
    }
}
