//! Faults and lifecycle of the agent on real packets: SIGKILL and restart (pinned state keeps
//! enforcing, allowed flows never drop), a policy too large for the map (refused, previous
//! enforcement intact), revocation of established flows, established connections kept across
//! a restart, concurrent clients, and an unprivileged user trying the socket.

mod agent_harness;

use agent_harness::{app1_from_on, setup};
use runtime_loader::probe::{tcp_ok, TcpSession, PASS_WAIT};
use runtime_loader::testkit::{require_root, Endpoint};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_millis(800);

#[test]
fn root_agent_sigkill_and_restart_keep_enforcing() {
    if !require_root("root_agent_sigkill_and_restart_keep_enforcing") {
        return;
    }
    let (s, mut agent) = setup(92);
    let f = agent.file("allow-app2.json", &app1_from_on(&["app2"], 80));
    agent.ok(&["policy", "import", &f]);
    assert!(
        tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT) && !tcp_ok(&s.app3.ns, s.app1.addr, 80, T)
    );

    // Allowed traffic keeps flowing through the kill and the restart; denied stays denied.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU32::new(0));
    let prober = {
        let (stop, failures, path, dst) = (
            stop.clone(),
            failures.clone(),
            s.app2.ns.path(),
            s.app1.addr,
        );
        std::thread::spawn(move || {
            runtime_loader::testkit::enter_netns(&path).unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let ok = std::net::TcpStream::connect_timeout(&(dst, 80).into(), T).is_ok();
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    agent.kill();
    assert!(
        !tcp_ok(&s.app3.ns, s.app1.addr, 80, T),
        "no agent: pinned state still denies app3"
    );
    agent.spawn();
    let list = agent.ok(&["endpoint", "list", "-o", "json"]);
    assert!(list.contains("\"ready\""), "{list}");
    stop.store(true, Ordering::Relaxed);
    let probes = prober.join().unwrap();
    assert!(probes > 10, "only {probes} probes ran");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "allowed connections failed across the restart"
    );
    assert!(
        !tcp_ok(&s.app3.ns, s.app1.addr, 80, T),
        "restarted agent still denies app3"
    );

    // SIGKILL in the middle of a change: after a restart, enforcement matches the revision the
    // agent reports (the change either happened whole or not at all).
    let g = agent.file("allow-app3.json", &app1_from_on(&["app3"], 80));
    let mut child = std::process::Command::new(agent_harness::BIN)
        .arg("--api-socket")
        .arg(&agent.socket)
        .args(["policy", "import", &g])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(15));
    agent.kill();
    let _ = child.wait();
    agent.spawn();
    let policy = agent.ok(&["policy", "get", "-o", "json"]);
    let has_app3 = policy.contains("allow-app3.json");
    assert_eq!(
        tcp_ok(
            &s.app3.ns,
            s.app1.addr,
            80,
            if has_app3 { PASS_WAIT } else { T }
        ),
        has_app3,
        "enforcement matches the persisted policy\n{policy}"
    );
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    drop(s.node);
}

#[test]
fn root_agent_refuses_a_policy_that_overflows_the_map() {
    if !require_root("root_agent_refuses_a_policy_that_overflows_the_map") {
        return;
    }
    let (s, agent) = setup(93);
    let f = agent.file("allow-app2.json", &app1_from_on(&["app2"], 80));
    let before = agent.ok(&["policy", "import", &f]);
    // 40 CIDR peers (one identity each) × 13 toPorts entries of 40 ports (the front end's
    // limit per entry): 20,800 entries, more than the 16,384-entry policy map.
    let cidrs: Vec<String> = (0..40).map(|i| format!(r#""172.16.{i}.0/24""#)).collect();
    let to_ports: Vec<String> = (0..13)
        .map(|b| {
            let ports: Vec<String> = (0..40)
                .map(|p| format!(r#"{{"port": "{}", "protocol": "TCP"}}"#, 20000 + b * 40 + p))
                .collect();
            format!(r#"{{"ports": [{}]}}"#, ports.join(","))
        })
        .collect();
    let big = format!(
        r#"[{{"endpointSelector": {{"matchLabels": {{"id": "app1"}}}},
             "ingress": [{{"fromCIDR": [{}], "toPorts": [{}]}}]}}]"#,
        cidrs.join(","),
        to_ports.join(",")
    );
    let g = agent.file("too-big.json", &big);
    let out = agent.cli(&["policy", "import", &g]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("endpoint 1") && err.contains("16384"), "{err}");
    assert!(
        tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT),
        "previous enforcement intact"
    );
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    agent.assert_unchanged_since(&before, "too-big.json");
}

#[test]
fn root_agent_revocation_stops_established_flows() {
    if !require_root("root_agent_revocation_stops_established_flows") {
        return;
    }
    let (s, agent) = setup(94);
    let f = agent.file("p.json", &app1_from_on(&["app2"], 80));
    agent.ok(&["policy", "import", &f]);
    let mut session = TcpSession::open(&s.app2.ns, s.app1.addr, 80, T).expect("connect");
    assert!(session.exchange(T));
    // Replace the policy: app2 may now only use port 81. The open connection stops too.
    std::fs::write(&f, app1_from_on(&["app2"], 81)).unwrap();
    agent.ok(&["policy", "import", &f]);
    assert!(
        !session.exchange(T),
        "an established connection of a revoked policy stops"
    );
    assert!(!tcp_ok(&s.app2.ns, s.app1.addr, 80, T));
}

/// An established connection survives the agent's SIGKILL and restart: the node's CT tables and
/// the endpoint's nonce are pinned, so the restarted agent's programs find its entry. Checked
/// on the maps (the connection's entry is still there, under the nonce the endpoint's state
/// holds after the restart: a packet of either side finds it) and on packets (app1 may send
/// nothing of its own, an empty egress rule, so its answers pass only as the replies of a
/// tracked connection; app2's packets, which policy allows, would open a lost entry again).
#[test]
fn root_agent_restart_keeps_established_connections() {
    if !require_root("root_agent_restart_keeps_established_connections") {
        return;
    }
    let (s, mut agent) = setup(88);
    let _srv2 = runtime_loader::probe::Responder::start(&s.app2.ns, s.app2.addr, 80);
    let mut policy: serde_json::Value = serde_json::from_str(&app1_from_on(&["app2"], 80)).unwrap();
    policy[0]["egress"] = serde_json::json!([{}]);
    let f = agent.file("replies-only.json", &policy.to_string());
    agent.ok(&["policy", "import", &f]);
    let mut session = TcpSession::open(&s.app2.ns, s.app1.addr, 80, PASS_WAIT).expect("connect");
    assert!(session.exchange(T));
    assert!(
        !tcp_ok(&s.app1.ns, s.app2.addr, 80, T),
        "app1 opens nothing: its answers are replies only"
    );
    let owners = agent.tcp_ct_owners();
    assert!(!owners.is_empty(), "the connection is tracked");

    agent.kill();
    agent.spawn();
    let list = agent.ok(&["endpoint", "list", "-o", "json"]);
    assert!(list.contains("\"ready\""), "{list}");
    let after = agent.tcp_ct_owners();
    let nonces: Vec<u32> = agent.ep_states().iter().map(|st| st.ep_nonce).collect();
    assert!(
        owners
            .iter()
            .all(|o| after.contains(o) && nonces.contains(&o.1)),
        "entries before {owners:?}, after {after:?}, endpoints' nonces {nonces:?}"
    );
    for round in 0..3 {
        assert!(
            session.exchange(T),
            "round {round}: the connection opened before the restart still answers"
        );
    }
    assert!(!tcp_ok(&s.app1.ns, s.app2.addr, 80, T));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
}

#[test]
fn root_agent_concurrent_clients_and_socket_permissions() {
    if !require_root("root_agent_concurrent_clients_and_socket_permissions") {
        return;
    }
    let (s, agent) = setup(95);
    let clients: Vec<Endpoint> = (0..6)
        .map(|i| Endpoint::new(&s.node, Ipv4Addr::new(10, 95, 1, i + 1)))
        .collect();
    let agent = Arc::new(agent);
    let threads: Vec<_> = (0..6u16)
        .map(|i| {
            let a = agent.clone();
            let iface = clients[i as usize].host.clone();
            std::thread::spawn(move || {
                let f = a.file(
                    &format!("c{i}.json"),
                    &app1_from_on(&[&format!("client{i}")], 1000 + i),
                );
                a.ok(&["policy", "import", &f]);
                a.ok(&[
                    "endpoint",
                    "add",
                    "--id",
                    &(100 + i).to_string(),
                    "--labels",
                    &format!("id=client{i}"),
                    "--iface",
                    &iface,
                ]);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st: serde_json::Value = serde_json::from_str(&agent.ok(&["status", "-o", "json"])).unwrap();
    // 3 setup endpoints, then 6 policies and 6 endpoints: one revision each.
    assert_eq!(st["policy_revision"], 3 + 12, "{st}");
    assert_eq!(st["endpoints"], 3 + 6, "{st}");
    let policy = agent.ok(&["policy", "get", "-o", "json"]);
    for i in 0..6 {
        assert!(policy.contains(&format!("c{i}.json")), "{policy}");
    }
    // The socket is 0660 root:root: another user cannot connect.
    let out = std::process::Command::new(agent_harness::BIN)
        .arg("--api-socket")
        .arg(&agent.socket)
        .arg("status")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(s);
}
