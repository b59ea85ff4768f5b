/* Packet parsing: Ethernet, IPv4, IPv6 with extension headers, TCP/UDP/SCTP ports, ICMP/ICMPv6.
 *
 * Explicit choices (documented in Documentation/datapath.md):
 *  - ARP passes (neighbour resolution); IPv6 neighbour discovery (ICMPv6 133-137) passes.
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

#define PARSE_POLICY 0 /* subject to CT and policy */
#define PARSE_PASS 1   /* passes without policy (ARP, neighbour discovery) */

struct pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport_be;       /* CT source port (ICMP echo: identifier) */
	__u16 dport_be;       /* CT destination port (ICMP echo: identifier) */
	__u16 policy_port_be; /* port for the policy lookup (ICMP: type) */
	__u8 family;
	__u8 protocol;
	__u8 ct_able; /* opens a tracked connection when allowed */
	__u8 pad[3];
};

struct l4_hdr {
	__u8 b[8];
};

/* Reads ports / ICMP fields at l4_off. Returns PARSE_* or -reason. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 l4_off)
{
	struct l4_hdr h;

	p->ct_able = 1;
	switch (p->protocol) {
	case PROTO_TCP:
	case PROTO_UDP:
	case PROTO_SCTP:
		if (bpf_skb_load_bytes(skb, l4_off, &h, 4) < 0)
			return -DROP_CT_INVALID_HDR;
		__builtin_memcpy(&p->sport_be, &h.b[0], 2);
		__builtin_memcpy(&p->dport_be, &h.b[2], 2);
		p->policy_port_be = p->dport_be;
		return PARSE_POLICY;
	case PROTO_ICMP:
	case PROTO_ICMPV6:
		if (bpf_skb_load_bytes(skb, l4_off, &h, 8) < 0)
			return -DROP_CT_INVALID_HDR;
		p->policy_port_be = bpf_htons((__u16)h.b[0]);
		if (p->protocol == PROTO_ICMPV6 && h.b[0] >= 133 && h.b[0] <= 137)
			return PARSE_PASS;
		/* Echo request / reply are tracked by identifier; other messages are stateless. */
		if ((p->protocol == PROTO_ICMP && (h.b[0] == 8 || h.b[0] == 0)) ||
		    (p->protocol == PROTO_ICMPV6 && (h.b[0] == 128 || h.b[0] == 129))) {
			__builtin_memcpy(&p->sport_be, &h.b[4], 2);
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
struct ipv4_hdr_ {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	struct ipv4_hdr_ ip;
	__u32 ihl;

	if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip, sizeof(ip)) < 0)
		return -DROP_INVALID;
	ihl = ip.ver_ihl & 0x0f;
	if ((ip.ver_ihl >> 4) != 4 || ihl < 5)
		return -DROP_INVALID;
	if (bpf_ntohs(ip.frag_off) & 0x1fff)
		return -DROP_FRAG_NOSUPPORT;
	p->family = FAMILY_IPV4;
	p->protocol = ip.protocol;
	__builtin_memcpy(p->saddr, ip.saddr, 4);
	__builtin_memcpy(p->daddr, ip.daddr, 4);
	return parse_l4(skb, p, ETH_HLEN_ + ihl * 4);
}
#endif

#ifdef ENABLE_IPV6
struct ipv6_hdr_ {
	__u8 vtc_flow[4];
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt *p)
{
	struct ipv6_hdr_ ip6;
	__u32 off = ETH_HLEN_ + sizeof(ip6);
	__u8 nh;
	int i;

	if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip6, sizeof(ip6)) < 0)
		return -DROP_INVALID;
	if ((ip6.vtc_flow[0] & 0xf0) != 0x60)
		return -DROP_INVALID;
	p->family = FAMILY_IPV6;
	__builtin_memcpy(p->saddr, ip6.saddr, 16);
	__builtin_memcpy(p->daddr, ip6.daddr, 16);
	nh = ip6.nexthdr;

#pragma unroll
	for (i = 0; i < IPV6_MAX_EXTHDRS; i++) {
		__u8 ext[8];

		switch (nh) {
		case 0:  /* hop-by-hop */
		case 43: /* routing */
		case 60: /* destination options */
			if (bpf_skb_load_bytes(skb, off, ext, 2) < 0)
				return -DROP_INVALID_EXTHDR;
			nh = ext[0];
			off += ((__u32)ext[1] + 1) * 8;
			break;
		case 51: /* authentication header */
			if (bpf_skb_load_bytes(skb, off, ext, 2) < 0)
				return -DROP_INVALID_EXTHDR;
			nh = ext[0];
			off += ((__u32)ext[1] + 2) * 4;
			break;
		case 44: /* fragment */
			if (bpf_skb_load_bytes(skb, off, ext, 8) < 0)
				return -DROP_INVALID_EXTHDR;
			if ((((__u16)ext[2] << 8) | ext[3]) & 0xfff8)
				return -DROP_FRAG_NOSUPPORT;
			nh = ext[0];
			off += 8;
			break;
		default:
			goto l4;
		}
	}
	switch (nh) {
	case 0:
	case 43:
	case 60:
	case 51:
	case 44:
		return -DROP_INVALID_EXTHDR;
	}
l4:
	p->protocol = nh;
	return parse_l4(skb, p, off);
}
#endif

/* Fills `p` from the packet. Returns PARSE_* or -reason. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p)
{
	__u16 proto_be;

	if (bpf_skb_load_bytes(skb, 12, &proto_be, 2) < 0)
		return -DROP_INVALID;
	switch (bpf_ntohs(proto_be)) {
	case ETH_P_ARP_:
		return PARSE_PASS;
#ifdef ENABLE_IPV4
	case ETH_P_IP_:
		return parse_ipv4(skb, p);
#endif
#ifdef ENABLE_IPV6
	case ETH_P_IPV6_:
		return parse_ipv6(skb, p);
#endif
	default:
		return -DROP_UNKNOWN_L3;
	}
}

#endif /* CP_PARSE_H */
