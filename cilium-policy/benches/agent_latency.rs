//! API call → maps updated, through the real path: a spawned agent on a private bpffs in its
//! own network namespace, 1,000 endpoints attached to veth interfaces (real programs, real
//! pinned maps; both ends of each pair stay in the node namespace), 2,000 policies (one source each); each sample re-applies one policy with one
//! port changed (`PUT /v1/policy`, waiting for enforcement) and times request → reply.
//! Then a CiliumCIDRGroup referenced by one policy is changed (`CP_BENCH_GROUP_SAMPLES`
//! samples, default 30): the agent rebuilds its world for it; printed with the ratio of its p50
//! to the one-policy change's. Root only (skips otherwise). Prints p50/p90/p99/max over the
//! samples.
//!
//! `cargo bench -p cilium-policy --bench agent_latency` (env: `CP_BENCH_ENDPOINTS`,
//! `CP_BENCH_POLICIES`, `CP_BENCH_SAMPLES` to change the sizes).

#[path = "../tests/agent_harness/mod.rs"]
mod agent_harness;

use agent_harness::{api_ok as ok, bench_env as env, latency_summary, percentile, Agent};
use runtime_loader::testkit::{node_netns, require_root, PrivateBpffs, TempDir};
use std::path::Path;
use std::time::{Duration, Instant};

/// Distinct `app` label values: each policy selects the endpoints of one app as subject and
/// another app as peer.
const APPS: usize = 200;
/// Entries of the node's connection-tracking maps (`--bpf-ct-global-tcp-max` and `-any-max`):
/// small, so the benchmark does not depend on the machine's memory.
const CT_MAP_SIZE: &str = "1024";

/// Policy `j`: app `j % apps` accepts TCP on `port` from app `(7j + 1) % apps`.
fn policy(j: usize, port: u16, apps: usize) -> String {
    format!(
        r#"[{{"endpointSelector": {{"matchLabels": {{"app": "a{}"}}}},
  "ingress": [{{"fromEndpoints": [{{"matchLabels": {{"app": "a{}"}}}}],
               "toPorts": [{{"ports": [{{"port": "{port}", "protocol": "TCP"}}]}}]}}],
  "labels": [{{"key": "policy", "value": "p{j}"}}]}}]"#,
        j % apps,
        (7 * j + 1) % apps
    )
}

fn put_policies(socket: &Path, docs: &[(String, String)]) {
    let sources: Vec<serde_json::Value> = docs
        .iter()
        .map(|(p, t)| serde_json::json!({"path": p, "text": t}))
        .collect();
    let body = serde_json::json!({"sources": sources, "wait": true}).to_string();
    ok(socket, "PUT", "/v1/policy", &body);
}

fn rss_kib(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_default()
}

fn main() {
    if !require_root("agent_latency benchmark") {
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument that does not match skips the run.
    if let Some(f) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        if !"agent_latency".contains(&f) {
            return;
        }
    }
    let n_eps = env("CP_BENCH_ENDPOINTS", 1000);
    let n_pols = env("CP_BENCH_POLICIES", 2000);
    let samples = env("CP_BENCH_SAMPLES", 300);
    let apps = APPS.min(n_eps.max(1));
    let node = node_netns();
    let batch = TempDir::new("cpbb");
    let script: String = (0..n_eps)
        .map(|i| {
            format!("link add d{i} type veth peer name p{i}\nlink set d{i} up\nlink set p{i} up\n")
        })
        .collect();
    let batch_file = batch.path.join("links");
    std::fs::write(&batch_file, script).expect("writing the ip batch");
    runtime_loader::testkit::ip(&[
        "-n",
        &node.name,
        "-batch",
        &batch_file.display().to_string(),
    ]);
    let dir = TempDir::new("cpbench");
    let socket = dir.path.join("agent.sock");
    let mut agent = Agent {
        child: None,
        datapath: Some((PrivateBpffs::new(), node.path())),
        dir,
        socket: socket.clone(),
        extra: vec![
            "--bpf-ct-global-tcp-max".into(),
            CT_MAP_SIZE.into(),
            "--bpf-ct-global-any-max".into(),
            CT_MAP_SIZE.into(),
            // The idle row's check interval, whatever the default.
            "--datapath-check-interval".into(),
            "1".into(),
        ],
    };
    agent.spawn();
    let t = Instant::now();
    let mut ports = vec![1000u16; n_pols];
    let docs: Vec<(String, String)> = (0..n_pols)
        .map(|j| (format!("policies/p{j}.json"), policy(j, ports[j], apps)))
        .collect();
    for chunk in docs.chunks(500) {
        put_policies(&socket, chunk);
    }
    eprintln!("{n_pols} policies applied in {:.1?}", t.elapsed());
    let t = Instant::now();
    for i in 0..n_eps {
        let b = i % 250;
        let body = serde_json::json!({
            "id": i + 1,
            "iface": format!("d{i}"),
            "labels": [format!("app=a{}", i % apps), format!("ep=e{i}")],
            "ipv4": format!("10.{}.{}.{}", 10 + i / 62500, (i / 250) % 250, b + 1),
        })
        .to_string();
        ok(&socket, "PUT", &format!("/v1/endpoint/{}", i + 1), &body);
        if (i + 1) % 100 == 0 {
            eprintln!("{} endpoints in {:.1?}", i + 1, t.elapsed());
        }
    }
    let health = ok(&socket, "GET", "/v1/healthz", "");
    let pid = agent.child.as_ref().map_or(0, |c| c.id());
    eprintln!("setup done: {health}; agent RSS {}", rss_kib(pid));
    let mut times = Vec::with_capacity(samples);
    let warmup = 20;
    for k in 0..samples + warmup {
        let j = (k * 37) % n_pols;
        ports[j] = if ports[j] == 1000 { 1001 } else { 1000 };
        let body = serde_json::json!({
            "sources": [{"path": format!("policies/p{j}.json"), "text": policy(j, ports[j], apps)}],
            "wait": true,
        })
        .to_string();
        let t = Instant::now();
        let reply = ok(&socket, "PUT", "/v1/policy", &body);
        let dt = t.elapsed();
        assert!(reply.contains("\"enforced\":true"), "{reply}");
        if k >= warmup {
            times.push(dt);
        }
    }
    // The last change is in force: the subject app's endpoints accept the new port from the
    // peer app.
    let j = ((samples + warmup - 1) * 37) % n_pols;
    let (subject, peer) = (j % apps + 1, (7 * j + 1) % apps + 1);
    let q = format!(
        "/v1/policy/resolve?from={peer}&to={subject}&port={}&protocol=tcp",
        ports[j]
    );
    let r = ok(&socket, "GET", &q, "");
    assert!(r.contains("\"verdict\":\"allowed\""), "{q}: {r}");
    println!(
        "agent_latency/put_one_policy ({n_eps} endpoints, {n_pols} policies, {} samples): {}",
        times.len(),
        latency_summary(&mut times)
    );
    eprintln!("agent RSS after the samples: {}", rss_kib(pid));
    let baseline = percentile(&times, 0.5);
    group_changes(&socket, baseline);
    idle_cpu(pid, n_eps);
}

/// CPU time (user + system) the process `pid` used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(f.iter().sum::<u64>() as f64 / hz)
}

/// The agent idle for `CP_BENCH_IDLE_SECS` (default 10) with its periodic datapath check
/// every second: the CPU it used per second, all of it the check's (an idle agent without it
/// does nothing), and per check and endpoint.
fn idle_cpu(pid: u32, n_eps: usize) {
    let secs = env("CP_BENCH_IDLE_SECS", 10);
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(secs as u64));
    let used = cpu_time(pid).saturating_sub(before);
    let per_sec = used.as_secs_f64() / secs as f64;
    println!(
        "agent_latency/idle_datapath_check ({n_eps} endpoints, every 1 s, {secs} s): {:.1} ms CPU per second ({:.1} µs per endpoint per check)",
        per_sec * 1e3,
        per_sec * 1e6 / n_eps.max(1) as f64
    );
}

/// A CiliumCIDRGroup `g` of `cidr` (its own source).
fn group(cidr: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {{name: g}}\n\
         spec: {{externalCIDRs: [\"{cidr}\"]}}\n"
    )
}

/// The same state, then a CIDR group that app `a0` admits (`cidrGroupRef`): each sample flips
/// the group's CIDR (`PUT /v1/policy` of its source, waiting for enforcement), a change the
/// agent applies by building the world of every source (Documentation/agent.md, "Inventory
/// objects"). Printed with its p50's ratio to the one-policy change's (`baseline`).
fn group_changes(socket: &Path, baseline: Duration) {
    let samples = env("CP_BENCH_GROUP_SAMPLES", 30);
    let rule = r#"[{"endpointSelector": {"matchLabels": {"app": "a0"}},
  "ingress": [{"fromCIDRSet": [{"cidrGroupRef": "g"}]}]}]"#;
    let cidrs = ["192.0.2.0/24", "198.51.100.0/24"];
    put_policies(
        socket,
        &[
            ("groups/g.yaml".into(), group(cidrs[0])),
            ("groups/rule.json".into(), rule.into()),
        ],
    );
    let mut times = Vec::with_capacity(samples);
    let warmup = 3;
    for k in 0..samples + warmup {
        let cidr = cidrs[(k + 1) % 2];
        let t = Instant::now();
        put_policies(socket, &[("groups/g.yaml".into(), group(cidr))]);
        if k >= warmup {
            times.push(t.elapsed());
        }
    }
    // The last change is in force: app a0 admits the group's current CIDR only.
    let last = cidrs[(samples + warmup) % 2].replace("0/24", "7");
    let r = ok(
        socket,
        "GET",
        &format!("/v1/policy/resolve?from={last}&to=1&port=80"),
        "",
    );
    assert!(r.contains("\"verdict\":\"allowed\""), "{last}: {r}");
    times.sort();
    let p50 = percentile(&times, 0.5);
    println!(
        "agent_latency/put_cidr_group ({} samples): p50 {p50:.2?}  p90 {:.2?}  max {:.2?}  p50 = {:.1}x put_one_policy's",
        times.len(),
        percentile(&times, 0.9),
        times[times.len() - 1],
        p50.as_secs_f64() / baseline.as_secs_f64()
    );
}
