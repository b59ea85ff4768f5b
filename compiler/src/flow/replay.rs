//! Replaying recorded flows on a policy set: each flow's verdict at the hook that recorded it
//! (the source's egress or the destination's ingress) is looked up in the new map state and
//! compared with the recorded one. Replies are skipped (their connection decided), and so are
//! drops for reasons other than policy.

use super::{Flow, FlowEndpoint, Recorded, TrafficDirection};
use crate::cluster::ClusterEndpoint;
use crate::diff::{SideDecision, Verdict};
use crate::policy::{lookup, PolicyEngine};
use ir::{Direction, NumericIdentity, Protocol};
use std::net::IpAddr;

/// One end of a recorded flow in the given inventory.
enum End<'a> {
    Endpoint(&'a ClusterEndpoint),
    /// An address outside the inventory's endpoints.
    Outside(NumericIdentity, IpAddr),
}

impl End<'_> {
    fn identity(&self) -> NumericIdentity {
        match self {
            End::Endpoint(e) => e.identity,
            End::Outside(id, _) => *id,
        }
    }
    fn addr(&self, recorded: IpAddr) -> Option<IpAddr> {
        match self {
            End::Endpoint(_) => Some(recorded),
            End::Outside(_, a) => Some(*a),
        }
    }
    /// `namespace/pod`, or the address.
    pub fn name(&self) -> String {
        match self {
            End::Endpoint(e) => e.name.clone(),
            End::Outside(_, a) => a.to_string(),
        }
    }
}

/// A flow whose verdict changes.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub line: usize,
    pub flow: Flow,
    pub src: String,
    pub dst: String,
    pub protocol: Protocol,
    pub port: u16,
    /// The new lookups at both ends (the recorded hook's side decides).
    pub new: Verdict,
    pub new_passes: bool,
}

/// Why flows were not compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub replies: usize,
    /// Dropped for a reason other than policy.
    pub not_policy: usize,
    /// Protocols other than TCP, UDP, SCTP and ICMP (no `l4`).
    pub no_l4: usize,
    /// L7 requests (the proxy's verdicts, not the connection's).
    pub l7: usize,
    /// A named pod not in the inventory whose address is no endpoint's either: `(line, name)`.
    pub unknown: Vec<(usize, String)>,
}

/// The result of a replay.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    pub changed: Vec<Replayed>,
    pub compared: usize,
    pub skipped: Skipped,
}

fn resolve<'a>(e: &'a PolicyEngine, ep: &FlowEndpoint, addr: IpAddr) -> Result<End<'a>, String> {
    let c = &e.cluster;
    if !ep.pod_name.is_empty() {
        let name = format!("{}/{}", ep.namespace, ep.pod_name);
        if let Some(found) = c.endpoint(&name) {
            return Ok(End::Endpoint(found));
        }
        return c
            .endpoints()
            .find(|x| x.ips.contains(&addr))
            .map(End::Endpoint)
            .ok_or(name);
    }
    Ok(match c.endpoints().find(|x| x.ips.contains(&addr)) {
        Some(found) => End::Endpoint(found),
        None => End::Outside(c.identity_of_addr(addr), addr),
    })
}

fn side(
    e: &PolicyEngine,
    subject: &End,
    peer: &End,
    peer_addr: IpAddr,
    dir: Direction,
    (proto, port): (Protocol, u16),
) -> SideDecision {
    match subject {
        End::Outside(..) => SideDecision::outside(),
        End::Endpoint(ep) => match e.policy_of(&ep.name) {
            Some(p) => SideDecision::of(
                p,
                lookup(
                    p,
                    dir,
                    peer.identity(),
                    peer.addr(peer_addr),
                    proto.number(),
                    port,
                ),
            ),
            None => SideDecision::outside(),
        },
    }
}

/// Replays `flows` on the engine's policy.
pub fn replay(e: &PolicyEngine, flows: &[Recorded]) -> Replay {
    let mut out = Replay::default();
    for r in flows {
        let f = &r.flow;
        if f.is_reply {
            out.skipped.replies += 1;
            continue;
        }
        if !f.verdict.passed() && !f.policy_drop() {
            out.skipped.not_policy += 1;
            continue;
        }
        if f.l7.is_some() {
            out.skipped.l7 += 1;
            continue;
        }
        let Some(l4) = &f.l4 else {
            out.skipped.no_l4 += 1;
            continue;
        };
        let ends = (
            resolve(e, &f.source, f.ip.source),
            resolve(e, &f.destination, f.ip.destination),
        );
        let (src, dst) = match ends {
            (Ok(s), Ok(d)) => (s, d),
            (Err(name), _) | (_, Err(name)) => {
                out.skipped.unknown.push((r.line, name));
                continue;
            }
        };
        let port = l4.policy_port();
        let new = Verdict {
            egress: side(e, &src, &dst, f.ip.destination, Direction::Egress, port),
            ingress: side(e, &dst, &src, f.ip.source, Direction::Ingress, port),
        };
        let new_passes = match f.traffic_direction {
            TrafficDirection::Egress => new.egress.allowed(),
            TrafficDirection::Ingress => new.ingress.allowed(),
            TrafficDirection::TrafficDirectionUnknown => new.allowed(),
        };
        out.compared += 1;
        if new_passes != f.verdict.passed() {
            out.changed.push(Replayed {
                line: r.line,
                flow: f.clone(),
                src: src.name(),
                dst: dst.name(),
                protocol: port.0,
                port: port.1,
                new,
                new_passes,
            });
        }
    }
    out
}
