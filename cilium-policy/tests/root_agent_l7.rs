//! L7 failure modes and variants through the agent, on real processes in network namespaces
//! (Documentation/l7.md, "In the agent"): the seed's ingress rule over IPv4 and IPv6; a
//! pattern the proxy cannot compile refused at apply with the rule's place while the other
//! rules stay enforced; the proxy's listeners dying (fail closed with drop reason 178, then
//! restored by the supervisor); the agent killed with a connection open and restarted; an
//! egress rule with a path regex and a header, over IPv4 and IPv6; a WebSocket upgrade judged
//! and then spliced; connections established before an L7 rule covered their port reset
//! rather than left hanging.

mod agent_harness;

use agent_harness::http::{add_pods, curl, curl_until, HttpServer, Monitor};
use agent_harness::Agent;
use runtime_loader::probe::{Responder, TcpSession};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(3);

const FILES: &[(&str, &str)] = &[
    ("public", "public page\n"),
    ("private", "private page\n"),
    ("docs/a.txt", "a\n"),
];

/// The seed's L7 rule as a YAML CNP.
const SEED_L7: &str =
    include_str!("../../testdata/getting-started/kubernetes/l3_l4_l7_policy.yaml");

/// Another rule on app1 whose path pattern is far too large for the proxy to compile.
const TOO_LARGE: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule2, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: app1}}
  ingress:
  - fromEndpoints: [{matchLabels: {id: app3}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - path: "(a{1000}){1000}"
"#;

/// One `GET path` on a kept-alive connection: the status, after reading the whole reply.
fn exchange(s: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<u16> {
    let req = format!("GET /{path} HTTP/1.1\r\nHost: app1\r\n\r\n");
    s.get_mut().write_all(req.as_bytes())?;
    let mut status = 0;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if status == 0 {
            status = line
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    s.read_exact(&mut vec![0; len])?;
    Ok(status)
}

#[test]
fn root_l7_refused_pattern_proxy_crash_and_agent_restart() {
    if !require_root("root_l7_refused_pattern_proxy_crash_and_agent_restart") {
        return;
    }
    let node = node_netns();
    let ep = |n: u8| {
        let v6 = format!("fd00:93::{n}").parse().unwrap();
        Endpoint::dual_stack(&node, Ipv4Addr::new(10, 93, 0, n), v6)
    };
    let (app1, app2, app3) = (ep(11), ep(12), ep(13));
    let _web = HttpServer::start(&app1.ns, "::".parse().unwrap(), 80, FILES);
    let mut agent = Agent::start(&node);
    add_pods(
        &agent,
        &[(1, "app1", &app1), (2, "app2", &app2), (3, "app3", &app3)],
    );
    let seed = agent.file("l3_l4_l7_policy.yaml", SEED_L7);
    agent.ok(&["apply", "-f", &seed]);
    let url = |path: &str| format!("http://{}/{path}", app1.addr);
    let get = |path: &str| curl(&app2.ns, &url(path), &[], T).0;
    assert_eq!(
        (get("public"), get("private")),
        (200, 403),
        "{}",
        agent.log()
    );
    // The same over IPv6 (the ingress listener on [::1]).
    let url6 = |path: &str| format!("http://[{}]/{path}", app1.addr6.unwrap());
    let get6 = |path: &str| curl(&app2.ns, &url6(path), &[], T);
    assert_eq!(get6("public"), (200, "public page\n".into()));
    assert_eq!(get6("private"), (403, "Access denied".into()));
    assert_eq!(curl(&app3.ns, &url6("public"), &[], T).0, 0, "app3 cut off");

    // Refused at apply, with the rule's file and line; the rules in force stay enforced.
    let big = agent.file("too_large.yaml", TOO_LARGE);
    let out = agent.cli(&["apply", "-f", &big]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("(a{1000}){1000}"), "{err}");
    // The API's diagnostics name the rule's file:line:column.
    let body = serde_json::json!({"sources": [{"path": big, "text": TOO_LARGE}], "wait": true});
    let (status, reply) = agent.request("PUT", "/v1/policy", &body.to_string());
    assert_eq!(status, 400, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let diag = reply["diagnostics"][0].as_str().unwrap_or_default();
    assert!(
        diag.starts_with(&format!("{big}:7:5: HTTP path `(a{{1000}}){{1000}}`")),
        "{reply}"
    );
    assert!(
        !agent.ok(&["policy", "get"]).contains("rule2"),
        "not stored"
    );
    assert_eq!((get("public"), get("private")), (200, 403));

    // The listeners die: redirected connections fail closed (dropped, reason 178, shown by
    // `monitor`) until the supervisor binds them again.
    let mut drops = Monitor::start(&agent, Some("drop"));
    let (status, body) = agent.request("POST", "/v1/debug/proxy/crash", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        curl(&app2.ns, &url("public"), &[], Duration::from_millis(500)).0,
        0,
        "nothing answers while the proxy is down"
    );
    let line = drops
        .wait_for(T, |l| l.contains("Proxy lookup failed"))
        .unwrap_or_else(|| panic!("no reason-178 drop: {:?}", drops.seen));
    assert!(line.contains(&format!("-> {}:80 tcp", app1.addr)), "{line}");
    drop(drops);
    let (status, _) = curl_until(&app2.ns, &url("public"), &[], 200, Duration::from_secs(10));
    assert_eq!(status, 200, "restored: {}", agent.log());
    assert!(
        agent.log().contains("the L7 proxy's listener died"),
        "logged"
    );
    let (_, proxy) = agent.request("GET", "/v1/proxy", "");
    assert!(proxy.contains("\"listening\":true"), "{proxy}");

    // The node's `lo` program removed (tc mode: its filter deleted): the next change finds
    // it missing and installs it again.
    let lo_filters = || agent_harness::tc_filters(&node, "lo", "ingress");
    assert!(lo_filters().contains("handle 0x1"), "{}", lo_filters());
    agent_harness::delete_own_filter(&node, "lo", "ingress");
    let t = Instant::now();
    while curl(&app2.ns, &url("public"), &[], Duration::from_millis(300)).0 != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "ingress redirects need the lo program"
        );
    }
    let other = agent.file("other.yaml", &TOO_LARGE.replace("(a{1000}){1000}", "/x"));
    agent.ok(&["apply", "-f", &other]);
    assert!(
        lo_filters().contains("handle 0x1"),
        "installed again: {}",
        agent.log()
    );
    assert_eq!((get("public"), get("private")), (200, 403));

    // The agent is killed with a kept-alive connection open: the connection ends (the
    // kernel closes the proxy's sockets), it does not hang; new connections fail closed
    // until the restarted agent listens again.
    let dst = SocketAddr::new(app1.addr.into(), 80);
    let mut conn = app2.ns.run(move || {
        let s = TcpStream::connect_timeout(&dst, T).expect("connect through the proxy");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BufReader::new(s)
    });
    assert_eq!(exchange(&mut conn, "public").unwrap(), 200);
    assert_eq!(
        exchange(&mut conn, "private").unwrap(),
        403,
        "same connection"
    );
    agent.kill();
    let t = Instant::now();
    let after = exchange(&mut conn, "public");
    assert!(after.is_err(), "the proxied connection ended: {after:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "without hanging");
    assert_eq!(
        curl(&app2.ns, &url("public"), &[], Duration::from_millis(500)).0,
        0,
        "no proxy, no pass"
    );
    agent.spawn();
    assert_eq!(
        curl_until(&app2.ns, &url("private"), &[], 403, Duration::from_secs(10)).0,
        403,
        "the restarted agent enforces the same L7 rule: {}",
        agent.log()
    );
    assert_eq!(get("public"), 200);
}

/// app2's egress to app1: HTTP on 80 only `GET /docs/NAME.txt` with `X-Token: yes`, WebSocket
/// upgrades on 8080 only at `/ws`. app1 admits app2 (so it tracks connections and the
/// proxy's upstream replies find their way back).
const EGRESS: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: app2-egress, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: app2}}
  egress:
  - toEndpoints: [{matchLabels: {id: app1}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: "/docs/[a-z]+\\.txt"
          headers: ["X-Token: yes"]
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - path: /ws
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: app1-ingress, namespace: default}
spec:
  endpointSelector: {matchLabels: {id: app1}}
  ingress:
  - fromEndpoints: [{matchLabels: {id: app2}}]
"#;

/// A WebSocket handshake to `dst` for `path`: the reply's head, and the echo of one frame
/// when the upgrade was accepted.
fn websocket(dst: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&dst, T).expect("connect");
    s.set_read_timeout(Some(T)).unwrap();
    let req = format!(
        "GET /{path} HTTP/1.1\r\nHost: app1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        if r.read_line(&mut head).unwrap_or(0) == 0 {
            break;
        }
    }
    if !head.starts_with("HTTP/1.1 101") {
        return (head, Vec::new());
    }
    let frame = b"\x81\x05hello";
    r.get_mut().write_all(frame).unwrap();
    let mut echo = vec![0; frame.len()];
    r.read_exact(&mut echo).unwrap();
    (head, echo)
}

#[test]
fn root_l7_egress_regex_and_header_ipv6_and_websocket() {
    if !require_root("root_l7_egress_regex_and_header_ipv6_and_websocket") {
        return;
    }
    let node = node_netns();
    let app1 = Endpoint::dual_stack(
        &node,
        Ipv4Addr::new(10, 94, 0, 11),
        "fd00:94::11".parse().unwrap(),
    );
    let app2 = Endpoint::dual_stack(
        &node,
        Ipv4Addr::new(10, 94, 0, 12),
        "fd00:94::12".parse().unwrap(),
    );
    let _web = HttpServer::start(&app1.ns, "::".parse().unwrap(), 80, FILES);
    let _ws = HttpServer::websocket_echo(&app1.ns, app1.addr, 8080);
    let agent = Agent::start(&node);
    add_pods(&agent, &[(1, "app1", &app1), (2, "app2", &app2)]);
    let policy = agent.file("egress.yaml", EGRESS);
    agent.ok(&["apply", "-f", &policy]);
    let v6 = app1.addr6.unwrap();
    for host in [app1.addr.to_string(), format!("[{v6}]")] {
        let get = |path: &str, headers: &[&str]| {
            curl(&app2.ns, &format!("http://{host}/{path}"), headers, T)
        };
        let token = ["-H", "X-Token: yes"];
        assert_eq!(
            get("docs/a.txt", &token),
            (200, "a\n".into()),
            "{host}: path and header match: {}",
            agent.log()
        );
        assert_eq!(get("docs/a.txt", &[]).0, 403, "{host}: no header");
        assert_eq!(
            get("docs/a.txt", &["-H", "X-Token: no"]).0,
            403,
            "{host}: another value"
        );
        assert_eq!(get("private", &token).0, 403, "{host}: path outside");
        assert_eq!(
            get("docs/a.txt", &["-X", "POST", "-H", "X-Token: yes"]).0,
            403,
            "{host}: method"
        );
    }

    // An upgrade is judged like any request; once allowed, the stream is spliced through.
    let dst = SocketAddr::new(IpAddr::V4(app1.addr), 8080);
    let (head, echo) = app2.ns.run(move || websocket(dst, "ws"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the server's accept key: {head}"
    );
    assert_eq!(echo, b"\x81\x05hello", "frames flow after the upgrade");
    let (head, _) = app2.ns.run(move || websocket(dst, "other"));
    assert!(head.starts_with("HTTP/1.1 403"), "denied upgrade: {head}");
}

/// A connection established before an L7 rule covers its port is reset at its next packet
/// (the proxy's listener answers it), so its client does not hang; new connections are
/// proxied. IPv4 and IPv6.
#[test]
fn root_l7_connections_established_before_the_rule_are_reset() {
    if !require_root("root_l7_connections_established_before_the_rule_are_reset") {
        return;
    }
    let node = node_netns();
    let app1 = Endpoint::dual_stack(
        &node,
        Ipv4Addr::new(10, 95, 0, 11),
        "fd00:95::11".parse().unwrap(),
    );
    let app2 = Endpoint::dual_stack(
        &node,
        Ipv4Addr::new(10, 95, 0, 12),
        "fd00:95::12".parse().unwrap(),
    );
    let v6 = IpAddr::V6(app1.addr6.unwrap());
    // A TCP echo on 80 for the long-lived connections, HTTP on 8000 for the new ones.
    let _echo = [
        Responder::start(&app1.ns, app1.addr, 80),
        Responder::start(&app1.ns, v6, 80),
    ];
    let agent = Agent::start(&node);
    add_pods(&agent, &[(1, "app1", &app1), (2, "app2", &app2)]);
    // app1 already enforces ingress (app2 allowed on 80): its connections are tracked.
    let l4_only = SEED_L7
        .split("      rules:")
        .next()
        .expect("the seed rule")
        .to_string();
    assert!(!l4_only.contains("http"), "{l4_only}");
    let l4 = agent.file("l3_l4_policy.yaml", &l4_only);
    agent.ok(&["apply", "-f", &l4]);
    let mut sessions: Vec<TcpSession> = [IpAddr::V4(app1.addr), v6]
        .into_iter()
        .map(|dst| TcpSession::open(&app2.ns, dst, 80, T).expect("connect"))
        .collect();
    for s in &mut sessions {
        assert!(s.exchange(T), "established before the L7 rule");
    }
    let seed = agent.file("l3_l4_l7_policy.yaml", SEED_L7);
    agent.ok(&["apply", "-f", &seed]);
    for (s, family) in sessions.iter_mut().zip(["IPv4", "IPv6"]) {
        let t = Instant::now();
        let err = s.exchange_err(Duration::from_secs(10));
        assert_eq!(
            err.map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionReset),
            "{family}: reset, not served unfiltered nor left hanging"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{family}: at once");
    }
    // The connection opened now goes through the proxy: the echo is not HTTP, so the proxy
    // closes it.
    let mut again = TcpSession::open(&app2.ns, app1.addr, 80, T).expect("connect");
    assert!(!again.exchange(T), "new connections are the proxy's");
}
