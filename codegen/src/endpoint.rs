//! Endpoint configuration for code generation: who the endpoint is (id, identity, addresses),
//! map sizes, and the features its program needs, each with the rules that called for it.

use ir::{Direction, EndpointPolicy, MapVerdict, NumericIdentity, PolicySet, RuleId};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Who the endpoint is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    /// Endpoint id (Cilium's endpoint id; 1..=65535 in practice).
    pub id: u32,
    /// `namespace/name`.
    pub name: String,
    pub identity: NumericIdentity,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// Map sizes (entries) and the flow cache's shape, configurable per compilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapSizes {
    pub policy_map: u32,
    /// Entries of the node's TCP connection-tracking tables (`--bpf-ct-global-tcp-max`;
    /// `cp_ct4_tcp`, `cp_ct6_tcp`; every endpoint's objects must agree, or the pin check
    /// replaces the node's tables).
    pub ct_tcp: u32,
    /// Entries of the node's tables of other protocols (`--bpf-ct-global-any-max`;
    /// `cp_ct4_any`, `cp_ct6_any`).
    pub ct_any: u32,
    pub addr_map: u32,
    pub ipcache_map: u32,
    /// Ring buffer bytes (power of two, at least one page).
    pub events_ringbuf: u32,
    /// Flow-cache slots per CPU and address family in front of connection tracking (a power
    /// of two; 0 = no flow cache).
    pub flow_cache: u32,
    /// Whether the flow cache also remembers denied new connections (deny slots). They use
    /// BPF atomics with fetch, which need Linux 5.12; without them the program runs on 5.10.
    #[serde(default = "yes")]
    pub deny_cache: bool,
}

fn yes() -> bool {
    true
}

/// The fewest entries an endpoint's `cp_policy` is created with ([`MapSizes::policy_capacity`]):
/// a 16 KiB bucket array, room for an endpoint of 512 entries to double without a reload.
pub const POLICY_MIN_CAPACITY: u32 = 1_024;

impl MapSizes {
    /// The `max_entries` an endpoint's `cp_policy` is created with when it must hold `needed`
    /// entries: twice that (room for live updates without a reload), rounded up to a power of
    /// two (the hash's bucket count is rounded so anyway), at least [`POLICY_MIN_CAPACITY`] and
    /// at most `policy_map`, the most any endpoint may have (`--policy-map-size`, what objects
    /// carry as `POLICY_MAP_SIZE`). The kernel allocates the bucket array (16 bytes a bucket)
    /// at creation even without preallocation, so this, not `policy_map`, is what an
    /// endpoint's policy map costs before its entries (Documentation/performance.md).
    pub fn policy_capacity(&self, needed: usize) -> u32 {
        let want = (needed as u64)
            .saturating_mul(2)
            .max(u64::from(POLICY_MIN_CAPACITY))
            .next_power_of_two();
        want.min(u64::from(self.policy_map)) as u32
    }

    /// Whether the programs have deny slots: asked for, and a flow cache to hold them.
    pub fn deny_slots(&self) -> bool {
        self.deny_cache && self.flow_cache > 0
    }

    /// The oldest Linux the objects built with these sizes load on: 5.12 with the flow cache's
    /// deny slots (BPF atomics with fetch), else 5.10 (Documentation/datapath.md).
    pub fn min_kernel(&self) -> &'static str {
        if self.deny_slots() {
            "5.12"
        } else {
            "5.10"
        }
    }
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            policy_map: 16_384,
            // Small fixed sizes for libraries and tests; the CLI derives the node's from its
            // memory (crate::ctsize).
            ct_tcp: 65_536,
            ct_any: 32_768,
            addr_map: 1_024,
            ipcache_map: 512_000,
            events_ringbuf: 256 * 1024,
            flow_cache: 256,
            deny_cache: true,
        }
    }
}

/// The compile-time switches of one endpoint program. Two endpoints with equal `Features` and
/// `MapSizes` share one templated object.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Features {
    pub ipv4: bool,
    pub ipv6: bool,
    pub sip_check: bool,
    pub ingress_policy: bool,
    pub egress_policy: bool,
    pub ct: bool,
    pub l7_redirect: bool,
    pub addr_match: bool,
    /// Port ranges (blocks of 1..15 port bits) in the policy: the `cp_policy_rng` trie.
    pub port_ranges: bool,
}

/// One `#define` of the endpoint header, with why it is on or off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLine {
    pub define: &'static str,
    pub enabled: bool,
    pub why: String,
}

impl Features {
    /// Every feature on: the largest program (verifier and compatibility tests).
    pub fn all() -> Features {
        Features {
            ipv4: true,
            ipv6: true,
            sip_check: true,
            ingress_policy: true,
            egress_policy: true,
            ct: true,
            l7_redirect: true,
            addr_match: true,
            port_ranges: true,
        }
    }

    /// The features `policy` needs on an endpoint configured as `ep`, with explanations naming
    /// the contributing rules (by file:line when `set` is given).
    pub fn derive(
        ep: &EndpointConfig,
        policy: &EndpointPolicy,
        set: Option<&PolicySet>,
    ) -> (Features, Vec<FeatureLine>) {
        let no_addr = ep.ipv4.is_none() && ep.ipv6.is_none();
        // One pass over the entries: the rules behind each feature (bit sets by rule id).
        let mut by_dir = [RuleSet::default(), RuleSet::default()];
        let mut redirect = RuleSet::default();
        let mut addr_rules = RuleSet::default();
        let mut range_rules = RuleSet::default();
        let mut note = |dir: Direction, plen: u8, e: &ir::MapEntry, addr: bool| {
            let d = usize::from(dir == Direction::Egress);
            by_dir[d].extend(&e.rules);
            if matches!(e.verdict, MapVerdict::Redirect { .. }) {
                redirect.extend(&e.rules);
            }
            if addr {
                addr_rules.extend(&e.rules);
            }
            if (1..16).contains(&plen) {
                range_rules.extend(&e.rules);
            }
        };
        for (k, e) in &policy.entries {
            note(k.direction, k.port_prefix_len, e, false);
        }
        for (k, e) in &policy.addr_entries {
            note(k.direction, k.port_prefix_len, e, true);
        }
        let f = Features {
            ipv4: ep.ipv4.is_some() || no_addr,
            ipv6: ep.ipv6.is_some() || no_addr,
            sip_check: !no_addr,
            ingress_policy: policy.ingress_enforced,
            egress_policy: policy.egress_enforced,
            ct: policy.ingress_enforced || policy.egress_enforced,
            l7_redirect: !redirect.is_empty(),
            addr_match: !policy.addr_entries.is_empty(),
            port_ranges: !range_rules.is_empty(),
        };
        let family = |has: bool, name: &str| match (has, no_addr) {
            (_, true) => format!("{name}: endpoint addresses unknown, both families enabled"),
            (true, false) => format!("{name}: the endpoint has an {name} address"),
            (false, false) => format!(
                "the endpoint has no {name} address ({name} packets are dropped, reason 139)"
            ),
        };
        let enforced = |on: bool, dir: Direction| {
            if !on {
                return format!(
                    "no rule selects the endpoint for {} (default allow)",
                    dir.name()
                );
            }
            let ids = &by_dir[usize::from(dir == Direction::Egress)];
            if ids.is_empty() {
                format!(
                    "{} enforced; no rule allows anything (default deny)",
                    dir.name()
                )
            } else {
                format!("{} policy from {}", dir.name(), describe_rules(ids, set))
            }
        };
        let lines = vec![
            FeatureLine {
                define: "ENABLE_IPV4",
                enabled: f.ipv4,
                why: family(ep.ipv4.is_some(), "IPv4"),
            },
            FeatureLine {
                define: "ENABLE_IPV6",
                enabled: f.ipv6,
                why: family(ep.ipv6.is_some(), "IPv6"),
            },
            FeatureLine {
                define: "ENABLE_SIP_CHECK",
                enabled: f.sip_check,
                why: if f.sip_check {
                    "packets sent must carry the endpoint's address (reason 132)".into()
                } else {
                    "endpoint addresses unknown".into()
                },
            },
            FeatureLine {
                define: "ENABLE_INGRESS_POLICY",
                enabled: f.ingress_policy,
                why: enforced(f.ingress_policy, Direction::Ingress),
            },
            FeatureLine {
                define: "ENABLE_EGRESS_POLICY",
                enabled: f.egress_policy,
                why: enforced(f.egress_policy, Direction::Egress),
            },
            FeatureLine {
                define: "ENABLE_CT",
                enabled: f.ct,
                why: if f.ct {
                    "connection tracking: replies of allowed connections pass".into()
                } else {
                    "no direction enforced".into()
                },
            },
            FeatureLine {
                define: "ENABLE_L7_REDIRECT",
                enabled: f.l7_redirect,
                why: if f.l7_redirect {
                    format!("L7 proxy redirects from {}", describe_rules(&redirect, set))
                } else {
                    "no L7 rule applies".into()
                },
            },
            FeatureLine {
                define: "ENABLE_ADDR_MATCH",
                enabled: f.addr_match,
                why: if f.addr_match {
                    format!(
                        "address-matched (ipBlock) peers from {}",
                        describe_rules(&addr_rules, set)
                    )
                } else {
                    "no ipBlock peer".into()
                },
            },
            FeatureLine {
                define: "ENABLE_PORT_RANGES",
                enabled: f.port_ranges,
                why: if f.port_ranges {
                    format!(
                        "port ranges (cp_policy_rng) from {}",
                        describe_rules(&range_rules, set)
                    )
                } else {
                    "no port range: exact ports and wildcards only (hash lookups)".into()
                },
            },
        ];
        (f, lines)
    }

    /// The same lines with configuration-only explanations (for the shared template header).
    pub fn template_lines(&self) -> Vec<FeatureLine> {
        let l = |define, enabled| FeatureLine {
            define,
            enabled,
            why: "set by the template configuration".into(),
        };
        vec![
            l("ENABLE_IPV4", self.ipv4),
            l("ENABLE_IPV6", self.ipv6),
            l("ENABLE_SIP_CHECK", self.sip_check),
            l("ENABLE_INGRESS_POLICY", self.ingress_policy),
            l("ENABLE_EGRESS_POLICY", self.egress_policy),
            l("ENABLE_CT", self.ct),
            l("ENABLE_L7_REDIRECT", self.l7_redirect),
            l("ENABLE_ADDR_MATCH", self.addr_match),
            l("ENABLE_PORT_RANGES", self.port_ranges),
        ]
    }
}

/// A set of rule ids as a bit set: O(1) insertion, iteration in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    words: Vec<u64>,
    len: usize,
}

impl RuleSet {
    pub fn insert(&mut self, id: RuleId) {
        let (w, b) = (id.0 as usize / 64, id.0 % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        if self.words[w] & (1 << b) == 0 {
            self.words[w] |= 1 << b;
            self.len += 1;
        }
    }
    pub fn extend(&mut self, ids: &[RuleId]) {
        for id in ids {
            self.insert(*id);
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The ids in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = RuleId> + '_ {
        self.words.iter().enumerate().flat_map(|(w, bits)| {
            (0..64)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| RuleId((w * 64 + b) as u32))
        })
    }
}

impl FromIterator<RuleId> for RuleSet {
    fn from_iter<I: IntoIterator<Item = RuleId>>(iter: I) -> Self {
        let mut s = RuleSet::default();
        for id in iter {
            s.insert(id);
        }
        s
    }
}

/// `r3 CiliumNetworkPolicy default/rule1 ingress[0] @ file.yaml:7:5, …` (at most 6 rules named).
pub fn describe_rules(ids: &RuleSet, set: Option<&PolicySet>) -> String {
    const MAX: usize = 6;
    let mut parts: Vec<String> = ids
        .iter()
        .take(MAX)
        .map(|id| describe_rule(id, set))
        .collect();
    if ids.len() > MAX {
        parts.push(format!("and {} more", ids.len() - MAX));
    }
    parts.join(", ")
}

/// One rule by id, kind, name, item and location (`r{id}` alone without the policy set).
pub fn describe_rule(id: RuleId, set: Option<&PolicySet>) -> String {
    match set {
        Some(s) if (id.0 as usize) < s.rules.len() => s.describe_rule(id),
        _ => format!("r{}", id.0),
    }
}
