//! CNI ADD latency as a runtime sees it: the `cilium-policy-cni` process spawned with the CNI
//! environment and a ptp-style `prevResult` on stdin, until it exits with the result — through
//! the agent creating the endpoint, loading and attaching its programs (template cache warm)
//! and writing its policy maps. Each sample is an ADD of a fresh container on its own veth
//! pair (both ends in a private node namespace), followed by a DEL outside the timing.
//! Every other container's pod is selected by the policy (its ingress enforced: the larger
//! program), the others by none (default allow). Root only (skips otherwise). Prints
//! p50/p90/p99/max of all ADDs and of each kind, of the DELs, and the plugin's own start (a
//! `VERSION` call the same way, which does not reach the agent).
//!
//! The agent keeps programs verified ahead (`--spare-programs`, default 2 per configuration):
//! between two samples it has the time to verify the next ones. A second phase measures a
//! burst instead: `CP_BENCH_BURST` (default 40) ADDs back to back, each started as soon as
//! the previous one returned, which drains the pool after its first ADDs per configuration.
//!
//! With `CP_BENCH_BREAKDOWN=1` the agent runs with `--debug` and the bench also prints where
//! each ADD's time went in the agent: its debug spans (`support/span_times.rs`) from the log
//! lines the ADD wrote, p50/p99 per span path. Debug logging itself costs time: compare totals
//! without it.
//!
//! Each attach mode of the agent in turn (`CP_BENCH_MODES`, default `tc,tcx`; each mode its
//! own agent and node), so the default is measured against tcx in the same run.
//!
//! `cargo build --release -p cilium-policy-cni && cargo bench -p cilium-policy --bench cni_add`
//! (`CP_BENCH_SAMPLES`, default 200; `CP_BENCH_BREAKDOWN`; `CP_BENCH_MODES`; `CP_BENCH_BURST`).

#[path = "../tests/agent_harness/mod.rs"]
mod agent_harness;
#[path = "../tests/podman/mod.rs"]
mod podman;
#[path = "support/span_times.rs"]
mod span_times;

use agent_harness::Agent;
use runtime_loader::testkit::{node_netns, require_root};
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

fn main() {
    if !require_root("cni_add") {
        return;
    }
    let samples = agent_harness::bench_env("CP_BENCH_SAMPLES", 200);
    let breakdown = agent_harness::bench_env("CP_BENCH_BREAKDOWN", 0) != 0;
    let modes = std::env::var("CP_BENCH_MODES").unwrap_or_else(|_| "tc,tcx".into());
    for mode in modes.split(',').filter(|m| !m.is_empty()) {
        bench_mode(mode, samples, breakdown);
    }
}

/// `samples` ADDs through an agent in attach mode `mode`.
fn bench_mode(mode: &str, samples: usize, breakdown: bool) {
    let node = node_netns();
    let mut args = vec!["--attach-mode".to_string(), mode.to_string()];
    if breakdown {
        args.push("--debug".into());
    }
    let agent = Agent::start_in(&node, args);
    let log_path = agent.dir.path.join("agent.log");
    let mut spans = span_times::SpanTimes::default();
    let mut starts = Vec::with_capacity(samples);
    let burst_size = agent_harness::bench_env("CP_BENCH_BURST", 40);
    let pods: String = (0..samples + 10 + burst_size)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: default, labels: {{app: a{}}}}}\n---\n",
                1 + i % 2
            )
        })
        .collect();
    agent.ok(&["apply", "-f", &agent.file("pods.yaml", &pods)]);
    let policy = "[{\"endpointSelector\": {\"matchLabels\": {\"app\": \"a1\"}},\n\
        \"ingress\": [{\"fromEndpoints\": [{\"matchLabels\": {\"app\": \"a2\"}}],\n\
        \"toPorts\": [{\"ports\": [{\"port\": \"80\", \"protocol\": \"TCP\"}]}]}]}]";
    agent.ok(&["policy", "import", &agent.file("p.json", policy)]);
    let socket = agent.socket.display().to_string();
    let mut times = Vec::with_capacity(samples);
    let mut dels = Vec::with_capacity(samples);
    for i in 0..samples + 10 {
        let host = format!("cpb{i}h");
        podman::host_veth(&node, &host);
        let addr = format!("10.77.{}.{}/32", i / 250, i % 250 + 1);
        let conf = podman::chained_conf(&socket, &host, &addr);
        let run = |command: &str| {
            let t = Instant::now();
            let out = podman::run_plugin(
                &node,
                command,
                &format!("bench{i}"),
                &format!("p{i}"),
                &conf,
            );
            assert!(
                out.status.success(),
                "{command} {i}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            t.elapsed()
        };
        let log_at = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let add = run("ADD");
        let start = run("VERSION");
        if i >= 10 {
            times.push((add, i % 2 == 0));
            starts.push(start);
            if breakdown {
                spans.add_request(&log_since(&log_path, log_at));
            }
        }
        let del = run("DEL");
        if i >= 10 {
            dels.push(del);
        }
        node.exec(&["ip", "link", "del", &host]);
    }
    for (what, pick) in [
        ("all", None),
        ("policy-enforced endpoints", Some(true)),
        ("endpoints no policy selects", Some(false)),
    ] {
        let mut t: Vec<Duration> = times
            .iter()
            .filter(|(_, enforced)| pick.is_none_or(|p| p == *enforced))
            .map(|(d, _)| *d)
            .collect();
        println!(
            "cni ADD (process spawn → result), --attach-mode {mode}, {what}, {} samples: {}",
            t.len(),
            agent_harness::latency_summary(&mut t)
        );
    }
    println!(
        "cni DEL (process spawn → result), --attach-mode {mode}, {} samples: {}",
        dels.len(),
        agent_harness::latency_summary(&mut dels)
    );
    burst(&node, &socket, mode, samples + 10);
    println!(
        "plugin start (process spawn → VERSION result, no agent call): {}",
        agent_harness::latency_summary(&mut starts)
    );
    if breakdown {
        print!(
            "agent spans per ADD (debug logging on):\n{}",
            spans.report()
        );
    }
}

/// `CP_BENCH_BURST` ADDs back to back (pods `p{first}…`, alternately enforced or not), then
/// their DELs.
fn burst(node: &runtime_loader::testkit::Netns, socket: &str, mode: &str, first: usize) {
    let n = agent_harness::bench_env("CP_BENCH_BURST", 40);
    let confs: Vec<(String, String)> = (first..first + n)
        .map(|i| {
            let host = format!("cpb{i}h");
            podman::host_veth(node, &host);
            let addr = format!("10.78.{}.{}/32", i / 250, i % 250 + 1);
            (host.clone(), podman::chained_conf(socket, &host, &addr))
        })
        .collect();
    let mut times = Vec::with_capacity(n);
    for (k, (_, conf)) in confs.iter().enumerate() {
        let i = first + k;
        let t = Instant::now();
        let out = podman::run_plugin(node, "ADD", &format!("bench{i}"), &format!("p{i}"), conf);
        times.push(t.elapsed());
        assert!(out.status.success(), "burst ADD {i}");
    }
    println!(
        "cni ADD back to back, --attach-mode {mode}, a burst of {n}: {}",
        agent_harness::latency_summary(&mut times)
    );
    for (k, (host, conf)) in confs.iter().enumerate() {
        let i = first + k;
        podman::run_plugin(node, "DEL", &format!("bench{i}"), &format!("p{i}"), conf);
        node.exec(&["ip", "link", "del", host]);
    }
}

/// What the agent logged from byte `at` on.
fn log_since(path: &std::path::Path, at: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(at)).is_ok() {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}
