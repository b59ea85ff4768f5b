//! The agent's REST API types (request and reply bodies), shared by the server and the CLI client.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An endpoint as created through `PUT /v1/endpoint/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub id: u16,
    /// Host-side interface (the veth end in the node's namespace).
    pub iface: String,
    /// `[source:]key[=value]` labels (source `container` when absent); ignored with `pod`.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// `namespace/name` of an applied Pod: labels come from it, and addresses too unless
    /// `ipv4`/`ipv6` are given (a CNI plugin passes the addresses the runtime assigned).
    #[serde(default)]
    pub pod: Option<String>,
    /// The container runtime's id of a CNI endpoint (`PUT /v1/endpoint/container-id:ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

/// `PATCH /v1/endpoint/{id}`: fields to change (any other field is refused). `id` may only
/// repeat the endpoint's own; a pod endpoint's labels and addresses come from its Pod.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    #[serde(default)]
    pub iface: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
}

/// `PUT /v1/endpoint/{id}/labels`: a label modifier, applied as a whole.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LabelsPatch {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub delete: Vec<String>,
}

/// What `GET /v1/endpoint[/{id}]` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointStatus {
    pub id: u16,
    pub iface: String,
    pub pod: Option<String>,
    /// The container of a CNI endpoint.
    #[serde(default)]
    pub container_id: Option<String>,
    /// Every label of the endpoint (`source:key=value`).
    pub labels: Vec<String>,
    pub identity: u32,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    /// Policy revision the datapath enforces for this endpoint.
    pub policy_revision: u64,
    /// Entries in the endpoint's policy map.
    pub policy_entries: usize,
    /// `ready`, or `not-ready` with `error`.
    pub state: String,
    pub error: Option<String>,
}

/// One policy source (a file the client read) as stored by the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDoc {
    /// The path as the client named it; re-applying the same path replaces its objects.
    pub path: String,
    pub text: String,
}

/// `PUT /v1/policy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyPut {
    pub sources: Vec<SourceDoc>,
    /// Reply only once every affected endpoint enforces the new revision (default).
    #[serde(default = "yes")]
    pub wait: bool,
}

/// `DELETE /v1/policy`: every rule (`all`: Namespaces and Pods stay), the sources at these
/// paths (rules and inventory), or exactly the rules that carry all of these labels (seed §8).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PolicyDelete {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

/// Reply to changes: the policy revision they produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevisionReply {
    pub revision: u64,
    /// Whether the datapath enforces it already (false with `wait: false`).
    pub enforced: bool,
}

/// `GET /v1/endpoint/{id}/datapath`: whether the kernel runs the endpoint's own programs on
/// its interface (what the CNI CHECK asks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathCheck {
    pub id: u16,
    /// Its programs attached on its interface, using its maps, and nothing else there.
    pub attached: bool,
    /// What is wrong, when not `attached`.
    pub problem: Option<String>,
}

/// `GET /v1/policy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyReply {
    pub revision: u64,
    pub sources: Vec<SourceDoc>,
    /// The rules in force, in the IR's text form.
    pub rules: String,
    /// Per source path, the label lists of `policy delete` requests still applied to it: the
    /// source text's rules carrying every label of one list are not in `rules`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deleted_labels: BTreeMap<String, Vec<Vec<String>>>,
}

/// One entry of `GET /v1/policy/revisions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub revision: u64,
    pub unix_time: u64,
    /// `put`, `delete`, or `endpoint` for endpoint changes.
    pub action: String,
    pub paths: Vec<String>,
}

/// Error body of every non-2xx reply.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
    /// Rendered diagnostics (`file:line:column: code: message`) of a refused policy.
    #[serde(default)]
    pub diagnostics: Vec<String>,
}

/// `GET /v1/healthz`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Healthz {
    pub status: String,
    pub policy_revision: u64,
    pub endpoints: usize,
    pub identities: usize,
    /// `tcx`, `netlink`, or `disabled` (no BPF).
    pub datapath: String,
}

/// `GET /v1/identity[/{id}]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdentityReply {
    pub id: u32,
    pub labels: Vec<String>,
}
