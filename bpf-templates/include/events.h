/* Metrics (per-CPU counters by direction and reason) and ring-buffer events for `monitor`. */
#ifndef CP_EVENTS_H
#define CP_EVENTS_H

/* What one event takes in the ring: the record and its 8-byte header, 8-byte aligned. */
#define EVENT_RECORD_SIZE ((sizeof(struct event) + 8 + 7) & ~7ul)

static __always_inline void count(__u8 dir, __u8 reason, __u32 len)
{
	__u32 idx = (__u32)dir * 256 + reason;
	struct metrics_value *m = bpf_map_lookup_elem(&cp_metrics, &idx);

	if (m) {
		m->packets += 1;
		m->bytes += len;
	}
}

static __always_inline void emit(const struct ep_state *st, __u8 kind, __u8 reason, __u8 dir,
				 const struct pkt *p, __u32 peer_id, const struct decision *d,
				 __u32 len)
{
	struct event *e;
	__u64 avail;

	if (!(st->events_mask & (kind == EVENT_DROP ? EVENTS_DROP : EVENTS_VERDICT)))
		return;
	/* A ring nobody drains is full: a reserve would take the ring's lock (irqs off) only to
	 * fail. Unread data plus this record (8-byte header, 8-byte aligned) must stay below the
	 * ring's size, the reserve's own condition; the unlocked read may be stale, which only
	 * loses an event a reader was about to make room for. */
	avail = bpf_ringbuf_query(&cp_events, BPF_RB_AVAIL_DATA);
	if (avail + EVENT_RECORD_SIZE >= EVENTS_RINGBUF_SIZE)
		return;
	e = bpf_ringbuf_reserve(&cp_events, sizeof(*e), 0);
	if (!e)
		return;
	e->kind = kind;
	e->reason = reason;
	e->direction = dir;
	e->protocol = p->protocol;
	e->ep_id = ep_id;
	e->ep_identity = ep_identity;
	e->peer_identity = peer_id;
	e->rule_id = d->rule_id;
	e->pkt_len = len;
	e->family = p->family;
	e->verdict = d->verdict;
	e->sport_be = p->sport_be;
	e->dport_be = p->policy_port_be;
	e->pad = 0;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	e->time_ns = bpf_ktime_get_ns();
	/* The kernel's adaptive wakeup (flags 0): the ring's waiters are woken only when the
	 * reader had caught up with this record, i.e. is likely asleep in poll/epoll (the agent's
	 * monitor thread blocks without a timeout). A reader still draining is not woken again,
	 * and readers let events gather for a millisecond after a drain that found some
	 * (runtime_loader::ring), so a flood costs at most a wakeup per millisecond. */
	bpf_ringbuf_submit(e, 0);
}

#endif /* CP_EVENTS_H */
