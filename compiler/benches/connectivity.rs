//! `connectivity` at cluster scale: the generated cluster's first 250 namespaces (5,000 pods,
//! ≈2,500 identities, 1,000 policies) written as manifest files; from the files to every allowed
//! pair (read, parse, identities, every map state, `policy::reach`), as `cilium-policy
//! connectivity -f DIR --group identity` runs it minus printing; and the pairs alone per pod
//! (`--group pod`, ≈4.5 million allowed pairs) on the already built engine. With the CLI's
//! allocator (mimalloc).

#[allow(dead_code)] // the IR generator is for the other benchmarks
mod gen;

use compiler::cluster::{load, ClusterConfig};
use compiler::policy::connectivity::End;
use compiler::policy::reach::{parties, reach, Grouping, Reach};
use compiler::policy::PolicyEngine;
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEEP: usize = 250;

fn pairs(e: &PolicyEngine, g: Grouping) -> Reach {
    let ps = parties(e, g);
    let ends: Vec<End> = ps.iter().map(|(_, e)| *e).collect();
    reach(&ends, |i| ps[i].0.count > 1)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    gen::manifests::write_manifests(dir.path()).expect("write manifests");
    for n in KEEP..gen::NAMESPACES {
        std::fs::remove_dir_all(dir.path().join(format!("ns{n}"))).expect("trim");
    }
    let paths: Vec<PathBuf> = vec![dir.path().to_path_buf()];
    let engine = || {
        let (p, cl) = load(&paths, ClusterConfig::default()).expect("load");
        PolicyEngine::new(p, cl)
    };
    let e = engine();
    assert_eq!(e.cluster.endpoints().len(), KEEP * gen::PODS_PER_NS);
    let mut g = c.benchmark_group("connectivity");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("5k_pods_from_files_by_identity", |b| {
        b.iter(|| {
            let e = engine();
            pairs(&e, Grouping::MapState).pairs.len()
        })
    });
    g.bench_function("5k_pods_pairs_by_pod", |b| {
        b.iter(|| pairs(&e, Grouping::Endpoint).pairs.len())
    });
    g.finish();
    let by_id = pairs(&e, Grouping::MapState);
    let by_pod = pairs(&e, Grouping::Endpoint);
    println!(
        "connectivity: {} parties by identity, {} allowed pairs; {} allowed pod pairs",
        parties(&e, Grouping::MapState).len(),
        by_id.pairs.len(),
        by_pod.pairs.len()
    );
}

criterion_group!(connectivity_bench, benches);
criterion_main!(connectivity_bench);
