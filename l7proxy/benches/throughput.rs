//! Keep-alive HTTP through the proxy against the same traffic sent straight to the server, on
//! loopback: requests/s and p50/p99 latency with 1 and 64 connections and 1 and 1,000 HTTP rules
//! on the port (the request matches the last rule). Client, proxy and server share the
//! machine's cores, so the ratios, measured in the same run, are what to compare.
//!
//! `cargo bench -p l7proxy --bench throughput` (`L7_BENCH_SECS` sets each run's length,
//! default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use l7proxy::ProxyConfig;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(addr: SocketAddr, conns: usize, path: &'static str, secs: f64) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut c = client(addr).await;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, _, _) = send(&mut c, "GET", path, &[]).await;
                assert_eq!(status, 200);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    Run {
        rps: all.len() as f64 / secs,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn rules(n: usize) -> String {
    (0..n)
        .map(|i| format!("        - method: GET\n          path: \"/api/v1/item{i}(/.*)?\"\n"))
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("L7_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 3.0 });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend = backend().await;
        println!(
            "{:<8} {:>5} {:>6} {:>10} {:>9} {:>9} {:>8} {:>10} {:>10}",
            "target", "conns", "rules", "req/s", "p50 µs", "p99 µs", "rps ×", "p50 +µs", "p99 +µs"
        );
        for n in [1usize, 1000] {
            let world = World::new(&ingress_policy(backend.port(), &rules(n)));
            let p = proxy(
                world.table(),
                world.identity("app2"),
                backend,
                ProxyConfig::default(),
            )
            .await;
            let path: &'static str = Box::leak(format!("/api/v1/item{}/x", n - 1).into_boxed_str());
            for conns in [1usize, 64] {
                let direct = load(backend, conns, path, secs).await;
                let via = load(p.addr, conns, path, secs).await;
                for (name, r) in [("direct", &direct), ("proxy", &via)] {
                    println!(
                        "{name:<8} {conns:>5} {n:>6} {:>10.0} {:>9} {:>9} {:>8.2} {:>10} {:>10}",
                        r.rps,
                        r.p50.as_micros(),
                        r.p99.as_micros(),
                        r.rps / direct.rps,
                        r.p50.as_micros() as i128 - direct.p50.as_micros() as i128,
                        r.p99.as_micros() as i128 - direct.p99.as_micros() as i128,
                    );
                }
            }
        }
    });
}
