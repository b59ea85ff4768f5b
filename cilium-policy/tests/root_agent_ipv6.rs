//! IPv6 on real packets: dual-stack pods on veth pairs, a NetworkPolicy with a pod selector and
//! an IPv6 `ipBlock`, TCP and UDP probes over IPv6 between real sockets, the drop in `monitor`. Each probe's expected
//! verdict is written from the Kubernetes NetworkPolicy documentation, and the offline `trace`
//! (by IPv6 address) must agree with it as well.

mod agent_harness;

use agent_harness::{trace_allows, Agent};
use runtime_loader::probe::{tcp_ok, udp_ok, Responder, PASS_WAIT};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const T: Duration = Duration::from_millis(800);
const PODS: [&str; 3] = ["app1", "app2", "app3"];

fn v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x98, 0, 0, 0, 0, 0, i as u16 + 1)
}

/// app1 is ingress-isolated: app2 (by pod selector) may reach 80/TCP and 53/UDP, app3's address
/// (by `ipBlock`) may reach 8080/TCP; nothing else. The policy has no Egress policyType, so
/// app1's own connections are not restricted.
fn policy() -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: app1-v6
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: app1
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: app2
    ports:
    - {{protocol: TCP, port: 80}}
    - {{protocol: UDP, port: 53}}
  - from:
    - ipBlock:
        cidr: {}/128
    ports:
    - {{protocol: TCP, port: 8080}}
"#,
        v6(2)
    )
}

#[test]
fn root_agent_ipv6_tcp_udp_match_trace() {
    if !require_root("root_agent_ipv6_tcp_udp_match_trace") {
        return;
    }
    let node = node_netns();
    let eps: Vec<Endpoint> = (0..3)
        .map(|i| Endpoint::dual_stack(&node, Ipv4Addr::new(10, 98, 0, i as u8 + 1), v6(i)))
        .collect();
    let _srv: Vec<Responder> = eps
        .iter()
        .enumerate()
        .flat_map(|(i, e)| [80, 53, 8080].map(|p| Responder::start(&e.ns, v6(i), p)))
        .collect();
    let agent = Agent::start(&node);
    let mut manifests = String::new();
    for (i, (app, ep)) in PODS.iter().zip(&eps).enumerate() {
        manifests += &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {app}\n  namespace: default\n  labels:\n    app: {app}\nstatus:\n  podIP: {}\n  podIPs:\n  - ip: {}\n  - ip: {}\n---\n",
            ep.addr, ep.addr, v6(i)
        );
    }
    let pods = agent.file("pods.yaml", &manifests);
    let pol = agent.file("app1-v6.yaml", &policy());
    agent.ok(&["apply", "-f", &pods]);
    for (i, (app, ep)) in PODS.iter().zip(&eps).enumerate() {
        let id = (i + 1).to_string();
        let pod = format!("default/{app}");
        agent.ok(&[
            "endpoint", "add", "--id", &id, "--pod", &pod, "--iface", &ep.host,
        ]);
    }
    // Before the policy nothing is isolated: the denials below are the policy's doing.
    assert!(
        tcp_ok(&eps[2].ns, v6(0), 80, PASS_WAIT),
        "app3 -> app1 80/TCP before the policy"
    );
    assert!(
        udp_ok(&eps[2].ns, v6(0), 53, PASS_WAIT),
        "app3 -> app1 53/UDP before the policy"
    );
    agent.ok(&["apply", "-f", &pol]);
    let list = agent.ok(&["endpoint", "list", "-o", "json"]);
    assert!(
        list.contains(&v6(0).to_string()),
        "app1 has its IPv6 address: {list}"
    );

    // (from, to, port, protocol, allowed) from the NetworkPolicy documentation.
    let table: [(usize, usize, u16, &str, bool); 12] = [
        (1, 0, 80, "TCP", true),
        (1, 0, 53, "UDP", true),
        (1, 0, 8080, "TCP", false),
        (1, 0, 80, "UDP", false),
        (2, 0, 80, "TCP", false),
        (2, 0, 53, "UDP", false),
        (2, 0, 8080, "TCP", true),
        (2, 0, 8080, "UDP", false),
        (0, 1, 80, "TCP", true),
        (0, 2, 53, "UDP", true),
        (2, 1, 8080, "TCP", true),
        (1, 2, 53, "UDP", true),
    ];
    // `monitor` shows an IPv6 drop with bracketed addresses (Cilium's format).
    let line = agent.first_policy_drop(|| assert!(!tcp_ok(&eps[2].ns, v6(0), 80, T)));
    assert!(
        line.starts_with("xx drop (Policy denied") && line.contains("to endpoint 1, identity "),
        "{line}"
    );
    assert!(
        line.contains(&format!("[{}]:", v6(2))) && line.contains(&format!("-> [{}]:80 tcp", v6(0))),
        "{line}"
    );
    let files = [pods, pol];
    for (from, to, port, proto, want) in table {
        let what = format!("{} -> {} [{}]:{port}/{proto}", PODS[from], PODS[to], v6(to));
        let (src, dst) = (v6(from).to_string(), v6(to).to_string());
        let traced = trace_allows(&files, &["--src-ip", &src, "--dst-ip", &dst], port, proto);
        assert_eq!(traced, want, "{what}: trace");
        let t = if want { PASS_WAIT } else { T };
        let got = match proto {
            "TCP" => tcp_ok(&eps[from].ns, v6(to), port, t),
            _ => udp_ok(&eps[from].ns, v6(to), port, t),
        };
        assert_eq!(got, want, "{what}: real sockets\n{}", agent.log());
    }
}
