//! DNS for the DNS proxy tests: a `dnsmasq` process in an endpoint's namespace serving fixed
//! records, and a client that sends queries from a namespace and reads the answers (over UDP,
//! or several on one TCP connection).

use super::in_netns;
use l7proxy::dns::message::{parse_answer, rcode, Record, TYPE_A};
use runtime_loader::testkit::Netns;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long [`resolve`] waits for an answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// How many times a query is sent before the client gives up.
const ATTEMPTS: usize = 2;

/// dnsmasq in `ns` on port 53 of `listen`, answering each `(domain, address)` for the domain
/// and its subdomains with TTL `ttl` seconds; killed on drop.
pub struct Dnsmasq(Child);

impl Dnsmasq {
    pub fn start(ns: &Netns, listen: &[IpAddr], records: &[(&str, IpAddr)], ttl: u32) -> Dnsmasq {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--port=53",
            "--user=root",
        ])
        .arg(format!("--local-ttl={ttl}"))
        .args(listen.iter().map(|a| format!("--listen-address={a}")))
        .args(records.iter().map(|(n, a)| format!("--address=/{n}/{a}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        in_netns(&mut cmd, &ns.path());
        let child = cmd.spawn().expect("dnsmasq (apt-get install dnsmasq-base)");
        std::thread::sleep(Duration::from_millis(300));
        Dnsmasq(child)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A query for `name` of type `qtype` (id 0x4242, RD).
pub fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// What the client got for `name` from `server`: the rcode, the records, and the address the
/// answer came from; None without an answer within [`ANSWER_WAIT`] to either of [`ATTEMPTS`]
/// sends.
pub type Resolved = Option<(u8, Vec<Record>, SocketAddr)>;

/// Sends an A query for `name` to `server:53` from `ns` and reads the answer.
pub fn resolve(ns: &Netns, server: IpAddr, name: &'static str) -> Resolved {
    resolve_as(ns, server, name, TYPE_A)
}

/// [`resolve`] with a query of type `qtype` (`TYPE_AAAA`).
pub fn resolve_as(ns: &Netns, server: IpAddr, name: &'static str, qtype: u16) -> Resolved {
    ns.run(move || {
        let any = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(any).ok()?;
        s.set_read_timeout(Some(ANSWER_WAIT)).ok()?;
        let dst = SocketAddr::new(server, 53);
        let q = query(name, qtype);
        let mut buf = [0u8; 4096];
        // As a stub resolver does over UDP (resolv.conf's `attempts`): the same query is sent
        // again when no answer came within the wait.
        let (n, from) = (0..ATTEMPTS).find_map(|_| {
            s.send_to(&q, dst).ok()?;
            s.recv_from(&mut buf).ok()
        })?;
        let (_, records) = parse_answer(&buf[..n]).ok()?;
        Some((rcode(&buf[..n])?, records, from))
    })
}

/// Sends A queries for `names` to `server:53` from `ns` over one TCP connection (RFC 7766:
/// each message after its 2-byte length) and reads their answers in order: the rcode and the
/// records of each, until the first that does not come within [`ANSWER_WAIT`]. Empty when the
/// connection cannot be made.
pub fn resolve_tcp(ns: &Netns, server: IpAddr, names: &[&'static str]) -> Vec<(u8, Vec<Record>)> {
    let names = names.to_vec();
    ns.run(move || {
        let mut answers = Vec::new();
        let dst = SocketAddr::new(server, 53);
        let Ok(mut s) = TcpStream::connect_timeout(&dst, ANSWER_WAIT) else {
            return answers;
        };
        let _ = s.set_read_timeout(Some(ANSWER_WAIT));
        for name in names {
            let q = query(name, TYPE_A);
            let mut out = (q.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&q);
            let mut len = [0u8; 2];
            if s.write_all(&out).is_err() || s.read_exact(&mut len).is_err() {
                break;
            }
            let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut m).is_err() {
                break;
            }
            match (rcode(&m), parse_answer(&m)) {
                (Some(code), Ok((_, records))) => answers.push((code, records)),
                _ => break,
            }
        }
        answers
    })
}
