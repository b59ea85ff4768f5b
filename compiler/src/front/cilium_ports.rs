//! The L4 part of a Cilium rule: `toPorts` entries (ports, L7 rules) and `icmps`.

use super::codes;
use super::decode::{Cx, Field, Unknown};
use super::l7::l7_rules;
use super::ports::{port_spec, protocol, Flavor};
use ir::{L7Rules, PortRule, PortSpec, Protocol};

/// Most ports one `toPorts` entry may list (seed §5.1.4).
pub const MAX_PORTS_PER_RULE: usize = 40;

const PORT_RULE_FIELDS: &[&str] = &[
    "ports",
    "rules",
    "terminatingTLS",
    "originatingTLS",
    "serverNames",
    "listener",
];

/// Decodes one `toPorts` entry. `deny`: L7 rules are not allowed.
pub fn to_ports_entry(cx: &mut Cx<'_>, f: &Field<'_>, deny: bool) -> Option<Vec<PortRule>> {
    let before = cx.errors();
    let m = cx.map(f, PORT_RULE_FIELDS, Unknown::Error)?;
    for extra in [
        "terminatingTLS",
        "originatingTLS",
        "serverNames",
        "listener",
    ] {
        if let Some(x) = m.get(extra) {
            cx.not_enforced(&x, &format!("`toPorts[].{extra}`"));
        }
    }
    let l7 = match m.get("rules") {
        Some(r) if deny => {
            cx.at(
                &codes::CONFLICTING_FIELDS,
                &r,
                "deny rules cannot have L7 rules",
            );
            None
        }
        Some(r) => l7_rules(cx, &r),
        None => None,
    };
    let mut out = Vec::new();
    let items = match m.get("ports") {
        Some(p) => cx.seq(&p),
        None => Vec::new(),
    };
    if items.len() > MAX_PORTS_PER_RULE {
        let at = m.get("ports")?;
        let msg = format!(
            "{} ports in one toPorts entry; the datapath supports at most {MAX_PORTS_PER_RULE}",
            items.len()
        );
        cx.at_help(
            &codes::TOO_MANY_PORTS,
            &at,
            msg,
            "split the ports over several toPorts entries",
        );
    }
    for item in &items {
        let Some(pm) = cx.map(item, &["port", "endPort", "protocol"], Unknown::Error) else {
            continue;
        };
        let proto_f = pm.get("protocol");
        let proto = protocol(cx, proto_f.as_ref(), Flavor::Cilium);
        let spec = port_spec(
            cx,
            pm.get("port").as_ref(),
            pm.get("endPort").as_ref(),
            Flavor::Cilium,
        );
        if let (Some(L7Rules::Http(_)), Some(p)) = (&l7, proto) {
            if p != Protocol::Tcp {
                let at = proto_f.unwrap_or_else(|| item.clone());
                let msg = format!(
                    "HTTP rules apply to TCP only, but this port's protocol is {}",
                    p.name()
                );
                cx.at_help(&codes::L7_NON_TCP, &at, msg, "set `protocol: TCP`");
            }
        }
        if let (Some(protocol), Some(port)) = (proto, spec) {
            out.push(PortRule {
                protocol,
                port,
                l7: l7.clone(),
            });
        }
    }
    if items.is_empty() {
        out.push(PortRule {
            protocol: Protocol::Any,
            port: PortSpec::All,
            l7,
        });
    }
    (cx.errors() == before).then_some(out)
}

/// ICMP message type names Cilium accepts besides numbers, per family.
const ICMP4_NAMES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
];
const ICMP6_NAMES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
];

fn icmp_field(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<PortRule> {
    let m = cx.map(f, &["type", "family"], Unknown::Error)?;
    let proto = match m.get("family") {
        None => Protocol::Icmp,
        Some(fam) => match cx.str(&fam)? {
            "IPv4" => Protocol::Icmp,
            "IPv6" => Protocol::IcmpV6,
            other => {
                cx.at(
                    &codes::INVALID_VALUE,
                    &fam,
                    format!("unknown ICMP family `{other}` (IPv4 or IPv6)"),
                );
                return None;
            }
        },
    };
    let tf = cx.required(&m, "type")?;
    let text = cx.str(&tf)?;
    let names = if proto == Protocol::Icmp {
        ICMP4_NAMES
    } else {
        ICMP6_NAMES
    };
    let ty = match super::node::parse_int(text) {
        Some(n @ 0..=255) => n as u8,
        Some(n) => {
            cx.at(
                &codes::INVALID_VALUE,
                &tf,
                format!("ICMP type {n} is outside 0-255"),
            );
            return None;
        }
        None => match names.iter().find(|(n, _)| *n == text) {
            Some((_, t)) => *t,
            None => {
                let help = super::decode::did_you_mean(text, names.iter().map(|(n, _)| *n))
                    .map(|s| format!("did you mean `{s}`?"));
                cx.report(
                    &codes::INVALID_VALUE,
                    tf.span(),
                    &tf.path,
                    format!("unknown ICMP type `{text}`"),
                    help,
                );
                return None;
            }
        },
    };
    Some(PortRule {
        protocol: proto,
        port: PortSpec::IcmpType(ty),
        l7: None,
    })
}

/// Decodes one `icmps` entry (`fields: [{type, family}]`).
pub fn icmps_entry(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Vec<PortRule>> {
    let before = cx.errors();
    let m = cx.map(f, &["fields"], Unknown::Error)?;
    let fields = cx.seq_at(&m, "fields");
    let out: Vec<PortRule> = fields.iter().filter_map(|x| icmp_field(cx, x)).collect();
    (cx.errors() == before).then_some(out)
}
