//! What exists in the cluster: namespaces, endpoints (pods, workload templates, or endpoints
//! given directly by labels), CIDR groups, services and their EndpointSlices, nodes. The front
//! end fills it from `Namespace`, `Pod`, workload, `CiliumCIDRGroup`, `Service`,
//! `EndpointSlice` and `Node` kinds.

use crate::l4::Protocol;
use crate::label::LabelSet;
use crate::net::IpNet;
use crate::source::{FileId, Span};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    /// Raw Kubernetes labels of the namespace (key → value).
    pub labels: Vec<(String, String)>,
    /// Annotated `cilium-policy.io/audit-mode: "true"`: the policy of every endpoint in the
    /// namespace is in audit mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit: bool,
    pub file: Option<FileId>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// One endpoint: a Pod, a workload template (`namespace/name`), or a Cilium endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `namespace/name` for Kubernetes objects; the user's name otherwise.
    pub name: String,
    pub namespace: Option<String>,
    /// What kind of object produced it (`Pod`, `Deployment`, …, `Endpoint`).
    pub kind: String,
    /// The workload it belongs to, `Kind/name`: a Pod's controller (`metadata.ownerReferences`,
    /// a ReplicaSet of a Deployment taken as the Deployment), a workload template itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Raw Kubernetes labels (key → value) as written in the manifest; the identity stage
    /// derives Cilium labels (`k8s:` source, namespace labels, service account) from these.
    pub k8s_labels: Vec<(String, String)>,
    /// Labels given directly in Cilium form (endpoints described by labels), already sourced.
    pub labels: LabelSet,
    pub service_account: Option<String>,
    pub ports: Vec<NamedPort>,
    pub ips: Vec<IpAddr>,
    /// `spec.nodeName`: the node the pod runs on (`None`: the local node).
    #[serde(default)]
    pub node: Option<String>,
    pub file: Option<FileId>,
    pub span: Span,
}

/// A Kubernetes `Node`: its labels and its `InternalIP` addresses (`status.addresses`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub addresses: Vec<IpAddr>,
    pub file: Option<FileId>,
    pub span: Span,
}

/// A `CiliumCIDRGroup`: a named list of external CIDRs that `cidrGroupRef` refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrGroup {
    pub name: String,
    /// `spec.externalCIDRs`, truncated to their prefix, in manifest order.
    pub cidrs: Vec<IpNet>,
    pub file: Option<FileId>,
    pub span: Span,
}

/// A Kubernetes `Service`: its labels (what `k8sServiceSelector` matches) and its pod selector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// `metadata.labels` (key → value).
    pub labels: Vec<(String, String)>,
    /// `spec.selector` (key → value); empty for a service without a selector, whose backends
    /// are the addresses of its EndpointSlices.
    pub selector: Vec<(String, String)>,
    pub file: Option<FileId>,
    pub span: Span,
}

/// A `discovery.k8s.io/v1` EndpointSlice: the addresses of some backends of one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSlice {
    pub name: String,
    pub namespace: String,
    /// The `kubernetes.io/service-name` label: the service in `namespace` it belongs to.
    pub service: String,
    /// Every address of every endpoint (IPv4 and IPv6 slices; FQDN slices have none).
    pub addresses: Vec<IpAddr>,
    pub file: Option<FileId>,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub namespaces: Vec<Namespace>,
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub cidr_groups: Vec<CidrGroup>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub endpoint_slices: Vec<EndpointSlice>,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

impl Inventory {
    /// Appends everything `other` holds (one file's objects, merged in input order).
    pub fn extend(&mut self, other: Inventory) {
        self.namespaces.extend(other.namespaces);
        self.endpoints.extend(other.endpoints);
        self.cidr_groups.extend(other.cidr_groups);
        self.services.extend(other.services);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.nodes.extend(other.nodes);
    }
    /// Whether it holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.endpoints.is_empty()
            && self.cidr_groups.is_empty()
            && self.services.is_empty()
            && self.endpoint_slices.is_empty()
            && self.nodes.is_empty()
    }
}
