//! Incremental updates for the agent: adding or removing one endpoint updates the ipcache and the
//! selector cache, then recomputes only the entries keyed by the changed identity (and by the
//! wildcard when container ports may have changed named-port resolution), and only in the groups
//! selected by a rule that uses a selector that changed.

use super::compute::{compute, PeerFilter};
use super::engine::{key_of, GroupKey, MapDelta, PolicyEngine};
use crate::cluster::{ClusterEndpoint, ClusterError};
use crate::selcache::{IdSet, PeerSel};
use ir::{Direction, EndpointPolicy, MapKey, NumericIdentity, RuleId};
use std::collections::{BTreeSet, HashSet};

impl PolicyEngine {
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
            if let Some(info) = self.cluster.identity(change.identity) {
                changed = self.cache.identity_added(&self.policy, info);
            }
            self.record_subject(&changed, change.identity);
        }
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
                self.leave_group(&key);
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

    /// Drops a group that lost its last member.
    fn leave_group(&mut self, key: &GroupKey) {
        self.members.remove(key);
        self.groups.remove(key);
        if let Some(v) = self.groups_of.get_mut(&key.0) {
            v.retain(|k| k != key);
            if v.is_empty() {
                self.groups_of.remove(&key.0);
            }
        }
    }

    /// Records which rules select a new identity.
    pub(super) fn record_subject(&mut self, changed: &[PeerSel], id: NumericIdentity) {
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

    /// The groups selected by one of `rules`: the identities of each distinct subject selector.
    fn groups_selected_by(&self, rules: &BTreeSet<RuleId>) -> Vec<GroupKey> {
        let subjects: HashSet<_> = rules.iter().map(|r| self.policy.rule(*r).subject).collect();
        let mut out: Vec<GroupKey> = subjects
            .into_iter()
            .filter_map(|h| self.cache.get(&PeerSel::Selector(h)))
            .flatten()
            .filter_map(|id| self.groups_of.get(id))
            .flatten()
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Recomputes the entries keyed by `id` (and by the wildcard when named ports may have
    /// changed) in every group selected by a rule using a changed selector (or a named port).
    pub(super) fn update_peers(
        &mut self,
        changed: &[PeerSel],
        id: NumericIdentity,
        ports_changed: bool,
    ) -> Vec<MapDelta> {
        let mut affected: BTreeSet<RuleId> = changed
            .iter()
            .filter_map(|s| self.rules_by_sel.get(s))
            .flatten()
            .filter(|(_, s)| !*s)
            .map(|(r, _)| *r)
            .collect();
        let mut keep: IdSet = [id].into();
        if ports_changed {
            keep.insert(NumericIdentity::WILDCARD);
            affected.extend(self.named_egress.iter().copied());
        }
        if affected.is_empty() {
            return Vec::new();
        }
        let mut deltas = Vec::new();
        for g in self.groups_selected_by(&affected) {
            let fresh = compute(&self.ctx(), g.0, &g.1, PeerFilter::Only(&keep));
            self.replace_group(&g, fresh, &keep, &mut deltas);
        }
        deltas
    }

    /// Puts `fresh`'s entries keyed by `ids` into group `g` and adds a delta per member
    /// endpoint when anything changed.
    fn replace_group(
        &mut self,
        g: &GroupKey,
        fresh: EndpointPolicy,
        ids: &IdSet,
        deltas: &mut Vec<MapDelta>,
    ) {
        let Some(cur) = self.groups.get_mut(g) else {
            return;
        };
        let d = replace_entries(cur, fresh, ids);
        if d.is_empty() {
            return;
        }
        for name in self.members.get(g).into_iter().flatten() {
            deltas.push(MapDelta {
                endpoint: name.clone(),
                identity: g.0,
                ..d.clone()
            });
        }
    }
}

impl PolicyEngine {
    /// Recomputes the map state of every group in namespace `ns` (after its audit mode changed:
    /// the annotation changes no identity, so nothing else would).
    pub fn recompute_namespace(&mut self, ns: &str) -> Vec<MapDelta> {
        let in_ns = |c: &crate::cluster::Cluster, id: NumericIdentity| {
            c.identity(id).is_some_and(|i| {
                i.labels
                    .iter()
                    .any(|l| l.key == "io.kubernetes.pod.namespace" && l.value == ns)
            })
        };
        let keys: Vec<GroupKey> = self
            .groups
            .keys()
            .filter(|g| in_ns(&self.cluster, g.0))
            .cloned()
            .collect();
        let mut deltas = Vec::new();
        for g in keys {
            let fresh = compute(&self.ctx(), g.0, &g.1, PeerFilter::All);
            let Some(cur) = self.groups.get(&g) else {
                continue;
            };
            let ids: IdSet = cur
                .entries
                .keys()
                .chain(fresh.entries.keys())
                .map(|k| k.identity)
                .collect();
            self.replace_group(&g, fresh, &ids, &mut deltas);
        }
        deltas
    }
}

/// The entries of `cur` keyed by one of `ids`, in key order (a range per identity).
fn keys_of(cur: &EndpointPolicy, ids: &IdSet) -> Vec<MapKey> {
    ids.iter()
        .flat_map(|id| {
            let first = MapKey {
                identity: *id,
                direction: Direction::Ingress,
                protocol: 0,
                port: 0,
                port_prefix_len: 0,
            };
            cur.entries
                .range(first..)
                .take_while(move |(k, _)| k.identity == *id)
                .map(|(k, _)| *k)
        })
        .collect()
}

/// Replaces the entries of `cur` keyed by `ids` with `fresh`'s; returns what changed.
fn replace_entries(cur: &mut EndpointPolicy, fresh: EndpointPolicy, ids: &IdSet) -> MapDelta {
    let mut d = MapDelta {
        ingress_enforced: cur.ingress_enforced,
        egress_enforced: cur.egress_enforced,
        ..Default::default()
    };
    for k in keys_of(cur, ids) {
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
    d
}
