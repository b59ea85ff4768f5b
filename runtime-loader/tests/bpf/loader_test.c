// SPDX-License-Identifier: GPL-2.0
// Test-only tc program for the loader's integration tests (attach, replace, pinning, deltas).
// Not the product datapath (that is bpf-templates/): it drops IPv4 packets whose protocol is
// in `deny_proto` and adds VERSION to a per-hook counter, so tests can tell programs apart.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);   /* IP protocol number */
	__type(value, __u32); /* non-zero: drop */
} deny_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

/* Per-CPU values (one 8-byte aligned slot per possible CPU): for RawMap's per-CPU layout. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} per_cpu SEC(".maps");

volatile const __u32 VERSION = 1;

static __attribute__((always_inline)) int handle(struct __sk_buff *skb, __u32 slot)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u64 *c = bpf_map_lookup_elem(&seen, &slot);
	__u32 *pc = bpf_map_lookup_elem(&per_cpu, &slot);
	if (c)
		__sync_fetch_and_add(c, VERSION);
	if (pc)
		*pc += 1;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	__u32 proto = ip->protocol;
	__u32 *v = bpf_map_lookup_elem(&deny_proto, &proto);
	return v && *v ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("classifier") int from_ep(struct __sk_buff *skb) { return handle(skb, 0); }
SEC("classifier") int to_ep(struct __sk_buff *skb) { return handle(skb, 1); }

char LICENSE[] SEC("license") = "GPL";
