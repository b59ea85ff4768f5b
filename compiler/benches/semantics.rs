//! Semantics benchmarks on a generated cluster (10,000 pods in 500 namespaces, 2,000 policies
//! mixing NetworkPolicy-style and CiliumNetworkPolicy-style rules): full resolution of every
//! endpoint's map state, adding and removing one pod with a new identity, and a trace from the
//! inventory (cluster build + trace, no parsing; the cold start from files is `trace_cold.rs`).

mod gen;

use compiler::cluster::{Cluster, ClusterConfig};
use compiler::policy::PolicyEngine;
use compiler::trace::{resolve_party, trace, PartySpec};
use criterion::{criterion_group, criterion_main, Criterion};
use gen::{generate, new_pod};
use ir::Protocol;
use std::time::{Duration, Instant};

/// Adds a pod with a new identity, then removes it; times one of the two.
fn add_then_remove(engine: &mut PolicyEngine, k: usize, time_add: bool) -> Duration {
    let ep = new_pod(&engine.cluster, k);
    let name = ep.name.clone();
    let t = Instant::now();
    let added = engine.add_endpoint(ep).expect("add");
    let add = t.elapsed();
    criterion::black_box(added);
    let t = Instant::now();
    let removed = engine.remove_endpoint(&name);
    let remove = t.elapsed();
    criterion::black_box(removed);
    if time_add {
        add
    } else {
        remove
    }
}

fn benches(c: &mut Criterion) {
    let (policy, inv) = generate();
    let cluster = Cluster::build(&inv, &policy, ClusterConfig::default()).expect("cluster");
    let mut g = c.benchmark_group("semantics");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("full_resolution_10k_pods_2k_policies", |b| {
        b.iter_batched(
            || (policy.clone(), cluster.clone()),
            |(p, cl)| PolicyEngine::new(p, cl),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut engine = PolicyEngine::new(policy.clone(), cluster.clone());
    let mut k = 0;
    g.sample_size(100).measurement_time(Duration::from_secs(5));
    for (name, time_add) in [
        ("add_pod_with_new_identity", true),
        ("remove_pod_with_own_identity", false),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        k += 1;
                        add_then_remove(&mut engine, k, time_add)
                    })
                    .sum()
            })
        });
    }
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("trace_from_inventory", |b| {
        b.iter(|| {
            let cl = Cluster::build(&inv, &policy, ClusterConfig::default()).expect("cluster");
            let src = resolve_party(&cl, &PartySpec::Endpoint("ns3/pod4".into())).expect("src");
            let dst = resolve_party(&cl, &PartySpec::Endpoint("ns3/pod3".into())).expect("dst");
            trace(&policy, &cl, src, dst, Protocol::Tcp, 80, None).allowed
        })
    });
    g.finish();
}

criterion_group!(semantics, benches);
criterion_main!(semantics);
