//! Datapath events as flows (`compiler::flow::Flow`, Hubble's field names) with the policies
//! behind each verdict: what `monitor -o json`, the text monitor's ` by ...` suffix, the flow
//! export and `replay` share. Names come from the last committed snapshot (endpoints,
//! identities, rules by id, default-deny rules by identity), read when an event arrives: nothing
//! here runs while nobody listens, and nothing here waits for a write.

pub mod export;
mod l7;
mod time;

pub use time::rfc3339;

use super::snapshot::Snapshot;
use codegen::layout::{
    Event, DIR_INGRESS, EVENT_DROP, FAMILY_IPV4, RULE_AUDIT_BIT, RULE_NONE, VERDICT_REDIRECT,
};
use compiler::flow::{
    Flow, FlowEndpoint, FlowIp, FlowVerdict, Icmp, IpVersion, Layer4, PolicyRef, Ports,
    TrafficDirection,
};
use ir::RuleId;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

/// Drop reason of a default deny (Cilium's `DROP_POLICY`).
const REASON_POLICY_DENIED: u8 = 133;

/// Turns events into flows. Keeps per-snapshot indexes (identity labels, endpoint addresses),
/// rebuilt when the snapshot changes.
pub struct FlowBuilder {
    node: String,
    cached: Option<(Arc<Snapshot>, Indexes)>,
}

#[derive(Default)]
pub(super) struct Indexes {
    labels: HashMap<u32, Vec<String>>,
    pub(super) by_addr: HashMap<IpAddr, u16>,
}

impl Indexes {
    fn of(s: &Snapshot) -> Self {
        let mut ix = Indexes::default();
        for i in s.identities.iter() {
            ix.labels.insert(i.id, i.labels.clone());
        }
        for v in s.views() {
            let e = &v.status;
            for a in [e.ipv4.map(IpAddr::V4), e.ipv6.map(IpAddr::V6)]
                .into_iter()
                .flatten()
            {
                ix.by_addr.insert(a, e.id);
            }
        }
        ix
    }
}

/// The address in an event (IPv4 in the first 4 bytes).
pub fn event_addr(family: u8, b: [u8; 16]) -> IpAddr {
    if family == FAMILY_IPV4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

impl FlowBuilder {
    pub fn new(node: String) -> Self {
        FlowBuilder { node, cached: None }
    }

    pub(super) fn indexes(&mut self, snap: &Arc<Snapshot>) -> &Indexes {
        let stale = !matches!(&self.cached, Some((s, _)) if Arc::ptr_eq(s, snap));
        if stale {
            self.cached = Some((snap.clone(), Indexes::of(snap)));
        }
        &self.cached.as_ref().expect("just set").1
    }

    /// The flow of `e`, named with `snap` (the snapshot current when the event is read).
    pub fn flow(&mut self, e: &Event, snap: &Arc<Snapshot>, at: SystemTime) -> Flow {
        let revision = snap.healthz.policy_revision;
        let ingress = e.direction == DIR_INGRESS;
        let (s, d) = (event_addr(e.family, e.saddr), event_addr(e.family, e.daddr));
        let ix = self.indexes(snap);
        let local = endpoint_of(snap, ix, Some(e.ep_id as u16), e.ep_identity);
        let peer_addr = if ingress { s } else { d };
        let peer = endpoint_of(
            snap,
            ix,
            ix.by_addr.get(&peer_addr).copied(),
            e.peer_identity,
        );
        let (source, destination) = if ingress {
            (peer, local)
        } else {
            (local, peer)
        };
        let dropped = e.kind == EVENT_DROP;
        let audited = !dropped && e.rule_id != RULE_NONE && e.rule_id & RULE_AUDIT_BIT != 0;
        let verdict = match (dropped, e.verdict) {
            (true, _) => FlowVerdict::Dropped,
            _ if audited => FlowVerdict::Audit,
            (false, VERDICT_REDIRECT) => FlowVerdict::Redirected,
            (false, _) => FlowVerdict::Forwarded,
        };
        let by = attribution(snap, e, ingress, revision);
        let mut flow = Flow {
            time: Some(rfc3339(at)),
            verdict,
            drop_reason: dropped.then_some(u32::from(e.reason)),
            drop_reason_desc: dropped
                .then(|| codegen::reasons::hubble_name(e.reason))
                .flatten()
                .map(str::to_string),
            ip: FlowIp {
                source: s,
                destination: d,
                ip_version: if e.family == FAMILY_IPV4 {
                    IpVersion::IPv4
                } else {
                    IpVersion::IPv6
                },
            },
            l4: layer4(e),
            l7: None,
            source,
            destination,
            traffic_direction: if ingress {
                TrafficDirection::Ingress
            } else {
                TrafficDirection::Egress
            },
            is_reply: false,
            ingress_allowed_by: Vec::new(),
            ingress_denied_by: Vec::new(),
            egress_allowed_by: Vec::new(),
            egress_denied_by: Vec::new(),
            node_name: Some(self.node.clone()),
        };
        // An audited verdict names the rule that would have denied it.
        let slot = match (ingress, dropped || audited) {
            (true, false) => &mut flow.ingress_allowed_by,
            (true, true) => &mut flow.ingress_denied_by,
            (false, false) => &mut flow.egress_allowed_by,
            (false, true) => &mut flow.egress_denied_by,
        };
        *slot = by;
        flow
    }
}

/// The policies of `rules` (one entry per policy, not per rule of it), as of `revision`.
pub(super) fn policy_refs(snap: &Snapshot, rules: &[RuleId], revision: u64) -> Vec<PolicyRef> {
    let mut refs: Vec<PolicyRef> = Vec::new();
    for info in rules.iter().filter_map(|r| snap.rules.get(*r)) {
        let p = &info.policy;
        if !refs
            .iter()
            .any(|q| q.kind == p.kind && q.namespace == p.namespace && q.name == p.name)
        {
            refs.push(info.policy_at(revision));
        }
    }
    refs
}

/// The policies behind `e`'s verdict: its deciding rule, or for a default deny the rules that
/// put the endpoint into default deny in that direction.
fn attribution(snap: &Snapshot, e: &Event, ingress: bool, revision: u64) -> Vec<PolicyRef> {
    if e.rule_id != RULE_NONE {
        return policy_refs(snap, &[RuleId(e.rule_id & !RULE_AUDIT_BIT)], revision);
    }
    if e.kind != EVENT_DROP || e.reason != REASON_POLICY_DENIED {
        return Vec::new();
    }
    policy_refs(snap, snap.isolating(e.ep_identity, ingress), revision)
}

/// The endpoint at one end: a local endpoint by id (with its pod name), else what the identity
/// says.
pub(super) fn endpoint_of(
    snap: &Snapshot,
    ix: &Indexes,
    id: Option<u16>,
    identity: u32,
) -> FlowEndpoint {
    let labels = ix.labels.get(&identity).cloned().unwrap_or_default();
    let label_ns = labels
        .iter()
        .find_map(|l| l.strip_prefix("k8s:io.kubernetes.pod.namespace="))
        .unwrap_or_default()
        .to_string();
    let mut ep = FlowEndpoint {
        id: 0,
        identity,
        namespace: label_ns,
        pod_name: String::new(),
        labels,
    };
    if let Some(st) = id.and_then(|id| snap.endpoints.get(&id)).map(|v| &v.status) {
        ep.id = u32::from(st.id);
        if let Some((ns, name)) = st.pod.as_deref().and_then(|p| p.split_once('/')) {
            ep.namespace = ns.to_string();
            ep.pod_name = name.to_string();
        }
    }
    ep
}

fn layer4(e: &Event) -> Option<Layer4> {
    let ports = Ports {
        source_port: u16::from_be(e.sport_be),
        destination_port: u16::from_be(e.dport_be),
    };
    // ICMP events carry the type in the destination port field.
    let icmp = Icmp {
        icmp_type: u16::from_be(e.dport_be) as u8,
        code: 0,
    };
    Some(match e.protocol {
        6 => Layer4::Tcp(ports),
        17 => Layer4::Udp(ports),
        132 => Layer4::Sctp(ports),
        1 => Layer4::IcmpV4(icmp),
        58 => Layer4::IcmpV6(icmp),
        _ => return None,
    })
}

/// ` by KIND NAMESPACE/NAME (file:line)` for the text monitor: the policies of a flow's
/// verdict, comma-separated; empty when none is known.
pub fn attribution_suffix(f: &Flow) -> String {
    let refs = f
        .ingress_allowed_by
        .iter()
        .chain(&f.ingress_denied_by)
        .chain(&f.egress_allowed_by)
        .chain(&f.egress_denied_by);
    let parts: Vec<String> = refs
        .map(|r| {
            let name = if r.namespace.is_empty() {
                r.name.clone()
            } else {
                format!("{}/{}", r.namespace, r.name)
            };
            format!("{} {name} ({})", r.kind, r.source)
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" by {}", parts.join(", "))
    }
}
