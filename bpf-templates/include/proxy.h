/* Socket assignment to the node's transparent L7 proxy (Cilium's tproxy mode, without
 * iptables). Shared by the endpoint programs (bpf_lxc.c) and the node program (bpf_node.c).
 *
 * A packet for the proxy is given the proxy's socket with bpf_sk_assign (tc ingress only):
 * first the established socket of its 4-tuple (the connection the proxy accepted), else the
 * proxy's listener on 127.0.0.1 / ::1 at the proxy port. A SYN opens a connection there; any
 * other segment (a connection established before its redirect, or one whose proxy socket went
 * away) is answered by the listener with a TCP reset, so its client does not hang. The packet carries
 * MARK_MAGIC_TO_PROXY, for which the node's policy-routing rule routes it as local; the
 * listener must be IP_TRANSPARENT, so the accepted socket keeps the original destination as its
 * local address. No socket: the caller drops with DROP_PROXY_LOOKUP_FAILED (fail closed).
 *
 * Endpoint egress (cil_from_container, the host-side veth's ingress hook) assigns in place.
 * Endpoint ingress (cil_to_container, the veth's egress hook) cannot: it checks that a socket
 * exists (so a missing proxy is a drop with the endpoint's event) and redirects the packet to
 * the ingress of `lo`, where the node program assigns it. */
#ifndef CP_PROXY_H
#define CP_PROXY_H

/* Ifindex of the loopback device in every network namespace. */
#define LOOPBACK_IFINDEX 1

static __always_inline int mark_is(__u32 mark, __u32 magic)
{
	return (mark & MARK_MAGIC_MASK) == magic;
}

static __always_inline int from_proxy(__u32 mark)
{
	return mark_is(mark, MARK_MAGIC_PROXY_INGRESS) || mark_is(mark, MARK_MAGIC_PROXY_EGRESS);
}

/* The proxy's socket for `p` (a reference the caller releases), or 0. TCP: the accepted
 * connection, else the listener. UDP (the DNS proxy): always the listener, which reads each
 * datagram's original destination (IP_RECVORIGDSTADDR). Other protocols have none. */
static __always_inline struct bpf_sock *proxy_socket(struct __sk_buff *skb, const struct pkt *p,
						     __u16 proxy_port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 len = sizeof(t.ipv4);

	if (p->protocol != PROTO_TCP && p->protocol != PROTO_UDP)
		return 0;
	if (p->family == FAMILY_IPV4) {
		t.ipv4.saddr = p->saddr[0];
		t.ipv4.daddr = p->daddr[0];
		t.ipv4.sport = p->sport_be;
		t.ipv4.dport = p->dport_be;
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr, 16);
		t.ipv6.sport = p->sport_be;
		t.ipv6.dport = p->dport_be;
		len = sizeof(t.ipv6);
	}
	/* The connection the proxy accepted (a listener on the original port is not it). */
	if (p->protocol == PROTO_TCP) {
		sk = bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		if (sk) {
			if (sk->state != BPF_TCP_LISTEN)
				return sk;
			bpf_sk_release(sk);
		}
	}
	/* The proxy's listener: it accepts a SYN and resets anything else. */
	if (p->family == FAMILY_IPV4) {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = bpf_htons(proxy_port);
	} else {
		__builtin_memset(t.ipv6.daddr, 0, 16);
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = bpf_htons(proxy_port);
	}
	if (p->protocol == PROTO_UDP)
		return bpf_sk_lookup_udp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
	return bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
}

/* Assigns `p` to the proxy's socket (tc ingress). 0, or -DROP_PROXY_LOOKUP_FAILED. */
static __always_inline int proxy_assign(struct __sk_buff *skb, const struct pkt *p,
					__u16 proxy_port)
{
	struct bpf_sock *sk = proxy_socket(skb, p, proxy_port);
	long r;

	if (!sk)
		return -DROP_PROXY_LOOKUP_FAILED;
	r = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (r < 0)
		return -DROP_PROXY_LOOKUP_FAILED;
	skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)proxy_port << 16);
	return 0;
}

/* Sends `p` to the proxy from the veth's egress hook (endpoint ingress): to the ingress of
 * `lo`, whose node program assigns it. The Ethernet destination becomes lo's (all zeros), or
 * the stack would take the packet for another host's. TC_ACT_REDIRECT, or
 * -DROP_PROXY_LOOKUP_FAILED when the proxy has no socket for it. */
static __always_inline int proxy_redirect_lo(struct __sk_buff *skb, const struct pkt *p,
					     __u16 proxy_port)
{
	struct bpf_sock *sk = proxy_socket(skb, p, proxy_port);
	const __u8 zero[6] = {};

	if (!sk)
		return -DROP_PROXY_LOOKUP_FAILED;
	bpf_sk_release(sk);
	if (bpf_skb_store_bytes(skb, 0, zero, sizeof(zero), 0) < 0)
		return -DROP_PROXY_LOOKUP_FAILED;
	skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)proxy_port << 16);
	return (int)bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
}

/* Sends a packet of a connection redirected to the L7 proxy on its way: assigned to the
 * proxy's socket here (endpoint egress: the host-side ingress hook), or through lo (endpoint
 * ingress: the egress hook cannot assign). TC_ACT_OK, TC_ACT_REDIRECT or
 * -DROP_PROXY_LOOKUP_FAILED (no proxy socket: fail closed). */
static __always_inline int to_proxy(struct __sk_buff *skb, __u8 dir, const struct pkt *p,
				    __u16 proxy_port)
{
	int r;

	if (dir == DIR_INGRESS)
		return proxy_redirect_lo(skb, p, proxy_port);
	r = proxy_assign(skb, p, proxy_port);
	return r < 0 ? r : TC_ACT_OK;
}

#endif /* CP_PROXY_H */
