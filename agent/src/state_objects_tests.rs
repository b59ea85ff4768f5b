//! CiliumCIDRGroups, Services with their EndpointSlices, and Nodes in the agent's cluster:
//! each added, changed and removed through the API changes the local endpoints' map state (or,
//! for Nodes, the identity of the node addresses) as a world built from scratch has it; a
//! refused change — an object two sources define, a change the L7 proxy cannot take after the
//! world was rebuilt — leaves world, revision and persisted state as they were.

use super::tests::{agent, assert_same_as_rebuilt, config, endpoint, put};
use super::*;
use ir::NumericIdentity;

/// The verdict of `GET /v1/policy/resolve` for TCP `from` → `to` on port 443.
/// The snapshot's answer must be the world's.
fn allowed(a: &mut Agent, from: &str, to: &str) -> bool {
    let q: BTreeMap<String, String> = [("from", from), ("to", to), ("port", "443")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let v = crate::resolve::resolve_in_world(&a.world(), &q).expect("resolve");
    let snap = a.snapshot(None);
    let from_snapshot = crate::resolve::resolve(&snap, &a.shared_world(), &q).expect("resolve");
    assert_eq!(from_snapshot, v, "{from} -> {to}");
    v["verdict"] == "allowed"
}

fn delete(a: &mut Agent, path: &str) {
    a.delete_policy(PolicyDelete {
        paths: vec![path.into()],
        wait: true,
        ..Default::default()
    })
    .unwrap();
}

/// What a refused change must leave alone.
type State = (
    u64,
    BTreeMap<u16, std::sync::Arc<ir::EndpointPolicy>>,
    ir::IpCache,
    u64,
);

fn state(a: &Agent) -> State {
    let w = a.world();
    let ipcache = w.engine.cluster.ipcache().clone();
    (
        a.persisted.revision,
        w.policies.clone(),
        ipcache,
        w.instance,
    )
}

/// `text` put at `path` is refused as a second definition naming both files; nothing changed.
fn refused_twice(a: &mut Agent, path: &str, text: &str, first: &str) {
    let before = state(a);
    let err = put(a, path, text).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AgentError::Invalid { .. }), "{err:?}");
    assert!(
        msg.contains("defined twice") && msg.contains(first) && msg.contains(path),
        "{msg}"
    );
    assert_eq!(state(a), before, "{path}: nothing changed");
    assert!(!a.persisted.sources.contains_key(path));
}

fn group(name: &str, cidrs: &[&str]) -> String {
    let list: Vec<String> = cidrs.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {{name: {name}}}\n\
         spec: {{externalCIDRs: [{}]}}\n",
        list.join(", ")
    )
}

#[test]
fn cidr_groups_feed_cidr_group_refs() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, &["id=app1"], "10.7.0.1"))
        .unwrap();
    let rule = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
      "ingress": [{"fromCIDRSet": [{"cidrGroupRef": "vpn"}]}]}]"#;
    put(&mut a, "rule.json", rule).unwrap();
    assert!(
        !allowed(&mut a, "192.0.2.7", "1"),
        "no such group: selects nothing"
    );
    put(&mut a, "groups.yaml", &group("vpn", &["192.0.2.0/28"])).unwrap();
    assert!(allowed(&mut a, "192.0.2.7", "1"), "in the group");
    assert!(!allowed(&mut a, "192.0.2.99", "1"), "outside the group");
    assert_same_as_rebuilt(&a, "group added");
    put(&mut a, "groups.yaml", &group("vpn", &["192.0.2.0/24"])).unwrap();
    assert!(allowed(&mut a, "192.0.2.99", "1"), "the group grew");
    assert_same_as_rebuilt(&a, "group changed");
    // A rule added later finds the group (incremental path).
    let rule2 = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
      "egress": [{"toCIDRSet": [{"cidrGroupRef": "vpn"}]}]}]"#;
    put(&mut a, "rule2.json", rule2).unwrap();
    assert!(allowed(&mut a, "1", "192.0.2.99"));
    assert!(!allowed(&mut a, "1", "198.51.100.1"));
    assert_same_as_rebuilt(&a, "rule on an existing group");
    refused_twice(
        &mut a,
        "other.yaml",
        &group("vpn", &["10.0.0.0/8"]),
        "groups.yaml",
    );
    assert!(!allowed(&mut a, "10.1.2.3", "1"));
    // A restarted agent builds its world with the group.
    drop(a);
    let mut a = agent(dir.path());
    assert!(
        allowed(&mut a, "192.0.2.99", "1"),
        "the group after a restart"
    );
    // `policy delete --all` keeps the group (it is not policy), deleting its file drops it.
    a.delete_policy(PolicyDelete {
        all: true,
        wait: true,
        ..Default::default()
    })
    .unwrap();
    assert!(a.persisted.sources.contains_key("groups.yaml"));
    assert!(a.world().engine.cluster.cidr_group("vpn").is_some());
    put(&mut a, "rule.json", rule).unwrap();
    delete(&mut a, "groups.yaml");
    assert!(!allowed(&mut a, "192.0.2.7", "1"), "the group is gone");
    assert_same_as_rebuilt(&a, "group removed");
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\n\
                       spec: {ports: [{port: 443}]}\n";

fn slice(addrs: &[&str]) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: ext-1, namespace: default, labels: {{kubernetes.io/service-name: ext}}}}\n\
         addressType: IPv4\nendpoints:\n- addresses: [{}]\n",
        list.join(", ")
    )
}

#[test]
fn services_and_endpoint_slices_feed_to_services() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, &["id=app1"], "10.7.0.1"))
        .unwrap();
    let pods =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: default, labels: {app: db}}\n\
                status: {podIP: 10.7.0.9}\n";
    put(&mut a, "pods.yaml", pods).unwrap();
    let rule = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
      "egress": [{"toServices": [{"k8sService": {"serviceName": "ext", "namespace": "default"}}]}]}]"#;
    put(&mut a, "rule.json", rule).unwrap();
    assert!(!allowed(&mut a, "1", "203.0.113.5"), "no such service");
    let svc = format!("{SERVICE}---\n{}", slice(&["203.0.113.5"]));
    put(&mut a, "svc.yaml", &svc).unwrap();
    assert!(allowed(&mut a, "1", "203.0.113.5"), "the slice's address");
    assert!(!allowed(&mut a, "1", "203.0.113.6"), "not a backend");
    assert_same_as_rebuilt(&a, "service added");
    // The slice changes: its new address only.
    let svc = format!("{SERVICE}---\n{}", slice(&["203.0.113.6"]));
    put(&mut a, "svc.yaml", &svc).unwrap();
    assert!(!allowed(&mut a, "1", "203.0.113.5"));
    assert!(allowed(&mut a, "1", "203.0.113.6"));
    assert_same_as_rebuilt(&a, "slice changed");
    // The slice in a file of its own, the service given a selector: its pods, not the slice.
    let selected = SERVICE.replace("spec: {", "spec: {selector: {app: db}, ");
    put(&mut a, "svc.yaml", &selected).unwrap();
    put(&mut a, "slice.yaml", &slice(&["203.0.113.6"])).unwrap();
    assert!(allowed(&mut a, "1", "default/db"), "the service's pod");
    assert!(!allowed(&mut a, "1", "203.0.113.6"), "a selector's service");
    assert_same_as_rebuilt(&a, "service with a selector");
    refused_twice(&mut a, "dup.yaml", SERVICE, "svc.yaml");
    // Moved to another file in one request (as `--policy-dir` sends two changed files).
    let doc = |path: &str, text: &str| SourceDoc {
        path: path.into(),
        text: text.into(),
    };
    a.put_policy(PolicyPut {
        sources: vec![doc("svc.yaml", "# moved\n"), doc("moved.yaml", &selected)],
        wait: true,
    })
    .unwrap();
    assert!(allowed(&mut a, "1", "default/db"), "the moved service");
    assert_same_as_rebuilt(&a, "service moved");
    delete(&mut a, "moved.yaml");
    assert!(!allowed(&mut a, "1", "default/db"), "the service is gone");
    assert_same_as_rebuilt(&a, "service removed");
}

/// A Node with one `InternalIP` and `labels` (`key: value`, or empty).
fn node(name: &str, addr: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n\
         status: {{addresses: [{{type: InternalIP, address: {addr}}}]}}\n"
    )
}

/// Nodes' addresses: `host` for the agent's `--node`, a node identity of the remote-node scope
/// for the others (`toEntities: [remote-node]` and node selectors select them).
#[test]
fn nodes_give_their_addresses_host_or_remote_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, &["id=app1"], "10.7.0.1"))
        .unwrap();
    a.put_endpoint(endpoint(2, &["id=app2"], "10.7.0.2"))
        .unwrap();
    let rule = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
      "egress": [{"toEntities": ["remote-node"]}]},
     {"endpointSelector": {"matchLabels": {"id": "app2"}},
      "egress": [{"toNodes": [{"matchLabels": {"role": "db"}}]}]}]"#;
    put(&mut a, "rule.json", rule).unwrap();
    let id = |a: &Agent, ip: &str| {
        a.world()
            .engine
            .cluster
            .identity_of_addr(ip.parse().unwrap())
    };
    // The address's identity carries `reserved:remote-node` (a node identity).
    let remote_node = |a: &Agent, ip: &str| {
        let i = id(a, ip);
        let w = a.world();
        let labels = w.engine.cluster.identity(i).map(|x| x.labels.to_string());
        labels.is_some_and(|l| l.contains("reserved:remote-node"))
    };
    assert!(!allowed(&mut a, "1", "172.18.0.3"), "world before the Node");
    // The agent's `--node` is `test`: its own address is host, the other nodes' remote nodes.
    let nodes = format!(
        "{}---\n{}---\n{}",
        node("test", "172.18.0.2", ""),
        node("b", "172.18.0.3", "role: db"),
        node("c", "172.18.0.5", "role: web")
    );
    put(&mut a, "nodes.yaml", &nodes).unwrap();
    assert_eq!(id(&a, "172.18.0.2"), NumericIdentity::HOST);
    assert!(remote_node(&a, "172.18.0.3"));
    assert!(allowed(&mut a, "1", "172.18.0.3"));
    assert!(
        !allowed(&mut a, "1", "172.18.0.2"),
        "host is not remote-node"
    );
    assert!(
        allowed(&mut a, "2", "172.18.0.3"),
        "the node selector's node"
    );
    assert!(!allowed(&mut a, "2", "172.18.0.5"), "another node");
    assert_same_as_rebuilt(&a, "nodes added");
    // A pod applied later on a node address keeps the node's identity, as in a built world.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: hostnet, namespace: default}\n\
               status: {podIP: 172.18.0.3}\n";
    put(&mut a, "hostnet.yaml", pod).unwrap();
    assert!(remote_node(&a, "172.18.0.3"));
    assert_same_as_rebuilt(&a, "host-network pod");
    let moved = format!(
        "{}---\n{}",
        node("test", "172.18.0.2", ""),
        node("b", "172.18.0.4", "role: db")
    );
    put(&mut a, "nodes.yaml", &moved).unwrap();
    assert!(allowed(&mut a, "1", "172.18.0.4"));
    assert!(allowed(&mut a, "2", "172.18.0.4"));
    assert!(!remote_node(&a, "172.18.0.3"), "the pod's now");
    assert_same_as_rebuilt(&a, "node address changed");
    refused_twice(
        &mut a,
        "again.yaml",
        &node("b", "172.18.0.9", ""),
        "nodes.yaml",
    );
    delete(&mut a, "nodes.yaml");
    assert_eq!(id(&a, "172.18.0.4"), NumericIdentity::WORLD);
    assert!(!allowed(&mut a, "1", "172.18.0.4"));
    assert!(!allowed(&mut a, "2", "172.18.0.4"));
    assert_same_as_rebuilt(&a, "nodes removed");
}

/// A change to a group that the L7 proxy then refuses (its HTTP pattern cannot be compiled,
/// checked after the world was rebuilt) puts the previous world back.
#[test]
fn a_refused_rebuilt_change_puts_the_previous_world_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, &["id=app1"], "10.7.0.1"))
        .unwrap();
    put(&mut a, "groups.yaml", &group("vpn", &["192.0.2.0/28"])).unwrap();
    let rule = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
      "ingress": [{"fromCIDRSet": [{"cidrGroupRef": "vpn"}]}]}]"#;
    put(&mut a, "rule.json", rule).unwrap();
    let before = state(&a);
    let l7 = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: web}\n\
              spec:\n  endpointSelector: {matchLabels: {id: app1}}\n  ingress:\n  \
              - toPorts: [{ports: [{port: \"80\", protocol: TCP}], rules: {http: [{path: \"(a{1000}){1000}\"}]}}]\n";
    let text = format!("{}---\n{l7}", group("vpn2", &["198.51.100.0/24"]));
    let err = put(&mut a, "l7.yaml", &text).unwrap_err();
    assert!(matches!(err, AgentError::Invalid { .. }), "{err:?}");
    assert!(
        err.diagnostics()
            .iter()
            .any(|d| d.starts_with("l7.yaml:") && d.contains("HTTP path")),
        "refused by the proxy's table, after the rebuild: {err:?}"
    );
    assert_eq!(
        state(&a),
        before,
        "world, revision and world instance as before"
    );
    assert!(a.world().engine.cluster.cidr_group("vpn2").is_none());
    assert!(allowed(&mut a, "192.0.2.7", "1"));
    assert_same_as_rebuilt(&a, "after the refusal");
}

/// A state stored by an agent that ignored Services (two sources defining one) no longer
/// builds: the agent refuses to start, saying where the state is and naming both sources.
#[test]
fn a_persisted_duplicate_refuses_the_start_naming_the_state() {
    let dir = tempfile::tempdir().unwrap();
    put(&mut agent(dir.path()), "a.yaml", SERVICE).unwrap();
    let path = dir.path().join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["sources"]["b.yaml"] = SERVICE.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let err = match Agent::start(config(dir.path()), Box::new(|_| {})) {
        Ok(_) => panic!("the agent started on an invalid state"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("state.json: the persisted state is not valid")
            && err.contains("a.yaml")
            && err.contains("b.yaml"),
        "{err}"
    );
}

/// The addresses learned for `toFQDNs` survive a change that rebuilds the world.
#[test]
fn learned_fqdn_addresses_survive_a_rebuilt_world() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    a.put_endpoint(endpoint(1, &["app=client"], "10.7.0.1"))
        .unwrap();
    let rule = r#"[{"endpointSelector": {"matchLabels": {"app": "client"}},
      "egress": [{"toFQDNs": [{"matchPattern": "*.allowed.test"}]}]}]"#;
    put(&mut a, "fqdn.json", rule).unwrap();
    let api = l7proxy::dns::learn::Learned {
        addr: "192.0.2.80".parse().unwrap(),
        ttl: 300,
        names: vec!["api.allowed.test.".into()],
    };
    a.learn_fqdn(&[api]).unwrap();
    assert!(allowed(&mut a, "1", "192.0.2.80"), "learned");
    let instance = a.world().instance;
    put(&mut a, "groups.yaml", &group("vpn", &["198.51.100.0/24"])).unwrap();
    assert_ne!(a.world().instance, instance, "the world was rebuilt");
    assert!(
        allowed(&mut a, "1", "192.0.2.80"),
        "still learned after the rebuild"
    );
}
