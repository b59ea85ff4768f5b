//! The hand-built endpoint of the datapath tests (truth table written from seed §3.7.2 and the
//! documented datapath choices): 10.0.0.1 (identity EP) with a friend (10.0.0.2, fd00::2), a foe
//! (10.0.0.3, 192.168.1.5), and a policy exercising identity, port-range, wildcard, deny,
//! ICMP and address (ipBlock) entries.

use codegen::entries::EndpointEntries;
use codegen::ipcache::ipcache_images;
use codegen::maps;
use codegen::template::Globals;
use codegen::{EndpointConfig, MapSizes};
use ir::mapstate::AddrKey;
use ir::{
    Direction, EndpointPolicy, IpCache, MapEntry, MapKey, MapVerdict, NumericIdentity, RuleId,
};
use runtime_loader::packet::PacketSpec;
use runtime_loader::{load, test_run, Datapath, LoadOptions};
use std::net::IpAddr;

pub const EP: u32 = 1000;
pub const FRIEND: u32 = 2000;
pub const FOE: u32 = 3000;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn key(id: u32, d: Direction, proto: u8, port: u16, plen: u8) -> MapKey {
    MapKey {
        identity: NumericIdentity(id),
        direction: d,
        protocol: proto,
        port,
        port_prefix_len: plen,
    }
}

pub fn entry(v: MapVerdict, rule: u32) -> MapEntry {
    MapEntry {
        verdict: v,
        rules: vec![RuleId(rule)],
        audited: vec![],
    }
}

pub fn policy() -> EndpointPolicy {
    let mut p = EndpointPolicy {
        endpoint: "default/ep".into(),
        identity: NumericIdentity(EP),
        ingress_enforced: true,
        egress_enforced: true,
        ..Default::default()
    };
    p.entries.insert(
        key(FRIEND, Direction::Ingress, 6, 80, 16),
        entry(MapVerdict::Allow, 1),
    );
    p.entries.insert(
        key(FRIEND, Direction::Ingress, 6, 8080, 13),
        entry(MapVerdict::Allow, 2),
    ); // 8080-8087
    p.entries.insert(
        key(FOE, Direction::Ingress, 0, 0, 0),
        entry(MapVerdict::Deny, 3),
    );
    // A wildcard deny inside the friend's range: the range allow must not end the decision.
    p.entries.insert(
        key(0, Direction::Ingress, 6, 8086, 16),
        entry(MapVerdict::Deny, 9),
    );
    p.entries.insert(
        key(0, Direction::Ingress, 6, 80, 16),
        entry(MapVerdict::Allow, 4),
    );
    p.entries.insert(
        key(0, Direction::Egress, 17, 53, 16),
        entry(MapVerdict::Allow, 5),
    );
    p.entries.insert(
        key(FRIEND, Direction::Ingress, 1, 8, 16),
        entry(MapVerdict::Allow, 6),
    );
    p.entries.insert(
        key(FRIEND, Direction::Ingress, 58, 128, 16),
        entry(MapVerdict::Allow, 7),
    );
    p.addr_entries.insert(
        AddrKey {
            direction: Direction::Egress,
            prefix: "192.168.0.0/16".parse().unwrap(),
            protocol: 6,
            port: 443,
            port_prefix_len: 16,
        },
        entry(MapVerdict::Allow, 8),
    );
    p
}

pub fn setup() -> Option<Datapath> {
    setup_with(true)
}

pub fn setup_with(ipv6: bool) -> Option<Datapath> {
    setup_sized(ipv6, &MapSizes::default())
}

/// The endpoint 10.0.0.1 (and fd00::1 with `ipv6`) with [`policy`] loaded, built with `sizes`.
pub fn setup_sized(ipv6: bool, sizes: &MapSizes) -> Option<Datapath> {
    setup_pinned(ipv6, sizes, vec![])
}

/// As [`setup_sized`], with maps pinned (and reused) at the given bpffs paths.
pub fn setup_pinned(
    ipv6: bool,
    sizes: &MapSizes,
    map_pins: Vec<(&str, std::path::PathBuf)>,
) -> Option<Datapath> {
    setup_endpoint(EP_ID, ipv6, sizes, map_pins)
}

/// As [`setup_pinned`], as endpoint `id`.
pub fn setup_endpoint(
    id: u32,
    ipv6: bool,
    sizes: &MapSizes,
    map_pins: Vec<(&str, std::path::PathBuf)>,
) -> Option<Datapath> {
    if !runtime_loader::testkit::require_root("root_datapath") {
        return None;
    }
    let ep = EndpointConfig {
        id,
        name: "default/ep".into(),
        identity: NumericIdentity(EP),
        ipv4: Some("10.0.0.1".parse().unwrap()),
        ipv6: ipv6.then(|| "fd00::1".parse().unwrap()),
    };
    let pol = policy();
    let (features, _) = codegen::Features::derive(&ep, &pol, None);
    let obj = super::template_object(&features, sizes);
    let mut cache = IpCache::default();
    for (a, id) in [
        ("10.0.0.1/32", EP),
        ("10.0.0.2/32", FRIEND),
        ("10.0.0.3/32", FOE),
        ("fd00::2/128", FRIEND),
        ("192.168.1.5/32", FOE),
    ] {
        cache.insert(a.parse().unwrap(), NumericIdentity(id));
    }
    let entries = EndpointEntries::build(&pol);
    let mut images = vec![
        entries.policy_image(),
        entries.range_image(),
        entries.addr_image(),
    ];
    images.extend(ipcache_images(&cache));
    // The policy map sized from the endpoint's entries, as the agent creates it.
    let opts = LoadOptions {
        globals: Some(Globals::of(&ep)),
        images: images.iter().collect(),
        map_pins,
        max_entries: maps::endpoint_max_entries(sizes.policy_capacity(entries.hash_len())),
        ..Default::default()
    };
    Some(load(&obj, &opts).unwrap_or_else(|e| panic!("{e}")))
}

/// The id [`setup_pinned`] gives the endpoint.
pub const EP_ID: u32 = 7;

/// The node CT table holding the connection of `tuple` (a ct4_key or ct6_key, the protocol
/// 4 bytes before its end): its family's TCP table or its table of other protocols.
pub fn ct_map_name(tuple: &[u8]) -> &'static str {
    let v4 = tuple.len() == std::mem::size_of::<codegen::layout::Ct4Key>();
    let tcp = tuple[tuple.len() - 4] == 6;
    match (v4, tcp) {
        (true, true) => maps::CT4_TCP.name,
        (true, false) => maps::CT4_ANY.name,
        (false, true) => maps::CT6_TCP.name,
        (false, false) => maps::CT6_ANY.name,
    }
}

/// The CT map key of `tuple` (a ct4_key or ct6_key) for endpoint `id` of the loaded `dp`:
/// the tuple, the id and the endpoint's nonce from its state.
pub fn ct_map_key(dp: &Datapath, id: u32, tuple: &[u8]) -> Vec<u8> {
    let state = dp
        .map(maps::STATE.name)
        .unwrap()
        .lookup(&0u32.to_ne_bytes())
        .unwrap()
        .expect("endpoint state");
    let state = codegen::layout::EpState::from_bytes(&state).unwrap();
    assert_ne!(state.ep_nonce, 0, "the loader draws a nonce");
    let mut key = tuple.to_vec();
    key.extend(id.to_ne_bytes());
    key.extend(state.ep_nonce.to_ne_bytes());
    key
}

pub fn run(dp: &Datapath, dir: Direction, p: &PacketSpec) -> bool {
    test_run(dp.program(dir).unwrap(), &p.build(), 1)
        .unwrap()
        .passed()
}

pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> PacketSpec {
    PacketSpec::new(ip(src), ip(dst), 6, sport, dport)
}

/// Removes the friend's and the wildcard identity's TCP/80 ingress allows from the policy map
/// (the revision is left alone).
pub fn revoke_port_80(dp: &Datapath) {
    let map = dp.map(maps::POLICY.name).unwrap();
    for id in [FRIEND, 0] {
        let k = codegen::layout::PolicyKey {
            identity: id,
            dir_flags: 0,
            protocol: 6,
            dport_be: 80u16.to_be(),
        };
        assert!(map.delete(k.as_bytes()).unwrap());
    }
}

/// How many times slower than the kernel's the tests' datapath clock runs (see
/// [`slow_state`]).
const SLOWDOWN: u32 = 1000;

/// The `jiffies_hz` of [`slow_state`]: kernel jiffies per datapath second.
pub fn slow_hz() -> u64 {
    u64::from(runtime_loader::hz::kernel_hz()) * u64::from(SLOWDOWN)
}

/// The default endpoint state at revision `rev` with a datapath second of [`SLOWDOWN`] real
/// seconds: every lifetime and deadline (all in jiffies, scaled by `jiffies_hz`) is that much
/// longer, so assertions about "within the second" hold on a machine that stalls.
pub fn slow_state(rev: u32) -> codegen::layout::EpState {
    codegen::layout::EpState {
        policy_rev: rev,
        jiffies_hz: runtime_loader::hz::kernel_hz() * SLOWDOWN,
        ..runtime_loader::load::default_state()
    }
}

/// [`setup_sized`] (dual-stack) at revision 1 on the slow clock, the calling thread pinned to
/// its CPU (flow-cache slots are per CPU); returns the CPU too.
pub fn slow_setup_sized(sizes: &MapSizes) -> Option<(Datapath, usize)> {
    let dp = setup_sized(true, sizes)?;
    dp.set_state(&slow_state(1)).unwrap();
    Some((dp, pin_cpu()))
}

/// [`slow_setup`] with the events ring pinned in a private bpffs (read it with
/// [`drain_events`]): the datapath, the mount (unmounted when dropped) and the ring's pin.
pub fn slow_setup_with_events() -> Option<(
    Datapath,
    runtime_loader::testkit::PrivateBpffs,
    std::path::PathBuf,
)> {
    if !runtime_loader::testkit::require_root("root_datapath") {
        return None;
    }
    let fs = runtime_loader::testkit::PrivateBpffs::new();
    let pin = fs.path.join(maps::EVENTS.name);
    let dp = setup_pinned(
        true,
        &MapSizes::default(),
        vec![(maps::EVENTS.name, pin.clone())],
    )?;
    dp.set_state(&slow_state(1)).unwrap();
    pin_cpu();
    Some((dp, fs, pin))
}

/// [`slow_setup_sized`] with the default sizes.
pub fn slow_setup() -> Option<Datapath> {
    slow_setup_sized(&MapSizes::default()).map(|(dp, _)| dp)
}

/// Pins the calling thread to the CPU it runs on; returns that CPU.
pub fn pin_cpu() -> usize {
    // SAFETY: sched_getcpu has no preconditions; the cpu_set_t is zero-initialised and then
    // filled with CPU_SET before sched_setaffinity reads it (pid 0 = this thread).
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity"
        );
        cpu as usize
    }
}

/// Every CPU's valid IPv4 deny slots (flow cache, FC_DENY).
pub fn fc4_deny_slots(dp: &Datapath) -> Vec<codegen::layout::Fc4Slot> {
    let map = dp.map(maps::FC4.name).unwrap();
    map.entries()
        .unwrap()
        .values()
        .flat_map(|v| {
            map.cpu_values(v)
                .map(|c| codegen::layout::Fc4Slot::from_bytes(c).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|s| s.deadline != 0 && s.flags & codegen::layout::FC_DENY != 0)
        .collect()
}

/// The drop events in the ring buffer pinned at `pin`, oldest first (drains it).
pub fn drain_events(pin: &std::path::Path) -> Vec<codegen::layout::Event> {
    let data = aya::maps::MapData::from_pin(pin).unwrap();
    let mut ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)).unwrap();
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        events.push(codegen::layout::Event::from_bytes(&item).expect("event layout"));
    }
    events
}
