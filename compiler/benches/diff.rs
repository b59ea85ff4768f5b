//! `diff` on the generated cluster (10,000 pods in 500 namespaces, 2,000 policies) written as
//! manifest files, diffed against itself with one policy changed: the inventory is the common
//! input, every namespace's policies the old side, and the same files with `ns3/np-app` moved
//! from port 80 to 8081 the new side. Exactly what `cilium-policy diff -f INV --old OLD --new NEW`
//! runs (`compiler::diff::diff`: read and parse the three inputs, build identities and every map
//! state once, match the 8,000 rules, swap the differing one, compare), minus process start and
//! printing. With the CLI's allocator (mimalloc).

#[allow(dead_code)] // the IR generator is for the other benchmarks
mod gen;

use compiler::cluster::ClusterConfig;
use compiler::diff::{diff, DiffInput};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Splits the written manifests into `inv/`, `old/` and `new/` (ns3's np-app on 8081 instead of 80).
fn sides(root: &Path) -> std::io::Result<()> {
    let all = root.join("all");
    gen::manifests::write_manifests(&all)?;
    for side in ["inv", "old", "new"] {
        std::fs::create_dir_all(root.join(side))?;
    }
    for n in 0..gen::NAMESPACES {
        let ns = all.join(format!("ns{n}"));
        for f in ["namespace.yaml", "pods.json"] {
            std::fs::rename(ns.join(f), root.join("inv").join(format!("ns{n}-{f}")))?;
        }
        let policies = std::fs::read_to_string(ns.join("policies.yaml"))?;
        let changed = if n == 3 {
            policies.replacen("port: 80\n", "port: 8081\n", 1)
        } else {
            policies.clone()
        };
        let name = format!("ns{n}-policies.yaml");
        std::fs::write(root.join("old").join(&name), policies)?;
        std::fs::write(root.join("new").join(&name), changed)?;
    }
    Ok(())
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    sides(dir.path()).expect("write manifests");
    let input = DiffInput {
        common: vec![dir.path().join("inv")],
        old: vec![dir.path().join("old")],
        new: vec![dir.path().join("new")],
        config: ClusterConfig::default(),
        ports: Vec::new(),
        peers: vec!["203.0.113.5".parse().expect("address")],
    };
    let mut g = c.benchmark_group("diff");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("10k_pods_2k_policies_one_changed", |b| {
        b.iter(|| {
            let d = diff(&input).expect("diff");
            // ns3's app4 pods (4) to its app3 pods (4): port 80 allow -> deny, 8081 deny -> allow.
            assert_eq!(d.changes.len(), 32);
            d
        })
    });
    g.finish();
}

criterion_group!(diff_bench, benches);
criterion_main!(diff_bench);
