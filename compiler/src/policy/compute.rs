//! One subject's map state: every rule selecting it, per direction, turned into map entries
//! (peer identity × port block → allow / deny / redirect) and address entries for `ipBlock` peers.

use super::deny::{merge, propagate};
use super::ports::{port_keys, PortKey};
use super::proxy_port;
use crate::cluster::{ports::resolve, Cluster};
use crate::selcache::{IdSet, PeerSel, SelectorCache};
use ir::{
    mapstate::AddrKey, Action, Direction, EndpointPolicy, Entity, MapKey, MapVerdict, NamedPort,
    NumericIdentity, Peer, PeerSet, PolicySet, Protocol, Rule, RuleId,
};
use std::collections::HashMap;

/// What the computation reads.
pub struct Ctx<'a> {
    pub policy: &'a PolicySet,
    pub cluster: &'a Cluster,
    pub cache: &'a SelectorCache,
    /// Rules selecting each endpoint identity.
    pub subjects: &'a HashMap<NumericIdentity, Vec<RuleId>>,
}

/// Which peer identities to produce identity entries for (`Only` for incremental updates; it
/// lists the wildcard too when wildcard entries are wanted).
#[derive(Clone, Copy)]
pub enum PeerFilter<'a> {
    All,
    Only(&'a IdSet),
}

/// A rule's peers, resolved.
enum Ids<'a> {
    Wildcard,
    Set(&'a IdSet),
}

impl<'a> Ctx<'a> {
    fn set(&self, sel: PeerSel) -> Option<&'a IdSet> {
        self.cache.get(&sel)
    }

    /// Identity peers of one L3 peer (none for peers without identities; a CIDR group or a
    /// service gives one set per prefix or pod selector), each with whether `fromRequires` /
    /// `toRequires` constrain it (endpoint selectors, including a service's pods).
    fn ids(&self, peer: &Peer) -> Vec<(Ids<'a>, bool)> {
        let one = match peer {
            Peer::Endpoints(h) if self.policy.selectors[*h].is_all() => Some(Ids::Wildcard),
            Peer::Endpoints(h) => self.set(PeerSel::Selector(*h)).map(Ids::Set),
            Peer::Nodes(h) => self.set(PeerSel::Nodes(*h)).map(Ids::Set),
            Peer::Entity(Entity::All) => Some(Ids::Wildcard),
            Peer::Entity(e) => self.set(PeerSel::Entity(*e)).map(Ids::Set),
            Peer::Cidr { .. } | Peer::CidrGroup { .. } | Peer::Service { .. } => {
                let ids = self.cluster.peer_ids(self.policy, peer);
                let cidrs = ids.cidrs.into_iter().map(|s| (PeerSel::Cidr(s), false));
                let pods = ids.pods.into_iter().map(|s| (PeerSel::Labels(s), true));
                return cidrs
                    .chain(pods)
                    .filter_map(|(sel, constrained)| Some((Ids::Set(self.set(sel)?), constrained)))
                    .collect();
            }
            Peer::Fqdn(d) => self
                .set(PeerSel::Fqdn(crate::fqdn::canonical(d)))
                .map(Ids::Set),
        };
        one.into_iter()
            .map(|i| (i, matches!(peer, Peer::Endpoints(_))))
            .collect()
    }

    /// The identities `ids` stands for once `requires` apply, restricted by `filter`.
    fn expand(
        &self,
        ids: &Ids<'a>,
        requires: &[&IdSet],
        filter: PeerFilter,
    ) -> Vec<NumericIdentity> {
        let ok = |id: &NumericIdentity| requires.iter().all(|r| r.contains(id));
        match (ids, requires.first(), filter) {
            (Ids::Wildcard, None, PeerFilter::All) => vec![NumericIdentity::WILDCARD],
            (Ids::Wildcard, None, PeerFilter::Only(k)) => k
                .iter()
                .filter(|i| **i == NumericIdentity::WILDCARD)
                .copied()
                .collect(),
            (Ids::Wildcard, Some(first), PeerFilter::All) => {
                first.iter().filter(|i| ok(i)).copied().collect()
            }
            (Ids::Set(s), _, PeerFilter::All) => s.iter().filter(|i| ok(i)).copied().collect(),
            (ids, _, PeerFilter::Only(k)) => k
                .iter()
                .filter(|i| **i != NumericIdentity::WILDCARD)
                .filter(|i| {
                    matches!(ids, Ids::Wildcard) || matches!(ids, Ids::Set(s) if s.contains(i))
                })
                .filter(|i| ok(i))
                .copied()
                .collect(),
        }
    }
}

fn verdict(rule: &Rule, pr_l7: Option<&ir::L7Rules>) -> MapVerdict {
    match (rule.action, pr_l7) {
        (Action::Deny, _) => MapVerdict::Deny,
        (Action::Allow, Some(l7)) => MapVerdict::Redirect {
            proxy_port: proxy_port(rule.direction, l7),
        },
        (Action::Allow, None) => MapVerdict::Allow,
    }
}

/// The map state of an endpoint with identity `subject` and container ports `own_ports`.
pub fn compute(
    ctx: &Ctx,
    subject: NumericIdentity,
    own_ports: &[NamedPort],
    keep: PeerFilter,
) -> EndpointPolicy {
    let filter = keep;
    // Wildcard entries are always computed: a wildcard deny must be propagated onto the kept
    // identities' allows (`propagate`), as in a full computation; they are dropped at the end.
    let with_wildcard: IdSet;
    let filter = match filter {
        PeerFilter::Only(k) if !k.contains(&NumericIdentity::WILDCARD) => {
            with_wildcard = k
                .iter()
                .copied()
                .chain([NumericIdentity::WILDCARD])
                .collect();
            PeerFilter::Only(&with_wildcard)
        }
        f => f,
    };
    let wanted = keep;
    let rules: Vec<&Rule> = ctx
        .subjects
        .get(&subject)
        .into_iter()
        .flatten()
        .map(|r| ctx.policy.rule(*r))
        .collect();
    let mut out = state(ctx, subject, &rules, own_ports, filter, Mode::Full);
    if let Some(audit) = super::audit::AuditView::of(ctx, subject, &rules) {
        let enforced = state(
            ctx,
            subject,
            &rules,
            own_ports,
            filter,
            Mode::Enforced(&audit),
        );
        out = audit.combine(ctx, out, enforced);
    }
    if let PeerFilter::Only(k) = wanted {
        out.entries.retain(|key, _| k.contains(&key.identity));
    }
    out
}

/// Which rules a [`state`] takes whole.
#[derive(Clone, Copy)]
pub(super) enum Mode<'a> {
    /// Every rule, as written.
    Full,
    /// What is enforced in audit mode: the deny rules of `audit` add nothing and its rules do
    /// not put the endpoint into default deny.
    Enforced(&'a super::audit::AuditView),
}

impl Mode<'_> {
    fn adds_entries(self, r: &Rule) -> bool {
        match self {
            Mode::Full => true,
            Mode::Enforced(a) => !(a.is_audit(r) && r.action == Action::Deny),
        }
    }
    fn default_deny(self, r: &Rule) -> bool {
        match self {
            Mode::Full => r.default_deny,
            Mode::Enforced(a) => r.default_deny && !a.is_audit(r),
        }
    }
}

/// The map state `rules` (those selecting `subject`) give in `mode`.
fn state(
    ctx: &Ctx,
    subject: NumericIdentity,
    rules: &[&Rule],
    own_ports: &[NamedPort],
    filter: PeerFilter,
    mode: Mode,
) -> EndpointPolicy {
    let mut out = EndpointPolicy {
        identity: subject,
        ..Default::default()
    };
    for dir in [Direction::Ingress, Direction::Egress] {
        let here: Vec<&Rule> = rules
            .iter()
            .copied()
            .filter(|r| r.direction == dir)
            .collect();
        if here.is_empty() {
            continue;
        }
        match dir {
            Direction::Ingress => out.ingress_enforced = true,
            Direction::Egress => out.egress_enforced = true,
        }
        let mut reqs: Vec<&IdSet> = Vec::new();
        for r in here.iter().filter(|r| mode.adds_entries(r)) {
            for q in &r.requires {
                if let Some(s) = ctx.set(PeerSel::Selector(*q)) {
                    reqs.push(s);
                }
            }
        }
        for r in here.iter().filter(|r| mode.adds_entries(r)) {
            direction_rule(
                ctx,
                &mut out,
                r,
                if r.action == Action::Allow {
                    &reqs
                } else {
                    &[]
                },
                own_ports,
                filter,
            );
        }
        if !here.iter().any(|r| mode.default_deny(r)) {
            // Every rule here says `enableDefaultDeny: false` (or is in audit mode): what no
            // deny rule denies is allowed, through an allow-all entry below every more specific
            // one (which still decide L7 redirects and denies).
            merge(&mut out.entries, wildcard_key(dir), MapVerdict::Allow, &[]);
        }
        let host = NumericIdentity::HOST;
        let want_host = match filter {
            PeerFilter::All => true,
            PeerFilter::Only(k) => k.contains(&host),
        };
        if dir == Direction::Ingress && ctx.cluster.config.allow_localhost && want_host {
            let key = MapKey {
                identity: host,
                ..wildcard_key(dir)
            };
            merge(&mut out.entries, key, MapVerdict::Allow, &[]);
        }
    }
    propagate(&mut out);
    out
}

/// The key of every peer, protocol and port in `dir`.
pub(super) fn wildcard_key(dir: Direction) -> MapKey {
    MapKey {
        identity: NumericIdentity::WILDCARD,
        direction: dir,
        protocol: 0,
        port: 0,
        port_prefix_len: 0,
    }
}

/// Adds the entries of one rule.
fn direction_rule(
    ctx: &Ctx,
    out: &mut EndpointPolicy,
    r: &Rule,
    reqs: &[&IdSet],
    own: &[NamedPort],
    filter: PeerFilter,
) {
    let peers: Vec<&Peer> = match &r.peers {
        PeerSet::Any => Vec::new(),
        PeerSet::Some(p) => p.iter().collect(),
    };
    let mut ids: Vec<NumericIdentity> = match &r.peers {
        PeerSet::Any => ctx.expand(&Ids::Wildcard, reqs, filter),
        PeerSet::Some(_) => peers
            .iter()
            .flat_map(|p| ctx.ids(p))
            .flat_map(|(i, constrained)| {
                ctx.expand(&i, if constrained { reqs } else { &[] }, filter)
            })
            .collect(),
    };
    ids.sort();
    ids.dedup();
    let addr: Vec<&ir::CidrSet> = peers
        .iter()
        .filter_map(|p| match p {
            Peer::Cidr {
                set,
                by_address: true,
            } => Some(set),
            _ => None,
        })
        .collect();
    if ids.is_empty() && (addr.is_empty() || matches!(filter, PeerFilter::Only(_))) {
        return;
    }
    let port_rules: Vec<(Option<&ir::L7Rules>, Option<&ir::PortRule>)> = if r.ports.is_empty() {
        vec![(None, None)]
    } else {
        r.ports.iter().map(|p| (p.l7.as_ref(), Some(p))).collect()
    };
    for (l7, pr) in port_rules {
        let v = verdict(r, l7);
        let keys_for = |peer: NumericIdentity| -> Vec<PortKey> {
            let Some(pr) = pr else {
                return vec![PortKey::ALL];
            };
            let named = |name: &str, protos: &[Protocol]| match r.direction {
                Direction::Ingress => resolve(own, name, protos).collect(),
                Direction::Egress => ctx.cluster.named_ports_of_identity(peer, name, protos),
            };
            port_keys(pr, &named)
        };
        let named = pr.is_some_and(|p| matches!(p.port, ir::PortSpec::Named(_)));
        let shared = (!named || r.direction == Direction::Ingress)
            .then(|| keys_for(NumericIdentity::WILDCARD));
        for id in &ids {
            let keys = match &shared {
                Some(k) => k.clone(),
                None => keys_for(*id),
            };
            for k in keys {
                let key = MapKey {
                    identity: *id,
                    direction: r.direction,
                    protocol: k.protocol,
                    port: k.port,
                    port_prefix_len: k.prefix_len,
                };
                merge(&mut out.entries, key, v, &[r.id]);
            }
        }
        if matches!(filter, PeerFilter::All) {
            for set in &addr {
                for prefix in super::addr::disjoint_prefixes(set) {
                    for k in keys_for(NumericIdentity::WILDCARD) {
                        let key = AddrKey {
                            direction: r.direction,
                            prefix,
                            protocol: k.protocol,
                            port: k.port,
                            port_prefix_len: k.prefix_len,
                        };
                        merge(&mut out.addr_entries, key, v, &[r.id]);
                    }
                }
            }
        }
    }
}
