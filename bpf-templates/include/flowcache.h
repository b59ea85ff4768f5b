/* Per-CPU flow cache in front of connection tracking (ENABLE_FLOW_CACHE, FLOW_CACHE_SLOTS > 0).
 *
 * A per-CPU array of FLOW_CACHE_SLOTS direct-mapped slots per family, indexed by a cheap hash
 * of the canonical CT key. The slow path fills a slot after its CT entry passed a packet (and
 * was refreshed); a later packet of the connection on the same CPU passes from the slot
 * without the CT hash lookup when all of these hold:
 *  - the slot holds exactly the packet's CT key;
 *  - the packet classifies as established or reply with the slot's origin and opener, by the
 *    same test as the CT lookup (ct_tracks());
 *  - the slot was filled at the endpoint's current policy revision (the agent bumps it after
 *    writing a change of the endpoint's maps; the very next packet of every connection then
 *    goes back through the CT re-check of revoked policy);
 *  - now < deadline, where the deadline is at most one second after the fill, never after the
 *    CT entry's expiry, and never after the first moment ct_refresh() would write the entry's
 *    expiry again (so the once-a-second refresh of the CT entry still happens on the slow path);
 *  - the packet is not a TCP SYN, FIN or RST (opening and closing are decided by CT as before).
 * Entries that are closing (CT_CLOSING) are never cached.
 *
 * Slots are never cleared: the CT entries the slow path deletes are covered by the conditions
 * above on every CPU at once (a revoked entry has an older revision, a stale one is past every
 * slot's deadline), which clearing the local CPU's slot could not achieve. What the cache can
 * pass that CT would not (Documentation/datapath.md): packets of a connection whose CT entry
 * disappeared some other way — LRU eviction under CT pressure, or a delete from user space —
 * for at most the slot's remaining lifetime (≤ 1 s), and never across a policy revision. The
 * agent never deletes CT entries; programs that replace an endpoint's program get a new,
 * empty cache (the cache maps are not pinned). */
#ifndef CP_FLOWCACHE_H
#define CP_FLOWCACHE_H

#ifdef ENABLE_FLOW_CACHE
_Static_assert((FLOW_CACHE_SLOTS & (FLOW_CACHE_SLOTS - 1)) == 0,
	       "FLOW_CACHE_SLOTS must be a power of two");

#define TCP_FLAGS_SLOW (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)

/* The packet's slot: one of the two set, by family (the verifier follows each pointer's null
 * check, not the family). */
struct fc_slot {
#ifdef ENABLE_IPV4
	struct fc4_slot *s4;
#endif
#ifdef ENABLE_IPV6
	struct fc6_slot *s6;
#endif
	__u32 idx; /* the slot index, also the packet's cp_ctgen bucket */
};

static __always_inline __u32 fc_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h & (FLOW_CACHE_SLOTS - 1);
}

static __always_inline __u32 fc_ports(__u16 a, __u16 b, __u8 protocol)
{
	return (((__u32)a << 16) | b) ^ ((__u32)protocol << 8);
}

/* The slot the packet's connection maps to. */
static __always_inline struct fc_slot fc_slot(const struct pkt *p, const struct ct_ref *r)
{
	struct fc_slot f = {};
	__u32 h;

#ifdef ENABLE_IPV4
	if (p->family == FAMILY_IPV4) {
		h = (r->k4.addr_a * 0x9e3779b1u) ^ r->k4.addr_b ^
		    fc_ports(r->k4.port_a_be, r->k4.port_b_be, r->k4.protocol) * 0xc2b2ae35u;
		f.idx = fc_mix(h);
		f.s4 = bpf_map_lookup_elem(&cp_fc4, &f.idx);
		return f;
	}
#endif
#ifdef ENABLE_IPV6
	/* The words that differ between hosts and connections of a prefix are the last ones. */
	h = ((r->k6.addr_a[3] ^ r->k6.addr_a[2]) * 0x9e3779b1u) ^ r->k6.addr_b[3] ^
	    r->k6.addr_b[2] ^ fc_ports(r->k6.port_a_be, r->k6.port_b_be, r->k6.protocol) * 0xc2b2ae35u;
	f.idx = fc_mix(h);
	f.s6 = bpf_map_lookup_elem(&cp_fc6, &f.idx);
#endif
	return f;
}

static __always_inline int fc_words_equal(const __u32 *a, const __u32 *b, int words)
{
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < 10; i++) {
		if (i < words)
			diff |= a[i] ^ b[i];
	}
	return diff == 0;
}

/* The checks of one slot of either family (`key` is the packet's key of that family). */
#define FC_HIT(s, k, r, dir, rev, now)                                                       \
	((now) < (s)->deadline && (s)->policy_rev == (rev) && !((s)->flags & FC_DENY) &&    \
	 fc_words_equal((const __u32 *)&(s)->key, (const __u32 *)&(k),                     \
			sizeof((s)->key) / 4) &&                                           \
	 ct_tracks((r), (s)->origin, (s)->flags, (dir)))

/* Whether the slot lets the packet pass without the CT lookup (the conditions at the top). */
static __always_inline int fc_hit(struct fc_slot f, const struct pkt *p, const struct ct_ref *r,
				  __u8 dir, __u32 rev, __u64 now)
{
	if (p->tcp_flags & TCP_FLAGS_SLOW)
		return 0;
#ifdef ENABLE_IPV4
	if (f.s4)
		return FC_HIT(f.s4, r->k4, r, dir, rev, now);
#endif
#ifdef ENABLE_IPV6
	if (f.s6)
		return FC_HIT(f.s6, r->k6, r, dir, rev, now);
#endif
	return 0;
}

/* The first jiffy the slot must not serve: one second after `now` at most, the first jiffy at
 * which CT calls the entry stale (expires + 1), and the first jiffy at which ct_refresh()
 * writes the expiry again (now + lifetime > expires + HZ). 0 (never valid) if the lifetime is
 * beyond any expiry. */
static __always_inline __u64 fc_deadline(const struct ct_value *ct, const struct ep_state *st,
					 const struct pkt *p, __u64 now)
{
	__u64 hz = st->jiffies_hz, life = ct_lifetime(st, p, ct->flags);
	__u64 d = ct->expires + 1;

	if (life > hz) {
		if (d <= life - hz)
			return 0;
		d -= life - hz;
	}
	return d < now + hz ? d : now + hz;
}

/* What a deny slot remembers besides the key, revision and orientation (zero in CT slots). */
struct fc_deny_info {
	__u32 peer_identity;
	__u32 ipcache_gen;
	__u32 ct_gen;
	__u32 deny_identity;
	__u32 rule_id;
	__u8 deny_kind;
};

/* A deny slot's policy port: the denied packet's destination port, the key's side b when its
 * source was side a (CT_OPENER_A; deny slots never hold ICMP, whose policy port is the type). */
#define FC_POLICY_PORT(s) ((s)->flags & CT_OPENER_A ? (s)->key.port_b_be : (s)->key.port_a_be)

/* Adds the packets a deny slot served to its entry's counters (the deny entry now at the key
 * the slot remembers; nothing if that key no longer holds a deny). */
#define FC_FLUSH(s)                                                                         \
	do {                                                                               \
		struct policy_value *v_ = policy_at((s)->deny_identity, (s)->deny_kind,     \
						    (s)->origin, (s)->key.protocol,         \
						    FC_POLICY_PORT(s));                     \
		if (v_ && v_->verdict == VERDICT_DENY) {                                   \
			__sync_fetch_and_add(&v_->packets, (s)->pending_packets);           \
			__sync_fetch_and_add(&v_->bytes, (s)->pending_bytes);               \
		}                                                                          \
		(s)->pending_packets = 0;                                                  \
		(s)->pending_bytes = 0;                                                    \
	} while (0)

/* Before a slot is rewritten: what its deny served goes to the deny entry's counters. Only a
 * deny slot's count is read: rewriting a CT slot touches no field past its flags. */
#ifdef ENABLE_DENY_CACHE
#define FC_RETIRE(s)                                                                        \
	do {                                                                               \
		if (((s)->flags & FC_DENY) && (s)->pending_packets)                        \
			FC_FLUSH(s);                                                       \
	} while (0)
#else
#define FC_RETIRE(s) ((void)0)
#endif

/* Writes slot `s` of either family, after flushing what the slot's previous deny served; a
 * deny slot's own fields from `info`, which a CT fill passes as a null pointer (constant: the
 * writes are compiled out) and leaves as they were: only FC_DENY slots read them, and the
 * fields a CT slot is read by (key, deadline, revision, origin, flags) are its first 30 bytes
 * (IPv4; 54 for IPv6), so a CT fill writes no more memory than a hit reads. The deadline is zeroed first and written last, so that a run nested on this CPU
 * (BPF_PROG_TEST_RUN interrupted by a softirq; tc programs do not nest) sees an invalid slot,
 * not a half-written one; and a nested fill that completed between the two leaves fields of
 * two fills: the last write checks that the slot still holds this fill's key, revision, origin
 * and flags, and leaves the slot invalid otherwise. */
#define FC_WRITE(s, k, rev, org, flg, info, deadline)                                           \
	do {                                                                               \
		FC_RETIRE(s);                                                              \
		(s)->deadline = 0;                                                         \
		barrier();                                                                 \
		(s)->key = (k);                                                            \
		(s)->policy_rev = (rev);                                                   \
		(s)->origin = (org);                                                       \
		(s)->flags = (flg);                                                        \
		if (info) {                                                                \
			(s)->peer_identity = (info)->peer_identity;                        \
			(s)->ipcache_gen = (info)->ipcache_gen;                            \
			(s)->ct_gen = (info)->ct_gen;                                      \
			(s)->deny_kind = (info)->deny_kind;                                \
			(s)->deny_identity = (info)->deny_identity;                        \
			(s)->rule_id = (info)->rule_id;                                    \
			(s)->pending_packets = 0;                                          \
			(s)->pending_bytes = 0;                                            \
		}                                                                          \
		barrier();                                                                 \
		(s)->deadline = (s)->policy_rev == (rev) && (s)->origin == (org) &&        \
					(s)->flags == (flg) &&                             \
					fc_words_equal((const __u32 *)&(s)->key,           \
						       (const __u32 *)&(k),               \
						       sizeof((s)->key) / 4)              \
				? (deadline)                                               \
				: 0;                                                       \
	} while (0)

/* Remembers that `ct` (just checked at revision `rev` and refreshed) passes the connection. */
static __always_inline void fc_fill(struct fc_slot f, const struct pkt *p, const struct ct_ref *r,
				    const struct ct_value *ct, const struct ep_state *st,
				    __u32 rev, __u64 now)
{
	const struct fc_deny_info *none = 0;
	__u64 deadline;

	if (ct->flags & CT_CLOSING)
		return;
	deadline = fc_deadline(ct, st, p, now);
#ifdef ENABLE_IPV4
	if (f.s4) {
		FC_WRITE(f.s4, r->k4, rev, ct->origin, ct->flags, none, deadline);
		return;
	}
#endif
#ifdef ENABLE_IPV6
	if (f.s6)
		FC_WRITE(f.s6, r->k6, rev, ct->origin, ct->flags, none, deadline);
#endif
}
#ifdef ENABLE_DENY_CACHE
/* Deny slots (ENABLE_DENY_CACHE; FC_DENY in flags): a denied new connection, either because no policy entry
 * matched (the default deny) or by a deny entry. The slot remembers the packet's direction and
 * orientation (origin, CT_OPENER_A), its peer identity, and for a deny entry which key decided
 * (deny_kind, deny_identity) and its rule: a packet served from the slot reports what the
 * decision reported, and is counted in the slot (per CPU, no atomics, no lookup); the slot adds
 * its count to the entry's counters every FC_DENY_FLUSH packets and before it is rewritten
 * (FC_FLUSH: one lookup of the entry's key). An entry's counters therefore lag by at most
 * FC_DENY_FLUSH - 1 packets per slot and CPU, until that slot is next written. It is consulted
 * before the CT lookup and serves a packet that has the slot's key, direction and orientation
 * when all of these still hold:
 *  - now < deadline (one second after the fill);
 *  - the endpoint's policy revision is the slot's (policy, port-range and address-class maps);
 *  - the node's ipcache generation is the slot's (the peer's identity): read before the ipcache
 *    lookup; the agent increments it after writing the ipcache;
 *  - the count of CT entries created in the slot's bucket (cp_ctgen) is the slot's: no
 *    connection with the slot's key can have appeared since the fill, on any CPU. The fill
 *    reads the count with a fully ordered atomic and then looks the key up in CT again,
 *    remembering nothing if an entry exists; ct creation increments the count (fully ordered)
 *    after the insert. So either the fill's lookup sees the new entry, or the fill read the count
 *    before the increment and the slot is invalid from then on.
 * ICMP is not cached (its policy port, the type, is not part of the key). */
static __always_inline __u32 fc_ipcache_gen(void)
{
	__u32 zero = 0;
	struct node_state *n = bpf_map_lookup_elem(&cp_node, &zero);

	return n ? n->ipcache_gen : 0;
}

static __always_inline int fc_deny_able(const struct pkt *p)
{
	return p->protocol != PROTO_ICMP && p->protocol != PROTO_ICMPV6;
}

/* The checks of deny slot `s` of either family, of the packet whose slot is `f`: the slot's
 * own fields first, so that a packet whose slot holds something else (every flow-cache miss of
 * an established connection) reads nothing else; the node's ipcache generation and the
 * bucket's CT count only for a slot that holds the packet's deny. */
#define FC_DENIED(f, s, k, r, dir, rev, now)                                                \
	((now) < (s)->deadline && (s)->flags == (FC_DENY | (r)->src_is_a) &&                \
	 (s)->origin == (dir) && (s)->policy_rev == (rev) &&                                 \
	 fc_words_equal((const __u32 *)&(s)->key, (const __u32 *)&(k), sizeof((s)->key) / 4) && \
	 (s)->ipcache_gen == fc_ipcache_gen() && fc_ct_gen_is((f), (s)->ct_gen))

/* The packet's cp_ctgen bucket. */
static __always_inline __u64 *fc_ctgen(struct fc_slot f)
{
	return bpf_map_lookup_elem(&cp_ctgen, &f.idx);
}

static __always_inline int fc_ct_gen_is(struct fc_slot f, __u32 want)
{
	__u64 *c = fc_ctgen(f);

	return c && (__u32)*c == want;
}

/* After a CT entry was created with the packet's key: invalidates the bucket's deny slots on
 * every CPU. A fetching atomic is fully ordered after the insert. */
static __always_inline void fc_ct_created(struct fc_slot f)
{
	__u64 *c = fc_ctgen(f);
	__u64 old;

	if (!c)
		return;
	old = __sync_fetch_and_add(c, 1);
	asm volatile("" : : "r"(old));
}

/* The decision a deny slot remembers, for the packet's drop event. */
#define FC_DECISION(s, peer_id, d)                                                          \
	do {                                                                               \
		*(peer_id) = (s)->peer_identity;                                           \
		(d)->verdict = (s)->deny_kind ? VERDICT_DENY : VERDICT_NONE;               \
		(d)->kind = (s)->deny_kind;                                                \
		(d)->entry_id = (s)->deny_identity;                                        \
		(d)->rule_id = (s)->rule_id;                                               \
	} while (0)

/* Counts a packet a deny entry's slot served: added to the entry in batches (FC_FLUSH). */
#define FC_COUNT(s, len)                                                                    \
	do {                                                                               \
		(s)->pending_packets += 1;                                                 \
		(s)->pending_bytes += (len);                                               \
		if ((s)->pending_packets >= FC_DENY_FLUSH)                                 \
			FC_FLUSH(s);                                                       \
	} while (0)

/* Whether deny slot `s` of either family denies the packet; if so, reports and counts it. */
#define FC_SERVE_DENY(f, s, k, r, dir, rev, now, len, peer_id, d)                          \
	({                                                                                 \
		int hit_ = FC_DENIED(f, s, k, r, dir, rev, now);                           \
		if (hit_) {                                                                \
			FC_DECISION(s, peer_id, d);                                        \
			if ((d)->kind)                                                     \
				FC_COUNT(s, len);                                          \
		}                                                                          \
		hit_;                                                                      \
	})

/* Whether the slot denies the packet: then its peer identity is in `*peer_id`, the decision
 * (no entry, or a deny entry: kind, identity, rule) in `d`, and a deny entry's packet counted. */
static __always_inline int fc_denied(struct fc_slot f, const struct pkt *p, const struct ct_ref *r,
				     __u8 dir, __u32 rev, __u64 now, __u32 len, __u32 *peer_id,
				     struct decision *d)
{
	if (!fc_deny_able(p))
		return 0;
#ifdef ENABLE_IPV4
	if (f.s4)
		return FC_SERVE_DENY(f, f.s4, r->k4, r, dir, rev, now, len, peer_id, d);
#endif
#ifdef ENABLE_IPV6
	if (f.s6)
		return FC_SERVE_DENY(f, f.s6, r->k6, r, dir, rev, now, len, peer_id, d);
#endif
	return 0;
}

/* Remembers that the packet was denied (decision `d`: no entry, or a deny entry) at revision
 * `rev` and ipcache generation `gen` (both read before the lookups that decided it), unless its
 * key has a CT entry after the bucket's count was read. */
static __always_inline void fc_fill_deny(struct fc_slot f, const struct pkt *p,
					 const struct ct_ref *r, __u8 dir, __u32 rev, __u32 gen,
					 __u32 peer_id, const struct decision *d, __u64 deadline)
{
	struct fc_deny_info info = {.peer_identity = peer_id,
				    .ipcache_gen = gen,
				    .deny_identity = d->entry_id,
				    .rule_id = d->rule_id,
				    .deny_kind = d->kind};
	__u64 *c;

	if (!fc_deny_able(p))
		return;
	c = fc_ctgen(f);
	if (!c)
		return;
	info.ct_gen = (__u32)__sync_fetch_and_add(c, 0);
	if (ct_map_lookup(p, r))
		return;
#ifdef ENABLE_IPV4
	if (f.s4) {
		FC_WRITE(f.s4, r->k4, rev, dir, FC_DENY | r->src_is_a, &info, deadline);
		return;
	}
#endif
#ifdef ENABLE_IPV6
	if (f.s6)
		FC_WRITE(f.s6, r->k6, rev, dir, FC_DENY | r->src_is_a, &info, deadline);
#endif
}
#endif /* ENABLE_DENY_CACHE */
#endif /* ENABLE_FLOW_CACHE */

#endif /* CP_FLOWCACHE_H */
