//! The per-CPU flow cache in front of connection tracking (bpf-templates/include/flowcache.h):
//! established packets pass from it, a policy revision bump takes effect on the very next
//! packet, TCP closing and reopening behave as without it, colliding flows each get their own
//! verdict, and the CT entry's expiry is still refreshed while packets hit the cache.
//!
//! The cache is per CPU and BPF_PROG_TEST_RUN runs on the calling thread's CPU, so each test
//! pins its thread to one CPU and reads that CPU's slots.

mod common;

use codegen::layout::{Ct4Key, CtValue, Fc4Slot, CT_CLOSING};
use codegen::MapSizes;
use common::datapath::{revoke_port_80, run, setup, setup_sized, tcp};
use ir::Direction;
use runtime_loader::packet::PacketSpec;
use runtime_loader::Datapath;

const ACK: u8 = 0x10;

/// Pins the calling thread to the CPU it runs on; returns that CPU.
fn pin_cpu() -> usize {
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

/// The same packet with other TCP flags.
fn with_flags(p: &PacketSpec, flags: u8) -> PacketSpec {
    PacketSpec {
        tcp_flags: flags,
        ..p.clone()
    }
}

/// The CT key of an IPv4 TCP packet (canonical order: side a is the smaller (address, port)).
fn ct_key(p: &PacketSpec) -> Ct4Key {
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (p.src, p.dst) else {
        panic!("IPv4 packet expected");
    };
    let side = |a: std::net::Ipv4Addr, port: u16| {
        let word = u32::from_ne_bytes(a.octets());
        (word, port.to_be())
    };
    let (mut a, mut b) = (side(s, p.sport), side(d, p.dport));
    if (a.0, a.1) > (b.0, b.1) {
        std::mem::swap(&mut a, &mut b);
    }
    Ct4Key {
        addr_a: a.0,
        addr_b: b.0,
        port_a_be: a.1,
        port_b_be: b.1,
        protocol: p.protocol,
        pad: [0; 3],
    }
}

/// This CPU's slots of the IPv4 flow cache holding `key`.
fn slots_holding(dp: &Datapath, cpu: usize, key: &Ct4Key) -> Vec<Fc4Slot> {
    let size = std::mem::size_of::<Fc4Slot>().div_ceil(8) * 8;
    let map = dp.map("cp_fc4").unwrap();
    map.entries()
        .unwrap()
        .values()
        .filter_map(|v| Fc4Slot::from_bytes(&v[cpu * size..cpu * size + size]))
        .filter(|s| s.key == *key && s.deadline != 0)
        .collect()
}

fn ct_entry(dp: &Datapath, key: &Ct4Key) -> Option<CtValue> {
    let v = dp.map("cp_ct4").unwrap().lookup(key.as_bytes()).unwrap()?;
    CtValue::from_bytes(&v)
}

fn bump_revision(dp: &Datapath, rev: u32) {
    let mut st = runtime_loader::load::default_state();
    st.policy_rev = rev;
    dp.set_state(&st).unwrap();
}

/// Opens a connection from the friend to port 80 from `sport` and sends its first ACK (which
/// fills this CPU's slot); returns the SYN and the ACK.
fn open_from_friend(dp: &Datapath, sport: u16) -> (PacketSpec, PacketSpec) {
    let syn = tcp("10.0.0.2", "10.0.0.1", sport, 80);
    let ack = with_flags(&syn, ACK);
    assert!(run(dp, Direction::Ingress, &syn));
    assert!(run(dp, Direction::Ingress, &ack));
    (syn, ack)
}

#[test]
fn root_flow_cache_serves_established_packets_until_the_revision_changes() {
    let Some(dp) = setup() else { return };
    let cpu = pin_cpu();
    let syn = tcp("10.0.0.2", "10.0.0.1", 47000, 80);
    let key = ct_key(&syn);
    assert!(run(&dp, Direction::Ingress, &syn));
    assert!(
        slots_holding(&dp, cpu, &key).is_empty(),
        "opening fills no slot"
    );
    // The endpoint's reply ACK passes through CT and fills this CPU's slot.
    let reply = with_flags(&syn.reply(), ACK);
    assert!(run(&dp, Direction::Egress, &reply));
    let slots = slots_holding(&dp, cpu, &key);
    assert_eq!(slots.len(), 1, "one slot for the connection");
    assert_eq!(slots[0].policy_rev, 1);
    let ct = ct_entry(&dp, &key).expect("tracked");
    assert!(
        slots[0].deadline <= ct.expires + 1,
        "slot outlives its CT entry"
    );
    // Without its CT entry, the reply passes only from the cache (egress policy allows
    // UDP/53 alone): proof of the hit, and the documented window of an evicted entry.
    assert!(dp.map("cp_ct4").unwrap().delete(key.as_bytes()).unwrap());
    assert!(
        run(&dp, Direction::Egress, &reply),
        "served from the flow cache"
    );
    // A new revision: the very next packet is re-checked, finds no connection and is dropped.
    bump_revision(&dp, 2);
    assert!(
        !run(&dp, Direction::Egress, &reply),
        "revision bump must end the hit"
    );
}

#[test]
fn root_flow_cache_revoked_policy_drops_the_very_next_packet() {
    let Some(dp) = setup() else { return };
    let cpu = pin_cpu();
    let (syn, ack) = open_from_friend(&dp, 47100);
    assert!(run(&dp, Direction::Ingress, &ack));
    assert_eq!(slots_holding(&dp, cpu, &ct_key(&syn)).len(), 1);
    // Revoke the friend's and the wildcard port-80 allows, then bump the revision.
    revoke_port_80(&dp);
    assert!(
        run(&dp, Direction::Ingress, &ack),
        "old revision: still cached"
    );
    bump_revision(&dp, 2);
    assert!(
        !run(&dp, Direction::Ingress, &ack),
        "revoked flow must stop"
    );
    assert!(ct_entry(&dp, &ct_key(&syn)).is_none(), "and be forgotten");
    assert!(!run(&dp, Direction::Egress, &with_flags(&syn.reply(), ACK)));
}

#[test]
fn root_flow_cache_keeps_fin_and_syn_semantics() {
    let Some(dp) = setup() else { return };
    let cpu = pin_cpu();
    let (syn, ack) = open_from_friend(&dp, 47200);
    let key = ct_key(&syn);
    assert_eq!(slots_holding(&dp, cpu, &key).len(), 1, "warm cache");
    // The endpoint's FIN goes through CT (not the cache) and marks the connection closing.
    assert!(run(&dp, Direction::Egress, &with_flags(&syn.reply(), 0x11)));
    let ct = ct_entry(&dp, &key).expect("tracked");
    assert_ne!(ct.flags & CT_CLOSING, 0, "FIN reached connection tracking");
    // The last ACK still belongs to the connection; a SYN from the endpoint on the closed
    // connection is a new connection its egress policy (UDP/53 only) drops.
    assert!(run(&dp, Direction::Ingress, &ack));
    assert!(
        !run(&dp, Direction::Egress, &with_flags(&syn.reply(), 0x02)),
        "SYN after FIN must be re-decided"
    );
    // Closing connections are never (re)cached: expire the slot and send another ACK.
    bump_revision(&dp, 2);
    assert!(run(&dp, Direction::Ingress, &ack));
    assert!(
        slots_holding(&dp, cpu, &key)
            .iter()
            .all(|s| s.policy_rev != 2),
        "a closing connection was cached"
    );
    // An RST is decided by CT too: it passes as part of the connection.
    assert!(run(&dp, Direction::Ingress, &with_flags(&syn, 0x14)));
}

#[test]
fn root_flow_cache_colliding_flows_each_get_their_verdict() {
    // One slot per CPU: every flow maps to it.
    let sizes = MapSizes {
        flow_cache: 1,
        ..MapSizes::default()
    };
    let Some(dp) = setup_sized(true, &sizes) else {
        return;
    };
    let cpu = pin_cpu();
    let a = tcp("10.0.0.2", "10.0.0.1", 47300, 80);
    let b = tcp("10.0.0.2", "10.0.0.1", 47301, 80);
    for syn in [&a, &b] {
        assert!(run(&dp, Direction::Ingress, syn));
    }
    for _ in 0..3 {
        for syn in [&a, &b] {
            assert!(run(&dp, Direction::Ingress, &with_flags(syn, ACK)));
            assert_eq!(slots_holding(&dp, cpu, &ct_key(syn)).len(), 1);
            assert!(run(&dp, Direction::Egress, &with_flags(&syn.reply(), ACK)));
        }
    }
    // The slot holds b's connection: packets of other tuples are not served from it.
    let mut other_port = with_flags(&b.reply(), ACK);
    other_port.dport = 47302;
    assert!(
        !run(&dp, Direction::Egress, &other_port),
        "untracked reply passed"
    );
    let foe = with_flags(&tcp("10.0.0.3", "10.0.0.1", 47301, 80), ACK);
    assert!(!run(&dp, Direction::Ingress, &foe), "foe passed");
    // The same addresses and ports paired the other way round are another connection, which
    // the endpoint's egress policy (TCP out is denied) decides.
    assert!(run(&dp, Direction::Egress, &with_flags(&b.reply(), ACK)));
    let crossed = with_flags(&tcp("10.0.0.1", "10.0.0.2", 47301, 80), ACK);
    assert!(
        !run(&dp, Direction::Egress, &crossed),
        "crossed tuple passed"
    );
}

#[test]
fn root_flow_cache_hits_still_refresh_the_ct_expiry() {
    let Some(dp) = setup() else { return };
    let cpu = pin_cpu();
    let hz = u64::from(runtime_loader::hz::kernel_hz());
    let (syn, ack) = open_from_friend(&dp, 47400);
    let key = ct_key(&syn);
    let first = ct_entry(&dp, &key).expect("tracked").expires;
    let slot = slots_holding(&dp, cpu, &key)[0];
    assert!(slot.deadline <= first + 1);
    // Within the second, hits do not write the entry (nor would CT: one write per second).
    for _ in 0..100 {
        assert!(run(&dp, Direction::Ingress, &ack));
    }
    // Past the slot's deadline (at most one second), the next packet refreshes the entry.
    std::thread::sleep(std::time::Duration::from_millis(1050));
    assert!(run(&dp, Direction::Ingress, &ack));
    let later = ct_entry(&dp, &key).expect("tracked").expires;
    assert!(
        later >= first + hz,
        "expiry not refreshed: {first} then {later} (HZ {hz})"
    );
    let refilled = slots_holding(&dp, cpu, &key)[0];
    assert!(refilled.deadline > slot.deadline && refilled.deadline <= later + 1);
}
