//! CIDR peers: `fromCIDR`/`toCIDR` strings, `fromCIDRSet`/`toCIDRSet` and NetworkPolicy `ipBlock`.

use super::codes;
use super::decode::{Cx, Field, Unknown};
use ir::{CidrSet, IpNet};
use std::net::IpAddr;

/// Parses `a.b.c.d/len`, `x::y/len`, or a bare address (a host prefix).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(a));
    }
    match s.split_once('/') {
        Some((addr, len)) => match (addr.parse::<IpAddr>(), len.parse::<u8>()) {
            (Ok(a), Ok(l)) => Err(format!(
                "prefix length /{l} is longer than the {} bits of an {} address",
                max_len(a),
                family(a)
            )),
            (Ok(_), Err(_)) => Err(format!("`{len}` is not a prefix length")),
            (Err(_), _) => Err(format!("`{addr}` is not an IP address")),
        },
        None => Err(format!("`{s}` is not an IP address or CIDR")),
    }
}

fn max_len(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// A CIDR string field.
pub fn cidr(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<IpNet> {
    let s = cx.str(f)?;
    parse_cidr(s.trim())
        .map_err(|e| {
            cx.at(
                &codes::INVALID_CIDR,
                f,
                format!("malformed CIDR `{s}`: {e}"),
            )
        })
        .ok()
}

/// `cidr` + `except` (a CIDR set or an ipBlock); `group_fields`: accept Cilium's CIDR group
/// references (understood, not enforced).
pub fn cidr_set(cx: &mut Cx<'_>, f: &Field<'_>, group_fields: bool) -> Option<CidrSet> {
    let before = cx.errors();
    let known: &[&str] = if group_fields {
        &["cidr", "except", "cidrGroupRef", "cidrGroupSelector"]
    } else {
        &["cidr", "except"]
    };
    let m = cx.map(f, known, Unknown::Error)?;
    for g in ["cidrGroupRef", "cidrGroupSelector"] {
        if let Some(x) = m.get(g).filter(|_| group_fields) {
            cx.not_enforced(&x, &format!("`{g}` (CIDR groups)"));
            return None;
        }
    }
    let net = cx.required(&m, "cidr").and_then(|c| cidr(cx, &c));
    let mut except = Vec::new();
    if let Some(e) = m.get("except") {
        for item in cx.seq(&e) {
            let Some(x) = cidr(cx, &item) else { continue };
            if let Some(n) = net {
                if !n.contains(&x) {
                    let msg = format!("except {x} is not inside cidr {n}");
                    cx.at(&codes::EXCEPT_OUTSIDE_CIDR, &item, msg);
                    continue;
                }
            }
            except.push(x);
        }
    }
    if cx.errors() > before {
        return None;
    }
    Some(CidrSet::new(net?, except))
}
