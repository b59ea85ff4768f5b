//! The per-CPU flow cache in front of connection tracking (bpf-templates/include/flowcache.h):
//! established packets pass from it, a policy revision bump takes effect on the very next
//! packet, TCP closing and reopening behave as without it, colliding flows each get their own
//! verdict, and the CT entry's expiry is still refreshed while packets hit the cache.
//!
//! The cache is per CPU and BPF_PROG_TEST_RUN runs on the calling thread's CPU, so each test
//! pins its thread to one CPU and reads that CPU's slots. Every test runs on the slow clock
//! (common::datapath::slow_state): a slot lives for a datapath second, i.e. many real minutes,
//! so a stalled machine cannot end a hit a test relies on; the passing of time is simulated by
//! moving expiries and deadlines into the past.

mod common;

use codegen::layout::{Ct4Key, Ct6Key, CtValue, Fc4Slot, Fc6Slot, CT_CLOSING};
use codegen::maps;
use codegen::MapSizes;
use common::datapath::{
    ct_map_key, ct_map_name, revoke_port_80, run, slow_hz, slow_setup_sized, slow_state, tcp, EP_ID,
};
use ir::Direction;
use runtime_loader::packet::PacketSpec;
use runtime_loader::Datapath;
use std::net::IpAddr;

const ACK: u8 = 0x10;

/// The same packet with other TCP flags.
fn with_flags(p: &PacketSpec, flags: u8) -> PacketSpec {
    PacketSpec {
        tcp_flags: flags,
        ..p.clone()
    }
}

/// A connection as the datapath's maps hold it: its tuple (the flow cache's key; the CT map's
/// key adds the endpoint, [`ct_map_key`]) and the maps of its family and protocol.
struct Conn {
    tuple: Vec<u8>,
    ct_map: &'static str,
    fc_map: &'static str,
}

/// What a test reads of a flow-cache slot.
#[derive(Clone, Copy)]
struct Slot {
    deadline: u64,
    policy_rev: u32,
}

/// The connection of a packet (canonical order: side a is the smaller (address, port), both
/// compared as the datapath does, addresses as native 32-bit words). Both key layouts are
/// address a, address b, port a, port b (network order), protocol, 3 bytes of padding.
fn conn(p: &PacketSpec) -> Conn {
    let side = |a: IpAddr, port: u16| {
        let bytes = match a {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        };
        let words: Vec<u32> = bytes
            .chunks(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (words, port.to_be(), bytes)
    };
    let (mut a, mut b) = (side(p.src, p.sport), side(p.dst, p.dport));
    if (&a.0, a.1) > (&b.0, b.1) {
        std::mem::swap(&mut a, &mut b);
    }
    let mut key = [a.2, b.2].concat();
    key.extend(a.1.to_ne_bytes());
    key.extend(b.1.to_ne_bytes());
    key.extend([p.protocol, 0, 0, 0]);
    let v4 = a.0.len() == 1;
    let want = if v4 {
        std::mem::size_of::<Ct4Key>()
    } else {
        std::mem::size_of::<Ct6Key>()
    };
    assert_eq!(key.len(), want, "CT key layout");
    Conn {
        ct_map: ct_map_name(&key),
        tuple: key,
        fc_map: if v4 { maps::FC4.name } else { maps::FC6.name },
    }
}

/// This CPU's valid-looking slots (non-zero deadline) holding `c`'s key.
fn slots_holding(dp: &Datapath, cpu: usize, c: &Conn) -> Vec<Slot> {
    slot_entries(dp, cpu, c)
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// As [`slots_holding`], with each slot's index in the map.
fn slot_entries(dp: &Datapath, cpu: usize, c: &Conn) -> Vec<(Vec<u8>, Slot)> {
    let map = dp.map(c.fc_map).unwrap();
    let part = map.cpu_value_range(cpu);
    map.entries()
        .unwrap()
        .into_iter()
        .filter_map(|(index, v)| {
            let (key, slot) = read_slot(&v[part.clone()], c.tuple.len())?;
            (key == c.tuple && slot.deadline != 0).then_some((index, slot))
        })
        .collect()
}

/// The key and the fields a test reads of one slot of the family of a `key_len`-byte key.
fn read_slot(b: &[u8], key_len: usize) -> Option<(Vec<u8>, Slot)> {
    let (key, deadline, policy_rev) =
        match key_len {
            16 => Fc4Slot::from_bytes(b)
                .map(|s| (s.key.as_bytes().to_vec(), s.deadline, s.policy_rev))?,
            _ => Fc6Slot::from_bytes(b)
                .map(|s| (s.key.as_bytes().to_vec(), s.deadline, s.policy_rev))?,
        };
    Some((
        key,
        Slot {
            deadline,
            policy_rev,
        },
    ))
}

/// Moves the deadline of this CPU's slot holding `c` `by` jiffies into the past, as if it had
/// been filled that long ago.
fn age_slot(dp: &Datapath, cpu: usize, c: &Conn, by: u64) {
    let map = dp.map(c.fc_map).unwrap();
    let part = map.cpu_value_range(cpu);
    let held = slot_entries(dp, cpu, c);
    assert_eq!(held.len(), 1, "one slot holds the connection");
    let index = &held[0].0;
    let mut value = map.lookup(index).unwrap().expect("slot");
    let b = &mut value[part];
    match c.tuple.len() {
        16 => {
            let mut s = Fc4Slot::from_bytes(b).unwrap();
            s.deadline -= by;
            b.copy_from_slice(s.as_bytes());
        }
        _ => {
            let mut s = Fc6Slot::from_bytes(b).unwrap();
            s.deadline -= by;
            b.copy_from_slice(s.as_bytes());
        }
    }
    map.update(index, &value).unwrap();
}

fn ct_entry(dp: &Datapath, c: &Conn) -> Option<CtValue> {
    let v = dp
        .map(c.ct_map)
        .unwrap()
        .lookup(&ct_map_key(dp, EP_ID, &c.tuple))
        .unwrap()?;
    CtValue::from_bytes(&v)
}

fn bump_revision(dp: &Datapath, rev: u32) {
    dp.set_state(&slow_state(rev)).unwrap();
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
    for (peer, ep) in [("10.0.0.2", "10.0.0.1"), ("fd00::2", "fd00::1")] {
        let Some((dp, cpu)) = slow_setup_sized(&MapSizes::default()) else {
            return;
        };
        let syn = tcp(peer, ep, 47000, 80);
        let c = conn(&syn);
        assert!(run(&dp, Direction::Ingress, &syn));
        assert!(
            slots_holding(&dp, cpu, &c).is_empty(),
            "{peer}: opening fills no slot"
        );
        // The endpoint's reply ACK passes through CT and fills this CPU's slot.
        let reply = with_flags(&syn.reply(), ACK);
        assert!(run(&dp, Direction::Egress, &reply));
        let slots = slots_holding(&dp, cpu, &c);
        assert_eq!(slots.len(), 1, "{peer}: one slot for the connection");
        assert_eq!(slots[0].policy_rev, 1);
        let ct = ct_entry(&dp, &c).expect("tracked");
        assert!(
            slots[0].deadline <= ct.expires + 1,
            "{peer}: slot outlives its CT entry"
        );
        // Without its CT entry, the reply passes only from the cache (egress policy allows
        // UDP/53 alone): proof of the hit, and the documented window of an evicted entry.
        assert!(dp
            .map(c.ct_map)
            .unwrap()
            .delete(&ct_map_key(&dp, EP_ID, &c.tuple))
            .unwrap());
        assert!(
            run(&dp, Direction::Egress, &reply),
            "{peer}: served from the flow cache"
        );
        // Another connection's packets do not pass from this slot.
        let mut other = reply.clone();
        other.dport += 1;
        assert!(
            !run(&dp, Direction::Egress, &other),
            "{peer}: other connection passed"
        );
        // A new revision: the very next packet is re-checked, finds no connection and is
        // dropped.
        bump_revision(&dp, 2);
        assert!(
            !run(&dp, Direction::Egress, &reply),
            "{peer}: revision bump must end the hit"
        );
    }
}

#[test]
fn root_flow_cache_revoked_policy_drops_the_very_next_packet() {
    let Some((dp, cpu)) = slow_setup_sized(&MapSizes::default()) else {
        return;
    };
    let (syn, ack) = open_from_friend(&dp, 47100);
    assert!(run(&dp, Direction::Ingress, &ack));
    assert_eq!(slots_holding(&dp, cpu, &conn(&syn)).len(), 1);
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
    assert!(ct_entry(&dp, &conn(&syn)).is_none(), "and be forgotten");
    assert!(!run(&dp, Direction::Egress, &with_flags(&syn.reply(), ACK)));
}

#[test]
fn root_flow_cache_keeps_fin_and_syn_semantics() {
    let Some((dp, cpu)) = slow_setup_sized(&MapSizes::default()) else {
        return;
    };
    let (syn, ack) = open_from_friend(&dp, 47200);
    let key = conn(&syn);
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
    // One slot per CPU: every flow maps to it, so only the key comparison tells them apart.
    let sizes = MapSizes {
        flow_cache: 1,
        ..MapSizes::default()
    };
    for (peer, ep) in [("10.0.0.2", "10.0.0.1"), ("fd00::2", "fd00::1")] {
        let Some((dp, cpu)) = slow_setup_sized(&sizes) else {
            return;
        };
        let a = tcp(peer, ep, 47300, 80);
        let b = tcp(peer, ep, 47301, 80);
        for syn in [&a, &b] {
            assert!(run(&dp, Direction::Ingress, syn));
        }
        for _ in 0..3 {
            for syn in [&a, &b] {
                assert!(run(&dp, Direction::Ingress, &with_flags(syn, ACK)));
                assert_eq!(slots_holding(&dp, cpu, &conn(syn)).len(), 1, "{peer}");
                assert!(run(&dp, Direction::Egress, &with_flags(&syn.reply(), ACK)));
            }
        }
        // The slot holds b's connection: packets of other tuples are not served from it.
        let mut other_port = with_flags(&b.reply(), ACK);
        other_port.dport = 47302;
        assert!(
            !run(&dp, Direction::Egress, &other_port),
            "{peer}: untracked reply passed"
        );
        // The same addresses and ports paired the other way round are another connection,
        // which the endpoint's egress policy (TCP out is denied) decides.
        assert!(run(&dp, Direction::Egress, &with_flags(&b.reply(), ACK)));
        let crossed = with_flags(&tcp(ep, peer, 47301, 80), ACK);
        assert!(
            !run(&dp, Direction::Egress, &crossed),
            "{peer}: crossed tuple passed"
        );
    }
    // Another peer on the cached tuple's ports (the foe is denied every protocol).
    let Some((dp, _)) = slow_setup_sized(&sizes) else {
        return;
    };
    let b = tcp("10.0.0.2", "10.0.0.1", 47301, 80);
    assert!(run(&dp, Direction::Ingress, &b));
    assert!(run(&dp, Direction::Ingress, &with_flags(&b, ACK)));
    let foe = with_flags(&tcp("10.0.0.3", "10.0.0.1", 47301, 80), ACK);
    assert!(!run(&dp, Direction::Ingress, &foe), "foe passed");
}

#[test]
fn root_flow_cache_hits_still_refresh_the_ct_expiry() {
    let Some((dp, cpu)) = slow_setup_sized(&MapSizes::default()) else {
        return;
    };
    let hz = slow_hz();
    let (syn, ack) = open_from_friend(&dp, 47400);
    let key = conn(&syn);
    let ct = dp.map(key.ct_map).unwrap();
    let first = ct_entry(&dp, &key).expect("tracked");
    let slot = slots_holding(&dp, cpu, &key)[0];
    assert!(slot.deadline <= first.expires + 1);
    // Two seconds later for the CT entry: the slow path would write its expiry again, hits
    // do not touch it.
    let aged = CtValue {
        expires: first.expires - 2 * hz,
        ..first
    };
    ct.update(&ct_map_key(&dp, EP_ID, &key.tuple), aged.as_bytes())
        .unwrap();
    for _ in 0..100 {
        assert!(run(&dp, Direction::Ingress, &ack));
    }
    assert_eq!(
        ct_entry(&dp, &key).expect("tracked").expires,
        aged.expires,
        "hit wrote CT"
    );
    // Two seconds later for the slot too (past its deadline, at most one second after the
    // fill): the next packet goes through CT, which refreshes the entry and refills the slot.
    age_slot(&dp, cpu, &key, 2 * hz);
    assert!(run(&dp, Direction::Ingress, &ack));
    let later = ct_entry(&dp, &key).expect("tracked").expires;
    assert!(
        later >= first.expires && later > aged.expires + hz,
        "expiry not refreshed: {} then {later} (HZ {hz})",
        aged.expires
    );
    let refilled = slots_holding(&dp, cpu, &key)[0];
    assert!(refilled.deadline > slot.deadline - 2 * hz && refilled.deadline <= later + 1);
}
