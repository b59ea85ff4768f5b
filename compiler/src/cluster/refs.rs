//! Peers that refer to inventory objects by name: `cidrGroupRef` (a `CiliumCIDRGroup`) and
//! `toServices` (a `Service`, through its pod selector or its EndpointSlices). Map state,
//! `trace` and CIDR identity allocation all resolve peers through [`Cluster::peer_ids`], so
//! they agree on what a reference stands for.

use super::Cluster;
use crate::front::lower::namespace_requirement;
use ir::{CidrSet, IpNet, LabelKey, LabelSet, LabelSource, Operator, Peer, PolicySet};
use ir::{Requirement, Selector};
use std::net::IpAddr;

/// What an identity-selecting peer stands for beyond plain selectors and entities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIds {
    /// CIDR sets matched by identity (never selecting pods): `toCIDR`/`toCIDRSet`, the CIDRs
    /// of a CIDR group, the EndpointSlice addresses of services without a selector.
    pub cidrs: Vec<CidrSet>,
    /// Pod selectors (namespace included) of services with a selector.
    pub pods: Vec<Selector>,
}

/// A service's labels as a `k8sServiceSelector` sees them (`k8s:` source).
pub fn service_labels(svc: &ir::Service) -> LabelSet {
    let labels = svc.labels.iter();
    LabelSet::new(labels.map(|(k, v)| ir::Label::k8s(k, v)).collect())
}

/// The pods a service with a selector stands for: its `spec.selector` as `k8s:` labels, in
/// its namespace.
pub fn service_pods(svc: &ir::Service) -> Selector {
    let mut reqs: Vec<Requirement> = svc
        .selector
        .iter()
        .map(|(k, v)| {
            let key = LabelKey::new(LabelSource::K8s, k.clone());
            Requirement::new(key, Operator::In, vec![v.clone()])
        })
        .collect();
    reqs.push(namespace_requirement(&svc.namespace));
    Selector::new(reqs)
}

impl Cluster {
    pub fn cidr_group(&self, name: &str) -> Option<&ir::CidrGroup> {
        self.cidr_groups.get(name)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ir::Service> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// The addresses of the EndpointSlices of a service (sorted, each once).
    pub fn service_addresses(&self, svc: &ir::Service) -> &[IpAddr] {
        self.service_addrs
            .get(&(svc.namespace.clone(), svc.name.clone()))
            .map_or(&[], Vec::as_slice)
    }

    /// The services a `toServices` peer names: by name, or those whose labels its selector
    /// matches, in its namespace (every namespace when it has none).
    pub fn services_of<'a>(
        &'a self,
        name: Option<&'a str>,
        namespace: Option<&'a str>,
        selector: Option<&'a Selector>,
    ) -> impl Iterator<Item = &'a ir::Service> + 'a {
        self.services.values().filter(move |svc| {
            namespace.is_none_or(|ns| ns == svc.namespace)
                && name.is_none_or(|n| n == svc.name)
                && selector.is_none_or(|s| s.matches(&service_labels(svc)))
        })
    }

    /// What an identity-based CIDR peer, CIDR group reference or service peer stands for
    /// (nothing for other peers): a group's prefixes minus the reference's `except`s (none for
    /// an unknown group, as in Cilium); a service with a selector its pods, one without the
    /// addresses of its EndpointSlices as host prefixes.
    pub fn peer_ids(&self, policy: &PolicySet, peer: &Peer) -> PeerIds {
        let mut out = PeerIds::default();
        match peer {
            Peer::Cidr {
                set,
                by_address: false,
            } => out.cidrs.push(set.clone()),
            Peer::CidrGroup { name, except } => {
                if let Some(g) = self.cidr_groups.get(name) {
                    out.cidrs = ir::net::group_sets(&g.cidrs, except);
                }
            }
            Peer::Service {
                name,
                namespace,
                selector,
            } => {
                let sel = selector.map(|h| &policy.selectors[h]);
                for svc in self.services_of(name.as_deref(), namespace.as_deref(), sel) {
                    if svc.selector.is_empty() {
                        let hosts = self.service_addresses(svc).iter();
                        out.cidrs
                            .extend(hosts.map(|a| CidrSet::new(IpNet::from(*a), vec![])));
                    } else {
                        out.pods.push(service_pods(svc));
                    }
                }
                out.cidrs.sort();
                out.cidrs.dedup();
                out.pods.sort();
                out.pods.dedup();
            }
            _ => {}
        }
        out
    }
}
