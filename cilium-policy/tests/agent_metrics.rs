//! `--metrics-listen`: Prometheus text on a loopback TCP port, equal in content to
//! `GET /v1/metrics`, parsed by a real Prometheus text parser; the regeneration histogram counts
//! the writes that enforced policy. And `monitor` refuses an unknown filter with 400.

mod agent_harness;

use agent_harness::{api_call, http, Agent};
use std::net::{SocketAddr, TcpListener, TcpStream};

fn samples(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
}

fn count(s: &prometheus_parse::Scrape, metric: &str) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric)
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => f64::NAN,
        })
}

#[test]
fn metrics_listen_serves_prometheus_text() {
    let addr: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let agent = Agent::start_api_only(vec!["--metrics-listen".into(), addr.to_string()]);
    let rule = agent.file(
        "r.json",
        r#"[{"endpointSelector": {"matchLabels": {"app": "a"}},
             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "b"}}]}]}]"#,
    );
    agent.ok(&["apply", "-f", &rule]);
    let (status, text) = http(
        TcpStream::connect(addr).unwrap(),
        "GET",
        "/metrics",
        &[],
        "",
    );
    assert_eq!(status, 200, "{text}");
    let s = samples(&text);
    assert_eq!(count(&s, "cilium_policy_revision"), Some(1.0), "{text}");
    assert_eq!(count(&s, "cilium_endpoint_count"), Some(0.0), "{text}");
    assert!(
        count(&s, "cilium_endpoint_regeneration_time_stats_seconds").unwrap_or(0.0) >= 1.0,
        "the apply was one regeneration: {text}"
    );
    // The same metrics on the API socket.
    let (status, api) = api_call(&agent.socket, "GET", "/v1/metrics", "");
    assert_eq!(status, 200);
    assert_eq!(count(&samples(&api), "cilium_policy_revision"), Some(1.0));
    // Only /metrics there: the API is not exposed on the metrics port.
    let (status, _) = http(
        TcpStream::connect(addr).unwrap(),
        "GET",
        "/v1/policy",
        &[],
        "",
    );
    assert_eq!(status, 404);
}

#[test]
fn monitor_refuses_an_unknown_filter() {
    let agent = Agent::start_api_only(Vec::new());
    for q in ["type=bogus", "output=yaml", "verdict=MAYBE"] {
        let (status, body) = api_call(&agent.socket, "GET", &format!("/v1/monitor?{q}"), "");
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains("expected"), "{q}: {body}");
    }
}
