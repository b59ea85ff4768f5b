//! The plugin as a runtime sees it: environment and stdin in, a CNI result or error object on
//! stdout and the exit status out (no agent, any user).

use std::io::Write;
use std::process::{Command, Stdio};

fn run(env: &[(&str, &str)], stdin: &[u8]) -> (i32, serde_json::Value) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cilium-policy-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A plugin that rejects early may not read everything: ignore a broken pipe.
    let _ = c.stdin.take().unwrap().write_all(stdin);
    let o = c.wait_with_output().unwrap();
    let v = if o.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON object")
    };
    (o.status.code().unwrap(), v)
}

const ADD: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "abc123"),
    ("CNI_NETNS", "/var/run/netns/x"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
];

fn conf(extra: &str) -> String {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "n", "type": "cilium-policy-cni",
            "apiSocket": "/nonexistent/agent.sock"{extra}}}"#
    )
}

const PREV: &str = r#", "prevResult": {"cniVersion": "1.0.0",
    "interfaces": [{"name": "lo"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
    "ips": [{"address": "10.1.0.2/24", "interface": 1}]}"#;

#[test]
fn version_lists_the_supported_versions() {
    let (code, v) = run(&[("CNI_COMMAND", "VERSION")], br#"{"cniVersion": "0.4.0"}"#);
    assert_eq!(code, 0);
    assert_eq!(v["cniVersion"], "0.4.0");
    let s: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(s.contains(&"1.0.0") && s.contains(&"0.4.0"));
}

#[test]
fn bad_input_gets_a_cni_error() {
    let (code, v) = run(ADD, b"{not json");
    assert_eq!((code, v["code"].as_u64()), (1, Some(6)), "{v}");
    let (code, v) = run(ADD, br#"{"cniVersion": "9.9.9"}"#);
    assert_eq!((code, v["code"].as_u64()), (1, Some(1)), "{v}");
    let (code, v) = run(ADD, conf("").as_bytes());
    assert_eq!(
        (code, v["code"].as_u64()),
        (1, Some(7)),
        "no prevResult: {v}"
    );
    assert!(v["msg"].as_str().unwrap().contains("chained plugin"));
    // `lo` is no veth: the plugin must be chained after one that creates a veth.
    let (code, v) = run(ADD, conf(PREV).as_bytes());
    assert_eq!((code, v["code"].as_u64()), (1, Some(7)), "{v}");
    assert!(v["msg"].as_str().unwrap().contains("ptp, bridge"), "{v}");
    let mut env = ADD.to_vec();
    env[1] = ("CNI_CONTAINERID", "../etc");
    let (code, v) = run(&env, conf(PREV).as_bytes());
    assert_eq!((code, v["code"].as_u64()), (1, Some(4)), "{v}");
    let big = vec![b' '; 2 << 20];
    let (code, v) = run(ADD, &big);
    assert_eq!((code, v["code"].as_u64()), (1, Some(7)), "{v}");
    assert_eq!(v["cniVersion"], "1.0.0");
}

#[test]
fn del_succeeds_when_the_agent_is_gone() {
    let mut env = ADD.to_vec();
    env[0] = ("CNI_COMMAND", "DEL");
    let (code, v) = run(&env, conf(PREV).as_bytes());
    assert_eq!(code, 0, "{v}");
    assert!(v.is_null());
}

#[test]
fn check_needs_the_containers_veth() {
    let mut env = ADD.to_vec();
    env[0] = ("CNI_COMMAND", "CHECK");
    let (code, v) = run(&env, conf(PREV).as_bytes());
    // CHECK fails at the veth first (lo), before the agent is asked.
    assert_eq!((code, v["code"].as_u64()), (1, Some(7)), "{v}");
}
