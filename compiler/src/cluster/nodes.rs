//! Nodes: the identity of a node's `InternalIP` addresses depends on who looks. On the node
//! itself they are `host` (1), on every other node `remote-node` (6), as in Cilium, where each
//! node's ipcache is its own view. [`Cluster::ipcache`] is the local node's view;
//! [`Cluster::ipcache_for`] gives another node's, and `trace` takes the identity of a node
//! address as the endpoint evaluating its rules sees it ([`Cluster::seen_from`]).

use super::{Cluster, ClusterError};

/// The default local node name (the agent's default `--node`).
pub const DEFAULT_NODE: &str = "node0";
use ir::{Inventory, IpCache, IpNet, NumericIdentity};
use std::net::IpAddr;

impl Cluster {
    /// Adds the inventory's nodes: their addresses go to the ipcache as the local node sees
    /// them (after the endpoints: a host-network pod's address is the node's), and the node of
    /// every endpoint that names one is remembered.
    pub(super) fn add_nodes(
        &mut self,
        inventory: &Inventory,
        at: impl Fn(Option<ir::FileId>, ir::Span) -> String,
    ) -> Result<(), ClusterError> {
        for n in &inventory.nodes {
            if let Some(first) = self.nodes.insert(n.name.clone(), n.clone()) {
                return Err(ClusterError::DuplicateObject {
                    kind: "Node",
                    name: n.name.clone(),
                    first: at(first.file, first.span),
                    second: at(n.file, n.span),
                });
            }
            for a in &n.addresses {
                self.node_of_addr.insert(*a, n.name.clone());
                let id = self.node_identity(&n.name, &self.config.local_node);
                self.ipcache.insert(IpNet::from(*a), id);
            }
        }
        for ep in &inventory.endpoints {
            if let Some(node) = &ep.node {
                self.node_of_endpoint.insert(ep.name.clone(), node.clone());
            }
        }
        Ok(())
    }

    /// `host` for a node seen from itself, `remote-node` from any other.
    fn node_identity(&self, node: &str, viewer: &str) -> NumericIdentity {
        if node == viewer {
            NumericIdentity::HOST
        } else {
            NumericIdentity::REMOTE_NODE
        }
    }

    pub fn nodes(&self) -> impl Iterator<Item = &ir::Node> {
        self.nodes.values()
    }

    /// The node an endpoint runs on: its `spec.nodeName`, else the local node.
    pub fn node_of(&self, endpoint: &str) -> &str {
        self.node_of_endpoint
            .get(endpoint)
            .map_or(self.config.local_node.as_str(), String::as_str)
    }

    /// The identity of `addr` as an endpoint on node `viewer` sees it, when it is a node's
    /// address (`None` otherwise: every node sees other addresses alike).
    pub fn seen_from(&self, addr: IpAddr, viewer: &str) -> Option<NumericIdentity> {
        let node = self.node_of_addr.get(&addr)?;
        Some(self.node_identity(node, viewer))
    }

    /// The ipcache as node `node` sees it: the local view with every node address as
    /// `host` or `remote-node` from there.
    pub fn ipcache_for(&self, node: &str) -> IpCache {
        let mut c = self.ipcache.clone();
        for (addr, owner) in &self.node_of_addr {
            c.insert(IpNet::from(*addr), self.node_identity(owner, node));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use ir::PolicySet;

    fn node(name: &str, ip: &str) -> ir::Node {
        ir::Node {
            name: name.into(),
            labels: vec![],
            addresses: vec![ip.parse().expect("test address")],
            file: None,
            span: ir::Span::default(),
        }
    }

    #[test]
    fn a_node_is_host_to_itself_and_remote_to_the_others() {
        let mut on_b = crate::testkit::pod_at("default", "p", &[("app", "x")], &[]);
        on_b.node = Some("b".into());
        let inv = Inventory {
            nodes: vec![node("node0", "172.18.0.2"), node("b", "172.18.0.3")],
            endpoints: vec![on_b],
            ..Default::default()
        };
        let c = Cluster::build(&inv, &PolicySet::default(), ClusterConfig::default()).unwrap();
        let (a, b) = ("172.18.0.2".parse().unwrap(), "172.18.0.3".parse().unwrap());
        assert_eq!(c.identity_of_addr(a), NumericIdentity::HOST);
        assert_eq!(c.identity_of_addr(b), NumericIdentity::REMOTE_NODE);
        assert_eq!(c.node_of("default/p"), "b");
        assert_eq!(c.node_of("default/other"), DEFAULT_NODE);
        assert_eq!(c.seen_from(b, "b"), Some(NumericIdentity::HOST));
        assert_eq!(c.seen_from(a, "b"), Some(NumericIdentity::REMOTE_NODE));
        assert_eq!(c.seen_from("10.0.0.1".parse().unwrap(), "b"), None);
        let on_b = c.ipcache_for("b");
        assert_eq!(on_b.lookup(a), NumericIdentity::REMOTE_NODE);
        assert_eq!(on_b.lookup(b), NumericIdentity::HOST);
        let twice = Inventory {
            nodes: vec![node("b", "172.18.0.3"), node("b", "172.18.0.4")],
            ..Default::default()
        };
        let e = Cluster::build(&twice, &PolicySet::default(), ClusterConfig::default());
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("Node `b` is defined twice"));
    }
}
