//! The generated cluster shared by the semantics benchmarks: 10,000 pods in 500 namespaces and
//! 2,000 policies mixing NetworkPolicy-style and CiliumNetworkPolicy-style rules.

#[allow(dead_code)] // used by the trace_cold benchmark only
pub mod manifests;

use compiler::cluster::{Cluster, ClusterEndpoint};
use compiler::testkit::{self, tcp};
use ir::*;

pub const NAMESPACES: usize = 500;
pub const PODS_PER_NS: usize = 20;

/// Pod `i` of namespace `ns`: app `app{i%5}`, tier `t{i%2}`, and a per-pod template hash (not
/// identity-relevant), so ~10 identities per namespace.
pub fn pod(ns: usize, i: usize) -> Endpoint {
    let (app, tier, hash) = (
        format!("app{}", i % 5),
        format!("t{}", i % 2),
        format!("h{i}"),
    );
    let labels = [
        ("app", app.as_str()),
        ("tier", &tier),
        ("pod-template-hash", &hash),
    ];
    let ip = std::net::IpAddr::from([10, (ns / 250) as u8, (ns % 250) as u8, i as u8 + 1]);
    testkit::pod_at(&format!("ns{ns}"), &format!("pod{i}"), &labels, &[ip])
}

/// Four policies per namespace: NP ingress from an app of the namespace on 80; NP ingress from
/// namespaces of a team (namespace labels) on 443; CNP ingress on a port range from an app plus
/// egress to world and a CIDR; CNP ingress deny on 22.
pub fn generate() -> (PolicySet, Inventory) {
    let mut p = PolicySet::default();
    p.add_file("generated.yaml");
    let mut inv = Inventory::default();
    for n in 0..NAMESPACES {
        let ns = format!("ns{n}");
        let team_label = format!("team{}", n % 10);
        inv.namespaces
            .push(testkit::namespace(&ns, &[("team", &team_label)]));
        inv.endpoints.extend((0..PODS_PER_NS).map(|i| pod(n, i)));
        let nsreq = ("k8s:io.kubernetes.pod.namespace", ns.as_str());
        let app = |a: usize, p: &mut PolicySet| {
            testkit::selector(p, &[("k8s:app", &format!("app{a}")), nsreq])
        };
        let s0 = app(n % 5, &mut p);
        let s1 = app((n + 1) % 5, &mut p);
        let s2 = app((n + 2) % 5, &mut p);
        let s3 = app((n + 3) % 5, &mut p);
        let peer_team = format!("team{}", (n + 1) % 10);
        let team = testkit::selector(
            &mut p,
            &[("k8s:io.cilium.k8s.namespace.labels.team", &peer_team)],
        );
        let rule = |kind, subject, direction, action, peers, ports, name: &str| {
            let r = testkit::rule(subject, direction, action, peers, ports);
            testkit::named(r, kind, Some(&ns), name)
        };
        use Direction::*;
        use PolicyKind::*;
        p.push_rule(rule(
            NetworkPolicy,
            s0,
            Ingress,
            Action::Allow,
            PeerSet::Some(vec![Peer::Endpoints(s1)]),
            vec![tcp(80, 80)],
            "np-app",
        ));
        p.push_rule(rule(
            NetworkPolicy,
            s1,
            Ingress,
            Action::Allow,
            PeerSet::Some(vec![Peer::Endpoints(team)]),
            vec![tcp(443, 443)],
            "np-team",
        ));
        p.push_rule(rule(
            CiliumNetworkPolicy,
            s2,
            Ingress,
            Action::Allow,
            PeerSet::Some(vec![Peer::Endpoints(s3)]),
            vec![tcp(8080, 8090)],
            "cnp-range",
        ));
        let world = vec![
            Peer::Entity(Entity::World),
            Peer::Cidr {
                set: CidrSet::new(format!("192.168.{}.0/24", n % 250).parse().unwrap(), vec![]),
                by_address: false,
            },
        ];
        p.push_rule(rule(
            CiliumNetworkPolicy,
            s2,
            Egress,
            Action::Allow,
            PeerSet::Some(world),
            vec![tcp(443, 443)],
            "cnp-egress",
        ));
        p.push_rule(rule(
            CiliumNetworkPolicy,
            s3,
            Ingress,
            Action::Deny,
            PeerSet::Any,
            vec![tcp(22, 22)],
            "cnp-deny",
        ));
    }
    (p, inv)
}

/// A pod in `ns7` with a label value no other pod has, hence a new identity.
pub fn new_pod(c: &Cluster, k: usize) -> ClusterEndpoint {
    let mut ep = pod(7, 200);
    ep.name = format!("ns7/new{k}");
    ep.k8s_labels[0].1 = "app1".into();
    ep.k8s_labels[1].1 = format!("fresh{k}");
    ep.ips = vec![std::net::IpAddr::from([10, 9, 9, (k % 250) as u8])];
    testkit::cluster_endpoint(&ep, c.namespace("ns7"))
}
