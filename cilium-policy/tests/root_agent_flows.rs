//! Every verdict names its policy, on real packets between network namespaces: `monitor -o
//! json` flows (Hubble's field names) for an allowed connection (the allowing policy), a default
//! deny (the policies that isolated the endpoint) and a deny rule (that policy); the text
//! monitor's ` by ...` suffix; the same flows in the `--flow-export` file; the drop and verdict
//! counters in `GET /v1/metrics` read by a Prometheus text parser; and a record → change →
//! `replay` round trip on the exported flows.

mod agent_harness;

use agent_harness::{api_ok, Agent};
use compiler::flow::{parse_flows, Flow, FlowVerdict, PolicyRef, TrafficDirection};
use runtime_loader::probe::{tcp_ok, Responder, PASS_WAIT};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cilium-policy");
const T: Duration = Duration::from_millis(600);
const PODS: [&str; 3] = ["app1", "app2", "app3"];

/// app1 allows app2 on 80/TCP (`app1-allow`) and denies everything from app3
/// (`app1-deny-app3`): both select app1 for ingress, so both put it into default deny.
const POLICIES: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: app1-allow
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: app1
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: app2
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: app1-deny-app3
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: app1
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        app: app3
"#;

/// The change replayed: app2 may use every port, app3 is no longer denied but only allowed on
/// 80/TCP.
const CHANGED: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: app1-allow
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: app1
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: app2
  - fromEndpoints:
    - matchLabels:
        app: app3
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
"#;

fn names(refs: &[PolicyRef]) -> Vec<&str> {
    let mut v: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    v.sort();
    v
}

/// The first flow of `rx` into app1 from `from` on `port` (within a few seconds).
fn wait_flow(rx: &mpsc::Receiver<Flow>, from: &str, port: u16) -> Flow {
    let t = Instant::now();
    let mut seen = Vec::new();
    while t.elapsed() < Duration::from_secs(5) {
        let Ok(f) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        seen.push(format!("{f:?}"));
        let to_port = f.l4.as_ref().map(|l| l.policy_port().1);
        if f.source.pod_name == from
            && f.destination.pod_name == "app1"
            && f.traffic_direction == TrafficDirection::Ingress
            && to_port == Some(port)
        {
            return f;
        }
    }
    panic!("no flow {from} -> app1:{port}; seen:\n{}", seen.join("\n"));
}

/// The node and app1..app3 (app1 serves 80 and 81).
fn pods() -> (
    runtime_loader::testkit::Netns,
    Vec<Endpoint>,
    Vec<Responder>,
) {
    let node = node_netns();
    let eps: Vec<Endpoint> = (0..3)
        .map(|i| Endpoint::new(&node, Ipv4Addr::new(10, 97, 0, i + 1)))
        .collect();
    let srv = [80, 81]
        .iter()
        .map(|p| Responder::start(&eps[0].ns, eps[0].addr, *p))
        .collect();
    (node, eps, srv)
}

/// Applies the Pods and adds their endpoints (ids 1..3); the Pods' file.
fn endpoints(agent: &Agent, eps: &[Endpoint]) -> String {
    let mut manifests = String::new();
    for (app, ep) in PODS.iter().zip(eps) {
        manifests += &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {app}\n  namespace: default\n  labels:\n    app: {app}\nstatus:\n  podIP: {}\n---\n",
            ep.addr
        );
    }
    let pods = agent.file("pods.yaml", &manifests);
    agent.ok(&["apply", "-f", &pods]);
    for (i, (app, ep)) in PODS.iter().zip(eps).enumerate() {
        let (id, pod) = ((i + 1).to_string(), format!("default/{app}"));
        agent.ok(&[
            "endpoint", "add", "--id", &id, "--pod", &pod, "--iface", &ep.host,
        ]);
    }
    pods
}

/// `monitor -o json --to-pod default/app1` once listening ("Listening" on stderr), and its
/// flows.
fn monitor_json(agent: &Agent) -> (std::process::Child, mpsc::Receiver<Flow>) {
    let mut mon = Command::new(BIN)
        .arg("--api-socket")
        .arg(&agent.socket)
        .args(["monitor", "-o", "json", "--to-pod", "default/app1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("monitor");
    let mut err = BufReader::new(mon.stderr.take().unwrap()).lines();
    let first = err.next().and_then(|l| l.ok()).unwrap_or_default();
    assert!(first.starts_with("Listening"), "{first}");
    let (tx, rx) = mpsc::channel();
    let out = mon.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let flows = parse_flows("monitor", &line).expect("monitor -o json parses as flows");
            for f in flows {
                assert_eq!(f.flow.destination.pod_name, "app1", "--to-pod filters");
                let _ = tx.send(f.flow);
            }
        }
    });
    (mon, rx)
}

/// A policy in audit mode isolates nothing: app2's connection to a port it does not allow
/// passes, reported with verdict AUDIT naming the policy; `trace` gives the same verdict.
#[test]
fn root_agent_audit_mode_passes_and_reports() {
    if !require_root("root_agent_audit_mode_passes_and_reports") {
        return;
    }
    let (node, eps, _srv) = pods();
    let agent = Agent::start(&node);
    let pods = endpoints(&agent, &eps);
    let audit = POLICIES.split("---").next().unwrap().replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    cilium-policy.io/audit-mode: \"true\"\n",
    );
    let pol = agent.file("audit.yaml", &audit);
    agent.ok(&["apply", "-f", &pol]);
    let (mut mon, rx) = monitor_json(&agent);
    assert!(
        tcp_ok(&eps[1].ns, eps[0].addr, 80, PASS_WAIT),
        "allowed as written"
    );
    assert_eq!(wait_flow(&rx, "app2", 80).verdict, FlowVerdict::Forwarded);
    assert!(
        tcp_ok(&eps[1].ns, eps[0].addr, 81, PASS_WAIT),
        "81 passes: only the audit-mode policy would deny it"
    );
    let audited = wait_flow(&rx, "app2", 81);
    assert_eq!(audited.verdict, FlowVerdict::Audit);
    assert_eq!(names(&audited.ingress_denied_by), ["app1-allow"]);
    assert!(tcp_ok(&eps[2].ns, eps[0].addr, 80, PASS_WAIT), "app3 too");
    assert_eq!(wait_flow(&rx, "app3", 80).verdict, FlowVerdict::Audit);
    let _ = mon.kill();
    let _ = mon.wait();
    let out = Command::new(BIN)
        .args(["trace", "-f", &pods, "-f", &pol])
        .args([
            "--src",
            "default/app2",
            "--dst",
            "default/app1",
            "--dport",
            "81",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verdict: allowed (audit: would be denied by")
            && text.contains("default/app1-allow"),
        "{text}"
    );
}

#[test]
fn root_agent_flows_name_their_policies() {
    if !require_root("root_agent_flows_name_their_policies") {
        return;
    }
    let (node, eps, _srv) = pods();
    let export_dir = tempfile::tempdir().unwrap();
    let export = export_dir.path().join("flows.json");
    let agent = Agent::start_in(
        &node,
        vec!["--flow-export".into(), export.display().to_string()],
    );
    let pods = endpoints(&agent, &eps);
    let pol = agent.file("policies.yaml", POLICIES);
    agent.ok(&["apply", "-f", &pol]);
    let (mut mon, rx) = monitor_json(&agent);

    let app1 = eps[0].addr;
    assert!(tcp_ok(&eps[1].ns, app1, 80, PASS_WAIT), "app2 -> app1:80");
    let allowed = wait_flow(&rx, "app2", 80);
    assert_eq!(allowed.verdict, FlowVerdict::Forwarded);
    assert_eq!(names(&allowed.ingress_allowed_by), ["app1-allow"]);
    let by = &allowed.ingress_allowed_by[0];
    assert_eq!(
        (by.kind.as_str(), by.namespace.as_str()),
        ("CiliumNetworkPolicy", "default")
    );
    assert!(by.source.starts_with(&pol) && by.revision > 0, "{by:?}");
    assert_eq!(allowed.source.namespace, "default");
    assert!(allowed.node_name.is_some() && allowed.time.is_some());

    assert!(!tcp_ok(&eps[1].ns, app1, 81, T), "app2 -> app1:81");
    let isolated = wait_flow(&rx, "app2", 81);
    assert_eq!(isolated.verdict, FlowVerdict::Dropped);
    assert_eq!(isolated.drop_reason, Some(133));
    assert_eq!(isolated.drop_reason_desc.as_deref(), Some("POLICY_DENIED"));
    assert_eq!(
        names(&isolated.ingress_denied_by),
        ["app1-allow", "app1-deny-app3"],
        "a default deny names the policies that isolated app1"
    );

    assert!(!tcp_ok(&eps[2].ns, app1, 80, T), "app3 -> app1:80");
    let denied = wait_flow(&rx, "app3", 80);
    assert_eq!(denied.drop_reason_desc.as_deref(), Some("POLICY_DENY"));
    assert_eq!(names(&denied.ingress_denied_by), ["app1-deny-app3"]);
    let _ = mon.kill();
    let _ = mon.wait();

    // The text monitor ends the seed's line with the policy.
    let line = agent.first_policy_drop(|| assert!(!tcp_ok(&eps[2].ns, app1, 80, T)));
    assert!(
        line.contains(" by CiliumNetworkPolicy default/app1-deny-app3 (") && line.contains(&pol),
        "{line}"
    );

    // Metrics, parsed as Prometheus text.
    let text = api_ok(&agent.socket, "GET", "/v1/metrics", "");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let drops = |reason| {
        value(
            "cilium_drop_count_total",
            &[("reason", reason), ("direction", "INGRESS")],
        )
    };
    assert!(drops("Policy denied") >= 1.0, "{text}");
    assert!(drops("Policy denied by denylist") >= 1.0, "{text}");
    assert!(
        value(
            "cilium_policy_verdict_total",
            &[("policy_name", "app1-allow"), ("verdict", "allow")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value("cilium_policy_map_entries", &[("endpoint", "1")]) >= 1.0,
        "{text}"
    );
    assert!(
        value("cilium_policy_map_capacity", &[("endpoint", "1")]) >= 1024.0,
        "{text}"
    );
    assert_eq!(value("cilium_endpoint_count", &[]), 3.0);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "cilium_endpoint_regeneration_time_stats_seconds"),
        "{text}"
    );

    // The export holds the same flows (written as they arrive, flushed when idle).
    let t = Instant::now();
    let recorded = loop {
        let text = std::fs::read_to_string(&export).unwrap_or_default();
        let flows = parse_flows("flows.json", &text).expect("the export parses as flows");
        let has = |from: &str, port: u16, v: FlowVerdict| {
            flows.iter().any(|r| {
                r.flow.source.pod_name == from
                    && r.flow.l4.as_ref().map(|l| l.policy_port().1) == Some(port)
                    && r.flow.verdict == v
            })
        };
        if has("app2", 80, FlowVerdict::Forwarded)
            && has("app2", 81, FlowVerdict::Dropped)
            && has("app3", 80, FlowVerdict::Dropped)
        {
            break text;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "export: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(recorded.lines().all(|l| l.starts_with("{\"flow\":")));

    // Record → change → replay: the two drops would now pass; the allowed flow stays allowed.
    let changed = agent.file("changed.yaml", CHANGED);
    let out = Command::new(BIN)
        .args(["replay", "-o", "tsv", "--flows"])
        .arg(&export)
        .args(["-f", &pods, "-f", &changed])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // line, src, dst, port, proto, direction, old, new.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let changed = |src: &str, port: &str| {
        rows.iter().any(|r| {
            r[1] == src
                && r[2] == "default/app1"
                && r[3] == port
                && r[6] == "DROPPED"
                && r[7] == "FORWARDED"
        })
    };
    assert!(changed("default/app2", "81"), "{stdout}");
    assert!(changed("default/app3", "80"), "{stdout}");
    assert!(
        !rows.iter().any(|r| r[1] == "default/app2" && r[3] == "80"),
        "the allowed flow does not change: {stdout}"
    );
}
