//! Flows as Hubble's `Flow` spells them: the records `monitor -o json` and the flow export
//! write and `replay` reads. Plain serde types (no agent or HTTP types), so the agent's monitor
//! and the offline commands share one definition. Fields this project does not produce (Hubble
//! has many more) are ignored when reading. `replay.rs` compares recorded verdicts with a
//! policy set's.

mod read;
mod replay;

pub use read::{parse_flows, read_flows, FlowReadError, Recorded};
pub use replay::{replay, Replay, Replayed, Skipped};

use ir::{PolicySet, RuleId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The verdict of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowVerdict {
    Forwarded,
    Dropped,
    /// Passed because the policy that would deny it is in audit mode.
    Audit,
    /// Passed to the L7 proxy.
    Redirected,
}

impl FlowVerdict {
    /// Did the packet pass?
    pub fn passed(self) -> bool {
        self != FlowVerdict::Dropped
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficDirection {
    Ingress,
    Egress,
    TrafficDirectionUnknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpVersion {
    IPv4,
    IPv6,
}

/// `IP`: the packet's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowIp {
    pub source: IpAddr,
    pub destination: IpAddr,
    #[serde(rename = "ipVersion")]
    pub ip_version: IpVersion,
}

/// Ports of TCP, UDP and SCTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    #[serde(default)]
    pub source_port: u16,
    #[serde(default)]
    pub destination_port: u16,
}

/// ICMP type and code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Icmp {
    #[serde(default, rename = "type")]
    pub icmp_type: u8,
    #[serde(default)]
    pub code: u8,
}

/// `l4`: one protocol's ports or ICMP type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layer4 {
    #[serde(rename = "TCP")]
    Tcp(Ports),
    #[serde(rename = "UDP")]
    Udp(Ports),
    #[serde(rename = "SCTP")]
    Sctp(Ports),
    #[serde(rename = "ICMPv4")]
    IcmpV4(Icmp),
    #[serde(rename = "ICMPv6")]
    IcmpV6(Icmp),
}

impl Layer4 {
    /// The protocol and the port the policy keys it by (the ICMP type for ICMP).
    pub fn policy_port(&self) -> (ir::Protocol, u16) {
        match self {
            Layer4::Tcp(p) => (ir::Protocol::Tcp, p.destination_port),
            Layer4::Udp(p) => (ir::Protocol::Udp, p.destination_port),
            Layer4::Sctp(p) => (ir::Protocol::Sctp, p.destination_port),
            Layer4::IcmpV4(i) => (ir::Protocol::Icmp, i.icmp_type as u16),
            Layer4::IcmpV6(i) => (ir::Protocol::IcmpV6, i.icmp_type as u16),
        }
    }
}

/// `source` / `destination`: the endpoint at either end (empty names for addresses outside the
/// cluster).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEndpoint {
    #[serde(default, rename = "ID")]
    pub id: u32,
    #[serde(default)]
    pub identity: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    /// `source:key=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// `l7.http`: one HTTP request as the proxy judged it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http {
    /// The status sent to the client (403 for a denial).
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
}

/// `l7.dns`: one DNS query as the DNS proxy judged and answered it (Hubble's `DNS`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// The question's name, lower-case with the trailing dot.
    pub query: String,
    /// The addresses the answer gives the name (its CNAMEs followed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The lowest TTL on the way to those addresses.
    #[serde(default)]
    pub ttl: u32,
    /// The aliases the answer leads the name through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cnames: Vec<String>,
    /// `proxy`: the DNS proxy saw it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observation_source: String,
    /// Of the answer sent to the client (5 `REFUSED` for a denial, 2 `SERVFAIL` without one).
    #[serde(default)]
    pub rcode: u32,
    /// The question's type (`A`, `AAAA`, or the number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qtypes: Vec<String>,
    /// The types of the answer's records behind `ips` and `cnames`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rrtypes: Vec<String>,
}

/// `l7`: what the L7 proxy saw (Hubble's `Layer7`): an HTTP request or a DNS query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer7 {
    /// `REQUEST` (an HTTP request with the response's status, a DNS query the proxy answered
    /// itself) or `RESPONSE` (a DNS query with the server's answer).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub latency_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// One entry of `*_allowed_by` / `*_denied_by`: the policy behind a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The policy revision (0 offline, where there is none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u64,
    /// `file:line` of the rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl PolicyRef {
    /// The reference to rule `id` of `policy` (at policy revision `revision`).
    pub fn of_rule(policy: &PolicySet, id: RuleId, revision: u64) -> Self {
        let r = policy.rule(id);
        let p = &r.provenance;
        PolicyRef {
            name: p.name.clone(),
            namespace: p.namespace.clone().unwrap_or_default(),
            kind: p.kind.name().to_string(),
            labels: p.labels.iter().map(|l| l.to_string()).collect(),
            revision,
            source: format!("{}:{}", policy.file_path(p.file), p.span.line),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub verdict: FlowVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<u32>,
    /// `POLICY_DENIED` (default deny), `POLICY_DENY` (a deny rule), or another drop reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason_desc: Option<String>,
    #[serde(rename = "IP")]
    pub ip: FlowIp,
    /// Absent for protocols without ports or ICMP types (as in Hubble).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l4: Option<Layer4>,
    /// Set on the L7 proxy's flows (one per HTTP request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<Layer7>,
    #[serde(default)]
    pub source: FlowEndpoint,
    #[serde(default)]
    pub destination: FlowEndpoint,
    pub traffic_direction: TrafficDirection,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_reply: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_allowed_by: Vec<PolicyRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_denied_by: Vec<PolicyRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress_allowed_by: Vec<PolicyRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress_denied_by: Vec<PolicyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// The flow exporter's line: the flow wrapped with the node and time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFlow {
    pub flow: Flow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl Flow {
    /// Was the packet dropped by policy (a default deny or a deny rule), as opposed to another
    /// drop reason? Drops without a reason are taken as policy drops.
    pub fn policy_drop(&self) -> bool {
        self.verdict == FlowVerdict::Dropped
            && self
                .drop_reason_desc
                .as_deref()
                .is_none_or(|d| d == "POLICY_DENIED" || d == "POLICY_DENY")
    }
}
