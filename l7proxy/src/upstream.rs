//! The connection to the original destination: optionally from the client's own address
//! (`IP_TRANSPARENT`, so the server sees the client, as in Cilium's tproxy mode), then an HTTP/1.1
//! client connection driven by its own task.

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot use the client's address {addr} as source (IP_TRANSPARENT needs CAP_NET_ADMIN): {source}")]
    Transparent { addr: SocketAddr, source: io::Error },
    #[error("cannot connect to {dst}: {source}")]
    Connect { dst: SocketAddr, source: io::Error },
    #[error("connecting to {0} timed out")]
    Timeout(SocketAddr),
    #[error("HTTP handshake with {dst} failed: {source}")]
    Handshake {
        dst: SocketAddr,
        source: hyper::Error,
    },
}

fn set_transparent(sock: &TcpSocket, v4: bool) -> io::Result<()> {
    let (level, name) = if v4 {
        (libc::SOL_IP, libc::IP_TRANSPARENT)
    } else {
        (libc::SOL_IPV6, libc::IPV6_TRANSPARENT)
    };
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP connection to `dst`, from `source` when given (transparently: the address need not be
/// local).
pub async fn connect_tcp(
    dst: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Duration,
) -> Result<TcpStream, UpstreamError> {
    let conn_err = |source| UpstreamError::Connect { dst, source };
    let sock = if dst.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(conn_err)?;
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
    timeout: Duration,
) -> Result<SendRequest<Incoming>, UpstreamError> {
    let stream = connect_tcp(dst, source, timeout).await?;
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
