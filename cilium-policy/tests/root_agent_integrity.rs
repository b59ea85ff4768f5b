//! A 200 means enforced, on real packets: a PATCH onto another endpoint's interface is
//! refused and both endpoints stay enforced; a pinned map removed, and the whole bpffs
//! unmounted, under the agent are restored (programs reloaded) before the next change is
//! acknowledged; an agent restarted under another `--node` detaches the links the old node
//! name left in front of its own; in tc mode (the default) a tcx program or another tc filter
//! in front of the endpoint's filter is removed by the next change (these tests turn the
//! periodic check off, which repairs them sooner: `root_agent_guard.rs`).

mod agent_harness;

use agent_harness::{add_filter_in_front, app1_from, no_check, setup_app1_from_app2};
use agent_harness::{tc_filters, CUT_WAIT as T};
use runtime_loader::probe::{tcp_ok, PASS_WAIT};
use runtime_loader::testkit::require_root;

#[test]
fn root_agent_patch_onto_another_interface_is_refused() {
    if !require_root("root_agent_patch_onto_another_interface_is_refused") {
        return;
    }
    let (s, agent) = setup_app1_from_app2(95, Vec::new());
    let revisions = agent.journal_revisions();
    let (code, body) = agent.request(
        "PATCH",
        "/v1/endpoint/3",
        &format!(r#"{{"iface": "{}"}}"#, s.app1.host),
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(agent.journal_revisions(), revisions, "nothing recorded");
    // Both endpoints' programs stay on their own interfaces: app1 still admits app2 only, and
    // app3's own egress still runs (it reaches nothing it is denied).
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    let ep: serde_json::Value =
        serde_json::from_str(&agent.request("GET", "/v1/endpoint/3", "").1).unwrap();
    assert_eq!(ep["iface"], s.app3.host.as_str());
    assert_eq!(ep["state"], "ready");
}

#[test]
fn root_agent_lost_pins_and_bpffs_are_restored_before_acknowledging() {
    if !require_root("root_agent_lost_pins_and_bpffs_are_restored_before_acknowledging") {
        return;
    }
    let (s, agent) = setup_app1_from_app2(93, no_check());
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    let bpffs = agent.datapath.as_ref().unwrap().0.path.clone();

    // app1's policy map pin is deleted: the next change must still reach app1's program.
    let policy_pin = agent
        .endpoint_pins(1)
        .join("maps")
        .join(codegen::maps::POLICY.name);
    std::fs::remove_file(&policy_pin).unwrap();
    agent.import_policy(&app1_from(&["app2", "app3"]));
    assert!(
        tcp_ok(&s.app3.ns, s.app1.addr, 80, PASS_WAIT),
        "the acknowledged change is enforced: {}",
        agent.log()
    );
    assert!(policy_pin.exists());

    // The node's IPv4 TCP table loses its pin: the programs still use it, so the check finds
    // it pinned nowhere and reloads every endpoint, whose programs then use a table pinned
    // again.
    let table_pin = agent
        .node_pins()
        .join("maps")
        .join(codegen::maps::CT4_TCP.name);
    std::fs::remove_file(&table_pin).unwrap();
    agent.import_policy(&app1_from(&["app3"]));
    assert!(
        table_pin.exists(),
        "the table is pinned again: {}",
        agent.log()
    );
    let log = agent.log();
    assert!(
        log.contains("cp_ct4_tcp") && log.contains("which is pinned nowhere"),
        "{log}"
    );
    // The programs use the re-pinned table: the next writes' checks find nothing to repair.
    agent.import_policy(&app1_from(&["app2", "app3"]));
    agent.import_policy(&app1_from(&["app3"]));
    let reloads = |log: &str| log.matches("does not match the attached programs").count();
    assert_eq!(reloads(&agent.log()), reloads(&log), "{}", agent.log());
    assert!(tcp_ok(&s.app3.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app2.ns, s.app1.addr, 80, T));

    // The whole bpffs goes away under the agent (its links with it).
    let out = std::process::Command::new("umount")
        .arg("-l")
        .arg(&bpffs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.import_policy(&app1_from(&["app2"]));
    assert!(
        runtime_loader::bpffs::is_bpffs(&bpffs).unwrap(),
        "mounted again"
    );
    assert!(
        !tcp_ok(&s.app3.ns, s.app1.addr, 80, T),
        "the acknowledged change is enforced after the remount: {}",
        agent.log()
    );
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(agent
        .endpoint_pins(1)
        .join("maps")
        .join(codegen::maps::POLICY.name)
        .exists());
    let log = agent.log();
    assert!(log.contains("BPF filesystem is gone"), "{log}");
}

#[test]
fn root_agent_restart_under_another_node_detaches_the_old_links() {
    if !require_root("root_agent_restart_under_another_node_detaches_the_old_links") {
        return;
    }
    let (s, mut agent) = setup_app1_from_app2(94, vec!["--attach-mode".into(), "tcx".into()]);
    agent.kill();
    agent
        .extra
        .extend(["--node".to_string(), "other".to_string()]);
    agent.spawn();
    // Every later change reaches the program that decides: the old node's program (which
    // admits app2 only) would pass or drop packets before the new one ran.
    agent.import_policy(&app1_from(&["app2", "app3"]));
    assert!(
        tcp_ok(&s.app3.ns, s.app1.addr, 80, PASS_WAIT),
        "the new node's program decides: {}",
        agent.log()
    );
    agent.import_policy(&app1_from(&["app3"]));
    assert!(!tcp_ok(&s.app2.ns, s.app1.addr, 80, T));
    let log = agent.log();
    assert!(log.contains("detached a program"), "{log}");
}

/// tc mode: the agent's `cls_bpf` filter decides alone on the endpoint's interface. A tcx
/// program (which runs before every classic filter: here the links an agent in tcx mode left)
/// and a filter added in front of it (same priority, newer: cls_bpf runs it first) are removed
/// by the next change that reaches the endpoint.
#[test]
fn root_agent_tc_mode_removes_what_runs_in_front_of_its_filter() {
    if !require_root("root_agent_tc_mode_removes_what_runs_in_front_of_its_filter") {
        return;
    }
    let mut tcx = no_check();
    tcx.extend(["--attach-mode".into(), "tcx".into()]);
    let (s, mut agent) = setup_app1_from_app2(96, tcx);
    agent.kill();
    agent.extra = no_check();
    agent.extra.extend(["--node".into(), "other".into()]);
    agent.spawn();
    let config: serde_json::Value =
        serde_json::from_str(&agent.request("GET", "/v1/config", "").1).unwrap();
    assert_eq!(config["attach-mode"], "tc", "{config}");
    agent.import_policy(&app1_from(&["app2", "app3"]));
    assert!(
        tcp_ok(&s.app3.ns, s.app1.addr, 80, PASS_WAIT),
        "the tcx links of the old node name no longer decide: {}",
        agent.log()
    );
    agent.import_policy(&app1_from(&["app2"]));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    assert!(agent.log().contains("detached a program"));

    // A classic filter that accepts everything, added after the agent's at its priority.
    let host = s.app1.host.as_str();
    add_filter_in_front(&s.node, host);
    assert!(
        tcp_ok(&s.app3.ns, s.app1.addr, 80, PASS_WAIT),
        "the foreign filter runs first"
    );
    let port = r#"{"port": "80", "protocol": "TCP"}"#;
    let more = format!(r#"{port}, {{"port": "81", "protocol": "TCP"}}"#);
    agent.import_policy(&app1_from(&["app2"]).replace(port, &more));
    assert!(
        !tcp_ok(&s.app3.ns, s.app1.addr, 80, T),
        "the foreign filter is gone: {}",
        agent.log()
    );
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    let text = tc_filters(&s.node, host, "egress");
    assert!(text.contains("handle 0x1"), "{text}");
    assert!(!text.contains("handle 0x2"), "{text}");
}

/// An agent restarted in tc mode on a node an agent in tcx mode ran: the endpoint's filters
/// take over and its tcx links go (unpinned once the filter is in place), and what it
/// acknowledges is what decides.
#[test]
fn root_agent_switch_from_tcx_to_tc_keeps_enforcing() {
    if !require_root("root_agent_switch_from_tcx_to_tc_keeps_enforcing") {
        return;
    }
    let (s, mut agent) = setup_app1_from_app2(92, vec!["--attach-mode".into(), "tcx".into()]);
    let link = agent.endpoint_pins(1).join("link-to-endpoint");
    assert!(link.exists());
    agent.kill();
    agent.extra = vec!["--attach-mode".into(), "tc".into()];
    agent.spawn();
    agent.import_policy(&app1_from(&["app2", "app3"]));
    assert!(
        tcp_ok(&s.app3.ns, s.app1.addr, 80, PASS_WAIT),
        "the filter decides: {}",
        agent.log()
    );
    assert!(!link.exists(), "the tcx link is unpinned");
    assert!(tc_filters(&s.node, &s.app1.host, "egress").contains("handle 0x1"));
    agent.import_policy(&app1_from(&["app2"]));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
}
