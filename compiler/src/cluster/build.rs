//! Builds a [`Cluster`] from the front end's inventory and the policy set's CIDR peers.

use super::{Cluster, ClusterConfig, ClusterEndpoint};
use crate::identity::derive_labels;
use ir::{Inventory, Peer, PeerSet, PolicySet};

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
}

fn origin(policy: &PolicySet, ep: &ir::Endpoint) -> Option<String> {
    let f = ep.file?;
    let path = policy.files.get(f.0 as usize)?.path.as_str();
    Some(format!("{path}:{}", ep.span.line))
}

impl Cluster {
    /// Every inventory endpoint with its derived labels, and a CIDR identity for every prefix
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
        let mut eps: Vec<ClusterEndpoint> = Vec::with_capacity(inventory.endpoints.len());
        let mut seen = std::collections::HashMap::new();
        for ep in &inventory.endpoints {
            let here = origin(policy, ep).unwrap_or_else(|| "input".into());
            if let Some(first) = seen.insert(ep.name.clone(), here.clone()) {
                return Err(ClusterError::DuplicateEndpoint {
                    name: ep.name.clone(),
                    first,
                    second: here,
                });
            }
            let ns = ep.namespace.as_deref().and_then(|n| c.namespaces.get(n));
            eps.push(ClusterEndpoint {
                name: ep.name.clone(),
                namespace: ep.namespace.clone(),
                kind: ep.kind.clone(),
                labels: derive_labels(ep, ns, &c.config.cluster_name),
                identity: ir::NumericIdentity::WILDCARD,
                ips: ep.ips.clone(),
                ports: ep.ports.clone(),
                origin: origin(policy, ep),
            });
        }
        let filter = c.config.label_filter.clone();
        eps.sort_by_cached_key(|e| filter.relevant(&e.labels));
        for ep in eps {
            c.add_endpoint(ep)?;
        }
        c.add_policy_cidrs(policy)?;
        Ok(c)
    }

    /// Allocates CIDR identities for the identity-based CIDR peers of `policy`.
    pub fn add_policy_cidrs(&mut self, policy: &PolicySet) -> Result<(), ClusterError> {
        let mut prefixes = std::collections::BTreeSet::new();
        for rule in &policy.rules {
            if let PeerSet::Some(peers) = &rule.peers {
                for p in peers {
                    if let Peer::Cidr {
                        set,
                        by_address: false,
                    } = p
                    {
                        prefixes.insert(set.cidr);
                        prefixes.extend(set.except.iter().copied());
                    }
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
    use ir::{Endpoint, LabelSet, NumericIdentity};

    fn pod(name: &str, app: &str, ip: &str) -> Endpoint {
        Endpoint {
            name: format!("default/{name}"),
            namespace: Some("default".into()),
            kind: "Pod".into(),
            k8s_labels: vec![
                ("id".into(), app.into()),
                ("pod-template-hash".into(), name.into()),
            ],
            labels: LabelSet::default(),
            service_account: None,
            ports: vec![],
            ips: vec![ip.parse().unwrap()],
            file: None,
            span: Default::default(),
        }
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
