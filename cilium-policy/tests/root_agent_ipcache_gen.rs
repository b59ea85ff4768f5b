//! The agent increments the node's ipcache generation (`cp_node`) after every ipcache write and
//! only then: the datapath's remembered default denies (Documentation/datapath.md, "Flow
//! cache") are re-decided after a peer's identity changes, even when no endpoint's policy
//! revision moves. A new endpoint (a new address in the ipcache) bumps it; a policy change that
//! rewrites only an endpoint's policy map does not. Enforcement is checked on real sockets.

mod agent_harness;

use agent_harness::{setup, Agent};
use codegen::layout::NodeState;
use runtime_loader::probe::{tcp_ok, PASS_WAIT};
use runtime_loader::testkit::{require_root, Endpoint};
use runtime_loader::RawMap;
use std::net::Ipv4Addr;
use std::time::Duration;

const T: Duration = Duration::from_millis(800);

const APP1: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}],
               "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;

fn ipcache_gen(agent: &Agent) -> u32 {
    let (bpffs, _) = agent.datapath.as_ref().expect("agent with a datapath");
    let pin = bpffs
        .path
        .join("cilium-policy/node0/maps")
        .join(codegen::maps::NODE.name);
    RawMap::open_pinned(&pin)
        .expect("cp_node pinned")
        .lookup(&0u32.to_ne_bytes())
        .expect("cp_node lookup")
        .and_then(|v| NodeState::from_bytes(&v))
        .expect("node state")
        .ipcache_gen
}

#[test]
fn root_agent_bumps_the_ipcache_generation_after_ipcache_writes() {
    if !require_root("root_agent_bumps_the_ipcache_generation_after_ipcache_writes") {
        return;
    }
    let (s, agent) = setup(99);
    let first = ipcache_gen(&agent);
    assert!(first > 0, "the endpoints' addresses were written");
    let f = agent.file("app1.json", APP1);
    agent.ok(&["policy", "import", &f]);
    assert_eq!(ipcache_gen(&agent), first, "a policy change alone");
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    // A fourth endpoint labelled as app2: its address enters the ipcache with app2's identity
    // (app1's policy map already allows it, so app1's revision need not move).
    let app4 = Endpoint::new(&s.node, Ipv4Addr::new(10, 99, 0, 4));
    agent.add_endpoint(4, "id=app2", &app4);
    assert!(ipcache_gen(&agent) > first, "new address, new generation");
    assert!(
        tcp_ok(&app4.ns, s.app1.addr, 80, PASS_WAIT),
        "app4 is app2's identity"
    );
}
