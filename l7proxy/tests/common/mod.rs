//! Test harness: a policy world from YAML, a real HTTP backend (hyper server on loopback), the
//! proxy in front of it, and raw/hyper clients.
#![allow(dead_code)]

use bytes::Bytes;
use compiler::cluster::ClusterConfig;
use compiler::policy::PolicyEngine;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ir::{Direction, NumericIdentity};
use l7proxy::{ConnInfo, Events, Limits, PolicyTable, Proxy, ProxyConfig, SharedTable};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: app1, namespace: default, labels: {id: app1}}
status: {podIP: 10.0.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: app2, namespace: default, labels: {id: app2}}
status: {podIP: 10.0.0.12}
---
apiVersion: v1
kind: Pod
metadata: {name: app3, namespace: default, labels: {id: app3}}
status: {podIP: 10.0.0.13}
"#;

/// An ingress CNP on app1 from app2 to `port` with these `http` rules (YAML list items).
pub fn ingress_policy(port: u16, http: &str) -> String {
    format!(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: rule1, namespace: default}}
spec:
  endpointSelector: {{matchLabels: {{id: app1}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{id: app2}}}}]
    toPorts:
    - ports: [{{port: "{port}", protocol: TCP}}]
      rules:
        http:
{http}
"#
    )
}

/// The policy world: files in a temporary directory, loaded as the CLI does.
pub struct World {
    pub dir: tempfile::TempDir,
    pub engine: PolicyEngine,
}

impl World {
    pub fn new(policy: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods.yaml");
        std::fs::write(&pods, PODS).unwrap();
        let pol = dir.path().join("policy.yaml");
        std::fs::write(&pol, policy).unwrap();
        let paths: Vec<PathBuf> = vec![pods, pol];
        let (policy, cluster) =
            compiler::cluster::load(&paths, ClusterConfig::default()).expect("policy loads");
        World {
            dir,
            engine: PolicyEngine::new(policy, cluster),
        }
    }

    pub fn identity(&self, pod: &str) -> NumericIdentity {
        self.engine
            .cluster
            .endpoint(&format!("default/{pod}"))
            .unwrap()
            .identity
    }

    /// app1 is endpoint 1, app2 endpoint 2, app3 endpoint 3.
    pub fn table(&self) -> PolicyTable {
        let endpoints = [
            (1, "default/app1"),
            (2, "default/app2"),
            (3, "default/app3"),
        ];
        PolicyTable::build(&self.engine, &endpoints, &Limits::default()).unwrap()
    }
}

/// A backend: `GET` answers `METHOD PATH`; a body is streamed and answered with its length;
/// `Upgrade` gets 101 and the upgraded stream echoes.
pub async fn backend() -> SocketAddr {
    backend_on("127.0.0.1:0").await
}

/// [`backend`] listening on `addr`.
pub async fn backend_on(addr: &str) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(backend_request);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// A streamed body of `left` bytes, produced 64 KiB at a time.
pub struct Zeros {
    pub left: u64,
}

impl hyper::body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 65536] = [b'z'; 65536];
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len() as u64);
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            &CHUNK[..n as usize],
        )))))
    }
}

type BackendBody = http_body_util::Either<Full<Bytes>, Zeros>;

async fn backend_request(mut req: Request<Incoming>) -> Result<Response<BackendBody>, Infallible> {
    if let Some(n) = req.uri().path().strip_prefix("/big/") {
        let left = n.parse().unwrap_or(0);
        return Ok(Response::new(http_body_util::Either::Right(Zeros { left })));
    }
    if req.headers().contains_key(hyper::header::UPGRADE) {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert(hyper::header::UPGRADE, "websocket".parse().unwrap());
        r.headers_mut()
            .insert(hyper::header::CONNECTION, "Upgrade".parse().unwrap());
        return Ok(r);
    }
    let head = format!("{} {}", req.method(), req.uri());
    let mut body = req.into_body();
    let mut n = 0u64;
    while let Some(Ok(f)) = body.frame().await {
        if let Some(d) = f.data_ref() {
            n += d.len() as u64;
        }
    }
    let text = if n > 0 { format!("{head} {n}") } else { head };
    Ok(Response::new(http_body_util::Either::Left(Full::new(
        Bytes::from(text),
    ))))
}

/// The proxy on loopback in front of `backend`, every connection classified as app2 → app1
/// ingress.
pub struct Running {
    pub addr: SocketAddr,
    pub backend: SocketAddr,
    pub table: SharedTable,
    pub events: Events,
    pub proxy: Proxy,
}

pub async fn proxy(
    table: PolicyTable,
    peer: NumericIdentity,
    backend: SocketAddr,
    config: ProxyConfig,
) -> Running {
    proxy_as(table, (1, Direction::Ingress, peer), backend, config).await
}

/// The proxy on loopback in front of `backend`, every connection classified as `side`
/// (endpoint id, direction, peer identity).
pub async fn proxy_as(
    table: PolicyTable,
    side: (u16, Direction, NumericIdentity),
    backend: SocketAddr,
    config: ProxyConfig,
) -> Running {
    let (endpoint, direction, peer) = side;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let table = SharedTable::new(table);
    let events = Events::default();
    let proxy = Proxy::new(config, table.clone(), events.clone()).unwrap();
    let p = proxy.clone();
    tokio::spawn(async move {
        p.serve(listener, move |_s, client| {
            Some(ConnInfo {
                client,
                original_dst: backend,
                endpoint,
                direction,
                peer_identity: peer,
            })
        })
        .await
    });
    Running {
        addr,
        backend,
        table,
        events,
        proxy,
    }
}

/// A keep-alive hyper client connection.
pub async fn client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends one request on `sender`; returns status, content-type and body.
pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        b = b.header("host", "app1");
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let req = b.body(Full::new(Bytes::new())).unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

/// Writes `bytes` on a new raw connection and reads until the proxy closes it (or `limit`).
pub async fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The proxy may close before reading everything (e.g. a header section too large).
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    out
}
