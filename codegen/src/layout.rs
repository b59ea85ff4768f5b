//! The one source of truth for every key, value and event layout shared by the BPF C code and
//! Rust: `#[repr(C)]` structs declared through [`layouts!`], from which
//! `bpf-templates/include/layout.h` is generated ([`render_c_header`]; a test keeps the checked-in
//! header equal to the generated one). Sizes are asserted at compile time on both sides.
//!
//! Byte order: fields named `*_be` and addresses are in network byte order (they are compared
//! as LPM prefixes or copied from packets); every other integer is in host byte order.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One field of a shared struct: name, C type (`__u8[16]` for arrays) and byte offset.
#[derive(Debug, Clone, Copy)]
pub struct FieldLayout {
    pub name: &'static str,
    pub c_type: &'static str,
    pub offset: usize,
    pub doc: &'static str,
}

/// One shared struct.
#[derive(Debug, Clone, Copy)]
pub struct StructLayout {
    pub c_name: &'static str,
    pub size: usize,
    pub doc: &'static str,
    pub fields: &'static [FieldLayout],
}

macro_rules! layouts {
    ($( $(#[doc = $doc:literal])+ struct $name:ident as $cname:literal = $size:literal {
        $( #[doc = $fdoc:literal] $field:ident : $ty:ty = $cty:literal ),* $(,)?
    } )*) => {
        $(
            $(#[doc = $doc])+
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
            pub struct $name { $( #[doc = $fdoc] pub $field: $ty ),* }
            const _: () = assert!(std::mem::size_of::<$name>() == $size);
            impl $name {
                /// The struct's layout (its entry in [`STRUCTS`]).
                pub const LAYOUT: StructLayout = StructLayout {
                    c_name: $cname, size: $size, doc: concat!($($doc),+),
                    fields: &[ $( FieldLayout {
                        name: stringify!($field), c_type: $cty,
                        offset: std::mem::offset_of!($name, $field), doc: $fdoc,
                    } ),* ],
                };
                /// The struct's bytes as the kernel sees them.
                pub fn as_bytes(&self) -> &[u8] {
                    // SAFETY: repr(C), only integer fields and explicit padding fields, so
                    // every byte is initialised.
                    unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, $size) }
                }
                /// Reads the struct from exactly `size_of::<Self>()` bytes.
                pub fn from_bytes(b: &[u8]) -> Option<Self> {
                    if b.len() != $size {
                        return None;
                    }
                    // SAFETY: length checked; every bit pattern is valid for integer fields.
                    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const Self) })
                }
            }
        )*
        /// Every shared struct, in declaration order (the order of `layout.h`).
        pub const STRUCTS: &[StructLayout] = &[ $( $name::LAYOUT ),* ];
    };
}

layouts! {
    /// Policy map key (hash). Exact key: the packet's (identity, direction, protocol, port);
    /// with POLICY_ALL_PORTS in `dir_flags` and port 0: every port of `protocol`, and with
    /// protocol 0 as well: every protocol. Identity 0 = every identity.
    struct PolicyKey as "policy_key" = 8 {
        /// Peer security identity; 0 = every identity; bit 31 = an address class (ENABLE_ADDR_MATCH).
        identity: u32 = "__u32",
        /// DIR_INGRESS or DIR_EGRESS, | POLICY_ALL_PORTS for a port (and protocol) wildcard.
        dir_flags: u8 = "__u8",
        /// IANA protocol number; 0 with POLICY_ALL_PORTS = every protocol.
        protocol: u8 = "__u8",
        /// Destination port (ICMP: message type), network byte order; 0 for wildcards.
        dport_be: u16 = "__u16",
    }
    /// Port-range policy key (LPM trie, only with ENABLE_PORT_RANGES): `prefixlen` counts the
    /// bits after it that must match, 48 + n = identity, direction, protocol and the first n
    /// (1..15) port bits. Exact ports and wildcards live in the hash map.
    struct PolicyRangeKey as "policy_range_key" = 12 {
        /// LPM prefix length in bits over the fields below.
        prefixlen: u32 = "__u32",
        /// Peer security identity, as in policy_key.
        identity: u32 = "__u32",
        /// DIR_INGRESS or DIR_EGRESS.
        direction: u8 = "__u8",
        /// IANA protocol number.
        protocol: u8 = "__u8",
        /// First port of the block, network byte order.
        dport_be: u16 = "__u16",
    }
    /// Policy map value (both policy maps): verdict, the rule that produced it and counters.
    struct PolicyValue as "policy_value" = 24 {
        /// VERDICT_ALLOW, VERDICT_DENY or VERDICT_REDIRECT; VERDICT_NONE on a lookup marker.
        verdict: u8 = "__u8",
        /// POLICY_FINAL: no deny of a later-consulted identity overlaps; every-protocol keys also POLICY_HAS_EXACT/_PORTS/_RANGES (the identity's other keys).
        flags: u8 = "__u8",
        /// L7 proxy port for VERDICT_REDIRECT (host order).
        proxy_port: u16 = "__u16",
        /// First contributing rule (index into rules.json), or with RULE_AUDIT_BIT the audit-mode rule that would deny what the entry passes; RULE_NONE if none.
        rule_id: u32 = "__u32",
        /// Packets that matched this entry (policy decisions, not established-flow packets).
        packets: u64 = "__u64",
        /// Bytes of those packets.
        bytes: u64 = "__u64",
    }
    /// ipcache key (LPM trie, prefixes shorter than a host address): prefixlen = 32 + prefix length.
    struct IpcacheKey as "ipcache_key" = 24 {
        /// LPM prefix length in bits over the fields below.
        prefixlen: u32 = "__u32",
        /// FAMILY_IPV4 or FAMILY_IPV6.
        family: u8 = "__u8",
        /// Reserved, zero (inside the prefix).
        pad: [u8; 3] = "__u8[3]",
        /// Address, network order; IPv4 in the first 4 bytes, rest zero.
        addr: [u8; 16] = "__u8[16]",
    }
    /// ipcache host key (hash: /32 and /128 entries, looked up before the LPM trie).
    struct IpcacheHostKey as "ipcache_host_key" = 20 {
        /// FAMILY_IPV4 or FAMILY_IPV6.
        family: u8 = "__u8",
        /// Reserved, zero.
        pad: [u8; 3] = "__u8[3]",
        /// Address, network order; IPv4 in the first 4 bytes, rest zero.
        addr: [u8; 16] = "__u8[16]",
    }
    /// ipcache value (both ipcache maps).
    struct IpcacheValue as "ipcache_value" = 8 {
        /// Security identity of the prefix.
        identity: u32 = "__u32",
        /// Reserved, zero.
        pad: u32 = "__u32",
    }
    /// Address-match key (LPM trie, NetworkPolicy ipBlock): prefixlen = 32 + address prefix length.
    struct AddrKey as "addr_key" = 24 {
        /// LPM prefix length in bits over the fields below.
        prefixlen: u32 = "__u32",
        /// DIR_INGRESS or DIR_EGRESS.
        direction: u8 = "__u8",
        /// FAMILY_IPV4 or FAMILY_IPV6.
        family: u8 = "__u8",
        /// Reserved, zero (inside the prefix).
        pad: [u8; 2] = "__u8[2]",
        /// Address, network order; IPv4 in the first 4 bytes.
        addr: [u8; 16] = "__u8[16]",
    }
    /// Address-match value: the address class, looked up in the policy map as an identity.
    struct AddrValue as "addr_value" = 4 {
        /// ADDR_CLASS_BIT | class index.
        class_id: u32 = "__u32",
    }
    /// IPv4 connection-tracking key: both ends of the connection in canonical order (side a
    /// is the smaller (address, port)), so that both directions find the one entry.
    struct Ct4Key as "ct4_key" = 16 {
        /// Address of side a, network order.
        addr_a: u32 = "__u32",
        /// Address of side b, network order.
        addr_b: u32 = "__u32",
        /// Port of side a (ICMP echo: identifier), network order.
        port_a_be: u16 = "__u16",
        /// Port of side b (ICMP echo: identifier), network order.
        port_b_be: u16 = "__u16",
        /// IANA protocol number.
        protocol: u8 = "__u8",
        /// Reserved, zero.
        pad: [u8; 3] = "__u8[3]",
    }
    /// IPv6 connection-tracking key, canonical order as ct4_key.
    struct Ct6Key as "ct6_key" = 40 {
        /// Address of side a, network order.
        addr_a: [u32; 4] = "__u32[4]",
        /// Address of side b, network order.
        addr_b: [u32; 4] = "__u32[4]",
        /// Port of side a (ICMP echo: identifier), network order.
        port_a_be: u16 = "__u16",
        /// Port of side b (ICMP echo: identifier), network order.
        port_b_be: u16 = "__u16",
        /// IANA protocol number.
        protocol: u8 = "__u8",
        /// Reserved, zero.
        pad: [u8; 3] = "__u8[3]",
    }
    /// Key of the node's IPv4 connection-tracking maps: the connection's tuple and the
    /// endpoint it belongs to, so that no endpoint ever finds another's entry.
    struct Ct4EpKey as "ct4_ep_key" = 24 {
        /// The connection (first, so that a ct4_key aliases it).
        tuple: Ct4Key = "struct ct4_key",
        /// The endpoint's id.
        ep_id: u32 = "__u32",
        /// The endpoint's nonce (ep_state.ep_nonce, drawn when its state was created): a new endpoint reusing a deleted one's id and address does not find its entries.
        ep_nonce: u32 = "__u32",
    }
    /// Key of the node's IPv6 connection-tracking maps, as ct4_ep_key.
    struct Ct6EpKey as "ct6_ep_key" = 48 {
        /// The connection.
        tuple: Ct6Key = "struct ct6_key",
        /// The endpoint's id.
        ep_id: u32 = "__u32",
        /// The endpoint's nonce.
        ep_nonce: u32 = "__u32",
    }
    /// Connection-tracking value (every CT map).
    struct CtValue as "ct_value" = 24 {
        /// bpf_jiffies64() after which the entry is stale.
        expires: u64 = "__u64",
        /// Policy revision the connection was last checked against.
        policy_rev: u32 = "__u32",
        /// Rule that allowed the connection.
        rule_id: u32 = "__u32",
        /// DIR_INGRESS or DIR_EGRESS: the direction of the opening packet.
        origin: u8 = "__u8",
        /// CT_OPENER_A: the opening packet was sent by side a of the key; CT_CLOSING: a TCP FIN or RST was seen; CT_PROXY: redirected to the L7 proxy; CT_FROM_PROXY: opened by the L7 proxy.
        flags: u8 = "__u8",
        /// Port used for the policy decision (ICMP: request type), network order.
        policy_port_be: u16 = "__u16",
        /// CT_PROXY: the proxy's port (host order) its opening-direction packets are assigned to.
        proxy_port: u16 = "__u16",
        /// Reserved, zero.
        pad: u16 = "__u16",
    }
    /// Flow-cache slot, IPv4 (per-CPU array, direct-mapped by a hash of the CT key): an
    /// established connection recently confirmed by its CT entry (see ct.h, flowcache.h).
    struct Fc4Slot as "fc4_slot" = 64 {
        /// The connection's CT key.
        key: Ct4Key = "struct ct4_key",
        /// bpf_jiffies64() from which the slot is invalid: at most one second after it was filled, never after the CT entry's expiry or the moment its expiry must next be written.
        deadline: u64 = "__u64",
        /// Policy revision the CT entry (or the denied packet) was checked against; the slot serves only this revision.
        policy_rev: u32 = "__u32",
        /// The CT entry's origin (DIR_INGRESS or DIR_EGRESS); FC_DENY slots: the denied packet's direction.
        origin: u8 = "__u8",
        /// The CT entry's flags (CT_OPENER_A; never CT_CLOSING); FC_DENY slots: FC_DENY, and CT_OPENER_A when the denied packet's source is side a of the key.
        flags: u8 = "__u8",
        /// FC_DENY slots: POLICY_KIND_* of the deny entry that decided (its key: deny_identity, origin, the key's protocol and the denied packet's destination port, side b's when CT_OPENER_A is set, else side a's), 0 for a default deny (no entry matched).
        deny_kind: u8 = "__u8",
        /// Reserved, zero.
        pad: u8 = "__u8",
        /// FC_DENY slots: the denied packet's peer identity (for its drop event).
        peer_identity: u32 = "__u32",
        /// FC_DENY slots: node_state.ipcache_gen read before the peer's ipcache lookup; the slot serves only this generation.
        ipcache_gen: u32 = "__u32",
        /// FC_DENY slots: the count of CT entries created in the slot's bucket (cp_ctgen) read, with a full barrier, before the CT lookup that found no entry; the slot serves only this count.
        ct_gen: u32 = "__u32",
        /// FC_DENY slots with a deny_kind: the policy-key identity of the deciding deny entry (the peer's, an address class or 0, the wildcard).
        deny_identity: u32 = "__u32",
        /// FC_DENY slots with a deny_kind: the deciding entry's rule id (for drop events).
        rule_id: u32 = "__u32",
        /// FC_DENY slots with a deny_kind: packets served from the slot not yet added to the entry's counters (flushed at FC_DENY_FLUSH and before the slot is rewritten).
        pending_packets: u32 = "__u32",
        /// Bytes of those packets.
        pending_bytes: u32 = "__u32",
        /// Reserved, zero.
        pad2: u32 = "__u32",
    }
    /// Flow-cache slot, IPv6, as fc4_slot.
    struct Fc6Slot as "fc6_slot" = 88 {
        /// The connection's CT key.
        key: Ct6Key = "struct ct6_key",
        /// As fc4_slot.deadline.
        deadline: u64 = "__u64",
        /// As fc4_slot.policy_rev.
        policy_rev: u32 = "__u32",
        /// As fc4_slot.origin.
        origin: u8 = "__u8",
        /// As fc4_slot.flags.
        flags: u8 = "__u8",
        /// As fc4_slot.deny_kind.
        deny_kind: u8 = "__u8",
        /// Reserved, zero.
        pad: u8 = "__u8",
        /// As fc4_slot.peer_identity.
        peer_identity: u32 = "__u32",
        /// As fc4_slot.ipcache_gen.
        ipcache_gen: u32 = "__u32",
        /// As fc4_slot.ct_gen.
        ct_gen: u32 = "__u32",
        /// As fc4_slot.deny_identity.
        deny_identity: u32 = "__u32",
        /// As fc4_slot.rule_id.
        rule_id: u32 = "__u32",
        /// As fc4_slot.pending_packets.
        pending_packets: u32 = "__u32",
        /// As fc4_slot.pending_bytes.
        pending_bytes: u32 = "__u32",
        /// Reserved, zero.
        pad2: u32 = "__u32",
    }
    /// Node-wide state shared by every endpoint's programs (array map of one entry, pinned with the ipcache).
    struct NodeState as "node_state" = 8 {
        /// Incremented by the agent after every write to the ipcache maps: flow-cache deny slots filled at another generation are not used.
        ipcache_gen: u32 = "__u32",
        /// Reserved, zero.
        pad: u32 = "__u32",
    }
    /// Per-endpoint runtime state (array map of one entry), written by the loader and agent.
    struct EpState as "ep_state" = 24 {
        /// Current policy revision: connections checked against an older one are re-checked.
        policy_rev: u32 = "__u32",
        /// Lifetime of a TCP connection-tracking entry after its last packet, seconds.
        ct_timeout_tcp_s: u32 = "__u32",
        /// Lifetime of other connection-tracking entries after their last packet, seconds.
        ct_timeout_other_s: u32 = "__u32",
        /// EVENTS_DROP | EVENTS_VERDICT: which events go to the ring buffer.
        events_mask: u32 = "__u32",
        /// Kernel HZ (bpf_jiffies64() ticks per second), detected by the loader.
        jiffies_hz: u32 = "__u32",
        /// Random, non-zero, drawn by the loader when the endpoint's state is first written and kept across reloads: part of every CT key of the endpoint (ct4_ep_key).
        ep_nonce: u32 = "__u32",
    }
    /// Per-CPU counter value of the metrics map (index = direction * 256 + reason).
    struct MetricsValue as "metrics_value" = 16 {
        /// Packets.
        packets: u64 = "__u64",
        /// Bytes.
        bytes: u64 = "__u64",
    }
    /// Ring-buffer event (drop or policy verdict).
    struct Event as "event" = 72 {
        /// EVENT_DROP or EVENT_VERDICT.
        kind: u8 = "__u8",
        /// Drop reason (Cilium's code), 0 when forwarded.
        reason: u8 = "__u8",
        /// DIR_INGRESS or DIR_EGRESS (of the endpoint).
        direction: u8 = "__u8",
        /// IANA protocol number.
        protocol: u8 = "__u8",
        /// Endpoint id.
        ep_id: u32 = "__u32",
        /// Endpoint security identity.
        ep_identity: u32 = "__u32",
        /// Peer security identity.
        peer_identity: u32 = "__u32",
        /// Rule that decided (RULE_NONE when no entry matched).
        rule_id: u32 = "__u32",
        /// Packet length.
        pkt_len: u32 = "__u32",
        /// FAMILY_IPV4 or FAMILY_IPV6.
        family: u8 = "__u8",
        /// VERDICT_* of the decision (0 for drops without a policy decision).
        verdict: u8 = "__u8",
        /// Source port, network order.
        sport_be: u16 = "__u16",
        /// Destination port (ICMP: type), network order.
        dport_be: u16 = "__u16",
        /// Reserved, zero.
        pad: u16 = "__u16",
        /// Source address, network order.
        saddr: [u8; 16] = "__u8[16]",
        /// Destination address, network order.
        daddr: [u8; 16] = "__u8[16]",
        /// bpf_ktime_get_ns() at the event.
        time_ns: u64 = "__u64",
    }
}

impl PolicyValue {
    /// Bytes of the value that carry the decision (verdict, flags, proxy port, rule); the
    /// counters after them are the datapath's.
    pub const DECISION_LEN: usize = std::mem::offset_of!(PolicyValue, packets);

    /// Whether two policy-map values decide the same, ignoring their counters. Byte strings
    /// that are not policy values (another map's) compare whole.
    pub fn same_decision(a: &[u8], b: &[u8]) -> bool {
        let n = size_of::<PolicyValue>();
        if a.len() == n && b.len() == n {
            a[..Self::DECISION_LEN] == b[..Self::DECISION_LEN]
        } else {
            a == b
        }
    }
}

/// An address as the keys and events hold it: (FAMILY_IPV4 or FAMILY_IPV6, 16 bytes in network
/// order, IPv4 in the first 4 and the rest zero).
pub fn addr_bytes(addr: IpAddr) -> (u8, [u8; 16]) {
    match addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (FAMILY_IPV4, b)
        }
        IpAddr::V6(a) => (FAMILY_IPV6, a.octets()),
    }
}

/// The address of a key's or event's (family, bytes), as [`addr_bytes`] writes them; any
/// family other than FAMILY_IPV4 reads as IPv6.
pub fn ip_addr(family: u8, b: [u8; 16]) -> IpAddr {
    if family == FAMILY_IPV4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

/// Constants shared by C and Rust: (C name, value, meaning).
pub const CONSTANTS: &[(&str, u32, &str)] = &[
    (
        "DIR_INGRESS",
        DIR_INGRESS as u32,
        "traffic delivered to the endpoint",
    ),
    (
        "DIR_EGRESS",
        DIR_EGRESS as u32,
        "traffic sent by the endpoint",
    ),
    ("FAMILY_IPV4", FAMILY_IPV4 as u32, "address family of keys"),
    ("FAMILY_IPV6", FAMILY_IPV6 as u32, "address family of keys"),
    ("VERDICT_ALLOW", VERDICT_ALLOW as u32, "policy entry allows"),
    (
        "VERDICT_DENY",
        VERDICT_DENY as u32,
        "policy entry denies (wins over any allow)",
    ),
    (
        "VERDICT_REDIRECT",
        VERDICT_REDIRECT as u32,
        "allow, redirected to the L7 proxy port",
    ),
    ("RULE_NONE", RULE_NONE, "no rule (default verdicts)"),
    (
        "RULE_AUDIT_BIT",
        RULE_AUDIT_BIT,
        "rule-id bit: the entry passes what this (audit-mode) rule would deny",
    ),
    (
        "ADDR_CLASS_BIT",
        ADDR_CLASS_BIT,
        "policy-key identity bit of address classes",
    ),
    (
        "EVENT_DROP",
        EVENT_DROP as u32,
        "event kind: packet dropped",
    ),
    (
        "EVENT_VERDICT",
        EVENT_VERDICT as u32,
        "event kind: new connection allowed",
    ),
    (
        "EVENTS_DROP",
        EVENTS_DROP,
        "events_mask bit: emit drop events",
    ),
    (
        "EVENTS_VERDICT",
        EVENTS_VERDICT,
        "events_mask bit: emit verdict events",
    ),
    (
        "POLICY_ALL_PORTS",
        POLICY_ALL_PORTS as u32,
        "policy_key.dir_flags bit: every port (protocol 0: every protocol)",
    ),
    (
        "POLICY_FINAL",
        POLICY_FINAL as u32,
        "policy_value.flags bit: no later-consulted identity can deny",
    ),
    (
        "POLICY_HAS_EXACT",
        POLICY_HAS_EXACT as u32,
        "policy_value.flags bit (every-protocol key): the identity has exact-port keys",
    ),
    (
        "POLICY_HAS_PORTS",
        POLICY_HAS_PORTS as u32,
        "policy_value.flags bit (every-protocol key): the identity has every-port-of-a-protocol keys",
    ),
    (
        "POLICY_HAS_RANGES",
        POLICY_HAS_RANGES as u32,
        "policy_value.flags bit (every-protocol key): the identity has port-range keys",
    ),
    (
        "POLICY_NO_WILDCARD",
        POLICY_NO_WILDCARD as u32,
        "policy_value.flags bit (every-protocol key of a peer identity or address class): the wildcard identity has no entries in this direction",
    ),
    (
        "VERDICT_NONE",
        VERDICT_NONE as u32,
        "lookup marker: an every-protocol key without an every-protocol entry",
    ),
    (
        "POLICY_RANGE_PROTO_PREFIX",
        POLICY_RANGE_PROTO_PREFIX,
        "policy_range_key prefixlen covering identity, direction and protocol",
    ),
    (
        "POLICY_RANGE_FULL_PREFIX",
        POLICY_RANGE_FULL_PREFIX,
        "policy_range_key prefixlen of a lookup (every port bit)",
    ),
    (
        "CT_OPENER_A",
        CT_OPENER_A as u32,
        "ct_value.flags bit: side a of the key opened the connection",
    ),
    (
        "CT_CLOSING",
        CT_CLOSING as u32,
        "ct_value.flags bit: TCP FIN or RST seen",
    ),
    (
        "CT_PROXY",
        CT_PROXY as u32,
        "ct_value.flags bit: the connection is redirected to the L7 proxy (proxy_port)",
    ),
    (
        "CT_FROM_PROXY",
        CT_FROM_PROXY as u32,
        "ct_value.flags bit: the L7 proxy opened the connection; its replies are marked MARK_MAGIC_TO_PROXY",
    ),
    (
        "MARK_MAGIC_MASK",
        MARK_MAGIC_MASK,
        "skb->mark bits that say who marked a packet",
    ),
    (
        "MARK_MAGIC_TO_PROXY",
        MARK_MAGIC_TO_PROXY,
        "skb->mark of a packet for the L7 proxy (| proxy port << 16): routed as local by the node's rule",
    ),
    (
        "MARK_MAGIC_PROXY_INGRESS",
        MARK_MAGIC_PROXY_INGRESS,
        "SO_MARK of the L7 proxy's sockets for ingress redirects: the destination's policy is not applied again",
    ),
    (
        "MARK_MAGIC_PROXY_EGRESS",
        MARK_MAGIC_PROXY_EGRESS,
        "SO_MARK of the L7 proxy's sockets for egress redirects: the destination's ingress policy still applies",
    ),
    (
        "FC_DENY",
        FC_DENY as u32,
        "fc4_slot/fc6_slot.flags bit: the slot remembers a denied new connection",
    ),
    (
        "FC_DENY_FLUSH",
        FC_DENY_FLUSH,
        "deny slots add the packets they served to their entry's counters in batches of this many",
    ),
    (
        "POLICY_KIND_EXACT",
        POLICY_KIND_EXACT as u32,
        "which key of an identity decided: its exact-port key",
    ),
    (
        "POLICY_KIND_RANGE",
        POLICY_KIND_RANGE as u32,
        "which key of an identity decided: a port block in cp_policy_rng",
    ),
    (
        "POLICY_KIND_PORTS",
        POLICY_KIND_PORTS as u32,
        "which key of an identity decided: every port of the protocol",
    ),
    (
        "POLICY_KIND_ALL",
        POLICY_KIND_ALL as u32,
        "which key of an identity decided: every protocol",
    ),
    (
        "METRICS_ENTRIES",
        METRICS_ENTRIES,
        "metrics map size: 2 directions x 256 reasons",
    ),
];

pub const DIR_INGRESS: u8 = 0;
pub const DIR_EGRESS: u8 = 1;
pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;
pub const VERDICT_ALLOW: u8 = 1;
pub const VERDICT_DENY: u8 = 2;
pub const VERDICT_REDIRECT: u8 = 3;
pub const RULE_NONE: u32 = u32::MAX;
pub const RULE_AUDIT_BIT: u32 = 1 << 31;
pub const ADDR_CLASS_BIT: u32 = 1 << 31;
pub const EVENT_DROP: u8 = 1;
pub const EVENT_VERDICT: u8 = 2;
pub const EVENTS_DROP: u32 = 1;
pub const EVENTS_VERDICT: u32 = 2;
pub const POLICY_ALL_PORTS: u8 = 0x10;
pub const POLICY_FINAL: u8 = 1;
pub const POLICY_HAS_EXACT: u8 = 2;
pub const POLICY_HAS_PORTS: u8 = 4;
pub const POLICY_HAS_RANGES: u8 = 8;
pub const POLICY_NO_WILDCARD: u8 = 16;
pub const VERDICT_NONE: u8 = 0;
pub const POLICY_RANGE_PROTO_PREFIX: u32 = 48;
pub const POLICY_RANGE_FULL_PREFIX: u32 = 64;
pub const CT_OPENER_A: u8 = 1;
pub const CT_CLOSING: u8 = 2;
pub const CT_PROXY: u8 = 4;
pub const CT_FROM_PROXY: u8 = 8;
pub const MARK_MAGIC_MASK: u32 = 0x0F00;
pub const MARK_MAGIC_TO_PROXY: u32 = 0x0200;
pub const MARK_MAGIC_PROXY_INGRESS: u32 = 0x0A00;
pub const MARK_MAGIC_PROXY_EGRESS: u32 = 0x0B00;
pub const FC_DENY: u8 = 0x80;
pub const FC_DENY_FLUSH: u32 = 16;
pub const POLICY_KIND_EXACT: u8 = 1;
pub const POLICY_KIND_RANGE: u8 = 2;
pub const POLICY_KIND_PORTS: u8 = 3;
pub const POLICY_KIND_ALL: u8 = 4;
pub const METRICS_ENTRIES: u32 = 512;

/// Renders `bpf-templates/include/layout.h`.
pub fn render_c_header() -> String {
    let mut out = String::new();
    out.push_str("/* Generated by codegen/src/layout.rs (render_c_header); do not edit. */\n");
    out.push_str("#ifndef CP_LAYOUT_H\n#define CP_LAYOUT_H\n\n#include <linux/types.h>\n\n");
    for (name, value, doc) in CONSTANTS {
        let _ = writeln!(out, "#define {name} {value}u /* {doc} */");
    }
    out.push('\n');
    for (code, name, text) in crate::reasons::DROP_REASONS {
        let _ = writeln!(out, "#define {name} {code} /* {text} */");
    }
    for s in STRUCTS {
        let _ = writeln!(out, "\n/* {} */\nstruct {} {{", s.doc.trim(), s.c_name);
        for f in s.fields {
            let (base, array) = match f.c_type.split_once('[') {
                Some((b, rest)) => (b, format!("[{rest}")),
                None => (f.c_type, String::new()),
            };
            let _ = writeln!(
                out,
                "\t{base} {}{array}; /* @{}: {} */",
                f.name,
                f.offset,
                f.doc.trim()
            );
        }
        let _ = writeln!(out, "}};");
        let _ = writeln!(
            out,
            "_Static_assert(sizeof(struct {}) == {}, \"{} size\");",
            s.c_name, s.size, s.c_name
        );
        for f in s.fields {
            let _ = writeln!(
                out,
                "_Static_assert(__builtin_offsetof(struct {}, {}) == {}, \"{}.{}\");",
                s.c_name, f.name, f.offset, s.c_name, f.name
            );
        }
    }
    out.push_str("\n#endif /* CP_LAYOUT_H */\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_key_bytes() {
        for a in ["10.1.2.3", "fd00::1", "::ffff:10.0.0.1"] {
            let a: IpAddr = a.parse().unwrap();
            let (family, b) = addr_bytes(a);
            assert_eq!(ip_addr(family, b), a);
        }
        let (family, b) = addr_bytes("10.1.2.3".parse().unwrap());
        assert_eq!((family, &b[4..]), (FAMILY_IPV4, &[0u8; 12][..]));
    }

    #[test]
    fn policy_values_compare_without_counters() {
        let v = |verdict, packets| PolicyValue {
            verdict,
            packets,
            ..Default::default()
        };
        let same =
            |a: PolicyValue, b: PolicyValue| PolicyValue::same_decision(a.as_bytes(), b.as_bytes());
        assert!(same(v(VERDICT_ALLOW, 1), v(VERDICT_ALLOW, 9)));
        assert!(!same(v(VERDICT_ALLOW, 1), v(VERDICT_DENY, 1)));
        assert!(!PolicyValue::same_decision(&[1, 2], &[1, 3]));
    }
}
