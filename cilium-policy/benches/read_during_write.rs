//! Reads while the agent writes: a spawned agent on a private bpffs in its own network
//! namespace with endpoints on veth interfaces (real programs, real pinned maps). One thread
//! keeps reading (`/healthz`, `/config`, `/endpoint`, `/endpoint/{id}`, `/identity`,
//! `/policy`, `/policy/resolve`) while the main thread applies policy changes that flip every
//! endpoint's port-range feature, so each write rebuilds (instantiates, and the first time
//! compiles with clang) and the kernel verifies both programs of every endpoint: hundreds of
//! milliseconds. Prints the writes' durations and the latency of the reads that ran during a
//! write (p50/p99/max, and the slowest per path). Root only (skips otherwise).
//!
//! `cargo bench -p cilium-policy --bench read_during_write` (env: `CP_BENCH_ENDPOINTS`,
//! `CP_BENCH_SAMPLES` change the sizes).

#[path = "../tests/agent_harness/mod.rs"]
mod agent_harness;

use agent_harness::{api_call as request, api_ok as ok, bench_env as env, percentile, Agent};
use runtime_loader::testkit::{node_netns, require_root, PrivateBpffs, TempDir};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every endpoint accepts TCP from every other on port 8000, or (with `range`) on 8000-8100:
/// the range turns each endpoint's port-range map and program code on.
fn policy(range: bool) -> String {
    let end = if range { r#", "endPort": 8100"# } else { "" };
    format!(
        r#"[{{"endpointSelector": {{}},
  "ingress": [{{"fromEndpoints": [{{}}],
               "toPorts": [{{"ports": [{{"port": "8000"{end}, "protocol": "TCP"}}]}}]}}],
  "labels": [{{"key": "policy", "value": "all"}}]}}]"#
    )
}

/// One read: (path, when it started, how long it took).
type Read = (String, Instant, Duration);

fn main() {
    if !require_root("read_during_write benchmark") {
        return;
    }
    if let Some(f) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        if !"read_during_write".contains(&f) {
            return;
        }
    }
    let n_eps = env("CP_BENCH_ENDPOINTS", 8);
    let samples = env("CP_BENCH_SAMPLES", 10);
    let node = node_netns();
    for i in 0..n_eps {
        runtime_loader::testkit::ip(&[
            "-n",
            &node.name,
            "link",
            "add",
            &format!("d{i}"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("p{i}"),
        ]);
        for dev in [format!("d{i}"), format!("p{i}")] {
            runtime_loader::testkit::ip(&["-n", &node.name, "link", "set", &dev, "up"]);
        }
    }
    let dir = TempDir::new("cprdw");
    let socket = dir.path.join("agent.sock");
    let mut agent = Agent {
        child: None,
        datapath: Some((PrivateBpffs::new(), node.path())),
        dir,
        socket: socket.clone(),
        extra: vec![
            "--bpf-ct-global-tcp-max".into(),
            "1024".into(),
            "--bpf-ct-global-any-max".into(),
            "1024".into(),
        ],
    };
    agent.spawn();
    let put = |range: bool| {
        let body = serde_json::json!({
            "sources": [{"path": "all.json", "text": policy(range)}],
            "wait": true,
        })
        .to_string();
        ok(&socket, "PUT", "/v1/policy", &body)
    };
    put(false);
    for i in 0..n_eps {
        let body = serde_json::json!({
            "id": i + 1,
            "iface": format!("d{i}"),
            "labels": [format!("app=a{i}")],
            "ipv4": format!("10.20.0.{}", i + 1),
        })
        .to_string();
        ok(&socket, "PUT", &format!("/v1/endpoint/{}", i + 1), &body);
    }
    let paths = [
        "/v1/healthz".to_string(),
        "/v1/config".to_string(),
        "/v1/endpoint".to_string(),
        "/v1/endpoint/1".to_string(),
        "/v1/identity".to_string(),
        "/v1/policy".to_string(),
        format!("/v1/policy/resolve?from=1&to={n_eps}&port=8000&protocol=tcp"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (stop, socket) = (stop.clone(), socket.clone());
        move || {
            let mut reads: Vec<Read> = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let path = &paths[k % paths.len()];
                k += 1;
                let t = Instant::now();
                let (status, body) = request(&socket, "GET", path, "");
                assert_eq!(status, 200, "{path}: {body}");
                reads.push((path.clone(), t, t.elapsed()));
            }
            reads
        }
    });
    let mut writes = Vec::new();
    for k in 0..samples {
        let t = Instant::now();
        let reply = put(k % 2 == 0);
        writes.push((t, t.elapsed()));
        assert!(reply.contains("\"enforced\":true"), "{reply}");
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("the reader thread");
    let during: Vec<&Read> = reads
        .iter()
        .filter(|(_, start, _)| writes.iter().any(|(w, d)| start >= w && *start < *w + *d))
        .collect();
    assert!(!during.is_empty(), "no read ran during a write");
    let mut times: Vec<Duration> = during.iter().map(|r| r.2).collect();
    times.sort();
    let mut wtimes: Vec<Duration> = writes.iter().map(|w| w.1).collect();
    wtimes.sort();
    let mut slowest: BTreeMap<&str, Duration> = BTreeMap::new();
    for (path, _, d) in &during {
        let path = path.split('?').next().unwrap_or(path);
        let e = slowest.entry(path).or_default();
        *e = (*e).max(*d);
    }
    println!(
        "read_during_write/writes ({n_eps} endpoints reloaded per write, {} writes): p50 {:.1?}  max {:.1?}",
        wtimes.len(),
        percentile(&wtimes, 0.5),
        wtimes[wtimes.len() - 1]
    );
    println!(
        "read_during_write/reads during writes ({} reads): p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    for (path, d) in slowest {
        println!("read_during_write/slowest {path}: {d:.2?}");
    }
}
