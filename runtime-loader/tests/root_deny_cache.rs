//! Default denies remembered in the flow cache (bpf-templates/include/flowcache.h, "Deny
//! slots"): a repeated denied packet is dropped from its slot, a policy revision bump or an
//! ipcache generation bump makes the very next packet decided again, connection tracking still
//! passes replies of connections opened the other way, and the drop counter counts every drop.
//!
//! Runs on the slow clock (a slot lives for a datapath second, many real minutes) with the
//! thread pinned to one CPU (the slots are per CPU).

mod common;

use codegen::ipcache::ipcache_images;
use codegen::layout::{MetricsValue, NodeState, PolicyKey, PolicyValue};
use codegen::maps;
use common::datapath::{
    drain_events, fc4_deny_slots, ip, run, slow_setup, slow_setup_with_events, slow_state, tcp,
    FRIEND,
};
use ir::{Direction, IpCache, NumericIdentity};
use runtime_loader::packet::PacketSpec;
use runtime_loader::Datapath;

const DROP_POLICY: u32 = 133;

/// Every CPU's IPv4 deny slots: (peer identity, ipcache generation, policy revision).
fn deny_slots(dp: &Datapath) -> Vec<(u32, u32, u32)> {
    fc4_deny_slots(dp)
        .iter()
        .map(|s| (s.peer_identity, s.ipcache_gen, s.policy_rev))
        .collect()
}

/// Packets counted as dropped by policy (DROP_POLICY) in direction `dir`, every CPU.
fn policy_drops(dp: &Datapath, dir: u32) -> u64 {
    let map = dp.map(maps::METRICS.name).unwrap();
    let v = map
        .lookup(&(dir * 256 + DROP_POLICY).to_ne_bytes())
        .unwrap()
        .unwrap();
    map.cpu_values(&v)
        .map(|c| MetricsValue::from_bytes(c).unwrap().packets)
        .sum()
}

/// Adds an ingress allow of TCP `port` for `identity` (the revision is left alone).
fn allow_tcp(dp: &Datapath, identity: u32, port: u16) {
    let key = PolicyKey {
        identity,
        dir_flags: 0,
        protocol: 6,
        dport_be: port.to_be(),
    };
    let value = PolicyValue {
        verdict: codegen::layout::VERDICT_ALLOW,
        rule_id: 99,
        ..Default::default()
    };
    let map = dp.map(maps::POLICY.name).unwrap();
    map.update(key.as_bytes(), value.as_bytes()).unwrap();
}

fn set_ipcache_gen(dp: &Datapath, gen: u32) {
    let node = NodeState {
        ipcache_gen: gen,
        pad: 0,
    };
    let map = dp.map(maps::NODE.name).unwrap();
    map.update(&0u32.to_ne_bytes(), node.as_bytes()).unwrap();
}

#[test]
fn root_deny_cache_serves_repeated_denies_until_the_revision_changes() {
    let Some(dp) = slow_setup() else { return };
    // The friend has no entry for TCP/9999 (nor has the wildcard identity): a default deny.
    let denied = tcp("10.0.0.2", "10.0.0.1", 41000, 9999);
    for _ in 0..3 {
        assert!(!run(&dp, Direction::Ingress, &denied));
    }
    assert_eq!(deny_slots(&dp), vec![(FRIEND, 0, 1)], "one deny slot");
    assert_eq!(policy_drops(&dp, 0), 3, "every drop counted");
    // An allow written without a revision bump is not seen by the slot (nor, in the agent,
    // does it exist: the agent bumps the revision after writing an endpoint's maps).
    allow_tcp(&dp, FRIEND, 9999);
    assert!(
        !run(&dp, Direction::Ingress, &denied),
        "served from the slot"
    );
    assert_eq!(policy_drops(&dp, 0), 4);
    dp.set_state(&slow_state(2)).unwrap();
    assert!(
        run(&dp, Direction::Ingress, &denied),
        "revision bump: the very next packet is decided again"
    );
    assert_eq!(policy_drops(&dp, 0), 4);
}

#[test]
fn root_deny_cache_ipcache_generation_bump_takes_effect_on_the_next_packet() {
    let Some(dp) = slow_setup() else { return };
    // 10.0.0.9 is not in the ipcache (world): TCP/8080 is the friend's alone.
    let stranger = tcp("10.0.0.9", "10.0.0.1", 41100, 8080);
    assert!(!run(&dp, Direction::Ingress, &stranger));
    assert_eq!(deny_slots(&dp), vec![(2, 0, 1)], "world's deny slot");
    // The address becomes the friend's: entries first, then the generation, as the agent does.
    let mut cache = IpCache::default();
    cache.insert("10.0.0.9/32".parse().unwrap(), NumericIdentity(FRIEND));
    for img in ipcache_images(&cache) {
        dp.fill(&img).unwrap();
    }
    assert!(
        !run(&dp, Direction::Ingress, &stranger),
        "same generation: still the slot's verdict"
    );
    set_ipcache_gen(&dp, 1);
    assert!(
        run(&dp, Direction::Ingress, &stranger),
        "generation bump: the very next packet sees the new identity"
    );
    assert_eq!(policy_drops(&dp, 0), 2);
}

#[test]
fn root_deny_cache_leaves_connection_tracking_first() {
    let Some(dp) = slow_setup() else { return };
    // The friend's UDP from port 53 to the endpoint is denied (no ingress UDP entry) ...
    let inbound = PacketSpec::new(ip("10.0.0.2"), ip("10.0.0.1"), 17, 53, 40000);
    assert!(!run(&dp, Direction::Ingress, &inbound));
    assert!(!run(&dp, Direction::Ingress, &inbound));
    assert_eq!(deny_slots(&dp).len(), 1);
    // ... until the endpoint asks (egress UDP/53 is allowed): the same packet is now the reply
    // of a tracked connection and passes, although its deny slot is still valid.
    assert!(run(&dp, Direction::Egress, &inbound.reply()));
    assert!(run(&dp, Direction::Ingress, &inbound), "reply dropped");
    assert_eq!(policy_drops(&dp, 0), 2);
    assert_eq!(policy_drops(&dp, 1), 0);
}

#[test]
fn root_deny_cache_remembers_nothing_for_a_tuple_with_a_ct_entry() {
    let Some(dp) = slow_setup() else { return };
    // The friend's connection to port 80, closed by the endpoint's FIN.
    let syn = tcp("10.0.0.2", "10.0.0.1", 41200, 80);
    assert!(run(&dp, Direction::Ingress, &syn));
    let mut reply = syn.reply();
    reply.tcp_flags = 0x11;
    assert!(run(&dp, Direction::Egress, &reply));
    // A SYN from the endpoint on the closing connection is a new connection, which its egress
    // policy (UDP/53 only) denies; the tuple has a CT entry, so nothing is remembered ...
    reply.tcp_flags = 0x02;
    assert!(!run(&dp, Direction::Egress, &reply));
    assert!(deny_slots(&dp).is_empty(), "a deny slot over a CT entry");
    // ... and the endpoint's last ACK, a reply of the closing connection, still passes.
    reply.tcp_flags = 0x10;
    assert!(
        run(&dp, Direction::Egress, &reply),
        "reply of a closing connection"
    );
}

#[test]
fn root_deny_cache_drops_report_the_same_events() {
    let Some((dp, _fs, pin)) = slow_setup_with_events() else {
        return;
    };
    let denied = tcp("10.0.0.2", "10.0.0.1", 41300, 9999);
    for _ in 0..3 {
        assert!(!run(&dp, Direction::Ingress, &denied));
    }
    assert_eq!(
        deny_slots(&dp).len(),
        1,
        "the last two were served from the slot"
    );
    let events = drain_events(&pin);
    assert_eq!(events.len(), 3, "one drop event per packet");
    for e in &events {
        let want = codegen::layout::Event {
            time_ns: e.time_ns,
            ..events[0]
        };
        assert_eq!(*e, want, "cached drops report what the decision reported");
    }
    let e = events[0];
    assert_eq!(
        (e.kind, e.reason, e.peer_identity, e.rule_id, e.dport_be),
        (
            codegen::layout::EVENT_DROP,
            DROP_POLICY as u8,
            FRIEND,
            codegen::layout::RULE_NONE,
            9999u16.to_be()
        )
    );
}
