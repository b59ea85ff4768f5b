//! The proxy: configuration, the accept loop with its connection cap, and what the caller tells
//! it about each accepted connection.

use crate::conn;
use crate::event::Events;
use crate::table::SharedTable;
use ir::{Direction, NumericIdentity};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Time allowed to receive a request's header section (the first one included; an idle
    /// keep-alive connection is closed after it), and a denied request's body.
    pub header_timeout: Duration,
    /// Largest header section accepted; larger ones are answered 431.
    pub max_header_bytes: usize,
    /// Connections served at once; the accept loop waits for a free slot beyond that.
    pub max_connections: usize,
    /// Time allowed to connect to the original destination.
    pub connect_timeout: Duration,
    /// Connect to the original destination from the client's address (`IP_TRANSPARENT`).
    pub transparent_source: bool,
    /// `SO_MARK` of upstream connections by the direction of the redirect (the datapath's
    /// `MARK_MAGIC_PROXY_INGRESS`/`_EGRESS`: not redirected again); none: unmarked.
    pub upstream_marks: Option<Marks>,
    /// Largest body of a denied request read and discarded so the connection stays usable;
    /// beyond it the connection is closed after the 403.
    pub max_discard_bytes: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            header_timeout: Duration::from_secs(5),
            max_header_bytes: 64 * 1024,
            max_connections: 4096,
            connect_timeout: Duration::from_secs(5),
            transparent_source: false,
            upstream_marks: None,
            max_discard_bytes: 1 << 20,
        }
    }
}

/// The `SO_MARK` of the sockets a proxy opens for a redirected connection or query, by the
/// direction it was redirected in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub ingress: u32,
    pub egress: u32,
}

impl Marks {
    pub fn of(&self, direction: ir::Direction) -> u32 {
        match direction {
            ir::Direction::Ingress => self.ingress,
            ir::Direction::Egress => self.egress,
        }
    }
}

/// What the caller knows about an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub client: SocketAddr,
    /// Where the client was connecting to (from the redirected socket).
    pub original_dst: SocketAddr,
    /// The endpoint whose policy applies and in which direction.
    pub endpoint: u16,
    pub direction: Direction,
    /// The other side's identity (the client's for ingress, the server's for egress).
    pub peer_identity: NumericIdentity,
}

pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub table: SharedTable,
    pub events: Events,
    /// Connections being served (a connection's upgraded stream included).
    pub active: Arc<AtomicUsize>,
}

/// A proxy instance: cheap to clone, every clone shares the table, events and connection cap.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("accepting a connection failed: {0}")]
    Accept(io::Error),
    #[error("max_connections must be at least 1")]
    NoConnections,
    #[error("DNS proxy: {0}")]
    Dns(#[from] crate::dns::proxy::DnsProxyError),
}

impl Proxy {
    pub fn new(
        config: ProxyConfig,
        table: SharedTable,
        events: Events,
    ) -> Result<Self, ProxyError> {
        Self::counting(config, table, events, Arc::default())
    }

    /// A proxy that keeps its count of connections being served in `active` (shared with
    /// whoever needs to know whether connections are open, e.g. the table's builder).
    pub fn counting(
        config: ProxyConfig,
        table: SharedTable,
        events: Events,
        active: Arc<AtomicUsize>,
    ) -> Result<Self, ProxyError> {
        if config.max_connections == 0 {
            return Err(ProxyError::NoConnections);
        }
        let slots = Arc::new(Semaphore::new(config.max_connections));
        Ok(Proxy {
            shared: Arc::new(Shared {
                config,
                table,
                events,
                active,
            }),
            slots,
        })
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Accepts connections until accept fails with a non-transient error. A connection slot is
    /// taken before each accept, so at the cap new clients wait in the listen backlog.
    /// `classify` tells where each accepted connection was going; one it cannot classify is
    /// closed.
    pub async fn serve<F>(&self, listener: TcpListener, classify: F) -> Result<(), ProxyError>
    where
        F: Fn(&TcpStream, SocketAddr) -> Option<ConnInfo>,
    {
        accept_each(&listener, &self.slots, |stream, client, slot| {
            if let Some(info) = classify(&stream, client) {
                let shared = self.shared.clone();
                tokio::spawn(conn::serve(shared, stream, info, Some(slot)));
            }
        })
        .await
        .map_err(ProxyError::Accept)
    }

    /// Serves one connection accepted elsewhere (outside the connection cap).
    pub async fn serve_connection(&self, stream: TcpStream, info: ConnInfo) {
        conn::serve(self.shared.clone(), stream, info, None).await
    }
}

/// Accepts connections on `listener` until accept fails with a non-transient error (returned),
/// taking a slot of `slots` before each accept, so that at the cap new clients wait in the
/// listen backlog; each connection goes to `serve` with its slot.
pub(crate) async fn accept_each(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    mut serve: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) -> Result<(), io::Error> {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(()); // The semaphore is never closed.
        };
        match listener.accept().await {
            Ok((stream, client)) => serve(stream, client, slot),
            // Out of descriptors or a connection reset before accept: retry shortly.
            Err(e) if transient(&e) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return Err(e),
        }
    }
}

/// Accept errors after which the listener goes on: the connection was lost before it was
/// accepted, or descriptors or memory ran out for a moment.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
