//! The DNS proxy through the agent, on real processes in network namespaces
//! (Documentation/l7.md, "DNS"): `dnsmasq` serves test names in its own endpoint, a client
//! endpoint's egress policy allows DNS to it only for `*.allowed.test` (`rules.dns`). The
//! client's queries are redirected to the agent's DNS proxy: `www.allowed.test` is forwarded
//! and dnsmasq's answer relayed, `blocked.test` is answered `REFUSED` by the proxy, both from
//! the server's address; both show in `monitor --type l7`. IPv4 and IPv6.

mod agent_harness;

use agent_harness::http::{add_pods, Monitor};
use agent_harness::Agent;
use l7proxy::dns::message::{parse_answer, rcode, Record, RCODE_REFUSED, TYPE_A};
use runtime_loader::testkit::{node_netns, require_root, Endpoint, Netns};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
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
    - ports: [{port: "53", protocol: UDP}]
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
    - ports: [{port: "53", protocol: UDP}]
"#;

/// dnsmasq in `ns`, answering for `allowed.test` and `blocked.test` (and their subdomains)
/// with fixed addresses, logging queries to stderr.
struct Dnsmasq(Child);

impl Dnsmasq {
    fn start(ns: &Netns, listen: &[IpAddr], records: &[(&str, IpAddr)]) -> Dnsmasq {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--port=53",
            "--local-ttl=30",
            "--user=root",
        ])
        .args(listen.iter().map(|a| format!("--listen-address={a}")))
        .args(records.iter().map(|(n, a)| format!("--address=/{n}/{a}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        agent_harness::in_netns(&mut cmd, &ns.path());
        let child = cmd.spawn().expect("dnsmasq (apt-get install dnsmasq-base)");
        std::thread::sleep(Duration::from_millis(300));
        Dnsmasq(child)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A query for `name` (type A, id 0x4242, RD).
fn query(name: &str) -> Vec<u8> {
    let mut m = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, TYPE_A as u8, 0, 1]);
    m
}

/// What the client got for `name` from `server`: the rcode, the records, and the address the
/// answer came from; None without an answer within [`T`].
type Resolved = Option<(u8, Vec<Record>, SocketAddr)>;

fn resolve(ns: &Netns, server: IpAddr, name: &'static str) -> Resolved {
    ns.run(move || {
        let any = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(any).ok()?;
        s.set_read_timeout(Some(T)).ok()?;
        let dst = SocketAddr::new(server, 53);
        s.send_to(&query(name), dst).ok()?;
        let mut buf = [0u8; 4096];
        let (n, from) = s.recv_from(&mut buf).ok()?;
        let (_, records) = parse_answer(&buf[..n]).ok()?;
        Some((rcode(&buf[..n])?, records, from))
    })
}

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

        for (what, verdict) in [
            ("forwarded", "Forwarded www.allowed.test. A"),
            ("refused", "Denied blocked.test. A"),
        ] {
            let line = format!("verdict {verdict} to {server} => ");
            let seen = l7.wait_for(T, |l| l.contains(&line));
            assert!(seen.is_some(), "{what}: no `{line}` in {:?}", l7.seen);
        }
    }
}
