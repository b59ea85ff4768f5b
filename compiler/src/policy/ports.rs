//! Port rules to map-key port blocks: ranges split into aligned power-of-two prefixes, named ports
//! resolved against the destination's container ports, protocols expanded, ICMP types.

use ir::{PortRule, PortSpec, Protocol};

/// The L4 part of a map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub protocol: u8,
    pub port: u16,
    pub prefix_len: u8,
}

impl PortKey {
    /// Every protocol and port.
    pub const ALL: PortKey = PortKey {
        protocol: 0,
        port: 0,
        prefix_len: 0,
    };

    /// Does this block contain `protocol`/`port`?
    pub fn covers(&self, protocol: u8, port: u16) -> bool {
        (self.protocol == 0 || self.protocol == protocol)
            && port_in(self.port, self.prefix_len, port)
    }
}

/// Is `port` inside the block `base/prefix_len`?
pub fn port_in(base: u16, prefix_len: u8, port: u16) -> bool {
    prefix_len == 0 || (base ^ port) >> (16 - prefix_len as u32) == 0
}

/// Splits `first..=last` into aligned blocks `(base, prefix_len)`, fewest first-to-last.
pub fn blocks(first: u16, last: u16) -> Vec<(u16, u8)> {
    let (mut start, end) = (first as u32, last as u32 + 1);
    let mut out = Vec::new();
    while start < end {
        let mut size: u32 = if start == 0 {
            1 << 16
        } else {
            start & start.wrapping_neg()
        };
        while start + size > end {
            size >>= 1;
        }
        out.push((start as u16, 16 - size.trailing_zeros() as u8));
        start += size;
    }
    out
}

/// Resolves a port name for the given protocols to (protocol, port) pairs on the destination.
pub type NamedPorts<'a> = dyn Fn(&str, &[Protocol]) -> Vec<(Protocol, u16)> + 'a;

/// The port blocks of one port rule. `named` resolves named ports.
pub fn port_keys(rule: &PortRule, named: &NamedPorts) -> Vec<PortKey> {
    let protos = rule.protocol.expand();
    let mut out = Vec::new();
    match &rule.port {
        PortSpec::All => out.extend(protos.iter().map(|p| PortKey {
            protocol: p.number(),
            port: 0,
            prefix_len: 0,
        })),
        PortSpec::Range { first, last } => {
            for p in protos {
                for (port, prefix_len) in blocks(*first, *last) {
                    out.push(PortKey {
                        protocol: p.number(),
                        port,
                        prefix_len,
                    });
                }
            }
        }
        PortSpec::Named(name) => {
            for (p, port) in named(name, protos) {
                out.push(PortKey {
                    protocol: p.number(),
                    port,
                    prefix_len: 16,
                });
            }
        }
        PortSpec::IcmpType(t) => out.extend(protos.iter().map(|p| PortKey {
            protocol: p.number(),
            port: *t as u16,
            prefix_len: 16,
        })),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_aligned_blocks() {
        assert_eq!(blocks(80, 80), vec![(80, 16)]);
        assert_eq!(blocks(0, 65535), vec![(0, 0)]);
        assert_eq!(
            blocks(32000, 32768),
            vec![(32000, 8), (32256, 7), (32768, 16)]
        );
        let b = blocks(1, 65535);
        let total: u32 = b.iter().map(|(_, l)| 1u32 << (16 - *l as u32)).sum();
        assert_eq!(total, 65535);
        assert!(b
            .iter()
            .all(|(p, l)| *l == 0 || (*p as u32) % (1 << (16 - *l as u32)) == 0));
    }

    #[test]
    fn containment() {
        assert!(port_in(80, 13, 87));
        assert!(!port_in(80, 13, 88));
        assert!(port_in(0, 0, 9));
    }
}
