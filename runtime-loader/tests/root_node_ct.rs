//! Root tests of the node-wide connection tracking (needs root, a private bpffs and clang-19):
//! endpoints sharing the node's CT maps never see each other's entries, a new endpoint on a
//! deleted one's id and address starts clean, a reload keeps connections, and a churn of
//! 1,000,000 short connections through a small CT neither passes a denied flow nor drops an
//! active allowed one (BPF_PROG_TEST_RUN).

mod common;

use codegen::layout::{Ct4EpKey, EpState};
use codegen::{maps, MapSizes};
use common::datapath::{ip, run, setup_endpoint, tcp, EP_ID};
use ir::Direction;
use runtime_loader::packet::PacketSpec;
use runtime_loader::testkit::PrivateBpffs;
use runtime_loader::{Datapath, NodeLayout};

/// A UDP/53 query the endpoint (10.0.0.1) sends to the friend: its egress policy allows it;
/// the reply passes only as a tracked connection (no ingress rule allows UDP).
fn query(sport: u16) -> PacketSpec {
    PacketSpec::new(ip("10.0.0.1"), ip("10.0.0.2"), 17, sport, 53)
}

fn load(layout: &NodeLayout, id: u32, sizes: &MapSizes) -> Option<Datapath> {
    let pins = layout.map_pins(id as u16).unwrap();
    setup_endpoint(id, false, sizes, pins)
}

fn nonce(dp: &Datapath) -> u32 {
    let v = dp
        .map(maps::STATE.name)
        .unwrap()
        .lookup(&0u32.to_ne_bytes())
        .unwrap()
        .unwrap();
    EpState::from_bytes(&v).unwrap().ep_nonce
}

/// The endpoints (id, nonce) of the entries of the node's IPv4 non-TCP CT table.
fn ct_owners(dp: &Datapath) -> Vec<(u32, u32)> {
    let map = dp.map(maps::CT4_ANY.name).unwrap();
    let mut owners: Vec<(u32, u32)> = map
        .entries()
        .unwrap()
        .keys()
        .map(|k| {
            let k = Ct4EpKey::from_bytes(k).unwrap();
            (k.ep_id, k.ep_nonce)
        })
        .collect();
    owners.sort_unstable();
    owners
}

#[test]
fn root_node_ct_keeps_endpoints_apart_and_a_reused_address_starts_clean() {
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let sizes = MapSizes::default();
    let Some(a) = load(&layout, EP_ID, &sizes) else {
        return;
    };
    // Another endpoint with the same address (as a deleted pod's successor could have) and
    // the same policy, sharing the node's CT maps.
    let b = load(&layout, EP_ID + 1, &sizes).unwrap();
    let q = query(5000);
    assert!(run(&a, Direction::Egress, &q));
    assert!(
        run(&a, Direction::Ingress, &q.reply()),
        "a's reply is tracked"
    );
    assert!(
        !run(&b, Direction::Ingress, &q.reply()),
        "b never matches a's entry"
    );
    assert_eq!(ct_owners(&a), [(EP_ID, nonce(&a))]);
    // Both programs use the one node map.
    assert_eq!(ct_owners(&b), ct_owners(&a));

    // The agent restarts: the programs are loaded again on the same pins and the endpoint
    // keeps its nonce, so its connections survive.
    let first_nonce = nonce(&a);
    drop(a);
    let a = load(&layout, EP_ID, &sizes).unwrap();
    assert_eq!(nonce(&a), first_nonce);
    assert!(
        run(&a, Direction::Ingress, &q.reply()),
        "established across a reload"
    );

    // The endpoint is deleted (its pins removed) and a new one gets its id and address: its
    // new state has a new nonce, and the old entry, still in the node map until it ages out,
    // is never its.
    drop(a);
    layout.remove_endpoint(EP_ID as u16).unwrap();
    let a2 = load(&layout, EP_ID, &sizes).unwrap();
    assert_ne!(nonce(&a2), first_nonce);
    assert_eq!(
        ct_owners(&a2),
        [(EP_ID, first_nonce)],
        "the old entry is left"
    );
    assert!(
        !run(&a2, Direction::Ingress, &q.reply()),
        "the new endpoint starts clean"
    );
    // Its own connections are tracked as usual.
    assert!(run(&a2, Direction::Egress, &q));
    assert!(run(&a2, Direction::Ingress, &q.reply()));
}

/// 1,000,000 short UDP connections through a CT of 4,096 non-TCP entries (no flow cache, so
/// every packet of the active connection is a CT lookup): every 100 new connections the
/// endpoint's long-lived connection sends a reply, which must pass, and a denied peer tries
/// to connect, which must be dropped.
#[test]
fn root_node_ct_churn_keeps_active_connections_and_denies() {
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let sizes = MapSizes {
        ct_tcp: 4_096,
        ct_any: 4_096,
        flow_cache: 0,
        ..MapSizes::default()
    };
    let Some(dp) = load(&layout, EP_ID, &sizes) else {
        return;
    };
    let active = query(1);
    assert!(run(&dp, Direction::Egress, &active));
    let denied = tcp("10.0.0.3", "10.0.0.1", 40000, 80);
    for n in 0..1_000_000u32 {
        // Distinct tuples: source ports 1024.. and destinations 10.1.x.y (all allowed on
        // UDP/53, peers of the world identity).
        let dst = std::net::Ipv4Addr::from(0x0a01_0000 | (n >> 14));
        let sport = 1024 + (n & 0x3fff) as u16;
        let q = PacketSpec::new(ip("10.0.0.1"), dst.into(), 17, sport, 53);
        assert!(run(&dp, Direction::Egress, &q), "new connection {n}");
        if n % 100 == 0 {
            assert!(
                run(&dp, Direction::Ingress, &active.reply()),
                "active connection dropped after {n} new ones"
            );
            assert!(
                !run(&dp, Direction::Ingress, &denied),
                "denied flow passed after {n} new connections"
            );
        }
    }
    // The churn did evict: the first short connection is forgotten, so its reply is decided by
    // policy again (no ingress rule allows it).
    let first = PacketSpec::new(ip("10.0.0.1"), ip("10.1.0.0"), 17, 1024, 53);
    assert!(!run(&dp, Direction::Ingress, &first.reply()));
}

/// TCP and other protocols have tables of their own, each of its flag's size: a UDP flood
/// that fills (and keeps evicting from) the other table leaves every TCP connection tracked.
/// Without the split (one LRU per family, before issue 15's split) the flood evicted them.
#[test]
fn root_node_ct_tcp_survives_a_udp_flood_and_each_table_has_its_size() {
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let sizes = MapSizes {
        ct_tcp: 8_192,
        ct_any: 4_096,
        flow_cache: 0,
        ..MapSizes::default()
    };
    let pins = layout.map_pins(EP_ID as u16).unwrap();
    let Some(dp) = setup_endpoint(EP_ID, true, &sizes, pins) else {
        return;
    };
    for (table, want) in [
        (maps::CT4_TCP.name, sizes.ct_tcp),
        (maps::CT6_TCP.name, sizes.ct_tcp),
        (maps::CT4_ANY.name, sizes.ct_any),
        (maps::CT6_ANY.name, sizes.ct_any),
    ] {
        assert_eq!(dp.map(table).unwrap().max_entries(), want, "{table}");
    }
    // 1,000 TCP connections from the friend to port 80 (allowed on ingress); their ACKs back
    // pass only as tracked replies (the endpoint's egress policy allows UDP/53 only).
    let syns: Vec<PacketSpec> = (0..1_000u16)
        .map(|i| tcp("10.0.0.2", "10.0.0.1", 20_000 + i, 80))
        .collect();
    for syn in &syns {
        assert!(run(&dp, Direction::Ingress, syn));
    }
    let ack = |syn: &PacketSpec| PacketSpec {
        tcp_flags: 0x10,
        ..syn.reply()
    };
    // 100,000 UDP connections, 24 times the other table.
    for n in 0..100_000u32 {
        let dst = std::net::Ipv4Addr::from(0x0a01_0000 | (n >> 14));
        let sport = 1024 + (n & 0x3fff) as u16;
        let q = PacketSpec::new(ip("10.0.0.1"), dst.into(), 17, sport, 53);
        assert!(run(&dp, Direction::Egress, &q), "new connection {n}");
    }
    let any = dp.map(maps::CT4_ANY.name).unwrap().entries().unwrap().len();
    assert!(
        any as u32 > sizes.ct_any / 2 && any as u32 <= sizes.ct_any,
        "the other table is full: {any} entries"
    );
    let first = PacketSpec::new(ip("10.0.0.1"), ip("10.1.0.0"), 17, 1024, 53);
    assert!(
        !run(&dp, Direction::Ingress, &first.reply()),
        "the first UDP connection was evicted"
    );
    let tcp_entries = dp.map(maps::CT4_TCP.name).unwrap().entries().unwrap().len();
    assert_eq!(tcp_entries, syns.len(), "no TCP entry evicted");
    for syn in &syns {
        assert!(
            run(&dp, Direction::Egress, &ack(syn)),
            "TCP connection {} lost to the flood",
            syn.sport
        );
    }
}

/// Kernel memory (`memlock` of the map's fd, as `bpftool map show` reports it).
fn memlock(map: &runtime_loader::RawMap) -> u64 {
    use std::os::fd::{AsFd, AsRawFd};
    let fd = map.map_data().fd().as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("memlock in fdinfo")
}

/// At the sizes `compile` and `agent` derive from this node's memory, the node's maps plus 250
/// dual-stack endpoints (each endpoint's own maps, pinned or not) cost at most 200 MiB, and one
/// endpoint at most 256 KiB beyond the node's maps (issue 15). Prints the figures of
/// Documentation/performance.md ("Kernel memory"). The endpoint's policy map is created sized
/// from its entries as the agent creates it (`MapSizes::policy_capacity`): its bucket array is
/// allocated whole even without preallocation, 16 bytes per entry of `max_entries`.
#[test]
fn root_node_ct_memory_stays_within_the_targets() {
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let (ct_tcp, ct_any) =
        codegen::ctsize::for_node(None, None, codegen::ctsize::DEFAULT_RATIO).unwrap();
    let sizes = MapSizes {
        ct_tcp,
        ct_any,
        ..MapSizes::default()
    };
    let pins = layout.map_pins(EP_ID as u16).unwrap();
    let Some(dp) = setup_endpoint(EP_ID, true, &sizes, pins) else {
        return;
    };
    let (mut node, mut own) = (0u64, 0u64);
    for (name, map) in &dp.maps {
        let bytes = memlock(map);
        println!("{name}: {bytes} bytes");
        match maps::by_name(name).map(|m| m.pin) {
            Some(maps::Pin::Node) => node += bytes,
            _ => own += bytes,
        }
    }
    let cpus = std::thread::available_parallelism().unwrap().get();
    println!(
        "CT tcp {ct_tcp} any {ct_any}; {cpus} CPUs; node {node} bytes; per endpoint {own} bytes"
    );
    for n in [24u64, 110, 250] {
        println!(
            "{n} endpoints: {:.1} MiB",
            (node + n * own) as f64 / f64::from(1 << 20)
        );
    }
    let policy = dp.map(maps::POLICY.name).unwrap().max_entries();
    assert_eq!(
        policy,
        codegen::endpoint::POLICY_MIN_CAPACITY,
        "sized from its entries"
    );
    assert!(own <= 256 * 1024, "per endpoint {own} bytes");
    assert!(node + 250 * own <= 200 << 20, "node {node} + 250 × {own}");
}
