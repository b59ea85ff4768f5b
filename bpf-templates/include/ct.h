/* Connection tracking, one entry per connection, in the node's tables (LRU hashes shared by
 * every endpoint, one for TCP and one for other protocols per family: cp_ct4_tcp, cp_ct4_any,
 * cp_ct6_tcp, cp_ct6_any; see CT_TABLE_CALL).
 *
 * Endpoints are kept apart by the key (ct4_ep_key): the connection's tuple, the endpoint's id
 * and its nonce (ep_state.ep_nonce, drawn when the endpoint's state is created). An endpoint
 * only ever builds keys with its own id and nonce, so it never finds another endpoint's entry,
 * nor one a deleted endpoint with the same id and address left behind (those age out or are
 * evicted by the LRU).
 *
 * The key holds both ends in canonical order (side a = the smaller (address, port)), so a
 * packet of either direction finds its connection with one lookup; the value remembers which
 * side opened it (CT_OPENER_A) and in which direction (origin). A packet is *established* when
 * it goes the opener's way in the origin direction, a *reply* when it goes the other way in the
 * other direction; anything else is not tracked (and is decided by policy as a new connection).
 *
 * Lifetime: an entry is stale `ct_timeout_*_s` after its last packet, counted in jiffies
 * (bpf_jiffies64() is a plain load once the verifier inlines it, where bpf_ktime_get_ns()
 * reads the clocksource; `ep_state.jiffies_hz` is the kernel's HZ, detected by the loader).
 * The expiry is written only when it has moved by more than a second (one write per second per
 * connection, not one per packet). A TCP FIN or RST (CT_CLOSING) shortens the lifetime to at
 * most CT_CLOSE_TIMEOUT_S, and a SYN (without ACK) on a closing entry is a new connection.
 *
 * Revoked policy (secure by default): each entry remembers the policy revision it was checked
 * against; when the endpoint's revision (cp_state) has moved on, the next packet of the
 * connection re-runs the policy decision of the opening direction, and the connection is
 * dropped (and forgotten) if the current policy no longer allows it.
 *
 * Flow cache (flowcache.h, ENABLE_FLOW_CACHE): a per-CPU slot remembers an entry that just
 * passed a packet, so later packets of the connection on that CPU skip the lookup here. It
 * serves only the current policy revision, never a TCP SYN/FIN/RST nor a closing entry, and at
 * most until the first moment this file would write the entry's expiry again or call it stale
 * (at most one second). The one thing it can pass that CT would not: a connection whose entry
 * left the map without going through this file (LRU eviction, a user-space delete), for at most
 * the rest of that second and never across a revision bump (Documentation/datapath.md). */
#ifndef CP_CT_H
#define CP_CT_H

#ifdef ENABLE_CT
#define CT_CLOSE_TIMEOUT_S 10

/* The key of `p`'s connection (either family): the tuple `k4`/`k6` (what the flow cache keeps)
 * is the first member of the map key `e4`/`e6`; whether the packet's source is side a, and
 * whether both sides are equal (a packet to itself). */
struct ct_ref {
	union {
#ifdef ENABLE_IPV4
		struct ct4_ep_key e4;
		struct ct4_key k4;
#endif
#ifdef ENABLE_IPV6
		struct ct6_ep_key e6;
		struct ct6_key k6;
#endif
		__u8 any;
	};
	__u8 src_is_a;
	__u8 symmetric;
};

/* -1, 0, 1 as (addr a, port a) compares to (addr b, port b); addresses as native words. */
static __always_inline int side_cmp(const __u32 *a, const __u32 *b, int words, __u16 pa,
				    __u16 pb)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		if (i < words && a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	}
	if (pa != pb)
		return pa < pb ? -1 : 1;
	return 0;
}

static __always_inline void ct_key_of(const struct pkt *p, struct ct_ref *r)
{
	int c = side_cmp(p->saddr, p->daddr, p->family == FAMILY_IPV4 ? 1 : 4, p->sport_be,
			 p->dport_be);
	const __u32 *a = c <= 0 ? p->saddr : p->daddr;
	const __u32 *b = c <= 0 ? p->daddr : p->saddr;

	r->src_is_a = c <= 0;
	r->symmetric = c == 0;
#ifdef ENABLE_IPV4
	if (p->family == FAMILY_IPV4) {
		r->k4.addr_a = a[0];
		r->k4.addr_b = b[0];
		r->k4.port_a_be = c <= 0 ? p->sport_be : p->dport_be;
		r->k4.port_b_be = c <= 0 ? p->dport_be : p->sport_be;
		r->k4.protocol = p->protocol;
		return;
	}
#endif
#ifdef ENABLE_IPV6
	__builtin_memcpy(r->k6.addr_a, a, 16);
	__builtin_memcpy(r->k6.addr_b, b, 16);
	r->k6.port_a_be = c <= 0 ? p->sport_be : p->dport_be;
	r->k6.port_b_be = c <= 0 ? p->dport_be : p->sport_be;
	r->k6.protocol = p->protocol;
#endif
}

/* Completes `r` into the CT map key: the endpoint's id and nonce after the tuple. Not done by
 * ct_key_of(): the flow cache and the deny slots key on the tuple alone (their maps are the
 * endpoint's own), so a packet they serve never reads nor writes these; every CT operation
 * comes after this. */
static __always_inline void ct_key_bind(const struct pkt *p, const struct ep_state *st,
					struct ct_ref *r)
{
#ifdef ENABLE_IPV4
	if (p->family == FAMILY_IPV4) {
		r->e4.ep_id = ep_id;
		r->e4.ep_nonce = st->ep_nonce;
		return;
	}
#endif
#ifdef ENABLE_IPV6
	r->e6.ep_id = ep_id;
	r->e6.ep_nonce = st->ep_nonce;
#endif
}


/* `call` (a map helper) on the node's table of `p`'s connection: its family's TCP table
 * `tcp`, or `any` for every other protocol (so that a flood of one class cannot evict the
 * other's entries). Each table gets a call site of its own, which always sees the same map: the
 * verifier then inlines a lookup and calls an update or delete directly, where a call site
 * reached with two maps goes through the generic helper's indirect call (a packet that misses
 * the flow cache measured 15-20 % slower). clang would merge the two calls into one on a
 * selected map pointer; the empty asm after each, different per table (the second also
 * clobbers memory), keeps them apart. The tables are named directly: through a map of maps
 * (an earlier layout) every CT call paid the outer lookup, 2-4 % of such a packet
 * (Documentation/performance.md). */
#define CT_KEEP(x, ...)                                                                     \
	({                                                                                  \
		typeof(x) __kept = (x);                                                     \
		asm volatile("%0 = %0" : "+r"(__kept) : : __VA_ARGS__);                     \
		__kept;                                                                     \
	})
#define CT_TABLE_CALL(tcp, any, p, call, ...)                                               \
	((p)->protocol == PROTO_TCP ? CT_KEEP(call(tcp, __VA_ARGS__)) :                     \
				      CT_KEEP(call(any, __VA_ARGS__), "memory"))
#ifdef ENABLE_IPV4
#define CT_CALL4(p, call, ...) CT_TABLE_CALL(&cp_ct4_tcp, &cp_ct4_any, p, call, __VA_ARGS__)
#endif
#ifdef ENABLE_IPV6
#define CT_CALL6(p, call, ...) CT_TABLE_CALL(&cp_ct6_tcp, &cp_ct6_any, p, call, __VA_ARGS__)
#endif

static __always_inline struct ct_value *ct_map_lookup(const struct pkt *p, const struct ct_ref *r)
{
#ifdef ENABLE_IPV4
	if (p->family == FAMILY_IPV4)
		return CT_CALL4(p, bpf_map_lookup_elem, &r->e4);
#endif
#ifdef ENABLE_IPV6
	return CT_CALL6(p, bpf_map_lookup_elem, &r->e6);
#else
	return 0;
#endif
}

static __always_inline void ct_map_delete(const struct pkt *p, const struct ct_ref *r)
{
#ifdef ENABLE_IPV4
	if (p->family == FAMILY_IPV4) {
		CT_CALL4(p, bpf_map_delete_elem, &r->e4);
		return;
	}
#endif
#ifdef ENABLE_IPV6
	CT_CALL6(p, bpf_map_delete_elem, &r->e6);
#endif
}

/* Lifetime in jiffies. */
static __always_inline __u64 ct_lifetime(const struct ep_state *st, const struct pkt *p,
					 __u8 flags)
{
	__u32 s = p->protocol == PROTO_TCP ? st->ct_timeout_tcp_s : st->ct_timeout_other_s;

	if (flags & CT_CLOSING)
		s = s < CT_CLOSE_TIMEOUT_S ? s : CT_CLOSE_TIMEOUT_S;
	return (__u64)s * st->jiffies_hz;
}

static __always_inline __u8 ct_closing(const struct pkt *p)
{
	return p->protocol == PROTO_TCP && (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) ?
		       CT_CLOSING :
		       0;
}

/* Whether a packet of direction `dir` whose key is `r` belongs to the connection opened in
 * direction `origin` (with CT_OPENER_A in `flags`): established (the opener's way in the
 * origin direction) or reply (the other way in the other direction). */
static __always_inline int ct_tracks(const struct ct_ref *r, __u8 origin, __u8 flags, __u8 dir)
{
	int same = r->src_is_a == !!(flags & CT_OPENER_A);

	return r->symmetric || (origin == dir) == same;
}

/* The tracked connection of `p` (key `r`, from ct_key_of() and ct_key_bind()) in direction `dir`, or 0. Stale
 * entries are removed. */
static __always_inline struct ct_value *ct_lookup(const struct pkt *p, __u8 dir,
						  const struct ct_ref *r, __u64 now)
{
	struct ct_value *v;

	v = ct_map_lookup(p, r);
	if (!v)
		return 0;
	if (!ct_tracks(r, v->origin, v->flags, dir))
		return 0;
	if (v->expires < now) {
		ct_map_delete(p, r);
		return 0;
	}
	/* A SYN on a closed connection opens a new one: policy decides it again. */
	if ((v->flags & CT_CLOSING) && p->protocol == PROTO_TCP &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return 0;
	return v;
}

/* Extends the lifetime of a tracked connection after one of its packets. */
static __always_inline void ct_refresh(struct ct_value *v, const struct ep_state *st,
				       const struct pkt *p, __u64 now)
{
	__u8 closing = ct_closing(p);
	__u64 expires;

	if (closing && !(v->flags & CT_CLOSING))
		v->flags |= CT_CLOSING;
	expires = now + ct_lifetime(st, p, v->flags);
	if (expires > v->expires + st->jiffies_hz || closing)
		v->expires = expires;
}

/* Tracks the connection `p` opens (key `r`, from ct_key_of() and ct_key_bind()); `proxy` is CT_PROXY (redirected
 * to d->proxy_port), CT_FROM_PROXY (opened by the L7 proxy) or 0. */
static __always_inline int ct_create(const struct pkt *p, const struct ct_ref *r, __u8 dir,
				     const struct ep_state *st, const struct decision *d, __u64 now,
				     __u8 proxy)
{
	struct ct_value v = {};

	v.flags = (r->src_is_a ? CT_OPENER_A : 0) | ct_closing(p) | proxy;
	v.proxy_port = proxy == CT_PROXY ? d->proxy_port : 0;
	v.expires = now + ct_lifetime(st, p, v.flags);
	v.policy_rev = st->policy_rev;
	v.rule_id = d->rule_id;
	v.origin = dir;
	v.policy_port_be = p->policy_port_be;
#ifdef ENABLE_IPV4
	if (p->family == FAMILY_IPV4)
		return CT_CALL4(p, bpf_map_update_elem, &r->e4, &v, BPF_ANY);
#endif
#ifdef ENABLE_IPV6
	return CT_CALL6(p, bpf_map_update_elem, &r->e6, &v, BPF_ANY);
#else
	return -1;
#endif
}
#endif

#endif /* CP_CT_H */
