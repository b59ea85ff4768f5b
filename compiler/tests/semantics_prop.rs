//! Property test: on random policies and endpoints, `trace` (rule evaluation), the map state
//! (`policy::connectivity::allowed`) and a slow reference evaluator written here agree.

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

/// The reference: rules evaluated directly on the generated facts. `peer` is a pod or, when
/// `None`, the world address `addr`.
fn reference_side(
    rules: &[R],
    subject: &Pod,
    egress: bool,
    peer: Option<&Pod>,
    addr: IpAddr,
    port: u16,
) -> bool {
    let mine: Vec<&R> = rules
        .iter()
        .filter(|r| r.subject == subject.0 && r.egress == egress)
        .collect();
    if mine.is_empty() {
        return true;
    }
    let port_ok =
        |r: &R| r.ports.is_empty() || r.ports.iter().any(|(f, l)| *f <= port && port <= *l);
    let peer_ok = |r: &R| match &r.peers {
        None => true,
        Some(list) => list.iter().any(|x| match (x, peer) {
            (P::Any, _) => true,
            (P::App(a), Some(p)) => p.0 == *a,
            (P::AppInNs(a, n), Some(p)) => p.0 == *a && p.1 == *n,
            (P::World, None) => true,
            (P::Block(i), _) => block(*i).contains(addr),
            _ => false,
        }),
    };
    let hit = |deny: bool| {
        mine.iter()
            .any(|r| r.deny == deny && port_ok(r) && peer_ok(r))
    };
    // Without a rule that turns default deny on here, what no deny rule denies is allowed.
    let default_allow = mine.iter().all(|r| !r.default_deny);
    !hit(true) && (hit(false) || default_allow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn trace_map_state_and_reference_agree(
        rules in prop::collection::vec(rule_strategy(), 0..6),
        pods in prop::collection::vec((0..3usize, 0..2usize, 0..4u8, 0..255u8), 1..5),
        flows in prop::collection::vec((0..6usize, 0..6usize, 65..95u16), 1..12),
    ) {
        let pods: Vec<Pod> = pods.iter().map(|(a, n, b, h)| (*a, *n, IpAddr::from([10, 0, *b, *h]))).collect();
        let policy = build(&rules);
        let mut cluster = Cluster::new(ClusterConfig::default());
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
            // index len = the world address
            let pick = |i: usize| names.get(i % (names.len() + 1)).cloned();
            let (src, dst) = (pick(s), pick(d));
            if src.is_none() && dst.is_none() { continue; }
            let spec = |x: &Option<(String, Pod)>| match x { Some((n, _)) => PartySpec::Endpoint(n.clone()), None => PartySpec::Addr(world) };
            let t = trace(&engine.policy, &engine.cluster, resolve_party(&engine.cluster, &spec(&src)).unwrap(), resolve_party(&engine.cluster, &spec(&dst)).unwrap(), Protocol::Tcp, port, None);
            let end = |x: &Option<(String, Pod)>| match x {
                Some((n, p)) => End { policy: engine.policy_of(n), identity: engine.cluster.endpoint(n).unwrap().identity, addr: Some(p.2) },
                None => End { policy: None, identity: engine.cluster.identity_of_addr(world), addr: Some(world) },
            };
            let map = allowed(end(&src), end(&dst), Protocol::Tcp, port);
            let addr = |x: &Option<(String, Pod)>| x.as_ref().map_or(world, |(_, p)| p.2);
            let eg = src.as_ref().is_none_or(|(_, p)| reference_side(&rules, p, true, dst.as_ref().map(|d| &d.1), addr(&dst), port));
            let ing = dst.as_ref().is_none_or(|(_, p)| reference_side(&rules, p, false, src.as_ref().map(|s| &s.1), addr(&src), port));
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
        let mut engine = PolicyEngine::new(policy.clone(), Cluster::new(ClusterConfig::default()));
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
