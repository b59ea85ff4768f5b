//! Looking a flow up in an endpoint's map state, the way the datapath does: a deny at any
//! covering key (or a deny address entry) wins; otherwise the most specific allow (longest port prefix, then specific
//! protocol, then specific identity) decides, then address (`ipBlock`) entries.

use super::ports::port_in;
use ir::{Direction, EndpointPolicy, MapEntry, MapKey, MapVerdict, NumericIdentity, RuleId};
use std::net::IpAddr;

/// The outcome of one direction's lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The endpoint is not selected by any rule in this direction: everything is allowed.
    NotEnforced,
    /// An entry decided; `rules` are the entry's contributing rules.
    Entry {
        verdict: MapVerdict,
        rules: Vec<RuleId>,
        key: MapKey,
    },
    /// An address entry allowed it.
    Address {
        verdict: MapVerdict,
        rules: Vec<RuleId>,
    },
    /// Enforced and nothing allows it.
    NoEntry,
}

impl Lookup {
    pub fn allowed(&self) -> bool {
        match self {
            Lookup::NotEnforced => true,
            Lookup::Entry { verdict, .. } | Lookup::Address { verdict, .. } => {
                *verdict != MapVerdict::Deny
            }
            Lookup::NoEntry => false,
        }
    }
}

/// The audit-mode rules that would deny what `l`, a lookup in `pol`, lets pass: the deciding
/// entry's audited rules (`MapEntry::audited`); empty when it is not audited or denies.
pub fn audited_by<'a>(pol: &'a EndpointPolicy, l: &Lookup) -> &'a [RuleId] {
    match l {
        Lookup::Entry { key, .. } => pol
            .entries
            .get(key)
            .filter(|e| e.verdict != MapVerdict::Deny)
            .map_or(&[], |e| &e.audited),
        _ => &[],
    }
}

/// Looks up a connection from/to `peer` (identity, and address when known) on `protocol`/`port`.
pub fn lookup(
    pol: &EndpointPolicy,
    direction: Direction,
    peer: NumericIdentity,
    peer_addr: Option<IpAddr>,
    protocol: u8,
    port: u16,
) -> Lookup {
    let enforced = match direction {
        Direction::Ingress => pol.ingress_enforced,
        Direction::Egress => pol.egress_enforced,
    };
    if !enforced {
        return Lookup::NotEnforced;
    }
    let mut best: Option<(MapKey, &MapEntry)> = None;
    let rank = |k: &MapKey| {
        (
            k.port_prefix_len,
            k.protocol != 0,
            k.identity != NumericIdentity::WILDCARD,
        )
    };
    for identity in [peer, NumericIdentity::WILDCARD] {
        for proto in [protocol, 0] {
            for len in 0..=16u8 {
                let base = if len == 0 {
                    0
                } else {
                    port & !(u16::MAX.checked_shr(len as u32).unwrap_or(0))
                };
                let key = MapKey {
                    identity,
                    direction,
                    protocol: proto,
                    port: base,
                    port_prefix_len: len,
                };
                if let Some(e) = pol.entries.get(&key) {
                    if e.verdict == MapVerdict::Deny {
                        return Lookup::Entry {
                            verdict: e.verdict,
                            rules: e.rules.clone(),
                            key,
                        };
                    }
                    if best.is_none_or(|(b, _)| rank(&key) > rank(&b)) {
                        best = Some((key, e));
                    }
                }
            }
        }
    }
    let addr_hits: Vec<&MapEntry> = match peer_addr {
        None => Vec::new(),
        Some(addr) => pol
            .addr_entries
            .iter()
            .filter(|(k, _)| {
                k.direction == direction
                    && k.prefix.contains(&addr)
                    && (k.protocol == 0 || k.protocol == protocol)
                    && port_in(k.port, k.port_prefix_len, port)
            })
            .map(|(_, e)| e)
            .collect(),
    };
    if let Some(e) = addr_hits.iter().find(|e| e.verdict == MapVerdict::Deny) {
        return Lookup::Address {
            verdict: e.verdict,
            rules: e.rules.clone(),
        };
    }
    if let Some((k, e)) = best {
        return Lookup::Entry {
            verdict: e.verdict,
            rules: e.rules.clone(),
            key: k,
        };
    }
    if let Some(e) = addr_hits.first() {
        return Lookup::Address {
            verdict: e.verdict,
            rules: e.rules.clone(),
        };
    }
    Lookup::NoEntry
}
