//! Three nodes on one etcd, on real packets. Each node is a network namespace with its own
//! agent (datapath, private bpffs) and its pods in child namespaces; the nodes are routed to
//! one another through a bridge in a fabric namespace, where etcd runs. Every agent knows only
//! its own pods: the others' reach its ipcache maps through etcd. One policy applied on every
//! node lets app2 (node 1) reach app1 (node 2) on port 80 only and denies app3 (node 3); app2
//! moved to node 3 with a new address is allowed there and its old address denied within a
//! second; with etcd stopped for longer than the lease TTL every node keeps enforcing, and a
//! change made meanwhile reaches the others once etcd is back; node 3's agent killed, its pods
//! lose their identity on node 2 after the lease TTL.

mod agent_harness;
mod etcd_harness;

use agent_harness::Agent;
use etcd_harness::Fabric;
use runtime_loader::probe::{tcp_ok, Responder, PASS_WAIT};
use runtime_loader::testkit::{require_root, Endpoint};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const POLICY: &str = "testdata/getting-started/docker/l3_l4_policy.json";
/// Lease TTL of the agents, in seconds.
const TTL: u64 = 2;
/// A probe expected to be refused: the SYN is dropped, so any short wait tells.
const DENY_WAIT: Duration = Duration::from_millis(300);

/// How long until `probe` gives `want` (probing every 50 ms), failing after `limit`.
fn until(limit: Duration, what: &str, want: bool, probe: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    loop {
        if probe() == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "{what}: still {} after {limit:?}",
            !want
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn root_multinode_etcd_cross_node_policy_moves_and_expiry() {
    const NAME: &str = "root_multinode_etcd_cross_node_policy_moves_and_expiry";
    if !require_root(NAME) {
        return;
    }
    let Some(mut fabric) = Fabric::new(NAME, 3) else {
        return;
    };
    let app2 = Endpoint::new(&fabric.nodes[0], Ipv4Addr::new(10, 20, 1, 10));
    let app1 = Endpoint::new(&fabric.nodes[1], Ipv4Addr::new(10, 20, 2, 10));
    let app3 = Endpoint::new(&fabric.nodes[2], Ipv4Addr::new(10, 20, 3, 10));
    let _srv = [
        Responder::start(&app1.ns, app1.addr, 80),
        Responder::start(&app1.ns, app1.addr, 8080),
    ];
    let ttl = TTL.to_string();
    let mut agents: Vec<Agent> = fabric
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Agent::start_in(n, fabric.agent_args(i + 1, &["--kvstore-lease-ttl", &ttl])))
        .collect();
    let policy = format!("{}/../{POLICY}", env!("CARGO_MANIFEST_DIR"));
    for a in &agents {
        a.ok(&["apply", "-f", &policy]);
    }
    agents[0].add_endpoint(1, "id=app2", &app2);
    agents[1].add_endpoint(1, "id=app1", &app1);
    agents[2].add_endpoint(1, "id=app3", &app3);

    // app2 (node 1) → app1 (node 2): port 80 only; app3 (node 3) → app1: denied.
    let allowed = |ep: &Endpoint, port| tcp_ok(&ep.ns, app1.addr, port, DENY_WAIT);
    until(Duration::from_secs(5), "app2 → app1:80", true, || {
        allowed(&app2, 80)
    });
    assert!(tcp_ok(&app2.ns, app1.addr, 80, PASS_WAIT));
    assert!(
        !allowed(&app2, 8080),
        "app2 → app1:8080 is not in the policy"
    );
    assert!(!allowed(&app3, 80), "app3 → app1:80 is denied");

    // app2 moves: deleted on node 1, created on node 3 with a new address.
    agents[0].ok(&["endpoint", "delete", "1"]);
    let moved = Endpoint::new(&fabric.nodes[2], Ipv4Addr::new(10, 20, 3, 20));
    agents[2].add_endpoint(2, "id=app2", &moved);
    let second = Duration::from_secs(1);
    let t = until(second, "moved app2 → app1:80", true, || {
        allowed(&moved, 80)
    });
    eprintln!("moved app2 allowed on node 2 after {t:?}");
    until(second, "old app2 address → app1:80", false, || {
        allowed(&app2, 80)
    });

    // etcd away for longer than the lease TTL: every node keeps enforcing what it has. A
    // change made meanwhile (app2 back on node 1, a label set node 1 knows) takes effect
    // locally and reaches node 2 once etcd is back.
    fabric.etcd.stop();
    std::thread::sleep(Duration::from_secs(TTL + 1));
    assert!(
        tcp_ok(&moved.ns, app1.addr, 80, PASS_WAIT),
        "kept during the outage"
    );
    assert!(!allowed(&app3, 80), "still denied during the outage");
    agents[0].add_endpoint(1, "id=app2", &app2);
    assert!(!allowed(&app2, 80), "node 2 cannot know it yet");
    fabric.etcd.restart();
    let t = until(Duration::from_secs(15), "app2 back on node 1", true, || {
        allowed(&app2, 80)
    });
    eprintln!("node 2 resynchronised {t:?} after etcd came back");
    assert!(tcp_ok(&moved.ns, app1.addr, 80, PASS_WAIT));

    // Node 3's agent dies: after its lease, node 2 no longer knows its pods.
    agents[2].kill();
    let t = until(
        Duration::from_secs(TTL + 8),
        "moved app2 after node 3 died",
        false,
        || allowed(&moved, 80),
    );
    eprintln!("node 3's pods lost their identity on node 2 after {t:?}");
    assert!(
        t >= Duration::from_millis(TTL * 1000 / 2),
        "denied after {t:?}, before the lease could expire"
    );
    drop(agents);
}
