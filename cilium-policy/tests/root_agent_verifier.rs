//! A program the kernel verifier rejects, on a live agent: the change is refused with a clear
//! error carrying the verifier log's tail, the running programs stay attached, the endpoint's
//! maps keep their entries, and allowed traffic keeps flowing.
//!
//! The fault is injected through `$CLANG`, the agent's documented toolchain setting: a wrapper
//! around the real clang adds an unchecked packet read (no bounds check against `data_end`)
//! to the datapath's `ENABLE_L7_REDIRECT` path before compiling. Endpoints without L7 rules
//! compile that path out and load normally; the first L7 rule for an endpoint changes its
//! configuration, the agent compiles the L7 template, and the kernel refuses it.

mod agent_harness;

use agent_harness::verifier::{attached_programs, faulty_clang, Insert};
use agent_harness::{setup, Agent};
use codegen::layout::PolicyValue;
use runtime_loader::probe::{tcp_ok, PASS_WAIT};
use runtime_loader::testkit::{require_root, TempDir};
use runtime_loader::RawMap;
use std::time::Duration;

const T: Duration = Duration::from_millis(800);

const L3_L4: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
    "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}],
                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;

const L7: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
    "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app3"}}],
                 "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                              "rules": {"http": [{"method": "GET", "path": "/public"}]}}]}]}]"#;

/// The endpoint's policy map: keys with verdict, proxy port and rule (the value without the
/// packet counters the datapath updates).
fn policy_entries(agent: &Agent, id: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pin = agent
        .endpoint_pins(id)
        .join("maps")
        .join(codegen::maps::POLICY.name);
    let map = RawMap::open_pinned(&pin).expect("pinned policy map");
    map.entries()
        .expect("policy map entries")
        .into_iter()
        .map(|(k, v)| (k, v[..PolicyValue::DECISION_LEN.min(v.len())].to_vec()))
        .collect()
}

#[test]
fn root_agent_verifier_rejection_keeps_previous_enforcement() {
    if !require_root("root_agent_verifier_rejection_keeps_previous_enforcement") {
        return;
    }
    let tools = TempDir::new("cpvf");
    // The only test of this binary: setting the agent's environment here affects nothing else.
    std::env::set_var(
        "CLANG",
        faulty_clang(&tools.path, "#ifdef ENABLE_L7_REDIRECT", Insert::After),
    );
    let (s, agent) = setup(97);
    let (node, app1, app2, app3) = (&s.node, &s.app1, &s.app2, &s.app3);
    let before = agent.ok(&["policy", "import", &agent.file("l3-l4.json", L3_L4)]);
    assert!(
        tcp_ok(&app2.ns, app1.addr, 80, PASS_WAIT),
        "app2 -> app1:80 allowed"
    );
    assert!(
        !tcp_ok(&app3.ns, app1.addr, 80, T),
        "app3 -> app1:80 denied"
    );
    let programs = attached_programs(&agent, node, 1, &app1.host);
    assert_eq!(
        programs.len(),
        2,
        "ingress and egress programs on {}",
        app1.host
    );
    let entries = policy_entries(&agent, 1);

    let out = agent.cli(&["policy", "import", &agent.file("l7.json", L7)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the L7 policy must be refused: {err}"
    );
    eprintln!("refused as expected:\n{err}");
    for want in [
        "endpoint 1",
        "verifier rejected program cil_",
        "verifier log (last",
        // The kernel's own words for the injected read, from the log's tail.
        "invalid access to packet",
        "previous policy stays enforced",
    ] {
        assert!(err.contains(want), "error lacks {want:?}:\n{err}");
    }

    assert_eq!(
        attached_programs(&agent, node, 1, &app1.host),
        programs,
        "same programs attached"
    );
    assert_eq!(policy_entries(&agent, 1), entries, "policy map unchanged");
    agent.assert_unchanged_since(&before, "l7.json");
    assert!(
        tcp_ok(&app2.ns, app1.addr, 80, PASS_WAIT),
        "allowed traffic still flows"
    );
    assert!(
        !tcp_ok(&app3.ns, app1.addr, 80, T),
        "denied traffic still denied"
    );
}
