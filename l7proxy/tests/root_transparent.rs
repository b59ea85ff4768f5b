//! `transparent_source`: the upstream connection leaves from the client's own address, so the
//! server sees the client and not the proxy. Needs root (a network namespace, IP_TRANSPARENT).
//! The client address 192.0.2.7 is not local in the namespace; a policy route sends replies to
//! it back into the stack, where they reach the proxy's transparent socket.

mod common;

use common::*;
use ir::Direction;
use l7proxy::{ConnInfo, Events, Proxy, ProxyConfig, SharedTable};
use runtime_loader::testkit::{require_root, Netns};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server answering each connection with the address it was accepted from.
async fn who_am_i() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = peer.to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

async fn through_proxy(transparent: bool) -> (u16, String) {
    let server = who_am_i().await;
    let world = World::new(&ingress_policy(
        server.port(),
        "        - method: GET\n          path: \"/whoami\"",
    ));
    let peer = world.identity("app2");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ProxyConfig {
        transparent_source: transparent,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::new(config, SharedTable::new(world.table()), Events::default()).unwrap();
    tokio::spawn(async move {
        proxy
            .serve(listener, move |_s, _client| {
                // What the datapath redirect reports: the pod's address, not loopback.
                Some(ConnInfo {
                    client: "192.0.2.7:40007".parse().unwrap(),
                    original_dst: server,
                    endpoint: 1,
                    direction: Direction::Ingress,
                    peer_identity: peer,
                })
            })
            .await
    });
    let mut c = client(addr).await;
    let (status, _, body) = send(&mut c, "GET", "/whoami", &[]).await;
    (status, body)
}

#[test]
fn root_upstream_leaves_from_the_client_address() {
    if !require_root("root_upstream_leaves_from_the_client_address") {
        return;
    }
    let ns = Netns::new("l7t");
    ns.exec(&[
        "ip",
        "route",
        "add",
        "local",
        "192.0.2.0/24",
        "dev",
        "lo",
        "table",
        "100",
    ]);
    ns.exec(&["ip", "rule", "add", "to", "192.0.2.0/24", "lookup", "100"]);
    let (plain, transparent) = ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { (through_proxy(false).await, through_proxy(true).await) })
    });
    // Without the option the server sees the proxy (loopback); with it, the client.
    assert_eq!(plain.0, 200);
    assert!(plain.1.starts_with("127.0.0.1:"), "{plain:?}");
    // The client's address, from another port (the redirected connection keeps its 4-tuple).
    assert_eq!(transparent.0, 200);
    assert!(transparent.1.starts_with("192.0.2.7:"), "{transparent:?}");
    assert_ne!(transparent.1, "192.0.2.7:40007", "{transparent:?}");
}
