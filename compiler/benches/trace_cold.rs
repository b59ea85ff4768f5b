//! `trace` cold start on the generated cluster (10,000 pods in 500 namespaces, 2,000 policies)
//! written as manifest files: exactly what `cilium-policy trace -f DIR --src ns3/pod4 --dst
//! ns3/pod3 --dport 80` runs (`compiler::trace::trace_files`: read, parse, build identities and
//! ipcache, trace) plus rendering the verdict, minus process start. Its own bench binary, so the
//! process holds nothing else, and with the CLI's allocator (mimalloc, `cilium-policy/src/main.rs`).

#[allow(dead_code)] // the IR generator is for the other benchmark
mod gen;

use compiler::cluster::ClusterConfig;
use compiler::trace::{render, trace_files, PartySpec, Query};
use criterion::{criterion_group, criterion_main, Criterion};
use ir::Protocol;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    gen::manifests::write_manifests(dir.path()).expect("write manifests");
    let paths = [dir.path().to_path_buf()];
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
    g.finish();
}

criterion_group!(trace_cold, benches);
criterion_main!(trace_cold);
