//! Root integration tests of the loader with a test-only tc program (tests/bpf/loader_test.c):
//! attach on a real veth, enforce on real packets, atomic replace, map deltas, overflow
//! refusal, pinned state surviving the loader, detach and cleanup; tcx and netlink modes.

use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use runtime_loader::probe::{tcp_ok, udp_ok, Responder, PASS_WAIT as PASS};
use runtime_loader::testkit::{node_netns, require_root, Endpoint, PrivateBpffs, TempDir};
use runtime_loader::{AttachMode, Attached, Hook, LoaderError, MapDelta, NodeLayout, RawMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a probe expected to fail waits (a stall can only make it fail, as expected).
const T: Duration = Duration::from_millis(700);
const EP: u16 = 7;

/// Compiles the test program with clang-19 (fixed arguments) into `dir`.
fn compile(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf/loader_test.c");
    let out = dir.join("loader_test.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang-19".into());
    let st = std::process::Command::new(clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("running clang-19");
    assert!(st.success(), "clang failed");
    out
}

/// Loads the object with its maps pinned under the endpoint's directory (reused when present).
fn load(obj: &Path, layout: &NodeLayout, version: u32) -> Ebpf {
    let deny = layout.endpoint_map(EP, "deny_proto").unwrap();
    let seen = layout.endpoint_map(EP, "seen").unwrap();
    let per_cpu = layout.endpoint_map(EP, "per_cpu").unwrap();
    let mut bpf = EbpfLoader::new()
        .map_pin_path("deny_proto", deny)
        .map_pin_path("seen", seen)
        .map_pin_path("per_cpu", per_cpu)
        .override_global("VERSION", &version, true)
        .load_file(obj)
        .expect("loading the test object");
    for name in ["from_ep", "to_ep"] {
        let p: &mut SchedClassifier = bpf.program_mut(name).unwrap().try_into().unwrap();
        p.load().unwrap();
    }
    bpf
}

fn attach_all(bpf: &mut Ebpf, iface: &str, layout: &NodeLayout, mode: AttachMode) -> Vec<Attached> {
    [("from_ep", Hook::FromEndpoint), ("to_ep", Hook::ToEndpoint)]
        .into_iter()
        .map(|(name, hook)| {
            let p: &mut SchedClassifier = bpf.program_mut(name).unwrap().try_into().unwrap();
            runtime_loader::attach::attach_or_replace(
                p,
                iface,
                hook,
                mode,
                &layout.link(EP, hook).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

fn deny_tcp_delta(map: &RawMap, deny: bool) -> MapDelta {
    let old = map.entries().unwrap();
    let mut new = old.clone();
    if deny {
        new.insert(6u32.to_ne_bytes().to_vec(), 1u32.to_ne_bytes().to_vec());
    } else {
        new.remove(6u32.to_ne_bytes().as_slice());
    }
    MapDelta::between(&old, &new)
}

fn counter(layout: &NodeLayout, slot: u32) -> u64 {
    let m = RawMap::open_pinned(&layout.endpoint_map(EP, "seen").unwrap()).unwrap();
    let v = m.lookup(&slot.to_ne_bytes()).unwrap().unwrap();
    u64::from_ne_bytes(v.try_into().unwrap())
}

fn lifecycle(mode: AttachMode) {
    let node = node_netns();
    let a = Endpoint::new(&node, Ipv4Addr::new(10, 77, 0, 1));
    let b = Endpoint::new(&node, Ipv4Addr::new(10, 77, 0, 2));
    let _srv = Responder::start(&a.ns, a.addr, 8080);
    let fs = PrivateBpffs::new();
    let tmp = TempDir::new("cplt");
    let obj = compile(&tmp.path);
    assert!(tcp_ok(&b.ns, a.addr, 8080, PASS), "baseline connectivity");

    let (root, iface) = (fs.path.clone(), a.host.clone());
    let layout = node.run(move || {
        let layout = NodeLayout::create(&root, "node1").unwrap();
        let mut bpf = load(&obj, &layout, 1);
        assert_eq!(
            attach_all(&mut bpf, &iface, &layout, mode),
            vec![Attached::Created; 2]
        );
        drop(bpf); // the loader goes away: attachments and pinned maps stay
        layout
    });
    assert!(
        tcp_ok(&b.ns, a.addr, 8080, PASS),
        "allowed while deny_proto is empty"
    );
    assert!(
        counter(&layout, 0) > 0 && counter(&layout, 1) > 0,
        "both hooks saw packets"
    );

    // A delta written into the pinned map is enforced by the attached program.
    let deny = RawMap::open_pinned(&layout.endpoint_map(EP, "deny_proto").unwrap()).unwrap();
    deny.expect_layout(4, 4).unwrap();
    let d = deny_tcp_delta(&deny, true);
    assert_eq!(d.len(), 1);
    d.apply(&deny, 0).unwrap();
    assert!(!tcp_ok(&b.ns, a.addr, 8080, T), "TCP denied");
    assert!(udp_ok(&b.ns, a.addr, 8080, PASS), "UDP still allowed");

    // Replace the programs (VERSION 1000): same attachment, new program, same pinned maps.
    let before = counter(&layout, 1);
    let (root, iface, obj) = (
        fs.path.clone(),
        a.host.clone(),
        tmp.path.join("loader_test.o"),
    );
    node.run(move || {
        let layout = NodeLayout::create(&root, "node1").unwrap();
        let mut bpf = load(&obj, &layout, 1000);
        assert_eq!(
            attach_all(&mut bpf, &iface, &layout, mode),
            vec![Attached::Replaced; 2]
        );
    });
    assert!(
        !tcp_ok(&b.ns, a.addr, 8080, T),
        "still denied after replace (map reused)"
    );
    assert!(udp_ok(&b.ns, a.addr, 8080, PASS));
    assert!(counter(&layout, 1) >= before + 1000, "the new program runs");

    deny_tcp_delta(&deny, false).apply(&deny, 1).unwrap();
    assert!(
        tcp_ok(&b.ns, a.addr, 8080, PASS),
        "allowed again after the delta"
    );

    // Detach: even a deny entry has no effect any more.
    deny_tcp_delta(&deny, true).apply(&deny, 0).unwrap();
    let (iface, l2) = (a.host.clone(), layout.clone());
    node.run(move || {
        for hook in Hook::BOTH {
            runtime_loader::attach::detach(&iface, hook, mode, &l2.link(EP, hook).unwrap())
                .unwrap();
        }
        l2.remove_endpoint(EP).unwrap();
    });
    assert!(tcp_ok(&b.ns, a.addr, 8080, PASS), "detached");
    assert!(layout.pinned_endpoints().unwrap().is_empty());
}

#[test]
fn root_tcx_attach_enforce_replace_detach() {
    if require_root("root_tcx_attach_enforce_replace_detach") {
        lifecycle(AttachMode::Tcx);
    }
}

#[test]
fn root_netlink_attach_enforce_replace_detach() {
    if require_root("root_netlink_attach_enforce_replace_detach") {
        lifecycle(AttachMode::Netlink);
    }
}

/// Replacing the program over and over while a client keeps trying a denied flow: no attempt
/// ever gets through, so there is no instant without a program.
#[test]
fn root_replace_leaves_no_gap() {
    if !require_root("root_replace_leaves_no_gap") {
        return;
    }
    for mode in [AttachMode::Tcx, AttachMode::Netlink] {
        let node = node_netns();
        let a = Endpoint::new(&node, Ipv4Addr::new(10, 78, 0, 1));
        let b = Endpoint::new(&node, Ipv4Addr::new(10, 78, 0, 2));
        let _srv = Responder::start(&a.ns, a.addr, 9090);
        let fs = PrivateBpffs::new();
        let tmp = TempDir::new("cplt");
        let obj = compile(&tmp.path);
        let (root, iface) = (fs.path.clone(), a.host.clone());
        let layout = node.run(move || {
            let layout = NodeLayout::create(&root, "n").unwrap();
            let mut bpf = load(&obj, &layout, 1);
            attach_all(&mut bpf, &iface, &layout, mode);
            let deny =
                RawMap::open_pinned(&layout.endpoint_map(EP, "deny_proto").unwrap()).unwrap();
            // Deny UDP (17) so that a single datagram slipping through is visible.
            deny.update(&17u32.to_ne_bytes(), &1u32.to_ne_bytes())
                .unwrap();
            layout
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (root, iface, obj, st) = (
            fs.path.clone(),
            a.host.clone(),
            tmp.path.join("loader_test.o"),
            stop.clone(),
        );
        let replacer = node.run_detached(move || {
            let layout = NodeLayout::create(&root, "n").unwrap();
            let mut n = 0;
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let mut bpf = load(&obj, &layout, 2 + n);
                attach_all(&mut bpf, &iface, &layout, mode);
                n += 1;
            }
            n
        });
        let mut leaked = 0;
        for _ in 0..40 {
            if udp_ok(&b.ns, a.addr, 9090, Duration::from_millis(50)) {
                leaked += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let replaced = replacer.join().unwrap();
        assert!(
            replaced > 3,
            "{mode:?}: only {replaced} replacements happened"
        );
        assert_eq!(
            leaked, 0,
            "{mode:?}: denied datagrams passed during replacement"
        );
        drop(layout);
    }
}

/// The test program loaded (not attached) with its maps pinned on a private bpffs; the
/// guards keep everything alive until the test ends.
struct LoadedNode {
    // Dropped in this order: programs and maps, pins, object, bpffs mount.
    _bpf: Ebpf,
    layout: NodeLayout,
    _tmp: TempDir,
    _fs: PrivateBpffs,
}

impl LoadedNode {
    fn new() -> Self {
        let fs = PrivateBpffs::new();
        let tmp = TempDir::new("cplt");
        let obj = compile(&tmp.path);
        let layout = NodeLayout::create(&fs.path, "n").unwrap();
        let bpf = load(&obj, &layout, 1);
        LoadedNode {
            _bpf: bpf,
            layout,
            _tmp: tmp,
            _fs: fs,
        }
    }

    /// The endpoint map `name`, opened through its pin.
    fn map(&self, name: &str) -> RawMap {
        RawMap::open_pinned(&self.layout.endpoint_map(EP, name).unwrap()).unwrap()
    }
}

/// A delta that would overflow the map is refused before anything is written.
#[test]
fn root_overflowing_delta_is_refused_whole() {
    if !require_root("root_overflowing_delta_is_refused_whole") {
        return;
    }
    let node = LoadedNode::new();
    let map = node.map("deny_proto");
    map.update(&1u32.to_ne_bytes(), &1u32.to_ne_bytes())
        .unwrap();
    let old = map.entries().unwrap();
    let new = (10u32..15)
        .map(|k| (k.to_ne_bytes().to_vec(), 1u32.to_ne_bytes().to_vec()))
        .collect();
    let delta = MapDelta::between(&old, &new);
    match delta.apply(&map, old.len()) {
        Err(LoaderError::MapFull {
            needed: 6, max: 4, ..
        }) => {}
        other => panic!("expected MapFull, got {other:?}"),
    }
    assert_eq!(map.entries().unwrap(), old, "nothing was written");
}

/// Per-CPU maps hold one 8-byte aligned value per possible CPU: lookups read, and updates
/// write, all of them (a buffer of one value would be overrun by the kernel).
#[test]
fn root_per_cpu_values_round_trip() {
    if !require_root("root_per_cpu_values_round_trip") {
        return;
    }
    let node = LoadedNode::new();
    let map = node.map("per_cpu");
    let cpus = aya::util::nr_cpus().unwrap();
    assert_eq!(map.value_size(), 4);
    assert_eq!(map.value_buffer_len(), 8 * cpus);
    let value: Vec<u8> = (0..cpus)
        .flat_map(|cpu| {
            let mut slot = (cpu as u32 + 100).to_ne_bytes().to_vec();
            slot.resize(8, 0);
            slot
        })
        .collect();
    map.update(&1u32.to_ne_bytes(), &value).unwrap();
    assert_eq!(
        map.lookup(&1u32.to_ne_bytes()).unwrap(),
        Some(value.clone())
    );
    let per_cpu: Vec<u32> = map
        .cpu_values(&value)
        .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        per_cpu,
        (0..cpus as u32).map(|c| c + 100).collect::<Vec<_>>()
    );
    assert_eq!(map.cpu_value_range(1), 8..12);
    let all = map.entries().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[&1u32.to_ne_bytes().to_vec()], value);
    assert!(
        map.update(&1u32.to_ne_bytes(), &[0u8; 4]).is_err(),
        "one CPU's value alone is refused"
    );
}
