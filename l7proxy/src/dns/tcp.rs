//! DNS over TCP (RFC 7766): what a resolver falls back to after a truncated UDP answer, and
//! what some clients use throughout. The datapath assigns a redirected connection to the
//! transparent TCP listener at the DNS proxy port (`bpf_skc_lookup_tcp` + `bpf_sk_assign`, as
//! for HTTP); the accepted socket's local address is the original destination. Each message
//! (RFC 1035 §4.2.2: a 2-byte length, then the message) is judged and answered as `proxy.rs`
//! says, in order; allowed ones go to the original server over one TCP connection per client
//! connection, opened at the first allowed query from the client's address (`IP_TRANSPARENT`,
//! marked so it is not redirected again) and reused; a denied query is answered `REFUSED` and
//! the connection stays usable.
//!
//! Bounds: `max_tcp_connections` client connections at once (more wait in the listen
//! backlog); a query's length must arrive within `tcp_idle_timeout` of the previous answer,
//! and the query within `query_timeout` after its length (a trickling client is closed); a
//! query longer than [`MAX_MESSAGE`] is not read (event, connection closed); the server's
//! answer, at most 65,535 bytes by its length, within `query_timeout` (else `SERVFAIL` and a
//! new server connection for the next query). A query or an answer that does not parse closes
//! the client's connection after its event: there is no question to answer it with.

use super::message::MAX_MESSAGE;
use super::proxy::{DnsProxy, DnsProxyError, Exchange, Shared};
use crate::proxy::{accept_each, ConnInfo};
use crate::table::TCP;
use crate::upstream::connect_tcp;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest message a 2-byte length can announce: the bound of the server's answers.
const MAX_TCP_MESSAGE: usize = u16::MAX as usize;

impl DnsProxy {
    /// Accepts connections until accept fails with a non-transient error; a connection slot is
    /// taken before each accept. `classify` tells whose queries a connection carries from the
    /// accepted socket (its local address is the original destination) and the client's
    /// address; a connection it cannot classify is closed.
    pub async fn serve_tcp<F>(
        &self,
        listener: TcpListener,
        classify: F,
    ) -> Result<(), DnsProxyError>
    where
        F: Fn(&TcpStream, SocketAddr) -> Option<ConnInfo>,
    {
        accept_each(&listener, &self.tcp_slots, |stream, client, slot| {
            if let Some(info) = classify(&stream, client) {
                let shared = self.shared.clone();
                // Counted until the task ends, however it does (also dropped unpolled).
                let served = Served::start(self.tcp_active.clone());
                tokio::spawn(async move {
                    let _served = served;
                    connection(&shared, stream, info).await;
                    drop(slot);
                });
            }
        })
        .await
        .map_err(DnsProxyError::Accept)
    }
}

/// One connection on the count from [`Served::start`] until dropped.
struct Served(Arc<AtomicUsize>);

impl Served {
    fn start(count: Arc<AtomicUsize>) -> Served {
        count.fetch_add(1, Ordering::Relaxed);
        Served(count)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one client connection until it ends, idles, fails or sends what is not a query.
async fn connection(shared: &Shared, mut client: TcpStream, info: ConnInfo) {
    let _ = client.set_nodelay(true);
    let config = &shared.config;
    let mark = shared.mark(info.direction);
    let mut server = None;
    loop {
        let read = read_message(
            &mut client,
            config.tcp_idle_timeout,
            config.query_timeout,
            MAX_MESSAGE,
        );
        let Some((query, too_long)) = read.await else {
            return;
        };
        let (server, q, i) = (&mut server, &query, &info);
        let forward = move || {
            let server = server; // moved out: the closure is called once
            exchange(shared, i, server, q, mark)
        };
        let Some(answer) = shared.answer(&info, TCP, &query, too_long, forward).await else {
            return;
        };
        let sent = write_message(&mut client, &answer.bytes, config.query_timeout).await;
        shared.answered(&info, answer, sent);
        if !sent {
            return;
        }
    }
}

/// Sends `query` to the original server over the client connection's server connection
/// (opened now if there is none) and returns the server's next message. On any failure the
/// server connection is dropped: the next query opens another.
async fn exchange(
    shared: &Shared,
    info: &ConnInfo,
    server: &mut Option<TcpStream>,
    query: &[u8],
    mark: Option<u32>,
) -> Result<Vec<u8>, Exchange> {
    let limit = shared.config.query_timeout;
    let answer = tokio::time::timeout(limit, async {
        if server.is_none() {
            // The client's address with a port of the kernel's choosing, as for HTTP.
            let source = shared
                .config
                .transparent_source
                .then_some(SocketAddr::new(info.client.ip(), 0));
            let s = connect_tcp(info.original_dst, source, mark, limit)
                .await
                .ok()?;
            *server = Some(s);
        }
        let s = server.as_mut()?;
        if !write_message(s, query, limit).await {
            return None;
        }
        match read_message(s, limit, limit, MAX_TCP_MESSAGE).await? {
            (answer, false) => Some(answer),
            (_, true) => None,
        }
    })
    .await
    .ok()
    .flatten();
    if answer.is_none() {
        *server = None;
    }
    answer.ok_or(Exchange::Failed)
}

/// The next length-prefixed message of `stream`: its length must arrive within `idle`, the
/// message within `body` after it. `None`: the stream ended, failed or timed out. A message
/// longer than `max` is not read: `(empty, true)`.
pub(crate) async fn read_message(
    stream: &mut (impl AsyncRead + Unpin),
    idle: Duration,
    body: Duration,
    max: usize,
) -> Option<(Vec<u8>, bool)> {
    let mut len = [0u8; 2];
    tokio::time::timeout(idle, stream.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Some((Vec::new(), true));
    }
    let mut buf = vec![0u8; len];
    tokio::time::timeout(body, stream.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some((buf, false))
}

/// Writes `message` with its 2-byte length within `limit`; whether it was written. Messages
/// longer than a length can say are not written.
pub(crate) async fn write_message(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &[u8],
    limit: Duration,
) -> bool {
    let Ok(len) = u16::try_from(message.len()) else {
        return false;
    };
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    matches!(
        tokio::time::timeout(limit, stream.write_all(&out)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests;
