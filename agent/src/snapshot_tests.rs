//! The incremental snapshot (each taken from the previous one) equals one built whole, after
//! every kind of write.

use super::*;
use crate::model::{EndpointSpec, LabelsPatch, PolicyDelete};
use crate::state::tests::{agent, endpoint, put, semantics_files};
use crate::EndpointRef;

/// Takes the next snapshot from `last` and checks it against one built whole.
fn step(a: &mut Agent, last: &mut Arc<Snapshot>, what: &str) {
    let next = a.snapshot(Some(last));
    let full = a.snapshot(None);
    assert_eq!(
        json(&next.endpoints(None).ok()),
        json(&full.endpoints(None).ok()),
        "{what}: endpoints"
    );
    assert_eq!(
        json(&*next.identities),
        json(&*full.identities),
        "{what}: identities"
    );
    assert_eq!(
        json(&*next.revisions),
        json(&*full.revisions),
        "{what}: revisions"
    );
    assert_eq!(json(&next.healthz), json(&full.healthz), "{what}: healthz");
    assert_eq!(
        json(&next.policy().ok()),
        json(&full.policy().ok()),
        "{what}: policy"
    );
    assert_eq!(next.ipcache, full.ipcache, "{what}: ipcache");
    for v in full.views() {
        for ingress in [true, false] {
            assert_eq!(
                next.isolating(v.status.identity, ingress),
                full.isolating(v.status.identity, ingress),
                "{what}: default-deny rules of endpoint {}",
                v.status.id
            );
        }
    }
    *last = Arc::new(next);
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn every_incremental_snapshot_equals_one_built_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    let mut last = Arc::new(a.snapshot(None));
    for (id, l, ip) in [
        (1, "id=app1", "10.9.0.1"),
        (2, "id=app2", "10.9.0.2"),
        (3, "id=app3", "10.9.0.3"),
    ] {
        a.put_endpoint(endpoint(id, &[l], ip)).unwrap();
        step(&mut a, &mut last, &format!("endpoint {id}"));
    }
    let files = semantics_files();
    for (path, text) in files.iter().take(24) {
        let _ = put(&mut a, path, text);
        step(&mut a, &mut last, &format!("put {path}"));
    }
    // A second default-deny rule of an endpoint already isolated: its map state is unchanged.
    let deny = |name: &str| {
        format!(
            r#"[{{"endpointSelector": {{"matchLabels": {{"id": "app1"}}}}, "ingress": [{{}}],
               "labels": [{{"key": "name", "value": "{name}"}}]}}]"#
        )
    };
    put(&mut a, "deny1.json", &deny("one")).unwrap();
    step(&mut a, &mut last, "first isolating rule");
    put(&mut a, "deny2.json", &deny("two")).unwrap();
    step(&mut a, &mut last, "second isolating rule");
    a.modify_labels(
        &EndpointRef::Id(3),
        LabelsPatch {
            add: vec!["id=app1".into()],
            delete: vec!["id=app3".into()],
        },
    )
    .unwrap();
    step(&mut a, &mut last, "relabel");
    a.delete_endpoint(&EndpointRef::Id(2)).unwrap();
    step(&mut a, &mut last, "delete endpoint");
    a.put_endpoint(EndpointSpec {
        container_id: Some("c1".into()),
        ..endpoint(7, &["id=app2"], "10.9.0.7")
    })
    .unwrap();
    step(&mut a, &mut last, "CNI endpoint");
    // A CIDR group: the world is rebuilt (another world: built whole).
    let group = "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {name: vpn}\n\
                 spec: {externalCIDRs: [192.0.2.0/28]}\n";
    put(&mut a, "group.yaml", group).unwrap();
    step(&mut a, &mut last, "rebuilt world");
    assert!(put(&mut a, "bad.json", "[{\"endpointSelector\": 7}]").is_err());
    step(&mut a, &mut last, "refused change");
    a.delete_policy(PolicyDelete {
        all: true,
        wait: true,
        ..Default::default()
    })
    .unwrap();
    step(&mut a, &mut last, "delete all");
    // A write that changed nothing shares everything.
    let same = a.snapshot(Some(&last));
    assert!(Arc::ptr_eq(&same.endpoints, &last.endpoints));
    assert!(Arc::ptr_eq(&same.identities, &last.identities));
    assert!(Arc::ptr_eq(&same.rules, &last.rules));
    assert!(Arc::ptr_eq(&same.ipcache, &last.ipcache));
}
