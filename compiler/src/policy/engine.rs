//! The policy engine: the whole cluster's map state (incremental updates: `incremental.rs`).
//!
//! Endpoints with the same identity and the same container ports enforce the same map state, so
//! it is computed once per such group.

mod rules;

use super::compute::{compute, Ctx, PeerFilter};
use crate::cluster::{Cluster, ClusterEndpoint};
use crate::selcache::{PeerSel, SelectorCache};
use ir::{
    EndpointPolicy, MapEntry, MapKey, NamedPort, NumericIdentity, Peer, PeerSet, PolicySet, RuleId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A group of endpoints sharing one map state: their identity and sorted container ports.
pub type GroupKey = (NumericIdentity, Vec<NamedPort>);

/// The map-entry changes of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapDelta {
    pub endpoint: String,
    pub identity: NumericIdentity,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    pub added: Vec<(MapKey, MapEntry)>,
    pub changed: Vec<(MapKey, MapEntry)>,
    pub removed: Vec<MapKey>,
}

impl MapDelta {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The cluster, the policy, and every endpoint's map state.
pub struct PolicyEngine {
    pub policy: PolicySet,
    pub cluster: Cluster,
    pub(super) cache: SelectorCache,
    pub(super) subjects: HashMap<NumericIdentity, Vec<RuleId>>,
    /// Rules per selector they use as subject (`true`) or as peer / requirement (`false`).
    pub(super) rules_by_sel: HashMap<PeerSel, Vec<(RuleId, bool)>>,
    /// Egress rules with a named port (their entries depend on the peers' container ports).
    pub(super) named_egress: Vec<RuleId>,
    pub(super) groups: HashMap<GroupKey, EndpointPolicy>,
    /// The groups of each identity (one per distinct set of container ports).
    pub(super) groups_of: HashMap<NumericIdentity, Vec<GroupKey>>,
    pub(super) members: HashMap<GroupKey, BTreeSet<String>>,
}

/// Every identity selector a rule uses, with whether it is the subject.
fn rule_sels(policy: &PolicySet, cluster: &Cluster, r: &ir::Rule) -> Vec<(PeerSel, bool)> {
    let mut v = vec![(PeerSel::Selector(r.subject), true)];
    v.extend(r.requires.iter().map(|q| (PeerSel::Selector(*q), false)));
    if let PeerSet::Some(peers) = &r.peers {
        for p in peers {
            match p {
                Peer::Endpoints(h) if !policy.selectors[*h].is_all() => {
                    v.push((PeerSel::Selector(*h), false))
                }
                Peer::Entity(e) if *e != ir::Entity::All => v.push((PeerSel::Entity(*e), false)),
                Peer::Nodes(h) => v.push((PeerSel::Nodes(*h), false)),
                Peer::Cidr { .. } | Peer::CidrGroup { .. } | Peer::Service { .. } => {
                    let ids = cluster.peer_ids(policy, p);
                    v.extend(ids.cidrs.into_iter().map(|s| (PeerSel::Cidr(s), false)));
                    v.extend(ids.pods.into_iter().map(|s| (PeerSel::Labels(s), false)));
                }
                Peer::Fqdn(d) => v.push((PeerSel::Fqdn(crate::fqdn::canonical(d)), false)),
                _ => {}
            }
        }
    }
    v
}

/// The group `ep` belongs to.
pub fn key_of(ep: &ClusterEndpoint) -> GroupKey {
    let mut ports = ep.ports.clone();
    ports.sort();
    (ep.identity, ports)
}

impl PolicyEngine {
    /// Resolves every selector and computes every endpoint's map state.
    pub fn new(policy: PolicySet, cluster: Cluster) -> Self {
        let mut cache = SelectorCache::new(&cluster);
        let mut rules_by_sel: HashMap<PeerSel, Vec<(RuleId, bool)>> = HashMap::new();
        let mut subjects: HashMap<NumericIdentity, Vec<RuleId>> = HashMap::new();
        for r in &policy.rules {
            for (sel, is_subject) in rule_sels(&policy, &cluster, r) {
                let set = cache.resolve(&policy, &cluster, &sel);
                if is_subject {
                    for id in set {
                        subjects.entry(*id).or_default().push(r.id);
                    }
                }
                rules_by_sel
                    .entry(sel)
                    .or_default()
                    .push((r.id, is_subject));
            }
        }
        let named_egress = policy
            .rules
            .iter()
            .filter(|r| has_named_egress(r))
            .map(|r| r.id)
            .collect();
        let mut e = PolicyEngine {
            policy,
            cluster,
            cache,
            subjects,
            rules_by_sel,
            named_egress,
            groups: HashMap::new(),
            groups_of: HashMap::new(),
            members: HashMap::new(),
        };
        let eps: Vec<ClusterEndpoint> = e.cluster.endpoints().cloned().collect();
        for ep in &eps {
            e.join_group(ep);
        }
        e
    }

    pub(super) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            policy: &self.policy,
            cluster: &self.cluster,
            cache: &self.cache,
            subjects: &self.subjects,
        }
    }

    /// Adds `ep` to its group, computing the group's map state if it is new; returns the state.
    pub(super) fn join_group(&mut self, ep: &ClusterEndpoint) -> &EndpointPolicy {
        let key = key_of(ep);
        if !self.groups.contains_key(&key) {
            let pol = compute(&self.ctx(), ep.identity, &key.1, PeerFilter::All);
            self.groups.insert(key.clone(), pol);
            self.groups_of
                .entry(ep.identity)
                .or_default()
                .push(key.clone());
        }
        self.members
            .entry(key.clone())
            .or_default()
            .insert(ep.name.clone());
        &self.groups[&key]
    }

    /// The map state of endpoint `name`.
    pub fn endpoint_policy(&self, name: &str) -> Option<EndpointPolicy> {
        let ep = self.cluster.endpoint(name)?;
        let mut p = self.groups.get(&key_of(ep))?.clone();
        p.endpoint = ep.name.clone();
        Some(p)
    }

    /// The map state shared by endpoint `name`'s group (without copying it).
    pub fn policy_of(&self, name: &str) -> Option<&EndpointPolicy> {
        self.groups.get(&key_of(self.cluster.endpoint(name)?))
    }

    /// Every endpoint's map state, by endpoint name.
    pub fn all_policies(&self) -> BTreeMap<String, EndpointPolicy> {
        self.cluster
            .endpoints()
            .filter_map(|e| Some((e.name.clone(), self.endpoint_policy(&e.name)?)))
            .collect()
    }

    /// Every group's map state (shared by the group's members).
    pub fn groups(&self) -> &HashMap<GroupKey, EndpointPolicy> {
        &self.groups
    }

    /// Number of distinct map states (groups) computed.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The rules selecting identity `id` (either direction).
    pub fn rules_selecting(&self, id: NumericIdentity) -> &[RuleId] {
        self.subjects.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn has_named_egress(r: &ir::Rule) -> bool {
    r.direction == ir::Direction::Egress
        && r.ports
            .iter()
            .any(|p| matches!(p.port, ir::PortSpec::Named(_)))
}
