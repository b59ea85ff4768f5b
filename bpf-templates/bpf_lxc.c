/* Per-endpoint datapath, attached (tc clsact, direct action) on the host side of the endpoint's
 * veth: cil_from_container on its ingress hook sees what the endpoint sends (the endpoint's
 * egress policy), cil_to_container on its egress hook sees what is delivered to it (ingress
 * policy). Features the endpoint does not need are compiled out through ep_config.h; its
 * identity and addresses are globals of `.data.ep`, written per endpoint and then frozen. */
#include "bpf_api.h"
#include "layout.h"
#include "node_config.h"
#include "ep_config.h"

/* Per-endpoint constants, in a data section of their own (map `.data.ep`): the template is
 * compiled with zeros; codegen patches them into the object, or a loader writes them into the
 * loaded map (a program verified ahead for no endpoint yet, runtime-loader/src/kit.rs). The
 * loader freezes the map once they are written: no syscall changes them afterwards, and no
 * program writes them. Not `.rodata`: the verifier would take its values as known, and a
 * program verified with them would be one endpoint's only. */
#define EP_CONST SEC(".data.ep") volatile
EP_CONST __u32 ep_id = EP_ID;
EP_CONST __u32 ep_identity = EP_IDENTITY;
EP_CONST __u32 ep_ipv4_be = EP_IPV4_BE;
EP_CONST __u32 ep_ipv6_be[4] = EP_IPV6_BE;

#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "ct.h"
#include "flowcache.h"
#include "events.h"
#include "proxy.h"

static __always_inline int drop(const struct ep_state *st, __u8 dir, const struct pkt *p,
				__u8 reason, __u32 peer_id, const struct decision *d, __u32 len)
{
	count(dir, reason, len);
	emit(st, EVENT_DROP, reason, dir, p, peer_id, d, len);
	return TC_ACT_SHOT;
}

#ifdef ENABLE_SIP_CHECK
/* Packets the endpoint sends must carry one of its addresses. */
static __always_inline int source_is_endpoint(const struct pkt *p)
{
	if (p->family == FAMILY_IPV4)
		return p->saddr[0] == ep_ipv4_be;
	return p->saddr[0] == ep_ipv6_be[0] && p->saddr[1] == ep_ipv6_be[1] &&
	       p->saddr[2] == ep_ipv6_be[2] && p->saddr[3] == ep_ipv6_be[3];
}
#endif

/* The policy decision of a new connection, and of the revocation re-check (ct.h): the policy
 * of direction `how & 0xff` for the packet's peer. A global function: the verifier checks it
 * once on its own and, after each call, knows nothing of the decision but its size, so the
 * code after a decision is walked once per path to the call instead of once per way the
 * decision can end; inlined at both call sites, with every feature on, that took the program
 * past the verifier's 1,000,000-instruction limit (Documentation/datapath.md, "Verifier
 * cost"). At most five arguments: `how` also holds whether the peer is the destination
 * (DECIDE_PEER_IS_DST) and the policy port in network order (bits 16-31). */
#define DECIDE_PEER_IS_DST (1 << 8)
#if defined(ENABLE_INGRESS_POLICY) || defined(ENABLE_EGRESS_POLICY)
#define DECIDE_FN __attribute__((noinline))
#else
/* Nothing enforced, every decision allows: inlined (clang passes the arguments a global
 * function does not use uninitialised, which the verifier refuses). */
#define DECIDE_FN static __always_inline
#endif
DECIDE_FN int decide(__u32 how, __u32 peer_id, const struct pkt *p, __u32 len, struct decision *d)
{
	if (!p || !d)
		return 0;
	policy_decide((__u8)how, peer_id, p, (how & DECIDE_PEER_IS_DST) ? p->daddr : p->saddr,
		      (__u16)(how >> 16), len, d);
	return 0;
}

/* decide()'s `how` for direction `policy_dir` of a packet going `dir` with policy port
 * `port_be`. */
static __always_inline __u32 decide_how(__u8 policy_dir, __u8 dir, __u16 port_be)
{
	return policy_dir | (dir == DIR_EGRESS ? DECIDE_PEER_IS_DST : 0) | (__u32)port_be << 16;
}

static __always_inline int handle(struct __sk_buff *skb, const __u8 dir)
{
	struct decision d = {.rule_id = RULE_NONE};
	struct pkt p = {};
	struct ep_state *st;
	__u32 zero = 0, len = skb->len, peer_id;
	const __u32 *peer;
	__u64 now = 0;
	__u32 rev;
	int r, act = TC_ACT_OK;
#ifdef ENABLE_CT
	struct ct_ref ref = {};
	__u8 proxy = 0;
#endif
#ifdef ENABLE_FLOW_CACHE
	struct fc_slot slot = {};
#endif
#ifdef ENABLE_DENY_CACHE
	__u32 gen = 0;
#endif

	st = bpf_map_lookup_elem(&cp_state, &zero);
	if (!st)
		return TC_ACT_SHOT;
	rev = st->policy_rev;
	r = parse_packet(skb, &p);
	if (r < 0)
		return drop(st, dir, &p, (__u8)-r, 0, &d, len);
	if (r == PARSE_PASS) {
		count(dir, REASON_FORWARDED, len);
		return TC_ACT_OK;
	}
#ifdef ENABLE_SIP_CHECK
	if (dir == DIR_EGRESS && !source_is_endpoint(&p))
		return drop(st, dir, &p, DROP_INVALID_SIP, 0, &d, len);
#endif
	peer = dir == DIR_EGRESS ? p.daddr : p.saddr;

#ifdef ENABLE_CT
	/* Tracked connections pass before any identity or policy lookup (their cost does not grow
	 * with the ipcache or the policy): the flow cache, else one CT lookup; no event; only a
	 * revision change re-checks them. A default deny remembered in the flow cache (valid only
	 * while no CT entry of its key was created since) drops before the CT lookup. */
	{
		struct ct_value *ct;

		now = bpf_jiffies64();
		ct_key_of(&p, &ref);
#ifdef ENABLE_FLOW_CACHE
		slot = fc_slot(&p, &ref);
		if (fc_hit(slot, &p, &ref, dir, rev, now)) {
			count(dir, REASON_FORWARDED, len);
			return TC_ACT_OK;
		}
#endif
#ifdef ENABLE_DENY_CACHE
		/* A remembered deny, the default deny or a deny entry's. */
		if (fc_denied(slot, &p, &ref, dir, rev, now, len, &peer_id, &d))
			return drop(st, dir, &p, d.kind ? DROP_POLICY_DENY : DROP_POLICY, peer_id,
				    &d, len);
#endif
		ct_key_bind(&p, st, &ref);
		ct = ct_lookup(&p, dir, &ref, now);
		if (ct && ct->policy_rev != rev) {
			/* Re-checked without holding the entry across the decision (ct.h). */
			__u16 port_be = ct->policy_port_be;
			__u8 origin = ct->origin;

			peer_id = ipcache_identity(&p, peer);
			decide(decide_how(origin, dir, port_be), peer_id, &p, len, &d);
			if (d.verdict != VERDICT_ALLOW && d.verdict != VERDICT_REDIRECT) {
				ct_map_delete(&p, &ref);
				return drop(st, dir, &p,
					    d.verdict == VERDICT_DENY ? DROP_POLICY_DENY : DROP_POLICY,
					    peer_id, &d, len);
			}
			ct = ct_map_lookup(&p, &ref);
			if (ct) {
				ct->policy_rev = rev;
				ct->rule_id = d.rule_id;
#ifdef ENABLE_L7_REDIRECT
				/* Established before its redirect: from now on the opener's packets go
				 * to the proxy, which has no socket for it, so its listener answers
				 * the next one with a reset (proxy.h): the client sees the connection
				 * reset instead of hanging, and its new connection is proxied. */
				if (d.verdict == VERDICT_REDIRECT &&
				    !(ct->flags & (CT_PROXY | CT_FROM_PROXY))) {
					ct->flags |= CT_PROXY;
					ct->proxy_port = d.proxy_port;
				}
#endif
			}
		}
		if (ct) {
			ct_refresh(ct, st, &p, now);
			/* Proxied connections never enter the flow cache: every packet comes here. */
			if (ct->flags & (CT_PROXY | CT_FROM_PROXY)) {
#ifdef ENABLE_L7_REDIRECT
				/* The opener's packets go to the proxy (not the proxy's own, should
				 * its upstream connection reuse the tuple). */
				if ((ct->flags & CT_PROXY) && dir == ct->origin &&
				    !from_proxy(skb->mark)) {
					act = to_proxy(skb, dir, &p, ct->proxy_port);
					if (act < 0) {
						d.rule_id = ct->rule_id;
						return drop(st, dir, &p, (__u8)-act,
							    ipcache_identity(&p, peer), &d, len);
					}
				}
#endif
				/* Replies to the proxy's upstream connection: routed as local, to
				 * its transparent socket. */
				if ((ct->flags & CT_FROM_PROXY) && dir != ct->origin)
					skb->mark = MARK_MAGIC_TO_PROXY;
				count(dir, REASON_FORWARDED, len);
				return act;
			}
#ifdef ENABLE_FLOW_CACHE
			fc_fill(slot, &p, &ref, ct, st, rev, now);
#endif
			count(dir, REASON_FORWARDED, len);
			return TC_ACT_OK;
		}
	}
#endif

#ifdef ENABLE_CT
	/* A connection the L7 proxy opens (its upstream after a redirect; only processes of the
	 * node namespace can set the mark, a veth clears it) is never redirected again. After an
	 * ingress redirect the proxy has applied this endpoint's policy: not decided nor counted
	 * twice. After an egress redirect this endpoint's ingress policy still applies (below). */
	if (dir == DIR_INGRESS && mark_is(skb->mark, MARK_MAGIC_PROXY_INGRESS)) {
		/* Tracked with CT_FROM_PROXY: the endpoint's replies go back to the proxy. */
		d.verdict = VERDICT_ALLOW;
		if (p.ct_able) {
			if (ct_create(&p, &ref, dir, st, &d, now, CT_FROM_PROXY) < 0)
				return drop(st, dir, &p, DROP_CT_CREATE_FAILED, 0, &d, len);
#ifdef ENABLE_DENY_CACHE
			fc_ct_created(slot);
#endif
		}
		count(dir, REASON_FORWARDED, len);
		return TC_ACT_OK;
	}
#endif
#ifdef ENABLE_DENY_CACHE
	/* What a deny slot filled below serves: read before the ipcache lookup (flowcache.h). */
	gen = fc_ipcache_gen();
#endif
	peer_id = ipcache_identity(&p, peer);
	decide(decide_how(dir, dir, p.policy_port_be), peer_id, &p, len, &d);
	if (d.verdict != VERDICT_ALLOW && d.verdict != VERDICT_REDIRECT) {
#ifdef ENABLE_DENY_CACHE
		if (d.verdict == VERDICT_DENY || d.verdict == VERDICT_NONE)
			fc_fill_deny(slot, &p, &ref, dir, rev, gen, peer_id, &d,
				     now + st->jiffies_hz);
#endif
		return drop(st, dir, &p, d.verdict == VERDICT_DENY ? DROP_POLICY_DENY : DROP_POLICY,
			    peer_id, &d, len);
	}

#ifdef ENABLE_CT
#ifdef ENABLE_L7_REDIRECT
	if (d.verdict == VERDICT_REDIRECT)
		proxy = CT_PROXY;
#endif
	/* A proxy's connection after an egress redirect: not redirected again. */
	if (dir == DIR_INGRESS && from_proxy(skb->mark))
		proxy = CT_FROM_PROXY;
	if (p.ct_able) {
		if (ct_create(&p, &ref, dir, st, &d, now, proxy) < 0)
			return drop(st, dir, &p, DROP_CT_CREATE_FAILED, peer_id, &d, len);
#ifdef ENABLE_DENY_CACHE
		fc_ct_created(slot);
#endif
	}
#endif
#ifdef ENABLE_L7_REDIRECT
	if (d.verdict == VERDICT_REDIRECT && !from_proxy(skb->mark)) {
		act = to_proxy(skb, dir, &p, d.proxy_port);
		if (act < 0) {
#ifdef ENABLE_CT
			if (p.ct_able)
				ct_map_delete(&p, &ref);
#endif
			return drop(st, dir, &p, (__u8)-act, peer_id, &d, len);
		}
	}
#endif
	if (dir_enforced(dir))
		emit(st, EVENT_VERDICT, REASON_FORWARDED, dir, &p, peer_id, &d, len);
	count(dir, REASON_FORWARDED, len);
	return act;
}

SEC("classifier")
int cil_from_container(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

SEC("classifier")
int cil_to_container(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}

/* No GPL-only helper is used, so the project licence can be declared. */
char _license[] SEC("license") = "Apache-2.0";
