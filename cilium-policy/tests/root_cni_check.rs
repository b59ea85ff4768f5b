//! CNI CHECK asks the kernel: after an ADD it succeeds; with the endpoint's filter deleted
//! behind the agent's back, or another filter added in front of it, it fails with code 101
//! naming what is wrong, while the agent changes nothing; the next change of the endpoint
//! puts things right and CHECK succeeds again.

mod agent_harness;
mod podman;

use agent_harness::Agent;
use runtime_loader::testkit::{node_netns, require_root, Netns};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The plugin run in `node` with `command` for container `cid` on host veth `host`.
fn plugin(node: &Netns, socket: &str, command: &str, cid: &str, host: &str) -> Output {
    let conf = format!(
        r#"{{"cniVersion": "1.0.0", "name": "check", "type": "cilium-policy-cni",
            "apiSocket": "{socket}", "prevResult": {{"cniVersion": "1.0.0",
            "interfaces": [{{"name": "{host}"}}, {{"name": "eth0", "sandbox": "/run/netns/x"}}],
            "ips": [{{"address": "10.78.0.1/32", "interface": 1}}]}}}}"#
    );
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", node.path().display()))
        .arg(podman::cni_binary())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", "/run/netns/x")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", "K8S_POD_NAME=web")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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
    node.exec(&[
        "ip",
        "link",
        "add",
        &host,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{host}c"),
    ]);
    node.exec(&["ip", "link", "set", &host, "up"]);
    let agent = Agent::start(&node);
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
    let run = |command: &str| plugin(&node, &socket, command, "c1", &host);

    let add = run("ADD");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stdout)
    );
    let check = run("CHECK");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // The endpoint's ingress filter deleted behind the agent's back.
    node.exec(&[
        "tc", "filter", "del", "dev", &host, "egress", "pref", "1", "handle", "1", "bpf",
    ]);
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 101, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("tc filter is not attached"), "{e}");

    // The next change of the endpoint attaches it again.
    let more = policy.replace("\"client\"", "\"other\"");
    agent.ok(&["policy", "import", &agent.file("p.json", &more)]);
    let check = run("CHECK");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // Another filter in front of the endpoint's (same priority, newer: it runs first).
    node.exec(&[
        "tc",
        "filter",
        "add",
        "dev",
        &host,
        "egress",
        "pref",
        "1",
        "handle",
        "2",
        "bpf",
        "bytecode",
        "1,6 0 0 4294967295",
    ]);
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
    let check = run("CHECK");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let del = run("DEL");
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stdout)
    );
    let e = error_of(&run("CHECK"));
    assert_eq!(e["code"], 3, "{e}");
}
