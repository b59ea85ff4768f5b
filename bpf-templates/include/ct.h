/* Connection tracking (LRU hash), keyed by the tuple of the packet that opened the connection.
 *
 * A packet belongs to a tracked connection when its own tuple is there with the same origin
 * direction (established) or its reversed tuple is there with the other origin (reply).
 * Revoked policy (secure by default): each entry remembers the policy revision it was checked
 * against; when the endpoint's revision (cp_state) has moved on, the next packet of the
 * connection re-runs the policy decision of the opening direction, and the connection is
 * dropped (and forgotten) if the current policy no longer allows it. */
#ifndef CP_CT_H
#define CP_CT_H

#ifdef ENABLE_CT
static __always_inline void ct_fill(struct ct_key *k, const struct pkt *p, int reverse)
{
	k->protocol = p->protocol;
	k->family = p->family;
	if (reverse) {
		__builtin_memcpy(k->saddr, p->daddr, 16);
		__builtin_memcpy(k->daddr, p->saddr, 16);
		k->sport_be = p->dport_be;
		k->dport_be = p->sport_be;
	} else {
		__builtin_memcpy(k->saddr, p->saddr, 16);
		__builtin_memcpy(k->daddr, p->daddr, 16);
		k->sport_be = p->sport_be;
		k->dport_be = p->dport_be;
	}
}

static __always_inline __u64 ct_timeout_ns(const struct ep_state *st, const struct pkt *p)
{
	__u32 s = p->protocol == PROTO_TCP ? st->ct_timeout_tcp_s : st->ct_timeout_other_s;

	return (__u64)s * 1000000000ull;
}

/* The tracked connection of `p` (key left in `k`), or 0. Stale entries are removed. */
static __always_inline struct ct_value *ct_lookup(const struct pkt *p, __u8 dir, struct ct_key *k,
						  __u64 now)
{
	struct ct_value *v;

	ct_fill(k, p, 0);
	v = bpf_map_lookup_elem(&cp_ct, k);
	if (!v || v->origin != dir) {
		ct_fill(k, p, 1);
		v = bpf_map_lookup_elem(&cp_ct, k);
		if (v && v->origin == dir)
			v = 0;
	}
	if (v && v->expires_ns < now) {
		bpf_map_delete_elem(&cp_ct, k);
		v = 0;
	}
	return v;
}

static __always_inline int ct_create(const struct pkt *p, __u8 dir, const struct ep_state *st,
				     const struct decision *d, __u64 now)
{
	struct ct_key k = {};
	struct ct_value v = {};

	ct_fill(&k, p, 0);
	v.expires_ns = now + ct_timeout_ns(st, p);
	v.policy_rev = st->policy_rev;
	v.rule_id = d->rule_id;
	v.origin = dir;
	v.policy_port_be = p->policy_port_be;
	return bpf_map_update_elem(&cp_ct, &k, &v, BPF_ANY);
}
#endif

#endif /* CP_CT_H */
