//! Real HTTP processes for the L7 tests: a server (`python3 -m http.server` on a directory of
//! files) and a client (`curl`), each run inside an endpoint's network namespace, and a
//! `monitor` process whose lines a test can wait for.

use super::{in_netns, Agent, BIN};
use runtime_loader::testkit::{Netns, TempDir};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A static HTTP server process in a namespace, serving `files` (name, content); killed on drop.
pub struct HttpServer {
    child: Child,
    _dir: TempDir,
}

impl HttpServer {
    pub fn start(ns: &Netns, addr: IpAddr, port: u16, files: &[(&str, &str)]) -> HttpServer {
        let dir = TempDir::new("cphttp");
        for (name, text) in files {
            std::fs::write(dir.path.join(name), text).expect("writing a served file");
        }
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "http.server", &port.to_string(), "--bind"])
            .arg(addr.to_string())
            .arg("--directory")
            .arg(&dir.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        in_netns(&mut cmd, &ns.path());
        let child = cmd.spawn().expect("python3 (the test HTTP server)");
        let sa = SocketAddr::new(addr, port);
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
        let mut cmd = Command::new(BIN);
        cmd.arg("--api-socket").arg(&agent.socket).arg("monitor");
        if let Some(k) = kind {
            cmd.args(["--type", k]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("monitor");
        let out = BufReader::new(child.stdout.take().expect("monitor stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
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
