//! The per-request cost of the HTTP matcher alone with 1 and 1,000 rules on a key: a request
//! matching the last rule, and one matching none. `cargo bench -p l7proxy --bench matcher`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ir::{HttpRule, RuleId};
use l7proxy::matcher::{HttpMatcher, Limits, RequestView};

fn rules(n: usize) -> Vec<HttpRule> {
    (0..n)
        .map(|i| HttpRule {
            method: Some("GET|HEAD".into()),
            path: Some(format!("/api/v1/item{i}(/.*)?")),
            host: None,
            headers: Vec::new(),
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let headers = hyper::HeaderMap::new();
    let mut g = c.benchmark_group("matcher");
    for n in [1usize, 1000] {
        let rules = rules(n);
        let with_ids: Vec<(RuleId, &HttpRule)> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (RuleId(i as u32), r))
            .collect();
        let m = HttpMatcher::compile(&with_ids, &Limits::default()).expect("compiles");
        let last = format!("/api/v1/item{}/x", n - 1);
        for (name, path, want) in [
            ("last_rule", last.as_str(), true),
            ("no_rule", "/other/x", false),
        ] {
            let req = RequestView {
                method: "GET",
                path,
                host: "app1",
                headers: &headers,
            };
            assert_eq!(m.allows(&req), want);
            g.bench_with_input(BenchmarkId::new(name, n), &req, |b, req| {
                b.iter(|| m.allows(req))
            });
        }
    }
    g.finish();
}

criterion_group!(matcher, benches);
criterion_main!(matcher);
