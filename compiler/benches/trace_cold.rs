//! `trace` cold start on the generated cluster (10,000 pods in 500 namespaces, 2,000 policies)
//! written as manifest files: exactly what `cilium-policy trace -f DIR --src ns3/pod4 --dst
//! ns3/pod3 --dport 80` runs (`compiler::trace::trace_files`: read, parse, build identities and
//! ipcache, trace) plus rendering the verdict, minus process start. Its own bench binary, so the
//! process holds nothing else, and with the CLI's allocator (mimalloc, `cilium-policy/src/main.rs`).
//! A second copy of the files adds 500 `Node` objects (each a node identity) and a clusterwide
//! policy with a `fromNodes` selector on every pod, measured in the same run against the first.

#[allow(dead_code)] // the IR generator is for the other benchmark
mod gen;

use compiler::cluster::ClusterConfig;
use compiler::trace::{render, trace_files, PartySpec, Query};
use criterion::{criterion_group, criterion_main, Criterion};
use ir::Protocol;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// 500 nodes (two roles, three zones) and a `fromNodes` rule selecting the control-plane ones
/// for every pod.
fn write_nodes(dir: &Path) -> std::io::Result<()> {
    let mut out = String::new();
    for i in 0..500 {
        let role = if i % 50 == 0 {
            "control-plane"
        } else {
            "worker"
        };
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node{i}\n  labels:\n    \
             kubernetes.io/hostname: node{i}\n    node-role.kubernetes.io/{role}: \"\"\n    \
             topology.kubernetes.io/zone: z{}\nstatus:\n  addresses:\n  - type: InternalIP\n    \
             address: 172.30.{}.{}\n",
            i % 3,
            i / 250,
            i % 250 + 1
        );
    }
    out.push_str(
        "---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  \
         name: from-control-plane\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromNodes:\n    \
         - matchLabels:\n        node-role.kubernetes.io/control-plane: \"\"\n",
    );
    std::fs::write(dir.join("nodes.yaml"), out)
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    gen::manifests::write_manifests(dir.path()).expect("write manifests");
    let paths = [dir.path().to_path_buf()];
    let with_nodes = tempfile::tempdir().expect("temp dir");
    gen::manifests::write_manifests(with_nodes.path()).expect("write manifests");
    write_nodes(with_nodes.path()).expect("write nodes");
    let node_paths = [with_nodes.path().to_path_buf()];
    let query = Query {
        src: PartySpec::Endpoint("ns3/pod4".into()),
        dst: PartySpec::Endpoint("ns3/pod3".into()),
        protocol: Protocol::Tcp,
        port: 80,
        http: None,
    };
    let mut g = c.benchmark_group("semantics");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("trace_cold_start_from_manifests", |b| {
        b.iter(|| {
            let (p, t) = trace_files(&paths, ClusterConfig::default(), &query).expect("trace");
            assert!(t[0].allowed, "np-app allows app4 -> app3 on 80 in ns3");
            render::text(&p, &t[0])
        })
    });
    g.bench_function("trace_cold_start_with_500_nodes_and_node_selectors", |b| {
        b.iter(|| {
            let (p, t) = trace_files(&node_paths, ClusterConfig::default(), &query).expect("trace");
            assert!(t[0].allowed, "np-app allows app4 -> app3 on 80 in ns3");
            render::text(&p, &t[0])
        })
    });
    g.finish();
}

criterion_group!(trace_cold, benches);
criterion_main!(trace_cold);
