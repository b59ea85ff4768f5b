//! Real containers for the CNI tests: Debian's podman with its CNI backend and runc, run inside a
//! node network namespace (so the veths' host sides are the node's), with private
//! storage, a private CNI configuration directory and plugin directory, and a busybox image
//! imported locally (no registry).

#![allow(dead_code)]

use codegen::testkit::skip::{skip, Need};
use runtime_loader::testkit::{unique_name, Netns, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian's containernetworking-plugins are.
const CNI_PLUGINS: &str = "/usr/lib/cni";

/// True when podman, runc, the CNI plugins and busybox-static are installed; otherwise records
/// `test` as skipped.
pub fn available(test: &str) -> bool {
    let have = |p: &str| Path::new(p).exists();
    let ok = have("/usr/bin/podman")
        && (have("/usr/sbin/runc") || have("/usr/bin/runc"))
        && have(&format!("{CNI_PLUGINS}/ptp"))
        && have("/bin/busybox");
    if !ok {
        skip(test, Need::Podman);
    }
    ok
}

/// The CNI plugin binary, built next to the CLI by `cargo test --workspace`.
pub fn cni_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_cilium-policy")).with_file_name("cilium-policy-cni");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p cilium-policy-cni` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A podman installation private to one test, whose containers' host sides live in `node`.
pub struct Podman {
    pub dir: TempDir,
    pub node: String,
    pub network: String,
    pub image: String,
}

impl Podman {
    /// Private storage and configuration; one network `NAME` chaining `chain` (the JSON of the
    /// veth plugin, e.g. ptp with host-local IPAM) and cilium-policy-cni with `socket`.
    pub fn new(node: &Netns, chain: &str, socket: &Path) -> Podman {
        let dir = TempDir::new("cppm");
        let plugins = dir.path.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        for e in std::fs::read_dir(CNI_PLUGINS).unwrap() {
            let e = e.unwrap();
            std::os::unix::fs::symlink(e.path(), plugins.join(e.file_name())).unwrap();
        }
        std::os::unix::fs::symlink(cni_binary(), plugins.join("cilium-policy-cni")).unwrap();
        let network = unique_name("cpnet");
        let netconf = dir.path.join("net.d");
        std::fs::create_dir_all(&netconf).unwrap();
        let conflist = format!(
            r#"{{"cniVersion": "1.0.0", "name": "{network}", "plugins": [{chain},
               {{"type": "cilium-policy-cni", "apiSocket": "{}"}}]}}"#,
            socket.display()
        );
        std::fs::write(netconf.join(format!("{network}.conflist")), conflist).unwrap();
        std::fs::write(
            dir.path.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\n\
                 network_config_dir = \"{}\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nlock_type = \"file\"\n",
                plugins.display(),
                netconf.display()
            ),
        )
        .unwrap();
        let p = Podman {
            dir,
            node: node.name.clone(),
            network,
            image: "localhost/cptest:1".into(),
        };
        p.import_image();
        p
    }

    /// A busybox-static root file system with a web root, imported as `localhost/cptest:1`.
    fn import_image(&self) {
        let root = self.dir.path.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for tool in ["sh", "nc", "printf", "httpd", "sleep", "true"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
        }
        std::fs::write(root.join("www/index.html"), "hello from web\n").unwrap();
        let tar = self.dir.path.join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the image root");
        let out = self.run(&["import", tar.to_str().unwrap(), &self.image]);
        assert!(out.status.success(), "podman import: {}", stderr(&out));
    }

    /// `podman GLOBAL-FLAGS ARGS` in the node namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let d = &self.dir.path;
        // nsenter, not `ip netns exec`: the latter remounts /sys, hiding the cgroup mounts
        // runc needs; nothing here reads the node's sysfs (the plugin asks the kernel by ioctl).
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.node))
            .arg("podman")
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            // Its own libpod state and file locks: podman instances of parallel tests share
            // nothing (the default shared-memory locks and /run/libpod would collide).
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs", "--runtime", "runc"])
            .args(["--network-backend", "cni"])
            .arg("--cni-config-dir")
            .arg(d.join("net.d"))
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running podman")
    }

    /// `podman run` on this network with the test image and the required ulimits.
    pub fn container(&self, name: &str, detach: bool, cmd: &[&str]) -> Output {
        let mut a = vec!["run", "--name", name, "--network", &self.network];
        a.extend([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        if detach {
            a.push("-d");
        } else {
            a.push("--rm");
        }
        a.push(&self.image);
        a.extend_from_slice(cmd);
        self.run(&a)
    }

    /// The container's address on the test network.
    pub fn address(&self, name: &str) -> String {
        let fmt = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network
        );
        let out = self.run(&["inspect", "-f", &fmt, name]);
        assert!(out.status.success(), "podman inspect: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["system", "reset", "-f"]);
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A veth pair in `node` whose host side `host` is up (the container side `{host}c` stays in
/// the node: what a ptp plugin would have made, for tests that run the plugin by hand).
pub fn host_veth(node: &Netns, host: &str) {
    let peer = format!("{host}c");
    node.exec(&[
        "ip", "link", "add", host, "type", "veth", "peer", "name", &peer,
    ]);
    node.exec(&["ip", "link", "set", host, "up"]);
}

/// A network configuration chaining the plugin after a ptp-style result: host side `host`,
/// the container's address `addr` (an `a.b.c.d/32`).
pub fn chained_conf(socket: &str, host: &str, addr: &str) -> String {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "chained", "type": "cilium-policy-cni",
            "apiSocket": "{socket}", "prevResult": {{"cniVersion": "1.0.0",
            "interfaces": [{{"name": "{host}"}}, {{"name": "eth0", "sandbox": "/run/netns/x"}}],
            "ips": [{{"address": "{addr}", "interface": 1}}]}}}}"#
    )
}

/// Runs the plugin in `node` as a runtime would: `command` for container `cid` of pod `pod`,
/// the configuration `conf` on stdin; its output.
pub fn run_plugin(node: &Netns, command: &str, cid: &str, pod: &str, conf: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", node.path().display()))
        .arg(cni_binary())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", "/run/netns/x")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", format!("K8S_POD_NAME={pod}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
