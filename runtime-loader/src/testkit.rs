//! Self-isolating fixtures for root integration tests: uniquely named network namespaces and
//! veth pairs, private bpffs mounts, each removed on drop (also when the test panics).
//! Names are generated here, never taken from input.

use crate::bpffs;
use codegen::testkit::skip::{skip, Need};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// True when running as root; otherwise records `test` as skipped (`codegen::testkit::skip`)
/// and returns false.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(test, Need::Root);
    false
}

/// A short unique name: `prefix` + pid + counter, at most 15 characters (interface names).
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n:x}", std::process::id() & 0xfffff);
    assert!(name.len() <= 15, "test name prefix too long: {name}");
    name
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    run("ip", args);
}

/// Runs a program with fixed arguments, panicking with its stderr on failure.
pub fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique_name(prefix);
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        ip(&args);
    }
    /// Sets a sysctl inside the namespace (`key` like `net.ipv4.ip_forward`), by writing its
    /// `/proc/sys` file from a thread in the namespace (no `sysctl` binary needed).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let value = value.to_string();
        self.run(move || {
            std::fs::write(&path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        });
    }
    /// Runs `f` on a new thread that has entered this namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            enter_netns(&path).expect("setns");
            f()
        })
        .join()
        .expect("thread in netns panicked")
    }
    /// Like [`Netns::run`] without waiting: the caller joins the returned handle.
    pub fn run_detached<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter_netns(&path).expect("setns");
            f()
        })
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter_netns(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    use std::os::fd::AsRawFd;
    // SAFETY: a valid namespace fd; affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// An endpoint wired like a Cilium pod: a veth pair whose host side (`host`) is in the node
/// namespace and whose other side (`eth0`) is in the endpoint's own namespace with `addr`/32,
/// routed through the host side (proxy ARP); optionally also `addr6`/128, routed through the
/// host side's link-local `fe80::1`. Deleting the node namespace removes it.
pub struct Endpoint {
    pub ns: Netns,
    pub host: String,
    pub addr: std::net::Ipv4Addr,
    pub addr6: Option<std::net::Ipv6Addr>,
}

/// The host side's link-local address: the IPv6 next hop of every endpoint.
pub const HOST_LINK_LOCAL: &str = "fe80::1";

impl Endpoint {
    pub fn new(node: &Netns, addr: std::net::Ipv4Addr) -> Endpoint {
        let ns = Netns::new("cpe");
        let host = unique_name("cph");
        let tmp = unique_name("cpt");
        node.exec(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &tmp, "netns", &ns.name,
        ]);
        let a = format!("{addr}/32");
        ns.exec(&["ip", "link", "set", &tmp, "name", "eth0"]);
        ns.exec(&["ip", "addr", "add", &a, "dev", "eth0"]);
        ns.exec(&["ip", "link", "set", "eth0", "up"]);
        ns.exec(&["ip", "route", "add", "default", "dev", "eth0"]);
        node.exec(&["ip", "link", "set", &host, "up"]);
        node.exec(&["ip", "route", "add", &a, "dev", &host]);
        node.sysctl(&format!("net.ipv4.conf.{host}.proxy_arp"), "1");
        // Proxy ARP answers after a random delay of up to 0.8 s by default.
        node.sysctl(&format!("net.ipv4.neigh.{host}.proxy_delay"), "0");
        Endpoint {
            ns,
            host,
            addr,
            addr6: None,
        }
    }

    /// A dual-stack endpoint: as [`Endpoint::new`], plus `addr6`/128 on `eth0`, a default IPv6
    /// route via the host side's `fe80::1` and a /128 route back on the node. Duplicate address
    /// detection is off on both sides so the addresses work at once.
    pub fn dual_stack(
        node: &Netns,
        addr: std::net::Ipv4Addr,
        addr6: std::net::Ipv6Addr,
    ) -> Endpoint {
        let mut ep = Endpoint::new(node, addr);
        let a = format!("{addr6}/128");
        let ll = format!("{HOST_LINK_LOCAL}/64");
        ep.ns.sysctl("net.ipv6.conf.eth0.accept_dad", "0");
        ep.ns
            .exec(&["ip", "-6", "addr", "add", &a, "dev", "eth0", "nodad"]);
        ep.ns.exec(&[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            HOST_LINK_LOCAL,
            "dev",
            "eth0",
        ]);
        node.sysctl(&format!("net.ipv6.conf.{}.accept_dad", ep.host), "0");
        node.exec(&["ip", "-6", "addr", "add", &ll, "dev", &ep.host, "nodad"]);
        node.exec(&["ip", "-6", "route", "add", &a, "dev", &ep.host]);
        ep.addr6 = Some(addr6);
        ep
    }
}

/// A node: a namespace with forwarding on, in which host-side interfaces live.
pub fn node_netns() -> Netns {
    let node = Netns::new("cpn");
    node.sysctl("net.ipv4.ip_forward", "1");
    node.sysctl("net.ipv6.conf.all.forwarding", "1");
    node
}

/// A private bpffs instance mounted on a fresh temporary directory; unmounted and removed on drop.
pub struct PrivateBpffs {
    pub path: PathBuf,
}

impl PrivateBpffs {
    pub fn new() -> PrivateBpffs {
        let path = std::env::temp_dir().join(unique_name("cpbpf"));
        std::fs::create_dir_all(&path).expect("creating bpffs mount point");
        bpffs::mount_bpffs(&path).expect("mounting a private bpffs");
        PrivateBpffs { path }
    }
}

impl Default for PrivateBpffs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let _ = bpffs::unmount(&self.path);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A scratch directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
