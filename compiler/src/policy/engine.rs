//! The policy engine: the whole cluster's map state, and incremental updates for the agent.
//!
//! Endpoints with the same identity and the same container ports enforce the same map state, so
//! it is computed once per such group. Adding or removing an endpoint updates the ipcache and the
//! selector cache, then recomputes only the entries keyed by the changed identity, and only for
//! the groups whose rules refer to a selector that changed.

mod rules;

use super::compute::{compute, Ctx, PeerFilter};
use crate::cluster::{Cluster, ClusterEndpoint, ClusterError};
use crate::selcache::{IdSet, PeerSel, SelectorCache};
use ir::{
    EndpointPolicy, MapEntry, MapKey, NamedPort, NumericIdentity, Peer, PeerSet, PolicySet, RuleId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type GroupKey = (NumericIdentity, Vec<NamedPort>);

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
    cache: SelectorCache,
    subjects: HashMap<NumericIdentity, Vec<RuleId>>,
    /// Rules per selector they use as subject (`true`) or as peer / requirement (`false`).
    rules_by_sel: HashMap<PeerSel, Vec<(RuleId, bool)>>,
    groups: HashMap<GroupKey, EndpointPolicy>,
    members: HashMap<GroupKey, BTreeSet<String>>,
}

/// Every identity selector a rule uses, with whether it is the subject.
fn rule_sels(policy: &PolicySet, r: &ir::Rule) -> Vec<(PeerSel, bool)> {
    let mut v = vec![(PeerSel::Selector(r.subject), true)];
    v.extend(r.requires.iter().map(|q| (PeerSel::Selector(*q), false)));
    if let PeerSet::Some(peers) = &r.peers {
        for p in peers {
            match p {
                Peer::Endpoints(h) if !policy.selectors[*h].is_all() => {
                    v.push((PeerSel::Selector(*h), false))
                }
                Peer::Entity(e) if *e != ir::Entity::All => v.push((PeerSel::Entity(*e), false)),
                Peer::Cidr {
                    set,
                    by_address: false,
                } => v.push((PeerSel::Cidr(set.clone()), false)),
                _ => {}
            }
        }
    }
    v
}

fn key_of(ep: &ClusterEndpoint) -> GroupKey {
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
            for (sel, is_subject) in rule_sels(&policy, r) {
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
        let mut e = PolicyEngine {
            policy,
            cluster,
            cache,
            subjects,
            rules_by_sel,
            groups: HashMap::new(),
            members: HashMap::new(),
        };
        let eps: Vec<ClusterEndpoint> = e.cluster.endpoints().cloned().collect();
        for ep in &eps {
            e.join_group(ep);
        }
        e
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            policy: &self.policy,
            cluster: &self.cluster,
            cache: &self.cache,
            subjects: &self.subjects,
        }
    }

    /// Adds `ep` to its group, computing the group's map state if it is new; returns the state.
    fn join_group(&mut self, ep: &ClusterEndpoint) -> &EndpointPolicy {
        let key = key_of(ep);
        if !self.groups.contains_key(&key) {
            let pol = compute(&self.ctx(), ep.identity, &key.1, PeerFilter::All);
            self.groups.insert(key.clone(), pol);
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

    /// Number of distinct map states (groups) computed.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The rules selecting identity `id` (either direction).
    pub fn rules_selecting(&self, id: NumericIdentity) -> &[RuleId] {
        self.subjects.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds (or replaces) an endpoint. Returns the deltas of every endpoint whose map state
    /// changed, the new endpoint's own full state included (as `added`).
    pub fn add_endpoint(&mut self, ep: ClusterEndpoint) -> Result<Vec<MapDelta>, ClusterError> {
        let mut deltas = match self.cluster.endpoint(&ep.name).is_some() {
            true => self.remove_endpoint(&ep.name.clone()),
            false => Vec::new(),
        };
        let change = self.cluster.add_endpoint(ep.clone())?;
        let ep = self
            .cluster
            .endpoint(&ep.name)
            .cloned()
            .ok_or(ClusterError::IdentitiesExhausted)?;
        let mut changed = Vec::new();
        if change.identity_changed {
            if let Some(info) = self.cluster.identity(change.identity).cloned() {
                changed = self.cache.identity_added(&self.policy, &info);
            }
        }
        self.refresh_subjects(&changed, change.identity, true);
        deltas.extend(self.update_peers(&changed, change.identity, !ep.ports.is_empty()));
        let pol = self.join_group(&ep).clone();
        deltas.push(MapDelta {
            endpoint: ep.name.clone(),
            identity: ep.identity,
            ingress_enforced: pol.ingress_enforced,
            egress_enforced: pol.egress_enforced,
            added: pol.entries.into_iter().collect(),
            ..Default::default()
        });
        Ok(deltas)
    }

    /// Removes an endpoint; returns the deltas of the endpoints whose map state changed (the
    /// removed endpoint's entries are all `removed`).
    pub fn remove_endpoint(&mut self, name: &str) -> Vec<MapDelta> {
        let Some(ep) = self.cluster.endpoint(name).cloned() else {
            return Vec::new();
        };
        let key = key_of(&ep);
        let mut deltas = Vec::new();
        if let Some(pol) = self.groups.get(&key) {
            deltas.push(MapDelta {
                endpoint: ep.name.clone(),
                identity: ep.identity,
                removed: pol.entries.keys().copied().collect(),
                ..Default::default()
            });
        }
        if let Some(m) = self.members.get_mut(&key) {
            m.remove(name);
            if m.is_empty() {
                self.members.remove(&key);
                self.groups.remove(&key);
            }
        }
        let change = self.cluster.remove_endpoint(name);
        let mut changed = Vec::new();
        if let Some(c) = change.filter(|c| c.identity_changed) {
            changed = self.cache.identity_removed(c.identity);
            self.subjects.remove(&c.identity);
        }
        deltas.extend(self.update_peers(&changed, ep.identity, !ep.ports.is_empty()));
        deltas
    }

    /// Records which rules select a new identity.
    fn refresh_subjects(&mut self, changed: &[PeerSel], id: NumericIdentity, _added: bool) {
        let mut rules: Vec<RuleId> = changed
            .iter()
            .filter_map(|s| self.rules_by_sel.get(s))
            .flatten()
            .filter(|(_, subj)| *subj)
            .map(|(r, _)| *r)
            .collect();
        rules.sort();
        rules.dedup();
        if !rules.is_empty() {
            self.subjects.insert(id, rules);
        }
    }

    /// Recomputes the entries keyed by `id` (and by the wildcard when named ports may have
    /// changed) in every group with a rule using a changed selector (or a named port).
    fn update_peers(
        &mut self,
        changed: &[PeerSel],
        id: NumericIdentity,
        ports_changed: bool,
    ) -> Vec<MapDelta> {
        let mut affected_rules: BTreeSet<RuleId> = changed
            .iter()
            .filter_map(|s| self.rules_by_sel.get(s))
            .flatten()
            .filter(|(_, s)| !*s)
            .map(|(r, _)| *r)
            .collect();
        let mut keep: IdSet = [id].into();
        if ports_changed {
            keep.insert(NumericIdentity::WILDCARD);
            affected_rules.extend(
                self.policy
                    .rules
                    .iter()
                    .filter(|r| has_named_egress(r))
                    .map(|r| r.id),
            );
        }
        let affected_rules: Vec<RuleId> = affected_rules.into_iter().collect();
        if affected_rules.is_empty() {
            return Vec::new();
        }
        let groups: Vec<GroupKey> = self
            .groups
            .keys()
            .filter(|(gid, _)| {
                self.subjects
                    .get(gid)
                    .is_some_and(|rs| rs.iter().any(|r| affected_rules.binary_search(r).is_ok()))
            })
            .cloned()
            .collect();
        let mut deltas = Vec::new();
        for g in groups {
            let fresh = compute(&self.ctx(), g.0, &g.1, PeerFilter::Only(&keep));
            let Some(cur) = self.groups.get_mut(&g) else {
                continue;
            };
            let mut d = MapDelta {
                identity: g.0,
                ingress_enforced: cur.ingress_enforced,
                egress_enforced: cur.egress_enforced,
                ..Default::default()
            };
            let old: Vec<MapKey> = cur
                .entries
                .keys()
                .filter(|k| keep.contains(&k.identity))
                .copied()
                .collect();
            for k in old {
                if !fresh.entries.contains_key(&k) {
                    cur.entries.remove(&k);
                    d.removed.push(k);
                }
            }
            for (k, e) in fresh.entries {
                match cur.entries.insert(k, e.clone()) {
                    None => d.added.push((k, e)),
                    Some(prev) if prev != e => d.changed.push((k, e)),
                    Some(_) => {}
                }
            }
            if d.is_empty() {
                continue;
            }
            for name in self.members.get(&g).into_iter().flatten() {
                deltas.push(MapDelta {
                    endpoint: name.clone(),
                    ..d.clone()
                });
            }
        }
        deltas
    }
}

fn has_named_egress(r: &ir::Rule) -> bool {
    r.direction == ir::Direction::Egress
        && r.ports
            .iter()
            .any(|p| matches!(p.port, ir::PortSpec::Named(_)))
}
