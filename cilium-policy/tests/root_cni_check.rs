//! CNI CHECK asks the kernel: after an ADD it succeeds; with the endpoint's filter deleted
//! behind the agent's back, its program replaced by another at the same priority and handle,
//! or another filter added in front of it, it fails with code 101
//! naming what is wrong, while the agent changes nothing; the next change of the endpoint
//! puts things right and CHECK succeeds again.

mod agent_harness;
mod podman;

use agent_harness::{
    add_filter_in_front, delete_own_filter, no_check, replace_own_filter_program, Agent,
};
use runtime_loader::testkit::{node_netns, require_root};
use std::process::Output;

/// Asserts that `out` is a success.
fn ok(out: Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn error_of(out: &Output) -> serde_json::Value {
    assert!(!out.status.success(), "CHECK must fail");
    serde_json::from_slice(&out.stdout).expect("a CNI error on stdout")
}

#[test]
fn root_cni_check_asks_the_kernel() {
    if !require_root("root_cni_check_asks_the_kernel") {
        return;
    }
    let node = node_netns();
    let host = format!("cpck{}", std::process::id() % 10_000);
    podman::host_veth(&node, &host);
    // The periodic check would repair the faults below before CHECK sees them.
    let agent = Agent::start_in(&node, no_check());
    agent.ok(&[
        "apply",
        "-f",
        &agent.file(
            "pods.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, labels: {app: web}}\n",
        ),
    ]);
    let policy = r#"[{"endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}]}]"#;
    agent.ok(&["policy", "import", &agent.file("p.json", policy)]);
    let socket = agent.socket.display().to_string();
    let conf = podman::chained_conf(&socket, &host, "10.78.0.1/32");
    let run = |command: &str| podman::run_plugin(&node, command, "c1", "web", &conf);

    ok(run("ADD"));
    ok(run("CHECK"));

    // The endpoint's ingress filter deleted behind the agent's back.
    delete_own_filter(&node, &host, "egress");
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 101, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("tc filter is not attached"), "{e}");

    // The next change of the endpoint attaches it again.
    let more = policy.replace("\"client\"", "\"other\"");
    agent.ok(&["policy", "import", &agent.file("p.json", &more)]);
    ok(run("CHECK"));

    // The endpoint's own filter, its priority and handle, running a program that passes
    // everything: as the agent's filter would look, but not the agent's program.
    replace_own_filter_program(&node, &host, "egress");
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 101, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("where the agent attached program"), "{e}");
    // The next change of the endpoint attaches its own program again.
    let third = policy.replace("\"client\"", "\"third\"");
    agent.ok(&["policy", "import", &agent.file("p.json", &third)]);
    ok(run("CHECK"));

    // Another filter in front of the endpoint's (same priority, newer: it runs first).
    add_filter_in_front(&node, &host);
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 101, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("also runs tc filter bpf priority 1 handle 0x2"),
        "{e}"
    );
    // The check changed nothing: the foreign filter is still there until the next change.
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 101, "{e}");
    agent.ok(&["policy", "import", &agent.file("p.json", policy)]);
    ok(run("CHECK"));

    ok(run("DEL"));
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 3, "{e}");
}
