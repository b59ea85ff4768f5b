//! The flows `diff` compares and their verdicts on each side.
//!
//! A flow's verdict is the source's egress lookup and the destination's ingress lookup. Only the
//! groups whose map state changed can change a verdict: for each changed group, its ingress is
//! looked up from every source identity (and its egress towards every destination identity) on
//! both sides, once per identity and port (per address only where address entries make the
//! lookup depend on it); only where that side's answer differs are the member pairs expanded and
//! the whole flow evaluated. A peer identity that no entry of the group's old or new state keys
//! in that direction meets only the wildcard entries, so all such identities share one answer.

use super::OldStates;
use crate::cluster::{Cluster, ClusterEndpoint};
use crate::policy::{audited_by, key_of, lookup, GroupKey, Lookup, PolicyEngine};
use ir::{Direction, EndpointPolicy, NumericIdentity, PolicySet, PortSpec, Protocol, RuleId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// How one side of the policy decided a flow. No lookup for a party that is not an endpoint
/// (a `--peer` address): it enforces nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideDecision {
    pub lookup: Option<Lookup>,
    /// Allowed only because of audit mode: the audit-mode rules that would deny it
    /// ([`crate::policy::audited_by`], as `connectivity` reads it); empty otherwise.
    pub audited_by: Vec<RuleId>,
}

impl SideDecision {
    /// A party that is not an endpoint.
    pub fn outside() -> SideDecision {
        SideDecision {
            lookup: None,
            audited_by: Vec::new(),
        }
    }

    /// `lookup`'s answer in `state`.
    pub fn of(state: &EndpointPolicy, lookup: Lookup) -> SideDecision {
        SideDecision {
            audited_by: audited_by(state, &lookup).to_vec(),
            lookup: Some(lookup),
        }
    }

    /// Whether it passes only because of audit mode.
    pub fn audited(&self) -> bool {
        !self.audited_by.is_empty()
    }

    pub fn allowed(&self) -> bool {
        self.lookup.as_ref().is_none_or(Lookup::allowed)
    }

    /// The rules of the deciding entry (none for a default allow or deny); for a side that
    /// passes only in audit mode, the rules that would deny it.
    pub fn rules(&self) -> &[RuleId] {
        if self.audited() {
            return &self.audited_by;
        }
        match &self.lookup {
            Some(Lookup::Entry { rules, .. } | Lookup::Address { rules, .. }) => rules,
            _ => &[],
        }
    }

    fn outcome(&self) -> Outcome {
        Outcome::of(self.allowed(), self.audited())
    }
}

/// What a flow (or one side of it) comes to: allowed, allowed only because of audit mode
/// (what the datapath reports as AUDIT), or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Audited,
    Denied,
}

impl Outcome {
    fn of(allowed: bool, audited: bool) -> Outcome {
        match (allowed, audited) {
            (false, _) => Outcome::Denied,
            (true, true) => Outcome::Audited,
            (true, false) => Outcome::Allowed,
        }
    }

    /// `allow`, `audit` or `deny`, the words of `test` expectation files.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Allowed => "allow",
            Outcome::Audited => "audit",
            Outcome::Denied => "deny",
        }
    }
}

/// A flow's verdict under one policy set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub egress: SideDecision,
    pub ingress: SideDecision,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.egress.allowed() && self.ingress.allowed()
    }

    /// Denied if a side denies, audited if it passes only because of audit mode on a side.
    pub fn outcome(&self) -> Outcome {
        Outcome::of(
            self.allowed(),
            self.egress.audited() || self.ingress.audited(),
        )
    }
}

/// One flow whose verdict differs.
#[derive(Clone, Debug)]
pub struct Change {
    pub src: String,
    pub dst: String,
    pub protocol: Protocol,
    pub port: u16,
    pub old: Verdict,
    pub new: Verdict,
}

/// The (protocol, port) pairs a container port name stands for on any endpoint.
pub fn named_ports<'a>(
    eps: impl Iterator<Item = &'a ClusterEndpoint>,
    name: &str,
    protos: &[Protocol],
) -> BTreeSet<(Protocol, u16)> {
    eps.flat_map(|e| &e.ports)
        .filter(|p| p.name == name && protos.contains(&p.protocol))
        .map(|p| (p.protocol, p.port))
        .collect()
}

/// Every (protocol, port) a rule names: single ports, both ends of ranges, ICMP types, and the
/// numbers named ports stand for on the endpoints. Rules on every port name none.
pub fn rule_ports(policy: &PolicySet, cluster: &Cluster) -> Vec<(Protocol, u16)> {
    let mut out = BTreeSet::new();
    for pr in policy.rules.iter().flat_map(|r| &r.ports) {
        let protos = pr.protocol.expand();
        for &p in protos {
            match &pr.port {
                PortSpec::All => {}
                PortSpec::Range { first, last } => {
                    out.insert((p, *first));
                    out.insert((p, *last));
                }
                PortSpec::IcmpType(t) => {
                    out.insert((p, *t as u16));
                }
                PortSpec::Named(_) => {}
            }
        }
        if let PortSpec::Named(n) = &pr.port {
            out.extend(named_ports(cluster.endpoints(), n, protos));
        }
    }
    out.into_iter().collect()
}

fn has_addr(p: &EndpointPolicy, dir: Direction) -> bool {
    p.addr_entries.keys().any(|k| k.direction == dir)
}

/// Everything the comparison reads.
pub(super) struct Sides<'a> {
    pub engine: &'a PolicyEngine,
    /// The changed groups' states before the swap (the engine holds the new ones).
    pub old: &'a OldStates,
    pub changed: &'a HashSet<GroupKey>,
    pub ports: &'a [(Protocol, u16)],
    /// Old rule → the equal new rule, to name the new side's rules by their own files.
    pub renamed: &'a HashMap<RuleId, RuleId>,
}

type Members<'a> = Vec<(GroupKey, Vec<&'a ClusterEndpoint>)>;

impl<'a> Sides<'a> {
    fn state(&self, k: &GroupKey, old: bool) -> &'a EndpointPolicy {
        let cur = &self.engine.groups()[k];
        if old {
            self.old.get(k).unwrap_or(cur)
        } else {
            cur
        }
    }

    fn decide(
        &self,
        state: Option<&EndpointPolicy>,
        dir: Direction,
        peer: NumericIdentity,
        addr: Option<IpAddr>,
        (proto, port): (Protocol, u16),
        new: bool,
    ) -> SideDecision {
        let Some(s) = state else {
            return SideDecision::outside();
        };
        let mut d = SideDecision::of(s, lookup(s, dir, peer, addr, proto.number(), port));
        if new {
            let rename = |r: &mut RuleId| *r = self.renamed.get(r).copied().unwrap_or(*r);
            if let Some(Lookup::Entry { rules, .. } | Lookup::Address { rules, .. }) = &mut d.lookup
            {
                rules.iter_mut().for_each(rename);
            }
            d.audited_by.iter_mut().for_each(rename);
        }
        d
    }

    fn verdict(
        &self,
        s: &ClusterEndpoint,
        d: &ClusterEndpoint,
        port: (Protocol, u16),
        new: bool,
    ) -> Verdict {
        let (ks, kd) = (key_of(s), key_of(d));
        let (ss, ds) = (self.state(&ks, !new), self.state(&kd, !new));
        Verdict {
            egress: self.decide(
                Some(ss),
                Direction::Egress,
                d.identity,
                d.ips.first().copied(),
                port,
                new,
            ),
            ingress: self.decide(
                Some(ds),
                Direction::Ingress,
                s.identity,
                s.ips.first().copied(),
                port,
                new,
            ),
        }
    }

    fn members(&self) -> Members<'a> {
        let mut by: HashMap<GroupKey, Vec<&ClusterEndpoint>> = HashMap::new();
        for ep in self.engine.cluster.endpoints() {
            by.entry(key_of(ep)).or_default().push(ep);
        }
        let mut v: Members = by.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Does one side of a changed group answer differently from `peer` (at `addr`) on `port`?
    fn side_differs(
        &self,
        k: &GroupKey,
        dir: Direction,
        peer: NumericIdentity,
        addr: Option<IpAddr>,
        port: (Protocol, u16),
    ) -> bool {
        let o = self.decide(Some(self.state(k, true)), dir, peer, addr, port, false);
        let n = self.decide(Some(self.state(k, false)), dir, peer, addr, port, false);
        o.outcome() != n.outcome()
    }

    /// Every pair of distinct endpoints whose verdict differs on one of the ports.
    pub fn endpoint_changes(&self) -> Vec<Change> {
        let groups = self.members();
        let mut seen: HashSet<(&str, &str, Protocol, u16)> = HashSet::new();
        let mut out = Vec::new();
        let mut emit = |s: &'a ClusterEndpoint, d: &'a ClusterEndpoint, port: (Protocol, u16)| {
            if s.name == d.name || !seen.insert((&s.name, &d.name, port.0, port.1)) {
                return;
            }
            let (old, new) = (
                self.verdict(s, d, port, false),
                self.verdict(s, d, port, true),
            );
            if old.outcome() != new.outcome() {
                out.push(Change {
                    src: s.name.clone(),
                    dst: d.name.clone(),
                    protocol: port.0,
                    port: port.1,
                    old,
                    new,
                });
            }
        };
        for (k, mine) in groups.iter().filter(|(k, _)| self.changed.contains(k)) {
            for dir in [Direction::Ingress, Direction::Egress] {
                let (o_st, n_st) = (self.state(k, true), self.state(k, false));
                let by_addr = has_addr(o_st, dir) || has_addr(n_st, dir);
                // A peer identity no entry of either state keys is looked up through the
                // wildcard entries only: one answer for all of them (per address, if any).
                let special: HashSet<NumericIdentity> = [o_st, n_st]
                    .iter()
                    .flat_map(|p| p.entries.keys())
                    .filter(|key| key.direction == dir && key.identity != NumericIdentity::WILDCARD)
                    .map(|key| key.identity)
                    .collect();
                let mut memo: HashMap<(Option<NumericIdentity>, Option<IpAddr>, usize), bool> =
                    HashMap::new();
                for (_, others) in &groups {
                    for (pi, &port) in self.ports.iter().enumerate() {
                        let mut differs = |o: &ClusterEndpoint| {
                            let addr = by_addr.then(|| o.ips.first().copied()).flatten();
                            let class = special.contains(&o.identity).then_some(o.identity);
                            *memo.entry((class, addr, pi)).or_insert_with(|| {
                                self.side_differs(k, dir, o.identity, addr, port)
                            })
                        };
                        let hit: Vec<&ClusterEndpoint> = if by_addr {
                            others.iter().copied().filter(|o| differs(o)).collect()
                        } else if differs(others[0]) {
                            others.clone()
                        } else {
                            continue;
                        };
                        for o in hit {
                            for m in mine {
                                match dir {
                                    Direction::Ingress => emit(o, m, port),
                                    Direction::Egress => emit(m, o, port),
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The flows between `addr` (outside the cluster; identity `before` and `after` the swap)
    /// and every endpoint, both ways, whose verdict differs.
    pub fn peer_changes(
        &self,
        addr: IpAddr,
        before: NumericIdentity,
        after: NumericIdentity,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for (k, mine) in self.members() {
            if before == after && !self.changed.contains(&k) {
                continue;
            }
            for &port in self.ports {
                for dir in [Direction::Ingress, Direction::Egress] {
                    let side = |new: bool| {
                        let id = if new { after } else { before };
                        self.decide(Some(self.state(&k, !new)), dir, id, Some(addr), port, new)
                    };
                    let (o, n) = (side(false), side(true));
                    if o.outcome() == n.outcome() {
                        continue;
                    }
                    for m in &mine {
                        let wrap = |s: &SideDecision| match dir {
                            Direction::Ingress => Verdict {
                                egress: SideDecision::outside(),
                                ingress: s.clone(),
                            },
                            Direction::Egress => Verdict {
                                egress: s.clone(),
                                ingress: SideDecision::outside(),
                            },
                        };
                        let (src, dst) = match dir {
                            Direction::Ingress => (addr.to_string(), m.name.clone()),
                            Direction::Egress => (m.name.clone(), addr.to_string()),
                        };
                        out.push(Change {
                            src,
                            dst,
                            protocol: port.0,
                            port: port.1,
                            old: wrap(&o),
                            new: wrap(&n),
                        });
                    }
                }
            }
        }
        out
    }
}
