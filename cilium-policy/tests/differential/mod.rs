//! Kernel-vs-trace differential harness: compiles a scenario (policy + pods), loads every
//! endpoint's object with its map images, and for every probe compares the kernel's verdict
//! (BPF_PROG_TEST_RUN through the source's egress and the destination's ingress program) with
//! `trace`'s; replies of allowed connections must pass both programs back. A flow `trace`
//! allows with an L7 redirect must go to the proxy: with no proxy in the test, the kernel drops
//! it with 178 `Proxy lookup failed` (fail closed), counted in the endpoint's metrics.
#![allow(dead_code)]

pub mod gen;

use codegen::{EndpointConfig, Generator, MapSizes};
use compiler::cluster::{Cluster, ClusterConfig};
use compiler::policy::PolicyEngine;
use compiler::trace::{resolve_party, trace, L7Verdict, PartySpec};
use ir::{Direction, Protocol};
use runtime_loader::packet::PacketSpec;
use runtime_loader::{load, test_run, Datapath, LoadOptions};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Addresses outside the cluster used as peers (one inside the pod range but unassigned).
pub const WORLD: [&str; 3] = ["8.8.8.8", "10.1.0.200", "2001:db8::1"];

pub struct Scenario {
    pub policy: ir::PolicySet,
    pub cluster: Cluster,
    /// Loaded datapath per endpoint name, with its addresses.
    pub eps: BTreeMap<String, (Vec<IpAddr>, Datapath)>,
}

/// Compiles and loads every endpoint of the sources (files or in-memory texts).
pub fn scenario(sources: Vec<compiler::front::Source>, gen: &mut Generator) -> Scenario {
    scenario_learned(sources, gen, &[])
}

/// [`scenario`] on nodes whose agents learned each `(name, address)` from an allowed DNS
/// answer: the address gets the identity of the policy's `toFQDNs` selectors matching its
/// names (`PolicyEngine::set_fqdn`, the map-state side under test) before the endpoints'
/// map state and ipcache are computed.
pub fn scenario_learned(
    sources: Vec<compiler::front::Source>,
    gen: &mut Generator,
    learned: &[(String, IpAddr)],
) -> Scenario {
    let front = compiler::front::parse_sources(sources);
    let errors = front.error_messages();
    assert!(errors.is_empty(), "scenario has errors: {errors:#?}");
    let cluster =
        Cluster::build(&front.inventory, &front.policy, ClusterConfig::default()).unwrap();
    // Each node computes its own endpoints' map state with its own view (its Node addresses
    // are host, with its labels; the others' are their node identities), and loads them with
    // its own ipcache, as an agent with that `--node` would.
    let mut nodes: Vec<String> = cluster
        .endpoints()
        .map(|e| cluster.node_of(&e.name).to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    let mut eps = BTreeMap::new();
    let mut id = 0;
    for node in nodes {
        let config = ClusterConfig {
            local_node: node.clone(),
            ..Default::default()
        };
        let view = Cluster::build(&front.inventory, &front.policy, config).unwrap();
        let mut engine = PolicyEngine::new(front.policy.clone(), view.clone());
        learn(&mut engine, learned);
        let ipcache = gen.ipcache_images(engine.cluster.ipcache()).unwrap();
        for (name, pol) in engine.all_policies() {
            let ep = view.endpoint(&name).unwrap();
            // Where it runs in the default view (node0's): pods without `spec.nodeName` are
            // on the local node, which another view would take to be itself.
            if ep.ips.is_empty() || cluster.node_of(&name) != node {
                continue;
            }
            id += 1;
            let dp = load_endpoint(gen, &front.policy, ep, id, &pol, &ipcache);
            eps.insert(name, (ep.ips.clone(), dp));
        }
    }
    Scenario {
        policy: front.policy,
        cluster,
        eps,
    }
}

/// Gives each learned address the FQDN selectors matching any of its names.
fn learn(engine: &mut PolicyEngine, learned: &[(String, IpAddr)]) {
    let selectors = engine.fqdn_selectors();
    let mut names: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for (name, addr) in learned {
        names.entry(*addr).or_default().push(name);
    }
    for (addr, names) in names {
        let matching = selectors
            .iter()
            .filter(|s| names.iter().any(|n| compiler::fqdn::selector_matches(s, n)))
            .cloned()
            .collect();
        engine.set_fqdn(addr, &matching).unwrap();
    }
}

/// Generates and loads one endpoint's object with its map images and its node's ipcache.
fn load_endpoint(
    gen: &mut Generator,
    policy: &ir::PolicySet,
    ep: &compiler::cluster::ClusterEndpoint,
    id: u32,
    pol: &ir::EndpointPolicy,
    ipcache: &[codegen::image::MapImage],
) -> Datapath {
    let v4 = ep.ips.iter().find_map(|a| match a {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let v6 = ep.ips.iter().find_map(|a| match a {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    let cfg = EndpointConfig {
        id,
        name: ep.name.clone(),
        identity: ep.identity,
        ipv4: v4,
        ipv6: v6,
    };
    let art = gen
        .endpoint(&cfg, pol, Some(policy))
        .unwrap_or_else(|e| panic!("{e}"));
    let own = art.images();
    let images = own.iter().chain(ipcache.iter()).collect();
    load(
        &art.object,
        &LoadOptions {
            images,
            max_entries: codegen::maps::endpoint_max_entries(art.policy_capacity),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", ep.name))
}

pub fn sources_from(paths: &[PathBuf]) -> Vec<compiler::front::Source> {
    compiler::front::read_inputs(paths).unwrap()
}

pub fn generator() -> Generator {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bpf-objects");
    Generator::new(dir, MapSizes::default()).expect("clang (Debian package clang-19) is required")
}

/// A probe: source, destination (endpoint names or outside addresses), protocol, port.
#[derive(Clone, Debug)]
pub struct Probe {
    /// IPv6 addresses of both ends.
    pub v6: bool,
    pub src: String,
    pub dst: String,
    pub proto: Protocol,
    pub port: u16,
    /// The DNS name `dst` (an address) was resolved from (`trace --dst-fqdn`).
    pub fqdn: Option<String>,
}

/// Every endpoint pair and endpoint↔world and endpoint↔node-address pair on these protocols
/// and ports, plus ICMP echo.
pub fn probes(s: &Scenario, ports: &[u16]) -> Vec<Probe> {
    let mut names: Vec<String> = s.eps.keys().cloned().collect();
    names.extend(WORLD.iter().map(|a| a.to_string()));
    let nodes = s.cluster.nodes().flat_map(|n| n.addresses.iter());
    names.extend(nodes.map(|a| a.to_string()));
    let mut out = Vec::new();
    for src in &names {
        for dst in &names {
            if src == dst || (!s.eps.contains_key(src) && !s.eps.contains_key(dst)) {
                continue;
            }
            for v6 in [false, true] {
                if addr_of(s, src, v6).is_none() || addr_of(s, dst, v6).is_none() {
                    continue;
                }
                for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    for port in ports {
                        out.push(Probe {
                            v6,
                            src: src.clone(),
                            dst: dst.clone(),
                            proto,
                            port: *port,
                            fqdn: None,
                        });
                    }
                }
                let (proto, port) = if v6 {
                    (Protocol::IcmpV6, 128)
                } else {
                    (Protocol::Icmp, 8)
                };
                out.push(Probe {
                    v6,
                    src: src.clone(),
                    dst: dst.clone(),
                    proto,
                    port,
                    fqdn: None,
                });
            }
        }
    }
    out
}

/// From every endpoint of the address's family to `addr` resolved from `name`, on these
/// ports over TCP and UDP.
pub fn fqdn_probes(s: &Scenario, name: &str, addr: IpAddr, ports: &[u16]) -> Vec<Probe> {
    let v6 = addr.is_ipv6();
    let mut out = Vec::new();
    for src in s.eps.keys().filter(|e| addr_of(s, e, v6).is_some()) {
        for proto in [Protocol::Tcp, Protocol::Udp] {
            for port in ports {
                out.push(Probe {
                    v6,
                    src: src.clone(),
                    dst: addr.to_string(),
                    proto,
                    port: *port,
                    fqdn: Some(name.to_string()),
                });
            }
        }
    }
    out
}

/// The address of an endpoint or outside peer in the family asked for.
fn addr_of(s: &Scenario, who: &str, v6: bool) -> Option<IpAddr> {
    let addrs: Vec<IpAddr> = match s.eps.get(who) {
        Some((a, _)) => a.clone(),
        None => vec![who.parse().unwrap()],
    };
    addrs.into_iter().find(|a| a.is_ipv6() == v6)
}

/// What became of a probe's packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Passed,
    Dropped,
    /// Sent to the L7 proxy (here: dropped with 178 for want of a proxy socket).
    ToProxy,
}

/// Packets `dp` dropped in `dir` for want of a proxy socket, every CPU.
fn proxy_drops(dp: &Datapath, dir: Direction) -> u64 {
    let map = dp.map(codegen::maps::METRICS.name).unwrap();
    let idx = u32::from(dir == Direction::Egress) * 256
        + u32::from(codegen::reasons::DROP_PROXY_LOOKUP_FAILED);
    let Some(v) = map.lookup(&idx.to_ne_bytes()).unwrap() else {
        return 0;
    };
    map.cpu_values(&v)
        .map(|c| {
            codegen::layout::MetricsValue::from_bytes(c)
                .unwrap()
                .packets
        })
        .sum()
}

fn fate(s: &Scenario, who: &str, dir: Direction, p: &PacketSpec) -> Fate {
    let Some((_, dp)) = s.eps.get(who) else {
        return Fate::Passed;
    };
    let before = proxy_drops(dp, dir);
    if test_run(dp.program(dir).unwrap(), &p.build(), 1)
        .unwrap()
        .passed()
    {
        Fate::Passed
    } else if proxy_drops(dp, dir) > before {
        Fate::ToProxy
    } else {
        Fate::Dropped
    }
}

/// What becomes of `p` from `src` to `dst`: out of the source endpoint, into the destination.
/// After an egress redirect the proxy's upstream meets the destination's ingress policy (a
/// redirect there counts as allowed): a drop there drops the flow.
fn crosses_to(s: &Scenario, src: &str, dst: &str, p: &PacketSpec) -> Fate {
    let out = fate(s, src, Direction::Egress, p);
    if out == Fate::Dropped {
        return out;
    }
    match (out, fate(s, dst, Direction::Ingress, p)) {
        (_, Fate::Dropped) => Fate::Dropped,
        (Fate::ToProxy, _) | (_, Fate::ToProxy) => Fate::ToProxy,
        _ => Fate::Passed,
    }
}

/// Whether `p` from `src` reaches `dst` without a proxy.
fn crosses(s: &Scenario, src: &str, dst: &str, p: &PacketSpec) -> bool {
    crosses_to(s, src, dst, p) == Fate::Passed
}

/// Runs every probe; returns the disagreements (empty when the kernel agrees with trace).
pub fn compare(s: &Scenario, probes: &[Probe]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut allowed = 0;
    for (i, p) in probes.iter().enumerate() {
        let (sa, da) = (
            addr_of(s, &p.src, p.v6).unwrap(),
            addr_of(s, &p.dst, p.v6).unwrap(),
        );
        let src = resolve_party(&s.cluster, &PartySpec::Addr(sa)).unwrap();
        let dst = match &p.fqdn {
            Some(name) => PartySpec::Resolved {
                name: name.clone(),
                addr: da,
            },
            None => PartySpec::Addr(da),
        };
        let dst = resolve_party(&s.cluster, &dst).unwrap();
        let t = trace(&s.policy, &s.cluster, src, dst, p.proto, p.port, None);
        let redirected = [&t.egress.l7, &t.ingress.l7]
            .iter()
            .any(|v| **v != L7Verdict::NotRedirected);
        let want = match (t.allowed, redirected) {
            (false, _) => Fate::Dropped,
            (true, false) => Fate::Passed,
            (true, true) => Fate::ToProxy,
        };
        let sport = 20000 + i as u16;
        let pkt = PacketSpec::new(sa, da, p.proto.number(), sport, p.port);
        let got = crosses_to(s, &p.src, &p.dst, &pkt);
        if got != want {
            bad.push(format!(
                "{sa} ({}) -> {da} ({}) {}/{}: trace {} kernel {}",
                p.src,
                p.dst,
                p.port,
                p.proto,
                verdict(want),
                verdict(got)
            ));
            continue;
        }
        if got == Fate::ToProxy {
            // Its replies come from the proxy's socket, not from the destination.
            allowed += 1;
            continue;
        }
        if got == Fate::Dropped {
            // Again: a repeat is dropped from the deny slot the first one filled (flow cache)
            // when it runs on the same CPU, else decided again; either way, still denied.
            if crosses(s, &p.src, &p.dst, &pkt) {
                bad.push(format!(
                    "{sa} ({}) -> {da} ({}) {}/{}: denied, but its repeat passed",
                    p.src, p.dst, p.port, p.proto
                ));
            }
            continue;
        }
        allowed += 1;
        if !crosses(s, &p.dst, &p.src, &pkt.reply()) {
            bad.push(format!(
                "{sa} ({}) -> {da} ({}) {}/{}: allowed but its reply was dropped",
                p.src, p.dst, p.port, p.proto
            ));
        }
    }
    eprintln!(
        "{} probes, {allowed} allowed, {} disagreements",
        probes.len(),
        bad.len()
    );
    bad
}

fn verdict(f: Fate) -> &'static str {
    match f {
        Fate::Passed => "allowed",
        Fate::Dropped => "denied",
        Fate::ToProxy => "allowed through the L7 proxy",
    }
}
