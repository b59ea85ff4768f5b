//! The L7 proxy's request events as flows: the connection's addresses and endpoints as for
//! datapath events, and Hubble's `l7` layer: `REQUEST`, latency, `http` code/method/url for
//! an HTTP request; for a DNS query `dns` (query, the answer's ips, ttl and cnames, rcode,
//! qtypes, rrtypes, `observation_source: proxy`), `RESPONSE` when the server's answer was
//! relayed, `REQUEST` when the proxy answered itself. A denied request is `DROPPED` (as Hubble
//! reports L7 denials), one that could not reach its destination `DROPPED` with no drop
//! reason. An allowed request names the policy of the HTTP or DNS rule that allowed it, a
//! denied one the policies whose rules at its key it failed.

use super::{rfc3339, FlowBuilder};
use crate::snapshot::Snapshot;
use compiler::flow::{
    Dns, Flow, FlowIp, FlowVerdict, Http, IpVersion, Layer4, Layer7, Ports, TrafficDirection,
};
use ir::Direction;
use l7proxy::table::{TCP, UDP};
use l7proxy::{qtype_name, DnsAnswer, EventKind, Verdict};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

impl FlowBuilder {
    /// The flow of one proxy event; `None` for events that are not requests.
    pub fn l7_flow(
        &mut self,
        ev: &l7proxy::Event,
        snap: &Arc<Snapshot>,
        at: SystemTime,
    ) -> Option<Flow> {
        let (l7, verdict, rules, protocol) = match &ev.kind {
            EventKind::Request {
                method,
                url,
                verdict,
                status,
                latency,
                rules,
                ..
            } => {
                let http = Http {
                    code: u32::from(*status),
                    method: method.clone(),
                    url: url.clone(),
                    protocol: "HTTP/1.1".into(),
                };
                let l7 = layer7("REQUEST", *latency, Some(http), None);
                (l7, *verdict, rules.as_slice(), TCP)
            }
            EventKind::Dns {
                name,
                qtype,
                verdict,
                rcode,
                latency,
                protocol,
                answer,
                rules,
            } => {
                // The server's answer relayed, or the proxy's own (REFUSED, SERVFAIL).
                let kind = if *verdict == Verdict::Forwarded {
                    "RESPONSE"
                } else {
                    "REQUEST"
                };
                let dns = dns_layer(name, *qtype, rcode.unwrap_or(0), answer);
                let l7 = layer7(kind, *latency, None, Some(dns));
                (l7, *verdict, rules.as_slice(), *protocol)
            }
            _ => return None,
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
        let denied = verdict == Verdict::Denied;
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
            l4: Some({
                let ports = Ports {
                    source_port: client.port(),
                    destination_port: server.port(),
                };
                if protocol == UDP {
                    Layer4::Udp(ports)
                } else {
                    Layer4::Tcp(ports)
                }
            }),
            l7: Some(l7),
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

fn layer7(kind: &str, latency: Duration, http: Option<Http>, dns: Option<Dns>) -> Layer7 {
    Layer7 {
        kind: kind.into(),
        latency_ns: latency.as_nanos() as u64,
        http,
        dns,
    }
}

/// Hubble's `dns` layer of a query for `name` of type `qtype` answered with `rcode`.
fn dns_layer(name: &str, qtype: u16, rcode: u8, answer: &DnsAnswer) -> Dns {
    let mut rrtypes: Vec<String> = Vec::new();
    let mut note = |t: &str| {
        if !rrtypes.iter().any(|r| r == t) {
            rrtypes.push(t.into());
        }
    };
    if !answer.cnames.is_empty() {
        note("CNAME");
    }
    for ip in &answer.ips {
        note(if ip.is_ipv4() { "A" } else { "AAAA" });
    }
    Dns {
        query: name.to_string(),
        ips: answer.ips.iter().map(ToString::to_string).collect(),
        ttl: answer.ttl,
        cnames: answer.cnames.clone(),
        observation_source: "proxy".into(),
        rcode: u32::from(rcode),
        qtypes: vec![qtype_name(qtype)],
        rrtypes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l7proxy::dns::learn::Learned;

    #[test]
    fn dns_layer_follows_the_answer() {
        let learned = [
            Learned {
                addr: "10.0.0.5".parse().unwrap(),
                ttl: 30,
                names: vec!["www.a.test.".into(), "edge.a.test.".into()],
            },
            Learned {
                addr: "fd00::5".parse().unwrap(),
                ttl: 12,
                names: vec!["www.a.test.".into(), "edge.a.test.".into()],
            },
        ];
        let d = dns_layer("www.a.test.", 1, 0, &DnsAnswer::of(&learned));
        assert_eq!(d.query, "www.a.test.");
        assert_eq!(d.ips, ["10.0.0.5", "fd00::5"]);
        assert_eq!((d.ttl, d.rcode), (12, 0));
        assert_eq!(d.cnames, ["edge.a.test."]);
        assert_eq!(d.rrtypes, ["CNAME", "A", "AAAA"]);
        assert_eq!(d.qtypes, ["A"]);
        let refused = dns_layer("b.test.", 28, 5, &DnsAnswer::default());
        assert!(refused.ips.is_empty() && refused.cnames.is_empty() && refused.rrtypes.is_empty());
        assert_eq!((refused.rcode, refused.qtypes[0].as_str()), (5, "AAAA"));
        let json = serde_json::to_value(&refused).unwrap();
        assert!(
            json.get("ips").is_none(),
            "empty lists are left out: {json}"
        );
    }
}
