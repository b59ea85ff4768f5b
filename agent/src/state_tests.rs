//! The incremental world against a world built from scratch: after every change (policies
//! and manifests from `testdata/semantics` applied, replaced, deleted whole or by labels,
//! endpoints added, relabelled and removed, refused changes) the agent's world must equal
//! `World::build` of the persisted state: the same endpoints, identities, ipcache, and map
//! state (rules compared by their file:line, since rule ids differ between the two).

use super::*;
use crate::world::World;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) fn agent(dir: &Path) -> Agent {
    Agent::start(config(dir), Box::new(|_| {})).unwrap()
}

/// The configuration of a test agent without a datapath on node `test`.
pub(crate) fn config(dir: &Path) -> AgentConfig {
    AgentConfig {
        attach_mode: runtime_loader::AttachMode::Netlink,
        state_dir: dir.to_path_buf(),
        api_socket: dir.join("api.sock"),
        policy_dir: None,
        bpf_root: dir.join("bpf"),
        node: "test".into(),
        debug: false,
        datapath: false,
        tcp: None,
        ct_tcp_max: 1024,
        ct_any_max: 1024,
        flow_cache_slots: 256,
        spare_programs: 0,
        deny_cache: true,
        kvstore: None,
        flow_export: None,
        metrics_listen: None,
        policy_audit_mode: false,
        ipcache_sync: None,
        fqdn: Default::default(),
        datapath_check_interval: None,
    }
}

type Norm = BTreeMap<String, (String, Vec<String>)>;

/// A map state with rule ids replaced by rule locations.
fn normalize(w: &World, p: &ir::EndpointPolicy) -> (bool, bool, Norm, Norm) {
    let at = |rules: &[ir::RuleId]| {
        let mut v: Vec<String> = rules.iter().map(|r| w.engine.policy.location(*r)).collect();
        v.sort();
        v
    };
    let entries = p
        .entries
        .iter()
        .map(|(k, e)| {
            let verdict = format!("{:?} audited {:?}", e.verdict, at(&e.audited));
            (format!("{k:?}"), (verdict, at(&e.rules)))
        })
        .collect();
    let addr = p
        .addr_entries
        .iter()
        .map(|(k, e)| (format!("{k:?}"), (format!("{:?}", e.verdict), at(&e.rules))))
        .collect();
    (p.ingress_enforced, p.egress_enforced, entries, addr)
}

pub(crate) fn assert_same_as_rebuilt(a: &Agent, step: &str) {
    let built = World::build(&a.persisted, &a.cfg).unwrap();
    let w = &*a.world();
    assert_eq!(w.endpoints, built.endpoints, "{step}: local endpoints");
    assert_eq!(
        w.engine.cluster.ipcache(),
        built.engine.cluster.ipcache(),
        "{step}: ipcache"
    );
    let ids = |w: &World| -> Vec<(u32, String)> {
        w.engine
            .cluster
            .identities()
            .map(|i| (i.id.0, format!("{:?}", i.labels)))
            .collect()
    };
    assert_eq!(ids(w), ids(&built), "{step}: identities");
    let names: Vec<String> = built
        .engine
        .cluster
        .endpoints()
        .map(|e| e.name.clone())
        .collect();
    for name in names {
        let mine = w.engine.endpoint_policy(&name).map(|p| normalize(w, &p));
        let theirs = built
            .engine
            .endpoint_policy(&name)
            .map(|p| normalize(&built, &p));
        assert_eq!(mine, theirs, "{step}: map state of {name}");
    }
    for (id, p) in &w.policies {
        assert_eq!(
            Some(normalize(w, p)),
            built.policies.get(id).map(|q| normalize(&built, q)),
            "{step}: local endpoint {id}"
        );
    }
    let live = |w: &World| {
        let p = w.live_policy();
        let mut v: Vec<String> = (0..p.rules.len())
            .map(|i| p.location(ir::RuleId(i as u32)))
            .collect();
        v.sort();
        v
    };
    assert_eq!(live(w), live(&built), "{step}: rules in force");
}

pub(crate) fn put(a: &mut Agent, path: &str, text: &str) -> Result<RevisionReply, AgentError> {
    a.put_policy(PolicyPut {
        sources: vec![SourceDoc {
            path: path.into(),
            text: text.into(),
        }],
        wait: true,
    })
}

pub(crate) fn semantics_files() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/semantics");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "json")
                )
            })
            .collect();
        // Manifests first, so pods exist before the policies that select them.
        files.sort_by_key(|p| (!p.ends_with("inventory.yaml"), p.clone()));
        for f in files {
            let rel = f.strip_prefix(&root).unwrap().display().to_string();
            out.push((rel, std::fs::read_to_string(&f).unwrap()));
        }
    }
    out
}

const LABELLED: &str = r#"[
 {"endpointSelector": {"matchLabels": {"id": "app1"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}]}],
  "labels": [{"key": "team", "value": "a"}, {"key": "tier", "value": "one"}]},
 {"endpointSelector": {"matchLabels": {"id": "app1"}},
  "egress": [{"toCIDR": ["192.0.2.0/24"]}],
  "labels": [{"key": "team", "value": "b"}]},
 {"endpointSelector": {"matchLabels": {"id": "app2"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app1"}}],
               "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
  "labels": [{"key": "team", "value": "a"}]}
]"#;

pub(crate) fn endpoint(id: u16, labels: &[&str], ip: &str) -> EndpointSpec {
    EndpointSpec {
        id,
        iface: format!("lxc{id}"),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
        pod: None,
        container_id: None,
    }
}

#[test]
fn annotating_a_namespace_puts_its_endpoints_into_audit_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path());
    let pods = r#"apiVersion: v1
kind: Pod
metadata: {name: db, namespace: staging, labels: {app: db}}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: tester, namespace: staging, labels: {app: tester}}
status: {podIP: 10.1.0.2}
"#;
    let policy = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db, namespace: staging}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: tester}}]
"#;
    put(&mut a, "pods.yaml", pods).unwrap();
    put(&mut a, "db.yaml", policy).unwrap();
    let audited = |a: &Agent| {
        let w = a.world();
        let p = w.engine.policy_of("staging/db").expect("db's map state");
        p.entries.values().any(|e| !e.audited.is_empty())
    };
    assert!(!audited(&a), "enforced as written");
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: staging\n  annotations:\n    cilium-policy.io/audit-mode: \"true\"\n";
    put(&mut a, "ns.yaml", ns).unwrap();
    assert!(audited(&a), "the default deny is audited");
    assert_same_as_rebuilt(&a, "namespace annotated");
    put(&mut a, "ns.yaml", &ns.replace("\"true\"", "\"false\"")).unwrap();
    assert!(!audited(&a), "enforced again");
    assert_same_as_rebuilt(&a, "annotation off");
}

#[test]
fn incremental_world_equals_a_rebuilt_one() {
    let dir = std::env::temp_dir().join(format!("cp-incremental-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = agent(&dir);
    for (id, l, ip) in [
        (1, "id=app1", "10.9.0.1"),
        (2, "id=app2", "10.9.0.2"),
        (3, "id=app3", "10.9.0.3"),
        (4, "id=app1", "10.9.0.4"),
    ] {
        a.put_endpoint(endpoint(id, &[l], ip)).unwrap();
        assert_same_as_rebuilt(&a, &format!("endpoint {id}"));
    }
    let files = semantics_files();
    let mut applied = Vec::new();
    for (path, text) in &files {
        let before = a.persisted.revision;
        match put(&mut a, path, text) {
            Ok(r) => {
                assert_eq!(r.revision, before + 1);
                applied.push(path.clone());
            }
            // Manifests of different directories may define the same workload, address,
            // Service, Node or CIDR group: refused whole.
            Err(e) => {
                assert!(
                    e.to_string().contains("already defined")
                        || e.to_string().contains("already belongs")
                        || e.to_string().contains("defined twice"),
                    "{path}: {e:?}"
                );
                assert_eq!(a.persisted.revision, before);
            }
        }
        assert_same_as_rebuilt(&a, &format!("put {path}"));
    }
    assert!(applied.len() > 10, "{applied:?}");
    put(&mut a, "labelled.json", LABELLED).unwrap();
    assert_same_as_rebuilt(&a, "put labelled.json");
    // A pod endpoint, then a relabelled and a removed endpoint.
    let pod = a
        .world()
        .engine
        .cluster
        .endpoints()
        .find(|e| e.kind == "Pod")
        .map(|e| e.name.clone())
        .unwrap();
    a.put_endpoint(EndpointSpec {
        id: 9,
        iface: "lxc9".into(),
        labels: vec![],
        ipv4: None,
        ipv6: None,
        pod: Some(pod),
        container_id: None,
    })
    .unwrap();
    assert_same_as_rebuilt(&a, "pod endpoint");
    a.modify_labels(
        &EndpointRef::Id(4),
        LabelsPatch {
            add: vec!["id=app2".into()],
            delete: vec!["id=app1".into()],
        },
    )
    .unwrap();
    assert_same_as_rebuilt(&a, "relabel endpoint 4");
    a.delete_endpoint(&EndpointRef::Id(3)).unwrap();
    assert_same_as_rebuilt(&a, "delete endpoint 3");
    // Replace a manifest (namespaces and pods change) and a policy, then delete others.
    for (path, text) in files.iter().filter(|(p, _)| applied.contains(p)).take(6) {
        let changed = text.replace("app", "apq");
        if put(&mut a, path, &changed).is_ok() {
            assert_same_as_rebuilt(&a, &format!("replace {path}"));
        }
    }
    for path in applied.iter().skip(6).step_by(3) {
        let res = a.delete_policy(PolicyDelete {
            paths: vec![path.clone()],
            wait: true,
            ..Default::default()
        });
        if let Err(e) = res {
            // Withdrawing a pod a local endpoint uses (the message of a rebuilt world for a
            // source that also holds Services, Nodes or CIDR groups says it is not applied).
            let msg = e.to_string();
            assert!(
                msg.contains("no longer be applied") || msg.contains("is not applied"),
                "{e:?}"
            );
        }
        assert_same_as_rebuilt(&a, &format!("delete {path}"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn delete_by_labels_removes_exactly_the_matching_rules() {
    let dir = std::env::temp_dir().join(format!("cp-delete-labels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = agent(&dir);
    a.put_endpoint(endpoint(1, &["id=app1"], "10.8.0.1"))
        .unwrap();
    a.put_endpoint(endpoint(2, &["id=app2"], "10.8.0.2"))
        .unwrap();
    put(&mut a, "labelled.json", LABELLED).unwrap();
    let rules = |a: &Agent| a.policy_reply().map(|p| p.rules).unwrap_or_default();
    let before = a.persisted.revision;
    let all = rules(&a);
    assert!(all.contains("192.0.2.0/24") && all.contains("80"), "{all}");
    // Rules carrying both team=a and tier=one: only the first rule of the file.
    let r = a
        .delete_policy(PolicyDelete {
            labels: vec!["team=a".into(), "tier=one".into()],
            wait: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.revision, before + 1);
    let left = rules(&a);
    assert!(left.contains("192.0.2.0/24"), "team=b rule kept: {left}");
    assert!(
        left.contains("80"),
        "team=a rule without tier=one kept: {left}"
    );
    assert!(
        !a.world().policies[&1]
            .entries
            .keys()
            .any(|k| k.direction == ir::Direction::Ingress
                && k.identity == a.world().endpoints[&2].identity),
        "app2 → app1 no longer allowed"
    );
    assert_same_as_rebuilt(&a, "delete team=a,tier=one");
    // `GET /v1/policy` says which label filters hide rules of the source text.
    let reply = a.policy_reply().unwrap();
    assert_eq!(
        reply.deleted_labels.get("labelled.json"),
        Some(&vec![vec!["team=a".to_string(), "tier=one".to_string()]]),
        "{:?}",
        reply.deleted_labels
    );
    // The deletion survives a restart.
    let kept = rules(&a);
    drop(a);
    let mut a = agent(&dir);
    assert_eq!(rules(&a), kept);
    // team=a now matches the rule on app2 only; nothing matches afterwards.
    a.delete_policy(PolicyDelete {
        labels: vec!["team=a".into()],
        wait: true,
        ..Default::default()
    })
    .unwrap();
    assert!(!rules(&a).contains("80"));
    assert!(rules(&a).contains("192.0.2.0/24"));
    assert_same_as_rebuilt(&a, "delete team=a");
    let e = a
        .delete_policy(PolicyDelete {
            labels: vec!["team=a".into()],
            wait: true,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, AgentError::NotFound(_)), "{e:?}");
    // Re-applying the file brings every rule back.
    put(&mut a, "labelled.json", LABELLED).unwrap();
    assert_eq!(rules(&a), all);
    assert!(a.policy_reply().unwrap().deleted_labels.is_empty());
    assert_same_as_rebuilt(&a, "re-apply");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CNI endpoints: the agent numbers them, a repeated ADD is idempotent, the pod's addresses are
/// the runtime's (not the manifest's) and go back to the manifest's when the endpoint goes.
#[test]
fn cni_endpoints_are_numbered_by_the_agent_and_carry_runtime_addresses() {
    let dir = std::env::temp_dir().join(format!("cp-cni-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = agent(&dir);
    let pods = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, labels: {app: web}}\n\
                ---\napiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: default, labels: {app: db}}\n\
                status: {podIP: 10.9.8.7}\n";
    put(&mut a, "pods.yaml", pods).unwrap();
    let cni = |pod: &str, iface: &str, ip: &str| EndpointSpec {
        id: 0,
        iface: iface.into(),
        labels: vec![],
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
        pod: Some(pod.into()),
        container_id: None,
    };
    let addr = |a: &Agent, ip: &str| {
        let world = a.world();
        let entries = &world.engine.cluster.ipcache().entries;
        entries
            .iter()
            .find(|(net, _)| net.prefix_len() == 32 && net.addr().to_string() == ip)
            .map(|(_, id)| *id)
    };
    a.put_cni_endpoint("c1", cni("default/web", "veth1", "10.88.0.2"))
        .unwrap();
    let web = a
        .snapshot(None)
        .endpoint(&EndpointRef::Container("c1".into()))
        .unwrap();
    assert_eq!((web.id, web.container_id.as_deref()), (1, Some("c1")));
    assert_eq!(addr(&a, "10.88.0.2").map(|i| i.0), Some(web.identity));
    assert_same_as_rebuilt(&a, "cni endpoint");
    // The runtime retries an ADD: same answer, no second endpoint; another interface conflicts.
    a.put_cni_endpoint("c1", cni("default/web", "veth1", "10.88.0.2"))
        .unwrap();
    assert_eq!(a.snapshot(None).endpoints.len(), 1);
    let e = a
        .put_cni_endpoint("c1", cni("default/web", "veth9", "10.88.0.2"))
        .unwrap_err();
    assert!(e.to_string().contains("another configuration"), "{e:?}");
    // The runtime's address replaces the manifest's podIP.
    a.put_cni_endpoint("c2", cni("default/db", "veth2", "10.88.0.3"))
        .unwrap();
    assert_eq!(a.container_endpoint("c2"), Some(2));
    assert!(addr(&a, "10.9.8.7").is_none() && addr(&a, "10.88.0.3").is_some());
    assert_same_as_rebuilt(&a, "cni endpoint over a podIP");
    // The runtime's interface and addresses cannot be patched.
    let patch = EndpointPatch {
        iface: Some("veth7".into()),
        ..Default::default()
    };
    let e = a
        .patch_endpoint(&EndpointRef::Container("c2".into()), patch)
        .unwrap_err();
    assert!(
        e.to_string().contains("comes from its container c2"),
        "{e:?}"
    );
    // An address another workload holds, or an unknown pod, is refused.
    let e = a
        .put_cni_endpoint("c3", cni("default/web", "veth3", "10.88.0.3"))
        .unwrap_err();
    assert!(e.to_string().contains("already belongs"), "{e:?}");
    let e = a
        .put_cni_endpoint("c4", cni("default/nobody", "veth4", "10.88.0.4"))
        .unwrap_err();
    assert!(e.to_string().contains("not applied"), "{e:?}");
    // Gone: the manifest's address is back, the runtime's is free.
    a.delete_endpoint(&EndpointRef::Container("c2".into()))
        .unwrap();
    assert!(addr(&a, "10.9.8.7").is_some() && addr(&a, "10.88.0.3").is_none());
    assert_same_as_rebuilt(&a, "cni endpoint deleted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `policy delete --all` deletes every rule (seed §2.3.8) and keeps Namespaces and Pods, also
/// those local endpoints use and those defined in the same file as a policy; re-applying a file
/// brings its rules back.
#[test]
fn delete_all_keeps_the_inventory() {
    let dir = std::env::temp_dir().join(format!("cp-delall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = agent(&dir);
    let mixed = "apiVersion: v1\nkind: Pod\nmetadata: {name: app1, namespace: default, labels: {id: app1}}\n\
                 status: {podIP: 10.9.7.1}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n\
                 metadata: {name: p, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {id: app1}}\n\
                 \x20 ingress: [{}]\n";
    put(&mut a, "mixed.yaml", mixed).unwrap();
    put(&mut a, "only-rules.json", LABELLED).unwrap();
    let spec = EndpointSpec {
        id: 1,
        iface: "lxc1".into(),
        labels: vec![],
        ipv4: None,
        ipv6: None,
        pod: Some("default/app1".into()),
        container_id: None,
    };
    a.put_endpoint(spec).unwrap();
    assert!(a.snapshot(None).endpoints(None).unwrap()[0].ingress_enforced);
    a.delete_policy(PolicyDelete {
        all: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(a.world().live_policy().rules.len(), 0);
    assert!(
        !a.snapshot(None).endpoints(None).unwrap()[0].ingress_enforced,
        "no rule selects app1 any more"
    );
    assert!(
        a.persisted.sources.contains_key("mixed.yaml"),
        "the Pod stays"
    );
    assert!(!a.persisted.sources.contains_key("only-rules.json"));
    assert_same_as_rebuilt(&a, "delete --all");
    put(&mut a, "mixed.yaml", mixed).unwrap();
    assert!(
        a.snapshot(None).endpoints(None).unwrap()[0].ingress_enforced,
        "re-applied rules are back"
    );
    assert_same_as_rebuilt(&a, "re-applied");
    let _ = std::fs::remove_dir_all(&dir);
}
