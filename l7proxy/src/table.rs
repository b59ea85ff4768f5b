//! The proxy's policy input: for every endpoint, its map state (`ir::EndpointPolicy`, computed by
//! `compiler::policy`) and, for each proxy-redirect key, the HTTP rules that apply there compiled
//! into an [`HttpMatcher`]. Built once per policy change; a request's (endpoint, direction,
//! port, peer identity) is looked up the way the datapath looks a flow up
//! (`compiler::policy::lookup`), so the deciding key is the one that redirected the connection.
//! `compiler::trace` is not used: it stays an independent check (tests/differential.rs).
//!
//! A build either succeeds for every endpoint or fails listing every refused pattern with its
//! rule's file:line:column; the table in use is then left as it was ([`SharedTable`]).

use crate::dns::{DnsRules, NameMatcher};
use crate::matcher::{HttpMatcher, Limits, PatternError};
use arc_swap::ArcSwap;
use compiler::cluster::{ports::resolve, Cluster};
use compiler::policy::{lookup, ports::port_keys, ports::PortKey, Lookup, PolicyEngine};
use ir::{
    mapstate::AddrKey, Action, Direction, EndpointPolicy, HttpRule, L7Rules, MapKey, MapVerdict,
    NamedPort, NumericIdentity, PolicySet, Protocol, RuleId,
};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Why a table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("endpoint {0:?} is not in the policy engine")]
    UnknownEndpoint(String),
    #[error("endpoint id {0} is given twice")]
    DuplicateId(u16),
    #[error("{}", refused_list(.0))]
    Refused(Vec<RefusedPattern>),
}

/// A pattern refused at build, with the rule it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefusedPattern {
    /// `file:line:column` of the rule.
    pub location: String,
    /// The rule as every output names it (`r3 CiliumNetworkPolicy default/rule1 ingress[0] (…)`).
    pub rule: String,
    pub field: &'static str,
    pub pattern: String,
    pub reason: String,
}

/// `file:line:column: HTTP path `PATTERN` of RULE refused: REASON`.
impl std::fmt::Display for RefusedPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: HTTP {} `{}` of {} refused: {}",
            self.location, self.field, self.pattern, self.rule, self.reason
        )
    }
}

fn refused_list(list: &[RefusedPattern]) -> String {
    let lines: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!(
        "{} HTTP pattern(s) refused; the policy is not applied:\n{}",
        list.len(),
        lines.join("\n")
    )
}

/// What the proxy does with the requests of one connection.
#[derive(Clone, Debug)]
pub enum Decision {
    /// No L7 rule at the deciding key (or the endpoint does not enforce the direction).
    AllowAll,
    /// The connection is not allowed at L3/L4 (any more), or the endpoint is unknown.
    DenyAll(DenyReason),
    /// The HTTP rules at the deciding redirect key.
    Rules(Arc<HttpMatcher>),
    /// The DNS rules (`rules.dns`) at the deciding redirect key.
    Dns(Arc<DnsRules>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    UnknownEndpoint,
    /// The map state denies the connection (deny rule or no allowing entry).
    Policy,
    /// The deciding key redirects to a proxy of another kind (DNS for HTTP, or HTTP for DNS).
    OtherProxy,
}

/// A connection as the proxy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub endpoint: u16,
    pub direction: Direction,
    pub peer: NumericIdentity,
    /// The peer's address, for `ipBlock` (address) entries.
    pub peer_addr: Option<IpAddr>,
    /// IP protocol number ([`TCP`] or [`UDP`]).
    pub protocol: u8,
    /// The destination port (the endpoint's for ingress, the peer's for egress).
    pub port: u16,
}

#[derive(Clone, Debug)]
pub struct Resolved {
    pub decision: Decision,
    pub endpoint_identity: NumericIdentity,
}

/// The L7 rules of one redirect key.
#[derive(Clone)]
enum KeyRules {
    Http(Arc<HttpMatcher>),
    Dns(Arc<DnsRules>),
}

impl KeyRules {
    fn decision(&self) -> Decision {
        match self {
            KeyRules::Http(m) => Decision::Rules(m.clone()),
            KeyRules::Dns(m) => Decision::Dns(m.clone()),
        }
    }
}

struct EndpointTable {
    policy: EndpointPolicy,
    matchers: HashMap<MapKey, KeyRules>,
    addr_matchers: Vec<(AddrKey, KeyRules)>,
}

/// Every endpoint's redirect keys with their compiled HTTP rules.
#[derive(Default)]
pub struct PolicyTable {
    endpoints: HashMap<u16, EndpointTable>,
}

/// The contributions at one key: (rule, port rule index) pairs, and whether one of them is an
/// empty `http` / `dns` block (which allows every request / query).
type Contributions = (Vec<(RuleId, usize)>, bool);

/// The kind of L7 rules a redirect key has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Dns,
}

/// Whether `l7` is of `kind`, and then whether it is empty.
fn of_kind(l7: &L7Rules, kind: Kind) -> Option<bool> {
    match (l7, kind) {
        (L7Rules::Http(h), Kind::Http) => Some(h.is_empty()),
        (L7Rules::Dns(d), Kind::Dns) => Some(d.is_empty()),
        _ => None,
    }
}

struct Builder<'a> {
    policy: &'a PolicySet,
    cluster: &'a Cluster,
    limits: &'a Limits,
    /// Matchers by contributions: keys sharing rules (one per peer identity) share a matcher.
    cache: HashMap<Contributions, Arc<HttpMatcher>>,
    errors: BTreeSet<(RuleId, &'static str, String, String)>,
}

impl Builder<'_> {
    /// The `kind` port rules of `rules` that produce the key (`peer` resolves egress named
    /// ports).
    fn contributions(
        &self,
        kind: Kind,
        rules: &[RuleId],
        own: &[NamedPort],
        dir: Direction,
        peer: NumericIdentity,
        key: PortKey,
    ) -> Contributions {
        let mut out = Vec::new();
        let mut empty = false;
        for id in rules {
            let r = self.policy.rule(*id);
            if r.action != Action::Allow || r.direction != dir {
                continue;
            }
            for (i, pr) in r.ports.iter().enumerate() {
                let Some(is_empty) = pr.l7.as_ref().and_then(|l7| of_kind(l7, kind)) else {
                    continue;
                };
                let named = |name: &str, protos: &[Protocol]| match dir {
                    Direction::Ingress => resolve(own, name, protos).collect(),
                    Direction::Egress => self.cluster.named_ports_of_identity(peer, name, protos),
                };
                if port_keys(pr, &named).contains(&key) {
                    out.push((*id, i));
                    empty |= is_empty;
                }
            }
        }
        (out, empty)
    }

    /// The rules of a redirect key with `rules` (the deciding entry's), as for [`Self::contributions`].
    fn key_rules(
        &mut self,
        rules: &[RuleId],
        own: &[NamedPort],
        dir: Direction,
        peer: NumericIdentity,
        key: PortKey,
    ) -> Option<KeyRules> {
        let http = self.contributions(Kind::Http, rules, own, dir, peer, key);
        if !http.0.is_empty() {
            return self.matcher(http).map(KeyRules::Http);
        }
        let dns = self.contributions(Kind::Dns, rules, own, dir, peer, key);
        if dns.0.is_empty() {
            return None;
        }
        Some(KeyRules::Dns(Arc::new(self.names(&dns))))
    }

    /// The `rules.dns` of the contributions, rule by rule (an empty block allows every name).
    fn names(&self, c: &Contributions) -> DnsRules {
        let mut out = DnsRules::default();
        for (id, i) in &c.0 {
            if let Some(L7Rules::Dns(rules)) = &self.policy.rule(*id).ports[*i].l7 {
                let names = if rules.is_empty() {
                    NameMatcher::all()
                } else {
                    NameMatcher::new(rules)
                };
                out.push(*id, names);
            }
        }
        out
    }

    fn matcher(&mut self, c: Contributions) -> Option<Arc<HttpMatcher>> {
        if let Some(m) = self.cache.get(&c) {
            return Some(m.clone());
        }
        let rules: Vec<(RuleId, &HttpRule)> = if c.1 {
            Vec::new()
        } else {
            c.0.iter()
                .flat_map(|(id, i)| {
                    let http = match &self.policy.rule(*id).ports[*i].l7 {
                        Some(L7Rules::Http(h)) => h.as_slice(),
                        _ => &[],
                    };
                    http.iter().map(move |r| (*id, r))
                })
                .collect()
        };
        match HttpMatcher::compile(&rules, self.limits) {
            Ok(m) => {
                let m = Arc::new(m);
                self.cache.insert(c, m.clone());
                Some(m)
            }
            Err(errs) => {
                for PatternError {
                    rule_id,
                    field,
                    pattern,
                    reason,
                } in errs
                {
                    self.errors.insert((rule_id, field, pattern, reason));
                }
                None
            }
        }
    }
}

impl PolicyTable {
    /// Builds the table of `endpoints` (agent endpoint id, endpoint name in the engine).
    pub fn build(
        engine: &PolicyEngine,
        endpoints: &[(u16, &str)],
        limits: &Limits,
    ) -> Result<Self, TableError> {
        let mut b = Builder {
            policy: &engine.policy,
            cluster: &engine.cluster,
            limits,
            cache: HashMap::new(),
            errors: BTreeSet::new(),
        };
        let mut table = PolicyTable::default();
        for (id, name) in endpoints {
            let policy = engine
                .policy_of(name)
                .ok_or_else(|| TableError::UnknownEndpoint(name.to_string()))?
                .clone();
            let own: &[NamedPort] = engine
                .cluster
                .endpoint(name)
                .map(|e| e.ports.as_slice())
                .unwrap_or(&[]);
            let mut matchers = HashMap::new();
            for (key, entry) in &policy.entries {
                if !matches!(entry.verdict, MapVerdict::Redirect { .. }) {
                    continue;
                }
                let pk = PortKey {
                    protocol: key.protocol,
                    port: key.port,
                    prefix_len: key.port_prefix_len,
                };
                if let Some(m) = b.key_rules(&entry.rules, own, key.direction, key.identity, pk) {
                    matchers.insert(*key, m);
                }
            }
            let mut addr_matchers = Vec::new();
            for (key, entry) in &policy.addr_entries {
                if !matches!(entry.verdict, MapVerdict::Redirect { .. }) {
                    continue;
                }
                let pk = PortKey {
                    protocol: key.protocol,
                    port: key.port,
                    prefix_len: key.port_prefix_len,
                };
                let wildcard = NumericIdentity::WILDCARD;
                if let Some(m) = b.key_rules(&entry.rules, own, key.direction, wildcard, pk) {
                    addr_matchers.push((*key, m));
                }
            }
            let ep = EndpointTable {
                policy,
                matchers,
                addr_matchers,
            };
            if table.endpoints.insert(*id, ep).is_some() {
                return Err(TableError::DuplicateId(*id));
            }
        }
        if !b.errors.is_empty() {
            let policy = &engine.policy;
            let list = b
                .errors
                .into_iter()
                .map(|(id, field, pattern, reason)| RefusedPattern {
                    location: policy.location(id),
                    rule: policy.describe_rule(id),
                    field,
                    pattern,
                    reason,
                })
                .collect();
            return Err(TableError::Refused(list));
        }
        Ok(table)
    }

    /// Number of endpoints in the table.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The decision for a connection, as the datapath looks the flow up.
    pub fn resolve(&self, flow: &Flow) -> Resolved {
        let Some(ep) = self.endpoints.get(&flow.endpoint) else {
            return Resolved {
                decision: Decision::DenyAll(DenyReason::UnknownEndpoint),
                endpoint_identity: NumericIdentity::WILDCARD,
            };
        };
        let found = lookup(
            &ep.policy,
            flow.direction,
            flow.peer,
            flow.peer_addr,
            flow.protocol,
            flow.port,
        );
        let decision = match found {
            Lookup::NotEnforced => Decision::AllowAll,
            Lookup::NoEntry => Decision::DenyAll(DenyReason::Policy),
            Lookup::Entry { verdict, key, .. } => match verdict {
                MapVerdict::Allow => Decision::AllowAll,
                MapVerdict::Deny => Decision::DenyAll(DenyReason::Policy),
                MapVerdict::Redirect { .. } => match ep.matchers.get(&key) {
                    Some(m) => m.decision(),
                    None => Decision::DenyAll(DenyReason::OtherProxy),
                },
            },
            Lookup::Address { verdict, .. } => match verdict {
                MapVerdict::Allow => Decision::AllowAll,
                MapVerdict::Deny => Decision::DenyAll(DenyReason::Policy),
                MapVerdict::Redirect { .. } => {
                    let addr = flow.peer_addr;
                    ep.addr_matchers
                        .iter()
                        .find(|(k, _)| {
                            k.direction == flow.direction
                                && addr.is_some_and(|a| k.prefix.contains(&a))
                                && PortKey {
                                    protocol: k.protocol,
                                    port: k.port,
                                    prefix_len: k.port_prefix_len,
                                }
                                .covers(flow.protocol, flow.port)
                        })
                        .map_or(Decision::DenyAll(DenyReason::OtherProxy), |(_, m)| {
                            m.decision()
                        })
                }
            },
        };
        Resolved {
            decision,
            endpoint_identity: ep.policy.identity,
        }
    }
}

/// The table in use, replaced atomically: a request resolves against the table current when its
/// head arrives, so a swap applies from the next request on open connections too.
#[derive(Clone, Default)]
pub struct SharedTable {
    inner: Arc<ArcSwap<PolicyTable>>,
}

impl SharedTable {
    pub fn new(table: PolicyTable) -> Self {
        SharedTable {
            inner: Arc::new(ArcSwap::from_pointee(table)),
        }
    }

    pub fn store(&self, table: PolicyTable) {
        self.inner.store(Arc::new(table));
    }

    pub fn load(&self) -> Arc<PolicyTable> {
        self.inner.load_full()
    }
}
