//! The generated cluster shared by the semantics benchmarks: 10,000 pods in 500 namespaces and
//! 2,000 policies mixing NetworkPolicy-style and CiliumNetworkPolicy-style rules.

pub mod manifests;

use compiler::cluster::{Cluster, ClusterEndpoint};
use compiler::identity::derive_labels;
use ir::*;

pub const NAMESPACES: usize = 500;
pub const PODS_PER_NS: usize = 20;

fn req(k: &str, v: &str) -> Requirement {
    Requirement::new(
        LabelKey::parse_with_default(k, LabelSource::Any),
        Operator::In,
        vec![v.into()],
    )
}

fn tcp(first: u16, last: u16) -> PortRule {
    PortRule {
        protocol: Protocol::Tcp,
        port: PortSpec::Range { first, last },
        l7: None,
    }
}

pub fn pod(ns: usize, i: usize) -> Endpoint {
    Endpoint {
        name: format!("ns{ns}/pod{i}"),
        namespace: Some(format!("ns{ns}")),
        kind: "Pod".into(),
        k8s_labels: vec![
            ("app".into(), format!("app{}", i % 5)),
            ("tier".into(), format!("t{}", i % 2)),
            ("pod-template-hash".into(), format!("h{i}")),
        ],
        labels: LabelSet::default(),
        service_account: None,
        ports: vec![],
        ips: vec![std::net::IpAddr::from([
            10,
            (ns / 250) as u8,
            (ns % 250) as u8,
            i as u8 + 1,
        ])],
        file: None,
        span: Span::default(),
    }
}

/// Four policies per namespace: NP ingress from an app of the namespace on 80; NP ingress from
/// namespaces of a team (namespace labels) on 443; CNP ingress on a port range from an app plus
/// egress to world and a CIDR; CNP ingress deny on 22.
pub fn generate() -> (PolicySet, Inventory) {
    let mut p = PolicySet::default();
    let file = p.add_file("generated.yaml");
    let mut inv = Inventory::default();
    for n in 0..NAMESPACES {
        let ns = format!("ns{n}");
        inv.namespaces.push(Namespace {
            name: ns.clone(),
            labels: vec![("team".into(), format!("team{}", n % 10))],
            file: None,
            span: Span::default(),
        });
        inv.endpoints.extend((0..PODS_PER_NS).map(|i| pod(n, i)));
        let nsreq = req("k8s:io.kubernetes.pod.namespace", &ns);
        let app = |a: usize, p: &mut PolicySet| {
            p.selectors.insert(Selector::new(vec![
                req("k8s:app", &format!("app{a}")),
                nsreq.clone(),
            ]))
        };
        let s0 = app(n % 5, &mut p);
        let s1 = app((n + 1) % 5, &mut p);
        let s2 = app((n + 2) % 5, &mut p);
        let s3 = app((n + 3) % 5, &mut p);
        let team = p.selectors.insert(Selector::new(vec![req(
            "k8s:io.cilium.k8s.namespace.labels.team",
            &format!("team{}", (n + 1) % 10),
        )]));
        let prov = |kind: PolicyKind, name: &str| Provenance {
            kind,
            namespace: Some(ns.clone()),
            name: name.into(),
            file,
            span: Span::default(),
            rule_index: 0,
            spec_index: None,
            labels: LabelSet::default(),
        };
        let rule = |kind, subject, direction, action, peers, ports, name: &str| Rule {
            id: RuleId(0),
            kind,
            subject,
            direction,
            action,
            peers,
            requires: vec![],
            ports,
            provenance: prov(kind, name),
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
    ClusterEndpoint {
        name: ep.name.clone(),
        namespace: ep.namespace.clone(),
        kind: "Pod".into(),
        labels: derive_labels(&ep, c.namespace("ns7"), "default"),
        identity: NumericIdentity::WILDCARD,
        ips: vec![std::net::IpAddr::from([10, 9, 9, (k % 250) as u8])],
        ports: vec![],
        origin: None,
    }
}
