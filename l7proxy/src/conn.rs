//! One client connection: sniffed, then served by hyper's HTTP/1.1 server (keep-alive,
//! pipelining answered in order, header limits and timeout); each request is judged against the
//! table current when its head arrives and either answered 403 or forwarded, bodies streamed
//! both ways, over one upstream connection kept alive for the client connection's lifetime.

use crate::event::{Event, EventKind, Outcome, Verdict};
use crate::matcher::RequestView;
use crate::proxy::{ConnInfo, Shared};
use crate::sniff::{sniff, Prefixed, Sniffed};
use crate::table::{Decision, Flow, PolicyTable, Resolved};
use crate::upstream::connect_http;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ir::Direction;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

type Body = Either<Incoming, Full<Bytes>>;

struct Conn {
    shared: Arc<Shared>,
    info: ConnInfo,
    /// The decision under the table it was resolved with.
    resolved: Mutex<Option<(Arc<PolicyTable>, Resolved)>>,
    /// The upstream connection, idle between requests.
    upstream: Mutex<Option<SendRequest<Incoming>>>,
    /// Held until the connection (or its upgraded stream) ends.
    _slot: Option<OwnedSemaphorePermit>,
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    info: ConnInfo,
    slot: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    let timeout = shared.config.header_timeout;
    shared.active.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        shared,
        info,
        resolved: Mutex::new(None),
        upstream: Mutex::new(None),
        _slot: slot,
    });
    let prefix = match tokio::time::timeout(timeout, sniff(&mut stream)).await {
        Ok(Ok(Sniffed::Http(prefix))) => prefix,
        Ok(Ok(Sniffed::NotHttp)) => {
            conn.shared.events.count(Outcome::NotHttp);
            return conn.event(|| EventKind::NotHttp);
        }
        Ok(Ok(Sniffed::Eof)) | Ok(Err(_)) => return,
        Err(_) => {
            conn.shared.events.count(Outcome::BadRequest);
            return conn.event(|| EventKind::BadRequest {
                reason: "header timeout".into(),
            });
        }
    };
    let io = TokioIo::new(Prefixed::new(prefix, stream));
    let c = conn.clone();
    let svc = hyper::service::service_fn(move |req| {
        let c = c.clone();
        async move { Ok::<_, Infallible>(c.request(req).await) }
    });
    let config = &conn.shared.config;
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .serve_connection(io, svc)
        .with_upgrades()
        .await;
    if let Err(e) = result {
        if e.is_parse() || e.is_parse_too_large() || e.is_timeout() {
            conn.shared.events.count(Outcome::BadRequest);
            conn.event(|| EventKind::BadRequest {
                reason: e.to_string(),
            });
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conn {
    /// Sends the event `kind` builds, if someone listens (nothing is built otherwise).
    fn event(&self, kind: impl FnOnce() -> EventKind) {
        self.shared.events.emit(|| Event {
            endpoint: self.info.endpoint,
            endpoint_identity: self.decision().endpoint_identity,
            direction: self.info.direction,
            peer_identity: self.info.peer_identity,
            client: self.info.client,
            original_dst: self.info.original_dst,
            kind: kind(),
        });
    }

    /// The decision under the current table (re-resolved only when the table changed).
    fn decision(&self) -> Resolved {
        let table = self.shared.table.load();
        let mut cached = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, r)) = cached.as_ref() {
            if Arc::ptr_eq(t, &table) {
                return r.clone();
            }
        }
        let i = &self.info;
        let (peer_addr, port) = match i.direction {
            Direction::Ingress => (i.client.ip(), i.original_dst.port()),
            Direction::Egress => (i.original_dst.ip(), i.original_dst.port()),
        };
        let r = table.resolve(&Flow {
            endpoint: i.endpoint,
            direction: i.direction,
            peer: i.peer_identity,
            peer_addr: Some(peer_addr),
            protocol: crate::table::TCP,
            port,
        });
        *cached = Some((table, r.clone()));
        r
    }

    async fn request(self: &Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let host = req
            .headers()
            .get(HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        let path = req
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .to_string();
        // The verdict and the rules behind it: the HTTP rule that allowed the request, or those
        // of the key it failed.
        let (allowed, rules) = match self.decision().decision {
            Decision::AllowAll => (true, Vec::new()),
            Decision::DenyAll(_) | Decision::Dns(_) => (false, Vec::new()),
            Decision::Rules(m) => {
                let view = RequestView {
                    method: req.method().as_str(),
                    path: &path,
                    host: &host,
                    headers: req.headers(),
                };
                match m.first_match(&view) {
                    Some(id) => (true, vec![id]),
                    None if m.allows(&view) => (true, Vec::new()),
                    None => (false, m.rule_ids()),
                }
            }
        };
        let method = req.method().clone();
        let record = |verdict: Verdict, status: StatusCode| {
            self.shared.events.count(verdict.into());
            self.event(|| EventKind::Request {
                url: format!(
                    "http://{}{path}",
                    if host.is_empty() {
                        self.info.original_dst.to_string()
                    } else {
                        host.clone()
                    }
                ),
                method: method.to_string(),
                host: host.clone(),
                verdict,
                status: status.as_u16(),
                latency: start.elapsed(),
                rules: rules.clone(),
            })
        };
        if !allowed {
            let mut resp = text(StatusCode::FORBIDDEN, "Access denied");
            if !self.discard(req.into_body()).await {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            record(Verdict::Denied, StatusCode::FORBIDDEN);
            return resp;
        }
        let upgrade = req
            .headers()
            .contains_key(UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        let mut sender = match self.sender().await {
            Ok(s) => s,
            Err(_) => {
                record(Verdict::Error, StatusCode::SERVICE_UNAVAILABLE);
                return text(StatusCode::SERVICE_UNAVAILABLE, "upstream connect error");
            }
        };
        match sender.send_request(req).await {
            Ok(mut resp) => {
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    // The upstream connection becomes the upgraded stream.
                    if let Some(down) = upgrade {
                        let up = hyper::upgrade::on(&mut resp);
                        let keep = self.clone();
                        tokio::spawn(async move {
                            let _conn = keep;
                            if let (Ok(a), Ok(b)) = (down.await, up.await) {
                                let _ = tokio::io::copy_bidirectional(
                                    &mut TokioIo::new(a),
                                    &mut TokioIo::new(b),
                                )
                                .await;
                            }
                        });
                    }
                } else {
                    *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
                }
                record(Verdict::Forwarded, resp.status());
                resp.map(Either::Left)
            }
            Err(_) => {
                record(Verdict::Error, StatusCode::BAD_GATEWAY);
                let mut resp = text(StatusCode::BAD_GATEWAY, "upstream error");
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                resp
            }
        }
    }

    /// The idle upstream connection, or a new one.
    async fn sender(&self) -> Result<SendRequest<Incoming>, crate::upstream::UpstreamError> {
        let idle = self
            .upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut s) = idle {
            // Waits for the previous response body to finish on the upstream connection.
            if s.ready().await.is_ok() {
                return Ok(s);
            }
        }
        let config = &self.shared.config;
        // The client's address with a port of the kernel's choosing: the upstream connection
        // must not have the redirected connection's 4-tuple, which the endpoint's connection
        // tracking already holds as redirected (the upstream one is tracked as the proxy's).
        let source = config
            .transparent_source
            .then_some(std::net::SocketAddr::new(self.info.client.ip(), 0));
        let mark = config.upstream_marks.map(|m| m.of(self.info.direction));
        connect_http(self.info.original_dst, source, mark, config.connect_timeout).await
    }

    /// Reads and drops a denied request's body; false when it is longer than allowed or does not
    /// arrive within the header timeout (the connection is then closed after the answer).
    async fn discard(&self, mut body: Incoming) -> bool {
        let limit = self.shared.config.max_discard_bytes;
        let mut seen = 0u64;
        let deadline = self.shared.config.header_timeout;
        let drain = async {
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return false };
                if let Some(d) = frame.data_ref() {
                    seen += d.len() as u64;
                    if seen > limit {
                        return false;
                    }
                }
            }
            true
        };
        tokio::time::timeout(deadline, drain).await.unwrap_or(false)
    }
}
