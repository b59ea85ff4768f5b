//! Engine tests on hand-built IR (the seed's §2.1 app1/app2/app3 NetworkPolicy, deny, incremental).

use super::*;
use crate::cluster::{Cluster, ClusterConfig, ClusterEndpoint};
use crate::testkit::{self, rule};
use ir::*;

fn sel(policy: &mut PolicySet, reqs: &[(&str, &str)]) -> Handle<Selector> {
    testkit::selector(policy, reqs)
}

fn tcp(port: u16) -> PortRule {
    testkit::tcp(port, port)
}

fn pod(name: &str, app: &str, ip: &str) -> ClusterEndpoint {
    let ip = ip.parse().expect("test address");
    testkit::cluster_endpoint(
        &testkit::pod_at("default", name, &[("id", app)], &[ip]),
        None,
    )
}

/// seed §2.1.4: app2 may reach app1 on 80/TCP; app3 may not.
fn access_backend() -> PolicyEngine {
    let mut p = PolicySet::default();
    p.add_file("l3_l4_policy.yaml");
    let app1 = sel(
        &mut p,
        &[
            ("k8s:id", "app1"),
            ("k8s:io.kubernetes.pod.namespace", "default"),
        ],
    );
    let app2 = sel(
        &mut p,
        &[
            ("k8s:id", "app2"),
            ("k8s:io.kubernetes.pod.namespace", "default"),
        ],
    );
    p.push_rule(rule(
        app1,
        Direction::Ingress,
        Action::Allow,
        PeerSet::Some(vec![Peer::Endpoints(app2)]),
        vec![tcp(80)],
    ));
    let mut c = Cluster::new(ClusterConfig::default());
    for (n, a, ip) in [
        ("app1-a", "app1", "10.0.0.1"),
        ("app2-a", "app2", "10.0.0.2"),
        ("app3-a", "app3", "10.0.0.3"),
    ] {
        c.add_endpoint(pod(n, a, ip)).unwrap();
    }
    PolicyEngine::new(p, c)
}

fn ingress(e: &PolicyEngine, dst: &str, src: &str, port: u16) -> bool {
    let src_id = e.cluster.endpoint(src).unwrap().identity;
    lookup(
        e.policy_of(dst).unwrap(),
        Direction::Ingress,
        src_id,
        None,
        6,
        port,
    )
    .allowed()
}

#[test]
fn networkpolicy_getting_started() {
    let e = access_backend();
    assert!(ingress(&e, "default/app1-a", "default/app2-a", 80));
    assert!(!ingress(&e, "default/app1-a", "default/app2-a", 81));
    assert!(!ingress(&e, "default/app1-a", "default/app3-a", 80));
    assert!(
        ingress(&e, "default/app3-a", "default/app1-a", 5000),
        "app3 is not selected: default allow"
    );
    let host = lookup(
        e.policy_of("default/app1-a").unwrap(),
        Direction::Ingress,
        NumericIdentity::HOST,
        None,
        6,
        22,
    );
    assert!(host.allowed(), "allow-localhost");
}

#[test]
fn adding_a_pod_with_a_new_identity_touches_only_its_entries() {
    let mut e = access_backend();
    let before = e.policy_of("default/app1-a").unwrap().clone();
    let mut new = pod("app2-b", "app2", "10.0.0.4");
    new.labels.insert(Label::k8s("version", "v2"));
    let deltas = e.add_endpoint(new).unwrap();
    let new_id = e.cluster.endpoint("default/app2-b").unwrap().identity;
    let d = deltas
        .iter()
        .find(|d| d.endpoint == "default/app1-a")
        .expect("app1 learns the new identity");
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].0.identity, new_id);
    assert!(d.changed.is_empty() && d.removed.is_empty());
    assert!(ingress(&e, "default/app1-a", "default/app2-b", 80));
    // Full recomputation agrees with the incremental result.
    let full = PolicyEngine::new(e.policy.clone(), e.cluster.clone());
    assert_eq!(
        full.policy_of("default/app1-a"),
        e.policy_of("default/app1-a")
    );
    let deltas = e.remove_endpoint("default/app2-b");
    let d = deltas
        .iter()
        .find(|d| d.endpoint == "default/app1-a")
        .unwrap();
    assert_eq!(d.removed, vec![d.removed[0]]);
    assert_eq!(e.policy_of("default/app1-a"), Some(&before));
}

/// `access_backend` plus a CNP denying ingress to app1 on 80/TCP from everyone.
fn access_backend_with_ingress_deny_80() -> PolicyEngine {
    let mut e = access_backend();
    let app1 = sel(
        &mut e.policy,
        &[
            ("k8s:id", "app1"),
            ("k8s:io.kubernetes.pod.namespace", "default"),
        ],
    );
    let mut r = rule(
        app1,
        Direction::Ingress,
        Action::Deny,
        PeerSet::Any,
        vec![tcp(80)],
    );
    r.kind = PolicyKind::CiliumNetworkPolicy;
    e.policy.push_rule(r);
    PolicyEngine::new(e.policy, e.cluster)
}

#[test]
fn deny_wins_and_is_installed_at_specific_keys() {
    let e = access_backend_with_ingress_deny_80();
    assert!(!ingress(&e, "default/app1-a", "default/app2-a", 80));
    let app2 = e.cluster.endpoint("default/app2-a").unwrap().identity;
    let key = MapKey {
        identity: app2,
        direction: Direction::Ingress,
        protocol: 6,
        port: 80,
        port_prefix_len: 16,
    };
    assert_eq!(
        e.policy_of("default/app1-a").unwrap().entries[&key].verdict,
        MapVerdict::Deny
    );
    assert_eq!(
        e.policy_of("default/app1-a").unwrap().entries[&key].rules,
        vec![RuleId(0), RuleId(1)]
    );
}

/// A wildcard deny (CNP `ingressDeny` without `fromEndpoints`) overlapping an allow from a
/// selector: a new identity of that selector gets the deny installed at its own key, exactly as a
/// full recomputation does.
#[test]
fn incremental_add_under_a_wildcard_deny_matches_full_recomputation() {
    let mut e = access_backend_with_ingress_deny_80();
    let mut new = pod("app2-b", "app2", "10.0.0.4");
    new.labels.insert(Label::k8s("version", "v2"));
    e.add_endpoint(new).unwrap();
    assert!(!ingress(&e, "default/app1-a", "default/app2-b", 80));
    let full = PolicyEngine::new(e.policy.clone(), e.cluster.clone());
    assert_eq!(full.all_policies(), e.all_policies());
}
