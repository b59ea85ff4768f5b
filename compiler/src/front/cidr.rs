//! CIDR peers: `fromCIDR`/`toCIDR` strings, `fromCIDRSet`/`toCIDRSet` (with `cidrGroupRef`) and
//! NetworkPolicy `ipBlock`.

use super::codes;
use super::decode::{Cx, Field, Map, Unknown};
use super::selector::is_dns_subdomain;
use ir::{CidrSet, IpNet, Peer};
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

/// `cidr` + `except` of a NetworkPolicy `ipBlock`.
pub fn cidr_set(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<CidrSet> {
    let before = cx.errors();
    let m = cx.map(f, &["cidr", "except"], Unknown::Error)?;
    let net = cx.required(&m, "cidr").and_then(|c| cidr(cx, &c));
    let except = excepts(cx, &m, net);
    if cx.errors() > before {
        return None;
    }
    Some(CidrSet::new(net?, except))
}

/// One entry of a Cilium `fromCIDRSet`/`toCIDRSet`: a CIDR or a reference to a
/// `CiliumCIDRGroup`, each with its `except` prefixes.
pub fn cilium_cidr_rule(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Peer> {
    let before = cx.errors();
    let known = ["cidr", "except", "cidrGroupRef", "cidrGroupSelector"];
    let m = cx.map(f, &known, Unknown::Error)?;
    if let Some(x) = m.get("cidrGroupSelector") {
        cx.not_enforced(&x, "`cidrGroupSelector` (CIDR groups selected by label)");
        return None;
    }
    let peer = match (m.get("cidr"), m.get("cidrGroupRef")) {
        (Some(_), Some(g)) => {
            let msg = "`cidr` and `cidrGroupRef` cannot both be set in one CIDR rule";
            cx.at(&codes::CONFLICTING_FIELDS, &g, msg);
            return None;
        }
        (None, Some(g)) => {
            let name = group_name(cx, &g);
            let except = excepts(cx, &m, None);
            Peer::CidrGroup {
                name: name?,
                except,
            }
        }
        _ => {
            let net = cx.required(&m, "cidr").and_then(|c| cidr(cx, &c));
            let except = excepts(cx, &m, net);
            Peer::Cidr {
                set: CidrSet::new(net?, except),
                by_address: false,
            }
        }
    };
    (cx.errors() == before).then_some(peer)
}

/// A `cidrGroupRef`: the name of a `CiliumCIDRGroup` (a DNS subdomain, as the CRD requires).
fn group_name(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<String> {
    let name = cx.str(f)?;
    if !is_dns_subdomain(name) {
        let msg = format!(
            "cidrGroupRef `{name}` is not a lowercase DNS subdomain (a-z, 0-9, `-`, `.`; at most 253 characters)"
        );
        cx.at(&codes::INVALID_VALUE, f, msg);
        return None;
    }
    Some(name.to_string())
}

/// The `except` prefixes, each inside `net` when there is one.
fn excepts(cx: &mut Cx<'_>, m: &Map<'_>, net: Option<IpNet>) -> Vec<IpNet> {
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
            except.push(x.trunc());
        }
    }
    except
}
