//! The endpoint datapath and packets of the per-packet measurements, shared by
//! `benches/per_packet.rs` and `examples/datapath_ab.rs` (each uses a part of it).
#![allow(dead_code)]

use aya::programs::SchedClassifier;
use codegen::clang::{Clang, ObjectCache};
use codegen::entries::EndpointEntries;
use codegen::ipcache::ipcache_images;
use codegen::template::Globals;
use codegen::{headers, testkit, EndpointConfig, Features, MapSizes};
use ir::{Direction, EndpointPolicy, IpCache, NumericIdentity};
use runtime_loader::load::default_state;
use runtime_loader::packet::PacketSpec;
use runtime_loader::{load, test_run, Datapath, LoadOptions};
use std::path::PathBuf;

/// The port the first peer (identity 256, 10.1.1.0) is denied by a deny entry.
pub const DENY_ENTRY_PORT: u16 = 3000;

/// `entries` ingress allows (codegen's synthetic shape), one ingress deny of TCP/DENY_ENTRY_PORT
/// from the first peer, and an ipcache address per peer identity (identity `id` is 10.1.0.0 +
/// id, and fd01::id when the endpoint has IPv6).
pub fn policy(ep: &EndpointConfig, entries: u32, ipcache: &mut IpCache) -> EndpointPolicy {
    let mut p = testkit::ingress_policy(ep);
    p.egress_enforced = true;
    testkit::synthetic_allows(&mut p, entries);
    let deny = ir::MapKey {
        identity: NumericIdentity(256),
        direction: Direction::Ingress,
        protocol: 6,
        port: DENY_ENTRY_PORT,
        port_prefix_len: 16,
    };
    p.entries.insert(
        deny,
        ir::MapEntry {
            verdict: ir::MapVerdict::Deny,
            rules: vec![ir::RuleId(entries)],
            audited: vec![],
        },
    );
    for id in (0..entries.div_ceil(10)).map(|k| 256 + k) {
        let v4 = std::net::Ipv4Addr::from(0x0a01_0000 + id);
        let v6 = std::net::Ipv6Addr::from((0xfd01u128 << 112) | u128::from(id));
        let mut addrs = vec![std::net::IpAddr::V4(v4)];
        if ep.ipv6.is_some() {
            addrs.push(std::net::IpAddr::V6(v6));
        }
        for a in addrs {
            ipcache.insert(ir::IpNet::from(a), NumericIdentity(id));
        }
    }
    p
}

/// How a datapath of [`datapath`] is built besides its policy.
#[derive(Clone, Default)]
pub struct Build<'a> {
    pub sizes: MapSizes,
    /// Dual-stack (fd00::1) instead of IPv4 only.
    pub ipv6: bool,
    /// Text put before the endpoint header (`#define`s of a variant under comparison).
    pub prelude: String,
    pub map_pins: Vec<(&'a str, PathBuf)>,
}

/// The endpoint's datapath (10.0.0.1) with `entries` policy entries, events off.
pub fn datapath(entries: u32, build: &Build<'_>) -> Datapath {
    let mut ep = testkit::endpoint(1, "bench/ep", 1000, "10.0.0.1");
    ep.ipv6 = build.ipv6.then(|| "fd00::1".parse().unwrap());
    let mut cache = IpCache::default();
    let p = policy(&ep, entries, &mut cache);
    let (features, _) = Features::derive(&ep, &p, None);
    let header = format!(
        "{}{}",
        build.prelude,
        headers::render_template(&features, &build.sizes)
    );
    let obj = compile(&header, None);
    let e = EndpointEntries::build(&p);
    let mut images = vec![e.policy_image()];
    images.extend(ipcache_images(&cache));
    let state = quiet_state();
    load(
        &obj,
        &LoadOptions {
            globals: Some(Globals::of(&ep)),
            images: images.iter().collect(),
            state: Some(state),
            map_pins: build.map_pins.clone(),
            // The policy map sized from the endpoint's entries, as the agent creates it.
            max_entries: codegen::maps::endpoint_max_entries(
                build.sizes.policy_capacity(e.hash_len()),
            ),
            verify: runtime_loader::load::Verify::Both,
        },
    )
    .unwrap()
}

/// The default endpoint state with events off.
pub fn quiet_state() -> codegen::layout::EpState {
    codegen::layout::EpState {
        events_mask: 0,
        ..default_state()
    }
}

fn objects_dir() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("bench-objects")
}

/// The endpoint object of `ep_header` (cached), or with `source` the object of that C file.
pub fn compile(ep_header: &str, source: Option<&str>) -> Vec<u8> {
    let clang = Clang::find().expect("clang (Debian package clang-19)");
    let dir = objects_dir();
    match source {
        None => {
            let node = headers::render_node(&MapSizes::default(), 1, 0);
            let (path, _) = ObjectCache::new(dir)
                .get_or_compile(&clang, ep_header, &node, "bench")
                .unwrap();
            std::fs::read(path).unwrap()
        }
        Some(src) => {
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("empty.o");
            let c = dir.join("empty.c");
            std::fs::write(&c, src).unwrap();
            let mut cmd = std::process::Command::new(&clang.path);
            cmd.args(codegen::clang::FLAGS);
            if let Some(inc) = codegen::clang::multiarch_include() {
                cmd.arg("-I").arg(inc);
            }
            let st = cmd.arg("-c").arg(&c).arg("-o").arg(&out).status().unwrap();
            assert!(st.success());
            std::fs::read(out).unwrap()
        }
    }
}

/// The empty classifier (`cil_to_container`, passes every packet), loaded: the floor of the
/// per-packet figures.
pub fn floor() -> aya::Ebpf {
    let empty = compile(
        "",
        Some(include_str!("../../../bpf-templates/bench/empty.c")),
    );
    let mut floor = aya::Ebpf::load(&empty).expect("load the empty program");
    let prog: &mut SchedClassifier = floor
        .program_mut("cil_to_container")
        .unwrap()
        .try_into()
        .unwrap();
    prog.load().expect("verifier accepts the empty program");
    floor
}

/// Allowed new connections: from the first peer to ports 1000-1009, a distinct tuple each
/// (the ingress program does not check the destination address, which varies with the source
/// port to keep tuples distinct; 10.200/16 never meets the established connection's).
pub fn new_allowed(i: u64) -> PacketSpec {
    let round = (i / 60_000) as u32;
    PacketSpec::new(
        "10.1.1.0".parse().unwrap(),
        std::net::Ipv4Addr::from(0x0ac8_0000 | (round & 0xffff)).into(),
        6,
        1024 + (i % 60_000) as u16,
        1000 + (i % 10) as u16,
    )
}

/// Established connections that evict each other from the flow cache: FLOWS connections
/// from the first peer to port 1000 (more than the cache has slots, visited round-robin).
pub const FLOWS: u16 = 4096;

pub fn many_flows() -> Vec<PacketSpec> {
    (0..FLOWS)
        .map(|i| {
            PacketSpec::new(
                "10.1.1.0".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
                6,
                20_000 + i,
                1000,
            )
        })
        .collect()
}

/// A new connection from the first peer that policy denies by default (no entry matches).
pub fn denied() -> PacketSpec {
    PacketSpec::new(
        "10.1.1.0".parse().unwrap(),
        "10.0.0.1".parse().unwrap(),
        6,
        40000,
        2000,
    )
}

/// Opens the connection of `syn` (one run) and returns its ACK, an established packet.
pub fn open(prog: &SchedClassifier, syn: &PacketSpec) -> PacketSpec {
    assert!(test_run(prog, &syn.build(), 1).unwrap().passed());
    PacketSpec {
        tcp_flags: 0x10,
        ..syn.clone()
    }
}
