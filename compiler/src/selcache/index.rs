//! Which cached selectors can select a new identity: each label selector is filed under one
//! label its matches must carry (`key=value` for an `In` requirement, preferring the namespace
//! label, else `key` for `Exists`), so a new identity is tested only against the selectors filed
//! under one of its own labels, plus the few that need no particular label.

use super::PeerSel;
use crate::identity::{IdentityInfo, IdentityKind, NAMESPACE_LABEL};
use ir::{Operator, PolicySet, Requirement};
use std::collections::HashMap;

/// Selectors by a label they require.
#[derive(Clone, Debug, Default)]
pub struct SelIndex {
    /// `In` requirements: by (key, value), one entry per listed value.
    by_value: HashMap<(String, String), Vec<PeerSel>>,
    /// `Exists` requirements and FQDN selectors (their label's key): by key.
    by_key: HashMap<String, Vec<PeerSel>>,
    /// Label selectors without a positive requirement, and entities: tested against every identity.
    always: Vec<PeerSel>,
    /// Identity-based CIDR sets: tested against CIDR and reserved identities only.
    cidr: Vec<PeerSel>,
}

/// The requirement a selector is filed under: the namespace `In`, else the first `In` (fewest
/// values), else the first `Exists`.
fn anchor(reqs: &[Requirement]) -> Option<&Requirement> {
    let ins = reqs.iter().filter(|r| r.operator == Operator::In);
    ins.clone()
        .find(|r| r.key.key == NAMESPACE_LABEL)
        .or_else(|| ins.min_by_key(|r| r.values.len()))
        .or_else(|| reqs.iter().find(|r| r.operator == Operator::Exists))
}

impl SelIndex {
    /// Files `sel` (once per selector; the cache calls this on first resolution).
    pub fn insert(&mut self, policy: &PolicySet, sel: &PeerSel) {
        if let PeerSel::Fqdn(rule) = sel {
            // Only identities carrying the selector's own label can match.
            let key = crate::fqdn::selector_label(rule).key;
            self.by_key.entry(key).or_default().push(sel.clone());
            return;
        }
        let Some(reqs) = super::requirements(policy, sel) else {
            let list = match sel {
                PeerSel::Cidr(_) => &mut self.cidr,
                _ => &mut self.always,
            };
            list.push(sel.clone());
            return;
        };
        match anchor(reqs) {
            Some(r) if r.operator == Operator::In => {
                for v in &r.values {
                    self.by_value
                        .entry((r.key.key.clone(), v.clone()))
                        .or_default()
                        .push(sel.clone());
                }
            }
            Some(r) => self
                .by_key
                .entry(r.key.key.clone())
                .or_default()
                .push(sel.clone()),
            None => self.always.push(sel.clone()),
        }
    }

    /// The selectors that may select `info` (each once, sorted): a superset of those that do.
    pub fn candidates(&self, info: &IdentityInfo) -> Vec<PeerSel> {
        let mut out: Vec<PeerSel> = self.always.clone();
        if matches!(info.kind, IdentityKind::Cidr(_) | IdentityKind::Reserved) {
            out.extend(self.cidr.iter().cloned());
        }
        let mut probe = (String::new(), String::new());
        for l in info.labels.iter() {
            if let Some(v) = self.by_key.get(l.key.as_str()) {
                out.extend(v.iter().cloned());
            }
            probe.0.clear();
            probe.0.push_str(&l.key);
            probe.1.clear();
            probe.1.push_str(&l.value);
            if let Some(v) = self.by_value.get(&probe) {
                out.extend(v.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
