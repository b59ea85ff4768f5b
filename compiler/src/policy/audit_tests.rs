//! Audit mode in the map state, on the seed's app1/app2/app3 (written from the meaning of audit
//! mode: what only audit-mode rules would deny passes, marked with those rules).

use super::super::*;
use crate::cluster::{Cluster, ClusterConfig, ClusterEndpoint};
use crate::testkit::{self, rule};
use ir::*;

fn app(p: &mut PolicySet, name: &str) -> Handle<Selector> {
    testkit::selector(
        p,
        &[
            ("k8s:id", name),
            ("k8s:io.kubernetes.pod.namespace", "default"),
        ],
    )
}

fn pod(name: &str, ip: &str) -> ClusterEndpoint {
    let ip = ip.parse().expect("test address");
    testkit::cluster_endpoint(
        &testkit::pod_at("default", name, &[("id", name)], &[ip]),
        None,
    )
}

/// app1's ingress rules: `(peer, action, port or every port, audit)`.
fn engine(rules: &[(&str, Action, Option<u16>, bool)], config: ClusterConfig) -> PolicyEngine {
    let mut p = PolicySet::default();
    p.add_file("audit.yaml");
    let app1 = app(&mut p, "app1");
    for (peer, action, port, audit) in rules {
        let peer = app(&mut p, peer);
        let mut r = rule(
            app1,
            Direction::Ingress,
            *action,
            PeerSet::Some(vec![Peer::Endpoints(peer)]),
            port.map(|n| vec![testkit::tcp(n, n)]).unwrap_or_default(),
        );
        r.audit = *audit;
        p.push_rule(r);
    }
    let mut c = Cluster::new(config);
    for (n, ip) in [
        ("app1", "10.0.0.1"),
        ("app2", "10.0.0.2"),
        ("app3", "10.0.0.3"),
    ] {
        c.add_endpoint(pod(n, ip)).unwrap();
    }
    PolicyEngine::new(p, c)
}

/// (passes, audited-by rule ids) of `src` → app1 on TCP `port`.
fn verdict(e: &PolicyEngine, src: &str, port: u16) -> (bool, Vec<u32>) {
    let pol = e.policy_of("default/app1").unwrap();
    let src = e
        .cluster
        .endpoint(&format!("default/{src}"))
        .unwrap()
        .identity;
    let l = lookup(pol, Direction::Ingress, src, None, 6, port);
    let audited = match &l {
        Lookup::Entry { key, .. } => pol.entries[key].audited.iter().map(|r| r.0).collect(),
        _ => Vec::new(),
    };
    (l.allowed(), audited)
}

#[test]
fn an_audit_policy_alone_isolates_nothing_and_reports_what_it_would_deny() {
    let e = engine(
        &[("app2", Action::Allow, Some(80), true)],
        ClusterConfig::default(),
    );
    assert_eq!(
        verdict(&e, "app2", 80),
        (true, vec![]),
        "allowed as written"
    );
    assert_eq!(
        verdict(&e, "app3", 80),
        (true, vec![0]),
        "its default deny, audited"
    );
    assert_eq!(verdict(&e, "app2", 81), (true, vec![0]));
}

#[test]
fn an_audit_deny_does_not_pass_what_an_enforced_policy_denies() {
    let rules = [
        ("app2", Action::Allow, Some(80), false),
        ("app3", Action::Deny, None, true),
    ];
    let e = engine(&rules, ClusterConfig::default());
    assert_eq!(verdict(&e, "app2", 80), (true, vec![]));
    // app3 is also denied by the enforced policy's default deny: dropped, not audited.
    assert_eq!(verdict(&e, "app3", 80), (false, vec![]));
}

#[test]
fn an_audit_deny_over_an_enforced_allow_passes_audited() {
    let rules = [
        ("app3", Action::Allow, Some(80), false),
        ("app3", Action::Deny, None, true),
    ];
    let e = engine(&rules, ClusterConfig::default());
    assert_eq!(
        verdict(&e, "app3", 80),
        (true, vec![1]),
        "only the audit deny denies it"
    );
    assert_eq!(
        verdict(&e, "app3", 81),
        (false, vec![]),
        "the enforced default deny"
    );
}

#[test]
fn an_enforced_deny_wins_over_an_audit_allow() {
    let rules = [
        ("app3", Action::Allow, Some(80), true),
        ("app3", Action::Deny, Some(80), false),
    ];
    let e = engine(&rules, ClusterConfig::default());
    assert_eq!(verdict(&e, "app3", 80), (false, vec![]));
}

#[test]
fn cluster_audit_mode_passes_every_policy_drop() {
    let rules = [
        ("app2", Action::Allow, Some(80), false),
        ("app3", Action::Deny, Some(80), false),
    ];
    let config = ClusterConfig {
        audit_all: true,
        ..Default::default()
    };
    let e = engine(&rules, config);
    assert_eq!(verdict(&e, "app2", 80), (true, vec![]));
    assert_eq!(
        verdict(&e, "app3", 80),
        (true, vec![1]),
        "the deny rule, audited"
    );
    assert_eq!(
        verdict(&e, "app2", 81),
        (true, vec![0, 1]),
        "the default deny both set, audited"
    );
}
