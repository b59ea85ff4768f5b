//! Endpoint configuration for code generation: who the endpoint is (id, identity, addresses),
//! map sizes, and the features its program needs, each with the rules that called for it.

use ir::{Direction, EndpointPolicy, MapVerdict, NumericIdentity, PolicySet, RuleId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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

/// Map sizes (entries), configurable per compilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapSizes {
    pub policy_map: u32,
    pub ct_map: u32,
    pub addr_map: u32,
    pub ipcache_map: u32,
    /// Ring buffer bytes (power of two, at least one page).
    pub events_ringbuf: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            policy_map: 16_384,
            ct_map: 65_536,
            addr_map: 1_024,
            ipcache_map: 512_000,
            events_ringbuf: 256 * 1024,
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
}

/// One `#define` of the endpoint header, with why it is on or off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLine {
    pub define: &'static str,
    pub enabled: bool,
    pub why: String,
}

impl Features {
    /// The features `policy` needs on an endpoint configured as `ep`, with explanations naming
    /// the contributing rules (by file:line when `set` is given).
    pub fn derive(
        ep: &EndpointConfig,
        policy: &EndpointPolicy,
        set: Option<&PolicySet>,
    ) -> (Features, Vec<FeatureLine>) {
        let no_addr = ep.ipv4.is_none() && ep.ipv6.is_none();
        let rules_where = |dir: Option<Direction>, pred: &dyn Fn(&MapVerdict) -> bool| {
            let mut ids = BTreeSet::new();
            for (k, e) in &policy.entries {
                if dir.is_none_or(|d| d == k.direction) && pred(&e.verdict) {
                    ids.extend(e.rules.iter().copied());
                }
            }
            for (k, e) in &policy.addr_entries {
                if dir.is_none_or(|d| d == k.direction) && pred(&e.verdict) {
                    ids.extend(e.rules.iter().copied());
                }
            }
            ids
        };
        let any = |_: &MapVerdict| true;
        let redirect = |v: &MapVerdict| matches!(v, MapVerdict::Redirect { .. });
        let addr_rules: BTreeSet<RuleId> = policy
            .addr_entries
            .values()
            .flat_map(|e| e.rules.iter().copied())
            .collect();
        let f = Features {
            ipv4: ep.ipv4.is_some() || no_addr,
            ipv6: ep.ipv6.is_some() || no_addr,
            sip_check: !no_addr,
            ingress_policy: policy.ingress_enforced,
            egress_policy: policy.egress_enforced,
            ct: policy.ingress_enforced || policy.egress_enforced,
            l7_redirect: !rules_where(None, &redirect).is_empty(),
            addr_match: !policy.addr_entries.is_empty(),
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
            let ids = rules_where(Some(dir), &any);
            if ids.is_empty() {
                format!(
                    "{} enforced; no rule allows anything (default deny)",
                    dir.name()
                )
            } else {
                format!("{} policy from {}", dir.name(), describe_rules(&ids, set))
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
                    format!(
                        "L7 proxy redirects from {}",
                        describe_rules(&rules_where(None, &redirect), set)
                    )
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
        ]
    }
}

/// `r3 CiliumNetworkPolicy default/rule1 ingress[0] @ file.yaml:7:5, …` (at most 6 rules named).
pub fn describe_rules(ids: &BTreeSet<RuleId>, set: Option<&PolicySet>) -> String {
    const MAX: usize = 6;
    let mut parts: Vec<String> = ids
        .iter()
        .take(MAX)
        .map(|id| describe_rule(*id, set))
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
