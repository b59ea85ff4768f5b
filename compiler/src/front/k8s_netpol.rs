//! Kubernetes `NetworkPolicy` spec: decoding and lowering with Cilium's semantics (`k8s:` keys,
//! namespace labels for namespaceSelector, explicit isolation from policyTypes).

use super::cidr::cidr_set;
use super::codes;
use super::decode::{Cx, Field, Map, Unknown};
use super::lower::{
    any_namespace, namespaced_peer, namespaced_subject, Pending, PendingPeer, PendingRule, Scope,
};
use super::ports::{port_spec, protocol, Flavor};
use super::selector::{selector, KeyStyle};
use ir::{Action, Direction, Peer, PortRule, Selector};

/// Decodes a NetworkPolicy `spec` into `pending`.
pub fn network_policy(cx: &mut Cx<'_>, spec: &Field<'_>, scope: &Scope, pending: &mut Pending) {
    let Some(m) = cx.map(
        spec,
        &["podSelector", "policyTypes", "ingress", "egress"],
        Unknown::Error,
    ) else {
        return;
    };
    let ns = scope.namespace.as_deref();
    // On error the rules are still checked; the object is rejected anyway.
    let subject = cx
        .required(&m, "podSelector")
        .and_then(|p| selector(cx, &p, KeyStyle::K8s))
        .unwrap_or_default();
    let (subject, _) = namespaced_subject(subject, ns);
    let types = policy_types(cx, &m);
    for (dir, key, peers_key) in [
        (Direction::Ingress, "ingress", "from"),
        (Direction::Egress, "egress", "to"),
    ] {
        let items = cx.seq_at(&m, key);
        let enabled = match &types {
            Some(t) => t.contains(&dir),
            None => dir == Direction::Ingress || !items.is_empty(),
        };
        if !enabled {
            continue;
        }
        if items.is_empty() {
            // Isolation without rules: the subject is enforced and nothing is allowed.
            let span = m.get("policyTypes").map_or(spec.span(), |f| f.span());
            let rule = PendingRule {
                subject: subject.clone(),
                direction: dir,
                action: Action::Allow,
                peers: Some(vec![]),
                requires: vec![],
                ports: vec![],
                span,
                rule_index: 0,
                default_deny: true,
            };
            pending.push(scope, rule);
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(rule) = rule_item(cx, item, dir, peers_key, &subject, ns, i as u32) {
                pending.push(scope, rule);
            }
        }
    }
}

/// `policyTypes`, or `None` for the default (Ingress, plus Egress when there are egress rules).
fn policy_types(cx: &mut Cx<'_>, m: &Map<'_>) -> Option<Vec<Direction>> {
    let f = m.get("policyTypes")?;
    let mut out = Vec::new();
    for (item, s) in cx.strings(&f) {
        match s {
            "Ingress" => out.push(Direction::Ingress),
            "Egress" => out.push(Direction::Egress),
            _ => cx.at_help(
                &codes::INVALID_VALUE,
                &item,
                format!("unknown policy type `{s}`"),
                "use Ingress or Egress",
            ),
        }
    }
    Some(out)
}

fn rule_item(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    dir: Direction,
    peers_key: &str,
    subject: &Selector,
    ns: Option<&str>,
    index: u32,
) -> Option<PendingRule> {
    let before = cx.errors();
    let m = cx.map(f, &[peers_key, "ports"], Unknown::Error)?;
    let peer_items = cx.seq_at(&m, peers_key);
    let mut peers = Vec::new();
    for item in &peer_items {
        peers.extend(peer(cx, item, ns));
    }
    let mut ports = Vec::new();
    for item in cx.seq_at(&m, "ports") {
        ports.extend(port(cx, &item));
    }
    if cx.errors() > before {
        return None;
    }
    let peers = if peer_items.is_empty() {
        None
    } else {
        Some(peers)
    };
    Some(PendingRule {
        subject: subject.clone(),
        direction: dir,
        action: Action::Allow,
        peers,
        requires: vec![],
        ports,
        span: f.span(),
        rule_index: index,
        default_deny: true,
    })
}

fn peer(cx: &mut Cx<'_>, f: &Field<'_>, ns: Option<&str>) -> Option<PendingPeer> {
    let m = cx.map(
        f,
        &["podSelector", "namespaceSelector", "ipBlock"],
        Unknown::Error,
    )?;
    let (pod, nsel, block) = (
        m.get("podSelector"),
        m.get("namespaceSelector"),
        m.get("ipBlock"),
    );
    if let Some(b) = block {
        if pod.is_some() || nsel.is_some() {
            cx.at(
                &codes::CONFLICTING_FIELDS,
                &b,
                "`ipBlock` cannot be combined with `podSelector` or `namespaceSelector` in one peer",
            );
            return None;
        }
        let set = cidr_set(cx, &b)?;
        return Some(PendingPeer::Other(Peer::Cidr {
            set,
            by_address: true,
        }));
    }
    let pod_sel = match &pod {
        Some(p) => Some(selector(cx, p, KeyStyle::K8s)?),
        None => None,
    };
    let ns_sel = match &nsel {
        Some(n) => {
            let s = selector(cx, n, KeyStyle::NamespaceLabels)?;
            Some(if s.is_all() { any_namespace() } else { s })
        }
        None => None,
    };
    let sel = match (pod_sel, ns_sel) {
        (Some(p), Some(n)) => p.and(&n),
        (Some(p), None) => namespaced_peer(p, ns),
        (None, Some(n)) => n,
        (None, None) => {
            let msg = "a peer needs `podSelector`, `namespaceSelector` or `ipBlock`";
            cx.report(&codes::MISSING_FIELD, m.span(), m.path(), msg, None);
            return None;
        }
    };
    Some(PendingPeer::Endpoints(sel))
}

fn port(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<PortRule> {
    let m = cx.map(f, &["protocol", "port", "endPort"], Unknown::Error)?;
    let protocol = protocol(cx, m.get("protocol").as_ref(), Flavor::NetworkPolicy);
    let port = port_spec(
        cx,
        m.get("port").as_ref(),
        m.get("endPort").as_ref(),
        Flavor::NetworkPolicy,
    );
    Some(PortRule {
        protocol: protocol?,
        port: port?,
        l7: None,
    })
}
