//! A real etcd for integration tests (Debian `etcd-server`), on free loopback ports in a
//! temporary directory, killed on drop: plain, or with TLS and client-certificate
//! authentication on certificates the test generates ([`Pki`]). It can be stopped and started
//! again on the same data, and its keys read back through the agent's own client.

// Shared by several test binaries; each uses a subset.
#![allow(dead_code)]

use crate::agent_harness::{api_ok, in_netns, Agent};
use codegen::testkit::skip::{skip, Need};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use runtime_loader::testkit::{node_netns, unique_name, Netns, TempDir};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A loopback TCP port bound and never listened on, for as long as it is held: a connection to
/// it is refused (nothing answers), and no other process or test can take the port meanwhile,
/// as one could a [`free_port`] (which once made an "unreachable" etcd a reset connection).
pub struct ClosedPort {
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: takes ownership of the new descriptor.
        let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mut addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_in of `len` bytes, for bind and for getsockname.
        let bound = unsafe {
            libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len) == 0
                && libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len)
                    == 0
        };
        assert!(bound, "bind: {}", std::io::Error::last_os_error());
        ClosedPort {
            _socket: socket,
            port: u16::from_be(addr.sin_port),
        }
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and the
/// certificate of another CA (that signed neither), as PEM files in a temporary directory.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("cppki");
        let ca = Self::ca("cilium-policy test CA", &dir.path, "ca");
        Self::ca("another CA", &dir.path, "other-ca");
        Self::leaf(&ca, "etcd", ExtendedKeyUsagePurpose::ServerAuth, &dir.path);
        Self::leaf(&ca, "node", ExtendedKeyUsagePurpose::ClientAuth, &dir.path);
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    fn ca(name: &str, dir: &Path, file: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("CA certificate");
        std::fs::write(dir.join(format!("{file}.pem")), ca.pem()).expect("write CA");
        ca
    }

    fn leaf(
        ca: &CertifiedIssuer<'static, KeyPair>,
        name: &str,
        usage: ExtendedKeyUsagePurpose,
        dir: &Path,
    ) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, ca).expect("certificate");
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).expect("key");
    }
}

/// Nodes routed to one another through a bridge in a fabric namespace, where etcd runs (at
/// [`Fabric::ETCD`]): node `i` (1-based) is `10.255.0.i/24` on the fabric, its pods are in
/// `10.20.i.0/24`, routed to the node that holds them.
pub struct Fabric {
    pub nodes: Vec<Netns>,
    pub etcd: Etcd,
    /// Last: the namespace goes after etcd and the nodes' links.
    pub ns: Netns,
}

impl Fabric {
    pub const ETCD: &str = "10.255.0.254";

    /// `n` nodes (at most 250) and etcd, or `None` (skip recorded) without an etcd binary.
    pub fn new(test: &str, n: u8) -> Option<Fabric> {
        let ns = Netns::new("cpfab");
        ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", Self::ETCD),
            "dev",
            "br0",
        ]);
        ns.exec(&["ip", "link", "set", "br0", "up"]);
        let etcd = Etcd::start_in(test, &ns.path(), Self::ETCD)?;
        let nodes = (1..=n).map(|i| Self::node(&ns, i, n)).collect();
        Some(Fabric { nodes, etcd, ns })
    }

    fn node(fabric: &Netns, i: u8, n: u8) -> Netns {
        let node = node_netns();
        let peer = unique_name("cpf");
        node.exec(&[
            "ip",
            "link",
            "add",
            "fab",
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &fabric.name,
        ]);
        node.exec(&[
            "ip",
            "addr",
            "add",
            &format!("10.255.0.{i}/24"),
            "dev",
            "fab",
        ]);
        node.exec(&["ip", "link", "set", "fab", "up"]);
        fabric.exec(&["ip", "link", "set", &peer, "master", "br0", "up"]);
        for j in (1..=n).filter(|j| *j != i) {
            let (net, via) = (format!("10.20.{j}.0/24"), format!("10.255.0.{j}"));
            node.exec(&["ip", "route", "add", &net, "via", &via]);
        }
        node
    }

    /// The agent flags of node `i` (`--node node-I`) on this etcd.
    pub fn agent_args(&self, i: usize, extra: &[&str]) -> Vec<String> {
        let node = format!("node-{i}");
        [
            "--kvstore",
            "etcd",
            "--kvstore-endpoint",
            &self.etcd.url,
            "--node",
            &node,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    }
}

/// An etcd server, killed on drop.
pub struct Etcd {
    child: Option<Child>,
    pub url: String,
    /// Where it listens (`127.0.0.1`, or an address in `netns`) and its client port.
    host: String,
    client_port: u16,
    /// The network namespace it runs in (the caller's when `None`).
    netns: Option<PathBuf>,
    args: Vec<String>,
    dir: TempDir,
    /// The client of [`Etcd::keys_under`], made at its first call.
    client: std::sync::OnceLock<agent::kvstore::etcd::Etcd>,
}

impl Etcd {
    /// Starts a plain etcd, or records `test` as skipped when there is no etcd binary.
    pub fn start(test: &str) -> Option<Etcd> {
        Self::start_with(test, None, None)
    }

    /// Starts a plain etcd inside the network namespace `netns`, listening on `host` (an
    /// address there), on ports 2379 and 2380.
    pub fn start_in(test: &str, netns: &Path, host: &str) -> Option<Etcd> {
        Self::start_with(test, None, Some((netns, host)))
    }

    /// Starts etcd with TLS (server certificate of `pki`) that requires client certificates
    /// signed by `pki`'s CA.
    pub fn start_tls(test: &str, pki: &Pki) -> Option<Etcd> {
        Self::start_with(test, Some(pki), None)
    }

    fn start_with(test: &str, pki: Option<&Pki>, netns: Option<(&Path, &str)>) -> Option<Etcd> {
        if Command::new("etcd").arg("--version").output().is_err() {
            skip(test, Need::Etcd);
            return None;
        }
        let dir = TempDir::new("cpetcd");
        let (host, (client, peer)) = match netns {
            Some((_, host)) => (host.to_string(), (2379, 2380)),
            None => ("127.0.0.1".to_string(), (free_port(), free_port())),
        };
        let scheme = if pki.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{host}:{client}");
        let peer_url = format!("http://{host}:{peer}");
        let data = dir.path.join("data").display().to_string();
        let mut args: Vec<String> = [
            "--name",
            "n0",
            "--data-dir",
            &data,
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("n0={peer_url}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(pki) = pki {
            for (flag, file) in [
                ("--cert-file", "etcd.pem"),
                ("--key-file", "etcd-key.pem"),
                ("--trusted-ca-file", "ca.pem"),
            ] {
                args.push(flag.to_string());
                args.push(pki.path(file).display().to_string());
            }
            args.push("--client-cert-auth".to_string());
        }
        let mut etcd = Etcd {
            child: None,
            url,
            host,
            client_port: client,
            netns: netns.map(|(p, _)| p.to_path_buf()),
            args,
            dir,
            client: std::sync::OnceLock::new(),
        };
        etcd.restart();
        Some(etcd)
    }

    /// Starts the server (again, on the same data and ports) and waits for its port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path.join("etcd.log"))
            .expect("log");
        let mut cmd = Command::new("etcd");
        cmd.args(&self.args).stdout(Stdio::null()).stderr(log);
        if let Some(ns) = &self.netns {
            in_netns(&mut cmd, ns);
        }
        self.child = Some(cmd.spawn().expect("starting etcd"));
        let (addr, netns) = ((self.host.clone(), self.client_port), self.netns.clone());
        let up = std::thread::spawn(move || {
            if let Some(ns) = netns {
                runtime_loader::testkit::enter_netns(&ns).expect("entering etcd's namespace");
            }
            let t = Instant::now();
            while std::net::TcpStream::connect((addr.0.as_str(), addr.1)).is_err() {
                if t.elapsed() > Duration::from_secs(20) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            true
        });
        assert!(up.join().unwrap_or(false), "etcd did not come up");
    }

    /// Kills the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// An agent without a datapath for node `node` (names must differ between agents sharing
    /// a kvstore), with extra flags.
    pub fn agent(&self, node: &str, extra: &[&str]) -> Agent {
        let mut args: Vec<String> = ["--kvstore", "etcd", "--kvstore-endpoint", &self.url]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--node", node].iter().chain(extra).map(|s| s.to_string()));
        Agent::start_api_only(args)
    }

    /// The keys under `prefix` (plain etcd only), through the agent's own client.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        let etcd = self.client(prefix);
        let (client, prefix) = (etcd.clone(), prefix.to_string());
        etcd.block_on(async move { client.keys_under(&prefix).await })
            .expect("listing keys")
    }

    /// The value of `key` (plain etcd only).
    pub fn get(&self, key: &str) -> Option<String> {
        let etcd = self.client(key);
        let (client, key) = (etcd.clone(), key.to_string());
        etcd.block_on(async move { client.get(&key).await })
            .expect("reading a key")
    }

    /// Puts `key` (plain etcd only), as another node would.
    pub fn put(&self, key: &str, value: &str) {
        let etcd = self.client(key);
        let (client, key, value) = (etcd.clone(), key.to_string(), value.to_string());
        etcd.block_on(async move { client.put(&key, &value, 0).await })
            .expect("putting a key")
    }

    /// The lease `key` is under (0: none), if it exists (plain etcd only).
    pub fn lease_of(&self, key: &str) -> Option<i64> {
        let etcd = self.client(key);
        let (client, e, key) = (etcd.client(), etcd.clone(), key.to_string());
        etcd.block_on(async move {
            let r = client
                .kv_client()
                .get(key, None)
                .await
                .map_err(|err| e.call_error("get", &err))?;
            Ok(r.kvs().first().map(|kv| kv.lease()))
        })
        .expect("reading a key's lease")
    }

    /// Deletes `key` (plain etcd only), as another node would.
    pub fn delete(&self, key: &str) {
        let etcd = self.client(key);
        let (client, key) = (etcd.clone(), key.to_string());
        etcd.block_on(async move { client.delete(&key).await })
            .expect("deleting a key")
    }

    /// Revokes every lease (as if they had expired), deleting the keys put under them; how
    /// many there were.
    pub fn revoke_all_leases(&self) -> usize {
        let etcd = self.client("/");
        let (mut client, e) = (etcd.client(), etcd.clone());
        etcd.block_on(async move {
            let leases = client
                .leases()
                .await
                .map_err(|err| e.call_error("leases", &err))?;
            for l in leases.leases() {
                client
                    .lease_revoke(l.id())
                    .await
                    .map_err(|err| e.call_error("revoke", &err))?;
            }
            Ok(leases.leases().len())
        })
        .expect("revoking leases")
    }

    fn client(&self, prefix: &str) -> &agent::kvstore::etcd::Etcd {
        self.client.get_or_init(|| {
            let cfg = agent::kvstore::EtcdConfig {
                endpoint: self.url.clone(),
                ca: None,
                cert: None,
                key: None,
                prefix: prefix.to_string(),
                ipcache_prefix: agent::kvstore::ipcache::DEFAULT_PREFIX.to_string(),
                node: "test".to_string(),
                lease_ttl: 15,
            };
            agent::kvstore::connect::connect(&cfg).expect("client")
        })
    }
}

/// The identity `agent` gave its endpoint `id`.
pub fn identity(agent: &Agent, id: u16) -> u64 {
    let list: serde_json::Value =
        serde_json::from_str(&agent.ok(&["endpoint", "list", "-o", "json"])).expect("json");
    list.as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id))
        .and_then(|e| e["identity"].as_u64())
        .unwrap_or_else(|| panic!("endpoint {id} missing: {list}"))
}

/// The identities' default key prefix.
pub const PREFIX: &str = agent::kvstore::identities::DEFAULT_PREFIX;

/// Polls `cond` every 50 ms for up to `limit`: how long it took to hold.
pub fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The claim keys of `node` (`HEX(L)/NODE` under `PREFIX/users/`).
pub fn claims_of(etcd: &Etcd, node: &str) -> usize {
    let users = etcd.keys_under(&format!("{PREFIX}/users/"));
    users
        .iter()
        .filter(|k| k.ends_with(&format!("/{node}")))
        .count()
}

/// The leases the claim keys of `node` are under.
pub fn claim_leases(etcd: &Etcd, node: &str) -> std::collections::BTreeSet<i64> {
    let users = format!("{PREFIX}/users/");
    etcd.keys_under(&users)
        .iter()
        .filter(|k| k.ends_with(&format!("/{node}")))
        .filter_map(|k| etcd.lease_of(&format!("{users}{k}")))
        .collect()
}

/// Adds endpoint `id` labelled `id=APP` with address `ip` to `agent` and returns its identity.
pub fn add_at(agent: &Agent, id: u16, app: &str, ip: &str) -> u64 {
    let (n, label, iface) = (id.to_string(), format!("id={app}"), format!("lxc{id}"));
    agent.ok(&[
        "endpoint", "add", "--id", &n, "--labels", &label, "--iface", &iface, "--ipv4", ip,
    ]);
    identity(agent, id)
}

/// `policy/resolve` on `agent` from address `from` to local endpoint `to`, TCP port 80: the
/// source identity and the verdict.
pub fn resolve(agent: &Agent, from: &str, to: u16) -> (u64, String) {
    let path = format!("/v1/policy/resolve?from={from}&to={to}&port=80&protocol=tcp");
    let v: serde_json::Value =
        serde_json::from_str(&api_ok(&agent.socket, "GET", &path, "")).expect("json");
    (
        v["from"]["identity"].as_u64().unwrap_or_default(),
        v["verdict"].as_str().unwrap_or_default().to_string(),
    )
}

/// Waits up to `limit` for `agent` to resolve `from` (to endpoint 1) as `want`: how long it
/// took.
pub fn sees(agent: &Agent, from: &str, want: (u64, &str), limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let got = resolve(agent, from, 1);
        if (got.0, got.1.as_str()) == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "{from}: {got:?}, want {want:?} within {limit:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Adds endpoint `id` labelled `id=APP` to `agent` and returns its identity.
pub fn add(agent: &Agent, id: u16, app: &str) -> u64 {
    let (n, label, iface) = (id.to_string(), format!("id={app}"), format!("lxc{id}"));
    agent.ok(&[
        "endpoint", "add", "--id", &n, "--labels", &label, "--iface", &iface,
    ]);
    identity(agent, id)
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
