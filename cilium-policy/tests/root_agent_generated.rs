//! Generated policies and namespaces on real sockets: for every scenario, every TCP and UDP
//! probe between the endpoints' network namespaces, over IPv4 and over IPv6 (every pod is
//! dual-stack), must get the verdict of the offline
//! `cilium-policy trace` on the same files (the rule-by-rule evaluator) and the one the agent's
//! `policy/resolve` (the semantics stage's lookup on the live map state) gives.

mod agent_harness;

use agent_harness::Agent;
use runtime_loader::probe::{tcp_ok, udp_ok, Responder, PASS_WAIT};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const T: Duration = Duration::from_millis(400);
const PODS: [(&str, &str, &str); 4] = [
    ("ns-a", "web", "front"),
    ("ns-a", "api", "back"),
    ("ns-b", "db", "back"),
    ("ns-b", "job", "front"),
];
const PORTS: [(u16, &str); 3] = [(80, "TCP"), (443, "TCP"), (53, "UDP")];

/// Pod `i`'s IPv6 address (every pod is dual-stack).
fn v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10 + i as u16)
}

/// A tiny deterministic generator (no external randomness: failures reproduce).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn peer(g: &mut Lcg) -> serde_json::Value {
    match g.next(4) {
        0 => {
            let role = ["front", "back"][g.next(2)];
            json!({"matchLabels": {"role": role}})
        }
        1 => json!({"matchLabels": {"app": PODS[g.next(4)].1}}),
        2 => {
            let ns = ["ns-a", "ns-b"][g.next(2)];
            json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": ns}})
        }
        _ => json!({}),
    }
}

fn policy(g: &mut Lcg, i: usize) -> serde_json::Value {
    let (ns, _, _) = PODS[g.next(4)];
    let mut rule = json!({});
    if g.next(3) > 0 {
        let ports: Vec<_> = (0..1 + g.next(2))
            .map(|_| PORTS[g.next(3)])
            .map(|(p, pr)| json!({"port": p.to_string(), "protocol": pr}))
            .collect();
        rule["toPorts"] = json!([{"ports": ports}]);
    }
    let egress = g.next(3) == 0;
    let deny = g.next(5) == 0;
    rule[if egress {
        "toEndpoints"
    } else {
        "fromEndpoints"
    }] = json!([peer(g)]);
    let key = match (egress, deny) {
        (false, false) => "ingress",
        (false, true) => "ingressDeny",
        (true, false) => "egress",
        (true, true) => "egressDeny",
    };
    json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": format!("gen-{i}"), "namespace": ns},
        "spec": {"endpointSelector": peer(g), key: [rule]},
    })
}

fn resolve(agent: &Agent, from: usize, to: usize, port: u16, proto: &str) -> bool {
    let mut s = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
    let q = format!(
        "/v1/policy/resolve?from={}&to={}&port={port}&protocol={proto}",
        from + 1,
        to + 1
    );
    write!(s, "GET {q} HTTP/1.0\r\nHost: agent\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{out}"));
    v["verdict"] == "allowed"
}

/// The offline `trace` verdict for a probe between two pods.
fn trace(files: &[String], from: usize, to: usize, port: u16, proto: &str) -> bool {
    let name = |i: usize| format!("{}/{}", PODS[i].0, PODS[i].1);
    agent_harness::trace_allows(
        files,
        &["--src", &name(from), "--dst", &name(to)],
        port,
        proto,
    )
}

#[test]
fn root_generated_policies_match_trace_on_real_sockets() {
    if !require_root("root_generated_policies_match_trace_on_real_sockets") {
        return;
    }
    let node = node_netns();
    let eps: Vec<Endpoint> = (0..4)
        .map(|i| Endpoint::dual_stack(&node, Ipv4Addr::new(10, 96, 0, 10 + i as u8), v6(i)))
        .collect();
    let _srv: Vec<Responder> = eps
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            PORTS.map(|(p, _)| {
                [
                    Responder::start(&e.ns, e.addr, p),
                    Responder::start(&e.ns, v6(i), p),
                ]
            })
        })
        .flatten()
        .collect();
    // One flow-cache slot: every flow of the run collides with the others in the cache, so
    // the verdicts below also hold when the cache is always being overwritten.
    let agent = Agent::start_in(&node, vec!["--flow-cache-slots".into(), "1".into()]);
    let mut manifests = String::new();
    for ns in ["ns-a", "ns-b"] {
        manifests += &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n");
    }
    for (i, ((ns, app, role), ep)) in PODS.iter().zip(&eps).enumerate() {
        manifests += &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {app}\n  namespace: {ns}\n  labels:\n    app: {app}\n    role: {role}\nstatus:\n  podIP: {}\n  podIPs:\n  - ip: {}\n  - ip: {}\n---\n",
            ep.addr,
            ep.addr,
            v6(i)
        );
    }
    let pods = agent.file("pods.yaml", &manifests);
    agent.ok(&["apply", "-f", &pods]);
    for (i, ((ns, app, _), ep)) in PODS.iter().zip(&eps).enumerate() {
        agent.ok(&[
            "endpoint",
            "add",
            "--id",
            &(i + 1).to_string(),
            "--pod",
            &format!("{ns}/{app}"),
            "--iface",
            &ep.host,
        ]);
    }
    let mut g = Lcg(0x5eed);
    let mut checked = (0, 0);
    for scenario in 0..3 {
        let n = 2 + g.next(3);
        let files: Vec<String> = (0..n)
            .map(|i| {
                agent.file(
                    &format!("s{scenario}-p{i}.json"),
                    &policy(&mut g, i).to_string(),
                )
            })
            .collect();
        // `policy delete --all` deletes every rule and keeps the pods the endpoints use (seed
        // §2.3.8); the previous scenario's files held only rules, so they are gone.
        if scenario > 0 {
            agent.ok(&["policy", "delete", "--all"]);
        }
        let mut args = vec!["apply", "-f"];
        args.extend(files.iter().map(String::as_str));
        agent.ok(&args);
        let inputs: Vec<String> = std::iter::once(pods.clone()).chain(files.clone()).collect();
        for from in 0..4 {
            for to in (0..4).filter(|t| *t != from) {
                for (port, proto) in PORTS {
                    let want = trace(&inputs, from, to, port, proto);
                    assert_eq!(
                        resolve(&agent, from, to, port, proto),
                        want,
                        "scenario {scenario}: {} -> {} {port}/{proto}: the agent's resolve differs from trace",
                        PODS[from].1,
                        PODS[to].1,
                    );
                    for dst in [IpAddr::V4(eps[to].addr), IpAddr::V6(v6(to))] {
                        let t = if want { PASS_WAIT } else { T };
                        let got = match proto {
                            "TCP" => tcp_ok(&eps[from].ns, dst, port, t),
                            _ => udp_ok(&eps[from].ns, dst, port, t),
                        };
                        assert_eq!(
                            got,
                            want,
                            "scenario {scenario}: {} -> {} ({dst}) {port}/{proto}: real sockets differ from trace\n{}",
                            PODS[from].1,
                            PODS[to].1,
                            agent.ok(&["policy", "get"])
                        );
                    }
                    if want {
                        checked.0 += 1
                    } else {
                        checked.1 += 1
                    }
                }
            }
        }
    }
    assert!(
        checked.0 > 0 && checked.1 > 0,
        "the scenarios cover both verdicts: {checked:?}"
    );
    // The flag reaches the programs: every object the agent compiled for the enforcing
    // endpoints has one flow-cache slot per family.
    let objects = agent.dir.path.join("state/objects");
    let mut compiled = 0;
    for entry in std::fs::read_dir(&objects).expect("the agent's object cache") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "o") {
            let maps = runtime_loader::pins::object_maps(&std::fs::read(&path).unwrap()).unwrap();
            for fc in [codegen::maps::FC4.name, codegen::maps::FC6.name]
                .iter()
                .filter_map(|m| maps.get(*m))
            {
                assert_eq!(fc.max_entries, 1, "{}", path.display());
                // This kernel has BPF atomics with fetch: the deny slots are compiled in.
                assert!(
                    maps.contains_key(codegen::maps::CTGEN.name),
                    "{}",
                    path.display()
                );
                compiled += 1;
            }
        }
    }
    assert!(compiled > 0, "no flow cache in {}", objects.display());
}
