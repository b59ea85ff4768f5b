//! Deny precedence in the map state: every deny entry is also installed at each more specific
//! key it overlaps with an allow, so a datapath that stops at the most specific hit still denies.
//!
//! This is the only place deny push-down happens: codegen encodes the map state as it is
//! (`ir::EndpointPolicy` documents the invariant it relies on).

use ir::mapstate::AddrKey;
use ir::{EndpointPolicy, MapEntry, MapKey, MapVerdict, NumericIdentity, RuleId};
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

/// The (protocol, port, port prefix length) both port parts cover, if they overlap.
fn port_overlap(a: (u8, u16, u8), d: (u8, u16, u8)) -> Option<(u8, u16, u8)> {
    let protocol = proto_overlap(a.0, d.0)?;
    let (wide, narrow) = if a.2 <= d.2 { (a, d) } else { (d, a) };
    if !super::ports::port_in(wide.1, wide.2, narrow.1) {
        return None;
    }
    Some((protocol, narrow.1, narrow.2))
}

/// The key both `a` and `d` cover, if they overlap.
pub fn intersect(a: &MapKey, d: &MapKey) -> Option<MapKey> {
    if a.direction != d.direction {
        return None;
    }
    let identity = id_overlap(a.identity, d.identity)?;
    let (protocol, port, port_prefix_len) = port_overlap(
        (a.protocol, a.port, a.port_prefix_len),
        (d.protocol, d.port, d.port_prefix_len),
    )?;
    Some(MapKey {
        identity,
        direction: a.direction,
        protocol,
        port,
        port_prefix_len,
    })
}

/// The address key both `a` and `d` cover, if they overlap: prefixes overlap only when one
/// contains the other, and the overlap is the longer one.
pub fn intersect_addr(a: &AddrKey, d: &AddrKey) -> Option<AddrKey> {
    if a.direction != d.direction {
        return None;
    }
    let prefix = if a.prefix.contains(&d.prefix) {
        d.prefix
    } else if d.prefix.contains(&a.prefix) {
        a.prefix
    } else {
        return None;
    };
    let (protocol, port, port_prefix_len) = port_overlap(
        (a.protocol, a.port, a.port_prefix_len),
        (d.protocol, d.port, d.port_prefix_len),
    )?;
    Some(AddrKey {
        direction: a.direction,
        prefix,
        protocol,
        port,
        port_prefix_len,
    })
}

/// Merges `verdict` from `rules` into the entry at `key` (deny over redirect over allow).
pub fn merge<K: Ord>(
    entries: &mut BTreeMap<K, MapEntry>,
    key: K,
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

/// Installs deny entries at every allow key they overlap, in the identity entries and in the
/// address entries (where the datapath's address class of a prefix holds the entries of every
/// prefix containing it, so a class never holds an allow more specific than a deny it has).
pub fn propagate(policy: &mut EndpointPolicy) {
    propagate_in(&mut policy.entries, intersect);
    propagate_in(&mut policy.addr_entries, intersect_addr);
}

fn propagate_in<K: Ord + Copy>(
    entries: &mut BTreeMap<K, MapEntry>,
    intersect: impl Fn(&K, &K) -> Option<K>,
) {
    let denies: Vec<(K, Vec<RuleId>)> = entries
        .iter()
        .filter(|(_, e)| e.verdict == MapVerdict::Deny)
        .map(|(k, e)| (*k, e.rules.clone()))
        .collect();
    if denies.is_empty() {
        return;
    }
    let allows: Vec<K> = entries
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

#[cfg(test)]
mod tests {
    use super::*;
    use ir::Direction;

    fn entry(v: MapVerdict, rule: u32) -> MapEntry {
        MapEntry {
            verdict: v,
            rules: vec![RuleId(rule)],
            audited: vec![],
        }
    }

    fn key(id: u32, proto: u8, port: u16, plen: u8) -> MapKey {
        MapKey {
            identity: NumericIdentity(id),
            direction: Direction::Ingress,
            protocol: proto,
            port,
            port_prefix_len: plen,
        }
    }

    fn addr(prefix: &str, proto: u8, port: u16, plen: u8) -> AddrKey {
        AddrKey {
            direction: Direction::Egress,
            prefix: prefix.parse().unwrap(),
            protocol: proto,
            port,
            port_prefix_len: plen,
        }
    }

    #[test]
    fn a_deny_of_the_same_identity_is_pushed_onto_its_more_specific_allows() {
        let mut p = EndpointPolicy::default();
        p.entries
            .insert(key(400, 0, 0, 0), entry(MapVerdict::Allow, 0));
        p.entries
            .insert(key(400, 6, 0, 0), entry(MapVerdict::Deny, 1));
        p.entries
            .insert(key(400, 6, 443, 16), entry(MapVerdict::Allow, 2));
        p.entries
            .insert(key(400, 17, 53, 16), entry(MapVerdict::Allow, 3));
        // The wildcard identity's deny of 8080-8087 lands on 300's 8086 allow.
        p.entries
            .insert(key(0, 6, 8080, 13), entry(MapVerdict::Deny, 4));
        p.entries
            .insert(key(300, 6, 8086, 16), entry(MapVerdict::Allow, 5));
        propagate(&mut p);
        let at = |k: MapKey| p.entries[&k].clone();
        assert_eq!(at(key(400, 6, 443, 16)).verdict, MapVerdict::Deny);
        assert_eq!(at(key(400, 6, 443, 16)).rules, [RuleId(1), RuleId(2)]);
        assert_eq!(at(key(400, 17, 53, 16)).verdict, MapVerdict::Allow);
        assert_eq!(at(key(400, 0, 0, 0)).verdict, MapVerdict::Allow);
        assert_eq!(at(key(300, 6, 8086, 16)).verdict, MapVerdict::Deny);
        // Under 400's every-protocol allow: its own TCP deny is already there, the wildcard's
        // 8080-8087 deny is added at 400's key.
        assert_eq!(at(key(400, 6, 8080, 13)).rules, [RuleId(4)]);
        assert_eq!(p.entries.len(), 7);
    }

    #[test]
    fn an_address_deny_is_pushed_onto_allows_of_contained_prefixes() {
        let mut p = EndpointPolicy::default();
        p.addr_entries
            .insert(addr("10.0.0.0/8", 6, 0, 0), entry(MapVerdict::Deny, 0));
        p.addr_entries
            .insert(addr("10.1.0.0/16", 6, 443, 16), entry(MapVerdict::Allow, 1));
        p.addr_entries
            .insert(addr("10.1.0.0/16", 17, 53, 16), entry(MapVerdict::Allow, 2));
        // A deny of a longer prefix inside an allowed shorter one lands at the longer prefix.
        p.addr_entries
            .insert(addr("192.168.0.0/16", 0, 0, 0), entry(MapVerdict::Allow, 3));
        p.addr_entries.insert(
            addr("192.168.7.0/24", 6, 22, 16),
            entry(MapVerdict::Deny, 4),
        );
        // Disjoint prefixes do not overlap.
        p.addr_entries.insert(
            addr("172.16.0.0/12", 6, 443, 16),
            entry(MapVerdict::Allow, 5),
        );
        propagate(&mut p);
        let at = |k: AddrKey| p.addr_entries[&k].verdict;
        assert_eq!(at(addr("10.1.0.0/16", 6, 443, 16)), MapVerdict::Deny);
        assert_eq!(at(addr("10.1.0.0/16", 17, 53, 16)), MapVerdict::Allow);
        assert_eq!(at(addr("192.168.0.0/16", 0, 0, 0)), MapVerdict::Allow);
        assert_eq!(at(addr("192.168.7.0/24", 6, 22, 16)), MapVerdict::Deny);
        assert_eq!(at(addr("172.16.0.0/12", 6, 443, 16)), MapVerdict::Allow);
        assert_eq!(p.addr_entries.len(), 6);
    }
}
