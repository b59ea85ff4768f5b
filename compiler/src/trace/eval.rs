//! Evaluates a flow on the rules: the source's egress rules, the destination's ingress rules,
//! deny over allow, `fromRequires`/`toRequires`, named ports, and L7 at the deciding port entry.

use super::l7::{l7_allows, HttpRequest, L7Verdict};
use super::party::Party;
use crate::cluster::{ports::resolve, Cluster};
use crate::identity::entity_selects;
use crate::policy::ports::port_keys;
use crate::selcache::{selects, PeerSel};
use ir::{
    Action, Direction, Entity, L7Rules, NamedPort, NumericIdentity, Peer, PeerSet, PolicySet,
    Protocol, Rule, RuleId,
};

/// How one rule selecting the subject relates to the flow.
#[derive(Clone, Debug)]
pub struct RuleMatch {
    pub rule: RuleId,
    pub action: Action,
    /// The peer matched (labels, entity, CIDR or address), requirements included.
    pub l3: bool,
    /// The protocol and port matched (always true for rules without ports).
    pub l4: bool,
    /// The L7 rules of the matching port entry, if any.
    pub l7: Option<L7Rules>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideVerdict {
    /// The party is not a Cilium endpoint (world, CIDR, reserved): it enforces nothing.
    NotManaged,
    /// No rule selects the endpoint in this direction: default allow.
    NotEnforced,
    Allowed,
    /// Denied by a deny rule.
    DeniedByRule,
    /// Enforced and no rule allows it.
    DeniedDefault,
}

impl SideVerdict {
    pub fn allowed(self) -> bool {
        matches!(
            self,
            SideVerdict::NotManaged | SideVerdict::NotEnforced | SideVerdict::Allowed
        )
    }
}

/// One direction's evaluation.
#[derive(Clone, Debug)]
pub struct Side {
    pub direction: Direction,
    pub rules: Vec<RuleMatch>,
    pub verdict: SideVerdict,
    /// Allowed because the host may always reach its endpoints (allow-localhost).
    pub by_localhost: bool,
    pub l7: L7Verdict,
}

/// The whole trace.
#[derive(Clone, Debug)]
pub struct Trace {
    pub src: Party,
    pub dst: Party,
    pub protocol: Protocol,
    pub port: u16,
    /// Labels-only verdict at the destination's ingress (seed §5.3 "L3 verdict").
    pub l3: SideVerdict,
    pub egress: Side,
    pub ingress: Side,
    pub allowed: bool,
}

/// A map-entry rank: (port prefix length, specific protocol, specific identity); higher wins.
type Rank = (u8, bool, bool);

struct Hit<'a> {
    rule: &'a Rule,
    rank: Rank,
    l7: Option<&'a L7Rules>,
}

/// Does the peer part of `r` match `peer`? Returns whether it matched by a specific identity
/// (`Some(true)`), the wildcard (`Some(false)`), or by address only (`Some` via `addr`).
fn peer_match(
    policy: &PolicySet,
    r: &Rule,
    peer: &Party,
    reqs: &[&ir::Selector],
) -> (Option<bool>, bool) {
    let req_ok = || reqs.iter().all(|q| q.matches(&peer.info.labels));
    match &r.peers {
        PeerSet::Any if reqs.is_empty() => (Some(false), false),
        PeerSet::Any => (req_ok().then_some(true), false),
        PeerSet::Some(peers) => {
            let mut best: Option<bool> = None;
            let mut by_addr = false;
            for p in peers {
                let m = match p {
                    Peer::Endpoints(h) => {
                        let s = &policy.selectors[*h];
                        let wildcard = s.is_all() && reqs.is_empty();
                        (s.matches(&peer.info.labels) && req_ok()).then_some(!wildcard)
                    }
                    Peer::Entity(Entity::All) => Some(false),
                    Peer::Entity(e) => entity_selects(*e, &peer.info).then_some(true),
                    Peer::Cidr {
                        set,
                        by_address: false,
                    } => selects(policy, &PeerSel::Cidr(set.clone()), &peer.info).then_some(true),
                    Peer::Cidr {
                        set,
                        by_address: true,
                    } => {
                        by_addr |= peer.addr.is_some_and(|a| set.contains(a));
                        None
                    }
                    Peer::Fqdn(_) | Peer::Service { .. } => None,
                };
                best = best.max(m);
            }
            (best, by_addr)
        }
    }
}

/// The rank of the best port entry of `r` containing the flow, with its L7 rules.
fn port_match<'a>(
    r: &'a Rule,
    proto: Protocol,
    port: u16,
    named: &dyn Fn(&str, &[Protocol]) -> Vec<(Protocol, u16)>,
) -> Option<(u8, bool, Option<&'a L7Rules>)> {
    if r.ports.is_empty() {
        return Some((0, false, None));
    }
    let mut best: Option<(u8, bool, Option<&L7Rules>)> = None;
    for pr in &r.ports {
        for k in port_keys(pr, named) {
            if k.covers(proto.number(), port)
                && best.is_none_or(|b| (k.prefix_len, k.protocol != 0) > (b.0, b.1))
            {
                best = Some((k.prefix_len, k.protocol != 0, pr.l7.as_ref()));
            }
        }
    }
    best
}

fn side(
    policy: &PolicySet,
    c: &Cluster,
    subject: &Party,
    peer: &Party,
    dir: Direction,
    proto: Protocol,
    port: u16,
    http: Option<&HttpRequest>,
) -> Side {
    let mut s = Side {
        direction: dir,
        rules: Vec::new(),
        verdict: SideVerdict::NotManaged,
        by_localhost: false,
        l7: L7Verdict::NotRedirected,
    };
    if !subject.managed() {
        return s;
    }
    let rules: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| r.direction == dir && policy.selectors[r.subject].matches(&subject.info.labels))
        .collect();
    if rules.is_empty() {
        s.verdict = SideVerdict::NotEnforced;
        return s;
    }
    let reqs: Vec<&ir::Selector> = rules
        .iter()
        .flat_map(|r| r.requires.iter().map(|q| &policy.selectors[*q]))
        .collect();
    let dst_ports: Vec<NamedPort> = match (dir, &peer.endpoint) {
        (Direction::Ingress, _) => subject.ports.clone(),
        (Direction::Egress, Some(_)) => Vec::new(),
        (Direction::Egress, None) => peer.ports.clone(),
    };
    let named = |name: &str, protos: &[Protocol]| -> Vec<(Protocol, u16)> {
        match (dir, &peer.endpoint) {
            (Direction::Egress, Some(_)) => c.named_ports_of_identity(peer.info.id, name, protos),
            _ => resolve(&dst_ports, name, protos).collect(),
        }
    };
    let mut hits: Vec<Hit> = Vec::new();
    let mut addr_hits: Vec<&Rule> = Vec::new();
    for r in &rules {
        let (l3, by_addr) = peer_match(
            policy,
            r,
            peer,
            if r.action == Action::Allow {
                &reqs
            } else {
                &[]
            },
        );
        let l4 = port_match(r, proto, port, &named);
        s.rules.push(RuleMatch {
            rule: r.id,
            action: r.action,
            l3: l3.is_some() || by_addr,
            l4: l4.is_some(),
            l7: l4.and_then(|x| x.2.cloned()),
        });
        if let (Some(spec), Some((plen, pspec, l7))) = (l3, l4) {
            hits.push(Hit {
                rule: r,
                rank: (plen, pspec, spec),
                l7,
            });
        } else if by_addr && l4.is_some() {
            addr_hits.push(r);
        }
    }
    let addr_deny = addr_hits.iter().any(|r| r.action == Action::Deny);
    addr_hits.retain(|r| r.action == Action::Allow);
    if addr_deny || hits.iter().any(|h| h.rule.action == Action::Deny) {
        s.verdict = SideVerdict::DeniedByRule;
        return s;
    }
    let localhost = dir == Direction::Ingress
        && c.config.allow_localhost
        && peer.info.id == NumericIdentity::HOST;
    let allows: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.rule.action == Action::Allow)
        .collect();
    if let Some(top) = allows.iter().map(|h| h.rank).max() {
        s.verdict = SideVerdict::Allowed;
        let at_top: Vec<&&Hit> = allows.iter().filter(|h| h.rank == top).collect();
        let host_key_wins = localhost && top < (0, false, true);
        if !host_key_wins && at_top.iter().any(|h| h.l7.is_some()) {
            s.l7 = match http {
                None => L7Verdict::Redirected,
                Some(req)
                    if at_top
                        .iter()
                        .filter_map(|h| h.l7)
                        .any(|l| l7_allows(l, req)) =>
                {
                    L7Verdict::Allowed
                }
                Some(_) => L7Verdict::Denied,
            };
        }
    } else if localhost {
        s.verdict = SideVerdict::Allowed;
        s.by_localhost = true;
    } else if !addr_hits.is_empty() {
        s.verdict = SideVerdict::Allowed;
    } else {
        s.verdict = SideVerdict::DeniedDefault;
    }
    s
}

/// The labels-only verdict at `dst`'s ingress.
fn l3_verdict(policy: &PolicySet, dst: &Party, src: &Party) -> SideVerdict {
    if !dst.managed() {
        return SideVerdict::NotManaged;
    }
    let rules: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| {
            r.direction == Direction::Ingress
                && policy.selectors[r.subject].matches(&dst.info.labels)
        })
        .collect();
    if rules.is_empty() {
        return SideVerdict::NotEnforced;
    }
    let reqs: Vec<&ir::Selector> = rules
        .iter()
        .flat_map(|r| r.requires.iter().map(|q| &policy.selectors[*q]))
        .collect();
    let m = |r: &&Rule, q: &[&ir::Selector]| {
        let (l3, by_addr) = peer_match(policy, r, src, q);
        l3.is_some() || by_addr
    };
    if rules
        .iter()
        .any(|r| r.action == Action::Deny && r.ports.is_empty() && m(r, &[]))
    {
        SideVerdict::DeniedByRule
    } else if rules
        .iter()
        .any(|r| r.action == Action::Allow && m(r, &reqs))
    {
        SideVerdict::Allowed
    } else {
        SideVerdict::DeniedDefault
    }
}

/// Traces a connection from `src` to `dst` on `proto`/`port` (and an HTTP request, if given).
/// Replies of an allowed connection are allowed (stateful); the verdict is about establishing it.
pub fn trace(
    policy: &PolicySet,
    c: &Cluster,
    src: Party,
    dst: Party,
    proto: Protocol,
    port: u16,
    http: Option<&HttpRequest>,
) -> Trace {
    let egress = side(policy, c, &src, &dst, Direction::Egress, proto, port, http);
    let ingress = side(policy, c, &dst, &src, Direction::Ingress, proto, port, http);
    let l3 = l3_verdict(policy, &dst, &src);
    let l7_ok = |s: &Side| s.l7 != L7Verdict::Denied;
    let allowed =
        egress.verdict.allowed() && ingress.verdict.allowed() && l7_ok(&egress) && l7_ok(&ingress);
    Trace {
        src,
        dst,
        protocol: proto,
        port,
        l3,
        egress,
        ingress,
        allowed,
    }
}
