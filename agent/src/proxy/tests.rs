//! The proxy's table through the agent's changes (no datapath needed): built when a change
//! brings a redirect, kept when a change cannot be enforced, untouched by changes without L7.

use super::{Addresses, L7Shared};
use crate::model::{EndpointSpec, PolicyDelete};
use crate::state::tests::{agent, put};
use crate::AgentError;
use ir::{Direction, NumericIdentity};
use l7proxy::table::{Decision, Flow};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn endpoint(id: u16, label: &str, ip: &str) -> EndpointSpec {
    EndpointSpec {
        id,
        iface: format!("lxc{id}"),
        labels: vec![label.to_string()],
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
        pod: None,
        container_id: None,
    }
}

/// app2 may `GET /public` on app1:80, plus `extra` HTTP rules (JSON objects).
fn l7_policy(extra: &str) -> String {
    format!(
        r#"[{{"endpointSelector": {{"matchLabels": {{"id": "app1"}}}},
  "ingress": [{{"fromEndpoints": [{{"matchLabels": {{"id": "app2"}}}}],
    "toPorts": [{{"ports": [{{"port": "80", "protocol": "TCP"}}],
      "rules": {{"http": [{{"method": "GET", "path": "/public"}}{extra}]}}}}]}}]}}]"#
    )
}

const L3_ONLY: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app2"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app1"}}]}]}]"#;

fn decision(l7: &L7Shared, peer: NumericIdentity) -> Decision {
    let flow = Flow {
        endpoint: 1,
        direction: Direction::Ingress,
        peer,
        peer_addr: None,
        protocol: l7proxy::table::TCP,
        port: 80,
    };
    l7.table.load().resolve(&flow).decision
}

fn addresses(l7: &L7Shared) -> Arc<Addresses> {
    l7.addresses.load_full()
}

#[test]
fn the_table_follows_changes_and_a_refused_pattern_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, "id=app1", "10.0.0.1")).unwrap();
    a.put_endpoint(endpoint(2, "id=app2", "10.0.0.2")).unwrap();
    let l7 = a.l7_shared();
    let empty = l7.table.load();
    put(&mut a, "l3.json", L3_ONLY).unwrap();
    assert!(
        Arc::ptr_eq(&empty, &l7.table.load()),
        "no redirect anywhere: no table is built"
    );

    let rev = put(&mut a, "l7.json", &l7_policy("")).unwrap().revision;
    let app2 = a.world().endpoints[&2].identity;
    assert!(
        matches!(decision(&l7, app2), Decision::Rules(m) if m.len() == 1),
        "app2 -> app1:80 is decided by the HTTP rule"
    );
    let conn = addresses(&l7).classify(
        Direction::Ingress,
        "10.0.0.2:40000".parse().unwrap(),
        "10.0.0.1:80".parse().unwrap(),
    );
    assert_eq!((conn.endpoint, conn.peer_identity), (1, app2));
    let stray = addresses(&l7).classify(
        Direction::Ingress,
        "192.0.2.9:40000".parse().unwrap(),
        "10.0.0.9:80".parse().unwrap(),
    );
    assert_eq!(
        (stray.endpoint, stray.peer_identity),
        (0, NumericIdentity::WORLD),
        "no endpoint owns the destination: endpoint 0, which the table denies"
    );

    // A pattern the proxy cannot compile refuses the whole change, naming the rule's place.
    let before = l7.table.load();
    let err = put(
        &mut a,
        "big.json",
        &l7_policy(r#", {"path": "/private"}, {"path": "(a{1000}){1000}"}"#),
    )
    .unwrap_err();
    let AgentError::Invalid { diagnostics, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(
        diagnostics[0].starts_with("big.json:2:")
            && diagnostics[0].contains("HTTP path `(a{1000}){1000}`"),
        "{diagnostics:?}"
    );
    assert!(
        Arc::ptr_eq(&before, &l7.table.load()),
        "the table in use stays"
    );
    assert_eq!(a.snapshot(None).healthz.policy_revision, rev, "no revision");
    assert!(matches!(decision(&l7, app2), Decision::Rules(_)));

    // Removing the last redirect builds once more (open connections are served unfiltered
    // from their next request).
    a.delete_policy(PolicyDelete {
        paths: vec!["l7.json".into()],
        wait: true,
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(decision(&l7, app2), Decision::AllowAll));
    // While the proxy still serves a connection redirected before, the table follows every
    // change: app1 admitting only app3 reaches that connection's next request.
    l7.proxied.fetch_add(1, Ordering::Relaxed);
    let only_app3 = L3_ONLY.replace("app1", "app3").replace("app2", "app1");
    put(&mut a, "l3c.json", &only_app3).unwrap();
    assert!(
        matches!(decision(&l7, app2), Decision::DenyAll(_)),
        "the lingering connection is judged by the current state"
    );
    // Once none is open, changes without L7 build nothing again.
    l7.proxied.fetch_sub(1, Ordering::Relaxed);
    let after = l7.table.load();
    put(&mut a, "l3b.json", L3_ONLY.replace("app2", "app3").as_str()).unwrap();
    assert!(Arc::ptr_eq(&after, &l7.table.load()));
}

/// app1 may ask app2 (its DNS server) on UDP and TCP 53 for `*.allowed.test` and `exact.test`
/// only, in two rules whose names the proxy unions.
const DNS_POLICY: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
  "egress": [{"toEndpoints": [{"matchLabels": {"id": "app2"}}],
    "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
      "rules": {"dns": [{"matchPattern": "*.allowed.test"}]}}]}]},
 {"endpointSelector": {"matchLabels": {"id": "app1"}},
  "egress": [{"toEndpoints": [{"matchLabels": {"id": "app2"}}],
    "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}],
      "rules": {"dns": [{"matchName": "Exact.test"}]}}]}]}]"#;

#[test]
fn dns_redirects_get_the_names_of_their_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, "id=app1", "10.0.0.1")).unwrap();
    a.put_endpoint(endpoint(2, "id=app2", "10.0.0.2")).unwrap();
    let l7 = a.l7_shared();
    put(&mut a, "dns.json", DNS_POLICY).unwrap();
    let app2 = a.world().endpoints[&2].identity;
    let flow = |protocol, port| Flow {
        endpoint: 1,
        direction: Direction::Egress,
        peer: app2,
        peer_addr: Some("10.0.0.2".parse().unwrap()),
        protocol,
        port,
    };
    let resolve = |f: Flow| l7.table.load().resolve(&f).decision;
    let Decision::Dns(names) = resolve(flow(l7proxy::table::UDP, 53)) else {
        panic!("UDP 53 is decided by the DNS rules");
    };
    for (name, allowed) in [
        ("www.allowed.test", true),
        ("exact.test.", true),
        ("a.b.allowed.test", false),
        ("www.exact.test", false),
        ("blocked.test", false),
    ] {
        assert_eq!(names.matches(name), allowed, "{name}");
    }
    // Each verdict names its rule: the allowing one, or every rule at the key.
    let (first, second) = (
        names.allowing("www.allowed.test"),
        names.allowing("exact.test"),
    );
    assert!(first.is_some() && second.is_some() && first != second);
    assert_eq!(names.rules(), [first.unwrap(), second.unwrap()]);
    // TCP 53 has only the first rule's names.
    let Decision::Dns(tcp) = resolve(flow(l7proxy::table::TCP, 53)) else {
        panic!("TCP 53 is a DNS key too");
    };
    assert!(tcp.matches("www.allowed.test") && !tcp.matches("exact.test"));
    assert_eq!(tcp.rules(), [first.unwrap()]);
    // Another port is not allowed at all.
    assert!(matches!(
        resolve(flow(l7proxy::table::UDP, 54)),
        Decision::DenyAll(_)
    ));
}
