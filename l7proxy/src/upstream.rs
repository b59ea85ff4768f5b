//! The connection to the original destination: optionally from the client's own address
//! (`IP_TRANSPARENT`, so the server sees the client, as in Cilium's tproxy mode), then an HTTP/1.1
//! client connection driven by its own task.

use crate::sockopt::{set_mark, set_transparent};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot use the client's address {addr} as source (IP_TRANSPARENT needs CAP_NET_ADMIN): {source}")]
    Transparent { addr: SocketAddr, source: io::Error },
    #[error("cannot connect to {dst}: {source}")]
    Connect { dst: SocketAddr, source: io::Error },
    #[error("cannot mark the upstream socket {mark:#x} (SO_MARK needs CAP_NET_ADMIN): {source}")]
    Mark { mark: u32, source: io::Error },
    #[error("connecting to {0} timed out")]
    Timeout(SocketAddr),
    #[error("HTTP handshake with {dst} failed: {source}")]
    Handshake {
        dst: SocketAddr,
        source: hyper::Error,
    },
}

/// A TCP connection to `dst`, from `source` when given (transparently: the address need not be
/// local), with `SO_MARK` `mark` when given (so the datapath does not redirect it again).
pub async fn connect_tcp(
    dst: SocketAddr,
    source: Option<SocketAddr>,
    mark: Option<u32>,
    timeout: Duration,
) -> Result<TcpStream, UpstreamError> {
    let conn_err = |source| UpstreamError::Connect { dst, source };
    let sock = if dst.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(conn_err)?;
    if let Some(m) = mark {
        set_mark(&sock, m).map_err(|source| UpstreamError::Mark { mark: m, source })?;
    }
    if let Some(addr) = source {
        let bind = || -> io::Result<()> {
            set_transparent(&sock, addr.is_ipv4())?;
            sock.set_reuseaddr(true)?;
            sock.bind(addr)
        };
        bind().map_err(|source| UpstreamError::Transparent { addr, source })?;
    }
    let stream = tokio::time::timeout(timeout, sock.connect(dst))
        .await
        .map_err(|_| UpstreamError::Timeout(dst))?
        .map_err(conn_err)?;
    stream.set_nodelay(true).map_err(conn_err)?;
    Ok(stream)
}

/// An HTTP/1.1 client connection to `dst` (upgrades allowed), driven by a spawned task.
pub async fn connect_http(
    dst: SocketAddr,
    source: Option<SocketAddr>,
    mark: Option<u32>,
    timeout: Duration,
) -> Result<SendRequest<Incoming>, UpstreamError> {
    let stream = connect_tcp(dst, source, mark, timeout).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Incoming>(TokioIo::new(stream))
        .await
        .map_err(|source| UpstreamError::Handshake { dst, source })?;
    tokio::spawn(async move {
        // Errors surface to the request in flight; nothing else to do with them here.
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The upstream socket carries the mark the datapath reads to skip a second redirect.
    #[tokio::test]
    async fn upstream_connections_carry_the_mark() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping upstream_connections_carry_the_mark: SO_MARK needs root");
            return;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dst = listener.local_addr().unwrap();
        let s = connect_tcp(dst, None, Some(0x0A00), Duration::from_secs(2))
            .await
            .unwrap();
        let mut mark: u32 = 0;
        let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
        // SAFETY: a valid socket and a u32 buffer of `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MARK,
                (&mut mark as *mut u32).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, mark), (0, 0x0A00));
        let unmarked = connect_tcp(dst, None, None, Duration::from_secs(2)).await;
        assert!(unmarked.is_ok());
    }
}
