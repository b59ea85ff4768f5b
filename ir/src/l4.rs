//! Layer 4: protocols and ports (numbers, ranges, named ports, ICMP types).

use crate::l7::L7Rules;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// Cilium's `ANY`: TCP, UDP and SCTP.
    Any,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    IcmpV6,
}

impl Protocol {
    /// IANA protocol number; `Any` is 0 (the datapath's wildcard).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Any => 0,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
            Protocol::IcmpV6 => 58,
        }
    }
    pub fn from_number(n: u8) -> Option<Protocol> {
        Some(match n {
            0 => Protocol::Any,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            1 => Protocol::Icmp,
            58 => Protocol::IcmpV6,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Any => "ANY",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
            Protocol::IcmpV6 => "ICMPv6",
        }
    }
    /// Case-insensitive, as Cilium accepts `tcp` and `TCP`.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_uppercase().as_str() {
            "ANY" => Protocol::Any,
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            "ICMP" => Protocol::Icmp,
            "ICMPV6" => Protocol::IcmpV6,
            _ => return None,
        })
    }
    /// The concrete protocols `self` stands for.
    pub fn expand(self) -> &'static [Protocol] {
        match self {
            Protocol::Any => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            Protocol::Tcp => &[Protocol::Tcp],
            Protocol::Udp => &[Protocol::Udp],
            Protocol::Sctp => &[Protocol::Sctp],
            Protocol::Icmp => &[Protocol::Icmp],
            Protocol::IcmpV6 => &[Protocol::IcmpV6],
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which ports a rule names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PortSpec {
    /// Every port (port 0 or absent).
    All,
    /// An inclusive range; a single port is `first == last`.
    Range { first: u16, last: u16 },
    /// A container port name, resolved per destination endpoint.
    Named(String),
    /// An ICMP / ICMPv6 message type (the protocol says which family).
    IcmpType(u8),
}

/// One L4 entry of a rule, with its optional L7 rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRule {
    pub protocol: Protocol,
    pub port: PortSpec,
    pub l7: Option<L7Rules>,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::All => f.write_str("*"),
            PortSpec::Range { first, last } if first == last => write!(f, "{first}"),
            PortSpec::Range { first, last } => write!(f, "{first}-{last}"),
            PortSpec::Named(n) => write!(f, "{n:?}"),
            PortSpec::IcmpType(t) => write!(f, "type {t}"),
        }
    }
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}
