//! The proxy's listeners and their supervisor, on a thread and tokio runtime of their own
//! ([`Supervisor::spawn_thread`]). One transparent
//! listener per HTTP proxy port and family (`127.0.0.1` and `[::1]`, ports 10080 ingress and
//! 10081 egress), and one transparent UDP socket and one transparent TCP listener (DNS over
//! TCP) per DNS proxy port and family (10053 ingress, 10054 egress); each accepted connection
//! and each query is classified from the addresses of the last committed state. When a
//! listener dies (its accept loop fails, its task panics, or [`Supervisor::crash`] stops it),
//! every listener is closed, a line is logged and all of them are bound again after
//! [`RESTART_DELAY`]; meanwhile the datapath drops redirected flows with reason 178 (fail
//! closed). Connections already accepted are served on until they end.

use super::{Addresses, L7Shared, DNS_PORTS, HTTP_PORTS};
use arc_swap::ArcSwap;
use l7proxy::dns::learn::Learn;
use l7proxy::dns::proxy::{DnsConfig, DnsProxy};
use l7proxy::dns::udp::udp_listener;
use l7proxy::listen::{transparent_listener, ListenError};
use l7proxy::ConnInfo;
use l7proxy::{Marks, Proxy, ProxyConfig, ProxyError};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::{JoinError, JoinSet};

/// How long the proxy stays down after a listener died before it is bound again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// How long [`Supervisor::crash`] waits for the listeners to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The running proxy's supervisor.
pub struct Supervisor {
    crash: Arc<Notify>,
    up: watch::Receiver<bool>,
}

/// The proxy configuration the datapath redirect needs: the server sees the client's address,
/// and upstream connections carry the marks that keep them from being redirected again.
pub fn proxy_config() -> ProxyConfig {
    ProxyConfig {
        transparent_source: true,
        upstream_marks: Some(marks(&HTTP_PORTS)),
        ..ProxyConfig::default()
    }
}

/// The marks of `ports` (port, direction, mark) by direction.
fn marks(ports: &[(u16, ir::Direction, u32)]) -> Marks {
    let mark = |d| ports.iter().find(|p| p.1 == d).map_or(0, |p| p.2);
    Marks {
        ingress: mark(ir::Direction::Ingress),
        egress: mark(ir::Direction::Egress),
    }
}

/// The DNS proxy's configuration: queries go to the server from the client's address, marked
/// like the HTTP proxy's upstream connections.
pub fn dns_config() -> DnsConfig {
    DnsConfig {
        transparent_source: true,
        marks: Some(marks(&DNS_PORTS)),
        ..DnsConfig::default()
    }
}

/// Why the proxies did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the proxy's thread or runtime: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("the proxy's thread ended while starting")]
    Ended,
}

/// Both proxies, started together.
#[derive(Clone)]
struct Proxies {
    http: Proxy,
    dns: DnsProxy,
}

impl Supervisor {
    /// Starts the proxies (HTTP and DNS) on the current tokio runtime; `learn` gets the
    /// addresses of every allowed DNS answer before it is relayed (`toFQDNs`).
    pub fn spawn(shared: L7Shared, learn: Option<Learn>) -> Result<Supervisor, ProxyError> {
        let (table, events) = (shared.table.clone(), shared.events.clone());
        let http = Proxy::counting(proxy_config(), table, events, shared.proxied.clone())?;
        let (table, events, open) = (
            shared.table.clone(),
            shared.events.clone(),
            shared.proxied.clone(),
        );
        let dns = DnsProxy::counting(dns_config(), table, events, learn, open)?;
        let crash = Arc::new(Notify::new());
        let (up_tx, up) = watch::channel(false);
        tokio::spawn(supervise(
            Proxies { http, dns },
            shared,
            crash.clone(),
            up_tx,
        ));
        Ok(Supervisor { crash, up })
    }

    /// Starts the proxies ([`Supervisor::spawn`]) on a thread of their own, `l7-proxy`, with a
    /// single-threaded tokio runtime that lives as long as the process. Every connection's
    /// tasks (the client's, its upstream connection's, the DNS queries') then run on one
    /// thread, so none is ever woken from another worker, and the proxies do not share workers
    /// with the API. On the 2-vCPU benchmark machine the agent's two workers served 10–30 %
    /// fewer proxied requests than one thread at 64 connections, with a higher p99
    /// (Documentation/performance.md, "L7 proxy"): a wakeup across workers is a futex wake and
    /// an inter-processor interrupt, which a virtual CPU pays with an exit.
    pub fn spawn_thread(shared: L7Shared, learn: Option<Learn>) -> Result<Supervisor, StartError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("l7-proxy".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(StartError::Thread(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = Supervisor::spawn(shared, learn).map_err(StartError::from);
                    let ok = started.is_ok();
                    let _ = tx.send(started);
                    if ok {
                        std::future::pending::<()>().await;
                    }
                });
            })
            .map_err(StartError::Thread)?;
        rx.recv().map_err(|_| StartError::Ended)?
    }

    /// Whether the listeners are bound.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Stops the listeners as if they had died (fault injection for tests and drills) and
    /// returns once they are closed; the supervisor restarts them after [`RESTART_DELAY`].
    pub async fn crash(&self) -> bool {
        let mut up = self.up.clone();
        self.crash.notify_waiters();
        tokio::time::timeout(CLOSE_WAIT, up.wait_for(|up| !*up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the listeners are bound (or `limit` passed); whether they are.
    pub async fn wait_up(&self, limit: Duration) -> bool {
        let mut up = self.up.clone();
        tokio::time::timeout(limit, up.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Why a listener stopped.
fn ended(r: Result<Result<(), String>, JoinError>) -> String {
    match r {
        Ok(Ok(())) => "its accept loop ended".into(),
        Ok(Err(e)) => e,
        Err(e) if e.is_panic() => "it panicked".into(),
        Err(e) => e.to_string(),
    }
}

const STOPPED: &str = "stopped by request (fault injection)";

/// How a TCP listener of `direction` classifies an accepted connection: its local address is
/// the original destination (transparent socket).
fn tcp_classifier(
    addresses: Arc<ArcSwap<Addresses>>,
    direction: ir::Direction,
) -> impl Fn(&TcpStream, SocketAddr) -> Option<ConnInfo> {
    move |s, client| {
        let original_dst = s.local_addr().ok()?;
        Some(addresses.load().classify(direction, client, original_dst))
    }
}

/// Spawns a listener's loop into `set`, stopped by `crash`.
fn spawn_listener<F>(set: &mut JoinSet<Result<(), String>>, crash: &Arc<Notify>, serve: F)
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let crash = crash.clone();
    set.spawn(async move {
        tokio::select! {
            r = serve => r,
            _ = crash.notified() => Err(STOPPED.into()),
        }
    });
}

/// Binds every listener and spawns its loop into `set`; the first bind error, if any.
fn bind_all(
    proxies: &Proxies,
    shared: &L7Shared,
    crash: &Arc<Notify>,
    set: &mut JoinSet<Result<(), String>>,
) -> Result<(), ListenError> {
    let mut bound = Ok(());
    for (port, direction, mark) in HTTP_PORTS {
        for v6 in [false, true] {
            match transparent_listener(v6, port, mark) {
                Ok(listener) => {
                    let (proxy, addresses) = (proxies.http.clone(), shared.addresses.clone());
                    spawn_listener(set, crash, async move {
                        let classify = tcp_classifier(addresses, direction);
                        proxy
                            .serve(listener, classify)
                            .await
                            .map_err(|e| e.to_string())
                    });
                }
                Err(e) => bound = Err(e),
            }
        }
    }
    for (port, direction, mark) in DNS_PORTS {
        for v6 in [false, true] {
            match udp_listener(v6, port, mark) {
                Ok(socket) => {
                    let (proxy, addresses) = (proxies.dns.clone(), shared.addresses.clone());
                    spawn_listener(set, crash, async move {
                        let classify = move |client, original_dst| {
                            addresses.load().classify(direction, client, original_dst)
                        };
                        proxy
                            .serve(socket, classify)
                            .await
                            .map_err(|e| e.to_string())
                    });
                }
                Err(e) => bound = Err(e),
            }
            match transparent_listener(v6, port, mark) {
                Ok(listener) => {
                    let (proxy, addresses) = (proxies.dns.clone(), shared.addresses.clone());
                    spawn_listener(set, crash, async move {
                        let classify = tcp_classifier(addresses, direction);
                        let served = proxy.serve_tcp(listener, classify).await;
                        served.map_err(|e| e.to_string())
                    });
                }
                Err(e) => bound = Err(e),
            }
        }
    }
    bound
}

async fn supervise(
    proxies: Proxies,
    shared: L7Shared,
    crash: Arc<Notify>,
    up: watch::Sender<bool>,
) {
    loop {
        let mut set = JoinSet::new();
        let bound = bind_all(&proxies, &shared, &crash, &mut set).map_err(|e| e.to_string());
        let why = match bound {
            Err(e) => e,
            Ok(()) => {
                let _ = up.send(true);
                tracing::info!(
                    http = ?HTTP_PORTS.map(|p| p.0),
                    dns = ?DNS_PORTS.map(|p| p.0),
                    "L7 proxy listening"
                );
                match set.join_next().await {
                    Some(r) => ended(r),
                    None => "no listener".into(),
                }
            }
        };
        // All or none: the others are closed before the restart.
        set.abort_all();
        while set.join_next().await.is_some() {}
        let _ = up.send(false);
        tracing::error!(
            reason = %why,
            "the L7 proxy's listener died; redirected connections are dropped (reason 178) until it is restarted in {RESTART_DELAY:?}"
        );
        tokio::time::sleep(RESTART_DELAY).await;
    }
}
