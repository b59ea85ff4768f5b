//! Rule-level updates for the agent: rules appended to the policy set are activated and
//! deactivated in batches, and only the groups whose identity a changed rule's subject selects
//! are recomputed (plus, when a CIDR identity appears or disappears with the rules, the groups
//! whose rules select it as a peer). A deactivated rule stays in `policy.rules` (rule ids are
//! stable) but no longer counts anywhere.

use super::{compute, has_named_egress, rule_sels, GroupKey, MapDelta, PeerFilter, PolicyEngine};
use crate::cluster::{Cluster, ClusterError};
use crate::selcache::{IdSet, PeerSel};
use ir::{EndpointPolicy, FileId, IpNet, PeerSet, PolicySet, RuleId};
use std::collections::BTreeSet;

/// The prefixes of the identity-based CIDR peers of `ids` (those that get CIDR identities).
fn cidr_prefixes(policy: &PolicySet, cluster: &Cluster, ids: &[RuleId]) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for id in ids {
        if let PeerSet::Some(peers) = &policy.rule(*id).peers {
            for set in peers.iter().flat_map(|p| cluster.peer_ids(policy, p).cidrs) {
                out.insert(set.cidr.trunc());
                out.extend(set.except.iter().map(|e| e.trunc()));
            }
        }
    }
    out
}

/// The entry-level difference between two map states of one group.
fn diff(old: &EndpointPolicy, new: &EndpointPolicy) -> MapDelta {
    let mut d = MapDelta {
        identity: new.identity,
        ingress_enforced: new.ingress_enforced,
        egress_enforced: new.egress_enforced,
        ..Default::default()
    };
    for (k, e) in &new.entries {
        match old.entries.get(k) {
            None => d.added.push((*k, e.clone())),
            Some(o) if o != e => d.changed.push((*k, e.clone())),
            Some(_) => {}
        }
    }
    d.removed = old
        .entries
        .keys()
        .filter(|k| !new.entries.contains_key(k))
        .copied()
        .collect();
    d
}

impl PolicyEngine {
    /// Appends the rules of `set` (a front-end result for one source) as rules of this set's
    /// file `file`, without enforcing them; returns their ids for [`PolicyEngine::activate_rules`].
    pub fn append_rules(&mut self, set: PolicySet, file: FileId) -> Vec<RuleId> {
        self.policy.absorb_file(set, file)
    }

    /// Enforces appended (or previously deactivated) rules: allocates the CIDR identities they
    /// need, resolves their selectors, and recomputes the groups their subjects select. Returns
    /// the deltas of every endpoint whose map state changed (entries, enforcement or addresses).
    pub fn activate_rules(&mut self, ids: &[RuleId]) -> Result<Vec<MapDelta>, ClusterError> {
        let mut touched = IdSet::new();
        for prefix in cidr_prefixes(&self.policy, &self.cluster, ids) {
            if self.cluster.cidr_identity(prefix).is_some() {
                continue;
            }
            let id = self.cluster.add_cidr(prefix)?;
            if let Some(info) = self.cluster.identity(id).cloned() {
                let changed = self.cache.identity_added(&self.policy, &info);
                let subject_of: Vec<RuleId> = self.rules_using(&changed, true).collect();
                if !subject_of.is_empty() {
                    self.subjects.insert(id, subject_of);
                }
                touched.extend(self.subjects_of_rules_using(&changed));
            }
        }
        for &rid in ids {
            if has_named_egress(self.policy.rule(rid)) {
                if let Err(at) = self.named_egress.binary_search(&rid) {
                    self.named_egress.insert(at, rid);
                }
            }
            for (sel, is_subject) in rule_sels(&self.policy, &self.cluster, self.policy.rule(rid)) {
                let set = self.cache.resolve(&self.policy, &self.cluster, &sel);
                if is_subject {
                    for i in set {
                        let rules = self.subjects.entry(*i).or_default();
                        if let Err(at) = rules.binary_search(&rid) {
                            rules.insert(at, rid);
                        }
                        touched.insert(*i);
                    }
                }
                self.rules_by_sel
                    .entry(sel)
                    .or_default()
                    .push((rid, is_subject));
            }
        }
        Ok(self.recompute_groups(&touched))
    }

    /// Stops enforcing rules: unindexes them, releases CIDR identities no live rule needs any
    /// more, and recomputes the affected groups. Returns the deltas like `activate_rules`.
    pub fn deactivate_rules(&mut self, ids: &[RuleId]) -> Vec<MapDelta> {
        let mut touched = IdSet::new();
        let gone: BTreeSet<RuleId> = ids.iter().copied().collect();
        self.named_egress.retain(|r| !gone.contains(r));
        for &rid in ids {
            for (sel, is_subject) in rule_sels(&self.policy, &self.cluster, self.policy.rule(rid)) {
                if let Some(v) = self.rules_by_sel.get_mut(&sel) {
                    v.retain(|(r, _)| *r != rid);
                    if v.is_empty() {
                        self.rules_by_sel.remove(&sel);
                    }
                }
                if !is_subject {
                    continue;
                }
                for i in self.cache.get(&sel).into_iter().flatten() {
                    if let Some(v) = self.subjects.get_mut(i) {
                        v.retain(|r| *r != rid);
                        if v.is_empty() {
                            self.subjects.remove(i);
                        }
                    }
                    touched.insert(*i);
                }
            }
        }
        for prefix in cidr_prefixes(&self.policy, &self.cluster, ids) {
            let used = self.rules_by_sel.keys().any(|s| {
                matches!(s, PeerSel::Cidr(set)
                    if set.cidr.trunc() == prefix || set.except.iter().any(|e| e.trunc() == prefix))
            });
            if used {
                continue;
            }
            if let Some(id) = self.cluster.remove_cidr(prefix) {
                let changed = self.cache.identity_removed(id);
                self.subjects.remove(&id);
                touched.extend(self.subjects_of_rules_using(&changed));
            }
        }
        self.recompute_groups(&touched)
    }

    /// The live rules using one of `sels` as subject (`subject`) or as peer / requirement.
    fn rules_using<'a>(
        &'a self,
        sels: &'a [PeerSel],
        subject: bool,
    ) -> impl Iterator<Item = RuleId> + 'a {
        let mut v: Vec<RuleId> = sels
            .iter()
            .filter_map(|s| self.rules_by_sel.get(s))
            .flatten()
            .filter(|(_, s)| *s == subject)
            .map(|(r, _)| *r)
            .collect();
        v.sort();
        v.dedup();
        v.into_iter()
    }

    /// The subject identities of the live rules that use one of `sels` as a peer.
    fn subjects_of_rules_using(&self, sels: &[PeerSel]) -> IdSet {
        self.rules_using(sels, false)
            .filter_map(|r| {
                let subject = PeerSel::Selector(self.policy.rule(r).subject);
                self.cache.get(&subject)
            })
            .flatten()
            .copied()
            .collect()
    }

    /// Recomputes the whole map state of every group whose identity is in `ids`; returns the
    /// deltas of the members of the groups that changed.
    fn recompute_groups(&mut self, ids: &IdSet) -> Vec<MapDelta> {
        let keys: Vec<GroupKey> = ids
            .iter()
            .filter_map(|id| self.groups_of.get(id))
            .flatten()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for k in keys {
            let fresh = compute(&self.ctx(), k.0, &k.1, PeerFilter::All);
            let Some(cur) = self.groups.get_mut(&k) else {
                continue;
            };
            if *cur == fresh {
                continue;
            }
            let d = diff(cur, &fresh);
            *cur = fresh;
            for name in self.members.get(&k).into_iter().flatten() {
                out.push(MapDelta {
                    endpoint: name.clone(),
                    ..d.clone()
                });
            }
        }
        out
    }
}
