//! The proxy's listening sockets as the datapath's L7 redirect needs them
//! (Documentation/datapath.md, "L7 redirect"): bound to loopback at the proxy port, where
//! `bpf_sk_assign` looks for them, `IP_TRANSPARENT` so that accepted sockets keep the original
//! destination as their local address, and marked like the proxy's upstream sockets.

use crate::sockopt::{set_mark, set_transparent, set_v6_only};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections a listener queues while the proxy is at its connection cap.
pub const BACKLOG: u32 = 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (transparent, mark {mark:#x}; needs CAP_NET_ADMIN): {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub mark: u32,
    #[source]
    pub source: io::Error,
}

/// The loopback address of the family the datapath assigns to: `127.0.0.1` or `::1`.
pub fn loopback(v6: bool) -> IpAddr {
    if v6 {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    }
}

/// A transparent listener on `[::1]:port` (IPv6 only) or `127.0.0.1:port` with `SO_MARK`
/// `mark` and `SO_REUSEADDR` (a restarted proxy binds again at once). Must be called inside a
/// tokio runtime.
pub fn transparent_listener(v6: bool, port: u16, mark: u32) -> Result<TcpListener, ListenError> {
    let addr = SocketAddr::new(loopback(v6), port);
    let bind = || -> io::Result<TcpListener> {
        let sock = if v6 {
            let s = TcpSocket::new_v6()?;
            set_v6_only(&s)?;
            s
        } else {
            TcpSocket::new_v4()?
        };
        set_transparent(&sock, !v6)?;
        set_mark(&sock, mark)?;
        sock.set_reuseaddr(true)?;
        sock.bind(addr)?;
        sock.listen(BACKLOG)
    };
    bind().map_err(|source| ListenError { addr, mark, source })
}
