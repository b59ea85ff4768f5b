//! Builders of synthetic endpoints and map states for codegen's and the loader's tests and
//! benchmarks (one place, so the benchmarks measure the same shapes the tests check), and the
//! record of tests skipped for want of root, clang or etcd ([`skip`]).

pub mod skip;

use crate::EndpointConfig;
use ir::{Direction, EndpointPolicy, MapEntry, MapKey, MapVerdict, NumericIdentity, RuleId};

/// An IPv4-only endpoint.
pub fn endpoint(id: u32, name: &str, identity: u32, ipv4: &str) -> EndpointConfig {
    EndpointConfig {
        id,
        name: name.into(),
        identity: NumericIdentity(identity),
        ipv4: Some(ipv4.parse().expect("test address")),
        ipv6: None,
    }
}

/// `ep`'s map state with no entries, ingress enforced.
pub fn ingress_policy(ep: &EndpointConfig) -> EndpointPolicy {
    EndpointPolicy {
        endpoint: ep.name.clone(),
        identity: ep.identity,
        ingress_enforced: true,
        ..Default::default()
    }
}

/// Allows ingress TCP to `port` from `identity`, produced by rule `rule`.
pub fn allow_tcp_from(p: &mut EndpointPolicy, identity: u32, port: u16, rule: u32) {
    let key = MapKey {
        identity: NumericIdentity(identity),
        direction: Direction::Ingress,
        protocol: 6,
        port,
        port_prefix_len: 16,
    };
    p.entries.insert(
        key,
        MapEntry {
            verdict: MapVerdict::Allow,
            rules: vec![RuleId(rule)],
            audited: vec![],
        },
    );
}

/// `n` ingress TCP allows: identity `256 + i / 10`, port `1000 + i % 10`, rule `i`.
pub fn synthetic_allows(p: &mut EndpointPolicy, n: u32) {
    for i in 0..n {
        allow_tcp_from(p, 256 + i / 10, 1000 + (i % 10) as u16, i);
    }
}
