//! Layer-4 decoding shared by every policy kind: ports (number, range, name), protocols.

use super::codes;
use super::decode::{Cx, Field};
use super::node::{parse_int, NodeKind, ScalarStyle};
use ir::{PortSpec, Protocol};

/// Which rule language a port comes from (they differ in defaults and accepted forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// NetworkPolicy: protocol TCP/UDP/SCTP defaulting to TCP; an integer port or a port name.
    NetworkPolicy,
    /// Cilium rules: protocol TCP/UDP/SCTP/ANY defaulting to ANY; port as a string or number,
    /// `0` meaning every port.
    Cilium,
}

/// A port name (IANA service name): 1-15 alphanumerics and `-`, at least one letter, no leading,
/// trailing or doubled `-`.
pub fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Decodes a protocol field (absent: the flavor's default).
pub fn protocol(cx: &mut Cx<'_>, f: Option<&Field<'_>>, flavor: Flavor) -> Option<Protocol> {
    let Some(f) = f else {
        return Some(if flavor == Flavor::Cilium {
            Protocol::Any
        } else {
            Protocol::Tcp
        });
    };
    let s = cx.str(f)?;
    let accepted: &[Protocol] = match flavor {
        Flavor::NetworkPolicy => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
        Flavor::Cilium => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Any],
    };
    match Protocol::parse(s) {
        Some(p) if accepted.contains(&p) => Some(p),
        Some(p @ (Protocol::Icmp | Protocol::IcmpV6)) => {
            let help = match flavor {
                Flavor::Cilium => "write ICMP rules in an `icmps` block of the rule",
                Flavor::NetworkPolicy => {
                    "NetworkPolicy cannot select ICMP; use a CiliumNetworkPolicy with `icmps`"
                }
            };
            cx.at_help(
                &codes::UNKNOWN_PROTOCOL,
                f,
                format!("protocol `{p}` is not allowed in ports"),
                help,
            );
            None
        }
        _ => {
            let names: Vec<&str> = accepted.iter().map(|p| p.name()).collect();
            let help = format!("use one of {}", names.join(", "));
            cx.at_help(
                &codes::UNKNOWN_PROTOCOL,
                f,
                format!("unknown protocol `{s}`"),
                help,
            );
            None
        }
    }
}

/// Decodes `port` + `endPort` into a [`PortSpec`].
pub fn port_spec(
    cx: &mut Cx<'_>,
    port: Option<&Field<'_>>,
    end: Option<&Field<'_>>,
    flavor: Flavor,
) -> Option<PortSpec> {
    let spec = match port {
        None => PortSpec::All,
        Some(f) => {
            let (text, style) = match &f.node.kind {
                NodeKind::Scalar { text, style } => (text.as_str(), *style),
                _ => {
                    cx.at(
                        &codes::WRONG_TYPE,
                        f,
                        format!(
                            "expected a port number or name, found {}",
                            f.node.kind_name()
                        ),
                    );
                    return None;
                }
            };
            let numeric = match flavor {
                Flavor::NetworkPolicy => style == ScalarStyle::Plain,
                Flavor::Cilium => true,
            };
            match parse_int(text).filter(|_| numeric) {
                Some(0) if flavor == Flavor::Cilium => PortSpec::All,
                Some(n @ 1..=65535) => PortSpec::Range {
                    first: n as u16,
                    last: n as u16,
                },
                Some(n) => {
                    cx.at(
                        &codes::INVALID_PORT,
                        f,
                        format!("port {n} is outside 1-65535"),
                    );
                    return None;
                }
                None if is_port_name(text) => PortSpec::Named(text.to_ascii_lowercase()),
                None => {
                    let help = if text.bytes().all(|b| b.is_ascii_digit()) {
                        "a quoted number is a port name in a NetworkPolicy; write the number without quotes"
                    } else {
                        "a port name has at most 15 letters, digits and `-`, with at least one letter"
                    };
                    cx.at_help(
                        &codes::INVALID_PORT,
                        f,
                        format!("`{text}` is neither a port number nor a valid port name"),
                        help,
                    );
                    return None;
                }
            }
        }
    };
    let Some(ef) = end else { return Some(spec) };
    let e = cx.int(ef)?;
    match spec {
        PortSpec::Range { first, .. } if (first as i64..=65535).contains(&e) => {
            Some(PortSpec::Range {
                first,
                last: e as u16,
            })
        }
        PortSpec::Range { first, .. } if e < first as i64 => {
            cx.at(
                &codes::INVALID_PORT_RANGE,
                ef,
                format!("endPort {e} is below port {first}"),
            );
            None
        }
        PortSpec::Range { .. } => {
            cx.at(
                &codes::INVALID_PORT,
                ef,
                format!("endPort {e} is outside 1-65535"),
            );
            None
        }
        PortSpec::Named(n) => {
            cx.at(
                &codes::INVALID_PORT_RANGE,
                ef,
                format!("endPort cannot be used with the named port `{n}`"),
            );
            None
        }
        _ => {
            cx.at(
                &codes::INVALID_PORT_RANGE,
                ef,
                "endPort needs a port number to start the range",
            );
            None
        }
    }
}
