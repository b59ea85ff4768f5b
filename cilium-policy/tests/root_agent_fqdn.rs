//! `toFQDNs` through the agent on real traffic (Documentation/l7.md, "DNS", "toFQDNs"):
//! dnsmasq serves `api.allowed.test` and `blocked.test` with the addresses of two HTTP servers
//! outside the cluster (namespaces the agent does not manage: `world`); the client's egress
//! policy allows DNS to dnsmasq for `*.allowed.test` only and HTTP to `toFQDNs:
//! *.allowed.test`. TCP to the first server is denied until the client resolves
//! `api.allowed.test` through the DNS proxy, allowed right after the answer (the proxy holds
//! the answer until the datapath has the address), `blocked.test` is refused and its server
//! stays unreachable, and the allow goes away once the record's TTL (2 s, with
//! `--tofqdns-min-ttl 0`) ran out. The server is reached over IPv4 (A record) and IPv6
//! (AAAA record). A learned address outlives an agent restart (the state directory's
//! `fqdn.json`).

mod agent_harness;

use agent_harness::dns::{resolve, resolve_as, Dnsmasq};
use agent_harness::http::{add_pods, curl, HttpServer};
use agent_harness::Agent;
use l7proxy::dns::message::{RCODE_REFUSED, TYPE_AAAA};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The record TTL dnsmasq gives.
const TTL: u32 = 2;
/// The TTL of the record learned before the agent restarts.
const LONG_TTL: u32 = 60;

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
    let ep = |n: u8| {
        let v6: Ipv6Addr = format!("fd00:95::{n}").parse().unwrap();
        Endpoint::dual_stack(&node, Ipv4Addr::new(10, 95, 0, n), v6)
    };
    let (client, dns, api, blocked) = (ep(1), ep(53), ep(80), ep(81));
    let api6 = api.addr6.unwrap();
    let dnsmasq = Dnsmasq::start(
        &dns.ns,
        &[IpAddr::from(dns.addr)],
        &[
            ("allowed.test", IpAddr::from(api.addr)),
            ("allowed.test", IpAddr::from(api6)),
            ("blocked.test", IpAddr::from(blocked.addr)),
        ],
        TTL,
    );
    let any: IpAddr = "::".parse().unwrap();
    let _api = HttpServer::start(&api.ns, any, 80, &[("index.html", "api")]);
    let _blocked = HttpServer::start(&blocked.ns, any, 80, &[("index.html", "b")]);
    let urls = [format!("http://{}/", api.addr), format!("http://[{api6}]/")];
    let blocked_url = format!("http://{}/", blocked.addr);
    let short = Duration::from_millis(1500);
    let get = |url: &str, limit| curl(&client.ns, url, &[], limit).0;
    // Without a policy the servers answer.
    for url in urls.iter().chain([&blocked_url]) {
        assert_eq!(get(url, short), 200, "{url}");
    }

    let mut agent = Agent::start_in(&node, vec!["--tofqdns-min-ttl".into(), "0".into()]);
    add_pods(&agent, &[(1, "client", &client), (2, "dns", &dns)]);
    let file = agent.file("fqdn.yaml", POLICY);
    agent.ok(&["apply", "-f", &file]);

    for url in &urls {
        assert_eq!(
            get(url, short),
            0,
            "{url}: denied before the name is resolved"
        );
    }

    let mut resolved = Instant::now();
    for (qtype, want, url) in [
        (
            l7proxy::dns::message::TYPE_A,
            IpAddr::from(api.addr),
            &urls[0],
        ),
        (TYPE_AAAA, IpAddr::from(api6), &urls[1]),
    ] {
        let answer = resolve_as(&client.ns, dns.addr.into(), "api.allowed.test", qtype);
        let Some((0, records, _)) = &answer else {
            panic!(
                "no answer for api.allowed.test: {answer:?}\n{}",
                agent.log()
            );
        };
        assert_eq!(records[0].addr, want);
        assert_eq!(records[0].ttl, TTL, "dnsmasq's TTL");
        resolved = Instant::now();
        // Right after the answer: the datapath already allows the address.
        let (code, body) = curl(&client.ns, url, &[], short);
        assert_eq!(
            (code, body.trim()),
            (200, "api"),
            "{url}: allowed right after resolving\n{}",
            agent.log()
        );
        assert!(resolved.elapsed() < Duration::from_secs(TTL.into()));
    }
    assert_eq!(metric(&agent, "cilium_policy_fqdn_addresses"), Some(2));
    assert_eq!(metric(&agent, "cilium_policy_fqdn_learned_total"), Some(2));

    let refused = resolve(&client.ns, dns.addr.into(), "blocked.test");
    assert!(
        matches!(&refused, Some((RCODE_REFUSED, r, _)) if r.is_empty()),
        "blocked.test is refused: {refused:?}"
    );
    assert_eq!(
        get(&blocked_url, short),
        0,
        "the other server stays unreachable"
    );

    // After the TTL the addresses are forgotten: new connections are denied again.
    std::thread::sleep(Duration::from_secs(TTL.into()).saturating_sub(resolved.elapsed()));
    for url in &urls {
        let limit = Instant::now() + Duration::from_secs(3);
        let mut code = 200;
        while code != 0 && Instant::now() < limit {
            code = get(url, Duration::from_millis(700));
        }
        assert_eq!(code, 0, "{url}: denied after expiry\n{}", agent.log());
    }
    assert_eq!(metric(&agent, "cilium_policy_fqdn_addresses"), Some(0));
    assert_eq!(metric(&agent, "cilium_policy_fqdn_expired_total"), Some(2));

    // Resolving again allows it again.
    let again = resolve(&client.ns, dns.addr.into(), "api.allowed.test");
    assert!(matches!(&again, Some((0, _, _))), "{again:?}");
    assert_eq!(get(&urls[0], short), 200);

    // A record learned for a minute outlives the agent: the restarted agent restores it from
    // its state directory and keeps allowing it, without the client resolving again.
    drop(dnsmasq);
    let _dnsmasq = Dnsmasq::start(
        &dns.ns,
        &[IpAddr::from(dns.addr)],
        &[("allowed.test", IpAddr::from(api.addr))],
        LONG_TTL,
    );
    let again = resolve(&client.ns, dns.addr.into(), "api.allowed.test");
    assert!(
        matches!(&again, Some((0, r, _)) if r[0].ttl == LONG_TTL),
        "{again:?}"
    );
    wait_saved(&agent, api.addr.into(), LONG_TTL);
    agent.kill();
    assert_eq!(
        get(&urls[0], short),
        200,
        "enforced as it was while no agent runs"
    );
    agent.spawn();
    assert_eq!(
        metric(&agent, "cilium_policy_fqdn_addresses"),
        Some(1),
        "restored\n{}",
        agent.log()
    );
    assert_eq!(
        get(&urls[0], short),
        200,
        "still allowed by the restarted agent\n{}",
        agent.log()
    );
    assert_eq!(get(&blocked_url, short), 0, "and nothing else");
}

/// Waits until the agent's `fqdn.json` keeps `addr` for most of `ttl` (the agent writes it
/// within a second of a learn).
fn wait_saved(agent: &Agent, addr: IpAddr, ttl: u32) {
    let path = agent.dir.path.join("state").join("fqdn.json");
    let limit = Instant::now() + Duration::from_secs(5);
    loop {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let kept = std::fs::read(&path)
            .ok()
            .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
            .is_some_and(|v| {
                v["entries"].as_array().into_iter().flatten().any(|e| {
                    e["addr"] == addr.to_string()
                        && e["expires_unix_ms"].as_u64().unwrap_or(0)
                            > now_ms + u64::from(ttl) * 500
                })
            });
        if kept {
            return;
        }
        assert!(
            Instant::now() < limit,
            "{} never kept {addr}\n{}",
            path.display(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
