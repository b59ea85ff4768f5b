//! Nodes: the identity of a node's `InternalIP` addresses depends on who looks. On the node
//! itself they are `host` (1), whose labels are that node's labels; on every other node they
//! are the node's own identity (remote-node scope, 0x02000000 + n) carrying its labels and
//! `reserved:remote-node`, as in Cilium ≥ 1.16 with `--enable-node-selector-labels`, where each
//! node's ipcache is its own view. Nodes with equal labels share an identity. Every node gets
//! one, the local node included (other nodes' views need it). [`Cluster::ipcache`] is the
//! local node's view; [`Cluster::ipcache_for`] gives another node's, and `trace` takes the
//! identity of a node address as the endpoint evaluating its rules sees it
//! ([`Cluster::seen_from`], [`Cluster::node_seen_from`]).

use super::{Cluster, ClusterError};
use crate::identity::{alloc::key_of, node_labels, IdentityInfo, IdentityKind};

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
            let labels = node_labels(Some(n), "remote-node");
            let (id, fresh) = self
                .node_ids
                .allocate(&key_of(&labels))
                .ok_or(ClusterError::IdentitiesExhausted)?;
            if fresh {
                let kind = IdentityKind::Node;
                self.identities
                    .insert(id, IdentityInfo { id, labels, kind });
            }
            self.node_identity.insert(n.name.clone(), id);
            if n.name == self.config.local_node {
                if let Some(host) = self.identities.get_mut(&NumericIdentity::HOST) {
                    host.labels = node_labels(Some(n), "host");
                }
            }
            let seen = self.node_identity(&n.name, &self.config.local_node);
            for a in &n.addresses {
                self.node_of_addr.insert(*a, n.name.clone());
                self.ipcache.insert(IpNet::from(*a), seen);
            }
        }
        for ep in &inventory.endpoints {
            if let Some(node) = &ep.node {
                self.node_of_endpoint.insert(ep.name.clone(), node.clone());
            }
        }
        Ok(())
    }

    /// `host` for a node seen from itself, its node identity from any other.
    fn node_identity(&self, node: &str, viewer: &str) -> NumericIdentity {
        if node == viewer {
            NumericIdentity::HOST
        } else {
            self.node_identity
                .get(node)
                .copied()
                .unwrap_or(NumericIdentity::REMOTE_NODE)
        }
    }

    pub fn node(&self, name: &str) -> Option<&ir::Node> {
        self.nodes.get(name)
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

    /// [`Cluster::seen_from`] with the identity's labels as that node sees them: `host` carries
    /// the labels of the viewer (the local node's in [`Cluster::identity`]).
    pub fn node_seen_from(&self, addr: IpAddr, viewer: &str) -> Option<IdentityInfo> {
        let id = self.seen_from(addr, viewer)?;
        if id != NumericIdentity::HOST {
            return self.identity(id).cloned();
        }
        Some(IdentityInfo {
            id,
            labels: node_labels(self.nodes.get(viewer), "host"),
            kind: IdentityKind::Reserved,
        })
    }

    /// The ipcache as node `node` sees it: the local view with every node address as
    /// `host` or that node's identity from there.
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
    use crate::identity::IdentityKind;
    use ir::PolicySet;

    fn node(name: &str, ip: &str) -> ir::Node {
        ir::Node {
            name: name.into(),
            labels: vec![("kubernetes.io/hostname".into(), name.into())],
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
        let (id_a, id_b) = (c.node_identity["node0"], c.node_identity["b"]);
        assert!(id_a.is_node() && id_b.is_node() && id_a != id_b);
        let info_b = c.identity(id_b).unwrap();
        assert_eq!(info_b.kind, IdentityKind::Node);
        assert_eq!(
            info_b.labels.to_string(),
            "k8s:kubernetes.io/hostname=b reserved:remote-node"
        );
        assert!(crate::identity::entity_selects(
            ir::Entity::RemoteNode,
            info_b
        ));
        assert!(crate::identity::entity_selects(ir::Entity::Cluster, info_b));
        assert!(!crate::identity::entity_selects(ir::Entity::World, info_b));
        let host = c.identity(NumericIdentity::HOST).unwrap();
        assert_eq!(
            host.labels.to_string(),
            "k8s:kubernetes.io/hostname=node0 reserved:host"
        );
        assert_eq!(c.identity_of_addr(a), NumericIdentity::HOST);
        assert_eq!(c.identity_of_addr(b), id_b);
        assert_eq!(c.node_of("default/p"), "b");
        assert_eq!(c.node_of("default/other"), DEFAULT_NODE);
        assert_eq!(c.seen_from(b, "b"), Some(NumericIdentity::HOST));
        assert_eq!(c.seen_from(a, "b"), Some(id_a));
        assert_eq!(c.seen_from("10.0.0.1".parse().unwrap(), "b"), None);
        let host_on_b = c.node_seen_from(b, "b").unwrap();
        assert_eq!(host_on_b.id, NumericIdentity::HOST);
        assert_eq!(
            host_on_b.labels.to_string(),
            "k8s:kubernetes.io/hostname=b reserved:host"
        );
        let on_b = c.ipcache_for("b");
        assert_eq!(on_b.lookup(a), id_a);
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
