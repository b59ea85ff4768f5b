//! The layout `per_packet_pin` writes and `per_packet_ab` reads: the per_packet bench's endpoint
//! datapaths, built by one source tree and pinned in a bpffs directory so that another process
//! can measure them. A subdirectory per configuration holds its ingress program (`prog`) and,
//! with events on, its ring buffer (`events`). The layout is the interface between source trees
//! (a pinned program keeps its maps alive), so it names only what the bench names.
#![allow(dead_code)]

/// One endpoint datapath of the bench.
pub struct Config {
    pub name: &'static str,
    /// Policy entries (codegen's synthetic allows and one deny entry).
    pub entries: u32,
    pub flow_cache: bool,
    /// Dual-stack (fd00::1) instead of IPv4 only.
    pub ipv6: bool,
    /// Drop events on (the default endpoint state), the ring buffer pinned as `events`.
    pub events: bool,
}

const fn config(name: &'static str, entries: u32, flow_cache: bool, ipv6: bool) -> Config {
    Config {
        name,
        entries,
        flow_cache,
        ipv6,
        events: false,
    }
}

const fn with_events(c: Config) -> Config {
    Config { events: true, ..c }
}

pub const CONFIGS: [Config; 7] = [
    config("no_cache_10", 10, false, false),
    config("e10", 10, true, false),
    config("e10000", 10_000, true, false),
    with_events(config("e10_events", 10, true, false)),
    with_events(config("e10000_events", 10_000, true, false)),
    config("v6_10", 10, true, true),
    config("v6_10_no_cache", 10, false, true),
];

/// The empty classifier (the floor), pinned beside the configurations.
pub const FLOOR: &str = "floor";
pub const PROG: &str = "prog";
pub const EVENTS: &str = "events";
