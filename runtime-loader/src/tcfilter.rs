//! The classic tc filters on an interface's clsact hooks, listed and deleted over rtnetlink
//! (`RTM_GETTFILTER` dump, `RTM_DELTFILTER`). aya attaches and replaces `cls_bpf` filters but
//! has no way to list what else is there: the agent needs that to find the program its own
//! filter runs (netlink mode has no link to ask) and to remove filters that are not its own.
//!
//! Only what is needed is decoded: per filter its priority, protocol, handle, kind and, for
//! `bpf` filters, the program id (`TCA_BPF_ID`). Replies are bounded (a dump stops at
//! [`MAX_FILTERS`]) and every read has a timeout: a kernel that never answers is an error,
//! not a hang.

use crate::attach::Hook;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_ID: u16 = 11;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)` and `…_EGRESS`.
const PARENT_INGRESS: u32 = 0xFFFF_FFF2;
const PARENT_EGRESS: u32 = 0xFFFF_FFF3;
/// More filters than this on one hook is not an interface the agent set up: refuse.
pub const MAX_FILTERS: usize = 1024;
const NLMSG_HDR: usize = 16;
const TCMSG: usize = 20;

/// One filter of a clsact hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    /// The protocol in network byte order, as the kernel keeps it (`ETH_P_ALL`: 0x0300).
    pub protocol: u16,
    pub handle: u32,
    pub kind: String,
    /// The program of a `bpf` filter.
    pub prog_id: Option<u32>,
}

fn parent(hook: Hook) -> u32 {
    match hook {
        Hook::FromEndpoint => PARENT_INGRESS,
        Hook::ToEndpoint => PARENT_EGRESS,
    }
}

/// The filters on `hook` of interface `ifindex` (none when it has no clsact qdisc).
pub fn list(ifindex: u32, hook: Hook) -> io::Result<Vec<Filter>> {
    dump(&Socket::open()?, ifindex, hook)
}

/// Lists filters of many hooks over one netlink socket (the agent's periodic check lists two
/// hooks of every endpoint: opening a socket per dump was most of its cost). A dump that
/// failed may have left replies unread: the socket is then closed and the next dump opens
/// another.
#[derive(Default)]
pub struct Lister(Option<Socket>);

impl Lister {
    /// As [`list`].
    pub fn list(&mut self, ifindex: u32, hook: Hook) -> io::Result<Vec<Filter>> {
        let sock = match self.0.take() {
            Some(s) => s,
            None => Socket::open()?,
        };
        let filters = dump(&sock, ifindex, hook)?;
        self.0 = Some(sock);
        Ok(filters)
    }
}

fn dump(sock: &Socket, ifindex: u32, hook: Hook) -> io::Result<Vec<Filter>> {
    let req = request(
        RTM_GETTFILTER,
        NLM_F_REQUEST | NLM_F_DUMP,
        ifindex,
        0,
        parent(hook),
        0,
        None,
    );
    sock.send(&req)?;
    let mut out = Vec::new();
    loop {
        let buf = sock.recv()?;
        for msg in messages(&buf)? {
            match msg.kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => match error_code(msg.body)? {
                    0 => return Ok(out),
                    // No clsact qdisc (or no interface): nothing is attached there.
                    e if e == -libc::EINVAL || e == -libc::ENOENT => return Ok(Vec::new()),
                    e => return Err(io::Error::from_raw_os_error(-e)),
                },
                RTM_NEWTFILTER => {
                    if let Some(f) = filter(msg.body)? {
                        out.push(f);
                        if out.len() > MAX_FILTERS {
                            return Err(io::Error::other(format!(
                                "more than {MAX_FILTERS} tc filters on interface {ifindex}"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Deletes filter `f` from `hook` of interface `ifindex` (gone already: not an error).
pub fn delete(ifindex: u32, hook: Hook, f: &Filter) -> io::Result<()> {
    let sock = Socket::open()?;
    let info = (u32::from(f.priority) << 16) | u32::from(f.protocol);
    let req = request(
        RTM_DELTFILTER,
        NLM_F_REQUEST | NLM_F_ACK,
        ifindex,
        f.handle,
        parent(hook),
        info,
        Some(&f.kind),
    );
    sock.send(&req)?;
    loop {
        let buf = sock.recv()?;
        for msg in messages(&buf)? {
            if msg.kind == NLMSG_ERROR {
                return match error_code(msg.body)? {
                    0 => Ok(()),
                    e if e == -libc::ENOENT || e == -libc::ENODEV => Ok(()),
                    e => Err(io::Error::from_raw_os_error(-e)),
                };
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn request(
    kind: u16,
    flags: u16,
    ifindex: u32,
    handle: u32,
    parent: u32,
    info: u32,
    tca_kind: Option<&str>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    b.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    b.extend_from_slice(&handle.to_ne_bytes());
    b.extend_from_slice(&parent.to_ne_bytes());
    b.extend_from_slice(&info.to_ne_bytes());
    if let Some(k) = tca_kind {
        let len = 4 + k.len() + 1;
        b.extend_from_slice(&(len as u16).to_ne_bytes());
        b.extend_from_slice(&TCA_KIND.to_ne_bytes());
        b.extend_from_slice(k.as_bytes());
        b.push(0);
        b.resize(b.len().next_multiple_of(4), 0);
    }
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_ne_bytes());
    b
}

struct Msg<'a> {
    kind: u16,
    body: &'a [u8],
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {what}"))
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// The netlink messages of one datagram.
fn messages(mut buf: &[u8]) -> io::Result<Vec<Msg<'_>>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDR {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDR || len > buf.len() {
            return Err(malformed("message length out of bounds"));
        }
        out.push(Msg {
            kind: u16_at(buf, 4),
            body: &buf[NLMSG_HDR..len],
        });
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(out)
}

fn error_code(body: &[u8]) -> io::Result<i32> {
    if body.len() < 4 {
        return Err(malformed("short error message"));
    }
    Ok(u32_at(body, 0) as i32)
}

/// Route attributes `(type, payload)` of `b`.
fn attrs(mut b: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16_at(b, 0));
        if len < 4 || len > b.len() {
            return Err(malformed("attribute length out of bounds"));
        }
        // The top bits are the nested / byte-order flags.
        out.push((u16_at(b, 2) & 0x3fff, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    Ok(out)
}

/// The filter a `RTM_NEWTFILTER` describes; `None` for the entry the kernel sends for each
/// priority's classifier itself (handle 0).
fn filter(body: &[u8]) -> io::Result<Option<Filter>> {
    if body.len() < TCMSG {
        return Err(malformed("short tcmsg"));
    }
    let handle = u32_at(body, 8);
    let info = u32_at(body, 16);
    if handle == 0 {
        return Ok(None);
    }
    let mut kind = String::new();
    let mut prog_id = None;
    for (t, payload) in attrs(&body[TCMSG..])? {
        match t {
            TCA_KIND => {
                let end = payload
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(payload.len());
                kind = String::from_utf8_lossy(&payload[..end]).into_owned();
            }
            TCA_OPTIONS => {
                for (o, v) in attrs(payload)? {
                    if o == TCA_BPF_ID && v.len() >= 4 {
                        prog_id = Some(u32_at(v, 0));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(Filter {
        priority: (info >> 16) as u16,
        protocol: (info & 0xffff) as u16,
        handle,
        kind,
        prog_id,
    }))
}

/// A rtnetlink socket bound to the multicast `groups` (0: requests only), e.g. `RTMGRP_LINK`
/// for link changes.
pub fn socket(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = groups;
    // SAFETY: `addr` is a valid sockaddr_nl of the given length.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        let sock = Socket(socket(0)?);
        let fd = sock.0.as_raw_fd();
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: a valid timeval for SO_RCVTIMEO.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn send(&self, req: &[u8]) -> io::Result<()> {
        // SAFETY: `req` is valid for its length; the kernel is the default destination.
        let rc = unsafe { libc::send(self.0.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_message_is_decoded_and_a_classifier_entry_skipped() {
        let mut body = Vec::new();
        body.extend_from_slice(&[0, 0, 0, 0]);
        body.extend_from_slice(&7i32.to_ne_bytes());
        body.extend_from_slice(&1u32.to_ne_bytes()); // handle
        body.extend_from_slice(&PARENT_INGRESS.to_ne_bytes());
        body.extend_from_slice(&((1u32 << 16) | 0x0300).to_ne_bytes());
        // TCA_KIND "bpf", TCA_OPTIONS { TCA_BPF_ID 42 }
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&TCA_KIND.to_ne_bytes());
        body.extend_from_slice(b"bpf\0");
        body.extend_from_slice(&12u16.to_ne_bytes());
        body.extend_from_slice(&(TCA_OPTIONS | 0x8000).to_ne_bytes());
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&TCA_BPF_ID.to_ne_bytes());
        body.extend_from_slice(&42u32.to_ne_bytes());
        let f = filter(&body).unwrap().unwrap();
        assert_eq!(
            f,
            Filter {
                priority: 1,
                protocol: 0x0300,
                handle: 1,
                kind: "bpf".into(),
                prog_id: Some(42),
            }
        );
        body[8..12].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(filter(&body).unwrap(), None);
    }

    #[test]
    fn truncated_replies_are_errors_not_panics() {
        assert!(filter(&[0; 10]).is_err());
        let mut msg = vec![0u8; 16];
        msg[..4].copy_from_slice(&64u32.to_ne_bytes());
        assert!(messages(&msg).is_err());
        let mut body = vec![0u8; TCMSG];
        body[8] = 1;
        body.extend_from_slice(&[200, 0, 1, 0]);
        assert!(filter(&body).is_err());
    }
}
