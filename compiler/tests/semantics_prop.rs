//! Property test: on random policies and endpoints, `trace` (rule evaluation), the map state
//! (`policy::connectivity::allowed`) and a slow reference evaluator written here agree; flows
//! also come from and go to two labelled nodes, which node selectors pick from.

use compiler::cluster::{Cluster, ClusterConfig, ClusterEndpoint};
use compiler::policy::connectivity::{allowed, End};
use compiler::policy::PolicyEngine;
use compiler::testkit;
use compiler::trace::{resolve_party, trace, PartySpec};
use ir::*;
use proptest::prelude::*;
use std::net::IpAddr;

const APPS: [&str; 3] = ["a", "b", "c"];
const NSS: [&str; 2] = ["x", "y"];

#[derive(Clone, Debug)]
enum P {
    Any,
    App(usize),
    AppInNs(usize, usize),
    World,
    Block(u8),
    /// A node selector: [`NODE_SELECTORS`]`[i]`.
    Nodes(usize),
}

/// Two nodes: node0 (the local node, `host` to every generated pod) is a control-plane node in
/// zone a, node1 a worker in zone b (a node identity of its own).
/// Kubernetes labels (key, value).
type Labels = &'static [(&'static str, &'static str)];

const NODES: [(&str, [u8; 4], Labels); 2] = [
    (
        "node0",
        [10, 9, 0, 2],
        &[("node-role.kubernetes.io/control-plane", ""), ("zone", "a")],
    ),
    ("node1", [10, 9, 0, 3], &[("zone", "b")]),
];

/// Node selectors: the control-plane (node0), zone b (node1), every node, and `app: a`
/// (a pod label: no node).
const NODE_SELECTORS: [Labels; 4] = [
    &[("node-role.kubernetes.io/control-plane", "")],
    &[("zone", "b")],
    &[],
    &[("app", "a")],
];

/// Which generated nodes a node selector selects, from the node labels written above.
fn node_selected(sel: usize, node: usize) -> bool {
    let labels = NODES[node].2;
    NODE_SELECTORS[sel].iter().all(|q| labels.contains(q))
}

fn inventory_nodes() -> Inventory {
    let nodes = NODES.iter().map(|(name, ip, labels)| ir::Node {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        addresses: vec![IpAddr::from(*ip)],
        file: None,
        span: Span::default(),
    });
    Inventory {
        nodes: nodes.collect(),
        ..Default::default()
    }
}

/// The far end of a flow picked as `(name, pod)`: no name is the world, `nodeN` a node.
fn far_of(x: &Option<(String, Pod)>) -> Far<'_> {
    match x {
        None => Far::World,
        Some((n, _)) if n.starts_with("node") => {
            Far::Node(NODES.iter().position(|(m, _, _)| m == n).unwrap())
        }
        Some((_, p)) => Far::Pod(p),
    }
}

/// The far end of a generated flow.
#[derive(Clone, Copy, Debug)]
enum Far<'a> {
    Pod(&'a Pod),
    World,
    Node(usize),
}

#[derive(Clone, Debug)]
struct R {
    subject: usize,
    egress: bool,
    deny: bool,
    peers: Option<Vec<P>>,
    ports: Vec<(u16, u16)>,
    /// `enableDefaultDeny` of the rule's direction.
    default_deny: bool,
}

fn rule_strategy() -> impl Strategy<Value = R> {
    let peer = prop_oneof![
        Just(P::Any),
        (0..3usize).prop_map(P::App),
        (0..3usize, 0..2usize).prop_map(|(a, n)| P::AppInNs(a, n)),
        Just(P::World),
        (0..4u8).prop_map(P::Block),
        (0..NODE_SELECTORS.len()).prop_map(P::Nodes),
    ];
    let port = (70..90u16, 0..8u16).prop_map(|(f, w)| (f, f + w));
    (
        0..3usize,
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::option::of(prop::collection::vec(peer, 0..3)),
        prop::collection::vec(port, 0..3),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(subject, egress, deny, peers, ports, default_deny)| R {
            subject,
            egress,
            deny,
            peers,
            ports,
            default_deny,
        })
}

fn sel(p: &mut PolicySet, reqs: Vec<(&str, &str)>) -> Handle<Selector> {
    testkit::selector(p, &reqs)
}

fn block(i: u8) -> CidrSet {
    CidrSet::new(
        format!("10.0.{i}.0/24").parse().unwrap(),
        vec![format!("10.0.{i}.128/25").parse().unwrap()],
    )
}

fn build(rules: &[R]) -> PolicySet {
    let mut p = PolicySet::default();
    p.add_file("prop");
    for r in rules {
        let subject = sel(&mut p, vec![("app", APPS[r.subject])]);
        let peers = match &r.peers {
            None => PeerSet::Any,
            Some(list) => PeerSet::Some(
                list.iter()
                    .map(|x| match x {
                        P::Any => Peer::Endpoints(sel(&mut p, vec![])),
                        P::App(a) => Peer::Endpoints(sel(&mut p, vec![("app", APPS[*a])])),
                        P::AppInNs(a, n) => Peer::Endpoints(sel(
                            &mut p,
                            vec![
                                ("app", APPS[*a]),
                                ("k8s:io.kubernetes.pod.namespace", NSS[*n]),
                            ],
                        )),
                        P::World => Peer::Entity(Entity::World),
                        P::Block(i) => Peer::Cidr {
                            set: block(*i),
                            by_address: true,
                        },
                        P::Nodes(i) => Peer::Nodes(sel(&mut p, NODE_SELECTORS[*i].to_vec())),
                    })
                    .collect(),
            ),
        };
        let ports = r.ports.iter().map(|(f, l)| testkit::tcp(*f, *l)).collect();
        let direction = match r.egress {
            true => Direction::Egress,
            false => Direction::Ingress,
        };
        let action = match r.deny {
            true => Action::Deny,
            false => Action::Allow,
        };
        let kind = PolicyKind::CiliumClusterwideNetworkPolicy;
        let mut rule = testkit::rule(subject, direction, action, peers, ports);
        rule.default_deny = r.default_deny;
        p.push_rule(testkit::named(rule, kind, None, "p"));
    }
    p
}

/// (app, namespace, address) of each generated pod.
type Pod = (usize, usize, IpAddr);

fn endpoint(i: usize, (app, ns, ip): &Pod) -> ClusterEndpoint {
    let ep = testkit::pod_at(NSS[*ns], &format!("p{i}"), &[("app", APPS[*app])], &[*ip]);
    testkit::cluster_endpoint(&ep, None)
}

/// The reference: rules evaluated directly on the generated facts. `peer` is a pod, the world
/// or a node, at address `addr`. node0 is every pod's host: it may always reach them unless a
/// deny rule says otherwise.
fn reference_side(
    rules: &[R],
    subject: &Pod,
    egress: bool,
    peer: Far<'_>,
    addr: IpAddr,
    port: u16,
) -> bool {
    let mine: Vec<&R> = rules
        .iter()
        .filter(|r| r.subject == subject.0 && r.egress == egress)
        .collect();
    let localhost = !egress && matches!(peer, Far::Node(0));
    if mine.is_empty() {
        return true;
    }
    let port_ok =
        |r: &R| r.ports.is_empty() || r.ports.iter().any(|(f, l)| *f <= port && port <= *l);
    let peer_ok = |r: &R| match &r.peers {
        None => true,
        Some(list) => list.iter().any(|x| match (x, peer) {
            (P::Any, _) => true,
            (P::App(a), Far::Pod(p)) => p.0 == *a,
            (P::AppInNs(a, n), Far::Pod(p)) => p.0 == *a && p.1 == *n,
            (P::World, Far::World) => true,
            (P::Block(i), _) => block(*i).contains(addr),
            (P::Nodes(i), Far::Node(n)) => node_selected(*i, n),
            _ => false,
        }),
    };
    let hit = |deny: bool| {
        mine.iter()
            .any(|r| r.deny == deny && port_ok(r) && peer_ok(r))
    };
    // Without a rule that turns default deny on here, what no deny rule denies is allowed.
    let default_allow = mine.iter().all(|r| !r.default_deny);
    !hit(true) && (localhost || hit(false) || default_allow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn trace_map_state_and_reference_agree(
        rules in prop::collection::vec(rule_strategy(), 0..6),
        pods in prop::collection::vec((0..3usize, 0..2usize, 0..4u8, 0..255u8), 1..5),
        flows in prop::collection::vec((0..6usize, 0..6usize, 65..95u16), 1..12),
    ) {
        let pods: Vec<Pod> = pods.iter().map(|(a, n, b, h)| (*a, *n, IpAddr::from([10, 0, *b, *h]))).collect();
        let policy = build(&rules);
        let mut cluster = Cluster::build(&inventory_nodes(), &policy, ClusterConfig::default()).unwrap();
        let mut names = Vec::new();
        for (i, p) in pods.iter().enumerate() {
            if cluster.endpoints().any(|e| e.ips.contains(&p.2)) { continue; }
            let ep = endpoint(i, p);
            names.push((ep.name.clone(), *p));
            cluster.add_endpoint(ep).unwrap();
        }
        let engine = PolicyEngine::new(policy.clone(), cluster);
        let world: IpAddr = [10, 0, 2, 7].into();
        let world = if engine.cluster.endpoints().any(|e| e.ips.contains(&world)) { IpAddr::from([192, 0, 2, 1]) } else { world };
        for (s, d, port) in flows {
            // Indexes past the pods: the world address, then the nodes' addresses.
            let pick = |i: usize| match i % (names.len() + 1 + NODES.len()) {
                j if j < names.len() => Some(names[j].clone()),
                j if j == names.len() => None,
                j => Some((NODES[j - names.len() - 1].0.to_string(), (0, 0, IpAddr::from(NODES[j - names.len() - 1].1)))),
            };
            let (src, dst) = (pick(s), pick(d));
            let is_pod = |x: &Option<(String, Pod)>| x.as_ref().is_some_and(|(n, _)| !n.starts_with("node"));
            if !is_pod(&src) && !is_pod(&dst) { continue; }
            let addr = |x: &Option<(String, Pod)>| x.as_ref().map_or(world, |(_, p)| p.2);
            let spec = |x: &Option<(String, Pod)>| match x { Some((n, _)) if is_pod(x) => PartySpec::Endpoint(n.clone()), _ => PartySpec::Addr(addr(x)) };
            let t = trace(&engine.policy, &engine.cluster, resolve_party(&engine.cluster, &spec(&src)).unwrap(), resolve_party(&engine.cluster, &spec(&dst)).unwrap(), Protocol::Tcp, port, None);
            let end = |x: &Option<(String, Pod)>| match x {
                Some((n, p)) if is_pod(x) => End { policy: engine.policy_of(n), identity: engine.cluster.endpoint(n).unwrap().identity, addr: Some(p.2) },
                _ => End { policy: None, identity: engine.cluster.identity_of_addr(addr(x)), addr: Some(addr(x)) },
            };
            let map = allowed(end(&src), end(&dst), Protocol::Tcp, port);
            let eg = !is_pod(&src) || src.as_ref().is_some_and(|(_, p)| reference_side(&rules, p, true, far_of(&dst), addr(&dst), port));
            let ing = !is_pod(&dst) || dst.as_ref().is_some_and(|(_, p)| reference_side(&rules, p, false, far_of(&src), addr(&src), port));
            let reference = eg && ing;
            prop_assert_eq!(t.allowed, map, "trace vs map state: {:?} -> {:?}:{}", src, dst, port);
            prop_assert_eq!(t.allowed, reference, "trace vs reference: {:?} -> {:?}:{}", src, dst, port);
        }
    }
}

/// Map state per endpoint, as an agent applying the engine's deltas would hold it.
type Applied = std::collections::BTreeMap<String, std::collections::BTreeMap<MapKey, MapEntry>>;

fn apply(state: &mut Applied, deltas: Vec<compiler::policy::MapDelta>) {
    for d in deltas {
        let m = state.entry(d.endpoint).or_default();
        for k in d.removed {
            m.remove(&k);
        }
        m.extend(d.added);
        m.extend(d.changed);
    }
    state.retain(|_, m| !m.is_empty());
}

fn full_state(e: &PolicyEngine) -> Applied {
    e.all_policies()
        .into_iter()
        .map(|(n, p)| (n, p.entries))
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Adding then removing endpoints one at a time through the engine's incremental API gives,
    /// after every step, the map state a full recomputation gives, and the deltas it returns
    /// turn the previous map state into the new one.
    #[test]
    fn incremental_updates_match_full_recomputation(
        rules in prop::collection::vec(rule_strategy(), 0..6),
        pods in prop::collection::vec((0..3usize, 0..2usize, 0..4u8, 0..255u8), 1..6),
    ) {
        let policy = build(&rules);
        let nodes = Cluster::build(&inventory_nodes(), &policy, ClusterConfig::default()).unwrap();
        let mut engine = PolicyEngine::new(policy.clone(), nodes);
        let mut state = Applied::new();
        let mut names = Vec::new();
        for (i, (a, n, b, h)) in pods.iter().enumerate() {
            let ep = endpoint(i, &(*a, *n, IpAddr::from([10, 0, *b, *h])));
            if engine.cluster.endpoints().any(|e| e.ips == ep.ips) { continue; }
            let name = ep.name.clone();
            names.push(name.clone());
            let deltas = engine.add_endpoint(ep).unwrap();
            let id = engine.cluster.endpoint(&name).unwrap().identity;
            for d in deltas.iter().filter(|d| d.endpoint != name) {
                let keys = d.added.iter().chain(&d.changed).map(|(k, _)| k).chain(&d.removed);
                for k in keys {
                    prop_assert_eq!(k.identity, id, "only the new identity's entries change");
                }
            }
            apply(&mut state, deltas);
            let full = PolicyEngine::new(policy.clone(), engine.cluster.clone());
            prop_assert_eq!(full.all_policies(), engine.all_policies());
            prop_assert_eq!(&state, &full_state(&full));
        }
        for name in names {
            apply(&mut state, engine.remove_endpoint(&name));
            let full = PolicyEngine::new(policy.clone(), engine.cluster.clone());
            prop_assert_eq!(full.all_policies(), engine.all_policies());
            prop_assert_eq!(&state, &full_state(&full));
        }
    }
}
