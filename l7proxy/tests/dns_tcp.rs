//! DNS over TCP through the DNS proxy (Documentation/l7.md, "DNS"): a real TCP DNS server on
//! loopback, the proxy's TCP listener in front of it classifying every connection as app2's
//! egress to app1, whose policy allows `*.allowed.test`. Allowed queries are answered by the
//! server, others `REFUSED`, on one connection, pipelined queries in order; a server that does
//! not answer gives `SERVFAIL` and the connection goes on; malformed, over-long and idle
//! connections are closed, with an event where there is a query to speak of.

mod common;

use common::World;
use ir::{Direction, NumericIdentity};
use l7proxy::dns::proxy::{DnsConfig, DnsProxy};
use l7proxy::{format_event, ConnInfo, Event, EventKind, Events, Names, SharedTable, Verdict};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Receiver;

const T: Duration = Duration::from_secs(5);

fn policy(port: u16) -> String {
    format!(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: dns, namespace: default}}
spec:
  endpointSelector: {{matchLabels: {{id: app2}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{id: app1}}}}]
    toPorts:
    - ports: [{{port: "{port}", protocol: TCP}}]
      rules:
        dns: [{{matchPattern: "*.allowed.test"}}]
"#
    )
}

/// A query for `name` (type A) with id `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// The server's answer to `q`: 10.0.0.11 for the question's name, TTL 30.
fn answer(q: &[u8]) -> Vec<u8> {
    let mut m = q.to_vec();
    m[2] = 0x81;
    m[3] = 0x80;
    m[6..8].copy_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 11]);
    m
}

async fn read(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut m).await.ok()?;
    Some(m)
}

async fn write(s: &mut TcpStream, m: &[u8]) {
    let mut out = (m.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(m);
    s.write_all(&out).await.unwrap();
}

/// A DNS server over TCP: answers every query, but none whose name starts with `slow`.
async fn server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                while let Some(q) = read(&mut s).await {
                    if q.get(13..17) != Some(b"slow") {
                        write(&mut s, &answer(&q)).await;
                    }
                }
            });
        }
    });
    addr
}

struct Running {
    proxy: SocketAddr,
    events: Receiver<Event>,
    world: World,
    /// Client connections being served.
    open: Arc<AtomicUsize>,
}

async fn start(config: DnsConfig) -> Running {
    let dns = server().await;
    let world = World::new(&policy(dns.port()));
    let (table, events) = (SharedTable::new(world.table()), Events::default());
    let subscribed = events.subscribe(64);
    let open = Arc::new(AtomicUsize::new(0));
    let proxy = DnsProxy::counting(config, table, events, None, open.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = world.identity("app1");
    tokio::spawn(async move {
        proxy
            .serve_tcp(listener, move |_s, client| {
                Some(ConnInfo {
                    client,
                    original_dst: dns,
                    endpoint: 2,
                    direction: Direction::Egress,
                    peer_identity: peer,
                })
            })
            .await
    });
    Running {
        proxy: addr,
        events: subscribed,
        world,
        open,
    }
}

async fn next_event(r: &mut Running) -> Event {
    tokio::time::timeout(T, r.events.recv())
        .await
        .expect("an event")
        .unwrap()
}

fn rcode(m: &[u8]) -> u8 {
    m[3] & 0x0F
}

/// Whether the proxy closed the connection (a read ends) within `limit`.
async fn closed(s: &mut TcpStream, limit: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

struct NoNames;
impl Names for NoNames {
    fn labels_of(&self, _: NumericIdentity) -> String {
        String::new()
    }
    fn endpoint_of(&self, _: NumericIdentity) -> u16 {
        0
    }
}

#[tokio::test]
async fn allowed_names_are_answered_others_refused_in_order_on_one_connection() {
    let mut r = start(DnsConfig::default()).await;
    let mut c = TcpStream::connect(r.proxy).await.unwrap();
    write(&mut c, &query(1, "www.allowed.test")).await;
    let a = read(&mut c).await.unwrap();
    assert_eq!(a, answer(&query(1, "www.allowed.test")), "relayed as sent");
    write(&mut c, &query(2, "blocked.test")).await;
    let refused = read(&mut c).await.unwrap();
    assert_eq!((&refused[..2], rcode(&refused)), (&[0u8, 2][..], 5));

    // Pipelined: both queries sent before either answer; answered in order.
    let mut both = Vec::new();
    for q in [query(3, "blocked.test"), query(4, "api.allowed.test")] {
        both.extend_from_slice(&(q.len() as u16).to_be_bytes());
        both.extend_from_slice(&q);
    }
    c.write_all(&both).await.unwrap();
    let (first, second) = (read(&mut c).await.unwrap(), read(&mut c).await.unwrap());
    assert_eq!((&first[..2], rcode(&first)), (&[0u8, 3][..], 5));
    assert_eq!((&second[..2], rcode(&second)), (&[0u8, 4][..], 0));

    for (name, verdict, code) in [
        ("www.allowed.test.", Verdict::Forwarded, 0),
        ("blocked.test.", Verdict::Denied, 5),
        ("blocked.test.", Verdict::Denied, 5),
        ("api.allowed.test.", Verdict::Forwarded, 0),
    ] {
        let e = next_event(&mut r).await;
        let EventKind::Dns {
            name: n,
            verdict: v,
            rcode,
            ..
        } = &e.kind
        else {
            panic!("{e:?}");
        };
        assert_eq!((n.as_str(), *v, *rcode), (name, verdict, Some(code)));
        assert_eq!(e.peer_identity, r.world.identity("app1"));
    }
}

#[tokio::test]
async fn a_server_that_does_not_answer_gives_servfail_and_the_connection_goes_on() {
    let config = DnsConfig {
        query_timeout: Duration::from_millis(300),
        ..DnsConfig::default()
    };
    let mut r = start(config).await;
    let mut c = TcpStream::connect(r.proxy).await.unwrap();
    write(&mut c, &query(7, "slow.allowed.test")).await;
    let failed = read(&mut c).await.unwrap();
    assert_eq!((&failed[..2], rcode(&failed)), (&[0u8, 7][..], 2));
    write(&mut c, &query(8, "www.allowed.test")).await;
    assert_eq!(
        read(&mut c).await.unwrap(),
        answer(&query(8, "www.allowed.test"))
    );
    let e = next_event(&mut r).await;
    assert!(
        matches!(
            e.kind,
            EventKind::Dns {
                verdict: Verdict::Error,
                rcode: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn malformed_over_long_and_idle_connections_are_closed() {
    let config = DnsConfig {
        tcp_idle_timeout: Duration::from_millis(300),
        ..DnsConfig::default()
    };
    let mut r = start(config).await;

    // Not a query: closed, and an event naming the transport.
    let mut c = TcpStream::connect(r.proxy).await.unwrap();
    write(&mut c, &[0x12, 0x34, 0x81]).await;
    assert!(closed(&mut c, T).await, "closed after a malformed query");
    let e = next_event(&mut r).await;
    assert!(
        matches!(e.kind, EventKind::BadDns { protocol: 6, .. }),
        "{e:?}"
    );
    let line = format_event(&e, &NoNames);
    assert!(line.starts_with("xx drop (Bad DNS message: "), "{line}");
    assert!(line.ends_with(" tcp"), "{line}");

    // A length past the bound: not read, closed.
    let mut c = TcpStream::connect(r.proxy).await.unwrap();
    c.write_all(&[0x13, 0x88]).await.unwrap(); // 5,000 bytes announced
    assert!(closed(&mut c, T).await, "closed after an over-long length");
    let e = next_event(&mut r).await;
    assert!(
        matches!(&e.kind, EventKind::BadDns { reason, .. } if reason.contains("longer than")),
        "{e:?}"
    );

    // Silence past the idle time, also after an answer; counted while it is served.
    let mut c = TcpStream::connect(r.proxy).await.unwrap();
    write(&mut c, &query(9, "www.allowed.test")).await;
    assert!(read(&mut c).await.is_some());
    assert_eq!(settled(&r.open, 1).await, 1, "one connection served");
    assert!(closed(&mut c, T).await, "closed when idle");
    assert_eq!(settled(&r.open, 0).await, 0, "none once it is closed");
}

/// The count once it is `want` (a closed connection's task ends just after the client sees
/// the close), or what it is after [`T`].
async fn settled(open: &AtomicUsize, want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + T;
    while open.load(Ordering::Relaxed) != want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    open.load(Ordering::Relaxed)
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_slot() {
    let config = DnsConfig {
        max_tcp_connections: 1,
        ..DnsConfig::default()
    };
    let r = start(config).await;
    let mut first = TcpStream::connect(r.proxy).await.unwrap();
    write(&mut first, &query(1, "www.allowed.test")).await;
    assert!(read(&mut first).await.is_some());
    let mut second = TcpStream::connect(r.proxy).await.unwrap();
    write(&mut second, &query(2, "www.allowed.test")).await;
    let waiting = tokio::time::timeout(Duration::from_millis(300), read(&mut second)).await;
    assert!(
        waiting.is_err(),
        "not served while the first holds the slot"
    );
    drop(first);
    let served = tokio::time::timeout(T, read(&mut second)).await.unwrap();
    assert_eq!(served, Some(answer(&query(2, "www.allowed.test"))));
}
