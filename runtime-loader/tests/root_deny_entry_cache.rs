//! Denies decided by a deny entry, remembered in the flow cache (bpf-templates/include/
//! flowcache.h, "Deny slots"): a repeated packet is dropped from its slot with the drop event
//! the decision reported (reason 181, the entry's rule), for every kind of key (exact port, port
//! block, every port of a protocol, every protocol; IPv4 and IPv6); the packets the slot serves
//! reach the entry's counters in batches of FC_DENY_FLUSH and before the slot is rewritten, so
//! none is lost; a revision bump makes the very next packet decided again.
//!
//! Runs on the slow clock (a slot lives for a datapath second, many real minutes) with the
//! thread pinned to one CPU (the slots are per CPU).

mod common;

use codegen::layout::{
    Event, PolicyKey, PolicyRangeKey, PolicyValue, EVENT_DROP, FC_DENY_FLUSH, POLICY_ALL_PORTS,
    POLICY_HAS_PORTS, POLICY_KIND_ALL, POLICY_KIND_EXACT, POLICY_KIND_PORTS, POLICY_KIND_RANGE,
    VERDICT_ALLOW, VERDICT_DENY,
};
use codegen::maps;
use common::datapath::{
    drain_events, fc4_deny_slots, run, slow_setup, slow_setup_with_events, slow_state, tcp, FOE,
    FRIEND,
};
use ir::Direction;
use runtime_loader::packet::PacketSpec;
use runtime_loader::Datapath;

const DROP_POLICY_DENY: u8 = 181;

/// The key of the foe's every-protocol deny (rule 3 of the fixture).
fn foe_deny() -> PolicyKey {
    PolicyKey {
        identity: FOE,
        dir_flags: POLICY_ALL_PORTS,
        protocol: 0,
        dport_be: 0,
    }
}

fn policy_value(dp: &Datapath, key: &PolicyKey) -> PolicyValue {
    let map = dp.map(maps::POLICY.name).unwrap();
    PolicyValue::from_bytes(&map.lookup(key.as_bytes()).unwrap().expect("entry")).unwrap()
}

fn set_policy_value(dp: &Datapath, key: &PolicyKey, value: &PolicyValue) {
    let map = dp.map(maps::POLICY.name).unwrap();
    map.update(key.as_bytes(), value.as_bytes()).unwrap();
}

/// Sends `p` `n` times on the endpoint's ingress; every one must be dropped.
fn deny_n(dp: &Datapath, p: &PacketSpec, n: u64) {
    for i in 0..n {
        assert!(!run(dp, Direction::Ingress, p), "packet {i} passed");
    }
}

#[test]
fn root_deny_entry_cache_counts_every_packet_on_its_entry() {
    let Some(dp) = slow_setup() else { return };
    let p = tcp("10.0.0.3", "10.0.0.1", 42000, 4000);
    let len = p.build().len() as u64;
    deny_n(&dp, &p, 3);
    let slots = fc4_deny_slots(&dp);
    assert_eq!(slots.len(), 1, "one deny slot");
    let s = slots[0];
    assert_eq!(
        (s.deny_kind, s.deny_identity, s.rule_id, s.pending_packets),
        (POLICY_KIND_ALL, FOE, 3, 2),
        "the deciding entry and the two packets served since"
    );
    assert_eq!(s.pending_bytes as u64, 2 * len);
    let v = policy_value(&dp, &foe_deny());
    assert_eq!(
        (v.packets, v.bytes),
        (1, len),
        "the decision counted itself"
    );
    // The slot's count reaches the entry when it is FC_DENY_FLUSH.
    let total = 1 + u64::from(FC_DENY_FLUSH);
    deny_n(&dp, &p, total - 3);
    let v = policy_value(&dp, &foe_deny());
    assert_eq!(
        (v.packets, v.bytes),
        (total, total * len),
        "flushed at the batch"
    );
    assert_eq!(fc4_deny_slots(&dp)[0].pending_packets, 0);
}

#[test]
fn root_deny_entry_cache_flushes_before_the_slot_is_rewritten() {
    let Some(dp) = slow_setup() else { return };
    let p = tcp("10.0.0.3", "10.0.0.1", 42100, 4000);
    deny_n(&dp, &p, 3);
    assert_eq!(policy_value(&dp, &foe_deny()).packets, 1);
    // A revision bump: the next packet is decided again and its slot rewritten, after the two
    // packets it served were added to the entry.
    dp.set_state(&slow_state(2)).unwrap();
    deny_n(&dp, &p, 1);
    assert_eq!(policy_value(&dp, &foe_deny()).packets, 4, "none lost");
    let s = fc4_deny_slots(&dp)[0];
    assert_eq!((s.policy_rev, s.pending_packets), (2, 0));
}

#[test]
fn root_deny_entry_cache_revision_bump_sees_a_removed_deny() {
    let Some(dp) = slow_setup() else { return };
    let p = tcp("10.0.0.3", "10.0.0.1", 42200, 4000);
    deny_n(&dp, &p, 2);
    // The foe's deny becomes an allow, written before the revision bump as the agent does.
    let allow = PolicyValue {
        verdict: VERDICT_ALLOW,
        rule_id: 50,
        ..Default::default()
    };
    set_policy_value(&dp, &foe_deny(), &allow);
    deny_n(&dp, &p, 1);
    dp.set_state(&slow_state(2)).unwrap();
    assert!(
        run(&dp, Direction::Ingress, &p),
        "revision bump: the very next packet is decided again"
    );
    let v = policy_value(&dp, &foe_deny());
    assert_eq!(
        (v.verdict, v.packets),
        (VERDICT_ALLOW, 1),
        "the allow counts its decision; the deny's pending count is not given to it"
    );
}

/// Turns the friend's 8080-8087 block into a deny (rule 42) and adds a deny of every UDP port
/// (rule 43), with the flag on the friend's lookup marker that says it has such a key.
fn friend_denies(dp: &Datapath) -> (PolicyRangeKey, PolicyKey) {
    let rng = dp.map(maps::POLICY_RANGES.name).unwrap();
    let block = PolicyRangeKey {
        prefixlen: 48 + 13,
        identity: FRIEND,
        direction: 0,
        protocol: 6,
        dport_be: 8080u16.to_be(),
    };
    let deny = |rule_id| PolicyValue {
        verdict: VERDICT_DENY,
        rule_id,
        ..Default::default()
    };
    assert!(rng.lookup(block.as_bytes()).unwrap().is_some(), "the block");
    rng.update(block.as_bytes(), deny(42).as_bytes()).unwrap();
    let udp = PolicyKey {
        identity: FRIEND,
        dir_flags: POLICY_ALL_PORTS,
        protocol: 17,
        dport_be: 0,
    };
    set_policy_value(dp, &udp, &deny(43));
    let marker = PolicyKey { protocol: 0, ..udp };
    let mut m = policy_value(dp, &marker);
    m.flags |= POLICY_HAS_PORTS;
    set_policy_value(dp, &marker, &m);
    (block, udp)
}

/// Three denied packets `p`: the drop events (drained from the ring pinned at `pin`) are three
/// identical ones naming `rule`, and the IPv4 deny slot names the entry (`kind`, `entry`).
fn check_denied(
    dp: &Datapath,
    pin: &std::path::Path,
    what: &str,
    p: &PacketSpec,
    want: (u8, u32, u32),
) {
    let (kind, entry, rule) = want;
    deny_n(dp, p, 3);
    let events = drain_events(pin);
    assert_eq!(events.len(), 3, "{what}: one drop event per packet");
    for e in &events {
        let first = Event {
            time_ns: e.time_ns,
            ..events[0]
        };
        assert_eq!(
            *e, first,
            "{what}: cached drops report what the decision reported"
        );
    }
    let e = events[0];
    assert_eq!(
        (e.kind, e.reason, e.verdict, e.rule_id, e.dport_be),
        (
            EVENT_DROP,
            DROP_POLICY_DENY,
            VERDICT_DENY,
            rule,
            p.dport.to_be()
        ),
        "{what}"
    );
    if p.src.is_ipv4() {
        let ports = |s: &codegen::layout::Fc4Slot| {
            let (a, b) = (u16::from_be(s.key.port_a_be), u16::from_be(s.key.port_b_be));
            (a.min(b), a.max(b)) == (p.sport.min(p.dport), p.sport.max(p.dport))
        };
        let s = fc4_deny_slots(dp)
            .into_iter()
            .find(|s| s.rule_id == rule && ports(s))
            .unwrap_or_else(|| panic!("{what}: no deny slot"));
        let got = (s.deny_kind, s.deny_identity, s.pending_packets);
        assert_eq!(got, (kind, entry, 2), "{what}");
    }
}

#[test]
fn root_deny_entry_cache_reports_the_same_events_for_every_kind_of_key() {
    let Some((dp, _fs, pin)) = slow_setup_with_events() else {
        return;
    };
    let foe = tcp("10.0.0.3", "10.0.0.1", 42300, 22);
    check_denied(&dp, &pin, "every protocol", &foe, (POLICY_KIND_ALL, FOE, 3));
    // The wildcard identity's deny inside the friend's allowed block, in both families.
    let exact = tcp("10.0.0.2", "10.0.0.1", 42301, 8086);
    check_denied(&dp, &pin, "exact port", &exact, (POLICY_KIND_EXACT, 0, 9));
    let exact6 = tcp("fd00::2", "fd00::1", 42302, 8086);
    check_denied(
        &dp,
        &pin,
        "IPv6, exact port",
        &exact6,
        (POLICY_KIND_EXACT, 0, 9),
    );
    let (block, udp) = friend_denies(&dp);
    let in_block = tcp("10.0.0.2", "10.0.0.1", 42303, 8081);
    check_denied(
        &dp,
        &pin,
        "port block",
        &in_block,
        (POLICY_KIND_RANGE, FRIEND, 42),
    );
    let any_udp = PacketSpec::new(exact.src, exact.dst, 17, 42304, 5000);
    let want = (POLICY_KIND_PORTS, FRIEND, 43);
    check_denied(&dp, &pin, "every port of a protocol", &any_udp, want);
    // Every deciding entry counted its decision (the cached packets are pending in the slots).
    let wildcard_8086 = PolicyKey {
        identity: 0,
        dir_flags: 0,
        protocol: 6,
        dport_be: 8086u16.to_be(),
    };
    let rng = dp.map(maps::POLICY_RANGES.name).unwrap();
    let block_value = PolicyValue::from_bytes(&rng.lookup(block.as_bytes()).unwrap().unwrap());
    assert_eq!(block_value.unwrap().packets, 1, "port block");
    assert_eq!(policy_value(&dp, &udp).packets, 1, "every UDP port");
    assert_eq!(policy_value(&dp, &foe_deny()).packets, 1, "every protocol");
    assert_eq!(
        policy_value(&dp, &wildcard_8086).packets,
        2,
        "exact port, both families"
    );
}
