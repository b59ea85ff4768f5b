//! Turns an `ir::EndpointPolicy` into the exact kernel policy entries (the ipcache: `ipcache.rs`).
//!
//! - Every map-state key becomes one [`PolicyEntry`] (identity, direction, protocol, port
//!   block); protocol 0 with a port is expanded to TCP, UDP and SCTP (Cilium's `ANY`). Exact
//!   ports and wildcards go to the `cp_policy` hash, port blocks of 1..15 bits to the
//!   `cp_policy_rng` LPM trie.
//! - Deny push-down is the map state's (`compiler::policy::deny`, the invariant documented on
//!   `ir::EndpointPolicy`): the entries are encoded as they are, so the most specific entry of
//!   one identity or address class is never an allow hiding a deny when the map state keeps it.
//! - `POLICY_FINAL`: an allow of a peer identity (address class) with no overlapping deny of an
//!   address class or the wildcard identity (of the wildcard identity) ends the decision early.
//! - Lookup markers: every (identity, direction) with entries has its every-protocol key, the
//!   first one the datapath looks up; its flags say which other kinds of keys the identity has
//!   (exact ports, all ports of a protocol, port ranges), so the datapath skips lookups that
//!   cannot hit, and a peer without entries costs one lookup. Where the identity has no
//!   every-protocol entry the key is a marker with `VERDICT_NONE`. The every-protocol key of a
//!   peer identity or address class also carries `POLICY_NO_WILDCARD` when the wildcard
//!   identity has no entries in that direction, so the datapath skips the wildcard's lookup.
//! - Address entries (NetworkPolicy ipBlock): each distinct (direction, prefix) becomes an
//!   address class `ADDR_CLASS_BIT | n` in `cp_addr`; the class's policy entries are those of
//!   every prefix containing it (the LPM lookup only returns the longest prefix).
//! - Colliding keys merge: deny over redirect over allow; rules are kept in order.
//!
//! Building allocates a handful of vectors for the whole endpoint (entries, one rule-id arena),
//! never one per entry.

use crate::image::{ImageKind, MapImage};
use crate::layout::*;
use ir::{Direction, EndpointPolicy, IpNet, MapEntry, MapVerdict, RuleId};

/// One kernel policy entry. `protocol` 0 = every protocol (then `port_prefix_len` is 0);
/// `port_prefix_len` 16 = exactly `port`, 0 = every port, else a port block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    pub identity: u32,
    pub direction: u8,
    pub protocol: u8,
    pub port: u16,
    pub port_prefix_len: u8,
    pub value: PolicyValue,
    /// The contributing rules: `rules[start..start + len]` of the endpoint's arena.
    rules: (u32, u32),
}

/// Where an entry lives in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKey {
    Hash(PolicyKey),
    Range(PolicyRangeKey),
}

impl PolicyEntry {
    /// Order of the entry list: identity, direction, protocol, port, prefix length.
    fn order(&self) -> u128 {
        (u128::from(self.identity) << 40)
            | (u128::from(self.direction) << 32)
            | (u128::from(self.protocol) << 24)
            | (u128::from(self.port) << 8)
            | u128::from(self.port_prefix_len)
    }

    /// A lookup marker: an every-protocol key carrying no verdict.
    pub fn is_marker(&self) -> bool {
        self.value.verdict == VERDICT_NONE
    }

    pub fn is_range(&self) -> bool {
        self.protocol != 0 && (1..16).contains(&self.port_prefix_len)
    }

    pub fn kernel_key(&self) -> KernelKey {
        if self.is_range() {
            return KernelKey::Range(PolicyRangeKey {
                prefixlen: POLICY_RANGE_PROTO_PREFIX + u32::from(self.port_prefix_len),
                identity: self.identity,
                direction: self.direction,
                protocol: self.protocol,
                dport_be: self.port.to_be(),
            });
        }
        let exact = self.protocol != 0 && self.port_prefix_len >= 16;
        KernelKey::Hash(PolicyKey {
            identity: self.identity,
            dir_flags: self.direction | if exact { 0 } else { POLICY_ALL_PORTS },
            protocol: self.protocol,
            dport_be: if exact { self.port.to_be() } else { 0 },
        })
    }

    /// Is there a packet (of the same direction) both entries apply to, identities aside?
    fn overlaps(&self, other: &PolicyEntry) -> bool {
        if self.direction != other.direction {
            return false;
        }
        if self.protocol == 0 || other.protocol == 0 {
            return true;
        }
        let bits = self.port_prefix_len.min(other.port_prefix_len);
        self.protocol == other.protocol && self.port & mask(bits) == other.port & mask(bits)
    }
}

fn mask(bits: u8) -> u16 {
    if bits == 0 {
        0
    } else {
        u16::MAX << (16 - bits.min(16))
    }
}

/// Every entry one endpoint's maps hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointEntries {
    /// Policy entries of both policy maps, in (identity, direction, protocol, port) order.
    pub policy: Vec<PolicyEntry>,
    /// Address-class entries (`cp_addr`).
    pub addr: Vec<(AddrKey, AddrValue)>,
    /// Rule ids of the entries (each entry names a slice).
    rules: Vec<RuleId>,
}

pub fn dir_code(d: Direction) -> u8 {
    match d {
        Direction::Ingress => DIR_INGRESS,
        Direction::Egress => DIR_EGRESS,
    }
}

fn verdict_rank(v: u8) -> u8 {
    match v {
        VERDICT_DENY => 3,
        VERDICT_REDIRECT => 2,
        _ => 1,
    }
}

fn value_of(e: &MapEntry) -> PolicyValue {
    let (verdict, proxy_port) = match e.verdict {
        MapVerdict::Allow => (VERDICT_ALLOW, 0),
        MapVerdict::Deny => (VERDICT_DENY, 0),
        MapVerdict::Redirect { proxy_port } => (VERDICT_REDIRECT, proxy_port),
    };
    // An audited entry names the rule that would deny what it passes (events report AUDIT).
    let rule_id = match (e.audited.first(), e.rules.first()) {
        (Some(a), _) => a.0 | RULE_AUDIT_BIT,
        (None, Some(r)) => r.0,
        (None, None) => RULE_NONE,
    };
    PolicyValue {
        verdict,
        proxy_port,
        rule_id,
        ..Default::default()
    }
}

impl EndpointEntries {
    /// The rules that contributed to `e` (the value names the first).
    pub fn rules_of(&self, e: &PolicyEntry) -> &[RuleId] {
        let (start, len) = e.rules;
        &self.rules[start as usize..(start + len) as usize]
    }

    /// Appends the kernel entries of one map-state entry.
    fn push(&mut self, identity: u32, dir: u8, k: (u8, u16, u8), e: &MapEntry) {
        let (protocol, port, plen) = k;
        let start = self.rules.len() as u32;
        self.rules.extend_from_slice(&e.rules);
        let plen = plen.min(16);
        let entry = |protocol: u8, plen: u8| PolicyEntry {
            identity,
            direction: dir,
            protocol,
            port: port & mask(plen),
            port_prefix_len: plen,
            value: value_of(e),
            rules: (start, e.rules.len() as u32),
        };
        match (protocol, plen) {
            (0, 0) => self.policy.push(entry(0, 0)),
            (0, _) => {
                for p in [6u8, 17, 132] {
                    self.policy.push(entry(p, plen));
                }
            }
            (p, _) => self.policy.push(entry(p, plen)),
        }
    }

    /// Every entry of `policy`, in kernel form.
    pub fn build(policy: &EndpointPolicy) -> EndpointEntries {
        let mut out = EndpointEntries {
            policy: Vec::with_capacity(policy.entries.len() + policy.addr_entries.len()),
            addr: Vec::new(),
            rules: Vec::with_capacity(policy.entries.len()),
        };
        for (k, e) in &policy.entries {
            let key = (k.protocol, k.port, k.port_prefix_len);
            out.push(k.identity.0, dir_code(k.direction), key, e);
        }
        out.add_address_classes(policy);
        // Stable: colliding keys keep their insertion order for the merge.
        out.policy.sort_by_key(PolicyEntry::order);
        out.merge_duplicates();
        out.mark_final();
        out.add_lookup_markers();
        out
    }

    /// Gives every (identity, direction) its every-protocol key, flagged with the kinds of keys
    /// the identity has (see the module doc).
    fn add_lookup_markers(&mut self) {
        let old = std::mem::take(&mut self.policy);
        self.policy.reserve(old.len() + old.len() / 4);
        // Directions in which the wildcard identity has entries.
        let mut wildcard = [false; 2];
        for e in old.iter().filter(|e| e.identity == 0) {
            wildcard[usize::from(e.direction & 1)] = true;
        }
        let mut i = 0;
        while i < old.len() {
            let group = (old[i].identity, old[i].direction);
            let end = i + old[i..]
                .iter()
                .take_while(|e| (e.identity, e.direction) == group)
                .count();
            let mut flags = 0;
            for e in &old[i..end] {
                flags |= match (e.protocol, e.port_prefix_len) {
                    (0, _) => 0,
                    (_, 0) => POLICY_HAS_PORTS,
                    (_, 16) => POLICY_HAS_EXACT,
                    _ => POLICY_HAS_RANGES,
                };
            }
            // The every-protocol entry sorts first in its group.
            let mut head = old[i];
            if head.protocol == 0 {
                i += 1;
            } else {
                head = PolicyEntry {
                    protocol: 0,
                    port: 0,
                    port_prefix_len: 0,
                    value: PolicyValue {
                        verdict: VERDICT_NONE,
                        rule_id: RULE_NONE,
                        ..Default::default()
                    },
                    rules: (0, 0),
                    ..head
                };
            }
            if head.identity != 0 && !wildcard[usize::from(head.direction & 1)] {
                flags |= POLICY_NO_WILDCARD;
            }
            head.value.flags |= flags;
            self.policy.push(head);
            self.policy.extend_from_slice(&old[i..end]);
            i = end;
        }
    }

    /// Address classes, most general prefix first so nested prefixes inherit its entries.
    fn add_address_classes(&mut self, policy: &EndpointPolicy) {
        let mut prefixes: Vec<(Direction, IpNet)> = policy
            .addr_entries
            .keys()
            .map(|k| (k.direction, k.prefix))
            .collect();
        prefixes.sort_by_key(|(d, p)| (*d, p.prefix_len(), *p));
        prefixes.dedup();
        for (n, (dir, prefix)) in prefixes.iter().enumerate() {
            let class = ADDR_CLASS_BIT | n as u32;
            let (family, addr) = addr_bytes(prefix.network());
            self.addr.push((
                AddrKey {
                    prefixlen: 32 + prefix.prefix_len() as u32,
                    direction: dir_code(*dir),
                    family,
                    pad: [0; 2],
                    addr,
                },
                AddrValue { class_id: class },
            ));
            for (k, e) in &policy.addr_entries {
                if k.direction == *dir && k.prefix.contains(prefix) {
                    let key = (k.protocol, k.port, k.port_prefix_len);
                    self.push(class, dir_code(k.direction), key, e);
                }
            }
        }
    }

    /// Merges runs of equal keys: the first entry of the highest verdict rank decides, its
    /// rules first, then the others' in order.
    fn merge_duplicates(&mut self) {
        let mut w = 0;
        let mut r = 0;
        let n = self.policy.len();
        while r < n {
            let mut end = r + 1;
            while end < n && self.policy[end].order() == self.policy[r].order() {
                end += 1;
            }
            let mut merged = self.policy[r];
            if end - r > 1 {
                let best = (r..end)
                    .max_by_key(|i| (verdict_rank(self.policy[*i].value.verdict), n - i))
                    .unwrap_or(r);
                merged = self.policy[best];
                let start = self.rules.len();
                for i in std::iter::once(best).chain((r..end).filter(|i| *i != best)) {
                    let (s, l) = self.policy[i].rules;
                    for j in s as usize..(s + l) as usize {
                        let id = self.rules[j];
                        if !self.rules[start..].contains(&id) {
                            self.rules.push(id);
                        }
                    }
                }
                merged.rules = (start as u32, (self.rules.len() - start) as u32);
            }
            self.policy[w] = merged;
            w += 1;
            r = end;
        }
        self.policy.truncate(w);
    }

    /// Sets POLICY_FINAL on allows that no deny of a later-consulted identity overlaps.
    fn mark_final(&mut self) {
        // Identity 0 sorts first, address classes last.
        let later_denies: Vec<PolicyEntry> = self
            .policy
            .iter()
            .filter(|e| {
                e.value.verdict == VERDICT_DENY
                    && (e.identity == 0 || e.identity & ADDR_CLASS_BIT != 0)
            })
            .copied()
            .collect();
        for e in self.policy.iter_mut() {
            if e.value.verdict == VERDICT_DENY {
                continue;
            }
            let overturned = e.identity != 0
                && later_denies.iter().any(|d| {
                    // A class is consulted after peers; the wildcard after both.
                    let later = d.identity == 0 || e.identity & ADDR_CLASS_BIT == 0;
                    later && d.overlaps(e)
                });
            if !overturned {
                e.value.flags |= POLICY_FINAL;
            }
        }
    }

    /// Entries of the `cp_policy` hash.
    pub fn hash_len(&self) -> usize {
        self.policy.iter().filter(|e| !e.is_range()).count()
    }

    /// Entries per map image, as the capacity check ([`crate::generate::overflow`]) counts them.
    pub fn counts(&self) -> [(ImageKind, usize); 3] {
        [
            (ImageKind::Policy, self.hash_len()),
            (ImageKind::PolicyRanges, self.range_len()),
            (ImageKind::Addr, self.addr.len()),
        ]
    }

    /// Entries of the `cp_policy_rng` trie (the endpoint needs ENABLE_PORT_RANGES when > 0).
    pub fn range_len(&self) -> usize {
        self.policy.iter().filter(|e| e.is_range()).count()
    }

    /// The `cp_policy` hash image.
    pub fn policy_image(&self) -> MapImage {
        let mut keys: Vec<(u64, PolicyKey, &PolicyValue)> = self
            .policy
            .iter()
            .filter_map(|e| match e.kernel_key() {
                KernelKey::Hash(k) => {
                    let b: [u8; 8] = k.as_bytes().try_into().unwrap_or_default();
                    Some((u64::from_be_bytes(b), k, &e.value))
                }
                KernelKey::Range(_) => None,
            })
            .collect();
        keys.sort_unstable_by_key(|(order, _, _)| *order);
        MapImage::from_sorted(
            ImageKind::Policy,
            keys.iter().map(|(_, k, v)| (k.as_bytes(), v.as_bytes())),
        )
    }

    /// The `cp_policy_rng` trie image.
    pub fn range_image(&self) -> MapImage {
        let keys: Vec<(PolicyRangeKey, &PolicyValue)> = self
            .policy
            .iter()
            .filter_map(|e| match e.kernel_key() {
                KernelKey::Range(k) => Some((k, &e.value)),
                KernelKey::Hash(_) => None,
            })
            .collect();
        MapImage::new(
            ImageKind::PolicyRanges,
            keys.iter().map(|(k, v)| (k, *v)),
            PolicyRangeKey::as_bytes,
            PolicyValue::as_bytes,
        )
    }

    /// Address-class map image.
    pub fn addr_image(&self) -> MapImage {
        MapImage::new(
            ImageKind::Addr,
            self.addr.iter().map(|(k, v)| (k, v)),
            AddrKey::as_bytes,
            AddrValue::as_bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir::{MapKey, NumericIdentity};

    fn put(p: &mut EndpointPolicy, id: u32, proto: u8, port: u16, plen: u8, v: MapVerdict) {
        put_dir(p, id, Direction::Ingress, (proto, port, plen), v);
    }

    /// (protocol, port, port prefix length) of `id` in direction `d`.
    fn put_dir(p: &mut EndpointPolicy, id: u32, d: Direction, k: (u8, u16, u8), v: MapVerdict) {
        let key = MapKey {
            identity: NumericIdentity(id),
            direction: d,
            protocol: k.0,
            port: k.1,
            port_prefix_len: k.2,
        };
        let rules = vec![RuleId(p.entries.len() as u32)];
        p.entries.insert(
            key,
            MapEntry {
                verdict: v,
                rules,
                audited: vec![],
            },
        );
    }

    fn find(e: &EndpointEntries, id: u32, proto: u8, port: u16, plen: u8) -> PolicyEntry {
        *e.policy
            .iter()
            .find(|x| {
                (x.identity, x.protocol, x.port, x.port_prefix_len) == (id, proto, port, plen)
            })
            .unwrap_or_else(|| panic!("no entry {id} {proto} {port}/{plen}"))
    }

    #[test]
    fn final_allows_and_markers() {
        let mut p = EndpointPolicy::default();
        put(&mut p, 300, 6, 80, 16, MapVerdict::Allow);
        put(&mut p, 300, 17, 0, 0, MapVerdict::Allow);
        put(&mut p, 300, 6, 8080, 16, MapVerdict::Allow);
        // Every identity is denied 8080-8087 (a range of the wildcard identity).
        put(&mut p, 0, 6, 8080, 13, MapVerdict::Deny);
        // Identity 400: every protocol allowed, TCP denied; its TCP/443 allow holds the deny
        // the map state pushed down onto it (`compiler::policy::deny`).
        put(&mut p, 400, 0, 0, 0, MapVerdict::Allow);
        put(&mut p, 400, 6, 0, 0, MapVerdict::Deny);
        put(&mut p, 400, 6, 443, 16, MapVerdict::Deny);
        let e = EndpointEntries::build(&p);
        // 300's TCP/80 and UDP allows overlap no wildcard deny: final. Its TCP/8080 does.
        assert_ne!(find(&e, 300, 6, 80, 16).value.flags & POLICY_FINAL, 0);
        assert_ne!(find(&e, 300, 17, 0, 0).value.flags & POLICY_FINAL, 0);
        assert_eq!(find(&e, 300, 6, 8080, 16).value.flags & POLICY_FINAL, 0);
        // Entries are encoded as the map state holds them: no verdict is changed.
        for (k, m) in &p.entries {
            let x = find(&e, k.identity.0, k.protocol, k.port, k.port_prefix_len);
            assert_eq!(x.value.verdict, value_of(m).verdict);
            assert_eq!(e.rules_of(&x), m.rules.as_slice());
        }
        // Markers: 300 has none of its own (no every-protocol entry), 400's is its allow.
        let m300 = find(&e, 300, 0, 0, 0);
        assert!(m300.is_marker());
        assert_eq!(m300.value.flags, POLICY_HAS_EXACT | POLICY_HAS_PORTS);
        let m400 = find(&e, 400, 0, 0, 0);
        assert_eq!(m400.value.verdict, VERDICT_ALLOW);
        assert_eq!(
            m400.value.flags & !POLICY_FINAL,
            POLICY_HAS_EXACT | POLICY_HAS_PORTS
        );
        let m0 = find(&e, 0, 0, 0, 0);
        assert!(m0.is_marker() && m0.value.flags == POLICY_HAS_RANGES);
        // Hash: 300 (3 + marker), 0 (marker), 400 (3); trie: the range.
        assert_eq!((e.range_len(), e.hash_len()), (1, 8));
    }

    #[test]
    fn markers_say_when_the_wildcard_identity_has_no_entries() {
        let mut p = EndpointPolicy::default();
        put(&mut p, 300, 6, 80, 16, MapVerdict::Allow);
        put_dir(
            &mut p,
            300,
            Direction::Egress,
            (6, 80, 16),
            MapVerdict::Allow,
        );
        // The wildcard identity has an egress entry only.
        put_dir(
            &mut p,
            0,
            Direction::Egress,
            (17, 53, 16),
            MapVerdict::Allow,
        );
        let e = EndpointEntries::build(&p);
        let marker = |id: u32, d: Direction| {
            e.policy
                .iter()
                .find(|x| x.identity == id && x.direction == dir_code(d) && x.protocol == 0)
                .expect("marker")
                .value
                .flags
        };
        assert_ne!(marker(300, Direction::Ingress) & POLICY_NO_WILDCARD, 0);
        assert_eq!(marker(300, Direction::Egress) & POLICY_NO_WILDCARD, 0);
        // The wildcard identity's own markers never carry it.
        assert_eq!(marker(0, Direction::Egress) & POLICY_NO_WILDCARD, 0);
    }
}
