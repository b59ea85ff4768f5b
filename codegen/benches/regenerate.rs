//! Regenerating one endpoint: from its configuration's template (entries, header, patched
//! object; and with its map images serialized) against running clang for the endpoint.
//! `cargo bench -p codegen --bench regenerate`.

use codegen::{testkit, EndpointConfig, Generator, MapSizes};
use criterion::{criterion_group, criterion_main, Criterion};
use ir::EndpointPolicy;

fn endpoint(rules: u32) -> (EndpointConfig, EndpointPolicy) {
    let ep = testkit::endpoint(9, "bench/ep", 1000, "10.0.0.1");
    let mut p = testkit::ingress_policy(&ep);
    testkit::synthetic_allows(&mut p, rules);
    (ep, p)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g =
        Generator::new(dir.path(), MapSizes::default()).expect("clang (Debian package clang-19)");
    let (ep, p) = endpoint(10);
    g.endpoint(&ep, &p, None).unwrap(); // compiles the template once
    c.bench_function("regenerate_endpoint_from_template_10_rules", |b| {
        b.iter(|| g.endpoint(&ep, &p, None).unwrap())
    });
    let (ep_big, p_big) = endpoint(10_000);
    c.bench_function("regenerate_endpoint_from_template_10000_rules", |b| {
        b.iter(|| g.endpoint(&ep_big, &p_big, None).unwrap())
    });
    c.bench_function("regenerate_endpoint_with_map_images_10000_rules", |b| {
        b.iter(|| {
            let art = g.endpoint(&ep_big, &p_big, None).unwrap();
            art.images()
                .iter()
                .map(|i| i.to_bytes().len())
                .sum::<usize>()
        })
    });
    c.bench_function("entries_build_10000_rules", |b| {
        b.iter(|| codegen::entries::EndpointEntries::build(&p_big))
    });
    c.bench_function("features_derive_10000_rules", |b| {
        b.iter(|| codegen::Features::derive(&ep_big, &p_big, None))
    });
    let art = g.endpoint(&ep, &p, None).unwrap();
    let node = g.node_header(1, &Default::default());
    let out = dir.path().join("direct.o");
    let mut group = c.benchmark_group("clang");
    group.sample_size(10);
    group.bench_function("clang_per_endpoint", |b| {
        b.iter(|| g.clang.compile(&art.header, &node, &out, "bench").unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
