//! Keep-alive HTTP through the agent's L7 proxy against the same traffic under an L3/L4-only
//! policy, on veth pairs: a spawned agent in its own node namespace, app1 (server) and app2
//! (client) as pods behind veths running the endpoint programs, app1's ingress on port 80
//! either allowed at L3/L4 from app2 or redirected to the proxy with 1 or 1,000 HTTP rules
//! (`GET /api/v1/item{i}(/.*)?`; every request matches the last one). The server and the
//! clients are threads of this process inside the pods' namespaces (a minimal keep-alive
//! HTTP/1.1 server answering `200 ok`, and 1 or 64 client connections each sending `GET` in a
//! loop); each row runs `CP_BENCH_SECS` seconds (default 3). Reports requests/s, p50 and p99
//! and, for the proxied rows, the ratio and added latency against the L3/L4 row of the same
//! connection count, measured in the same run. Root only (skips otherwise).
//!
//! The `relay` rows are the floor of any proxy that terminates the client's connection: app2's
//! requests go to a third pod, which copies bytes both ways to app1 (no HTTP, no policy, no
//! socket assignment), every hop allowed at L3/L4; once on one thread with a single-threaded
//! tokio runtime, as the agent's proxy runs, once with a blocking thread per direction of each
//! connection, as the server and the clients here run. What a relay costs against the L3/L4
//! row is the extra TCP hop alone, the part of the proxy's cost no HTTP code can remove.
//!
//! `cargo bench -p cilium-policy --bench l7_veth`

#[path = "../tests/agent_harness/mod.rs"]
mod agent_harness;

use agent_harness::http::add_pods;
use agent_harness::{bench_env as env, percentile, Agent};
use runtime_loader::testkit::{enter_netns, node_netns, require_root, Endpoint};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Reads one request or response head; the `Content-Length`, or `None` at the end.
fn read_head(r: &mut impl BufRead) -> Option<usize> {
    let mut len = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if first {
            first = false;
            if line.starts_with("HTTP/") && !line.contains(" 200 ") {
                panic!("unexpected answer: {line}");
            }
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if line == "\r\n" {
            return Some(len);
        }
    }
}

/// The server: a thread in `ns` accepting on `addr:80`, one thread per connection.
fn serve(ns: PathBuf, addr: Ipv4Addr) {
    let (ready, up) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&ns).expect("setns");
        let l = TcpListener::bind((addr, 80)).expect("bind :80");
        let _ = ready.send(());
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let mut r = BufReader::new(c);
                while read_head(&mut r).is_some() {
                    if r.get_mut().write_all(RESPONSE).is_err() {
                        return;
                    }
                }
            });
        }
    });
    up.recv().expect("the server started");
}

/// The relays' ports in their pod: the tokio relay's, the threaded relay's.
const RELAY_PORTS: [u16; 2] = [8080, 8081];

/// The tokio relay: a thread in `ns` accepting on `addr:RELAY_PORTS[0]`, each connection copied
/// both ways to `upstream` by `tokio::io::copy_bidirectional` on a single-threaded runtime.
fn relay_tokio(ns: PathBuf, addr: Ipv4Addr, upstream: SocketAddr) {
    let (ready, up) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&ns).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("the relay's runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind((addr, RELAY_PORTS[0]))
                .await
                .expect("bind the relay");
            let _ = ready.send(());
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let Ok(mut u) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (c.set_nodelay(true), u.set_nodelay(true));
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                });
            }
        });
    });
    up.recv().expect("the relay started");
}

/// The threaded relay: a thread in `ns` accepting on `addr:RELAY_PORTS[1]`, each connection
/// copied to `upstream` by a blocking thread per direction.
fn relay_threads(ns: PathBuf, addr: Ipv4Addr, upstream: SocketAddr) {
    let (ready, up) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&ns).expect("setns");
        let l = TcpListener::bind((addr, RELAY_PORTS[1])).expect("bind the relay");
        let _ = ready.send(());
        for c in l.incoming().flatten() {
            let Ok(u) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = (c.set_nodelay(true), u.set_nodelay(true));
            let (Ok(mut back), Ok(mut from)) = (c.try_clone(), u.try_clone()) else {
                continue;
            };
            let (mut c, mut u) = (c, u);
            std::thread::spawn(move || std::io::copy(&mut c, &mut u));
            std::thread::spawn(move || std::io::copy(&mut from, &mut back));
        }
    });
    up.recv().expect("the relay started");
}

struct Row {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// `conns` client connections from `ns` to `dst`, each sending `GET path` for `secs`.
fn load(ns: &Path, dst: SocketAddr, conns: usize, path: &str, secs: f64) -> Row {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let req = format!("GET {path} HTTP/1.1\r\nHost: app1\r\n\r\n");
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (ns, req) = (ns.to_path_buf(), req.clone());
            std::thread::spawn(move || {
                enter_netns(&ns).expect("setns");
                let c = TcpStream::connect_timeout(&dst, Duration::from_secs(5)).expect("connect");
                c.set_nodelay(true).expect("nodelay");
                c.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let mut r = BufReader::new(c);
                let mut lat = Vec::new();
                let mut body = [0u8; 64];
                while Instant::now() < deadline {
                    let t = Instant::now();
                    r.get_mut().write_all(req.as_bytes()).expect("send");
                    let len = read_head(&mut r).expect("an answer");
                    r.read_exact(&mut body[..len.min(64)]).expect("body");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect();
    all.sort();
    Row {
        rps: all.len() as f64 / secs,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

/// The relays' ingress from app2 on RELAY_PORTS, at L3/L4.
fn relay_policy() -> String {
    let [a, b] = RELAY_PORTS;
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: bench-relay, namespace: default}}\n\
         spec:\n  endpointSelector: {{matchLabels: {{id: relay}}}}\n  ingress:\n  \
         - fromEndpoints: [{{matchLabels: {{id: app2}}}}]\n    toPorts:\n    \
         - ports: [{{port: \"{a}\", protocol: TCP}}, {{port: \"{b}\", protocol: TCP}}]\n"
    )
}

/// app1's ingress from app2 (and the relay) on 80: L3/L4 only (`rules` 0) or with `rules`
/// HTTP rules.
fn policy(rules: usize) -> String {
    let mut p = String::from(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bench, namespace: default}\n\
         spec:\n  endpointSelector: {matchLabels: {id: app1}}\n  ingress:\n  \
         - fromEndpoints: [{matchLabels: {id: app2}}, {matchLabels: {id: relay}}]\n    toPorts:\n    \
         - ports: [{port: \"80\", protocol: TCP}]\n",
    );
    if rules > 0 {
        p += "      rules:\n        http:\n";
        for i in 0..rules {
            p += &format!("        - method: GET\n          path: \"/api/v1/item{i}(/.*)?\"\n");
        }
    }
    p
}

fn main() {
    if !require_root("l7_veth benchmark") {
        return;
    }
    if let Some(f) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        if !"l7_veth".contains(&f) {
            return;
        }
    }
    // `cargo test --benches` runs this too: keep that short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = if quick {
        0.3
    } else {
        env("CP_BENCH_SECS", 3) as f64
    };
    let node = node_netns();
    let app1 = Endpoint::new(&node, Ipv4Addr::new(10, 96, 0, 11));
    let app2 = Endpoint::new(&node, Ipv4Addr::new(10, 96, 0, 12));
    let hop = Endpoint::new(&node, Ipv4Addr::new(10, 96, 0, 13));
    let dst = SocketAddr::from((app1.addr, 80));
    serve(app1.ns.path(), app1.addr);
    relay_tokio(hop.ns.path(), hop.addr, dst);
    relay_threads(hop.ns.path(), hop.addr, dst);
    let agent = Agent::start(&node);
    add_pods(
        &agent,
        &[(1, "app1", &app1), (2, "app2", &app2), (3, "relay", &hop)],
    );
    let file = agent.file("bench-relay.yaml", &relay_policy());
    agent.ok(&["apply", "-f", &file]);
    println!("| policy | conns | rules | req/s | p50 µs | p99 µs | req/s vs L3/L4 | p50 added | p99 added |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for conns in [1, 64] {
        let mut base: Option<Row> = None;
        // (row, HTTP rules, through a relay: its port)
        for (name, rules, relay) in [
            ("L3/L4", 0, None),
            ("relay, tokio (no HTTP)", 0, Some(RELAY_PORTS[0])),
            ("relay, threads (no HTTP)", 0, Some(RELAY_PORTS[1])),
            ("L7 proxy", 1, None),
            ("L7 proxy", 1000, None),
        ] {
            let file = agent.file("bench.yaml", &policy(rules));
            agent.ok(&["apply", "-f", &file]);
            let path = format!("/api/v1/item{}/x", rules.max(1) - 1);
            let to = relay.map_or(dst, |port| SocketAddr::from((hop.addr, port)));
            let row = load(&app2.ns.path(), to, conns, &path, secs);
            let shown = if rules == 0 {
                "—".to_string()
            } else {
                rules.to_string()
            };
            let cmp = match &base {
                Some(b) => format!(
                    "{:.2} | {} µs | {} µs",
                    row.rps / b.rps,
                    row.p50.as_micros() as i128 - b.p50.as_micros() as i128,
                    row.p99.as_micros() as i128 - b.p99.as_micros() as i128
                ),
                None => "1.00 | | ".to_string(),
            };
            println!(
                "| {name} | {conns} | {shown} | {:.0} | {} | {} | {cmp} |",
                row.rps,
                row.p50.as_micros(),
                row.p99.as_micros()
            );
            if base.is_none() {
                base = Some(row);
            }
        }
    }
}
