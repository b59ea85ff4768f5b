//! Conservative containment between rules' parts: does one peer set or port list allow at least
//! everything another does? "Yes" is always right; "no" may be wrong for exotic overlaps
//! (so a lint built on it can miss a case, never report a false one).

use ir::{Entity, Handle, IpNet, Peer, PeerSet, PolicySet, PortRule, PortSpec, Protocol, Selector};

/// Does `outer` cover every peer of `inner`?
pub fn peers(set: &PolicySet, outer: &PeerSet, inner: &PeerSet) -> bool {
    match (outer, inner) {
        (PeerSet::Any, _) => true,
        (PeerSet::Some(_), PeerSet::Any) => false,
        (PeerSet::Some(o), PeerSet::Some(i)) => i.iter().all(|p| o.iter().any(|q| peer(set, q, p))),
    }
}

fn peer(set: &PolicySet, outer: &Peer, inner: &Peer) -> bool {
    match (outer, inner) {
        (Peer::Endpoints(o), Peer::Endpoints(i)) | (Peer::Nodes(o), Peer::Nodes(i)) => {
            selector(set, *o, *i)
        }
        (
            Peer::Cidr {
                set: o,
                by_address: a,
            },
            Peer::Cidr {
                set: i,
                by_address: b,
            },
        ) => {
            a == b
                && net_within(&i.cidr, &o.cidr)
                && o.except
                    .iter()
                    .all(|e| !overlaps(e, &i.cidr) || i.except.iter().any(|x| net_within(e, x)))
        }
        (Peer::Entity(Entity::All), Peer::Entity(_)) => true,
        (Peer::Entity(Entity::World), Peer::Entity(Entity::WorldIpv4 | Entity::WorldIpv6)) => true,
        _ => outer == inner,
    }
}

/// A selector whose requirements are a subset of another's selects at least as much.
fn selector(set: &PolicySet, outer: Handle<Selector>, inner: Handle<Selector>) -> bool {
    if outer == inner {
        return true;
    }
    let (o, i) = (&set.selectors[outer], &set.selectors[inner]);
    o.requirements.iter().all(|r| i.requirements.contains(r))
}

fn net_within(inner: &IpNet, outer: &IpNet) -> bool {
    outer.contains(inner)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Does the port list `outer` cover every port of `inner`? An empty list is every port.
pub fn ports(outer: &[PortRule], inner: &[PortRule]) -> bool {
    if outer.is_empty() {
        return true;
    }
    if inner.is_empty() {
        // Every port of every protocol (ICMP included): only an empty list covers it.
        return false;
    }
    inner.iter().all(|p| outer.iter().any(|q| port(q, p)))
}

/// A port entry that allows every TCP/UDP/SCTP port without L7 restrictions.
pub fn every_port(p: &PortRule) -> bool {
    p.protocol == Protocol::Any && p.port == PortSpec::All && p.l7.is_none()
}

fn port(outer: &PortRule, inner: &PortRule) -> bool {
    let proto = outer.protocol == inner.protocol
        || (outer.protocol == Protocol::Any && Protocol::Any.expand().contains(&inner.protocol));
    let range = match (&outer.port, &inner.port) {
        (PortSpec::All, PortSpec::IcmpType(_)) => false,
        (PortSpec::All, _) => true,
        (PortSpec::Range { first: a, last: b }, PortSpec::Range { first: c, last: d }) => {
            a <= c && d <= b
        }
        (o, i) => o == i,
    };
    // No L7 rules on the outer entry allows every request; otherwise they must be the same.
    let l7 = outer.l7.is_none() || outer.l7 == inner.l7;
    proto && range && l7
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir::{CidrSet, HttpRule, L7Rules};

    fn tcp(first: u16, last: u16) -> PortRule {
        PortRule {
            protocol: Protocol::Tcp,
            port: PortSpec::Range { first, last },
            l7: None,
        }
    }

    #[test]
    fn port_containment() {
        assert!(ports(&[], &[tcp(80, 80)]));
        assert!(!ports(&[tcp(80, 80)], &[]));
        assert!(ports(&[tcp(1, 1024)], &[tcp(80, 80), tcp(443, 443)]));
        assert!(!ports(&[tcp(1, 1024)], &[tcp(80, 2000)]));
        let any = PortRule {
            protocol: Protocol::Any,
            port: PortSpec::Range {
                first: 53,
                last: 53,
            },
            l7: None,
        };
        let udp = PortRule {
            protocol: Protocol::Udp,
            port: PortSpec::Range {
                first: 53,
                last: 53,
            },
            l7: None,
        };
        assert!(ports(
            std::slice::from_ref(&any),
            std::slice::from_ref(&udp)
        ));
        assert!(!ports(&[udp], &[any]));
        let http = PortRule {
            l7: Some(L7Rules::Http(vec![HttpRule::default()])),
            ..tcp(80, 80)
        };
        assert!(ports(&[tcp(80, 80)], std::slice::from_ref(&http)));
        assert!(!ports(std::slice::from_ref(&http), &[tcp(80, 80)]));
        assert!(ports(
            std::slice::from_ref(&http),
            std::slice::from_ref(&http)
        ));
    }

    #[test]
    fn cidr_containment() {
        let c = |s: &str, e: &[&str]| Peer::Cidr {
            set: CidrSet::new(
                s.parse().unwrap(),
                e.iter().map(|x| x.parse().unwrap()).collect(),
            ),
            by_address: false,
        };
        let set = PolicySet::default();
        assert!(peer(&set, &c("10.0.0.0/8", &[]), &c("10.1.0.0/16", &[])));
        assert!(!peer(&set, &c("10.1.0.0/16", &[]), &c("10.0.0.0/8", &[])));
        assert!(!peer(
            &set,
            &c("10.0.0.0/8", &["10.1.0.0/16"]),
            &c("10.1.2.0/24", &[])
        ));
        assert!(peer(
            &set,
            &c("10.0.0.0/8", &["10.1.0.0/16"]),
            &c("10.2.0.0/16", &[])
        ));
        assert!(peer(
            &set,
            &c("10.0.0.0/8", &["10.1.2.0/24"]),
            &c("10.1.0.0/16", &["10.1.0.0/20", "10.1.2.0/24"])
        ));
    }
}
