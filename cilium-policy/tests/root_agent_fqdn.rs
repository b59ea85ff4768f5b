//! `toFQDNs` through the agent on real traffic (Documentation/l7.md, "DNS", "toFQDNs"):
//! dnsmasq serves `api.allowed.test` and `blocked.test` with the addresses of two HTTP servers
//! outside the cluster (namespaces the agent does not manage: `world`); the client's egress
//! policy allows DNS to dnsmasq for `*.allowed.test` only and HTTP to `toFQDNs:
//! *.allowed.test`. TCP to the first server is denied until the client resolves
//! `api.allowed.test` through the DNS proxy, allowed right after the answer (the proxy holds
//! the answer until the datapath has the address), `blocked.test` is refused and its server
//! stays unreachable, and the allow goes away once the record's TTL (2 s, with
//! `--tofqdns-min-ttl 0`) ran out.

mod agent_harness;

use agent_harness::dns::{resolve, Dnsmasq};
use agent_harness::http::{add_pods, curl, HttpServer};
use agent_harness::Agent;
use l7proxy::dns::message::RCODE_REFUSED;
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The record TTL dnsmasq gives.
const TTL: u32 = 2;

const POLICY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-fqdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: client}}
  egress:
  - toEndpoints: [{matchLabels: {id: dns}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchPattern: "*.allowed.test"}]
  - toFQDNs: [{matchPattern: "*.allowed.test"}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns-server, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: dns}}
  ingress:
  - fromEndpoints: [{}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
"#;

fn metric(agent: &Agent, name: &str) -> Option<u64> {
    let (_, text) = agent.request("GET", "/v1/metrics", "");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn root_fqdn_addresses_learned_from_dns_are_allowed_until_they_expire() {
    if !require_root("root_fqdn_addresses_learned_from_dns_are_allowed_until_they_expire") {
        return;
    }
    let node = node_netns();
    let ep = |n: u8| Endpoint::new(&node, Ipv4Addr::new(10, 95, 0, n));
    let (client, dns, api, blocked) = (ep(1), ep(53), ep(80), ep(81));
    let _dnsmasq = Dnsmasq::start(
        &dns.ns,
        &[IpAddr::from(dns.addr)],
        &[
            ("allowed.test", IpAddr::from(api.addr)),
            ("blocked.test", IpAddr::from(blocked.addr)),
        ],
        TTL,
    );
    let _api = HttpServer::start(&api.ns, api.addr.into(), 80, &[("index.html", "api")]);
    let _blocked = HttpServer::start(&blocked.ns, blocked.addr.into(), 80, &[("index.html", "b")]);
    let (api_url, blocked_url) = (
        format!("http://{}/", api.addr),
        format!("http://{}/", blocked.addr),
    );
    let short = Duration::from_millis(1500);
    // Without a policy both servers answer.
    assert_eq!(curl(&client.ns, &api_url, &[], short).0, 200);
    assert_eq!(curl(&client.ns, &blocked_url, &[], short).0, 200);

    let agent = Agent::start_in(&node, vec!["--tofqdns-min-ttl".into(), "0".into()]);
    add_pods(&agent, &[(1, "client", &client), (2, "dns", &dns)]);
    let file = agent.file("fqdn.yaml", POLICY);
    agent.ok(&["apply", "-f", &file]);

    assert_eq!(
        curl(&client.ns, &api_url, &[], short).0,
        0,
        "denied before the name is resolved"
    );

    let answer = resolve(&client.ns, dns.addr.into(), "api.allowed.test");
    let Some((0, records, _)) = &answer else {
        panic!(
            "no answer for api.allowed.test: {answer:?}\n{}",
            agent.log()
        );
    };
    assert_eq!(records[0].addr, IpAddr::from(api.addr));
    assert_eq!(records[0].ttl, TTL, "dnsmasq's TTL");
    let resolved = Instant::now();
    // Right after the answer: the datapath already allows the address.
    let (code, body) = curl(&client.ns, &api_url, &[], short);
    assert_eq!(
        (code, body.trim()),
        (200, "api"),
        "allowed right after resolving\n{}",
        agent.log()
    );
    assert!(resolved.elapsed() < Duration::from_secs(TTL.into()));
    assert_eq!(metric(&agent, "cilium_policy_fqdn_addresses"), Some(1));
    assert_eq!(metric(&agent, "cilium_policy_fqdn_learned_total"), Some(1));

    let refused = resolve(&client.ns, dns.addr.into(), "blocked.test");
    assert!(
        matches!(&refused, Some((RCODE_REFUSED, r, _)) if r.is_empty()),
        "blocked.test is refused: {refused:?}"
    );
    assert_eq!(
        curl(&client.ns, &blocked_url, &[], short).0,
        0,
        "the other server stays unreachable"
    );

    // After the TTL the address is forgotten: new connections are denied again.
    std::thread::sleep(Duration::from_secs(TTL.into()).saturating_sub(resolved.elapsed()));
    let limit = Instant::now() + Duration::from_secs(3);
    let mut code = 200;
    while code != 0 && Instant::now() < limit {
        code = curl(&client.ns, &api_url, &[], Duration::from_millis(700)).0;
    }
    assert_eq!(code, 0, "denied after expiry\n{}", agent.log());
    assert_eq!(metric(&agent, "cilium_policy_fqdn_addresses"), Some(0));
    assert_eq!(metric(&agent, "cilium_policy_fqdn_expired_total"), Some(1));

    // Resolving again allows it again.
    let again = resolve(&client.ns, dns.addr.into(), "api.allowed.test");
    assert!(matches!(&again, Some((0, _, _))), "{again:?}");
    assert_eq!(curl(&client.ns, &api_url, &[], short).0, 200);
}
