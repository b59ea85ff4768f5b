/* Peer identity (ipcache) and the policy decision.
 *
 * Lookup order (Cilium's): the policy map is an LPM trie over (identity, direction, protocol,
 * port), so one lookup with the peer's identity finds its most specific entry (exact port, then
 * port prefix, then every port, then every protocol); a second lookup does the same for the
 * wildcard identity 0; with ENABLE_ADDR_MATCH a third one for the peer address's class. A deny
 * found by any lookup wins; otherwise the identity's entry, then the address class's, then the
 * wildcard's allow decides. Codegen installs a deny at every more specific key of the same
 * identity it covers, so the longest match within one identity is never a shadowed allow. */
#ifndef CP_POLICY_H
#define CP_POLICY_H

static __always_inline __u32 ipcache_identity(const struct pkt *p, const __u8 *addr)
{
	struct ipcache_key k = {};
	struct ipcache_value *v;

	k.family = p->family;
	k.prefixlen = 32 + (p->family == FAMILY_IPV4 ? 32 : 128);
	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(&cp_ipcache, &k);
	return v ? v->identity : WORLD_ID;
}

static __always_inline int dir_enforced(__u8 dir)
{
#if defined(ENABLE_INGRESS_POLICY) && defined(ENABLE_EGRESS_POLICY)
	return 1;
#elif defined(ENABLE_INGRESS_POLICY)
	return dir == DIR_INGRESS;
#elif defined(ENABLE_EGRESS_POLICY)
	return dir == DIR_EGRESS;
#else
	return 0;
#endif
}

struct decision {
	__u8 verdict; /* 0 = no entry matched */
	__u16 proxy_port;
	__u32 rule_id;
};

/* Counts the deciding entry and reports its verdict. */
static __always_inline void take(struct policy_value *c, __u32 len, struct decision *d)
{
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, len);
	d->verdict = c->verdict;
	d->proxy_port = c->proxy_port;
	d->rule_id = c->rule_id;
}

/* Decides a new connection in direction `dir`; counts the deciding entry. */
static __always_inline void policy_decide(__u8 dir, __u32 peer_id, const struct pkt *p,
					  const __u8 *peer_addr, __u16 port_be, __u32 len,
					  struct decision *d)
{
	struct policy_key k = {};
	struct policy_value *v, *w, *a = 0;

	d->verdict = 0;
	d->proxy_port = 0;
	d->rule_id = RULE_NONE;
	if (!dir_enforced(dir)) {
		d->verdict = VERDICT_ALLOW;
		return;
	}
	k.prefixlen = POLICY_KEY_FULL_PREFIX;
	k.identity = peer_id;
	k.direction = dir;
	k.protocol = p->protocol;
	k.dport_be = port_be;
	v = bpf_map_lookup_elem(&cp_policy, &k);
	k.identity = 0;
	w = bpf_map_lookup_elem(&cp_policy, &k);
#ifdef ENABLE_ADDR_MATCH
	{
		struct addr_key ak = {};
		struct addr_value *av;

		ak.prefixlen = 32 + (p->family == FAMILY_IPV4 ? 32 : 128);
		ak.direction = dir;
		ak.family = p->family;
		__builtin_memcpy(ak.addr, peer_addr, 16);
		av = bpf_map_lookup_elem(&cp_addr, &ak);
		if (av) {
			k.identity = av->class_id;
			a = bpf_map_lookup_elem(&cp_policy, &k);
		}
	}
#endif
	/* opaque(): clang would otherwise merge the null-checked candidates arithmetically
	 * (`v | a`), which the verifier rejects as pointer arithmetic. */
	if (v && v->verdict == VERDICT_DENY)
		return take(opaque(v), len, d);
	if (a && a->verdict == VERDICT_DENY)
		return take(opaque(a), len, d);
	if (w && w->verdict == VERDICT_DENY)
		return take(opaque(w), len, d);
	if (v)
		return take(opaque(v), len, d);
	if (a)
		return take(opaque(a), len, d);
	if (w)
		return take(opaque(w), len, d);
}

#endif /* CP_POLICY_H */
