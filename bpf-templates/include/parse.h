/* Packet parsing with direct packet access: Ethernet, IPv4, IPv6 with extension headers,
 * TCP/UDP/SCTP ports, ICMP/ICMPv6.
 *
 * Every header is read through pkt_ptr(), which checks `data + off + len <= data_end` on a
 * packet pointer (the verifier's bounds proof) and calls bpf_skb_pull_data only when the
 * packet is longer than its linear part; offsets are bounded (IHL <= 60, at most
 * IPV6_MAX_EXTHDRS extension headers of at most 2 KiB each).
 *
 * Explicit choices (documented in Documentation/datapath.md):
 *  - ARP passes (neighbour resolution); IPv6 neighbour discovery and router
 *    solicitation/advertisement (ICMPv6 133-137) pass, also on endpoints without IPv6.
 *  - Non-first IPv4/IPv6 fragments carry no L4 header: dropped, DROP_FRAG_NOSUPPORT (157).
 *  - Truncated or malformed L3 headers: DROP_INVALID (134); truncated L4: DROP_CT_INVALID_HDR (135);
 *    too many or malformed IPv6 extension headers: DROP_INVALID_EXTHDR (156).
 *  - Other ethertypes, and an IP family the endpoint does not have: DROP_UNKNOWN_L3 (139).
 *  - Other L4 protocols are policed by protocol number with port 0 (matched by L3-only rules). */
#ifndef CP_PARSE_H
#define CP_PARSE_H

#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define ETH_P_ARP_ 0x0806
#define ETH_P_IPV6_ 0x86DD
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define PROTO_SCTP 132
#define IPV6_MAX_EXTHDRS 6
#define IPV6_HLEN 40
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define PARSE_POLICY 0 /* subject to CT and policy */
#define PARSE_PASS 1   /* passes without policy (ARP, neighbour discovery) */

struct pkt {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport_be;       /* CT source port (ICMP echo: identifier) */
	__u16 dport_be;       /* CT destination port (ICMP echo: identifier) */
	__u16 policy_port_be; /* port for the policy lookup (ICMP: type) */
	__u8 family;
	__u8 protocol;
	__u8 ct_able;   /* opens a tracked connection when allowed */
	__u8 tcp_flags; /* TCP: the flags byte; 0 otherwise */
	__u8 pad[2];
};

/* skb->data / data_end, loaded where they are used: a value clang carried across blocks as a
 * 32-bit integer would be zero-extended with shifts, which the verifier refuses on pointers. */
#define SKB_DATA(skb) ((void *)(long)*(volatile __u32 *)&(skb)->data)
#define SKB_DATA_END(skb) ((void *)(long)*(volatile __u32 *)&(skb)->data_end)

/* `len` readable bytes at `off`, or 0 when the packet is shorter. Pulls non-linear data in
 * only when the linear part is too short. */
static __always_inline void *pkt_ptr(struct __sk_buff *skb, __u32 off, __u32 len)
{
	void *ptr = SKB_DATA(skb) + off;

	if (ptr + len <= SKB_DATA_END(skb))
		return ptr;
	if (skb->len < off + len || bpf_skb_pull_data(skb, off + len) < 0)
		return 0;
	ptr = SKB_DATA(skb) + off;
	if (ptr + len <= SKB_DATA_END(skb))
		return ptr;
	return 0;
}

/* ICMPv6 neighbour discovery, router solicitation and advertisement, redirect (133-137). */
static __always_inline int icmp6_nd(__u8 type)
{
	return type >= 133 && type <= 137;
}

/* Reads ports / ICMP fields at l4_off. Returns PARSE_* or -reason. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 l4_off)
{
	__u8 *h;

	p->ct_able = 1;
	switch (p->protocol) {
	case PROTO_TCP:
		h = pkt_ptr(skb, l4_off, 14);
		if (!h)
			return -DROP_CT_INVALID_HDR;
		p->tcp_flags = h[13];
		goto ports;
	case PROTO_UDP:
	case PROTO_SCTP:
		h = pkt_ptr(skb, l4_off, 4);
		if (!h)
			return -DROP_CT_INVALID_HDR;
	ports:
		p->sport_be = *(__u16 *)h;
		p->dport_be = *(__u16 *)(h + 2);
		p->policy_port_be = p->dport_be;
		return PARSE_POLICY;
	case PROTO_ICMP:
	case PROTO_ICMPV6:
		h = pkt_ptr(skb, l4_off, 8);
		if (!h)
			return -DROP_CT_INVALID_HDR;
		p->policy_port_be = bpf_htons((__u16)h[0]);
		if (p->protocol == PROTO_ICMPV6 && icmp6_nd(h[0]))
			return PARSE_PASS;
		/* Echo request / reply are tracked by identifier; other messages are stateless. */
		if ((p->protocol == PROTO_ICMP && (h[0] == 8 || h[0] == 0)) ||
		    (p->protocol == PROTO_ICMPV6 && (h[0] == 128 || h[0] == 129))) {
			p->sport_be = *(__u16 *)(h + 4);
			p->dport_be = p->sport_be;
		} else {
			p->ct_able = 0;
		}
		return PARSE_POLICY;
	default:
		return PARSE_POLICY;
	}
}

#ifdef ENABLE_IPV4
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	__u8 *ip = pkt_ptr(skb, ETH_HLEN_, 20);
	__u32 ihl;

	if (!ip)
		return -DROP_INVALID;
	ihl = ip[0] & 0x0f;
	if ((ip[0] >> 4) != 4 || ihl < 5)
		return -DROP_INVALID;
	if (bpf_ntohs(*(__u16 *)(ip + 6)) & 0x1fff)
		return -DROP_FRAG_NOSUPPORT;
	p->family = FAMILY_IPV4;
	p->protocol = ip[9];
	p->saddr[0] = *(__u32 *)(ip + 12);
	p->daddr[0] = *(__u32 *)(ip + 16);
	return parse_l4(skb, p, ETH_HLEN_ + ihl * 4);
}
#endif

/* Walks the IPv6 extension headers (bounded loop). Returns the L4 offset, or -reason. */
static __always_inline int ipv6_skip_exthdrs(struct __sk_buff *skb, __u8 *nexthdr)
{
	__u32 off = ETH_HLEN_ + IPV6_HLEN;
	__u8 nh = *nexthdr;
	int i;

	for (i = 0; i < IPV6_MAX_EXTHDRS; i++) {
		__u8 *ext;

		if (nh != 0 && nh != 43 && nh != 60 && nh != 51 && nh != 44) {
			*nexthdr = nh;
			return off;
		}
		/* Every extension header is at least 8 bytes long. */
		ext = pkt_ptr(skb, off, 8);
		if (!ext)
			return -DROP_INVALID_EXTHDR;
		if (nh == 44) {
			if (bpf_ntohs(*(__u16 *)(ext + 2)) & 0xfff8)
				return -DROP_FRAG_NOSUPPORT;
			off += 8;
		} else if (nh == 51) {
			off += ((__u32)ext[1] + 2) * 4;
		} else {
			off += ((__u32)ext[1] + 1) * 8;
		}
		nh = ext[0];
	}
	if (nh != 0 && nh != 43 && nh != 60 && nh != 51 && nh != 44) {
		*nexthdr = nh;
		return off;
	}
	return -DROP_INVALID_EXTHDR;
}

#ifdef ENABLE_IPV6
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt *p)
{
	__u32 *ip6 = pkt_ptr(skb, ETH_HLEN_, IPV6_HLEN);
	__u8 nh;
	int off;

	if (!ip6)
		return -DROP_INVALID;
	if ((((__u8 *)ip6)[0] & 0xf0) != 0x60)
		return -DROP_INVALID;
	p->family = FAMILY_IPV6;
	__builtin_memcpy(p->saddr, ip6 + 2, 16);
	__builtin_memcpy(p->daddr, ip6 + 6, 16);
	nh = ((__u8 *)ip6)[6];
	off = ipv6_skip_exthdrs(skb, &nh);
	if (off < 0)
		return off;
	p->protocol = nh;
	return parse_l4(skb, p, off);
}
#else
/* An endpoint without IPv6 still lets neighbour discovery and router solicitation /
 * advertisement pass (the kernel sends them on every interface); other IPv6 is dropped. */
static __always_inline int parse_ipv6_nd_only(struct __sk_buff *skb)
{
	__u8 *ip6 = pkt_ptr(skb, ETH_HLEN_, IPV6_HLEN);
	__u8 *icmp;
	__u8 nh;
	int off;

	if (!ip6 || (ip6[0] & 0xf0) != 0x60)
		return -DROP_UNKNOWN_L3;
	nh = ip6[6];
	off = ipv6_skip_exthdrs(skb, &nh);
	if (off < 0 || nh != PROTO_ICMPV6)
		return -DROP_UNKNOWN_L3;
	icmp = pkt_ptr(skb, off, 1);
	if (icmp && icmp6_nd(icmp[0]))
		return PARSE_PASS;
	return -DROP_UNKNOWN_L3;
}
#endif

/* Fills `p` from the packet. Returns PARSE_* or -reason. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p)
{
	__u8 *eth = pkt_ptr(skb, 0, ETH_HLEN_);

	if (!eth)
		return -DROP_INVALID;
	switch (bpf_ntohs(*(__u16 *)(eth + 12))) {
	case ETH_P_ARP_:
		return PARSE_PASS;
#ifdef ENABLE_IPV4
	case ETH_P_IP_:
		return parse_ipv4(skb, p);
#endif
	case ETH_P_IPV6_:
#ifdef ENABLE_IPV6
		return parse_ipv6(skb, p);
#else
		return parse_ipv6_nd_only(skb);
#endif
	default:
		return -DROP_UNKNOWN_L3;
	}
}

#endif /* CP_PARSE_H */
