//! Real-socket probes between network namespaces for the root integration tests: a TCP/UDP
//! responder in one namespace, a client in another that succeeds only when its request and
//! the reply both get through.

use crate::testkit::{enter_netns, Netns};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A responder listening on `addr:port` (TCP and UDP) inside a namespace, stopped on drop.
pub struct Responder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Responder {
    pub fn start(ns: &Netns, addr: impl Into<IpAddr>, port: u16) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let sa = SocketAddr::from((addr.into(), port));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let tcp = {
            let (stop, path, ready) = (stop.clone(), ns.path(), ready_tx.clone());
            std::thread::spawn(move || serve_tcp(path, sa, stop, ready))
        };
        let udp = {
            let (stop, path, ready) = (stop.clone(), ns.path(), ready_tx);
            std::thread::spawn(move || serve_udp(path, sa, stop, ready))
        };
        for _ in 0..2 {
            ready_rx.recv().expect("responder failed to start");
        }
        Responder {
            stop,
            threads: vec![tcp, udp],
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve_tcp(
    ns: PathBuf,
    sa: SocketAddr,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    enter_netns(&ns).expect("setns");
    let l = TcpListener::bind(sa).expect("bind tcp");
    l.set_nonblocking(true).expect("nonblocking");
    let _ = ready.send(());
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                std::thread::spawn(move || echo(s));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Echoes everything until the peer closes or stays silent for 30 s.
fn echo(mut s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = [0u8; 64];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn serve_udp(
    ns: PathBuf,
    sa: SocketAddr,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    enter_netns(&ns).expect("setns");
    let s = UdpSocket::bind(sa).expect("bind udp");
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let _ = ready.send(());
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    }
}

/// How long a probe expected to pass may wait for its echo: long enough that a stalled CI
/// machine cannot fail it (a passing probe returns as soon as the echo arrives). Probes expected
/// to fail, and probes that must notice a dropped SYN (the kernel retransmits it after a
/// second), use short timeouts instead.
pub const PASS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Does a TCP connection from namespace `ns` to `dst:port` open and echo a message back?
pub fn tcp_ok(ns: &Netns, dst: impl Into<IpAddr>, port: u16, timeout: Duration) -> bool {
    let dst = dst.into();
    ns.run(move || {
        let Ok(mut s) = TcpStream::connect_timeout(&SocketAddr::from((dst, port)), timeout) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(timeout));
        if s.write_all(b"probe").is_err() {
            return false;
        }
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).is_ok() && &buf == b"probe"
    })
}

/// Does a UDP datagram from namespace `ns` to `dst:port` get its echo back?
pub fn udp_ok(ns: &Netns, dst: impl Into<IpAddr>, port: u16, timeout: Duration) -> bool {
    let dst = dst.into();
    let any: IpAddr = match dst {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    ns.run(move || {
        let Ok(s) = UdpSocket::bind((any, 0)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(timeout));
        if s.send_to(b"probe", (dst, port)).is_err() {
            return false;
        }
        let mut buf = [0u8; 8];
        matches!(s.recv_from(&mut buf), Ok((5, _))) && &buf[..5] == b"probe"
    })
}

/// An established TCP connection opened from a namespace (the socket stays in that namespace).
pub struct TcpSession {
    stream: TcpStream,
}

impl TcpSession {
    pub fn open(
        ns: &Netns,
        dst: impl Into<IpAddr>,
        port: u16,
        timeout: Duration,
    ) -> Option<TcpSession> {
        let dst = dst.into();
        let stream = ns.run(move || {
            TcpStream::connect_timeout(&SocketAddr::from((dst, port)), timeout).ok()
        })?;
        Some(TcpSession { stream })
    }

    /// Sends a message and waits for its echo; false when it does not come back in `timeout`.
    pub fn exchange(&mut self, timeout: Duration) -> bool {
        self.exchange_err(timeout).is_none()
    }

    /// [`TcpSession::exchange`] telling why it failed: `None` when the echo came back, else
    /// the error (`TimedOut`/`WouldBlock` after `timeout`, `ConnectionReset`, `InvalidData`
    /// for another reply, ...).
    pub fn exchange_err(&mut self, timeout: Duration) -> Option<std::io::Error> {
        let _ = self.stream.set_read_timeout(Some(timeout));
        if let Err(e) = self.stream.write_all(b"probe") {
            return Some(e);
        }
        let mut buf = [0u8; 5];
        match self.stream.read_exact(&mut buf) {
            Ok(()) if &buf == b"probe" => None,
            Ok(()) => Some(std::io::ErrorKind::InvalidData.into()),
            Err(e) => Some(e),
        }
    }
}
