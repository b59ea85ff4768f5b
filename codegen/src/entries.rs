//! Turns an `ir::EndpointPolicy` and the `ir::IpCache` into the exact kernel map entries.
//!
//! - Policy keys become LPM keys: protocol 0 (every protocol) has prefix 40 and, when it carries
//!   a port, is expanded to TCP, UDP and SCTP (Cilium's `ANY`); otherwise prefix 48 + port bits.
//! - Deny push-down: an allow whose key is covered by a shorter deny of the same identity and
//!   direction is installed as that deny, so the longest match of one identity never hides a
//!   deny (the datapath then only combines the identity, address-class and wildcard lookups).
//! - Address entries (NetworkPolicy ipBlock): each distinct (direction, prefix) becomes an
//!   address class `ADDR_CLASS_BIT | n` in `cp_addr`; the class's policy entries are those of
//!   every prefix containing it (the LPM lookup only returns the longest prefix).
//! - Colliding keys merge: deny over redirect over allow; rules are kept in order.

use crate::layout::*;
use ir::{Direction, EndpointPolicy, IpCache, IpNet, MapEntry, MapVerdict, RuleId};
use std::collections::BTreeMap;

/// Every entry one endpoint's maps hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointEntries {
    /// Policy map entries, with every rule that contributed (the value names the first).
    pub policy: BTreeMap<[u8; 12], (PolicyKey, PolicyValue, Vec<RuleId>)>,
    /// Address-class entries (`cp_addr`).
    pub addr: Vec<(AddrKey, AddrValue)>,
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
    PolicyValue {
        verdict,
        proxy_port,
        rule_id: e.rules.first().map(|r| r.0).unwrap_or(RULE_NONE),
        ..Default::default()
    }
}

/// The LPM keys for (identity, direction, protocol, port block).
fn kernel_keys(identity: u32, dir: u8, protocol: u8, port: u16, plen: u8) -> Vec<PolicyKey> {
    let plen = plen.min(16);
    let mask = if plen == 0 {
        0
    } else {
        u16::MAX << (16 - plen)
    };
    let key = |protocol: u8, prefixlen: u32| PolicyKey {
        prefixlen,
        identity,
        direction: dir,
        protocol,
        dport_be: (port & mask).to_be(),
    };
    match (protocol, plen) {
        (0, 0) => vec![PolicyKey {
            dport_be: 0,
            ..key(0, POLICY_KEY_DIR_PREFIX)
        }],
        (0, _) => [6u8, 17, 132]
            .iter()
            .map(|p| key(*p, POLICY_KEY_PROTO_PREFIX + plen as u32))
            .collect(),
        (p, _) => vec![key(p, POLICY_KEY_PROTO_PREFIX + plen as u32)],
    }
}

impl EndpointEntries {
    fn insert(&mut self, key: PolicyKey, entry: &MapEntry) {
        let mut bytes = [0u8; 12];
        bytes.copy_from_slice(key.as_bytes());
        let v = value_of(entry);
        match self.policy.get_mut(&bytes) {
            Some((_, old, rules)) => {
                if verdict_rank(v.verdict) > verdict_rank(old.verdict) {
                    let mut merged = entry.rules.clone();
                    merged.extend(rules.iter().filter(|r| !entry.rules.contains(r)));
                    *old = v;
                    *rules = merged;
                } else {
                    rules.extend(
                        entry
                            .rules
                            .iter()
                            .filter(|r| !rules.contains(r))
                            .copied()
                            .collect::<Vec<_>>(),
                    );
                }
            }
            None => {
                self.policy.insert(bytes, (key, v, entry.rules.clone()));
            }
        }
    }

    /// Every entry of `policy`, in kernel form.
    pub fn build(policy: &EndpointPolicy) -> EndpointEntries {
        let mut out = EndpointEntries::default();
        for (k, e) in &policy.entries {
            for key in kernel_keys(
                k.identity.0,
                dir_code(k.direction),
                k.protocol,
                k.port,
                k.port_prefix_len,
            ) {
                out.insert(key, e);
            }
        }
        // Address classes, most general prefix first so nested prefixes inherit its entries.
        let mut prefixes: Vec<(Direction, IpNet)> = policy
            .addr_entries
            .keys()
            .map(|k| (k.direction, k.prefix))
            .collect();
        prefixes.sort_by_key(|(d, p)| (*d, p.prefix_len(), *p));
        prefixes.dedup();
        for (n, (dir, prefix)) in prefixes.iter().enumerate() {
            let class = ADDR_CLASS_BIT | n as u32;
            let (family, addr) = addr_bytes(prefix);
            out.addr.push((
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
                    for key in kernel_keys(
                        class,
                        dir_code(k.direction),
                        k.protocol,
                        k.port,
                        k.port_prefix_len,
                    ) {
                        out.insert(key, e);
                    }
                }
            }
        }
        out.push_down_denies();
        out
    }

    /// Installs each deny at every more specific key of the same identity it covers.
    fn push_down_denies(&mut self) {
        let denies: Vec<(PolicyKey, PolicyValue, Vec<RuleId>)> = self
            .policy
            .values()
            .filter(|(_, v, _)| v.verdict == VERDICT_DENY)
            .cloned()
            .collect();
        if denies.is_empty() {
            return;
        }
        for (key, value, rules) in self.policy.values_mut() {
            if value.verdict == VERDICT_DENY {
                continue;
            }
            // The most specific covering deny decides (its rule is the one reported).
            let cover = denies
                .iter()
                .filter(|(d, _, _)| covers(d, key))
                .max_by_key(|(d, _, _)| d.prefixlen);
            if let Some((_, dv, drules)) = cover {
                *value = *dv;
                *rules = drules.clone();
            }
        }
    }

    /// Policy map image.
    pub fn policy_image(&self) -> crate::image::MapImage {
        crate::image::MapImage::new(
            crate::image::ImageKind::Policy,
            self.policy.values().map(|(k, v, _)| (k, v)),
            PolicyKey::as_bytes,
            PolicyValue::as_bytes,
        )
    }

    /// Address-class map image.
    pub fn addr_image(&self) -> crate::image::MapImage {
        crate::image::MapImage::new(
            crate::image::ImageKind::Addr,
            self.addr.iter().map(|(k, v)| (k, v)),
            AddrKey::as_bytes,
            AddrValue::as_bytes,
        )
    }
}

/// Does LPM key `a` (shorter) cover `b`?
fn covers(a: &PolicyKey, b: &PolicyKey) -> bool {
    if a.prefixlen >= b.prefixlen || a.identity != b.identity || a.direction != b.direction {
        return false;
    }
    if a.prefixlen <= POLICY_KEY_DIR_PREFIX {
        return true;
    }
    if a.protocol != b.protocol {
        return false;
    }
    let bits = a.prefixlen - POLICY_KEY_PROTO_PREFIX;
    let mask = if bits == 0 {
        0
    } else {
        u16::MAX << (16 - bits)
    };
    u16::from_be(a.dport_be) & mask == u16::from_be(b.dport_be) & mask
}

/// (family, 16 address bytes, IPv4 in the first 4).
pub fn addr_bytes(p: &IpNet) -> (u8, [u8; 16]) {
    let mut addr = [0u8; 16];
    match p {
        IpNet::V4(n) => {
            addr[..4].copy_from_slice(&n.network().octets());
            (FAMILY_IPV4, addr)
        }
        IpNet::V6(n) => (FAMILY_IPV6, n.network().octets()),
    }
}

/// The ipcache's kernel entries.
pub fn ipcache_entries(cache: &IpCache) -> Vec<(IpcacheKey, IpcacheValue)> {
    cache
        .entries
        .iter()
        .map(|(p, id)| {
            let (family, addr) = addr_bytes(p);
            (
                IpcacheKey {
                    prefixlen: 32 + p.prefix_len() as u32,
                    family,
                    pad: [0; 3],
                    addr,
                },
                IpcacheValue {
                    identity: id.0,
                    pad: 0,
                },
            )
        })
        .collect()
}

/// The ipcache map image.
pub fn ipcache_image(cache: &IpCache) -> crate::image::MapImage {
    let e = ipcache_entries(cache);
    crate::image::MapImage::new(
        crate::image::ImageKind::Ipcache,
        e.iter().map(|(k, v)| (k, v)),
        IpcacheKey::as_bytes,
        IpcacheValue::as_bytes,
    )
}
