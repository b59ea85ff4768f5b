//! The DNS proxy over UDP. The datapath assigns a redirected query to the transparent listener
//! at `127.0.0.1:port` / `[::1]:port` (`bpf_sk_lookup_udp` + `bpf_sk_assign`); the listener
//! reads the original destination of each datagram (`IP_RECVORIGDSTADDR` /
//! `IPV6_RECVORIGDSTADDR`). Each query is judged and answered as `proxy.rs` says; an allowed
//! one goes to the original server from the client's address (`IP_TRANSPARENT`, marked so it
//! is not redirected again). Answers to the client always come from the original server's
//! address and port (a transparent socket bound to it), so the client's resolver accepts them.
//!
//! Bounds: datagrams of at most [`MAX_MESSAGE`] bytes (longer ones are dropped with an event),
//! at most `max_inflight` queries at once (the listener stops reading beyond it; the kernel's
//! socket buffer then drops), `query_timeout` for the server's answer (then `SERVFAIL`).

use super::message::MAX_MESSAGE;
use super::proxy::{DnsProxy, DnsProxyError, Exchange, Shared};
use crate::listen::{loopback, ListenError};
use crate::proxy::ConnInfo;
use crate::sockopt::{set_int, set_mark, set_transparent, set_v6_only};
use crate::table::UDP;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

fn socket(v6: bool) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    Ok(s)
}

/// A transparent UDP listener on `127.0.0.1:port` or `[::1]:port` (IPv6 only), marked `mark`,
/// reporting each datagram's original destination. Must be called inside a tokio runtime.
pub fn udp_listener(v6: bool, port: u16, mark: u32) -> Result<UdpSocket, ListenError> {
    let addr = SocketAddr::new(loopback(v6), port);
    let bind = || -> io::Result<UdpSocket> {
        let s = socket(v6)?;
        if v6 {
            set_v6_only(&s)?;
            set_int(&s, libc::SOL_IPV6, libc::IPV6_RECVORIGDSTADDR, 1)?;
        } else {
            set_int(&s, libc::SOL_IP, libc::IP_RECVORIGDSTADDR, 1)?;
        }
        set_transparent(&s, !v6)?;
        set_mark(&s, mark)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        UdpSocket::from_std(s.into())
    };
    bind().map_err(|source| ListenError { addr, mark, source })
}

/// One datagram: its length, sender, original destination (when the kernel gave it) and
/// whether it was truncated.
type Received = (usize, SocketAddr, Option<SocketAddr>, bool);

/// `recvmsg` with the original-destination control message.
fn recv_orig(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: every pointer refers to a live buffer of the given length.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>() as _;
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zeroed, then written by the kernel.
    let from = to_socket_addr(unsafe { &name.assume_init() })
        .ok_or_else(|| io::Error::other("datagram without an IP source"))?;
    let mut orig = None;
    // SAFETY: the CMSG_* walk stays within msg_controllen, as the kernel filled it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            let v4 = level == libc::SOL_IP && kind == libc::IP_ORIGDSTADDR;
            let v6 = level == libc::SOL_IPV6 && kind == libc::IPV6_ORIGDSTADDR;
            if v4 || v6 {
                let mut ss: libc::sockaddr_storage = std::mem::zeroed();
                let len = if v4 {
                    size_of::<libc::sockaddr_in>()
                } else {
                    size_of::<libc::sockaddr_in6>()
                };
                let room = ((*c).cmsg_len as usize)
                    .saturating_sub(libc::CMSG_LEN(0) as usize)
                    .min(len);
                std::ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(c),
                    (&mut ss as *mut libc::sockaddr_storage).cast(),
                    room,
                );
                orig = to_socket_addr(&ss);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
    Ok((n as usize, from, orig, truncated))
}

/// The IP socket address in `ss`, if it holds one.
fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let p: *const libc::sockaddr_storage = ss;
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits in the storage.
            let a = unsafe { &*p.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6.
            let a = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// Sends `answer` to `client` from `from` (the original server: a non-local address, bound
/// transparently), marked `mark`.
fn send_as(
    from: SocketAddr,
    client: SocketAddr,
    answer: &[u8],
    mark: Option<u32>,
) -> io::Result<()> {
    let s = socket(from.is_ipv6())?;
    set_transparent(&s, from.is_ipv4())?;
    if let Some(m) = mark {
        set_mark(&s, m)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&from.into())?;
    s.send_to(answer, &client.into())?;
    Ok(())
}

impl DnsProxy {
    /// Reads queries until reading fails with a non-transient error. `classify` tells whose
    /// query a datagram is from its sender and original destination; a datagram without an
    /// original destination is dropped.
    pub async fn serve<F>(&self, socket: UdpSocket, classify: F) -> Result<(), DnsProxyError>
    where
        F: Fn(SocketAddr, SocketAddr) -> ConnInfo,
    {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                return Ok(()); // The semaphore is never closed.
            };
            let mut buf = vec![0u8; MAX_MESSAGE];
            let got = socket
                .async_io(Interest::READABLE, || recv_orig(&socket, &mut buf))
                .await;
            let (n, client, orig, truncated) = match got {
                Ok(x) => x,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(DnsProxyError::Receive(e)),
            };
            let Some(orig) = orig else { continue };
            buf.truncate(n);
            let info = classify(client, orig);
            let shared = self.shared.clone();
            tokio::spawn(async move {
                query(&shared, info, buf, truncated).await;
                drop(slot);
            });
        }
    }
}

fn transient(e: &io::Error) -> bool {
    // ICMP errors of earlier sends surface on the next receive; descriptors may run out.
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EINTR | libc::ENOBUFS | libc::ENOMEM | libc::EMFILE)
    )
}

/// Answers one query datagram, from the original server's address.
async fn query(shared: &Shared, info: ConnInfo, buf: Vec<u8>, truncated: bool) {
    let mark = shared.mark(info.direction);
    let server = || exchange(shared, &info, &buf, mark);
    let Some(answer) = shared.answer(&info, UDP, &buf, truncated, server).await else {
        return;
    };
    let sent = send_as(info.original_dst, info.client, &answer.bytes, mark).is_ok();
    shared.answered(&info, answer, sent);
}

/// Sends the query to the original server and returns its answer (the first datagram with the
/// query's id).
async fn exchange(
    shared: &Shared,
    info: &ConnInfo,
    query: &[u8],
    mark: Option<u32>,
) -> Result<Vec<u8>, Exchange> {
    let dst = info.original_dst;
    let open = || -> io::Result<UdpSocket> {
        let s = socket(dst.is_ipv6())?;
        if let Some(m) = mark {
            set_mark(&s, m)?;
        }
        if shared.config.transparent_source {
            set_transparent(&s, dst.is_ipv4())?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::new(info.client.ip(), 0).into())?;
        }
        s.connect(&dst.into())?;
        UdpSocket::from_std(s.into())
    };
    let sock = open().map_err(|_| Exchange::Failed)?;
    sock.send(query).await.map_err(|_| Exchange::Failed)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    tokio::time::timeout(shared.config.query_timeout, async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(|_| Exchange::Failed)?;
            // Another id (a stray or late datagram): keep waiting.
            if n >= 2 && buf[..2] == query[..2] {
                return Ok(buf[..n].to_vec());
            }
        }
    })
    .await
    .map_err(|_| Exchange::Failed)?
}
