//! The objects the agent's cluster holds whole, on real packets: a `cidrGroupRef` allow
//! applied through the agent admits a peer in the CiliumCIDRGroup and not one outside it;
//! updating the group admits the other; a `toServices` rule to a Service without a selector
//! admits egress to its EndpointSlice's address only; a second definition of the Service in
//! another file is refused naming both files and changes nothing. The peers are plain network
//! namespaces on the node, not endpoints of the agent (their addresses are `world` to it).

mod agent_harness;

use agent_harness::Agent;
use runtime_loader::probe::{tcp_ok, Responder, PASS_WAIT};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::Ipv4Addr;
use std::time::Duration;

const T: Duration = Duration::from_millis(800);

fn group(cidrs: &[Ipv4Addr]) -> String {
    let list: Vec<String> = cidrs.iter().map(|a| format!("\"{a}/32\"")).collect();
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata:\n  name: peers\n\
         spec:\n  externalCIDRs: [{}]\n",
        list.join(", ")
    )
}

const FROM_GROUP: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
  "ingress": [{"fromCIDRSet": [{"cidrGroupRef": "peers"}],
               "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;

const TO_SERVICE: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
  "egress": [{"toServices": [{"k8sService": {"serviceName": "ext", "namespace": "default"}}]}]}]"#;

/// A Service without a selector and its EndpointSlice holding `addr`.
fn service(addr: Ipv4Addr) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\n  namespace: default\n\
         spec:\n  ports:\n  - port: 80\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ext-1\n  \
         namespace: default\n  labels:\n    kubernetes.io/service-name: ext\n\
         addressType: IPv4\nendpoints:\n- addresses: [\"{addr}\"]\n"
    )
}

#[test]
fn root_agent_cidr_groups_and_services_on_real_packets() {
    if !require_root("root_agent_cidr_groups_and_services_on_real_packets") {
        return;
    }
    let node = node_netns();
    let app1 = Endpoint::new(&node, Ipv4Addr::new(10, 89, 0, 1));
    let inside = Endpoint::new(&node, Ipv4Addr::new(10, 89, 0, 2));
    let outside = Endpoint::new(&node, Ipv4Addr::new(10, 89, 0, 3));
    let _srv = [
        Responder::start(&app1.ns, app1.addr, 80),
        Responder::start(&inside.ns, inside.addr, 80),
        Responder::start(&outside.ns, outside.addr, 80),
    ];
    let agent = Agent::start(&node);
    agent.add_endpoint(1, "id=app1", &app1);

    // Ingress from the group only.
    let groups = agent.file("groups.yaml", &group(&[inside.addr]));
    agent.ok(&["apply", "-f", &groups]);
    let rule = agent.file("from-group.json", FROM_GROUP);
    agent.ok(&["policy", "import", &rule]);
    assert!(
        tcp_ok(&inside.ns, app1.addr, 80, PASS_WAIT),
        "a peer in the group is admitted"
    );
    assert!(
        !tcp_ok(&outside.ns, app1.addr, 80, T),
        "a peer outside the group is not"
    );
    // The group grows: the other peer is admitted too.
    std::fs::write(&groups, group(&[inside.addr, outside.addr])).expect("group file");
    agent.ok(&["apply", "-f", &groups]);
    assert!(
        tcp_ok(&outside.ns, app1.addr, 80, PASS_WAIT),
        "admitted once in the group"
    );
    assert!(tcp_ok(&inside.ns, app1.addr, 80, PASS_WAIT));

    // Egress to the Service's EndpointSlice address only (both peers are in the group, so
    // both have a CIDR identity: only the slice's is allowed).
    let svc = agent.file("svc.yaml", &service(inside.addr));
    agent.ok(&["apply", "-f", &svc]);
    let egress = agent.file("to-service.json", TO_SERVICE);
    let before = agent.ok(&["policy", "import", &egress]);
    assert!(
        tcp_ok(&app1.ns, inside.addr, 80, PASS_WAIT),
        "egress to the slice's address"
    );
    assert!(
        !tcp_ok(&app1.ns, outside.addr, 80, T),
        "no egress to an address outside the service"
    );

    // The same Service in another file: refused naming both, nothing changes.
    let dup = agent.file("dup.yaml", &service(outside.addr));
    let out = agent.cli(&["apply", "-f", &dup]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second definition is refused");
    assert!(
        err.contains("defined twice") && err.contains("svc.yaml") && err.contains("dup.yaml"),
        "{err}"
    );
    agent.assert_unchanged_since(&before, "dup.yaml");
    assert!(tcp_ok(&app1.ns, inside.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&app1.ns, outside.addr, 80, T));
}
