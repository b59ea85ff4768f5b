//! The selector cache: every distinct peer selector (label selector, entity, identity-based CIDR
//! set) resolved once to the identities it selects, and kept up to date incrementally as
//! identities appear and disappear, reporting which selectors changed.

use crate::cluster::Cluster;
use crate::identity::{entity_selects, IdentityInfo, IdentityKind, NAMESPACE_LABEL};
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
}

pub type IdSet = BTreeSet<NumericIdentity>;

/// Resolved selectors, plus a namespace index so namespaced selectors only test the identities
/// of their namespace.
#[derive(Clone, Debug, Default)]
pub struct SelectorCache {
    sets: HashMap<PeerSel, IdSet>,
    by_namespace: HashMap<String, IdSet>,
    all: IdSet,
    /// Cached selectors restricted to a namespace, by namespace; the others.
    sels_by_namespace: HashMap<String, Vec<PeerSel>>,
    sels_anywhere: Vec<PeerSel>,
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
        PeerSel::Entity(e) => entity_selects(*e, info),
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

/// The namespaces a selector is restricted to, if it has a `namespace In (...)` requirement.
fn namespaces<'a>(policy: &'a PolicySet, sel: &PeerSel) -> Option<&'a [String]> {
    let PeerSel::Selector(h) = sel else {
        return None;
    };
    policy.selectors[*h]
        .requirements
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
            c.index(info);
        }
        c
    }

    fn index(&mut self, info: &IdentityInfo) {
        self.all.insert(info.id);
        if let Some(ns) = namespace_of(info) {
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
            self.sets.insert(sel.clone(), set);
            match namespaces(policy, sel) {
                Some(nss) => {
                    for ns in nss {
                        self.sels_by_namespace
                            .entry(ns.clone())
                            .or_default()
                            .push(sel.clone());
                    }
                }
                None => self.sels_anywhere.push(sel.clone()),
            }
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
    pub fn identity_added(&mut self, policy: &PolicySet, info: &IdentityInfo) -> Vec<PeerSel> {
        self.index(info);
        let local = namespace_of(info).and_then(|ns| self.sels_by_namespace.get(ns));
        let mut changed = Vec::new();
        for sel in self.sels_anywhere.iter().chain(local.into_iter().flatten()) {
            if selects(policy, sel, info) {
                if let Some(set) = self.sets.get_mut(sel) {
                    if set.insert(info.id) {
                        changed.push(sel.clone());
                    }
                }
            }
        }
        changed.sort();
        changed
    }

    /// An identity disappeared: removes it everywhere; returns the selectors that selected it.
    pub fn identity_removed(&mut self, id: NumericIdentity) -> Vec<PeerSel> {
        self.all.remove(&id);
        for set in self.by_namespace.values_mut() {
            set.remove(&id);
        }
        let mut changed: Vec<PeerSel> = self
            .sets
            .iter_mut()
            .filter_map(|(sel, set)| set.remove(&id).then(|| sel.clone()))
            .collect();
        changed.sort();
        changed
    }
}
