//! Builds a [`Cluster`] from the front end's inventory and the policy set's CIDR peers.

use super::{Cluster, ClusterConfig, ClusterEndpoint};
use crate::identity::{alloc::key_of, derive_labels};
use ir::{Inventory, LabelSet, PeerSet, PolicySet};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClusterError {
    #[error("no numeric identity left to allocate")]
    #[diagnostic(code(cluster::identities_exhausted))]
    IdentitiesExhausted,
    #[error("cluster-wide identity allocation failed: {0}")]
    #[diagnostic(code(cluster::shared_identities))]
    SharedIdentities(String),
    #[error("endpoint `{name}` is defined twice ({first} and {second})")]
    #[diagnostic(
        code(cluster::duplicate_endpoint),
        help("endpoint names (`namespace/name`) must be unique")
    )]
    DuplicateEndpoint {
        name: String,
        first: String,
        second: String,
    },
    #[error("{kind} `{name}` is defined twice ({first} and {second})")]
    #[diagnostic(
        code(cluster::duplicate_object),
        help("names are unique per namespace for Services, per cluster for Nodes and CiliumCIDRGroups")
    )]
    DuplicateObject {
        kind: &'static str,
        name: String,
        first: String,
        second: String,
    },
}

/// `file:line` of an inventory object.
fn origin_at(policy: &PolicySet, file: Option<ir::FileId>, span: ir::Span) -> Option<String> {
    let path = policy.files.get(file?.0 as usize)?.path.as_str();
    Some(format!("{path}:{}", span.line))
}

fn origin(policy: &PolicySet, ep: &ir::Endpoint) -> Option<String> {
    origin_at(policy, ep.file, ep.span)
}

/// `items.map(f)` on all available cores, in order.
fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let workers = crate::par::workers();
    let chunk = items.len().div_ceil(workers.max(1)).max(1);
    if workers <= 1 || items.len() < 256 {
        return items.iter().map(f).collect();
    }
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<U>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

impl Cluster {
    /// Every inventory endpoint with its derived labels, the CIDR groups, services and their
    /// EndpointSlice addresses, and a CIDR identity for every prefix
    /// (and `except` prefix) of an identity-based CIDR peer in `policy`.
    ///
    /// Endpoint label sets are allocated in sorted order, so the numbering does not depend on the
    /// order of files or objects.
    pub fn build(
        inventory: &Inventory,
        policy: &PolicySet,
        config: ClusterConfig,
    ) -> Result<Cluster, ClusterError> {
        let mut c = Cluster::new(config);
        for ns in &inventory.namespaces {
            c.namespaces.insert(ns.name.clone(), ns.clone());
        }
        let at = |file, span| origin_at(policy, file, span).unwrap_or_else(|| "input".into());
        type At = (Option<ir::FileId>, ir::Span);
        let dup = |kind, name: String, first: At, second: At| ClusterError::DuplicateObject {
            kind,
            name,
            first: at(first.0, first.1),
            second: at(second.0, second.1),
        };
        for g in &inventory.cidr_groups {
            if let Some(first) = c.cidr_groups.insert(g.name.clone(), g.clone()) {
                let name = g.name.clone();
                return Err(dup(
                    "CiliumCIDRGroup",
                    name,
                    (first.file, first.span),
                    (g.file, g.span),
                ));
            }
        }
        for svc in &inventory.services {
            let key = (svc.namespace.clone(), svc.name.clone());
            if let Some(first) = c.services.insert(key, svc.clone()) {
                let name = format!("{}/{}", svc.namespace, svc.name);
                let (a, b) = ((first.file, first.span), (svc.file, svc.span));
                return Err(dup("Service", name, a, b));
            }
        }
        for slice in &inventory.endpoint_slices {
            let key = (slice.namespace.clone(), slice.service.clone());
            let addrs = c.service_addrs.entry(key).or_default();
            addrs.extend(slice.addresses.iter().copied());
            addrs.sort();
            addrs.dedup();
        }
        let mut seen: HashMap<&str, &ir::Endpoint> = HashMap::new();
        for ep in &inventory.endpoints {
            if let Some(first) = seen.insert(&ep.name, ep) {
                let at = |e| origin(policy, e).unwrap_or_else(|| "input".into());
                return Err(ClusterError::DuplicateEndpoint {
                    name: ep.name.clone(),
                    first: at(first),
                    second: at(ep),
                });
            }
        }
        let filter = &c.config.label_filter;
        let (namespaces, cluster_name) = (&c.namespaces, &c.config.cluster_name);
        let mut eps: Vec<(LabelSet, ClusterEndpoint)> = par_map(&inventory.endpoints, |ep| {
            let ns = ep.namespace.as_deref().and_then(|n| namespaces.get(n));
            let labels = derive_labels(ep, ns, cluster_name);
            let relevant = filter.relevant(&labels);
            let ep = ClusterEndpoint {
                name: ep.name.clone(),
                namespace: ep.namespace.clone(),
                kind: ep.kind.clone(),
                workload: ep.workload.clone(),
                labels,
                identity: ir::NumericIdentity::WILDCARD,
                ips: ep.ips.clone(),
                ports: ep.ports.clone(),
                origin: origin(policy, ep),
            };
            (relevant, ep)
        });
        eps.sort_by(|a, b| a.0.cmp(&b.0));
        // Sorted, so endpoints sharing a label set are adjacent: one allocation key each.
        let mut last = ir::NumericIdentity::WILDCARD;
        let mut key = String::new();
        for (i, (relevant, ep)) in eps.into_iter().enumerate() {
            if i == 0 || Some(&relevant) != c.identity(last).map(|x| &x.labels) {
                key = key_of(&relevant);
            }
            last = c.add_with_relevant(ep, relevant, &key)?.identity;
        }
        c.add_nodes(inventory, at)?;
        c.add_policy_cidrs(policy)?;
        Ok(c)
    }

    /// Allocates CIDR identities for the identity-based CIDR peers of `policy` (CIDR sets, the
    /// prefixes of the CIDR groups they refer to, the EndpointSlice addresses of services
    /// without a selector).
    pub fn add_policy_cidrs(&mut self, policy: &PolicySet) -> Result<(), ClusterError> {
        let mut prefixes = std::collections::BTreeSet::new();
        for rule in &policy.rules {
            if let PeerSet::Some(peers) = &rule.peers {
                for set in peers.iter().flat_map(|p| self.peer_ids(policy, p).cidrs) {
                    prefixes.insert(set.cidr);
                    prefixes.extend(set.except.iter().copied());
                }
            }
        }
        for p in prefixes {
            self.add_cidr(p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir::{Endpoint, NumericIdentity};

    fn pod(name: &str, app: &str, ip: &str) -> Endpoint {
        let labels = [("id", app), ("pod-template-hash", name)];
        let ip = ip.parse().expect("test address");
        crate::testkit::pod_at("default", name, &labels, &[ip])
    }

    #[test]
    fn same_relevant_labels_share_an_identity() {
        let inv = Inventory {
            namespaces: vec![],
            endpoints: vec![
                pod("a1", "app1", "10.0.0.1"),
                pod("a2", "app1", "10.0.0.2"),
                pod("b", "app2", "10.0.0.3"),
            ],
            ..Default::default()
        };
        let c = Cluster::build(&inv, &PolicySet::default(), ClusterConfig::default()).unwrap();
        let id = |n: &str| c.endpoint(n).unwrap().identity;
        assert_eq!(id("default/a1"), id("default/a2"));
        assert_ne!(id("default/a1"), id("default/b"));
        assert!(id("default/a1").0 >= 256);
        assert_eq!(
            c.identity_of_addr("10.0.0.2".parse().unwrap()),
            id("default/a1")
        );
        assert_eq!(
            c.identity_of_addr("8.8.8.8".parse().unwrap()),
            NumericIdentity::WORLD
        );
        // Adding unrelated endpoints keeps the numbers.
        let mut inv2 = inv.clone();
        inv2.endpoints.push(pod("z", "zzz", "10.0.0.9"));
        let c2 = Cluster::build(&inv2, &PolicySet::default(), ClusterConfig::default()).unwrap();
        assert_eq!(c2.endpoint("default/b").unwrap().identity, id("default/b"));
    }

    #[test]
    fn last_holder_releases_the_identity() {
        let mut c = Cluster::new(ClusterConfig::default());
        let inv = Inventory {
            namespaces: vec![],
            endpoints: vec![pod("a1", "app1", "10.0.0.1")],
            ..Default::default()
        };
        let c0 = Cluster::build(&inv, &PolicySet::default(), ClusterConfig::default()).unwrap();
        let ep = c0.endpoint("default/a1").unwrap().clone();
        let ch = c.add_endpoint(ep.clone()).unwrap();
        assert!(ch.identity_changed);
        assert!(
            !c.add_endpoint(ClusterEndpoint {
                name: "default/a9".into(),
                ..ep
            })
            .unwrap()
            .identity_changed
        );
        assert!(!c.remove_endpoint("default/a1").unwrap().identity_changed);
        assert!(c.remove_endpoint("default/a9").unwrap().identity_changed);
        assert!(c.identity(ch.identity).is_none());
    }
}
