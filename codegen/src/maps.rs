//! The one table of the datapath's maps: name, BPF map type, key and value layout, flags, where
//! the size comes from, the compile-time switches a map sits under and where it is pinned.
//! `bpf-templates/include/maps.h` is generated from it ([`render_c_header`]; a test keeps the
//! checked-in header equal to the generated one) with a `_Static_assert` on each map's key and
//! value size; the image writer, the loader and the agent take names and shapes from here.

use crate::endpoint::MapSizes;
use crate::layout::{
    AddrKey, AddrValue, Ct4EpKey, Ct6EpKey, CtValue, EpState, Fc4Slot, Fc6Slot, IpcacheHostKey,
    IpcacheKey, IpcacheValue, MetricsValue, NodeState, PolicyKey, PolicyRangeKey, PolicyValue,
    StructLayout,
};
use std::fmt::Write;

/// Longest BPF object name the kernel keeps (BPF_OBJ_NAME_LEN - 1).
pub const MAX_NAME_LEN: usize = 15;

/// `BPF_MAP_TYPE_*` of a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    Hash,
    Array,
    PercpuArray,
    LruHash,
    LpmTrie,
    Ringbuf,
}

impl MapType {
    /// The kernel's number for the type (`enum bpf_map_type`).
    pub const fn id(self) -> u32 {
        match self {
            MapType::Hash => 1,
            MapType::Array => 2,
            MapType::PercpuArray => 6,
            MapType::LruHash => 9,
            MapType::LpmTrie => 11,
            MapType::Ringbuf => 27,
        }
    }

    /// The C constant.
    pub const fn c_name(self) -> &'static str {
        match self {
            MapType::Hash => "BPF_MAP_TYPE_HASH",
            MapType::Array => "BPF_MAP_TYPE_ARRAY",
            MapType::PercpuArray => "BPF_MAP_TYPE_PERCPU_ARRAY",
            MapType::LruHash => "BPF_MAP_TYPE_LRU_HASH",
            MapType::LpmTrie => "BPF_MAP_TYPE_LPM_TRIE",
            MapType::Ringbuf => "BPF_MAP_TYPE_RINGBUF",
        }
    }
}

/// The type of a map's key or value.
#[derive(Clone, Copy, Debug)]
pub enum Slot {
    /// No key or value (ring buffers).
    None,
    U32,
    U64,
    /// A shared struct of `layout.rs`.
    Struct(&'static StructLayout),
}

impl Slot {
    /// Size in bytes (0 for [`Slot::None`]).
    pub const fn size(&self) -> usize {
        match self {
            Slot::None => 0,
            Slot::U32 => 4,
            Slot::U64 => 8,
            Slot::Struct(s) => s.size,
        }
    }

    /// The C type, `None` for [`Slot::None`].
    pub fn c_type(&self) -> Option<String> {
        match self {
            Slot::None => None,
            Slot::U32 => Some("__u32".into()),
            Slot::U64 => Some("__u64".into()),
            Slot::Struct(s) => Some(format!("struct {}", s.c_name)),
        }
    }
}

/// Where a map's `max_entries` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxEntries {
    /// [`MapSizes::policy_map`] (`POLICY_MAP_SIZE`).
    PolicyMap,
    /// Sized per endpoint: the object carries the most an endpoint may have,
    /// [`MapSizes::policy_map`] (`POLICY_MAP_SIZE`); loaders create the map with the endpoint's
    /// [`MapSizes::policy_capacity`] ([`endpoint_max_entries`]).
    PerEndpoint,
    /// [`MapSizes::ct_tcp`] (`CT_TCP_MAP_SIZE`): the node's TCP connections of a family.
    CtTcp,
    /// [`MapSizes::ct_any`] (`CT_ANY_MAP_SIZE`): the node's other connections of a family.
    CtAny,
    /// [`MapSizes::addr_map`] (`ADDR_MAP_SIZE`).
    AddrMap,
    /// [`MapSizes::ipcache_map`] (`IPCACHE_MAP_SIZE`).
    IpcacheMap,
    /// [`MapSizes::flow_cache`] (`FLOW_CACHE_SLOTS`).
    FlowCacheSlots,
    /// [`MapSizes::events_ringbuf`] bytes (`EVENTS_RINGBUF_SIZE`).
    EventsRingbuf,
    /// [`crate::layout::METRICS_ENTRIES`].
    Metrics,
    /// One entry.
    One,
}

impl MaxEntries {
    /// The C expression in the map definition.
    pub const fn c_expr(self) -> &'static str {
        match self {
            MaxEntries::PolicyMap | MaxEntries::PerEndpoint => "POLICY_MAP_SIZE",
            MaxEntries::CtTcp => "CT_TCP_MAP_SIZE",
            MaxEntries::CtAny => "CT_ANY_MAP_SIZE",
            MaxEntries::AddrMap => "ADDR_MAP_SIZE",
            MaxEntries::IpcacheMap => "IPCACHE_MAP_SIZE",
            MaxEntries::FlowCacheSlots => "FLOW_CACHE_SLOTS",
            MaxEntries::EventsRingbuf => "EVENTS_RINGBUF_SIZE",
            MaxEntries::Metrics => "METRICS_ENTRIES",
            MaxEntries::One => "1",
        }
    }

    /// The value for objects built with `sizes` (for [`MaxEntries::PerEndpoint`], the most).
    pub const fn of(self, sizes: &MapSizes) -> u32 {
        match self {
            MaxEntries::PolicyMap | MaxEntries::PerEndpoint => sizes.policy_map,
            MaxEntries::CtTcp => sizes.ct_tcp,
            MaxEntries::CtAny => sizes.ct_any,
            MaxEntries::AddrMap => sizes.addr_map,
            MaxEntries::IpcacheMap => sizes.ipcache_map,
            MaxEntries::FlowCacheSlots => sizes.flow_cache,
            MaxEntries::EventsRingbuf => sizes.events_ringbuf,
            MaxEntries::Metrics => crate::layout::METRICS_ENTRIES,
            MaxEntries::One => 1,
        }
    }
}

/// Where a map is pinned, so that it outlives a program replacement (runtime-loader's layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// Under the node: one map shared by every endpoint's programs.
    Node,
    /// Under the endpoint: shared by its two programs and kept across reloads.
    Endpoint,
    /// Not pinned: a new program starts with an empty map.
    None,
}

/// A preprocessor condition a map definition sits under.
#[derive(Debug, PartialEq, Eq)]
pub struct Cond {
    /// The opening line, e.g. `#ifdef ENABLE_CT`.
    pub open: &'static str,
    /// A macro defined to 1 right after the opening line (the rest of the program tests it).
    pub define: Option<&'static str>,
    /// Why the condition exists (a C comment after the opening line).
    pub doc: &'static str,
}

const PORT_RANGES: Cond = Cond {
    open: "#ifdef ENABLE_PORT_RANGES",
    define: None,
    doc: "",
};
const ADDR_MATCH: Cond = Cond {
    open: "#ifdef ENABLE_ADDR_MATCH",
    define: None,
    doc: "",
};
const CT: Cond = Cond {
    open: "#ifdef ENABLE_CT",
    define: None,
    doc: "",
};
const IPV4: Cond = Cond {
    open: "#ifdef ENABLE_IPV4",
    define: None,
    doc: "",
};
const IPV6: Cond = Cond {
    open: "#ifdef ENABLE_IPV6",
    define: None,
    doc: "",
};
const FLOW_CACHE: Cond = Cond {
    open: "#if FLOW_CACHE_SLOTS > 0",
    define: Some("ENABLE_FLOW_CACHE"),
    doc: "Per-CPU flow cache in front of CT (flowcache.h): direct-mapped slots.",
};
const DENY_CACHE: Cond = Cond {
    open: "#if FLOW_CACHE_DENY",
    define: Some("ENABLE_DENY_CACHE"),
    doc: "Deny slots (flowcache.h) need BPF atomics with fetch (Linux 5.12).",
};

/// One map of the datapath.
#[derive(Debug)]
pub struct MapDef {
    /// The map's name in the object, its pin file name and its name in map images.
    pub name: &'static str,
    pub doc: &'static str,
    pub map_type: MapType,
    pub key: Slot,
    pub value: Slot,
    pub max_entries: MaxEntries,
    /// `BPF_F_NO_PREALLOC`: entries are allocated as they are inserted.
    pub no_prealloc: bool,
    pub pin: Pin,
    /// The conditions the definition sits under, outermost first (none: always present).
    pub conds: &'static [&'static Cond],
}

impl MapDef {
    /// `map_flags` of the definition.
    pub const fn flags(&self) -> u32 {
        if self.no_prealloc {
            BPF_F_NO_PREALLOC
        } else {
            0
        }
    }
}

/// `BPF_F_NO_PREALLOC`.
pub const BPF_F_NO_PREALLOC: u32 = 1;

pub const POLICY: MapDef = MapDef {
    name: "cp_policy",
    doc: "Per-endpoint policy: (identity, direction, protocol, port or wildcard) -> verdict + counters. Not preallocated (as Cilium's policy maps by default): an endpoint pays for the entries it has, not for POLICY_MAP_SIZE of them (1.5 MB each at 16,384); lookups cost the same. POLICY_MAP_SIZE is the most: the loader creates it sized from the endpoint's entries (its bucket array is allocated whole, 16 bytes per entry of max_entries).",
    map_type: MapType::Hash,
    key: Slot::Struct(&PolicyKey::LAYOUT),
    value: Slot::Struct(&PolicyValue::LAYOUT),
    max_entries: MaxEntries::PerEndpoint,
    no_prealloc: true,
    pin: Pin::Endpoint,
    conds: &[],
};
pub const POLICY_RANGES: MapDef = MapDef {
    name: "cp_policy_rng",
    doc: "Port ranges of the policy (aligned power-of-two blocks), consulted after the exact port.",
    map_type: MapType::LpmTrie,
    key: Slot::Struct(&PolicyRangeKey::LAYOUT),
    value: Slot::Struct(&PolicyValue::LAYOUT),
    max_entries: MaxEntries::PolicyMap,
    no_prealloc: true,
    pin: Pin::Endpoint,
    conds: &[&PORT_RANGES],
};
pub const IPCACHE_HOST: MapDef = MapDef {
    name: "cp_ipcache_host",
    doc: "Node-wide ipcache (shared by every endpoint's program), host addresses -> identity.",
    map_type: MapType::Hash,
    key: Slot::Struct(&IpcacheHostKey::LAYOUT),
    value: Slot::Struct(&IpcacheValue::LAYOUT),
    max_entries: MaxEntries::IpcacheMap,
    no_prealloc: true,
    pin: Pin::Node,
    conds: &[],
};
pub const IPCACHE: MapDef = MapDef {
    name: "cp_ipcache",
    doc: "Node-wide ipcache, prefixes shorter than a host address -> identity (looked up after cp_ipcache_host).",
    map_type: MapType::LpmTrie,
    key: Slot::Struct(&IpcacheKey::LAYOUT),
    value: Slot::Struct(&IpcacheValue::LAYOUT),
    max_entries: MaxEntries::IpcacheMap,
    no_prealloc: true,
    pin: Pin::Node,
    conds: &[],
};
pub const ADDR: MapDef = MapDef {
    name: "cp_addr",
    doc: "Address classes of NetworkPolicy ipBlock peers: prefix -> class id (a policy-map identity).",
    map_type: MapType::LpmTrie,
    key: Slot::Struct(&AddrKey::LAYOUT),
    value: Slot::Struct(&AddrValue::LAYOUT),
    max_entries: MaxEntries::AddrMap,
    no_prealloc: true,
    pin: Pin::Endpoint,
    conds: &[&ADDR_MATCH],
};
/// One table of the node's connection tracking: every endpoint's connections of one family
/// and protocol class, kept apart by the key's endpoint id and nonce (`ct4_ep_key`).
/// Preallocated (the kernel has no LRU hash without). Pinned under the node and shared by
/// every endpoint's programs, which name both tables of their family (ct.h, `CT_TABLE_CALL`).
const fn ct_table(
    name: &'static str,
    doc: &'static str,
    key: &'static crate::layout::StructLayout,
    max_entries: MaxEntries,
    conds: &'static [&'static Cond],
) -> MapDef {
    MapDef {
        name,
        doc,
        map_type: MapType::LruHash,
        key: Slot::Struct(key),
        value: Slot::Struct(&CtValue::LAYOUT),
        max_entries,
        no_prealloc: false,
        pin: Pin::Node,
        conds,
    }
}

pub const CT4_TCP: MapDef = ct_table(
    "cp_ct4_tcp",
    "IPv4 TCP connections of the node (every endpoint; the key holds the endpoint), \
     --bpf-ct-global-tcp-max entries: a flood of other protocols cannot evict them.",
    &Ct4EpKey::LAYOUT,
    MaxEntries::CtTcp,
    &[&CT, &IPV4],
);
pub const CT4_ANY: MapDef = ct_table(
    "cp_ct4_any",
    "IPv4 connections of every other protocol, --bpf-ct-global-any-max entries.",
    &Ct4EpKey::LAYOUT,
    MaxEntries::CtAny,
    &[&CT, &IPV4],
);
pub const CT6_TCP: MapDef = ct_table(
    "cp_ct6_tcp",
    "IPv6 TCP connections of the node, --bpf-ct-global-tcp-max entries.",
    &Ct6EpKey::LAYOUT,
    MaxEntries::CtTcp,
    &[&CT, &IPV6],
);
pub const CT6_ANY: MapDef = ct_table(
    "cp_ct6_any",
    "IPv6 connections of every other protocol, --bpf-ct-global-any-max entries.",
    &Ct6EpKey::LAYOUT,
    MaxEntries::CtAny,
    &[&CT, &IPV6],
);
pub const FC4: MapDef = MapDef {
    name: "cp_fc4",
    doc: "IPv4 flow-cache slots per CPU. Not pinned: a new program starts with an empty cache.",
    map_type: MapType::PercpuArray,
    key: Slot::U32,
    value: Slot::Struct(&Fc4Slot::LAYOUT),
    max_entries: MaxEntries::FlowCacheSlots,
    no_prealloc: false,
    pin: Pin::None,
    conds: &[&CT, &FLOW_CACHE, &IPV4],
};
pub const FC6: MapDef = MapDef {
    name: "cp_fc6",
    doc: "IPv6 flow-cache slots per CPU. Not pinned: a new program starts with an empty cache.",
    map_type: MapType::PercpuArray,
    key: Slot::U32,
    value: Slot::Struct(&Fc6Slot::LAYOUT),
    max_entries: MaxEntries::FlowCacheSlots,
    no_prealloc: false,
    pin: Pin::None,
    conds: &[&CT, &FLOW_CACHE, &IPV6],
};
pub const CTGEN: MapDef = MapDef {
    name: "cp_ctgen",
    doc: "Per bucket (the flow-cache slot index, both families): how many CT entries of this endpoint were created with a key of that bucket; shared by every CPU and pinned with the endpoint (only its own program creates entries with its key).",
    map_type: MapType::Array,
    key: Slot::U32,
    value: Slot::U64,
    max_entries: MaxEntries::FlowCacheSlots,
    no_prealloc: false,
    pin: Pin::Endpoint,
    conds: &[&CT, &FLOW_CACHE, &DENY_CACHE],
};
pub const NODE: MapDef = MapDef {
    name: "cp_node",
    doc: "Node-wide state (shared and pinned like the ipcache): the ipcache generation.",
    map_type: MapType::Array,
    key: Slot::U32,
    value: Slot::Struct(&NodeState::LAYOUT),
    max_entries: MaxEntries::One,
    no_prealloc: false,
    pin: Pin::Node,
    conds: &[],
};
pub const STATE: MapDef = MapDef {
    name: "cp_state",
    doc: "Runtime state: policy revision, CT timeouts, event mask.",
    map_type: MapType::Array,
    key: Slot::U32,
    value: Slot::Struct(&EpState::LAYOUT),
    max_entries: MaxEntries::One,
    no_prealloc: false,
    pin: Pin::Endpoint,
    conds: &[],
};
pub const METRICS: MapDef = MapDef {
    name: "cp_metrics",
    doc: "Per-CPU packet/byte counters by direction and reason (0 = forwarded).",
    map_type: MapType::PercpuArray,
    key: Slot::U32,
    value: Slot::Struct(&MetricsValue::LAYOUT),
    max_entries: MaxEntries::Metrics,
    no_prealloc: false,
    pin: Pin::Endpoint,
    conds: &[],
};
pub const EVENTS: MapDef = MapDef {
    name: "cp_events",
    doc: "Drop and verdict events for `monitor` (ring buffer of struct event).",
    map_type: MapType::Ringbuf,
    key: Slot::None,
    value: Slot::None,
    max_entries: MaxEntries::EventsRingbuf,
    no_prealloc: false,
    pin: Pin::Node,
    conds: &[],
};

/// Every map, in the order of `maps.h`.
pub const MAPS: &[&MapDef] = &[
    &POLICY,
    &POLICY_RANGES,
    &IPCACHE_HOST,
    &IPCACHE,
    &ADDR,
    &CT4_TCP,
    &CT4_ANY,
    &CT6_TCP,
    &CT6_ANY,
    &FC4,
    &FC6,
    &CTGEN,
    &NODE,
    &STATE,
    &METRICS,
    &EVENTS,
];

const _: () = {
    let mut i = 0;
    while i < MAPS.len() {
        assert!(MAPS[i].name.len() <= MAX_NAME_LEN, "map name too long");
        i += 1;
    }
};

/// Maps earlier builds pinned that the table no longer has, with where they were pinned: the
/// pin check (runtime-loader's `pins`) unlinks them wherever it is asked about a map of the
/// same scope.
pub const RETIRED: &[(&str, Pin)] = &[
    // Per-endpoint connection tracking, before the node-wide cp_ct{4,6}_{tcp,any} (issue 15).
    ("cp_ct4", Pin::Endpoint),
    ("cp_ct6", Pin::Endpoint),
    // Each family's tables through a map of maps, before the programs named them directly: a
    // call site seeing one map is inlined by the verifier, the map of maps cost a packet that
    // misses the flow cache 2-4 % (Documentation/performance.md).
    ("cp_ct4_global", Pin::Node),
    ("cp_ct6_global", Pin::Node),
];

/// The map called `name`.
pub fn by_name(name: &str) -> Option<&'static MapDef> {
    MAPS.iter().copied().find(|m| m.name == name)
}

/// The maps pinned at `pin`, in table order.
pub fn pinned(pin: Pin) -> impl Iterator<Item = &'static MapDef> {
    MAPS.iter().copied().filter(move |m| m.pin == pin)
}

/// The `max_entries` overrides loaders pass for an endpoint whose per-endpoint maps
/// ([`MaxEntries::PerEndpoint`]) are created with `capacity` entries
/// ([`MapSizes::policy_capacity`]): (map name, entries).
pub fn endpoint_max_entries(capacity: u32) -> Vec<(&'static str, u32)> {
    MAPS.iter()
        .filter(|m| m.max_entries == MaxEntries::PerEndpoint)
        .map(|m| (m.name, capacity))
        .collect()
}

/// Renders `bpf-templates/include/maps.h`.
pub fn render_c_header() -> String {
    let mut out = String::new();
    out.push_str("/* Generated by codegen/src/maps.rs (render_c_header); do not edit. */\n");
    out.push_str(
        "/* The datapath's maps (BTF-style definitions aya loads). Sizes come from the endpoint and\n * node headers; layouts from layout.h. */\n",
    );
    out.push_str("#ifndef CP_MAPS_H\n#define CP_MAPS_H\n");
    let mut open: Vec<&Cond> = Vec::new();
    for m in MAPS {
        let common = open
            .iter()
            .zip(m.conds.iter())
            .take_while(|(a, b)| a == b)
            .count();
        while open.len() > common {
            open.pop();
            out.push_str("#endif\n");
        }
        for c in &m.conds[common..] {
            let _ = writeln!(out, "\n{}", c.open);
            if !c.doc.is_empty() {
                let _ = writeln!(out, "/* {} */", c.doc);
            }
            if let Some(d) = c.define {
                let _ = writeln!(out, "#define {d} 1");
            }
            open.push(c);
        }
        render_map(&mut out, m);
    }
    for _ in open {
        out.push_str("#endif\n");
    }
    out.push_str("\n#endif /* CP_MAPS_H */\n");
    out
}

fn render_map(out: &mut String, m: &MapDef) {
    let _ = writeln!(out, "\n/* {} */\nstruct {{", m.doc);
    render_fields(out, m, m.max_entries, "\t");
    let _ = writeln!(out, "}} {} SEC(\".maps\");", m.name);
    let asserts = [("key", m.key.size()), ("value", m.value.size())];
    for (what, size) in asserts.into_iter().filter(|(_, size)| *size > 0) {
        let _ = writeln!(
            out,
            "_Static_assert(sizeof(*{name}.{what}) == {size}, \"{name} {what} size\");",
            name = m.name,
        );
    }
}

/// The members of a map definition, one per line after `indent`.
fn render_fields(out: &mut String, m: &MapDef, max_entries: MaxEntries, indent: &str) {
    let _ = writeln!(out, "{indent}__uint(type, {});", m.map_type.c_name());
    for (what, slot) in [("key", &m.key), ("value", &m.value)] {
        if let Some(t) = slot.c_type() {
            let _ = writeln!(out, "{indent}__type({what}, {t});");
        }
    }
    let _ = writeln!(
        out,
        "{indent}__uint(max_entries, {});",
        max_entries.c_expr()
    );
    if m.no_prealloc {
        let _ = writeln!(out, "{indent}__uint(map_flags, BPF_F_NO_PREALLOC);");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = MAPS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MAPS.len());
    }

    #[test]
    fn every_map_is_closed_and_guarded_as_listed() {
        let h = render_c_header();
        assert_eq!(h.matches("#if").count(), h.matches("#endif").count());
        let fc6 = h.find("} cp_fc6 SEC").unwrap();
        let before = &h[..fc6];
        let opened = |line: &str| before.rfind(line).unwrap();
        assert!(opened("#ifdef ENABLE_IPV6") > opened("#if FLOW_CACHE_SLOTS > 0"));
        assert!(opened("#if FLOW_CACHE_SLOTS > 0") > opened("#ifdef ENABLE_CT"));
    }

    #[test]
    fn the_policy_map_is_sized_from_the_endpoint_entries() {
        let sizes = MapSizes::default();
        assert_eq!(
            sizes.policy_capacity(0),
            crate::endpoint::POLICY_MIN_CAPACITY
        );
        assert_eq!(sizes.policy_capacity(512), 1_024);
        assert_eq!(sizes.policy_capacity(513), 2_048);
        assert_eq!(sizes.policy_capacity(3_000), 8_192);
        // Never more than the most an endpoint may have, whatever that is.
        assert_eq!(sizes.policy_capacity(9_000), sizes.policy_map);
        let odd = MapSizes {
            policy_map: 3_000,
            ..sizes
        };
        assert_eq!(odd.policy_capacity(2_000), 3_000);
        assert_eq!(endpoint_max_entries(2_048), [(POLICY.name, 2_048)]);
    }

    #[test]
    fn each_ct_table_has_its_size_and_is_shared_by_the_node() {
        let sizes = MapSizes {
            ct_tcp: 3_072,
            ct_any: 1_024,
            ..MapSizes::default()
        };
        for (tcp, any) in [(&CT4_TCP, &CT4_ANY), (&CT6_TCP, &CT6_ANY)] {
            assert_eq!(tcp.max_entries.of(&sizes), 3_072);
            assert_eq!(any.max_entries.of(&sizes), 1_024);
            assert_eq!((tcp.pin, any.pin), (Pin::Node, Pin::Node));
        }
        // The tables an earlier layout reached through a map of maps are unpinned on upgrade.
        for outer in ["cp_ct4_global", "cp_ct6_global"] {
            assert!(by_name(outer).is_none());
            assert!(RETIRED.contains(&(outer, Pin::Node)));
        }
    }

    #[test]
    fn sizes_follow_map_sizes() {
        let sizes = MapSizes::default();
        assert_eq!(POLICY.max_entries.of(&sizes), sizes.policy_map);
        assert_eq!(EVENTS.max_entries.of(&sizes), sizes.events_ringbuf);
        assert_eq!(STATE.max_entries.of(&sizes), 1);
    }
}
