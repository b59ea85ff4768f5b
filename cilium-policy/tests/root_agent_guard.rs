//! The periodic datapath check (`--datapath-check-interval`) on real packets: what is changed
//! behind the agent's back is repaired without any change of the endpoint. In tc mode (the
//! default) a filter put in front of the endpoint's, which passes everything, and then the
//! endpoint's own filter deleted; in tcx mode the endpoint's link detached. Each time app3,
//! which the policy does not allow, gets through while the fault lasts and is denied again
//! once the check repaired it, and `/metrics` counts the repairs.

mod agent_harness;

use agent_harness::{add_filter_in_front, delete_own_filter, setup_app1_from_app2, tc_filters};
use agent_harness::{Agent, Setup, CUT_WAIT as T};
use runtime_loader::probe::{tcp_ok, PASS_WAIT};
use runtime_loader::testkit::require_root;
use std::time::{Duration, Instant};

fn check_every_200ms(mut extra: Vec<String>) -> Vec<String> {
    extra.extend(["--datapath-check-interval".into(), "0.2".into()]);
    extra
}

fn repairs(agent: &Agent) -> u64 {
    let (_, text) = agent.request("GET", "/v1/metrics", "");
    text.lines()
        .find_map(|l| l.strip_prefix("cilium_policy_datapath_repairs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no repairs counter in\n{text}"))
}

/// Waits up to 5 s for app3's connection to app1 to be denied again.
fn denied_again(s: &Setup, agent: &Agent, what: &str) {
    let limit = Instant::now() + Duration::from_secs(5);
    while tcp_ok(&s.app3.ns, s.app1.addr, 80, T) {
        assert!(
            Instant::now() < limit,
            "{what}: still not repaired\n{}",
            agent.log()
        );
    }
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT), "{what}");
}

#[test]
fn root_agent_check_repairs_tc_filters_changed_behind_its_back() {
    if !require_root("root_agent_check_repairs_tc_filters_changed_behind_its_back") {
        return;
    }
    let (s, agent) = setup_app1_from_app2(97, check_every_200ms(Vec::new()));
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    // A few sweeps over the three endpoints (one netlink socket per turn) find nothing wrong.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(repairs(&agent), 0, "nothing to repair yet\n{}", agent.log());
    let host = s.app1.host.as_str();

    // A filter that passes everything, in front of the endpoint's.
    add_filter_in_front(&s.node, host);
    denied_again(&s, &agent, "a filter in front");
    let text = tc_filters(&s.node, host, "egress");
    assert!(
        text.contains("handle 0x1") && !text.contains("handle 0x2"),
        "{text}"
    );
    assert!(agent.log().contains("changed behind the agent's back"));
    assert_eq!(repairs(&agent), 1, "one repair for the filter in front");

    // The endpoint's own filter deleted: nothing enforces app1's ingress until it is back.
    delete_own_filter(&s.node, host, "egress");
    denied_again(&s, &agent, "the own filter deleted");
    let text = tc_filters(&s.node, host, "egress");
    assert!(text.contains("handle 0x1"), "{text}");
    assert_eq!(
        repairs(&agent),
        2,
        "one more for the own filter\n{}",
        agent.log()
    );
}

#[test]
fn root_agent_check_repairs_a_detached_tcx_link() {
    if !require_root("root_agent_check_repairs_a_detached_tcx_link") {
        return;
    }
    let tcx = vec!["--attach-mode".into(), "tcx".into()];
    let (s, agent) = setup_app1_from_app2(98, check_every_200ms(tcx));
    let link = agent.endpoint_pins(1).join("link-to-endpoint");
    s.node.exec(&[
        "bpftool",
        "link",
        "detach",
        "pinned",
        &link.display().to_string(),
    ]);
    denied_again(&s, &agent, "the link detached");
    assert!(repairs(&agent) >= 1, "{}", agent.log());
}
