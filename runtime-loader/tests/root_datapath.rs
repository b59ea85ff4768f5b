//! The datapath's behaviour on hand-built policies (truth table written from seed §3.7.2 and the
//! documented datapath choices): identity allow, port miss, deny precedence, wildcard identity,
//! replies of allowed connections, source-address check, fragments, ICMP echo, IPv6 extension
//! headers, revocation of established flows, address (ipBlock) matching.

mod common;

use codegen::layout::{CtValue, CT_CLOSING};
use codegen::maps;
use codegen::MapSizes;
use common::datapath::{
    ip, revoke_port_80, run, setup, setup_sized, setup_with, slow_hz, slow_state, tcp,
};
use ir::Direction;
use runtime_loader::packet::PacketSpec;
use runtime_loader::Datapath;

#[test]
fn root_datapath_truth_table() {
    let Some(dp) = setup() else { return };
    truth_table(&dp);
}

/// The same on the build for kernels without BPF atomics with fetch (5.10, 5.11), and on the
/// build without a flow cache.
#[test]
fn root_datapath_truth_table_without_deny_slots_and_without_flow_cache() {
    for sizes in [
        MapSizes {
            deny_cache: false,
            ..MapSizes::default()
        },
        MapSizes {
            flow_cache: 0,
            ..MapSizes::default()
        },
    ] {
        let Some(dp) = setup_sized(true, &sizes) else {
            return;
        };
        truth_table(&dp);
    }
}

fn truth_table(dp: &Datapath) {
    let ing = Direction::Ingress;
    let eg = Direction::Egress;
    // Identity allow on an exact port, and on a port prefix (8080-8087).
    assert!(run(dp, ing, &tcp("10.0.0.2", "10.0.0.1", 40000, 80)));
    assert!(run(dp, ing, &tcp("10.0.0.2", "10.0.0.1", 40000, 8087)));
    assert!(!run(dp, ing, &tcp("10.0.0.2", "10.0.0.1", 40000, 8088)));
    // ... except 8086, denied for every identity.
    assert!(!run(dp, ing, &tcp("10.0.0.2", "10.0.0.1", 40000, 8086)));
    // Wildcard identity allows port 80 from the world, nothing else.
    assert!(run(dp, ing, &tcp("1.1.1.1", "10.0.0.1", 40001, 80)));
    assert!(!run(dp, ing, &tcp("1.1.1.1", "10.0.0.1", 40001, 22)));
    // Deny of the foe's identity beats the wildcard allow on 80.
    assert!(!run(dp, ing, &tcp("10.0.0.3", "10.0.0.1", 40002, 80)));
    // Egress: only UDP/53 anywhere; TCP out is denied unless it replies to an allowed connection.
    assert!(run(
        dp,
        eg,
        &PacketSpec::new(ip("10.0.0.1"), ip("8.8.8.8"), 17, 5353, 53)
    ));
    assert!(!run(dp, eg, &tcp("10.0.0.1", "10.0.0.2", 50000, 9000)));
    let syn = tcp("10.0.0.2", "10.0.0.1", 41000, 80);
    assert!(run(dp, ing, &syn));
    assert!(run(dp, eg, &syn.reply()), "reply of an allowed connection");
    // A spoofed source address is dropped.
    assert!(!run(
        dp,
        eg,
        &PacketSpec::new(ip("10.0.0.9"), ip("8.8.8.8"), 17, 5353, 53)
    ));
    // Non-first fragments are dropped; first fragments are policed normally.
    let mut frag = tcp("10.0.0.2", "10.0.0.1", 42000, 80);
    frag.fragment_offset = Some(0);
    assert!(run(dp, ing, &frag));
    frag.fragment_offset = Some(100);
    assert!(!run(dp, ing, &frag));
    // ICMP echo from the friend is allowed and its reply goes out; echo from the world is not.
    let echo = PacketSpec::new(ip("10.0.0.2"), ip("10.0.0.1"), 1, 77, 8);
    assert!(run(dp, ing, &echo));
    assert!(run(dp, eg, &echo.reply()));
    assert!(!run(
        dp,
        ing,
        &PacketSpec::new(ip("1.1.1.1"), ip("10.0.0.1"), 1, 78, 8)
    ));
    // IPv6 through extension headers, ICMPv6 echo.
    let mut v6 = tcp("fd00::2", "fd00::1", 43000, 80);
    v6.ipv6_ext_headers = 2;
    assert!(run(dp, ing, &v6));
    v6.dport = 81;
    assert!(!run(dp, ing, &v6));
    assert!(run(
        dp,
        ing,
        &PacketSpec::new(ip("fd00::2"), ip("fd00::1"), 58, 9, 128)
    ));
    // Address matching: 192.168.0.0/16 on 443 is allowed by address although its identity is the foe's.
    assert!(run(dp, eg, &tcp("10.0.0.1", "192.168.1.5", 44000, 443)));
    assert!(!run(dp, eg, &tcp("10.0.0.1", "192.168.1.5", 44000, 444)));
}

#[test]
fn root_datapath_revoked_policy_stops_established_flows() {
    let Some(dp) = setup() else { return };
    let syn = tcp("10.0.0.2", "10.0.0.1", 45000, 80);
    assert!(run(&dp, Direction::Ingress, &syn));
    // Revoke: remove the friend's and the wildcard port-80 allows, bump the revision.
    revoke_port_80(&dp);
    // Still the old revision: the established flow continues.
    let mut ack = syn.clone();
    ack.tcp_flags = 0x10;
    assert!(run(&dp, Direction::Ingress, &ack));
    let mut st = runtime_loader::load::default_state();
    st.policy_rev = 2;
    dp.set_state(&st).unwrap();
    assert!(
        !run(&dp, Direction::Ingress, &ack),
        "revoked flow must stop"
    );
    assert!(
        !run(&dp, Direction::Egress, &syn.reply()),
        "its replies too"
    );
}

/// The CT entry of the only tracked (TCP) connection.
fn only_ct_entry(dp: &Datapath) -> CtValue {
    let e = dp.map(maps::CT4_TCP.name).unwrap().entries().unwrap();
    assert_eq!(e.len(), 1, "one tracked connection");
    CtValue::from_bytes(e.values().next().unwrap()).unwrap()
}

#[test]
fn root_datapath_tcp_close_shortens_lifetime_and_stale_entries_expire() {
    let Some(dp) = setup() else { return };
    // On the slow clock, "(almost) now" below allows a stall of many minutes.
    dp.set_state(&slow_state(1)).unwrap();
    let hz = slow_hz();
    let syn = tcp("10.0.0.2", "10.0.0.1", 46000, 80);
    assert!(run(&dp, Direction::Ingress, &syn));
    let open = only_ct_entry(&dp);
    assert_eq!(open.flags & CT_CLOSING, 0);
    // The endpoint closes: its FIN is a reply of the connection and passes.
    let mut fin = syn.reply();
    fin.tcp_flags = 0x11;
    assert!(run(&dp, Direction::Egress, &fin));
    let closing = only_ct_entry(&dp);
    assert_ne!(closing.flags & CT_CLOSING, 0);
    // 6 h (default TCP lifetime) became at most 10 s, both counted from (almost) now.
    assert!(
        open.expires > closing.expires + (21_600 - 11) * hz,
        "lifetime after FIN: {} jiffies before, {} after (HZ {hz})",
        open.expires,
        closing.expires
    );
    // The last ACK still belongs to the connection.
    let mut ack = syn.clone();
    ack.tcp_flags = 0x10;
    assert!(run(&dp, Direction::Ingress, &ack));
    // A SYN on the closed connection is a new connection: sent by the endpoint, its egress
    // policy (UDP/53 only) decides, although the tuple is the reply of a tracked connection.
    let mut resyn = syn.reply();
    resyn.tcp_flags = 0x02;
    assert!(
        !run(&dp, Direction::Egress, &resyn),
        "SYN after FIN must be re-decided"
    );
    // Once stale, the entry no longer carries replies: the endpoint's egress policy (UDP/53
    // only) decides them, and drops this one.
    let map = dp.map(maps::CT4_TCP.name).unwrap();
    let (key, _) = map.entries().unwrap().into_iter().next().unwrap();
    let stale = CtValue {
        expires: 1,
        ..closing
    };
    map.update(&key, stale.as_bytes()).unwrap();
    let mut data = syn.reply();
    data.tcp_flags = 0x10;
    assert!(
        !run(&dp, Direction::Egress, &data),
        "stale entry must not pass replies"
    );
}

#[test]
fn root_datapath_ipv6_neighbour_discovery_passes_on_ipv4_only_endpoints() {
    let Some(dp) = setup_with(false) else { return };
    let (ll, peer) = ("fe80::1", "fe80::2");
    for ty in [133u16, 134, 135, 136, 137] {
        let nd = PacketSpec::new(ip(ll), ip(peer), 58, 0, ty);
        assert!(run(&dp, Direction::Ingress, &nd), "ICMPv6 type {ty} in");
        assert!(run(&dp, Direction::Egress, &nd), "ICMPv6 type {ty} out");
    }
    // Other IPv6 is still an unsupported L3 protocol here.
    let echo = PacketSpec::new(ip("fd00::2"), ip("fd00::1"), 58, 9, 128);
    assert!(!run(&dp, Direction::Ingress, &echo));
    assert!(!run(
        &dp,
        Direction::Ingress,
        &tcp("fd00::2", "fd00::1", 43000, 80)
    ));
    // IPv4 is enforced as usual.
    assert!(run(
        &dp,
        Direction::Ingress,
        &tcp("10.0.0.2", "10.0.0.1", 40000, 80)
    ));
}
