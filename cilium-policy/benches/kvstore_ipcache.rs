//! Owning agent's change → the entry in every other node's ipcache map, through etcd: three
//! agents with a datapath, each in its own node namespace on a private bpffs, routed to a
//! fabric namespace where one etcd runs (`tests/etcd_harness`), with 1,000 endpoints between
//! them (attached to veth pairs whose both ends stay in the node namespace; 1,000 label sets,
//! so 1,000 identities numbered through etcd). Each sample moves one endpoint of one node to
//! another address (`PATCH /v1/endpoint/ID`, which replies once the owner enforces it) and
//! times, from the reply, until the pinned `cp_ipcache_host` map of both other nodes holds the
//! new address with the endpoint's identity. Root and etcd only (skips otherwise). Prints
//! p50/p90/p99/max over the samples.
//!
//! `cargo bench -p cilium-policy --bench kvstore_ipcache` (env: `CP_BENCH_ENDPOINTS`,
//! `CP_BENCH_SAMPLES` to change the sizes).

#[path = "../tests/agent_harness/mod.rs"]
mod agent_harness;
#[path = "../tests/etcd_harness/mod.rs"]
mod etcd_harness;

use agent_harness::{api_ok as ok, bench_env as env, latency_summary, Agent};
use codegen::layout::{addr_bytes, IpcacheHostKey};
use etcd_harness::Fabric;
use runtime_loader::testkit::{require_root, TempDir};
use runtime_loader::RawMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// Entries of each node's connection-tracking maps: small, as in `agent_latency`.
const CT_MAP_SIZE: &str = "1024";
/// Longest wait for one entry before the benchmark fails.
const LIMIT: Duration = Duration::from_secs(10);

/// Address `k` (0 or 1) of endpoint `i` of node `n` (1-based), in `10.(100+n).0.0/16` (no
/// traffic is sent: the benchmark only reads maps).
fn addr(n: usize, i: usize, k: usize) -> Ipv4Addr {
    let x = 2 * i + k;
    Ipv4Addr::new(10, 100 + n as u8, (x / 250) as u8, (x % 250) as u8 + 1)
}

/// The identity `cp_ipcache_host` of `agent` (node `node`) gives `ip`, if any.
fn ipcache_identity(agent: &Agent, node: usize, ip: IpAddr) -> Option<u32> {
    let (bpffs, _) = agent.datapath.as_ref()?;
    let pin = bpffs
        .path
        .join(format!("cilium-policy/node-{node}/maps"))
        .join(codegen::maps::IPCACHE_HOST.name);
    let (family, addr) = addr_bytes(ip);
    let key = IpcacheHostKey {
        family,
        pad: [0; 3],
        addr,
    };
    let v = RawMap::open_pinned(&pin)
        .ok()?
        .lookup(key.as_bytes())
        .ok()??;
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

fn main() {
    const NAME: &str = "kvstore_ipcache benchmark";
    if !require_root(NAME) {
        return;
    }
    if let Some(f) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        if !"kvstore_ipcache".contains(&f) {
            return;
        }
    }
    let n_eps = env("CP_BENCH_ENDPOINTS", 1000).max(NODES);
    let samples = env("CP_BENCH_SAMPLES", 200);
    // Two addresses per endpoint in a /16 per node.
    let per_node = n_eps.div_ceil(NODES).min(250 * 250 / 2);
    let Some(fabric) = Fabric::new(NAME, NODES as u8) else {
        return;
    };
    let ct = [
        "--bpf-ct-global-tcp-max",
        CT_MAP_SIZE,
        "--bpf-ct-global-any-max",
        CT_MAP_SIZE,
    ];
    let batch = TempDir::new("cpkb");
    let mut agents = Vec::new();
    let mut counts = Vec::new();
    for (n, node) in fabric.nodes.iter().enumerate() {
        let count = per_node.min(n_eps - n * per_node);
        let script: String = (0..count)
            .map(|i| {
                format!(
                    "link add d{i} type veth peer name p{i}\nlink set d{i} up\nlink set p{i} up\n"
                )
            })
            .collect();
        let file = batch.path.join(format!("links{n}"));
        std::fs::write(&file, script).expect("writing the ip batch");
        runtime_loader::testkit::ip(&["-n", &node.name, "-batch", &file.display().to_string()]);
        agents.push(Agent::start_in(node, fabric.agent_args(n + 1, &ct)));
        counts.push(count);
    }
    let t = Instant::now();
    let mut identity = vec![Vec::new(); NODES];
    for (n, agent) in agents.iter().enumerate() {
        for i in 0..counts[n] {
            let id = i + 1;
            let body = serde_json::json!({
                "id": id,
                "iface": format!("d{i}"),
                "labels": [format!("app=a{}", i % 200), format!("ep=n{}e{i}", n + 1)],
                "ipv4": addr(n + 1, i, 0).to_string(),
            })
            .to_string();
            ok(&agent.socket, "PUT", &format!("/v1/endpoint/{id}"), &body);
            let ep: serde_json::Value =
                serde_json::from_str(&ok(&agent.socket, "GET", &format!("/v1/endpoint/{id}"), ""))
                    .expect("endpoint json");
            identity[n].push(ep["identity"].as_u64().expect("identity") as u32);
        }
        eprintln!(
            "node {}: {} endpoints after {:.1?}",
            n + 1,
            counts[n],
            t.elapsed()
        );
    }
    // Every node holds every other node's endpoints before the samples start.
    for (n, agent) in agents.iter().enumerate() {
        for (m, ids) in identity.iter().enumerate().filter(|(m, _)| *m != n) {
            let last = counts[m] - 1;
            let ip = IpAddr::V4(addr(m + 1, last, 0));
            let t = Instant::now();
            while ipcache_identity(agent, n + 1, ip) != Some(ids[last]) {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "node {} lacks {ip}",
                    n + 1
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    eprintln!("setup done after {:.1?}", t.elapsed());
    let warmup = 10;
    let mut times = Vec::with_capacity(samples);
    // Which of its two addresses each endpoint has.
    let mut at: Vec<Vec<usize>> = counts.iter().map(|c| vec![0; *c]).collect();
    for s in 0..samples + warmup {
        let owner = s % NODES;
        let i = (s * 37) % counts[owner];
        at[owner][i] = 1 - at[owner][i];
        let ip = IpAddr::V4(addr(owner + 1, i, at[owner][i]));
        let body = serde_json::json!({"ipv4": ip.to_string()}).to_string();
        ok(
            &agents[owner].socket,
            "PATCH",
            &format!("/v1/endpoint/{}", i + 1),
            &body,
        );
        let t = Instant::now();
        for (n, agent) in agents.iter().enumerate().filter(|(n, _)| *n != owner) {
            while ipcache_identity(agent, n + 1, ip) != Some(identity[owner][i]) {
                assert!(
                    t.elapsed() < LIMIT,
                    "node {} lacks {ip} after {LIMIT:?}",
                    n + 1
                );
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        let dt = t.elapsed();
        if s >= warmup {
            times.push(dt);
        }
    }
    println!(
        "kvstore_ipcache/remote_entry_in_every_ipcache ({NODES} agents, {n_eps} endpoints, {} samples): {}",
        times.len(),
        latency_summary(&mut times)
    );
    drop(agents);
}
