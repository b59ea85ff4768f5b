/* Node program of the L7 redirect, attached once per node on the tc ingress hook of `lo`: a
 * packet an endpoint's cil_to_container redirected there (endpoint ingress, where the veth's
 * egress hook cannot assign sockets) carries MARK_MAGIC_TO_PROXY | proxy port << 16 and is
 * assigned to the proxy's socket here (proxy.h). Other loopback traffic passes untouched; a
 * marked packet without a proxy socket (the proxy went away since the endpoint checked) is
 * dropped, never delivered to whatever else listens on the node. */
#define ENABLE_IPV4
#define ENABLE_IPV6
#include "bpf_api.h"
#include "layout.h"
#include "parse.h"
#include "proxy.h"

SEC("classifier")
int cil_lo_to_proxy(struct __sk_buff *skb)
{
	__u32 mark = skb->mark;
	struct pkt p = {};

	if (!mark_is(mark, MARK_MAGIC_TO_PROXY) || !(mark >> 16))
		return TC_ACT_OK;
	if (parse_packet(skb, &p) != PARSE_POLICY)
		return TC_ACT_SHOT;
	if (proxy_assign(skb, &p, mark >> 16) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Apache-2.0";
