//! Connectivity from the map state: which protocols and port ranges (ICMP types for ICMP and
//! ICMPv6) a connection from one party to another is allowed on (the source's egress and the
//! destination's ingress both allow it).

use super::lookup::{audited_by, lookup};
use ir::{Direction, EndpointPolicy, NumericIdentity, Protocol};
use std::net::IpAddr;

/// One side of a pair: its map state (None for parties that enforce nothing, like world),
/// identity and address.
#[derive(Clone, Copy)]
pub struct End<'a> {
    pub policy: Option<&'a EndpointPolicy>,
    pub identity: NumericIdentity,
    pub addr: Option<IpAddr>,
}

/// An allowed range: ports, or ICMP types for ICMP/ICMPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
    /// Allowed only because the policy that would deny it is in audit mode.
    pub audit: bool,
}

/// The protocols connectivity reports on.
pub const PROTOCOLS: [Protocol; 5] = [
    Protocol::Tcp,
    Protocol::Udp,
    Protocol::Sctp,
    Protocol::Icmp,
    Protocol::IcmpV6,
];

/// How many "ports" a protocol has: 65536 ports, or 256 ICMP types (the map keys an ICMP type
/// as the port of protocol 1/58).
pub fn port_space(proto: Protocol) -> u32 {
    match proto {
        Protocol::Icmp | Protocol::IcmpV6 => 256,
        _ => 65536,
    }
}

/// Is `r` every port (every type) of its protocol?
pub fn is_full(r: &PortRange) -> bool {
    r.first == 0 && r.last as u32 == port_space(r.protocol) - 1
}

fn boundaries(p: Option<&EndpointPolicy>, dir: Direction, proto: u8, out: &mut Vec<u32>) {
    let Some(p) = p else { return };
    let mut add = |port: u16, len: u8, protocol: u8| {
        if protocol == 0 || protocol == proto {
            out.push(port as u32);
            out.push(port as u32 + (1u32 << (16 - len as u32)));
        }
    };
    for k in p.entries.keys().filter(|k| k.direction == dir) {
        add(k.port, k.port_prefix_len, k.protocol);
    }
    for k in p.addr_entries.keys().filter(|k| k.direction == dir) {
        add(k.port, k.port_prefix_len, k.protocol);
    }
}

/// Is a connection from `src` to `dst` on `proto`/`port` allowed by both map states?
pub fn allowed(src: End, dst: End, proto: Protocol, port: u16) -> bool {
    verdict(src, dst, proto, port).is_some()
}

/// `None` when denied, else whether it passes only in audit mode (either side's deciding entry
/// is audited).
pub fn verdict(src: End, dst: End, proto: Protocol, port: u16) -> Option<bool> {
    let side = |p: Option<&EndpointPolicy>, dir, peer: &End| -> Option<bool> {
        let Some(p) = p else { return Some(false) };
        let l = lookup(p, dir, peer.identity, peer.addr, proto.number(), port);
        if !l.allowed() {
            return None;
        }
        Some(!audited_by(p, &l).is_empty())
    };
    let egress = side(src.policy, Direction::Egress, &dst)?;
    let ingress = side(dst.policy, Direction::Ingress, &src)?;
    Some(egress || ingress)
}

/// Every allowed (protocol, port range) from `src` to `dst`, merged into maximal ranges.
pub fn allowed_ranges(src: End, dst: End) -> Vec<PortRange> {
    let mut out = Vec::new();
    for proto in PROTOCOLS {
        let space = port_space(proto);
        let mut b = vec![0u32, space];
        boundaries(src.policy, Direction::Egress, proto.number(), &mut b);
        boundaries(dst.policy, Direction::Ingress, proto.number(), &mut b);
        b.retain(|x| *x <= space);
        b.sort_unstable();
        b.dedup();
        // The range being built: (first port, audited).
        let mut open: Option<(u16, bool)> = None;
        for w in b.windows(2) {
            let (lo, hi) = (w[0] as u16, (w[1] - 1) as u16);
            let here = verdict(src, dst, proto, lo);
            if let Some((first, audit)) = open {
                if here != Some(audit) {
                    out.push(PortRange {
                        protocol: proto,
                        first,
                        last: lo - 1,
                        audit,
                    });
                    open = None;
                }
            }
            if let Some(audit) = here {
                let (first, _) = *open.get_or_insert((lo, audit));
                if w[1] == space {
                    out.push(PortRange {
                        protocol: proto,
                        first,
                        last: hi,
                        audit,
                    });
                }
            }
        }
    }
    out
}
