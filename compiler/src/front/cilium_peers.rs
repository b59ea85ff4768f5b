//! Cilium peers besides endpoints, CIDRs and entities: `toServices` (resolved against the
//! inventory's Services and EndpointSlices), `toFQDNs` (FQDN selectors, enforced by the
//! agent on the addresses its DNS proxy learns), `fromNodes`/`toNodes` (label selectors over
//! the inventory's Nodes), and those later stages understand but do not enforce, each with a
//! `not-enforced` warning: `fromGroups`/`toGroups`.

use super::codes;
use super::decode::{Cx, Field, Map, Unknown};
use super::l7::dns_rule;
use super::lower::PendingPeer;
use super::selector::{selector, KeyStyle};
use ir::{Direction, Peer};

fn present<'n>(m: &Map<'n>, name: &str) -> Option<Field<'n>> {
    m.get(name)
        .filter(|f| !matches!(&f.node.kind, super::node::NodeKind::Sequence(s) if s.is_empty()))
}

/// Decodes the extra peer fields of a rule item into `peers`; returns whether any was present
/// (so the rule is an L3 rule, never an L4-only wildcard).
pub fn extra_peers(
    cx: &mut Cx<'_>,
    m: &Map<'_>,
    dir: Direction,
    ns: Option<&str>,
    peers: &mut Vec<PendingPeer>,
) -> bool {
    let mut any = false;
    let (groups, nodes) = match dir {
        Direction::Ingress => ("fromGroups", "fromNodes"),
        Direction::Egress => ("toGroups", "toNodes"),
    };
    if let Some(x) = present(m, groups) {
        any = true;
        cx.not_enforced(
            &x,
            &format!("`{groups}` (cloud provider groups); the rule allows none of these peers"),
        );
    }
    if let Some(x) = present(m, nodes) {
        any = true;
        // Node labels are `k8s:` labels; keys without a source are `any:` and match them.
        // Never namespaced: nodes belong to no namespace.
        for item in cx.seq(&x) {
            if let Some(s) = selector(cx, &item, KeyStyle::Cilium) {
                peers.push(PendingPeer::Nodes(s));
            }
        }
    }
    if let Some(x) = present(m, "toFQDNs") {
        any = true;
        let others = [
            "toEndpoints",
            "toCIDR",
            "toCIDRSet",
            "toEntities",
            "toServices",
        ];
        if let Some(o) = others.iter().find_map(|o| present(m, o)) {
            cx.at(
                &codes::CONFLICTING_FIELDS,
                &o,
                "`toFQDNs` cannot be combined with other L3 peers in one rule",
            );
        }
        for item in cx.seq(&x) {
            if let Some(d) = dns_rule(cx, &item) {
                peers.push(PendingPeer::Other(Peer::Fqdn(d)));
            }
        }
    }
    if let Some(x) = present(m, "toServices") {
        any = true;
        for item in cx.seq(&x) {
            service(cx, &item, ns, peers);
        }
    }
    any
}

fn service(cx: &mut Cx<'_>, f: &Field<'_>, ns: Option<&str>, peers: &mut Vec<PendingPeer>) {
    let Some(m) = cx.map(f, &["k8sService", "k8sServiceSelector"], Unknown::Error) else {
        return;
    };
    if let Some(s) = m.get("k8sService") {
        let Some(sm) = cx.map(&s, &["serviceName", "namespace"], Unknown::Error) else {
            return;
        };
        let name = cx
            .required(&sm, "serviceName")
            .and_then(|n| cx.str(&n))
            .map(str::to_string);
        let namespace = sm
            .get("namespace")
            .and_then(|n| cx.str(&n))
            .map(str::to_string)
            .or(ns.map(str::to_string));
        peers.push(PendingPeer::Service {
            name,
            namespace,
            selector: None,
        });
    }
    if let Some(s) = m.get("k8sServiceSelector") {
        let Some(sm) = cx.map(&s, &["selector", "namespace"], Unknown::Error) else {
            return;
        };
        let namespace = sm
            .get("namespace")
            .and_then(|n| cx.str(&n))
            .map(str::to_string)
            .or(ns.map(str::to_string));
        let selector = cx
            .required(&sm, "selector")
            .and_then(|x| selector(cx, &x, KeyStyle::Cilium));
        peers.push(PendingPeer::Service {
            name: None,
            namespace,
            selector,
        });
    }
}
