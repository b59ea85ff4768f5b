//! Real HTTP processes for the L7 tests: a server (`python3 -m http.server` on a directory of
//! files) and a client (`curl`), each run inside an endpoint's network namespace, and a
//! `monitor` process whose lines a test can wait for.

use super::{in_netns, Agent, BIN};
use runtime_loader::testkit::{Endpoint, Netns, TempDir};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An HTTP server process in a namespace (python3), killed on drop.
pub struct HttpServer {
    child: Child,
    _dir: TempDir,
}

/// A WebSocket server for the upgrade tests: answers an `Upgrade: websocket` request with 101
/// and then echoes the bytes it receives.
const WEBSOCKET_ECHO: &str = r#"
import base64, hashlib, socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.request.recv(4096)
            if not b:
                return
            head += b
        key = ""
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        magic = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(magic.encode()).digest()).decode()
        self.request.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())
        while True:
            b = self.request.recv(4096)
            if not b:
                return
            self.request.sendall(b)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#;

impl HttpServer {
    /// A static file server (`python3 -m http.server`) on `bind:port` serving `files` (path,
    /// content); `::` serves both families.
    pub fn start(ns: &Netns, bind: IpAddr, port: u16, files: &[(&str, &str)]) -> HttpServer {
        let dir = TempDir::new("cphttp");
        for (name, text) in files {
            let path = dir.path.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("a served directory");
            }
            std::fs::write(path, text).expect("writing a served file");
        }
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "http.server", &port.to_string(), "--bind"])
            .arg(bind.to_string())
            .arg("--directory")
            .arg(&dir.path);
        Self::spawn(ns, cmd, bind, port, dir)
    }

    /// The WebSocket echo server on `addr:port` (IPv4).
    pub fn websocket_echo(ns: &Netns, addr: Ipv4Addr, port: u16) -> HttpServer {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", WEBSOCKET_ECHO, &addr.to_string(), &port.to_string()]);
        Self::spawn(ns, cmd, addr.into(), port, TempDir::new("cpws"))
    }

    fn spawn(ns: &Netns, mut cmd: Command, bind: IpAddr, port: u16, dir: TempDir) -> HttpServer {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        in_netns(&mut cmd, &ns.path());
        let child = cmd.spawn().expect("python3 (the test HTTP server)");
        let probe = if bind.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            bind
        };
        let sa = SocketAddr::new(probe, port);
        let up = ns.run(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if std::net::TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
        assert!(up, "the HTTP server on {sa} did not come up");
        HttpServer { child, _dir: dir }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pod manifests (namespace `default`, label `id: NAME`) at the endpoints' addresses (both
/// families for dual-stack endpoints).
pub fn pod_manifests(apps: &[(&str, &Endpoint)]) -> String {
    apps.iter()
        .map(|(name, ep)| {
            let mut ips = format!("  - ip: {}\n", ep.addr);
            if let Some(v6) = ep.addr6 {
                ips += &format!("  - ip: {v6}\n");
            }
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    id: {name}\nstatus:\n  podIP: {}\n  podIPs:\n{ips}---\n",
                ep.addr
            )
        })
        .collect()
}

/// Applies `pods` and adds each as an endpoint (`--pod default/NAME`) with its id.
pub fn add_pods(agent: &Agent, pods: &[(u16, &str, &Endpoint)]) {
    let apps: Vec<(&str, &Endpoint)> = pods.iter().map(|(_, n, e)| (*n, *e)).collect();
    let file = agent.file("pods.yaml", &pod_manifests(&apps));
    agent.ok(&["apply", "-f", &file]);
    for (id, name, ep) in pods {
        let (id, pod) = (id.to_string(), format!("default/{name}"));
        agent.ok(&[
            "endpoint", "add", "--id", &id, "--pod", &pod, "--iface", &ep.host,
        ]);
    }
}

/// `curl` in `ns`: (status, body); status 0 when no answer came (connection refused, dropped
/// or timed out within `timeout`). `extra` are more curl arguments (headers, `-6`, ...).
pub fn curl(ns: &Netns, url: &str, extra: &[&str], timeout: Duration) -> (u16, String) {
    let secs = format!("{:.3}", timeout.as_secs_f64());
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-g",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--max-time",
        &secs,
    ])
    .args(extra)
    .arg(url);
    in_netns(&mut cmd, &ns.path());
    let out = cmd.output().expect("curl (the test HTTP client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `curl` until it gets `status` or `limit` passes; the last answer.
pub fn curl_until(
    ns: &Netns,
    url: &str,
    extra: &[&str],
    status: u16,
    limit: Duration,
) -> (u16, String) {
    let t = Instant::now();
    loop {
        let got = curl(ns, url, extra, Duration::from_secs(2));
        if got.0 == status || t.elapsed() > limit {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `cilium-policy monitor [--type T]`; its lines are collected as they come.
pub struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Monitor {
    /// Starts the monitor and returns once the agent subscribed it.
    pub fn start(agent: &Agent, kind: Option<&str>) -> Monitor {
        let kind: Vec<&str> = kind.map(|k| vec!["--type", k]).unwrap_or_default();
        Self::start_with(agent, &kind)
    }

    /// [`Monitor::start`] with other `monitor` arguments; with `-o json` the "Listening" line
    /// is read from stderr and the lines are flows.
    pub fn start_with(agent: &Agent, args: &[&str]) -> Monitor {
        let mut cmd = Command::new(BIN);
        cmd.arg("--api-socket")
            .arg(&agent.socket)
            .arg("monitor")
            .args(args);
        let json = args.windows(2).any(|w| w == ["-o", "json"]);
        if json {
            cmd.stderr(Stdio::piped());
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("monitor");
        let mut first_err = None;
        if json {
            let mut err = BufReader::new(child.stderr.take().expect("monitor stderr"));
            let mut line = String::new();
            let _ = err.read_line(&mut line);
            first_err = Some(line);
        }
        let out = BufReader::new(child.stdout.take().expect("monitor stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let first = first_err.unwrap_or_else(|| {
            lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_default()
        });
        assert!(first.starts_with("Listening"), "{first}");
        Monitor {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (seen before or arriving within `limit`) that `pred` accepts.
    pub fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let t = Instant::now();
        while let Some(left) = limit.checked_sub(t.elapsed()) {
            let Ok(l) = self.lines.recv_timeout(left) else {
                return None;
            };
            self.seen.push(l.clone());
            if pred(&l) {
                return Some(l);
            }
        }
        None
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
