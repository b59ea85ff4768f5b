/* Peer identity (ipcache) and the policy decision.
 *
 * ipcache: host addresses (/32, /128) are in a hash map looked up first; shorter prefixes in
 * an LPM trie consulted only when the hash misses (a host entry is the longest prefix there is).
 *
 * Policy: for one identity c, the most specific entry covering the packet is found by hash
 * lookups in Cilium's order, exact port -> [port range (LPM, ENABLE_PORT_RANGES only)] ->
 * every port of the protocol -> every protocol, skipping the kinds of keys c does not have
 * (flags on c's every-protocol key, which codegen always installs: a lookup marker when c has
 * no every-protocol entry). That is done for the peer's identity, then
 * (ENABLE_ADDR_MATCH) the peer address's class, then the wildcard identity 0. A deny found for
 * any of them wins; otherwise the peer's entry, then the class's, then the wildcard's decides.
 * Codegen installs a deny at every more specific key of the same identity it covers (so the
 * most specific entry of an identity is a deny whenever one of its denies applies), and marks
 * entries POLICY_FINAL when no deny of a later-consulted identity overlaps them: a final allow
 * ends the decision without the remaining lookups. The every-protocol key of a peer identity or
 * address class carries POLICY_NO_WILDCARD when the wildcard identity has no entries in the
 * direction: its lookup (which could only miss) is skipped. */
#ifndef CP_POLICY_H
#define CP_POLICY_H

static __always_inline __u32 ipcache_identity(const struct pkt *p, const __u32 *addr)
{
	struct ipcache_host_key h = {};
	struct ipcache_key k = {};
	struct ipcache_value *v;

	h.family = p->family;
	/* IPv4: the other 12 bytes are zero in `p` as in the key. */
	__builtin_memcpy(h.addr, addr, 16);
	v = bpf_map_lookup_elem(&cp_ipcache_host, &h);
	if (v)
		return v->identity;
	k.family = p->family;
	k.prefixlen = 32 + (p->family == FAMILY_IPV4 ? 32 : 128);
	__builtin_memcpy(k.addr, h.addr, 16);
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
	__u8 kind;    /* POLICY_KIND_* of the deciding entry's key, 0 = none */
	__u16 proxy_port;
	__u32 rule_id;
	__u32 entry_id; /* the deciding entry's policy-key identity */
};

/* A candidate entry: the value and which of its identity's keys it is. */
struct candidate {
	struct policy_value *v;
	__u32 id;
	__u8 kind;
};

/* Counts the deciding entry and reports its verdict and key. */
static __always_inline void take(struct policy_value *c, __u32 id, __u8 kind, __u32 len,
				 struct decision *d)
{
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, len);
	d->verdict = c->verdict;
	d->proxy_port = c->proxy_port;
	d->rule_id = c->rule_id;
	d->entry_id = id;
	d->kind = kind;
}

#define TAKE(c, len, d) take(opaque((c).v), (c).id, (c).kind, (len), (d))

/* The entry of identity `id` at its key of kind `kind` for (dir, protocol, port), or 0: one
 * lookup, used by policy_of() for each kind and by a deny slot to find its entry again. */
static __always_inline struct policy_value *policy_at(__u32 id, __u8 kind, __u8 dir,
						      __u8 protocol, __u16 port_be)
{
	struct policy_key k = {.identity = id, .dir_flags = dir};

#ifdef ENABLE_PORT_RANGES
	if (kind == POLICY_KIND_RANGE) {
		struct policy_range_key r = {.prefixlen = POLICY_RANGE_FULL_PREFIX,
					     .identity = id,
					     .direction = dir,
					     .protocol = protocol,
					     .dport_be = port_be};

		return bpf_map_lookup_elem(&cp_policy_rng, &r);
	}
#endif
	if (kind == POLICY_KIND_EXACT) {
		k.protocol = protocol;
		k.dport_be = port_be;
	} else if (kind == POLICY_KIND_PORTS) {
		k.dir_flags |= POLICY_ALL_PORTS;
		k.protocol = protocol;
	} else if (kind == POLICY_KIND_ALL) {
		k.dir_flags |= POLICY_ALL_PORTS;
	} else {
		return 0;
	}
	return bpf_map_lookup_elem(&cp_policy, &k);
}

/* The most specific entry of identity `id` covering (dir, protocol, port), or none. The
 * identity's every-protocol key comes first: no key, no entries at all (one lookup); its flags
 * say which more specific keys exist, and are added to `*seen`. */
static __always_inline struct candidate policy_of(__u32 id, __u8 dir, __u8 protocol,
						  __u16 port_be, __u8 *seen)
{
	struct candidate c = {.id = id};
	struct policy_value *m;

	m = policy_at(id, POLICY_KIND_ALL, dir, protocol, port_be);
	if (!m)
		return c;
	*seen |= m->flags;
	if (m->flags & POLICY_HAS_EXACT) {
		c.kind = POLICY_KIND_EXACT;
		c.v = policy_at(id, c.kind, dir, protocol, port_be);
		if (c.v)
			return c;
	}
#ifdef ENABLE_PORT_RANGES
	if (m->flags & POLICY_HAS_RANGES) {
		c.kind = POLICY_KIND_RANGE;
		c.v = policy_at(id, c.kind, dir, protocol, port_be);
		if (c.v)
			return c;
	}
#endif
	/* Protocol 0's all-ports key is the marker itself. */
	if ((m->flags & POLICY_HAS_PORTS) && protocol != 0) {
		c.kind = POLICY_KIND_PORTS;
		c.v = policy_at(id, c.kind, dir, protocol, port_be);
		if (c.v)
			return c;
	}
	c.kind = POLICY_KIND_ALL;
	c.v = m->verdict != VERDICT_NONE ? m : 0;
	return c;
}

/* An entry that decides on its own: a deny, or an allow no later lookup can overturn. */
static __always_inline int decisive(const struct policy_value *v)
{
	return v->verdict == VERDICT_DENY || (v->flags & POLICY_FINAL);
}

/* Decides a new connection in direction `dir`; counts the deciding entry. */
static __always_inline void policy_decide(__u8 dir, __u32 peer_id, const struct pkt *p,
					  const __u32 *peer_addr, __u16 port_be, __u32 len,
					  struct decision *d)
{
	struct candidate v, w = {}, a = {};
	__u8 seen = 0;

	d->verdict = 0;
	d->kind = 0;
	d->proxy_port = 0;
	d->rule_id = RULE_NONE;
	d->entry_id = 0;
	if (!dir_enforced(dir)) {
		d->verdict = VERDICT_ALLOW;
		return;
	}
	v = policy_of(peer_id, dir, p->protocol, port_be, &seen);
	if (v.v && decisive(v.v))
		return TAKE(v, len, d);
#ifdef ENABLE_ADDR_MATCH
	{
		struct addr_key ak = {};
		struct addr_value *av;

		ak.prefixlen = 32 + (p->family == FAMILY_IPV4 ? 32 : 128);
		ak.direction = dir;
		ak.family = p->family;
		__builtin_memcpy(ak.addr, peer_addr, 16);
		av = bpf_map_lookup_elem(&cp_addr, &ak);
		if (av)
			a = policy_of(av->class_id, dir, p->protocol, port_be, &seen);
	}
	/* A final allow of the class: no wildcard deny applies, the peer's allow (if any) or the
	 * class's decides. */
	if (a.v && decisive(a.v)) {
		if (a.v->verdict != VERDICT_DENY && v.v)
			return TAKE(v, len, d);
		return TAKE(a, len, d);
	}
#endif
	if (!(seen & POLICY_NO_WILDCARD))
		w = policy_of(0, dir, p->protocol, port_be, &seen);
	/* TAKE's opaque(): clang would otherwise merge the null-checked candidates arithmetically
	 * (`v | a`), which the verifier rejects as pointer arithmetic. */
	if (w.v && w.v->verdict == VERDICT_DENY)
		return TAKE(w, len, d);
	if (v.v)
		return TAKE(v, len, d);
	if (a.v)
		return TAKE(a, len, d);
	if (w.v)
		return TAKE(w, len, d);
}

#endif /* CP_POLICY_H */
