//! A new endpoint whose second program the kernel verifier rejects. In tcx mode the agent
//! verifies a new endpoint's `cil_to_container` while the kernel attaches its
//! `cil_from_container` (agent/src/datapath_attach.rs); in tc mode both programs are verified
//! at once before anything is attached. Either way the rejection must refuse the endpoint with
//! the verifier's words, and leave nothing of it attached or pinned.
//!
//! The fault is injected through `$CLANG` (as in `root_agent_verifier.rs`): an unchecked
//! packet read in `cil_to_container` only, so `cil_from_container` loads and is attached first.

mod agent_harness;

use agent_harness::verifier::{attached_programs, faulty_clang, Insert};
use agent_harness::Agent;
use runtime_loader::testkit::{node_netns, require_root, Endpoint, TempDir};
use std::net::Ipv4Addr;

#[test]
fn root_agent_new_endpoint_refused_by_the_verifier_leaves_nothing() {
    if !require_root("root_agent_new_endpoint_refused_by_the_verifier_leaves_nothing") {
        return;
    }
    for mode in ["tc", "tcx"] {
        refused_new_endpoint_leaves_nothing(mode);
    }
}

fn refused_new_endpoint_leaves_nothing(mode: &str) {
    let tools = TempDir::new("cpvn");
    // The only test of this binary: setting the agent's environment here affects nothing else.
    std::env::set_var(
        "CLANG",
        faulty_clang(
            &tools.path,
            "\\treturn handle(skb, DIR_INGRESS);",
            Insert::Before,
        ),
    );
    let node = node_netns();
    let app = Endpoint::new(&node, Ipv4Addr::new(10, 96, 0, 1));
    let agent = Agent::start_in(&node, vec!["--attach-mode".into(), mode.into()]);

    let out = agent.cli(&[
        "endpoint",
        "add",
        "--id",
        "1",
        "--labels",
        "id=app1",
        "--ipv4",
        &app.addr.to_string(),
        "--iface",
        &app.host,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the endpoint must be refused: {err}");
    eprintln!("{mode}: refused as expected:\n{err}");
    for want in [
        "endpoint 1",
        "verifier rejected program cil_to_container",
        "verifier log (last",
        "invalid access to packet",
        "previous policy stays enforced",
    ] {
        assert!(err.contains(want), "error lacks {want:?}:\n{err}");
    }

    assert_eq!(
        attached_programs(&agent, &node, 1, &app.host),
        Vec::<u64>::new(),
        "nothing attached on {}",
        app.host
    );
    let pins = agent.endpoint_pins(1);
    assert!(!pins.exists(), "{} is left behind", pins.display());
    let list = agent.ok(&["endpoint", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("endpoint list json");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "no endpoint: {list}"
    );
}
