//! The seed's getting-started scenario (§2.2, §2.3) on real packets: app1 ×2, app2, app3 in
//! network namespaces behind veth pairs, the agent enforcing, driven through the CLI; then its
//! L7 step (§2.1.6) with pods from manifests, a real HTTP server and `curl`, through the
//! agent's proxy.

mod agent_harness;

use agent_harness::http::{add_pods, curl, HttpServer, Monitor};
use agent_harness::Agent;
use runtime_loader::probe::{tcp_ok, udp_ok, Responder, PASS_WAIT};
use runtime_loader::testkit::{node_netns, require_root, Endpoint};
use std::net::Ipv4Addr;
use std::time::Duration;

const T: Duration = Duration::from_millis(800);

/// The L3/L4 policy of seed §2.2.8, verbatim.
const L3_L4_POLICY: &str = r#"[{
  "endpointSelector": {"matchLabels":{"id":"app1"}},
  "ingress": [{
    "fromEndpoints": [
      {"matchLabels":{"id":"app2"}}
    ],
    "toPorts": [{
      "ports": [{"port": "80", "protocol": "tcp"}]
    }]
  }]
}]"#;

#[test]
fn root_getting_started_l3_l4_policy() {
    if !require_root("root_getting_started_l3_l4_policy") {
        return;
    }
    let node = node_netns();
    let app1a = Endpoint::new(&node, Ipv4Addr::new(10, 91, 0, 11));
    let app1b = Endpoint::new(&node, Ipv4Addr::new(10, 91, 0, 12));
    let app2 = Endpoint::new(&node, Ipv4Addr::new(10, 91, 0, 2));
    let app3 = Endpoint::new(&node, Ipv4Addr::new(10, 91, 0, 3));
    let _srv: Vec<Responder> = [&app1a, &app1b]
        .iter()
        .flat_map(|e| {
            [
                Responder::start(&e.ns, e.addr, 80),
                Responder::start(&e.ns, e.addr, 8080),
            ]
        })
        .collect();
    let _srv3 = Responder::start(&app3.ns, app3.addr, 80);
    let agent = Agent::start(&node);
    for (id, ep, label) in [
        (1, &app1a, "id=app1"),
        (2, &app1b, "id=app1"),
        (3, &app2, "id=app2"),
        (4, &app3, "id=app3"),
    ] {
        agent.add_endpoint(id, label, ep);
    }
    let list = agent.ok(&["endpoint", "list"]);
    assert!(
        list.contains("container:id=app1") && list.contains("ready"),
        "{list}"
    );
    assert!(
        tcp_ok(&app3.ns, app1a.addr, 80, PASS_WAIT),
        "no policy yet: app3 reaches app1"
    );

    let file = agent.file("l3_l4_policy.json", L3_L4_POLICY);
    let out = agent.ok(&["policy", "import", &file]);
    assert!(out.starts_with("Revision: "), "{out}");

    for app1 in [&app1a, &app1b] {
        assert!(
            tcp_ok(&app2.ns, app1.addr, 80, PASS_WAIT),
            "app2 -> {}:80 is allowed (and the reply flows)",
            app1.addr
        );
        assert!(
            !tcp_ok(&app3.ns, app1.addr, 80, T),
            "app3 -> {}:80 is denied",
            app1.addr
        );
        assert!(
            !tcp_ok(&app2.ns, app1.addr, 8080, T),
            "app2 -> {}:8080: only port 80 is allowed",
            app1.addr
        );
        assert!(
            !udp_ok(&app2.ns, app1.addr, 80, T),
            "app2 -> {}:80/udp: only TCP is allowed",
            app1.addr
        );
    }
    assert!(
        tcp_ok(&app1a.ns, app3.addr, 80, PASS_WAIT),
        "app1's egress is not enforced"
    );
    let list = agent.ok(&["endpoint", "list", "-o", "json"]);
    let eps: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(eps[0]["ingress_enforced"], true, "{list}");
    assert_eq!(eps[2]["ingress_enforced"], false, "{list}");

    // Nobody listens: the programs emit no events.
    let masks = agent.events_masks();
    assert!(
        !masks.is_empty() && masks.iter().all(|m| *m == 0),
        "{masks:?}"
    );
    // `monitor --type drop` shows app3's dropped SYN (seed §6.2 format); while it listens,
    // every endpoint emits drops and verdicts.
    let line = agent.first_policy_drop(|| {
        let masks = agent.events_masks();
        assert!(masks.iter().all(|m| *m == 3), "{masks:?}");
        assert!(!tcp_ok(&app3.ns, app1a.addr, 80, T));
    });
    assert!(
        line.starts_with("xx drop (Policy denied (L3)) to endpoint 1, identity "),
        "{line}"
    );
    assert!(
        line.contains(&format!("{}:", app3.addr))
            && line.contains(&format!("-> {}:80 tcp", app1a.addr)),
        "{line}"
    );

    // The monitor is gone: noticed when its next event cannot be written, then events are off.
    let start = std::time::Instant::now();
    while agent.events_masks().iter().any(|m| *m != 0) {
        assert!(start.elapsed() < Duration::from_secs(10), "events still on");
        assert!(!tcp_ok(&app3.ns, app1a.addr, 80, T));
    }

    // Deleting the policy restores app3's access, without restarting anything.
    let out = agent.ok(&["policy", "delete", "--all"]);
    assert!(out.starts_with("Revision: "), "{out}");
    assert!(
        tcp_ok(&app3.ns, app1a.addr, 80, PASS_WAIT),
        "app3 reaches app1 again"
    );
    assert!(tcp_ok(&app2.ns, app1b.addr, 8080, PASS_WAIT));
}

/// The seed's L7 policy (§2.1.6), verbatim.
const L7_POLICY: &str =
    include_str!("../../testdata/getting-started/kubernetes/l3_l4_l7_policy.yaml");

#[test]
fn root_getting_started_l7_policy() {
    if !require_root("root_getting_started_l7_policy") {
        return;
    }
    let node = node_netns();
    let app1 = Endpoint::new(&node, Ipv4Addr::new(10, 92, 0, 11));
    let app2 = Endpoint::new(&node, Ipv4Addr::new(10, 92, 0, 12));
    let app3 = Endpoint::new(&node, Ipv4Addr::new(10, 92, 0, 13));
    let _web = HttpServer::start(
        &app1.ns,
        app1.addr.into(),
        80,
        &[("public", "public page\n"), ("private", "private page\n")],
    );
    let agent = Agent::start(&node);
    // Endpoint ids as in the seed's monitor example (app2 is 3, app1 is 1).
    add_pods(
        &agent,
        &[(1, "app1", &app1), (3, "app2", &app2), (4, "app3", &app3)],
    );
    let url = |path: &str| format!("http://{}/{path}", app1.addr);
    let get = |ep: &Endpoint, path: &str| curl(&ep.ns, &url(path), &[], Duration::from_secs(3));
    assert_eq!(get(&app3, "private").0, 200, "no policy yet");

    let policy = agent.file("l3_l4_l7_policy.yaml", L7_POLICY);
    let out = agent.ok(&["apply", "-f", &policy]);
    assert!(out.contains("Revision"), "{out}");
    let mut monitor = Monitor::start(&agent, Some("l7"));
    let mut flows = Monitor::start_with(&agent, &["--type", "l7", "-o", "json"]);
    assert_eq!(
        get(&app2, "public"),
        (200, "public page\n".into()),
        "{}",
        agent.log()
    );
    assert_eq!(
        get(&app2, "private"),
        (403, "Access denied".into()),
        "the seed's L7 denial: 403 with its body"
    );
    assert_eq!(
        get(&app2, "public").0,
        200,
        "the proxy keeps serving after a denial"
    );
    assert_eq!(
        get(&app3, "public").0,
        0,
        "app3 is cut off at L3: no answer at all"
    );

    // `monitor --type l7`: the seed §6 line with endpoint ids, labels and identities.
    let ids: serde_json::Value =
        serde_json::from_str(&agent.ok(&["endpoint", "list", "-o", "json"])).unwrap();
    let identity = |id: u64| {
        ids.as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["identity"].to_string())
            .unwrap()
    };
    let denied = monitor
        .wait_for(Duration::from_secs(5), |l| l.contains("verdict Denied"))
        .unwrap_or_else(|| panic!("no Denied line: {:?}\n{}", monitor.seen, agent.log()));
    assert!(
        denied.starts_with("<- Request http from 3 ([k8s:id=app2 ")
            && denied.contains(") to 1 ([k8s:id=app1 ")
            && denied.ends_with(&format!(
                "identity {}->{}, verdict Denied GET http://{}/private => 403",
                identity(3),
                identity(1),
                app1.addr
            )),
        "{denied}"
    );
    let allowed = monitor
        .wait_for(Duration::from_secs(5), |l| l.contains("verdict Forwarded"))
        .expect("a Forwarded line");
    assert!(
        allowed.contains(&format!("GET http://{}/public => 200 (", app1.addr)),
        "{allowed}"
    );
    drop(monitor);
    // `monitor -o json --type l7`: the same request as a Hubble-style flow with its `l7` layer.
    let line = flows
        .wait_for(Duration::from_secs(5), |l| l.contains("/private"))
        .unwrap_or_else(|| panic!("no L7 flow: {:?}", flows.seen));
    let f: compiler::flow::Flow = serde_json::from_str(&line).expect("a flow");
    let http = f.l7.as_ref().and_then(|l| l.http.clone()).expect("l7.http");
    assert_eq!(
        (f.verdict, http.code, http.method.as_str()),
        (compiler::flow::FlowVerdict::Dropped, 403, "GET"),
        "{line}"
    );
    assert_eq!(http.url, format!("http://{}/private", app1.addr));
    let names = |refs: &[compiler::flow::PolicyRef]| -> Vec<String> {
        refs.iter().map(|r| r.name.clone()).collect()
    };
    assert_eq!(
        names(&f.ingress_denied_by),
        ["rule1"],
        "the policy whose HTTP rules the request failed: {line}"
    );
    let line = flows
        .wait_for(Duration::from_secs(5), |l| l.contains("/public"))
        .unwrap_or_else(|| panic!("no L7 flow for /public: {:?}", flows.seen));
    let ok: compiler::flow::Flow = serde_json::from_str(&line).expect("a flow");
    assert_eq!(ok.verdict, compiler::flow::FlowVerdict::Forwarded, "{line}");
    assert_eq!(names(&ok.ingress_allowed_by), ["rule1"], "{line}");
    // The proxy's requests by outcome in the metrics (Prometheus text, parsed).
    let (status, text) = agent.request("GET", "/v1/metrics", "");
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let requests = |outcome: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "cilium_policy_proxy_requests_total"
                    && s.labels.get("outcome") == Some(outcome)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {outcome} count: {text}"))
    };
    assert!(
        requests("denied") >= 1.0 && requests("forwarded") >= 2.0,
        "{text}"
    );
    assert_eq!(
        (f.source.pod_name.as_str(), f.destination.pod_name.as_str()),
        ("app2", "app1"),
        "{line}"
    );
    drop(flows);

    // Deleting every rule opens /private again, without restarting the agent.
    let pid = agent.child.as_ref().map(|c| c.id());
    let out = agent.ok(&["policy", "delete", "--all"]);
    assert!(out.starts_with("Revision: "), "{out}");
    assert_eq!(get(&app2, "private"), (200, "private page\n".into()));
    assert_eq!(get(&app3, "private").0, 200, "app3 reaches app1 again");
    assert_eq!(
        agent.child.as_ref().map(|c| c.id()),
        pid,
        "same agent process"
    );
    let list = agent.ok(&["endpoint", "list"]);
    assert!(
        ["k8s:id=app1", "k8s:id=app2", "k8s:id=app3"]
            .iter()
            .all(|l| list.contains(l)),
        "the pods and their endpoints stay: {list}"
    );
}
