/* The floor of the per-packet benchmark: a classifier that does nothing. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

__attribute__((section("classifier"), used)) int cil_from_container(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

__attribute__((section("classifier"), used)) int cil_to_container(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char _license[] __attribute__((section("license"), used)) = "Apache-2.0";
