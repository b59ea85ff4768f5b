//! A change that needs a number the shared identity store cannot give (etcd does not answer)
//! is refused before any of it is applied: the world is neither half-changed nor rebuilt, and
//! what was in force stays, for each kind of change that brings a new label set (a label
//! endpoint, a relabel, a pod from a manifest, another node's endpoint).

use super::tests::{assert_same_as_rebuilt, config, endpoint, put};
use super::*;
use crate::model::LabelsPatch;
use crate::remote::RemoteEndpoint;
use crate::EndpointRef;
use ir::NumericIdentity;
use std::collections::BTreeMap;

/// A shared store that does not answer for label sets with `offline` in them and gives the
/// others the number local allocation would.
#[derive(Debug)]
struct Unanswering;

impl compiler::identity::SharedIdentities for Unanswering {
    fn allocate(&self, key: &str, candidate: NumericIdentity) -> Result<NumericIdentity, String> {
        if key.contains("offline") {
            return Err("kvstore http://127.0.0.1:2379: etcd has not answered".into());
        }
        Ok(candidate)
    }
}

/// An agent without a datapath whose shared store is [`Unanswering`].
fn unanswered_agent(dir: &std::path::Path) -> Agent {
    let mut cfg = config(dir);
    cfg.kvstore = Some(std::sync::Arc::new(Unanswering));
    Agent::start(cfg, Box::new(|_| {})).unwrap()
}

/// Checks that `refused` was refused for the store and the world not rebuilt.
fn refused_unrebuilt<T: std::fmt::Debug>(a: &Agent, refused: Result<T, AgentError>, what: &str) {
    let instance = a.world().instance;
    let e = refused.expect_err(what);
    assert!(matches!(e, AgentError::Kvstore(_)), "{what}: {e}");
    assert_eq!(
        a.world().instance,
        instance,
        "{what}: the world was rebuilt"
    );
}

/// [`refused_unrebuilt`], and the world still the one its persisted state builds.
fn refused_in_place<T: std::fmt::Debug>(a: &Agent, refused: Result<T, AgentError>, what: &str) {
    refused_unrebuilt(a, refused, what);
    assert_same_as_rebuilt(a, what);
}

#[test]
fn a_label_set_the_store_cannot_number_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = unanswered_agent(dir.path());
    a.put_endpoint(endpoint(1, &["id=app1"], "10.9.0.1"))
        .unwrap();
    let manifest = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n\
        status: {podIP: 10.9.0.5}\n";
    put(&mut a, "pods.yaml", manifest).unwrap();
    let instance = a.world().instance;

    let r = a.put_endpoint(endpoint(2, &["id=offline"], "10.9.0.2"));
    refused_in_place(&a, r, "a new label endpoint");
    let r = a.modify_labels(
        &EndpointRef::Id(1),
        LabelsPatch {
            add: vec!["id=offline".into()],
            delete: vec!["id=app1".into()],
        },
    );
    refused_in_place(&a, r, "a relabel");
    let r = put(
        &mut a,
        "pods.yaml",
        &manifest.replace("app: web", "app: offline"),
    );
    refused_in_place(&a, r, "a pod's labels in its manifest");
    let r = put(
        &mut a,
        "pods.yaml",
        &manifest.replace("name: shop}", "name: shop, labels: {tier: offline}}"),
    );
    refused_in_place(&a, r, "its namespace's labels in the same manifest");
    // Another node's endpoint (not persisted: checked in the cluster), then its labels changed
    // to the unnumbered set.
    let remote = |label: &str| {
        let ep = RemoteEndpoint {
            node: "node-b".into(),
            identity: NumericIdentity(300),
            labels: ir::LabelSet::new(vec![ir::Label::k8s("id", label)]),
            ips: vec!["10.9.1.1".parse().unwrap()],
        };
        let want: BTreeMap<String, RemoteEndpoint> =
            [("kvstore:node-b/1".to_string(), ep)].into_iter().collect();
        want
    };
    let before = remote("client");
    a.apply_remote(&before).unwrap();
    let in_cluster = |a: &Agent| {
        let w = a.world();
        let ep = w.engine.cluster.endpoint("kvstore:node-b/1").cloned();
        ep.map(|e| {
            (
                e.labels.to_string(),
                e.identity,
                w.engine.cluster.ipcache().clone(),
            )
        })
    };
    let was = in_cluster(&a);
    assert!(was.is_some());
    let r = a.apply_remote(&remote("offline"));
    refused_unrebuilt(&a, r, "another node's endpoint relabelled");
    assert_eq!(a.world().remote(), &before);
    assert_eq!(in_cluster(&a), was, "the endpoint in force stays");

    assert_eq!(a.world().instance, instance);
    let ep = a.world().endpoints.get(&1).cloned().unwrap();
    assert!(ep.labels.to_string().contains("app1"), "{:?}", ep.labels);
}

/// A change whose new label sets prenumbering does not see (another source's pod relabelled
/// through the namespace this change redefines) fails halfway: the world is rebuilt from the
/// persisted state instead of keeping the part applied.
#[test]
fn a_change_refused_halfway_rebuilds_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = unanswered_agent(dir.path());
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: a}}\n";
    put(&mut a, "ns.yaml", ns).unwrap();
    let pod =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n\
        status: {podIP: 10.9.0.5}\n";
    put(&mut a, "pods.yaml", pod).unwrap();
    let instance = a.world().instance;
    let e = put(&mut a, "ns.yaml", &ns.replace("tier: a", "tier: offline")).unwrap_err();
    assert!(matches!(e, AgentError::Kvstore(_)), "{e}");
    assert_ne!(a.world().instance, instance, "rebuilt");
    assert_same_as_rebuilt(&a, "after the refused namespace change");
    let world = a.world();
    let web = world
        .engine
        .cluster
        .endpoint("shop/web")
        .expect("web stays");
    assert!(web.labels.to_string().contains("tier=a"), "{}", web.labels);
}
