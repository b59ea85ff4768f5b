//! 64 MiB bodies both ways through the proxy, with the process's peak memory checked: the proxy
//! streams bodies instead of buffering them. Alone in its test binary so the peak is its own.

mod common;

use common::*;
use l7proxy::ProxyConfig;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SIZE: u64 = 64 << 20;

/// Peak resident memory of this process, in bytes.
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

#[tokio::test]
async fn large_bodies_are_streamed_with_bounded_memory() {
    let backend = backend().await;
    let rules = "        - method: POST\n          path: \"/upload\"\n        - method: GET\n          path: \"/big/[0-9]+\"";
    let world = World::new(&ingress_policy(backend.port(), rules));
    let p = proxy(
        world.table(),
        world.identity("app2"),
        backend,
        ProxyConfig::default(),
    )
    .await;
    let before = peak_rss();

    // Upload: Content-Length framed, written 64 KiB at a time while the answer is awaited.
    let s = TcpStream::connect(p.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(
            format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let chunk = vec![b'u'; 65536];
        for _ in 0..SIZE / 65536 {
            wr.write_all(&chunk).await.unwrap();
        }
        wr
    });
    let mut wr = writer.await.unwrap();
    let mut head = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(&format!("POST /upload {SIZE}")) {
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&head[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));

    // Download on the same connection.
    wr.write_all(
        format!("GET /big/{SIZE} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    // The body plus the response head and chunk framing.
    assert!(total > SIZE && total < SIZE + 65536, "{total}");
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "peak memory grew by {grown} bytes for 2 × 64 MiB bodies"
    );
}
