//! A running agent for integration tests, driven through the real CLI and killed on drop:
//! with a datapath (root: inside a node network namespace with a private bpffs) or without
//! one (`--no-datapath`, any user).

// Shared by several test binaries; each uses a subset.
#![allow(dead_code)]

pub mod dns;
pub mod http;
pub mod verifier;

use runtime_loader::probe::Responder;
use runtime_loader::testkit::{node_netns, Endpoint, Netns};
use runtime_loader::testkit::{PrivateBpffs, TempDir};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cilium-policy");

pub struct Agent {
    pub child: Option<Child>,
    /// With a datapath: the private bpffs and the node namespace.
    pub datapath: Option<(PrivateBpffs, PathBuf)>,
    pub dir: TempDir,
    pub socket: PathBuf,
    /// Extra agent arguments (e.g. `--policy-dir`).
    pub extra: Vec<String>,
}

/// Runs `cmd` with the calling process's children entering `netns` first.
pub fn in_netns(cmd: &mut Command, netns: &std::path::Path) {
    let f = std::fs::File::open(netns).expect("open netns");
    // SAFETY: setns on an fd opened before fork; only async-signal-safe calls in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The verdict of the offline `cilium-policy trace -f FILES... PARTIES --dport PORT/PROTO -o
/// json` (`parties` like `["--src", "ns/pod", "--dst-ip", "fd00::1"]`): true for `allowed`.
pub fn trace_allows(files: &[String], parties: &[&str], port: u16, proto: &str) -> bool {
    let mut cmd = Command::new(BIN);
    cmd.arg("trace");
    for f in files {
        cmd.args(["-f", f]);
    }
    let out = cmd
        .args(parties)
        .args(["--dport", &format!("{port}/{}", proto.to_lowercase())])
        .args(["-o", "json"])
        .output()
        .expect("running trace");
    assert!(
        out.status.success(),
        "trace {parties:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("trace json");
    match v["verdict"].as_str() {
        Some("allowed") => true,
        Some("denied") => false,
        _ => panic!("trace gave no verdict: {v}"),
    }
}

impl Agent {
    pub fn start(node: &Netns) -> Agent {
        Self::start_in(node, Vec::new())
    }

    /// An agent with a datapath in `node`, with extra flags.
    pub fn start_in(node: &Netns, extra: Vec<String>) -> Agent {
        Self::start_with(Some((PrivateBpffs::new(), node.path())), extra)
    }

    /// An agent without a datapath (API and policy computation only).
    pub fn start_api_only(extra: Vec<String>) -> Agent {
        Self::start_with(None, extra)
    }

    fn start_with(datapath: Option<(PrivateBpffs, PathBuf)>, extra: Vec<String>) -> Agent {
        let dir = TempDir::new("cpag");
        let socket = dir.path.join("agent.sock");
        let mut a = Agent {
            child: None,
            datapath,
            dir,
            socket,
            extra,
        };
        a.spawn();
        a
    }

    /// The agent's command on its state directory and bpffs.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["agent", "--state-dir"])
            .arg(self.dir.path.join("state"))
            .arg("--api-socket")
            .arg(&self.socket)
            .args(&self.extra);
        match &self.datapath {
            Some((bpffs, netns)) => {
                cmd.arg("--bpf-root").arg(&bpffs.path);
                in_netns(&mut cmd, netns);
            }
            None => {
                cmd.arg("--no-datapath");
            }
        }
        cmd
    }

    /// Starts the agent (not running) on the same state directory and bpffs, expecting it to
    /// exit by itself (refused at start); its output.
    pub fn start_refused(&self) -> Output {
        assert!(self.child.is_none(), "the agent runs");
        until_exit(self.command())
    }

    /// (Re)starts the agent process on the same state directory and bpffs.
    pub fn spawn(&mut self) {
        let mut cmd = self.command();
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path.join("agent.log")).expect("log file"));
        self.child = Some(cmd.spawn().expect("starting the agent"));
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if self.cli(&["status"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agent did not come up: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("agent.log")).unwrap_or_default()
    }

    /// The agent's log once it holds `needle`, read again until `limit` (then a panic with the
    /// log): for what the agent logs after the effect a test waited for.
    pub fn log_with(&self, needle: &str, limit: Duration) -> String {
        let t = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                t.elapsed() < limit,
                "no {needle:?} within {limit:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the agent (pinned state stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--api-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running the CLI")
    }

    /// Runs the CLI and returns stdout, failing the test with stderr and the agent log otherwise.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "cilium-policy {}: {}\n--- agent log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `endpoint add --id ID --labels LABEL --ipv4 ADDR --iface HOST` for a test endpoint.
    pub fn add_endpoint(&self, id: u16, label: &str, ep: &runtime_loader::testkit::Endpoint) {
        let (id, ip) = (id.to_string(), ep.addr.to_string());
        self.ok(&[
            "endpoint", "add", "--id", &id, "--labels", label, "--ipv4", &ip, "--iface", &ep.host,
        ]);
    }

    /// After a refused change: the file `name` was not stored and the policy revision is still
    /// the one `before` (the output of the last successful import, `Revision: N`) reported.
    pub fn assert_unchanged_since(&self, before: &str, name: &str) {
        let policy = self.ok(&["policy", "get", "-o", "json"]);
        assert!(!policy.contains(name), "the refused {name} is not stored");
        let st: serde_json::Value =
            serde_json::from_str(&self.ok(&["status", "-o", "json"])).expect("status json");
        assert_eq!(
            st["policy_revision"].to_string(),
            before.trim().trim_start_matches("Revision: "),
            "no new revision"
        );
    }

    /// Runs `trigger` while `monitor --type drop` listens, and returns the first policy drop
    /// line. Other drops may come first (e.g. IPv6 neighbour discovery on IPv4-only endpoints,
    /// "Unsupported L3 protocol").
    pub fn first_policy_drop(&self, trigger: impl FnOnce()) -> String {
        self.first_drop(trigger, "Policy denied")
    }

    /// Runs `trigger` while `monitor --type drop` listens, and returns the first drop line
    /// containing `what`.
    pub fn first_drop(&self, trigger: impl FnOnce(), what: &str) -> String {
        use std::io::{BufRead, BufReader};
        let mut mon = Command::new(BIN)
            .arg("--api-socket")
            .arg(&self.socket)
            .args(["monitor", "--type", "drop"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("monitor");
        let mut lines = BufReader::new(mon.stdout.take().expect("monitor stdout")).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        // Printed once the agent has subscribed the client: no wait is needed.
        assert!(first.starts_with("Listening"), "{first}");
        trigger();
        let line = lines
            .by_ref()
            .take(200)
            .map_while(|l| l.ok())
            .find(|l| l.contains(what));
        let _ = mon.kill();
        let _ = mon.wait();
        line.unwrap_or_else(|| panic!("no drop event with {what}"))
    }

    /// Where the agent pins the node's own objects (`<bpffs>/cilium-policy/node0`).
    pub fn node_pins(&self) -> PathBuf {
        let (bpffs, _) = self.datapath.as_ref().expect("an agent with a datapath");
        bpffs.path.join("cilium-policy/node0")
    }

    /// Where the agent pins endpoint `id`'s maps (`maps/`) and tcx links.
    pub fn endpoint_pins(&self, id: u16) -> PathBuf {
        self.node_pins().join(format!("endpoints/{id}"))
    }

    /// Every endpoint's `ep_state.events_mask` (what its programs emit).
    pub fn events_masks(&self) -> Vec<u32> {
        self.ep_states().iter().map(|s| s.events_mask).collect()
    }

    /// Every endpoint's `ep_state`, read from its pinned `cp_state`.
    pub fn ep_states(&self) -> Vec<codegen::layout::EpState> {
        let (bpffs, _) = self.datapath.as_ref().expect("an agent with a datapath");
        let mut states = Vec::new();
        let nodes = bpffs.path.join("cilium-policy");
        for node in std::fs::read_dir(nodes).into_iter().flatten().flatten() {
            let eps = node.path().join("endpoints");
            for ep in std::fs::read_dir(eps).into_iter().flatten().flatten() {
                let pin = ep.path().join("maps").join(codegen::maps::STATE.name);
                let Ok(map) = runtime_loader::RawMap::open_pinned(&pin) else {
                    continue;
                };
                let v = map
                    .lookup(&0u32.to_ne_bytes())
                    .unwrap()
                    .expect("cp_state[0]");
                states.push(codegen::layout::EpState::from_bytes(&v).unwrap());
            }
        }
        states
    }

    /// The (endpoint id, nonce) of every entry of the node's pinned IPv4 TCP CT table, sorted.
    pub fn tcp_ct_owners(&self) -> Vec<(u32, u32)> {
        let pin = self
            .node_pins()
            .join("maps")
            .join(codegen::maps::CT4_TCP.name);
        let map = runtime_loader::RawMap::open_pinned(&pin).expect("the node's TCP CT table");
        let mut owners: Vec<(u32, u32)> = map
            .entries()
            .unwrap()
            .keys()
            .map(|k| {
                let k = codegen::layout::Ct4EpKey::from_bytes(k).unwrap();
                (k.ep_id, k.ep_nonce)
            })
            .collect();
        owners.sort_unstable();
        owners
    }

    /// `METHOD path` with a JSON `body` over the agent's socket: (status, body).
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let s = std::os::unix::net::UnixStream::connect(&self.socket).expect("agent socket");
        http(s, method, path, &[("Host", "agent")], body)
    }

    /// The revisions of the journal's records (`LEN:CRC:PAYLOAD` lines), in order.
    pub fn journal_revisions(&self) -> Vec<u64> {
        let bytes = std::fs::read(self.dir.path.join("state/journal.jsonl")).unwrap_or_default();
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let payload = l.splitn(3, |&b| b == b':').nth(2).expect("a framed record");
                let v: serde_json::Value =
                    serde_json::from_slice(payload).expect("a journal entry");
                v["revision"].as_u64().expect("a revision")
            })
            .collect()
    }

    /// Writes `text` to a file in the test directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path.join(name);
        std::fs::write(&p, text).expect("writing a test file");
        p.display().to_string()
    }

    /// `policy import` of `text` (written to `p.json`), which must succeed.
    pub fn import_policy(&self, text: &str) -> String {
        self.ok(&["policy", "import", &self.file("p.json", text)])
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // Unpin everything of the node so links detach before the bpffs goes.
        if let Some((bpffs, _)) = &self.datapath {
            let _ = std::fs::remove_dir_all(bpffs.path.join("cilium-policy"));
        }
    }
}

/// The seed's app1/app2/app3 on one node (`10.NET.0.1-3`), a TCP/UDP responder on app1:80,
/// and an agent with the three as endpoints 1-3 (labels `id=appN`).
pub struct Setup {
    pub node: Netns,
    pub app1: Endpoint,
    pub app2: Endpoint,
    pub app3: Endpoint,
    _srv: Responder,
}

pub fn setup(net: u8) -> (Setup, Agent) {
    setup_with(net, Vec::new())
}

/// [`setup`] with these extra agent flags.
pub fn setup_with(net: u8, extra: Vec<String>) -> (Setup, Agent) {
    let node = node_netns();
    let app1 = Endpoint::new(&node, Ipv4Addr::new(10, net, 0, 1));
    let app2 = Endpoint::new(&node, Ipv4Addr::new(10, net, 0, 2));
    let app3 = Endpoint::new(&node, Ipv4Addr::new(10, net, 0, 3));
    let srv = Responder::start(&app1.ns, app1.addr, 80);
    let agent = Agent::start_in(&node, extra);
    for (id, ep, label) in [
        (1, &app1, "id=app1"),
        (2, &app2, "id=app2"),
        (3, &app3, "id=app3"),
    ] {
        agent.add_endpoint(id, label, ep);
    }
    (
        Setup {
            node,
            app1,
            app2,
            app3,
            _srv: srv,
        },
        agent,
    )
}

/// How long a probe waits before it takes a connection as cut off.
pub const CUT_WAIT: Duration = Duration::from_millis(800);

/// [`setup_with`], then app1's ingress allowed from app2 only and app3 checked cut off: how the
/// tests that change the datapath behind the agent's back start.
pub fn setup_app1_from_app2(net: u8, extra: Vec<String>) -> (Setup, Agent) {
    let (s, agent) = setup_with(net, extra);
    agent.import_policy(&app1_from(&["app2"]));
    assert!(
        !runtime_loader::probe::tcp_ok(&s.app3.ns, s.app1.addr, 80, CUT_WAIT),
        "app3 reaches app1\n{}",
        agent.log()
    );
    (s, agent)
}

/// Runs `cilium-policy agent ARGS...` expected to exit by itself (e.g. refused at start) and
/// returns its output; fails the test if it still runs after 20 s.
pub fn agent_until_exit(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("agent").args(args);
    until_exit(cmd)
}

/// Runs `cmd` (an agent) expected to exit by itself and returns its output; fails the test if
/// it still runs after 20 s.
fn until_exit(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting an agent");
    let t = Instant::now();
    while child.try_wait().expect("waiting for the agent").is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("agent output");
            panic!(
                "the agent kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("agent output")
}

/// One HTTP/1.0 request on `stream` with `headers` and a JSON `body`: (status, body).
pub fn http(
    mut stream: impl std::io::Read + std::io::Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!("{method} {path} HTTP/1.0\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).expect("sending a request");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("reading the reply");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {out}"));
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

/// One API request over the agent's unix socket (HTTP/1.0, `Host: agent`); (status, body).
pub fn api_call(socket: &std::path::Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let s = std::os::unix::net::UnixStream::connect(socket).expect("connecting to the agent");
    http(s, method, path, &[("Host", "agent")], body)
}

/// [`api_call`] that must succeed (2xx); the reply body.
pub fn api_ok(socket: &std::path::Path, method: &str, path: &str, body: &str) -> String {
    let (status, reply) = api_call(socket, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {reply}"
    );
    reply
}

/// A benchmark size from the environment (`CP_BENCH_*`), or `default`.
pub fn bench_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `p50 …  p90 …  p99 …  max …  mean …` of `times` (sorted here; at least one).
pub fn latency_summary(times: &mut [Duration]) -> String {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    format!(
        "p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}  mean {:.2?}",
        percentile(times, 0.5),
        percentile(times, 0.9),
        percentile(times, 0.99),
        times[times.len() - 1],
        mean
    )
}

/// `tc filter show dev DEV HOOK` in `node` (HOOK: `ingress` or `egress`).
pub fn tc_filters(node: &Netns, dev: &str, hook: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", node.path().display()))
        .args(["tc", "filter", "show", "dev", dev, hook])
        .output()
        .expect("tc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Adds, on `dev`'s egress hook in `node`, a classic BPF filter that accepts every packet at
/// the agent's priority with handle 2: `cls_bpf` runs the newer filter first, so it decides in
/// front of the endpoint's.
pub fn add_filter_in_front(node: &Netns, dev: &str) {
    node.exec(&[
        "tc",
        "filter",
        "add",
        "dev",
        dev,
        "egress",
        "pref",
        "1",
        "handle",
        "2",
        "bpf",
        "bytecode",
        "1,6 0 0 4294967295",
    ]);
}

/// Replaces the program of the agent's own filter (priority 1, handle 1, `bpf`) on `hook` of
/// `dev` in `node` with one that passes every packet (bpf-templates/bench/empty.c, compiled
/// here): the filter looks like the agent's, but enforces nothing.
pub fn replace_own_filter_program(node: &Netns, dev: &str, hook: &str) {
    let clang = codegen::clang::Clang::find().expect("clang (Debian package clang-19)");
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, obj) = (dir.path().join("empty.c"), dir.path().join("empty.o"));
    std::fs::write(&src, include_str!("../../../bpf-templates/bench/empty.c")).expect("write");
    let mut cc = Command::new(&clang.path);
    cc.args(codegen::clang::FLAGS);
    if let Some(inc) = codegen::clang::multiarch_include() {
        cc.arg("-I").arg(inc);
    }
    assert!(cc
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("clang")
        .success());
    let obj = obj.display().to_string();
    node.exec(&[
        "tc",
        "filter",
        "replace",
        "dev",
        dev,
        hook,
        "pref",
        "1",
        "handle",
        "1",
        "bpf",
        "da",
        "obj",
        &obj,
        "sec",
        "classifier",
    ]);
}

/// Deletes the agent's own filter (priority 1, handle 1) from `hook` of `dev` in `node`.
pub fn delete_own_filter(node: &Netns, dev: &str, hook: &str) {
    node.exec(&[
        "tc", "filter", "del", "dev", dev, hook, "pref", "1", "handle", "1", "bpf",
    ]);
}

/// app1's ingress policy: TCP port 80 from the endpoints labelled `id=` each of `labels`.
pub fn app1_from(labels: &[&str]) -> String {
    app1_from_on(labels, 80)
}

/// app1's ingress policy: TCP `port` from the endpoints labelled `id=` each of `labels`.
pub fn app1_from_on(labels: &[&str], port: u16) -> String {
    let peers: Vec<String> = labels
        .iter()
        .map(|l| format!(r#"{{"matchLabels": {{"id": "{l}"}}}}"#))
        .collect();
    format!(
        r#"[{{"endpointSelector": {{"matchLabels": {{"id": "app1"}}}},
            "ingress": [{{"fromEndpoints": [{}],
                         "toPorts": [{{"ports": [{{"port": "{port}", "protocol": "TCP"}}]}}]}}]}}]"#,
        peers.join(", ")
    )
}

/// Agent arguments that turn the periodic datapath check off, for tests that need what they
/// changed behind the agent's back to stay until the endpoint's next change.
pub fn no_check() -> Vec<String> {
    vec!["--datapath-check-interval".into(), "0".into()]
}
