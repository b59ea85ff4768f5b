//! Evaluates a flow on the rules: the source's egress rules, the destination's ingress rules,
//! deny over allow, `fromRequires`/`toRequires`, named ports, and L7 at the deciding port entry.

use super::l7::{l7_allows, HttpRequest, L7Verdict};
use super::party::Party;
use crate::cluster::{ports::resolve, Cluster};
use crate::identity::{entity_selects, IdentityKind};
use crate::policy::ports::NamedPorts;
use crate::selcache::{selects, PeerSel};
use ir::{
    Action, Direction, Entity, L7Rules, NamedPort, NumericIdentity, Peer, PeerSet, PolicySet,
    PortRule, PortSpec, Protocol, Rule, RuleId,
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
    /// No rule allows or denies it, and every rule selecting the endpoint in this direction
    /// says `enableDefaultDeny: false`.
    AllowedNoDefaultDeny,
}

impl SideVerdict {
    pub fn allowed(self) -> bool {
        matches!(
            self,
            SideVerdict::NotManaged
                | SideVerdict::NotEnforced
                | SideVerdict::Allowed
                | SideVerdict::AllowedNoDefaultDeny
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
    /// Audit mode: the audit-mode rules that would deny the flow, which passes (empty when the
    /// verdict is not audited).
    pub audited_by: Vec<RuleId>,
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
    c: &Cluster,
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
                        by_address: false, ..
                    }
                    | Peer::CidrGroup { .. }
                    | Peer::Service { .. } => {
                        let ids = c.peer_ids(policy, p);
                        let by_cidr = ids
                            .cidrs
                            .into_iter()
                            .any(|set| selects(policy, &PeerSel::Cidr(set), &peer.info));
                        let by_pods =
                            || ids.pods.iter().any(|s| s.matches(&peer.info.labels)) && req_ok();
                        (by_cidr || by_pods()).then_some(true)
                    }
                    Peer::Cidr {
                        set,
                        by_address: true,
                    } => {
                        by_addr |= peer.addr.is_some_and(|a| set.contains(a));
                        None
                    }
                    Peer::Fqdn(d) => {
                        let name = peer.fqdn.as_deref();
                        name.is_some_and(|n| crate::fqdn::selector_matches(d, n))
                            .then_some(true)
                    }
                    Peer::Nodes(h) => {
                        // Nodes only: the peer's node as the subject's node sees it (`host`
                        // with its node's labels, or a node identity), never an endpoint.
                        let node = peer.info.kind == IdentityKind::Node
                            || peer.info.id == NumericIdentity::HOST;
                        (node && policy.selectors[*h].matches(&peer.info.labels)).then_some(true)
                    }
                };
                best = best.max(m);
            }
            (best, by_addr)
        }
    }
}

/// The rank of the best port entry of `r` containing the flow, with its L7 rules: (port
/// specificity, specific protocol, L7 rules). A rule without ports ranks lowest; on a tie the
/// first port rule wins.
fn port_match<'a>(
    r: &'a Rule,
    proto: Protocol,
    port: u16,
    named: &NamedPorts,
) -> Option<(u8, bool, Option<&'a L7Rules>)> {
    if r.ports.is_empty() {
        return Some((0, false, None));
    }
    let mut best: Option<(u8, bool, Option<&L7Rules>)> = None;
    for pr in &r.ports {
        if let Some(rank) = port_rank(pr, proto, port, named) {
            if best.is_none_or(|b| rank > b.0) {
                best = Some((rank, true, pr.l7.as_ref()));
            }
        }
    }
    best
}

/// Whether the port rule covers `proto`/`port`, matched on the rule itself (first <= port <=
/// last for ranges, not through the map state's blocks), and if so how specific the
/// datapath's entry for it is: 16 for one port, 0 for every port, and for a range the prefix
/// length of the largest aligned power-of-two block around `port` inside the range (the
/// datapath holds a range as such blocks and the most specific entry decides).
fn port_rank(pr: &PortRule, proto: Protocol, port: u16, named: &NamedPorts) -> Option<u8> {
    let protos = pr.protocol.expand();
    if !protos.contains(&proto) {
        return None;
    }
    match &pr.port {
        PortSpec::All => Some(0),
        PortSpec::Range { first, last } => {
            (*first <= port && port <= *last).then(|| range_rank(*first, *last, port))
        }
        PortSpec::Named(name) => named(name, protos).contains(&(proto, port)).then_some(16),
        PortSpec::IcmpType(t) => (u16::from(*t) == port).then_some(16),
    }
}

/// The prefix length of the largest aligned block of `2^(16 - len)` ports that holds `port`
/// and lies inside `first..=last` (`first <= port <= last`; the block of `port` alone always
/// does).
fn range_rank(first: u16, last: u16, port: u16) -> u8 {
    (0..16u8)
        .find(|len| {
            let size = 1u32 << (16 - u32::from(*len));
            let base = u32::from(port) & !(size - 1);
            base >= u32::from(first) && base + size - 1 <= u32::from(last)
        })
        .unwrap_or(16)
}

/// The traced flow's layer 4 and HTTP request, the same for both sides.
#[derive(Clone, Copy)]
struct Flow<'a> {
    proto: Protocol,
    port: u16,
    http: Option<&'a HttpRequest>,
}

/// The verdict of `subject`'s rules in `dir` on the flow with `peer`, audit mode included.
fn side(
    policy: &PolicySet,
    c: &Cluster,
    subject: &Party,
    peer: &Party,
    dir: Direction,
    flow: Flow<'_>,
) -> Side {
    let full = side_in(policy, c, subject, peer, dir, flow, None);
    if full.verdict.allowed() {
        return full;
    }
    let Some(is_audit) = super::audit::audit_rules(policy, c, subject) else {
        return full;
    };
    let enforced = side_in(policy, c, subject, peer, dir, flow, Some(&is_audit));
    if !enforced.verdict.allowed() {
        return full;
    }
    let audited_by = super::audit::would_deny(policy, &full, &is_audit);
    Side {
        verdict: enforced.verdict,
        by_localhost: enforced.by_localhost,
        l7: enforced.l7,
        audited_by,
        ..full
    }
}

/// The verdict of `subject`'s rules; with `audit`, only what audit mode enforces (the deny
/// rules of audit-mode rules left out, and those rules not putting the subject into default
/// deny).
fn side_in(
    policy: &PolicySet,
    c: &Cluster,
    subject: &Party,
    peer: &Party,
    dir: Direction,
    flow: Flow<'_>,
    audit: Option<&dyn Fn(&Rule) -> bool>,
) -> Side {
    let Flow { proto, port, http } = flow;
    let mut s = Side {
        direction: dir,
        rules: Vec::new(),
        verdict: SideVerdict::NotManaged,
        by_localhost: false,
        l7: L7Verdict::NotRedirected,
        audited_by: Vec::new(),
    };
    if !subject.managed() {
        return s;
    }
    let mut rules: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| r.direction == dir && policy.selectors[r.subject].matches(&subject.info.labels))
        .collect();
    if rules.is_empty() {
        s.verdict = SideVerdict::NotEnforced;
        return s;
    }
    let default_deny = |r: &Rule| r.default_deny && !audit.is_some_and(|a| a(r));
    if let Some(is_audit) = audit {
        rules.retain(|r| !(is_audit(r) && r.action == Action::Deny));
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
            c,
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
    } else if rules.iter().any(|r| default_deny(r)) {
        s.verdict = SideVerdict::DeniedDefault;
    } else {
        s.verdict = SideVerdict::AllowedNoDefaultDeny;
    }
    s
}

/// What a direction decides when no rule allows or denies: deny, unless every rule selecting
/// the endpoint there turned default deny off.
fn default_verdict(rules: &[&Rule]) -> SideVerdict {
    if rules.iter().any(|r| r.default_deny) {
        SideVerdict::DeniedDefault
    } else {
        SideVerdict::AllowedNoDefaultDeny
    }
}

/// The labels-only verdict at `dst`'s ingress.
fn l3_verdict(policy: &PolicySet, c: &Cluster, dst: &Party, src: &Party) -> SideVerdict {
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
        let (l3, by_addr) = peer_match(policy, c, r, src, q);
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
        default_verdict(&rules)
    }
}

/// `peer` as the endpoint `subject` sees it: a node's address is `host` (with that node's
/// labels) on that node and the node's own identity elsewhere (each node's ipcache is its own
/// view), so its identity is taken from the subject's node; every other party is the same for
/// all.
fn seen_by(c: &Cluster, peer: &Party, subject: &Party) -> Party {
    let viewer = subject
        .endpoint
        .as_deref()
        .map_or(c.config.local_node.as_str(), |e| c.node_of(e));
    let node = match (&peer.endpoint, peer.addr) {
        (None, Some(a)) => c.node_seen_from(a, viewer),
        _ => None,
    };
    match node {
        Some(info) => Party {
            info,
            ..peer.clone()
        },
        None => peer.clone(),
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
    let flow = Flow { proto, port, http };
    let dst_at_src = seen_by(c, &dst, &src);
    let egress = side(policy, c, &src, &dst_at_src, Direction::Egress, flow);
    let src_at_dst = seen_by(c, &src, &dst);
    let ingress = side(policy, c, &dst, &src_at_dst, Direction::Ingress, flow);
    let l3 = l3_verdict(policy, c, &dst, &src_at_dst);
    let l7_ok = |s: &Side| s.l7 != L7Verdict::Denied;
    let allowed =
        egress.verdict.allowed() && ingress.verdict.allowed() && l7_ok(&egress) && l7_ok(&ingress);
    // A node's address is shown as the endpoint at the other end sees it (what was evaluated).
    Trace {
        src: src_at_dst,
        dst: dst_at_src,
        protocol: proto,
        port,
        l3,
        egress,
        ingress,
        allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::range_rank;
    use crate::policy::ports::blocks;

    #[test]
    fn range_rank_is_the_map_state_block_of_the_port() {
        // The trace ranks a range on its own; the map state splits it into blocks. Both must
        // give every port of the range the same specificity.
        let edges = [0u16, 1, 79, 80, 81, 1023, 1024, 32000, 32768, 65534, 65535];
        for &first in &edges {
            for &last in edges.iter().filter(|l| **l >= first) {
                for (base, len) in blocks(first, last) {
                    let end = u32::from(base) + (1u32 << (16 - u32::from(len))) - 1;
                    for port in [u32::from(base), (u32::from(base) + end) / 2, end] {
                        let port = port as u16;
                        assert_eq!(
                            range_rank(first, last, port),
                            len,
                            "{first}-{last} port {port}"
                        );
                    }
                }
            }
        }
    }
}
