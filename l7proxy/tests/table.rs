//! Building the table from a policy: a pattern too large to compile refuses the whole build with
//! the rule's location, and the proxy keeps serving with the table it had.

mod common;

use common::*;
use l7proxy::table::TableError;
use l7proxy::{Limits, PolicyTable, ProxyConfig};

#[tokio::test]
async fn an_oversized_pattern_is_refused_with_its_location_and_nothing_changes() {
    let backend = backend().await;
    let good = World::new(&ingress_policy(
        backend.port(),
        "        - {method: GET, path: /public}",
    ));
    let p = proxy(
        good.table(),
        good.identity("app2"),
        backend,
        ProxyConfig::default(),
    )
    .await;
    let bad_rules =
        "        - {method: GET, path: /private}\n        - {path: \"(a{1000}){1000}\"}";
    let bad = World::new(&ingress_policy(backend.port(), bad_rules));
    let err = match PolicyTable::build(&bad.engine, &[(1, "default/app1")], &Limits::default()) {
        Err(TableError::Refused(list)) => list,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert_eq!(err.len(), 1, "{err:?}");
    let policy_file = bad.dir.path().join("policy.yaml");
    let loc = &err[0].location;
    assert!(
        loc.starts_with(&format!("{}:", policy_file.display())),
        "{loc}"
    );
    assert!(loc.ends_with(":8:5"), "{loc}"); // The `ingress[0]` item.
    assert_eq!(
        (err[0].field, err[0].pattern.as_str()),
        ("path", "(a{1000}){1000}")
    );
    let message = TableError::Refused(err).to_string();
    assert!(message.contains("the policy is not applied"), "{message}");
    assert!(message.contains("default/rule1"), "{message}");
    // Nothing was stored: the proxy still answers with the previous table.
    let mut c = client(p.addr).await;
    assert_eq!(send(&mut c, "GET", "/public", &[]).await.0, 200);
    assert_eq!(send(&mut c, "GET", "/private", &[]).await.0, 403);
}
