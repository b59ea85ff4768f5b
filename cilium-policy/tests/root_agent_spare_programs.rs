//! Programs verified ahead (`--spare-programs`, agent/src/program_pool.rs): after the first
//! endpoint of a configuration the agent keeps two verified programs of it ready; the next
//! endpoint of that configuration takes one (counted `verified="ahead"` in the metrics,
//! parsed as Prometheus text) and enforces its own policy with its own address from the first
//! packet: its allowed client reaches it, a denied one does not, and traffic it sends from
//! another address is dropped. A restarted agent fills the pool from the endpoints it reloads.
//! With `--spare-programs 0` nothing is verified ahead.

mod agent_harness;

use agent_harness::Agent;
use runtime_loader::probe::{tcp_ok, Responder};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const POLICY: &str = r#"[{"endpointSelector": {"matchLabels": {"app": "web"}},
    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "good"}}],
                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;

/// The sample `name` (with label `verified` = `verified`, if given) of the agent's metrics.
fn metric(agent: &Agent, name: &str, verified: Option<&str>) -> f64 {
    let (status, text) = agent.request("GET", "/v1/metrics", "");
    assert_eq!(status, 200, "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && verified.is_none_or(|v| s.labels.get("verified") == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name} {verified:?} in {text}"))
}

/// New endpoints whose programs were verified (when created, ahead) since the agent started.
fn loads(agent: &Agent) -> (f64, f64) {
    let name = "cilium_policy_endpoint_program_loads_total";
    (
        metric(agent, name, Some("at_create")),
        metric(agent, name, Some("ahead")),
    )
}

/// Serves TCP/80 on `web` and checks that `good` reaches it and `bad` does not.
fn assert_enforced(web: &Endpoint, good: &Endpoint, bad: &Endpoint) -> Responder {
    let srv = Responder::start(&web.ns, web.addr, 80);
    assert!(tcp_ok(&good.ns, web.addr, 80, Duration::from_secs(5)));
    assert!(!tcp_ok(&bad.ns, web.addr, 80, Duration::from_secs(1)));
    srv
}

/// Waits up to 30 s for `ready` programs verified ahead.
fn wait_ready(agent: &Agent, ready: f64) {
    let t = Instant::now();
    while metric(agent, "cilium_policy_spare_programs", None) < ready {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no {ready} programs verified ahead after 30 s\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn root_a_new_endpoint_takes_a_program_verified_ahead() {
    if !require_root("root_a_new_endpoint_takes_a_program_verified_ahead") {
        return;
    }
    let node = node_netns();
    let ep = |last| Endpoint::new(&node, Ipv4Addr::new(10, 88, 0, last));
    let (web1, good, bad, web2) = (ep(1), ep(2), ep(3), ep(4));
    let mut agent = Agent::start(&node);
    agent.ok(&["policy", "import", &agent.file("p.json", POLICY)]);
    agent.add_endpoint(1, "app=web", &web1);
    agent.add_endpoint(2, "app=good", &good);
    agent.add_endpoint(3, "app=bad", &bad);
    let config: serde_json::Value =
        serde_json::from_str(&agent.request("GET", "/v1/config", "").1).unwrap();
    assert_eq!(config["spare-programs"], 2, "{config}");
    // The first endpoint of each configuration is verified when it is created; the third (the
    // clients' configuration again) takes a program verified ahead if the pool had one ready.
    let (created, ahead) = loads(&agent);
    assert!(
        created >= 2.0 && created + ahead == 3.0,
        "{created} {ahead}"
    );

    // Two configurations (web: ingress enforced; the clients: none), two programs each.
    wait_ready(&agent, 4.0);
    agent.add_endpoint(4, "app=web", &web2);
    assert_eq!(loads(&agent), (created, ahead + 1.0));
    let _srv = assert_enforced(&web2, &good, &bad);
    // Its source-address check holds its own address: a spoofed source is dropped.
    web2.ns
        .exec(&["ip", "addr", "add", "10.88.0.40/32", "dev", "eth0"]);
    let spoofed = agent.first_drop(
        || {
            web2.ns.run(|| {
                let s = std::net::UdpSocket::bind("10.88.0.40:0").unwrap();
                let _ = s.send_to(b"x", "10.88.0.2:9");
            })
        },
        "10.88.0.40",
    );
    assert!(!spoofed.contains("Policy denied"), "{spoofed}");
    // The pool tops up again.
    wait_ready(&agent, 4.0);

    // A restarted agent fills it from the endpoints it reloads, before any new one comes.
    agent.kill();
    agent.spawn();
    wait_ready(&agent, 4.0);
    let web3 = ep(5);
    agent.add_endpoint(5, "app=web", &web3);
    assert_eq!(loads(&agent), (0.0, 1.0));
    let _srv3 = assert_enforced(&web3, &good, &bad);
}

#[test]
fn root_no_programs_are_verified_ahead_with_zero_spares() {
    if !require_root("root_no_programs_are_verified_ahead_with_zero_spares") {
        return;
    }
    let node = node_netns();
    let web = Endpoint::new(&node, Ipv4Addr::new(10, 88, 1, 1));
    let agent = Agent::start_in(&node, vec!["--spare-programs".into(), "0".into()]);
    agent.ok(&["policy", "import", &agent.file("p.json", POLICY)]);
    agent.add_endpoint(1, "app=web", &web);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(&agent, "cilium_policy_spare_programs", None), 0.0);
    assert_eq!(
        metric(
            &agent,
            "cilium_policy_endpoint_program_loads_total",
            Some("at_create")
        ),
        1.0
    );
}
