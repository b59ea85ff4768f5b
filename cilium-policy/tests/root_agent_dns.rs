//! The DNS proxy through the agent, on real processes in network namespaces
//! (Documentation/l7.md, "DNS"): `dnsmasq` serves test names in its own endpoint, a client
//! endpoint's egress policy allows DNS to it only for `*.allowed.test` (`rules.dns`). The
//! client's queries are redirected to the agent's DNS proxy: `www.allowed.test` is forwarded
//! and dnsmasq's answer relayed, `blocked.test` is answered `REFUSED` by the proxy, both from
//! the server's address; both show in `monitor --type l7`. IPv4 and IPv6, over UDP and over
//! TCP (one connection carrying an allowed and a refused query).

mod agent_harness;

use agent_harness::dns::{resolve, resolve_tcp, Dnsmasq};
use agent_harness::http::{add_pods, Monitor};
use agent_harness::Agent;
use l7proxy::dns::message::RCODE_REFUSED;
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const T: Duration = Duration::from_secs(3);

/// The client may ask the DNS server only for `*.allowed.test`; the server accepts DNS from
/// every endpoint (an ingress policy, so it tracks connections and its answers go back to the
/// proxy's upstream socket).
const POLICY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-dns, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: client}}
  egress:
  - toEndpoints: [{matchLabels: {id: dns}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
      rules:
        dns: [{matchPattern: "*.allowed.test"}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns-server, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: dns}}
  ingress:
  - fromEndpoints: [{}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
"#;

#[test]
fn root_dns_proxy_forwards_allowed_names_and_refuses_others() {
    if !require_root("root_dns_proxy_forwards_allowed_names_and_refuses_others") {
        return;
    }
    let node = node_netns();
    let ep = |n: u8| {
        let v6: Ipv6Addr = format!("fd00:94::{n}").parse().unwrap();
        Endpoint::dual_stack(&node, Ipv4Addr::new(10, 94, 0, n), v6)
    };
    let (client, dns, web) = (ep(1), ep(53), ep(80));
    let web_addrs = [IpAddr::from(web.addr), IpAddr::from(web.addr6.unwrap())];
    let dns_addrs = [IpAddr::from(dns.addr), IpAddr::from(dns.addr6.unwrap())];
    let _dnsmasq = Dnsmasq::start(
        &dns.ns,
        &dns_addrs,
        &[
            ("allowed.test", web_addrs[0]),
            ("blocked.test", "10.94.0.81".parse().unwrap()),
        ],
        30,
    );
    // Without a policy the server answers directly.
    for server in dns_addrs {
        let direct = resolve(&client.ns, server, "blocked.test");
        assert!(
            matches!(&direct, Some((0, r, _)) if r.len() == 1),
            "dnsmasq answers on {server}: {direct:?}"
        );
    }

    let agent = Agent::start(&node);
    add_pods(
        &agent,
        &[(1, "client", &client), (2, "dns", &dns), (3, "web", &web)],
    );
    let file = agent.file("dns.yaml", POLICY);
    agent.ok(&["apply", "-f", &file]);
    let mut l7 = Monitor::start(&agent, Some("l7"));
    let mut flows = Monitor::start_with(&agent, &["--type", "l7", "-o", "json"]);

    for server_ip in dns_addrs {
        let server = SocketAddr::new(server_ip, 53);
        let allowed = resolve(&client.ns, server_ip, "www.allowed.test");
        let Some((code, records, from)) = &allowed else {
            panic!(
                "{server_ip}: no answer for www.allowed.test: {}",
                agent.log()
            );
        };
        assert_eq!(*code, 0, "NOERROR");
        assert_eq!(*from, server, "the answer comes from the server's address");
        assert_eq!(
            records.iter().map(|r| r.addr).collect::<Vec<_>>(),
            vec![web_addrs[0]],
            "dnsmasq's record relayed"
        );
        assert_eq!(records[0].name, "www.allowed.test.");

        let refused = resolve(&client.ns, server_ip, "blocked.test");
        let Some((code, records, from)) = &refused else {
            panic!("{server_ip}: no answer for blocked.test: {}", agent.log());
        };
        assert_eq!(*code, RCODE_REFUSED, "refused by the proxy");
        assert!(records.is_empty());
        assert_eq!(*from, server, "the refusal comes from the server's address");

        // Over TCP, both queries on one connection.
        let tcp = resolve_tcp(
            &client.ns,
            server_ip,
            &["tcp.allowed.test", "tcp.blocked.test"],
        );
        assert_eq!(
            tcp.len(),
            2,
            "{server_ip}: TCP answers {tcp:?}: {}",
            agent.log()
        );
        assert_eq!(tcp[0].0, 0, "NOERROR over TCP");
        assert_eq!(
            tcp[0].1.iter().map(|r| r.addr).collect::<Vec<_>>(),
            vec![web_addrs[0]],
            "dnsmasq's record relayed over TCP"
        );
        assert_eq!(
            (tcp[1].0, tcp[1].1.len()),
            (RCODE_REFUSED, 0),
            "refused over TCP"
        );

        for (what, verdict) in [
            ("forwarded", "Forwarded www.allowed.test. A"),
            ("refused", "Denied blocked.test. A"),
            ("forwarded over TCP", "Forwarded tcp.allowed.test. A"),
            ("refused over TCP", "Denied tcp.blocked.test. A"),
        ] {
            let line = format!("verdict {verdict} to {server} => ");
            let seen = l7.wait_for(T, |l| l.contains(&line));
            assert!(seen.is_some(), "{what}: no `{line}` in {:?}", l7.seen);
        }

        // The same queries as Hubble flows with their `dns` layer.
        for (name, verdict, kind, rcode, ips, tcp) in [
            (
                "www.allowed.test.",
                "FORWARDED",
                "RESPONSE",
                0,
                vec![web_addrs[0]],
                false,
            ),
            ("blocked.test.", "DROPPED", "REQUEST", 5, vec![], false),
            (
                "tcp.allowed.test.",
                "FORWARDED",
                "RESPONSE",
                0,
                vec![web_addrs[0]],
                true,
            ),
            ("tcp.blocked.test.", "DROPPED", "REQUEST", 5, vec![], true),
        ] {
            let query = format!("\"query\":\"{name}\"");
            let dst = format!("\"destination\":\"{server_ip}\"");
            let Some(line) = flows.wait_for(T, |l| l.contains(&query) && l.contains(&dst)) else {
                panic!("no flow for {name} to {server_ip} in {:?}", flows.seen);
            };
            let f: serde_json::Value = serde_json::from_str(&line).expect("a flow");
            assert_eq!(f["verdict"], verdict, "{line}");
            assert_eq!(f["l7"]["type"], kind, "{line}");
            let dns = &f["l7"]["dns"];
            assert_eq!(dns["rcode"], rcode, "{line}");
            assert_eq!(dns["qtypes"], serde_json::json!(["A"]), "{line}");
            assert_eq!(dns["observation_source"], "proxy", "{line}");
            let got: Vec<String> = dns["ips"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            let want: Vec<String> = ips.iter().map(ToString::to_string).collect();
            assert_eq!(got, want, "{line}");
            let l4 = if tcp { "TCP" } else { "UDP" };
            assert_eq!(f["l4"][l4]["destination_port"], 53, "{line}");
            assert_eq!(f["source"]["pod_name"], "client", "{line}");
            // The policy behind the verdict: the DNS rule that allowed it, or the one it failed.
            let by = if verdict == "FORWARDED" {
                "egress_allowed_by"
            } else {
                "egress_denied_by"
            };
            assert_eq!(f[by][0]["name"], "client-dns", "{line}");
        }
    }
}
