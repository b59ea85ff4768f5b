/* The datapath's maps (BTF-style definitions aya loads). Sizes come from the endpoint and node
 * headers; layouts from layout.h. Names are at most 15 characters (BPF_OBJ_NAME_LEN). */
#ifndef CP_MAPS_H
#define CP_MAPS_H

/* Per-endpoint policy: (identity, direction, protocol, port or wildcard) -> verdict + counters.
 * Not preallocated (as Cilium's policy maps by default): an endpoint pays for the entries it
 * has, not for POLICY_MAP_SIZE of them (1.5 MB each at 16,384); lookups cost the same. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, POLICY_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cp_policy SEC(".maps");

#ifdef ENABLE_PORT_RANGES
/* Port ranges of the policy (aligned power-of-two blocks), consulted after the exact port. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_range_key);
	__type(value, struct policy_value);
	__uint(max_entries, POLICY_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cp_policy_rng SEC(".maps");
#endif

/* Node-wide ipcache (shared by every endpoint's program): host addresses -> identity (hash),
 * shorter prefixes -> identity (LPM trie). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ipcache_host_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, IPCACHE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cp_ipcache_host SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, IPCACHE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cp_ipcache SEC(".maps");

#ifdef ENABLE_ADDR_MATCH
/* Address classes of NetworkPolicy ipBlock peers: prefix -> class id (a policy-map identity). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct addr_key);
	__type(value, struct addr_value);
	__uint(max_entries, ADDR_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cp_addr SEC(".maps");
#endif

#ifdef ENABLE_CT
/* Connection tracking of the endpoint, shared by its two programs, one map per family. */
#ifdef ENABLE_IPV4
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_key);
	__type(value, struct ct_value);
	__uint(max_entries, CT_MAP_SIZE);
} cp_ct4 SEC(".maps");
#endif
#ifdef ENABLE_IPV6
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct6_key);
	__type(value, struct ct_value);
	__uint(max_entries, CT_MAP_SIZE);
} cp_ct6 SEC(".maps");
#endif

#if FLOW_CACHE_SLOTS > 0
/* Per-CPU flow cache in front of CT (flowcache.h): direct-mapped slots, one map per family.
 * Not pinned: a new program starts with an empty cache. */
#define ENABLE_FLOW_CACHE 1
#ifdef ENABLE_IPV4
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fc4_slot);
	__uint(max_entries, FLOW_CACHE_SLOTS);
} cp_fc4 SEC(".maps");
#endif
#ifdef ENABLE_IPV6
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fc6_slot);
	__uint(max_entries, FLOW_CACHE_SLOTS);
} cp_fc6 SEC(".maps");
#endif
#if FLOW_CACHE_DENY
/* Deny slots (flowcache.h) need BPF atomics with fetch (Linux 5.12). */
#define ENABLE_DENY_CACHE 1
/* Per bucket (the flow-cache slot index, both families): how many CT entries were created
 * with a key of that bucket; shared by every CPU and pinned with the CT maps. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FLOW_CACHE_SLOTS);
} cp_ctgen SEC(".maps");
#endif
#endif
#endif

/* Node-wide state (shared and pinned like the ipcache): the ipcache generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct node_state);
	__uint(max_entries, 1);
} cp_node SEC(".maps");

/* Runtime state: policy revision, CT timeouts, event mask. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ep_state);
	__uint(max_entries, 1);
} cp_state SEC(".maps");

/* Per-CPU packet/byte counters by direction and reason (0 = forwarded). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_value);
	__uint(max_entries, METRICS_ENTRIES);
} cp_metrics SEC(".maps");

/* Drop and verdict events for `monitor`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RINGBUF_SIZE);
} cp_events SEC(".maps");

#endif /* CP_MAPS_H */
