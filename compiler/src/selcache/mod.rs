//! The selector cache: every distinct peer selector (label selector, entity, identity-based CIDR
//! set) resolved once to the identities it selects, and kept up to date incrementally as
//! identities appear and disappear, reporting which selectors changed.

mod index;

use crate::cluster::Cluster;
use crate::identity::{entity_selects, node_selects, IdentityInfo, IdentityKind, NAMESPACE_LABEL};
use ir::{CidrSet, Entity, Handle, LabelSource, NumericIdentity, Operator, PolicySet, Selector};
use std::collections::{BTreeSet, HashMap};

/// Something that selects identities.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSel {
    Selector(Handle<Selector>),
    Entity(Entity),
    /// A CIDR set matched by identity (Cilium `toCIDR`/`toCIDRSet`): the CIDR identities inside it,
    /// and `world` for a `/0`.
    Cidr(CidrSet),
    /// A label selector derived from the inventory rather than written in a rule (the pods of
    /// a service with a selector).
    Labels(Selector),
    /// A `toFQDNs` entry (canonical, `fqdn::canonical`): the identities carrying its label
    /// `fqdn:<name or pattern>`, which only the agent's learned addresses have.
    Fqdn(ir::DnsRule),
    /// A node selector (`fromNodes`/`toNodes`): node identities (and `host`) only.
    Nodes(Handle<Selector>),
}

pub type IdSet = BTreeSet<NumericIdentity>;

/// Resolved selectors, with indexes both ways: identities by namespace (a namespaced selector is
/// resolved against its namespace only), selectors by a label they require (a new identity is
/// tested only against selectors that can select it), and the selectors holding each identity
/// (a removed identity touches only those).
#[derive(Clone, Debug, Default)]
pub struct SelectorCache {
    sets: HashMap<PeerSel, IdSet>,
    by_namespace: HashMap<String, IdSet>,
    all: IdSet,
    index: index::SelIndex,
    holders: HashMap<NumericIdentity, Vec<PeerSel>>,
    namespace_of_id: HashMap<NumericIdentity, String>,
}

fn namespace_of(info: &IdentityInfo) -> Option<&str> {
    info.labels
        .iter()
        .find(|l| l.source == LabelSource::K8s && l.key == NAMESPACE_LABEL)
        .map(|l| l.value.as_str())
}

/// Does `sel` select identity `info`, given the policy's selector arena?
pub fn selects(policy: &PolicySet, sel: &PeerSel, info: &IdentityInfo) -> bool {
    match sel {
        PeerSel::Selector(h) => policy.selectors[*h].matches(&info.labels),
        PeerSel::Labels(s) => s.matches(&info.labels),
        PeerSel::Nodes(h) => node_selects(&policy.selectors[*h], info),
        PeerSel::Entity(e) => entity_selects(*e, info),
        PeerSel::Fqdn(rule) => {
            let label = crate::fqdn::selector_label(rule);
            info.labels.iter().any(|l| *l == label)
        }
        PeerSel::Cidr(set) => match info.kind {
            IdentityKind::Cidr(p) => {
                set.cidr.contains(&p) && !set.except.iter().any(|e| e.contains(&p))
            }
            _ => {
                set.cidr.prefix_len() == 0 && entity_selects(Entity::World, info) && {
                    let v4 = matches!(set.cidr, ir::IpNet::V4(_));
                    info.id == NumericIdentity::WORLD
                        || info.id
                            == if v4 {
                                NumericIdentity::WORLD_IPV4
                            } else {
                                NumericIdentity::WORLD_IPV6
                            }
                }
            }
        },
    }
}

/// The requirements of a label selector (`None` for entities and CIDR sets).
fn requirements<'a>(policy: &'a PolicySet, sel: &'a PeerSel) -> Option<&'a [ir::Requirement]> {
    match sel {
        PeerSel::Selector(h) | PeerSel::Nodes(h) => Some(&policy.selectors[*h].requirements),
        PeerSel::Labels(s) => Some(&s.requirements),
        PeerSel::Entity(_) | PeerSel::Cidr(_) | PeerSel::Fqdn(_) => None,
    }
}

/// The namespaces a selector is restricted to, if it has a `namespace In (...)` requirement.
fn namespaces<'a>(policy: &'a PolicySet, sel: &'a PeerSel) -> Option<&'a [String]> {
    requirements(policy, sel)?
        .iter()
        .find(|r| {
            r.key.key == NAMESPACE_LABEL
                && r.operator == Operator::In
                && matches!(r.key.source, LabelSource::K8s | LabelSource::Any)
        })
        .map(|r| r.values.as_slice())
}

impl SelectorCache {
    /// Indexes the cluster's identities; selectors are resolved on first use.
    pub fn new(cluster: &Cluster) -> Self {
        let mut c = SelectorCache::default();
        for info in cluster.identities() {
            c.index_identity(info);
        }
        c
    }

    fn index_identity(&mut self, info: &IdentityInfo) {
        self.all.insert(info.id);
        if let Some(ns) = namespace_of(info) {
            self.namespace_of_id.insert(info.id, ns.to_string());
            self.by_namespace
                .entry(ns.to_string())
                .or_default()
                .insert(info.id);
        }
    }

    /// The identities `sel` selects (resolved and cached on first use).
    pub fn resolve(&mut self, policy: &PolicySet, cluster: &Cluster, sel: &PeerSel) -> &IdSet {
        if !self.sets.contains_key(sel) {
            let set = self.compute(policy, cluster, sel);
            for id in &set {
                self.holders.entry(*id).or_default().push(sel.clone());
            }
            self.sets.insert(sel.clone(), set);
            self.index.insert(policy, sel);
        }
        &self.sets[sel]
    }

    /// The cached set, if `sel` was resolved before.
    pub fn get(&self, sel: &PeerSel) -> Option<&IdSet> {
        self.sets.get(sel)
    }

    fn compute(&self, policy: &PolicySet, cluster: &Cluster, sel: &PeerSel) -> IdSet {
        let test = |id: &NumericIdentity| {
            cluster
                .identity(*id)
                .is_some_and(|i| selects(policy, sel, i))
        };
        match namespaces(policy, sel) {
            Some(nss) => nss
                .iter()
                .filter_map(|ns| self.by_namespace.get(ns))
                .flatten()
                .filter(|id| test(id))
                .copied()
                .collect(),
            None => self.all.iter().filter(|id| test(id)).copied().collect(),
        }
    }

    /// A new identity: adds it to every cached selector that selects it; returns those selectors.
    /// Only the selectors the index files under one of the identity's labels are tested.
    pub fn identity_added(&mut self, policy: &PolicySet, info: &IdentityInfo) -> Vec<PeerSel> {
        self.index_identity(info);
        let mut changed = Vec::new();
        for sel in self.index.candidates(info) {
            if !selects(policy, &sel, info) {
                continue;
            }
            if let Some(set) = self.sets.get_mut(&sel) {
                if set.insert(info.id) {
                    changed.push(sel);
                }
            }
        }
        if !changed.is_empty() {
            self.holders.insert(info.id, changed.clone());
        }
        changed
    }

    /// An identity disappeared: removes it everywhere; returns the selectors that selected it.
    pub fn identity_removed(&mut self, id: NumericIdentity) -> Vec<PeerSel> {
        self.all.remove(&id);
        if let Some(ns) = self.namespace_of_id.remove(&id) {
            if let Some(set) = self.by_namespace.get_mut(&ns) {
                set.remove(&id);
            }
        }
        let mut changed = self.holders.remove(&id).unwrap_or_default();
        changed.retain(|sel| self.sets.get_mut(sel).is_some_and(|set| set.remove(&id)));
        changed.sort();
        changed
    }
}
