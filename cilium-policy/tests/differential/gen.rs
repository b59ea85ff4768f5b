//! Random scenarios for the differential test: namespaces, two nodes, pods (IPv4, some
//! dual-stack, some on the non-local node) and a few NetworkPolicies and CiliumNetworkPolicies
//! mixing label, namespace, ipBlock, CIDR, CIDR group, service, node selector and entity peers,
//! ports, port ranges, deny rules. Deterministic per seed.

use compiler::front::Source;
use std::fmt::Write;

/// Ports the probes use (and the policies pick from).
pub const PORTS: [u16; 5] = [53, 80, 443, 8050, 9000];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const APPS: [&str; 3] = ["a", "b", "c"];
const NSES: [&str; 2] = ["default", "prod"];

fn ports(r: &mut Rng, cilium: bool) -> String {
    let mut items = Vec::new();
    for _ in 0..1 + r.below(2) {
        let proto = r.pick(&["TCP", "UDP", "SCTP"]);
        let item = match r.below(3) {
            0 if !cilium => format!("{{protocol: {proto}, port: 8000, endPort: 8100}}"),
            0 => format!("{{port: \"8000\", endPort: 8100, protocol: {proto}}}"),
            _ if cilium => format!("{{port: \"{}\", protocol: {proto}}}", r.pick(&PORTS)),
            _ => format!("{{protocol: {proto}, port: {}}}", r.pick(&PORTS)),
        };
        items.push(item);
    }
    items.join(", ")
}

fn netpol(r: &mut Rng, j: usize, out: &mut String) {
    let ns = r.pick(&NSES);
    let subject = if r.chance(20) {
        "{}".to_string()
    } else {
        format!("{{matchLabels: {{app: {}}}}}", r.pick(&APPS))
    };
    let (ing, eg) = match r.below(3) {
        0 => (true, false),
        1 => (false, true),
        _ => (true, true),
    };
    let types: Vec<&str> = [(ing, "Ingress"), (eg, "Egress")]
        .iter()
        .filter(|(b, _)| *b)
        .map(|(_, n)| *n)
        .collect();
    let _ = writeln!(out, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np{j}, namespace: {ns}}}\nspec:\n  podSelector: {subject}\n  policyTypes: [{}]", types.join(", "));
    for (on, dir, peer_key) in [(ing, "ingress", "from"), (eg, "egress", "to")] {
        if !on || r.chance(15) {
            continue; // isolated, nothing allowed
        }
        let _ = writeln!(out, "  {dir}:");
        for _ in 0..1 + r.below(2) {
            let peer = match r.below(4) {
                0 => format!(
                    "{{podSelector: {{matchLabels: {{app: {}}}}}}}",
                    r.pick(&APPS)
                ),
                1 => format!(
                    "{{namespaceSelector: {{matchLabels: {{team: {}}}}}}}",
                    r.pick(&["blue", "red"])
                ),
                2 => "{ipBlock: {cidr: 10.1.0.0/24, except: [10.1.0.11/32]}}".to_string(),
                _ => format!(
                    "{{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: {}}}}}}}",
                    r.pick(&APPS)
                ),
            };
            if r.chance(20) {
                let _ = writeln!(out, "  - ports: [{}]", ports(r, false));
            } else if r.chance(30) {
                let _ = writeln!(out, "  - {peer_key}: [{peer}]");
            } else {
                let _ = writeln!(
                    out,
                    "  - {peer_key}: [{peer}]\n    ports: [{}]",
                    ports(r, false)
                );
            }
        }
    }
}

fn cnp(r: &mut Rng, j: usize, out: &mut String) {
    let ns = r.pick(&NSES);
    let _ = writeln!(out, "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: cnp{j}, namespace: {ns}}}\nspec:\n  endpointSelector: {{matchLabels: {{app: {}}}}}", r.pick(&APPS));
    if r.chance(25) {
        let (ingress, egress) = (r.chance(50), r.chance(50));
        let _ = writeln!(
            out,
            "  enableDefaultDeny: {{ingress: {ingress}, egress: {egress}}}"
        );
    }
    for (dir, eps, ents, cidr, nodes) in [
        (
            "ingress",
            "fromEndpoints",
            "fromEntities",
            "fromCIDR",
            "fromNodes",
        ),
        ("egress", "toEndpoints", "toEntities", "toCIDR", "toNodes"),
        (
            "ingressDeny",
            "fromEndpoints",
            "fromEntities",
            "fromCIDR",
            "fromNodes",
        ),
        (
            "egressDeny",
            "toEndpoints",
            "toEntities",
            "toCIDR",
            "toNodes",
        ),
    ] {
        if r.chance(50) {
            continue;
        }
        let _ = writeln!(out, "  {dir}:");
        let peer = match r.below(7) {
            0 => format!("{eps}: [{{matchLabels: {{app: {}}}}}]", r.pick(&APPS)),
            1 => format!(
                "{ents}: [{}]",
                r.pick(&["world", "cluster", "all", "host", "remote-node"])
            ),
            2 => format!("{cidr}: [8.8.8.0/24]"),
            4 if dir.starts_with("egress") => format!(
                "toServices: [{}]",
                r.pick(&[
                    "{k8sService: {serviceName: outside, namespace: default}}",
                    "{k8sService: {serviceName: apps-a}}",
                    "{k8sServiceSelector: {selector: {matchLabels: {tier: front}}}}",
                ])
            ),
            3 => format!(
                "{cidr}Set: [{}]",
                r.pick(&[
                    "{cidrGroupRef: outside}",
                    "{cidrGroupRef: outside, except: [8.8.8.8/32, 10.1.0.128/25]}",
                    "{cidrGroupRef: missing}",
                ])
            ),
            // Node selectors: node0 only, node1 only, both, every node, and a pod label
            // (no node has it: pods are never selected).
            5 => format!(
                "{nodes}: [{}]",
                r.pick(&[
                    "{matchLabels: {node-role.kubernetes.io/control-plane: \"\"}}",
                    "{matchLabels: {zone: b}}",
                    "{matchExpressions: [{key: zone, operator: Exists}]}",
                    "{}",
                    "{matchLabels: {app: a}}",
                ])
            ),
            _ => format!("{eps}: [{{}}]"),
        };
        if r.chance(60) {
            let _ = writeln!(
                out,
                "  - {peer}\n    toPorts: [{{ports: [{}]}}]",
                ports(r, true)
            );
        } else {
            let _ = writeln!(out, "  - {peer}");
        }
    }
}

/// One scenario as in-memory sources.
pub fn scenario(seed: u64) -> Vec<Source> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut pods = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {team: blue}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {team: red}}\n");
    for i in 0..3 + r.below(3) {
        let (ns, app) = (r.pick(&NSES), r.pick(&APPS));
        let v4 = format!("10.1.0.{}", 10 + i);
        let ips = if r.chance(35) {
            format!(
                "podIP: {v4}, podIPs: [{{ip: {v4}}}, {{ip: \"fd00::{}\"}}]",
                10 + i
            )
        } else {
            format!("podIP: {v4}")
        };
        // Some pods run on node1 (the others on the local node0).
        let node = if r.chance(30) {
            "spec: {nodeName: node1}\n"
        } else {
            ""
        };
        let _ = writeln!(pods, "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: {ns}, labels: {{app: {app}}}}}\n{node}status: {{{ips}}}");
    }
    // Two nodes: each is host to its own pods (with its labels) and a node identity of its
    // own to the others; node1's address is inside the CIDR group below, which must not
    // select it. Their labels are what the node selectors pick from.
    for (n, ip, labels) in [
        (
            "node0",
            "10.1.0.250",
            "zone: a, node-role.kubernetes.io/control-plane: \"\"",
        ),
        ("node1", "10.1.0.251", "zone: b"),
    ] {
        let _ = writeln!(pods, "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{{labels}}}}}\nstatus: {{addresses: [{{type: InternalIP, address: {ip}}}]}}");
    }
    // A CIDR group over the outside addresses the probes use (and one of the pods' own).
    pods.push_str("---\napiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {name: outside}\nspec: {externalCIDRs: [8.8.8.0/24, 10.1.0.0/24, \"2001:db8::/64\"]}\n");
    // Services: one without a selector (its EndpointSlice lists outside addresses and a pod's
    // address, which it must not open), and per namespace one selecting app=a pods.
    pods.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: outside, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: outside-1, namespace: default, labels: {kubernetes.io/service-name: outside}}\naddressType: IPv4\nendpoints: [{addresses: [8.8.8.8, 10.1.0.10]}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: outside-2, namespace: default, labels: {kubernetes.io/service-name: outside}}\naddressType: IPv6\nendpoints: [{addresses: [\"2001:db8::1\"]}]\n");
    for ns in NSES {
        let _ = writeln!(pods, "---\napiVersion: v1\nkind: Service\nmetadata: {{name: apps-a, namespace: {ns}, labels: {{tier: front}}}}\nspec: {{selector: {{app: a}}}}");
    }
    let mut policies = String::new();
    for j in 0..1 + r.below(3) {
        if r.chance(50) {
            netpol(&mut r, j, &mut policies);
        } else {
            cnp(&mut r, j, &mut policies);
        }
    }
    vec![
        Source {
            path: format!("seed{seed}/pods.yaml"),
            text: pods.into_bytes(),
        },
        Source {
            path: format!("seed{seed}/policies.yaml"),
            text: policies.into_bytes(),
        },
    ]
}
