//! The proxy on real sockets: a hyper backend on loopback, the proxy in front, real clients.

mod common;

use common::*;
use l7proxy::{EventKind, ProxyConfig, Verdict};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RULES: &str = r#"        - method: GET
          path: "/public"
        - method: POST
          path: "/upload"
        - method: GET
          path: "/h"
          headers: ["X-Token: yes"]
        - method: GET
          path: "/host"
          host: "allowed\\.example"
        - method: GET
          path: "/ws""#;

async fn setup(config: ProxyConfig) -> (World, Running) {
    let backend = backend().await;
    let world = World::new(&ingress_policy(backend.port(), RULES));
    let peer = world.identity("app2");
    let running = proxy(world.table(), peer, backend, config).await;
    (world, running)
}

fn statuses(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| String::from_utf8_lossy(&raw[i + 9..i + 12]).into_owned())
        .collect()
}

#[tokio::test]
async fn allowed_and_denied_by_method_path_host_header_on_one_connection() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let mut c = client(p.addr).await;
    let denied = (403, "text/plain".to_string(), "Access denied".to_string());
    assert_eq!(send(&mut c, "GET", "/private", &[]).await, denied);
    // The same keep-alive connection, after a deny.
    assert_eq!(send(&mut c, "GET", "/public", &[]).await.2, "GET /public");
    assert_eq!(send(&mut c, "POST", "/public", &[]).await, denied);
    assert_eq!(send(&mut c, "GET", "/public/x", &[]).await, denied);
    assert_eq!(send(&mut c, "GET", "/h", &[]).await, denied);
    assert_eq!(
        send(&mut c, "GET", "/h", &[("x-token", "no")]).await,
        denied
    );
    assert_eq!(
        send(&mut c, "GET", "/h", &[("X-Token", "yes")]).await.0,
        200
    );
    assert_eq!(send(&mut c, "GET", "/host", &[]).await, denied);
    let ok = send(&mut c, "GET", "/host", &[("host", "allowed.example")]).await;
    assert_eq!(ok.0, 200);
    assert_eq!(
        send(&mut c, "GET", "/host", &[("host", "allowedXexample")]).await,
        denied
    );
}

#[tokio::test]
async fn a_peer_not_allowed_at_l3_gets_403_for_everything() {
    let backend = backend().await;
    let world = World::new(&ingress_policy(backend.port(), RULES));
    let p = proxy(
        world.table(),
        world.identity("app3"),
        backend,
        ProxyConfig::default(),
    )
    .await;
    let mut c = client(p.addr).await;
    assert_eq!(send(&mut c, "GET", "/public", &[]).await.0, 403);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let req = b"GET /private HTTP/1.1\r\nHost: a\r\n\r\n\
                GET /public HTTP/1.1\r\nHost: a\r\n\r\n\
                POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
                GET /nope HTTP/1.1\r\nHost: a\r\n\r\n\
                GET /public HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let out = raw(p.addr, req, Duration::from_secs(5)).await;
    assert_eq!(statuses(&out), ["403", "200", "200", "403", "200"]);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("POST /upload 3"), "{text}");
}

#[tokio::test]
async fn chunked_upload_is_forwarded() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let req = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let out = raw(p.addr, req, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("POST /upload 11"), "{text}");
}

#[tokio::test]
async fn denied_upload_keeps_the_connection_usable() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let req = b"POST /elsewhere HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
                GET /public HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let out = raw(p.addr, req, Duration::from_secs(5)).await;
    assert_eq!(statuses(&out), ["403", "200"]);
}

#[tokio::test]
async fn header_section_over_64k_gets_431() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let mut req = b"GET /public HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 70 * 1024));
    req.extend(b"\r\n\r\n");
    let out = raw(p.addr, &req, Duration::from_secs(5)).await;
    assert_eq!(statuses(&out), ["431"]);
}

#[tokio::test]
async fn malformed_request_gets_400_and_close_with_an_event() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let mut events = p.events.subscribe(16);
    let out = raw(
        p.addr,
        b"GET /public HTTP/1.1\r\nHost a\r\n\r\nGET /public HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(statuses(&out), ["400"]);
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(e.kind, EventKind::BadRequest { .. }), "{e:?}");
}

#[tokio::test]
async fn trickled_headers_time_out() {
    let config = ProxyConfig {
        header_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (_w, p) = setup(config).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut closed = false;
    for b in b"GET /public HTTP/1.1\r\nHost: a\r\nX-Slow: 0123456789012345678901234567890123456789"
    {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Vec::new();
    if !closed {
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    }
    assert!(statuses(&out).iter().all(|s| s != "200"));
    // Two timeouts at most: the request line's first bytes, then the header section.
    assert!(
        start.elapsed() < Duration::from_millis(2000),
        "{:?}",
        start.elapsed()
    );
    // The connection is closed: nothing more is read.
    let mut rest = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut rest)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
}

#[tokio::test]
async fn non_http_bytes_are_closed_with_an_event() {
    let (w, p) = setup(ProxyConfig::default()).await;
    let mut events = p.events.subscribe(16);
    // A TLS ClientHello's first bytes.
    let out = raw(
        p.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.is_empty(), "{out:?}");
    let e = events.recv().await.unwrap();
    assert_eq!(e.kind, EventKind::NotHttp);
    // Named like a request's event, before any request was read.
    assert_eq!(e.endpoint_identity, w.identity("app1"));
    assert_eq!(e.peer_identity, w.identity("app2"));
}

#[tokio::test]
async fn a_policy_swap_applies_from_the_next_request_on_an_open_connection() {
    let (w, p) = setup(ProxyConfig::default()).await;
    let mut c = client(p.addr).await;
    assert_eq!(send(&mut c, "GET", "/private", &[]).await.0, 403);
    let wider = World::new(&ingress_policy(
        p.backend.port(),
        "        - method: GET\n          path: \"/p.*\"",
    ));
    p.table.store(wider.table());
    assert_eq!(send(&mut c, "GET", "/private", &[]).await.0, 200);
    p.table.store(w.table());
    assert_eq!(send(&mut c, "GET", "/private", &[]).await.0, 403);
    assert_eq!(send(&mut c, "GET", "/public", &[]).await.0, 200);
}

#[tokio::test]
async fn websocket_upgrade_is_judged_then_spliced() {
    let (_w, p) = setup(ProxyConfig::default()).await;
    let upgrade = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
    };
    let out = raw(
        p.addr,
        upgrade("/chat").as_bytes(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(statuses(&out), ["403"]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(upgrade("/ws").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert_eq!(statuses(&head), ["101"]);
    for msg in [&b"ping"[..], b"\x81\x05hello", b"not HTTP at all"] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_slot() {
    let config = ProxyConfig {
        max_connections: 2,
        ..ProxyConfig::default()
    };
    let (_w, p) = setup(config).await;
    let mut a = client(p.addr).await;
    let mut b = client(p.addr).await;
    assert_eq!(send(&mut a, "GET", "/public", &[]).await.0, 200);
    assert_eq!(send(&mut b, "GET", "/public", &[]).await.0, 200);
    assert_eq!(p.proxy.active_connections(), 2);
    let mut third = client(p.addr).await;
    let pending = tokio::spawn(async move { send(&mut third, "GET", "/public", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "served beyond the cap");
    drop(a);
    let served = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(served.0, 200);
}

#[tokio::test]
async fn each_request_gives_an_event() {
    let (w, p) = setup(ProxyConfig::default()).await;
    let mut events = p.events.subscribe(16);
    let mut c = client(p.addr).await;
    send(&mut c, "GET", "/private", &[("host", "10.0.0.11")]).await;
    send(&mut c, "GET", "/public", &[]).await;
    let denied = events.recv().await.unwrap();
    assert_eq!(denied.endpoint, 1);
    assert_eq!(denied.peer_identity, w.identity("app2"));
    assert_eq!(denied.endpoint_identity, w.identity("app1"));
    let EventKind::Request {
        method,
        url,
        verdict,
        status,
        ..
    } = denied.kind
    else {
        panic!("{denied:?}")
    };
    assert_eq!(
        (method.as_str(), url.as_str(), verdict, status),
        ("GET", "http://10.0.0.11/private", Verdict::Denied, 403)
    );
    let ok = events.recv().await.unwrap();
    assert!(
        matches!(
            ok.kind,
            EventKind::Request {
                verdict: Verdict::Forwarded,
                status: 200,
                ..
            }
        ),
        "{ok:?}"
    );
}

#[tokio::test]
async fn ipv6_original_destination() {
    let backend = backend_on("[::1]:0").await;
    let world = World::new(&ingress_policy(backend.port(), RULES));
    let p = proxy(
        world.table(),
        world.identity("app2"),
        backend,
        ProxyConfig::default(),
    )
    .await;
    let mut c = client(p.addr).await;
    assert_eq!(send(&mut c, "GET", "/public", &[]).await.2, "GET /public");
    assert_eq!(send(&mut c, "GET", "/private", &[]).await.0, 403);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_header_timeout() {
    let config = ProxyConfig {
        header_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (_w, p) = setup(config).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /public HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(statuses(&buf[..n]), ["200"]);
    // Idle: the slot is given back once the next request's header section does not come.
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(start.elapsed() >= Duration::from_millis(250));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(p.proxy.active_connections(), 0);
}
