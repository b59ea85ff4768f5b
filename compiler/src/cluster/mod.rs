//! The world the policies apply to: endpoints with their labels, identities and addresses, every
//! identity (reserved, endpoint, CIDR), nodes, the objects peers refer to (CIDR groups,
//! services), and the ipcache. Built from the front end's inventory and the policy set (for
//! CIDR identities), and updated endpoint by endpoint by the agent.

mod build;
mod fqdn;
mod load;
mod nodes;
pub mod ports;
mod refs;

pub use build::ClusterError;
pub use fqdn::{fqdn_labels, FqdnChange};
pub use load::{load, LoadError};
pub use nodes::DEFAULT_NODE;
pub use refs::{service_labels, service_pods, PeerIds};

use crate::identity::{
    alloc::key_of, reserved_labels, IdAllocator, IdentityInfo, IdentityKind, LabelFilter,
};
use ir::{IpCache, IpNet, LabelSet, NamedPort, NumericIdentity};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Knobs that change identities or enforcement; defaults follow Cilium on Kubernetes.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Identity-relevant label prefixes (agent `--labels`).
    pub label_filter: LabelFilter,
    /// Value of `k8s:io.cilium.k8s.policy.cluster`.
    pub cluster_name: String,
    /// Unknown addresses are `world-ipv4`/`world-ipv6` (9/10) instead of `world` (2).
    pub dual_stack: bool,
    /// Traffic from the local host to its endpoints is always allowed (Kubernetes requires it for
    /// probes; Cilium's `--allow-localhost=always`, the default on Kubernetes).
    pub allow_localhost: bool,
    /// Endpoint identities numbered cluster-wide by this store (the agent's `--kvstore`)
    /// instead of locally.
    pub shared_identities: Option<std::sync::Arc<dyn crate::identity::SharedIdentities>>,
    /// Every endpoint's policy in audit mode (the agent's `--policy-audit-mode`).
    pub audit_all: bool,
    /// The local node (the agent's `--node`, `--node` of the offline commands): pods without
    /// `spec.nodeName` run here, and the ipcache is this node's view (its own `Node`
    /// addresses are `host`, with its labels; other nodes' their node identities).
    pub local_node: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            label_filter: LabelFilter::default(),
            cluster_name: "default".into(),
            dual_stack: false,
            allow_localhost: true,
            shared_identities: None,
            audit_all: false,
            local_node: DEFAULT_NODE.into(),
        }
    }
}

/// One endpoint as the semantics stage sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterEndpoint {
    /// `namespace/name` (or the user's name for endpoints given by labels).
    pub name: String,
    pub namespace: Option<String>,
    pub kind: String,
    /// `Kind/name` of its workload ([`ir::Endpoint::workload`]).
    pub workload: Option<String>,
    /// All derived labels (shown by `endpoints`); `identity` is allocated from the relevant subset.
    pub labels: LabelSet,
    pub identity: NumericIdentity,
    pub ips: Vec<IpAddr>,
    pub ports: Vec<NamedPort>,
    /// `file:line` of the manifest, when it came from one.
    pub origin: Option<String>,
}

/// Endpoints, identities and ipcache.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub config: ClusterConfig,
    endpoints: BTreeMap<String, ClusterEndpoint>,
    identities: BTreeMap<NumericIdentity, IdentityInfo>,
    /// Endpoints per endpoint identity (identities are released when this drops to zero).
    members: HashMap<NumericIdentity, Vec<String>>,
    ep_ids: IdAllocator,
    cidr_ids: IdAllocator,
    ipcache: IpCache,
    namespaces: HashMap<String, ir::Namespace>,
    /// `CiliumCIDRGroup`s by name (what `cidrGroupRef` refers to).
    cidr_groups: BTreeMap<String, ir::CidrGroup>,
    /// Services by (namespace, name), and the addresses of their EndpointSlices.
    services: BTreeMap<(String, String), ir::Service>,
    service_addrs: BTreeMap<(String, String), Vec<IpAddr>>,
    /// Nodes by name, the node of each node address, and the node of each endpoint that
    /// names one (`spec.nodeName`).
    nodes: BTreeMap<String, ir::Node>,
    node_of_addr: HashMap<IpAddr, String>,
    node_of_endpoint: HashMap<String, String>,
    /// Addresses learned from DNS answers (`toFQDNs`) and their identities (`fqdn.rs`).
    fqdn: BTreeMap<IpAddr, NumericIdentity>,
    /// Node identities (remote-node scope) by label set, and each node's.
    node_ids: IdAllocator,
    node_identity: HashMap<String, NumericIdentity>,
}

/// What adding or removing an endpoint did to the identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointChange {
    pub identity: NumericIdentity,
    /// The identity was allocated (add) or released (remove) by this change.
    pub identity_changed: bool,
}

impl Cluster {
    /// An empty cluster holding the reserved identities.
    pub fn new(config: ClusterConfig) -> Self {
        let identities = NumericIdentity::RESERVED
            .iter()
            .map(|(id, _)| {
                let labels = reserved_labels(*id).unwrap_or_default();
                (
                    *id,
                    IdentityInfo {
                        id: *id,
                        labels,
                        kind: IdentityKind::Reserved,
                    },
                )
            })
            .collect();
        Cluster {
            config,
            endpoints: BTreeMap::new(),
            identities,
            members: HashMap::new(),
            ep_ids: IdAllocator::cluster(),
            cidr_ids: IdAllocator::local(),
            ipcache: IpCache::default(),
            namespaces: HashMap::new(),
            cidr_groups: BTreeMap::new(),
            services: BTreeMap::new(),
            service_addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            node_of_addr: HashMap::new(),
            node_of_endpoint: HashMap::new(),
            fqdn: BTreeMap::new(),
            node_ids: IdAllocator::remote_node(),
            node_identity: HashMap::new(),
        }
    }

    pub fn endpoints(&self) -> impl ExactSizeIterator<Item = &ClusterEndpoint> {
        self.endpoints.values()
    }
    pub fn endpoint(&self, name: &str) -> Option<&ClusterEndpoint> {
        self.endpoints.get(name)
    }
    pub fn identities(&self) -> impl ExactSizeIterator<Item = &IdentityInfo> {
        self.identities.values()
    }
    pub fn identity(&self, id: NumericIdentity) -> Option<&IdentityInfo> {
        self.identities.get(&id)
    }
    /// Endpoints holding identity `id`.
    pub fn members(&self, id: NumericIdentity) -> impl Iterator<Item = &ClusterEndpoint> {
        self.members
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|n| self.endpoints.get(n))
    }
    pub fn ipcache(&self) -> &IpCache {
        &self.ipcache
    }
    pub fn namespace(&self, name: &str) -> Option<&ir::Namespace> {
        self.namespaces.get(name)
    }

    /// The identity of an address: longest ipcache prefix, else `world` (`world-ipv4`/`world-ipv6`
    /// when dual-stack is modelled).
    pub fn identity_of_addr(&self, addr: IpAddr) -> NumericIdentity {
        addr_identity(&self.ipcache, self.config.dual_stack, addr)
    }

    /// The identity the given labels would get (without adding anything); allocated identities
    /// keep their number, unknown label sets get the number they would be allocated.
    pub fn identity_for_labels(&self, labels: &LabelSet) -> NumericIdentity {
        let relevant = self.config.label_filter.relevant(labels);
        let key = key_of(&relevant);
        if let Some(id) = self.ep_ids.get(&key) {
            return id;
        }
        let mut probe = self.ep_ids.clone();
        probe
            .allocate(&key)
            .map(|(id, _)| id)
            .unwrap_or(NumericIdentity::WILDCARD)
    }

    /// Numbers the identity-relevant set of `labels` in the shared store ahead of an endpoint
    /// that will carry them, so that a store that does not answer refuses a change before any
    /// of it is applied (the store remembers the number: the endpoint's add then asks it
    /// nothing new). Nothing without a shared store, or when the set is numbered here already.
    pub fn prenumber(&self, labels: &LabelSet) -> Result<(), ClusterError> {
        let Some(shared) = &self.config.shared_identities else {
            return Ok(());
        };
        let key = key_of(&self.config.label_filter.relevant(labels));
        if self.ep_ids.get(&key).is_some() {
            return Ok(());
        }
        let candidate = self
            .ep_ids
            .candidate(&key)
            .ok_or(ClusterError::IdentitiesExhausted)?;
        shared
            .allocate(&key, candidate)
            .map(drop)
            .map_err(ClusterError::SharedIdentities)
    }

    /// Adds (or replaces) an endpoint; allocates its identity from its relevant labels and puts
    /// its addresses in the ipcache.
    pub fn add_endpoint(&mut self, ep: ClusterEndpoint) -> Result<EndpointChange, ClusterError> {
        let relevant = self.config.label_filter.relevant(&ep.labels);
        let key = key_of(&relevant);
        self.add_with_relevant(ep, relevant, &key)
    }

    /// `add_endpoint` with the identity-relevant labels and their allocation key computed.
    fn add_with_relevant(
        &mut self,
        mut ep: ClusterEndpoint,
        relevant: LabelSet,
        key: &str,
    ) -> Result<EndpointChange, ClusterError> {
        if self.endpoints.contains_key(&ep.name) {
            self.remove_endpoint(&ep.name.clone());
        }
        let (id, fresh) = self.allocate_endpoint_identity(key)?;
        if fresh {
            self.identities.insert(
                id,
                IdentityInfo {
                    id,
                    labels: relevant,
                    kind: IdentityKind::Endpoint,
                },
            );
        }
        ep.identity = id;
        // A node's address keeps the node's identity (a host-network pod's address is the
        // node's), whether the endpoint comes before the node (`build`) or after it.
        for ip in ep
            .ips
            .iter()
            .filter(|ip| !self.node_of_addr.contains_key(ip))
        {
            self.ipcache.insert(IpNet::from(*ip), id);
        }
        self.members.entry(id).or_default().push(ep.name.clone());
        self.endpoints.insert(ep.name.clone(), ep);
        Ok(EndpointChange {
            identity: id,
            identity_changed: fresh,
        })
    }

    /// The identity of an endpoint label set: from the shared store when one is configured and
    /// the set is new here, else by local allocation.
    fn allocate_endpoint_identity(
        &mut self,
        key: &str,
    ) -> Result<(NumericIdentity, bool), ClusterError> {
        let shared = match &self.config.shared_identities {
            Some(s) if self.ep_ids.get(key).is_none() => s.clone(),
            _ => {
                return self
                    .ep_ids
                    .allocate(key)
                    .ok_or(ClusterError::IdentitiesExhausted)
            }
        };
        let candidate = self
            .ep_ids
            .candidate(key)
            .ok_or(ClusterError::IdentitiesExhausted)?;
        let id = shared
            .allocate(key, candidate)
            .map_err(ClusterError::SharedIdentities)?;
        let fresh = self
            .ep_ids
            .assign(key, id)
            .map_err(ClusterError::SharedIdentities)?;
        Ok((id, fresh))
    }

    /// Removes an endpoint, its ipcache entries, and its identity when it was the last holder.
    pub fn remove_endpoint(&mut self, name: &str) -> Option<EndpointChange> {
        let ep = self.endpoints.remove(name)?;
        self.node_of_endpoint.remove(name);
        for ip in &ep.ips {
            let net = IpNet::from(*ip);
            if self.ipcache.entries.get(&net) == Some(&ep.identity) {
                self.ipcache.entries.remove(&net);
            }
        }
        let holders = self.members.entry(ep.identity).or_default();
        holders.retain(|n| n != name);
        let released = holders.is_empty();
        if released {
            self.members.remove(&ep.identity);
            if let Some(info) = self.identities.remove(&ep.identity) {
                self.ep_ids.release(&key_of(&info.labels));
            }
        }
        Some(EndpointChange {
            identity: ep.identity,
            identity_changed: released,
        })
    }

    /// The CIDR identity of `prefix` if it is allocated (`world` for `/0`).
    pub fn cidr_identity(&self, prefix: IpNet) -> Option<NumericIdentity> {
        let prefix = prefix.trunc();
        if prefix.prefix_len() == 0 {
            return Some(NumericIdentity::WORLD);
        }
        self.cidr_ids
            .get(&key_of(&crate::identity::cidr_labels(prefix)))
    }

    /// Releases the CIDR identity of `prefix` and its ipcache entry (the agent, when no rule
    /// refers to the prefix any more); returns the released identity. `/0` is never released.
    pub fn remove_cidr(&mut self, prefix: IpNet) -> Option<NumericIdentity> {
        let prefix = prefix.trunc();
        if prefix.prefix_len() == 0 {
            return None;
        }
        let id = self
            .cidr_ids
            .release(&key_of(&crate::identity::cidr_labels(prefix)))?;
        self.identities.remove(&id);
        if self.ipcache.entries.get(&prefix) == Some(&id) {
            self.ipcache.entries.remove(&prefix);
        }
        Some(id)
    }

    /// Adds or replaces a namespace (its labels feed the labels of endpoints added after).
    pub fn set_namespace(&mut self, ns: ir::Namespace) {
        self.namespaces.insert(ns.name.clone(), ns);
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Adds a local CIDR identity for `prefix` (idempotent) and its ipcache entry. `/0` is `world`.
    pub fn add_cidr(&mut self, prefix: IpNet) -> Result<NumericIdentity, ClusterError> {
        let prefix = prefix.trunc();
        if prefix.prefix_len() == 0 {
            return Ok(NumericIdentity::WORLD);
        }
        let labels = crate::identity::cidr_labels(prefix);
        let key = key_of(&labels);
        let (id, fresh) = self.allocate_cidr_identity(labels, &key, prefix)?;
        if fresh {
            self.ipcache.entries.entry(prefix).or_insert(id);
        }
        Ok(id)
    }

    /// The local CIDR identity of `labels` (whose [`key_of`] is `key`), allocated with its
    /// identity info for `prefix` when new (`true`); shared by `toCIDR` prefixes and addresses
    /// learned for `toFQDNs`.
    pub(crate) fn allocate_cidr_identity(
        &mut self,
        labels: LabelSet,
        key: &str,
        prefix: IpNet,
    ) -> Result<(NumericIdentity, bool), ClusterError> {
        let (id, fresh) = self
            .cidr_ids
            .allocate(key)
            .ok_or(ClusterError::IdentitiesExhausted)?;
        if fresh {
            self.identities.insert(
                id,
                IdentityInfo {
                    id,
                    labels,
                    kind: IdentityKind::Cidr(prefix),
                },
            );
        }
        Ok((id, fresh))
    }
}

/// The identity of `addr` in `ipcache` ([`Cluster::identity_of_addr`]), for readers holding a
/// copy of the ipcache: outside the cluster's prefixes, `world` (`world-ipv4` / `world-ipv6`
/// in a dual-stack cluster).
pub fn addr_identity(ipcache: &IpCache, dual_stack: bool, addr: IpAddr) -> NumericIdentity {
    let id = ipcache.lookup(addr);
    if id != NumericIdentity::WORLD || !dual_stack {
        return id;
    }
    match addr {
        IpAddr::V4(_) => NumericIdentity::WORLD_IPV4,
        IpAddr::V6(_) => NumericIdentity::WORLD_IPV6,
    }
}
