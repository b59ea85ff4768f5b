//! The agent's API and CLI without a datapath (any user): Kubernetes manifests applied,
//! endpoints from Pods, `policy/resolve` against the seed's getting-started policy (§2.1.4:
//! app2 may reach app1 on TCP 80, app3 may not), refused invalid policies, `delete -f`,
//! persistence across a restart, and `--policy-dir` (policies and a CIDR group).

mod agent_harness;

use agent_harness::Agent;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(p)
        .display()
        .to_string()
}

const NETPOL: &str = "kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata:
  name: access-backend
  namespace: default
spec:
  podSelector:
    matchLabels:
      id: app1
  ingress:
  - from:
    - podSelector:
        matchLabels:
          id: app2
    ports:
    - port: 80
      protocol: TCP
";

/// `GET path` over the agent's socket; returns the body.
fn get(agent: &Agent, path: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: agent\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

fn endpoints(agent: &Agent) -> serde_json::Value {
    serde_json::from_str(&agent.ok(&["endpoint", "list", "-o", "json"])).unwrap()
}

#[test]
fn manifests_endpoints_resolve_and_refusals() {
    let mut agent = Agent::start_api_only(vec![]);
    let policy = agent.file("netpol.yaml", NETPOL);
    let out = agent.ok(&[
        "apply",
        "-f",
        &repo("testdata/datapath/getting-started/pods.yaml"),
        &policy,
    ]);
    assert_eq!(out.trim(), "Revision: 1");
    for (id, pod) in [
        ("1", "default/app1-a"),
        ("2", "default/app2"),
        ("3", "default/app3"),
    ] {
        agent.ok(&[
            "endpoint",
            "add",
            "--id",
            id,
            "--pod",
            pod,
            "--iface",
            &format!("lxc{id}"),
        ]);
    }
    let eps = endpoints(&agent);
    assert_eq!(eps[0]["ipv4"], "10.0.0.11");
    assert!(
        eps[0]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "k8s:id=app1"),
        "{eps}"
    );
    assert_eq!(eps[0]["ingress_enforced"], true);
    assert_eq!(eps[1]["ingress_enforced"], false);
    assert_ne!(eps[1]["identity"], eps[2]["identity"]);

    let r: serde_json::Value = serde_json::from_str(&get(
        &agent,
        "/v1/policy/resolve?from=default/app2&to=1&port=80",
    ))
    .unwrap();
    assert_eq!(r["verdict"], "allowed", "{r}");
    let r: serde_json::Value =
        serde_json::from_str(&get(&agent, "/v1/policy/resolve?from=3&to=1&port=80")).unwrap();
    assert_eq!(r["verdict"], "denied", "{r}");
    let r: serde_json::Value =
        serde_json::from_str(&get(&agent, "/v1/policy/resolve?from=2&to=1&port=81")).unwrap();
    assert_eq!(r["verdict"], "denied", "{r}");
    assert!(get(&agent, "/v1/endpoint/pod-name:default:app3").contains("\"id\":3"));
    assert!(get(&agent, "/v1/identity").contains("reserved:world"));

    // A policy with an error is refused with its diagnostics; nothing changes.
    let bad = agent.file(
        "bad.yaml",
        &NETPOL.replace("protocol: TCP", "protocol: TCPX"),
    );
    let out = agent.cli(&["apply", "-f", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400") && err.contains("bad.yaml:17:"), "{err}");
    assert!(
        agent
            .cli(&[
                "endpoint",
                "add",
                "--id",
                "9",
                "--pod",
                "default/nope",
                "--iface",
                "lxc9"
            ])
            .status
            .code()
            != Some(0)
    );
    let st: serde_json::Value = serde_json::from_str(&agent.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(st["policy_revision"], 4, "{st}");

    // Persistence: a restarted agent has the same endpoints, identities and policy.
    agent.kill();
    agent.spawn();
    assert_eq!(endpoints(&agent), eps);
    assert!(agent.ok(&["policy", "get"]).contains("access-backend"));

    // delete -f withdraws what the file applied.
    assert_eq!(agent.ok(&["delete", "-f", &policy]).trim(), "Revision: 5");
    assert_eq!(endpoints(&agent)[0]["ingress_enforced"], false);
    assert!(
        !agent.cli(&["delete", "-f", &policy]).status.success(),
        "nothing left to delete"
    );
}

#[test]
fn policy_dir_is_watched() {
    let dir = runtime_loader::testkit::TempDir::new("cppd");
    let agent = Agent::start_api_only(vec!["--policy-dir".into(), dir.path.display().to_string()]);
    let wait_for = |want: bool| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if agent.cli(&["policy", "get"]).status.success() == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "policy directory not applied (want rules: {want}): {}",
            agent.log()
        );
    };
    std::fs::write(dir.path.join("np.yaml"), NETPOL).unwrap();
    wait_for(true);
    assert!(agent.ok(&["policy", "get"]).contains("access-backend"));
    std::fs::remove_file(dir.path.join("np.yaml")).unwrap();
    wait_for(false);
}

/// A CiliumCIDRGroup in `--policy-dir`: a `cidrGroupRef` rule admits its CIDRs, and editing
/// the group's file changes what it admits.
#[test]
fn policy_dir_cidr_group_changes_are_enforced() {
    let dir = runtime_loader::testkit::TempDir::new("cppg");
    let agent = Agent::start_api_only(vec!["--policy-dir".into(), dir.path.display().to_string()]);
    agent.ok(&[
        "endpoint", "add", "--id", "1", "--labels", "id=app1", "--ipv4", "10.7.0.1", "--iface",
        "lxc1",
    ]);
    let group = |cidr: &str| {
        format!(
            "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {{name: vpn}}\n\
             spec: {{externalCIDRs: [\"{cidr}\"]}}\n"
        )
    };
    let allowed = |from: &str| {
        let v: serde_json::Value = serde_json::from_str(&get(
            &agent,
            &format!("/v1/policy/resolve?from={from}&to=1&port=80"),
        ))
        .unwrap();
        v["verdict"] == "allowed"
    };
    let wait_until = |what: &str, f: &dyn Fn() -> bool| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{what}: {}", agent.log());
    };
    std::fs::write(dir.path.join("groups.yaml"), group("192.0.2.0/28")).unwrap();
    let rule = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
      "ingress": [{"fromCIDRSet": [{"cidrGroupRef": "vpn"}]}]}]"#;
    std::fs::write(dir.path.join("rule.json"), rule).unwrap();
    // Enforced once the rule is in: before it, endpoint 1 admits everything.
    wait_until("the group's CIDR only admitted", &|| {
        allowed("192.0.2.7") && !allowed("192.0.2.99")
    });
    std::fs::write(dir.path.join("groups.yaml"), group("192.0.2.64/26")).unwrap();
    wait_until("the edited group admits its new CIDR only", &|| {
        allowed("192.0.2.99") && !allowed("192.0.2.7")
    });
}

/// Datapath sizes given on the command line are what `GET /v1/config` reports; a flow-cache
/// size the datapath cannot index is refused before the agent starts.
#[test]
fn map_size_flags_are_reported_and_checked() {
    let agent = Agent::start_api_only(vec![
        "--bpf-ct-global-tcp-max".into(),
        "2048".into(),
        "--bpf-ct-global-any-max".into(),
        "1024".into(),
        "--flow-cache-slots".into(),
        "64".into(),
    ]);
    let cfg: serde_json::Value = serde_json::from_str(&get(&agent, "/v1/config")).unwrap();
    assert_eq!(cfg["bpf-ct-global-tcp-max"], 2048, "{cfg}");
    assert_eq!(cfg["bpf-ct-global-any-max"], 1024, "{cfg}");
    assert_eq!(cfg["flow-cache-slots"], 64, "{cfg}");
    let out = std::process::Command::new(agent_harness::BIN)
        .args([
            "agent",
            "--state-dir",
            "/nonexistent",
            "--flow-cache-slots",
            "3",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not 0 or a power of two"), "{err}");
}
