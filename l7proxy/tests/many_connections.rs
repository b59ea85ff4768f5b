//! 10,000 concurrent clients against a proxy capped at 64 connections: every client is
//! served in the end, never more than 64 at once, and the process's peak memory stays bounded
//! (the waiting clients sit in the kernel's listen backlog). Alone in its test binary so the
//! peak is its own.

mod common;

use common::*;
use ir::Direction;
use l7proxy::{ConnInfo, Events, Proxy, ProxyConfig, SharedTable};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;

const CLIENTS: usize = 10_000;
const CAP: usize = 64;

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_queue_with_bounded_memory() {
    let backend = backend().await;
    let world = World::new(&ingress_policy(backend.port(), "        - method: GET"));
    let peer = world.identity("app2");
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ProxyConfig {
        max_connections: CAP,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::new(config, SharedTable::new(world.table()), Events::default()).unwrap();
    let p = proxy.clone();
    tokio::spawn(async move {
        p.serve(listener, move |_s, client| {
            Some(ConnInfo {
                client,
                original_dst: backend,
                endpoint: 1,
                direction: Direction::Ingress,
                peer_identity: peer,
            })
        })
        .await
    });
    let before = peak_rss();
    let most = Arc::new(AtomicUsize::new(0));
    let watch = {
        let (proxy, most) = (proxy.clone(), most.clone());
        tokio::spawn(async move {
            loop {
                most.fetch_max(proxy.active_connections(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(async move {
                let out = raw(
                    addr,
                    b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    Duration::from_secs(60),
                )
                .await;
                out.starts_with(b"HTTP/1.1 200")
            })
        })
        .collect();
    let mut ok = 0;
    for c in clients {
        ok += usize::from(c.await.unwrap());
    }
    watch.abort();
    assert_eq!(ok, CLIENTS);
    let most = most.load(Ordering::Relaxed);
    assert!(most <= CAP, "{most} connections served at once");
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak memory grew by {grown} bytes");
}
