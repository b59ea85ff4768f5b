//! Per-endpoint policy map state: what the datapath enforces for one endpoint.
//!
//! A key is (peer identity, direction, protocol, port prefix). Port ranges are split into
//! aligned power-of-two blocks (`port`/`port_prefix_len`), as Cilium does, so the datapath
//! does at most a fixed number of lookups per packet whatever the number of rules.
//! Identity 0 and protocol 0 are wildcards. Lookup order in the datapath: exact key, then
//! wildcarded port, then wildcarded identity, then both; a deny found at any step wins over an
//! allow (deny entries are also installed at every more specific key they cover).

use crate::identity::NumericIdentity;
use crate::net::IpNet;
use crate::rule::{Direction, RuleId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MapKey {
    pub identity: NumericIdentity,
    pub direction: Direction,
    /// IANA protocol number; 0 = every protocol.
    pub protocol: u8,
    /// First port of the block (host order); ICMP type for ICMP.
    pub port: u16,
    /// Number of leading port bits that must match: 16 = exactly `port`, 0 = every port.
    pub port_prefix_len: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MapVerdict {
    Allow,
    Deny,
    /// Allow, redirected to the L7 proxy listening on this port.
    Redirect {
        proxy_port: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    pub verdict: MapVerdict,
    /// Every rule that contributed, for `trace` and the datapath's rule table.
    pub rules: Vec<RuleId>,
    /// Audit mode: rules (of policies in audit mode) that would deny what this entry passes.
    /// The datapath passes it and reports the verdict as audited, naming the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audited: Vec<RuleId>,
}

/// Address-matched entry (NetworkPolicy `ipBlock` semantics: matches pod addresses too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddrKey {
    pub direction: Direction,
    pub prefix: IpNet,
    pub protocol: u8,
    pub port: u16,
    pub port_prefix_len: u8,
}

/// What one endpoint enforces.
///
/// Invariants, established by `compiler::policy` (full and incremental computation alike) and
/// relied on by `codegen::entries`, the datapath and `compiler::policy`'s lookup:
/// - Every key's port block is aligned: `port_prefix_len <= 16` and the low
///   `16 - port_prefix_len` bits of `port` are zero (every port: port 0, length 0). A port range
///   is the fewest such blocks covering it.
/// - Deny precedence in `entries`: wherever a deny key and a non-deny key overlap, the key of
///   their overlap (the specific identity of the two, the narrower protocol and port block)
///   holds a deny. A lookup that stops at the most specific key it finds therefore never
///   returns an allow that hides a deny.
/// - Deny precedence in `addr_entries`, likewise: wherever a deny and a non-deny address key
///   overlap (one prefix contains the other and the port parts overlap), the key of the longer
///   prefix and the narrower protocol and port block holds a deny, so the datapath's address
///   class of a prefix (the entries of every prefix containing it) never holds an allow more
///   specific than one of its denies.
/// - `compiler::policy::deny::propagate` is the only place that establishes both (deny
///   push-down has one owner): `codegen::entries` encodes the map state without changing any
///   verdict, so what the datapath enforces is this map state.
/// - Colliding contributions are merged into one entry: deny over redirect over allow, and each
///   entry's `rules` are sorted ascending without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPolicy {
    /// Endpoint name (`namespace/name`).
    pub endpoint: String,
    pub identity: NumericIdentity,
    /// Whether any rule selects the endpoint in that direction (default allow otherwise).
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    pub entries: BTreeMap<MapKey, MapEntry>,
    /// Address-based entries; an `AddrKey` with no entry under a longer prefix falls through to
    /// the identity entries. Empty for endpoints without `ipBlock` peers.
    pub addr_entries: BTreeMap<AddrKey, MapEntry>,
}

impl Default for NumericIdentity {
    fn default() -> Self {
        NumericIdentity::WILDCARD
    }
}
