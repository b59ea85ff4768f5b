//! One Cilium rule (`spec` of a CNP/CCNP, an element of a `cilium policy import` array): subject,
//! ingress/egress (allow and deny) rule items, labels; lowered into pending IR rules.

use super::cidr::{cidr, cilium_cidr_rule};
use super::cilium_ports::{icmps_entry, to_ports_entry};
use super::codes;
use super::decode::{did_you_mean, Cx, Field, Map, Unknown};
use super::lower::{
    namespaced_subject, scoped_peer, PeerField, PeerScope, Pending, PendingPeer, PendingRule, Scope,
};
use super::selector::{selector, KeyStyle};
use ir::{Action, CidrSet, Direction, Entity, Label, LabelSource, Peer, Selector};

/// The fields of a Cilium rule.
pub const RULE_FIELDS: &[&str] = &[
    "endpointSelector",
    "nodeSelector",
    "ingress",
    "ingressDeny",
    "egress",
    "egressDeny",
    "labels",
    "description",
    "enableDefaultDeny",
    "log",
];

/// Decodes one rule into `pending` (rules of `scope`). Errors are reported to `cx`; the caller
/// compares `cx.errors()` to decide whether the object is committed.
pub fn cilium_rule(cx: &mut Cx<'_>, f: &Field<'_>, scope: &Scope, pending: &mut Pending) {
    let Some(m) = cx.map(f, RULE_FIELDS, Unknown::Error) else {
        return;
    };
    let mut scope = scope.clone();
    if let Some(l) = m.get("labels") {
        let mut all = rule_labels(cx, &l);
        all.extend(scope.labels.iter().cloned());
        scope.labels = ir::LabelSet::new(all);
    }
    if let Some(d) = m.get("description") {
        cx.str(&d);
    }
    if let Some(x) = m.get("log") {
        cx.not_enforced(&x, "`log`");
    }
    let default_deny = m
        .get("enableDefaultDeny")
        .map(|f| enable_default_deny(cx, &f))
        .unwrap_or((true, true));
    // After an error in the subject the items are still checked (the object is rejected anyway).
    let mut lower = true;
    let subject = match (m.get("endpointSelector"), m.get("nodeSelector")) {
        (Some(_), Some(n)) => {
            cx.at(
                &codes::CONFLICTING_FIELDS,
                &n,
                "a rule has either `endpointSelector` or `nodeSelector`, not both",
            );
            None
        }
        (None, Some(n)) => {
            cx.not_enforced(
                &n,
                "`nodeSelector` (host firewall policies); the rule is not lowered",
            );
            lower = false;
            None
        }
        (Some(es), None) => Some(es),
        (None, None) => {
            cx.required(&m, "endpointSelector");
            None
        }
    };
    let sel = subject
        .as_ref()
        .and_then(|s| selector(cx, s, KeyStyle::Cilium))
        .unwrap_or_default();
    let peer_scope = PeerScope::of(&scope, &sel);
    let (subject_sel, overridden) = namespaced_subject(sel, scope.namespace.as_deref());
    if let (true, Some(s)) = (overridden, &subject) {
        let msg = format!(
            "endpointSelector matches another namespace; Cilium applies the policy in `{}` only",
            scope.namespace.as_deref().unwrap_or_default()
        );
        cx.at(&codes::NAMESPACE_OVERRIDDEN, s, msg);
    }
    for (key, dir, action) in [
        ("ingress", Direction::Ingress, Action::Allow),
        ("ingressDeny", Direction::Ingress, Action::Deny),
        ("egress", Direction::Egress, Action::Allow),
        ("egressDeny", Direction::Egress, Action::Deny),
    ] {
        let Some(list) = m.get(key) else { continue };
        for (i, item) in cx.seq(&list).into_iter().enumerate() {
            let item = rule_item(
                cx,
                &item,
                (dir, action),
                &subject_sel,
                peer_scope,
                &scope,
                i,
            );
            match item {
                Some(mut rule) if lower => {
                    rule.default_deny = match dir {
                        Direction::Ingress => default_deny.0,
                        Direction::Egress => default_deny.1,
                    };
                    pending.push(&scope, rule)
                }
                _ => {}
            }
        }
    }
}

/// `enableDefaultDeny: {ingress, egress}` (Cilium 1.16): whether the rule puts its subject
/// into default deny in each direction; an absent direction keeps the default, true.
fn enable_default_deny(cx: &mut Cx<'_>, f: &Field<'_>) -> (bool, bool) {
    let Some(m) = cx.map(f, &["ingress", "egress"], Unknown::Error) else {
        return (true, true);
    };
    let mut get = |k: &str| m.get(k).and_then(|x| cx.bool(&x)).unwrap_or(true);
    (get("ingress"), get("egress"))
}

/// `labels:` of a rule: `{key, value, source}` objects or `source:key=value` strings.
fn rule_labels(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<Label> {
    let mut out = Vec::new();
    for item in cx.seq(f) {
        if let Some(s) = item.node.as_str() {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            let key = ir::LabelKey::parse_with_default(k, LabelSource::Unspec);
            out.push(Label::new(key.source, key.key, v));
            continue;
        }
        let Some(m) = cx.map(&item, &["key", "value", "source"], Unknown::Error) else {
            continue;
        };
        let key = cx.required(&m, "key").and_then(|k| cx.str(&k));
        let value = m.get("value").and_then(|v| cx.str(&v)).unwrap_or("");
        let source = m.get("source").and_then(|s| cx.str(&s)).unwrap_or("unspec");
        if let Some(key) = key {
            out.push(Label::new(LabelSource::parse(source), key, value));
        }
    }
    out
}

/// Field names of a rule item for a direction: (endpoints, requires, cidr, cidrSet, entities).
fn peer_fields(dir: Direction) -> [&'static str; 5] {
    match dir {
        Direction::Ingress => [
            "fromEndpoints",
            "fromRequires",
            "fromCIDR",
            "fromCIDRSet",
            "fromEntities",
        ],
        Direction::Egress => [
            "toEndpoints",
            "toRequires",
            "toCIDR",
            "toCIDRSet",
            "toEntities",
        ],
    }
}

fn known_item_fields(dir: Direction, action: Action) -> Vec<&'static str> {
    let mut k: Vec<&str> = peer_fields(dir).to_vec();
    k.extend(["toPorts", "icmps"]);
    k.extend(match dir {
        Direction::Ingress => ["fromGroups", "fromNodes"].as_slice(),
        Direction::Egress => ["toGroups", "toNodes", "toServices"].as_slice(),
    });
    if action == Action::Allow {
        k.push("authentication");
        if dir == Direction::Egress {
            k.push("toFQDNs");
        }
    }
    k
}

fn non_empty<'n>(m: &Map<'n>, name: &str) -> Option<Field<'n>> {
    m.get(name)
        .filter(|f| !matches!(&f.node.kind, super::node::NodeKind::Sequence(s) if s.is_empty()))
}

fn rule_item(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    (dir, action): (Direction, Action),
    subject: &Selector,
    peer_scope: PeerScope<'_>,
    scope: &Scope,
    index: usize,
) -> Option<PendingRule> {
    let before = cx.errors();
    let known = known_item_fields(dir, action);
    let m = cx.map(f, &known, Unknown::Error)?;
    let ns = scope.namespace.as_deref();
    let [ep_f, req_f, cidr_f, set_f, ent_f] = peer_fields(dir);
    let mut peers = Vec::new();
    let mut has_l3 = false;
    if let Some(x) = non_empty(&m, ep_f) {
        has_l3 = true;
        for item in cx.seq(&x) {
            if let Some(s) = selector(cx, &item, KeyStyle::Cilium) {
                let s = scoped_peer(s, peer_scope, PeerField::Endpoints);
                peers.push(PendingPeer::Endpoints(s));
            }
        }
    }
    let mut requires = Vec::new();
    if let Some(x) = m.get(req_f) {
        for item in cx.seq(&x) {
            let s = selector(cx, &item, KeyStyle::Cilium);
            requires.extend(s.map(|s| scoped_peer(s, peer_scope, PeerField::Requires)));
        }
    }
    if let Some(x) = non_empty(&m, cidr_f) {
        has_l3 = true;
        for item in cx.seq(&x) {
            if let Some(net) = cidr(cx, &item) {
                peers.push(PendingPeer::Other(Peer::Cidr {
                    set: CidrSet::new(net, vec![]),
                    by_address: false,
                }));
            }
        }
    }
    if let Some(x) = non_empty(&m, set_f) {
        has_l3 = true;
        for item in cx.seq(&x) {
            if let Some(peer) = cilium_cidr_rule(cx, &item) {
                peers.push(PendingPeer::Other(peer));
            }
        }
    }
    if let Some(x) = non_empty(&m, ent_f) {
        has_l3 = true;
        for (item, name) in cx.strings(&x) {
            match Entity::parse(name) {
                Some(e) => peers.push(PendingPeer::Other(Peer::Entity(e))),
                None => {
                    let help = did_you_mean(name, Entity::ALL.iter().map(|e| e.name()))
                        .map_or_else(
                            || "see the list of entities in the code's documentation".to_string(),
                            |s| format!("did you mean `{s}`?"),
                        );
                    cx.at_help(
                        &codes::UNKNOWN_ENTITY,
                        &item,
                        format!("unknown entity `{name}`"),
                        help,
                    );
                }
            }
        }
    }
    has_l3 |= super::cilium_peers::extra_peers(cx, &m, dir, ns, &mut peers);
    let mut ports = Vec::new();
    let to_ports = non_empty(&m, "toPorts");
    let icmps = non_empty(&m, "icmps");
    if let (Some(_), Some(i)) = (&to_ports, &icmps) {
        cx.at(
            &codes::CONFLICTING_FIELDS,
            i,
            "`icmps` cannot be combined with `toPorts` in one rule; write two rules",
        );
    }
    let port_items = to_ports.as_ref().map(|x| cx.seq(x)).unwrap_or_default();
    for item in port_items {
        ports.extend(to_ports_entry(cx, &item, action == Action::Deny).unwrap_or_default());
    }
    let icmp_items = icmps.as_ref().map(|x| cx.seq(x)).unwrap_or_default();
    for item in icmp_items {
        ports.extend(icmps_entry(cx, &item).unwrap_or_default());
    }
    if let Some(a) = m.get("authentication") {
        cx.not_enforced(&a, "`authentication` (mutual authentication)");
    }
    if cx.errors() > before {
        return None;
    }
    let peers = if has_l3 {
        Some(peers)
    } else if to_ports.is_some() || icmps.is_some() {
        None
    } else {
        Some(Vec::new())
    };
    Some(PendingRule {
        subject: subject.clone(),
        direction: dir,
        action,
        peers,
        requires,
        ports,
        span: f.span(),
        rule_index: index as u32,
        default_deny: true,
    })
}
