//! The L7 proxy's request events as flows: the connection's addresses and endpoints as for
//! datapath events, and Hubble's `l7` layer (`REQUEST`, latency, `http` code/method/url).
//! A denied request is `DROPPED` (as Hubble reports L7 denials), a request that could not reach
//! its destination `DROPPED` with no drop reason. An allowed request names the policy of the
//! HTTP rule that allowed it, a denied one the policies whose HTTP rules it failed.

use super::{rfc3339, FlowBuilder};
use crate::snapshot::Snapshot;
use compiler::flow::{
    Flow, FlowIp, FlowVerdict, Http, IpVersion, Layer4, Layer7, Ports, TrafficDirection,
};
use ir::Direction;
use l7proxy::{EventKind, Verdict};
use std::sync::Arc;
use std::time::SystemTime;

impl FlowBuilder {
    /// The flow of one proxy event; `None` for events that are not requests.
    pub fn l7_flow(
        &mut self,
        ev: &l7proxy::Event,
        snap: &Arc<Snapshot>,
        at: SystemTime,
    ) -> Option<Flow> {
        let EventKind::Request {
            method,
            url,
            verdict,
            status,
            latency,
            rules,
            ..
        } = &ev.kind
        else {
            return None;
        };
        let (client, server) = (ev.client, ev.original_dst);
        let by = super::policy_refs(snap, rules, snap.healthz.policy_revision);
        let node = self.node.clone();
        let ix = self.indexes(snap);
        let end = |addr: std::net::IpAddr, identity: u32| {
            super::endpoint_of(snap, ix, ix.by_addr.get(&addr).copied(), identity)
        };
        // The endpoint is the server (ingress redirect) or the client (egress redirect).
        let (src_id, dst_id) = match ev.direction {
            Direction::Ingress => (ev.peer_identity.0, ev.endpoint_identity.0),
            Direction::Egress => (ev.endpoint_identity.0, ev.peer_identity.0),
        };
        let denied = *verdict == Verdict::Denied;
        let mut flow = Flow {
            time: Some(rfc3339(at)),
            verdict: match verdict {
                Verdict::Forwarded => FlowVerdict::Forwarded,
                Verdict::Denied | Verdict::Error => FlowVerdict::Dropped,
            },
            drop_reason: None,
            drop_reason_desc: None,
            ip: FlowIp {
                source: client.ip(),
                destination: server.ip(),
                ip_version: if client.is_ipv4() {
                    IpVersion::IPv4
                } else {
                    IpVersion::IPv6
                },
            },
            l4: Some(Layer4::Tcp(Ports {
                source_port: client.port(),
                destination_port: server.port(),
            })),
            l7: Some(Layer7 {
                kind: "REQUEST".into(),
                latency_ns: latency.as_nanos() as u64,
                http: Some(Http {
                    code: u32::from(*status),
                    method: method.clone(),
                    url: url.clone(),
                    protocol: "HTTP/1.1".into(),
                }),
            }),
            source: end(client.ip(), src_id),
            destination: end(server.ip(), dst_id),
            traffic_direction: match ev.direction {
                Direction::Ingress => TrafficDirection::Ingress,
                Direction::Egress => TrafficDirection::Egress,
            },
            is_reply: false,
            ingress_allowed_by: Vec::new(),
            ingress_denied_by: Vec::new(),
            egress_allowed_by: Vec::new(),
            egress_denied_by: Vec::new(),
            node_name: Some(node),
        };
        let slot = match (ev.direction, denied) {
            (Direction::Ingress, false) => &mut flow.ingress_allowed_by,
            (Direction::Ingress, true) => &mut flow.ingress_denied_by,
            (Direction::Egress, false) => &mut flow.egress_allowed_by,
            (Direction::Egress, true) => &mut flow.egress_denied_by,
        };
        *slot = by;
        Some(flow)
    }
}
