//! Live regeneration on real pinned maps: a policy change rewrites only the endpoints it
//! affects. With app1, app2 and app3 as endpoints, importing a policy that selects app3 leaves
//! app1's and app2's pinned maps (policy entries and the policy revision in `cp_state`) exactly
//! as they were, while app3's change; deleting that policy by its labels restores app3 and
//! again leaves the others alone (rule ids stay stable, so no value is rewritten). Enforcement
//! is checked on real sockets.

mod agent_harness;

use agent_harness::{setup, Agent};
use codegen::layout::{EpState, PolicyValue};
use codegen::maps;
use runtime_loader::probe::{tcp_ok, PASS_WAIT};
use runtime_loader::testkit::require_root;
use runtime_loader::RawMap;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_millis(800);

/// Endpoint `id`'s pinned map `name`.
fn pin(agent: &Agent, id: u16, name: &str) -> PathBuf {
    agent.endpoint_pins(id).join("maps").join(name)
}

/// (key, value) bytes of a map's entries.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Endpoint `id`'s policy-map entries (verdicts and rule ids, without the counters) and the
/// policy revision its `cp_state` holds.
fn snapshot(agent: &Agent, id: u16) -> (Entries, u32) {
    let policy = RawMap::open_pinned(&pin(agent, id, maps::POLICY.name))
        .expect("policy map")
        .entries()
        .expect("policy entries")
        .into_iter()
        .map(|(k, v)| (k, v[..PolicyValue::DECISION_LEN].to_vec()))
        .collect();
    let state = RawMap::open_pinned(&pin(agent, id, maps::STATE.name))
        .expect("state map")
        .lookup(&0u32.to_ne_bytes())
        .expect("state lookup")
        .and_then(|v| EpState::from_bytes(&v))
        .expect("endpoint state");
    (policy, state.policy_rev)
}

const APP3: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app3"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}],
               "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}],
  "labels": [{"key": "team", "value": "three"}]}]"#;

const APP1: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}],
               "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
  "labels": [{"key": "team", "value": "one"}]}]"#;

#[test]
fn root_agent_policy_change_touches_only_affected_endpoints() {
    if !require_root("root_agent_policy_change_touches_only_affected_endpoints") {
        return;
    }
    let (s, agent) = setup(95);
    let f = agent.file("app1.json", APP1);
    agent.ok(&["policy", "import", &f]);
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    let before: Vec<_> = (1..=3).map(|id| snapshot(&agent, id)).collect();
    // Sorted before app1.json: a world rebuilt from the sources in path order would renumber
    // app1's rule and rewrite its entries (rule ids are in the values); incremental
    // regeneration keeps rule ids stable.
    let g = agent.file("a-app3.json", APP3);
    agent.ok(&["policy", "import", &g]);
    let after: Vec<_> = (1..=3).map(|id| snapshot(&agent, id)).collect();
    assert_eq!(after[0], before[0], "app1's maps untouched");
    assert_eq!(after[1], before[1], "app2's maps untouched");
    assert_ne!(after[2].0, before[2].0, "app3's policy entries changed");
    assert!(after[2].1 > before[2].1, "app3's policy revision bumped");
    // app1 is still enforced exactly as before.
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
    // Deleting by labels removes exactly the app3 rule; app1 and app2 again untouched.
    agent.ok(&["policy", "delete", "team=three"]);
    let last: Vec<_> = (1..=3).map(|id| snapshot(&agent, id)).collect();
    assert_eq!(last[0], before[0]);
    assert_eq!(last[1], before[1]);
    assert_eq!(last[2].0, before[2].0, "app3 back to its entries before");
    let rules = agent.ok(&["policy", "get"]);
    assert!(rules.contains("app1") && !rules.contains("8080"), "{rules}");
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
}

/// app1 accepting TCP from app2 on `ports` more even ports from 20000 (no two adjacent, so
/// no port blocks: every one a hash entry),
/// 40 to a `toPorts` entry (the front end's limit).
fn app1_many_ports(ports: u16) -> String {
    let list: Vec<String> = (0..ports)
        .map(|i| format!(r#"{{"port": "{}", "protocol": "TCP"}}"#, 20_000 + 2 * i))
        .collect();
    let to_ports: Vec<String> = list
        .chunks(40)
        .map(|c| format!(r#"{{"ports": [{}]}}"#, c.join(", ")))
        .collect();
    format!(
        r#"[{{"endpointSelector": {{"matchLabels": {{"id": "app1"}}}},
  "ingress": [{{"fromEndpoints": [{{"matchLabels": {{"id": "app2"}}}}],
               "toPorts": [{}]}}],
  "labels": [{{"key": "team", "value": "big"}}]}}]"#,
        to_ports.join(", ")
    )
}

/// An endpoint's policy map is created sized from its entries (issue 15: its bucket array is
/// allocated whole); a change that needs more than that reloads the endpoint with a larger map,
/// filled whole before the new programs are attached, and enforcement goes on; fewer entries
/// later keep the larger map (no reload to shrink).
#[test]
fn root_agent_policy_map_grows_by_reload_when_a_change_needs_more() {
    if !require_root("root_agent_policy_map_grows_by_reload_when_a_change_needs_more") {
        return;
    }
    let (s, agent) = setup(96);
    let f = agent.file("app1.json", APP1);
    agent.ok(&["policy", "import", &f]);
    let capacity = |id| {
        RawMap::open_pinned(&pin(&agent, id, maps::POLICY.name))
            .expect("policy map")
            .max_entries()
    };
    assert_eq!(capacity(1), codegen::endpoint::POLICY_MIN_CAPACITY);
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));

    // 1,100 more exact ports from app2: more than the map holds, so a map of twice what the
    // change needs (1,100 ports, app2's every-protocol marker and the 80 entry), rounded up.
    let g = agent.file("big.json", &app1_many_ports(1_100));
    agent.ok(&["policy", "import", &g]);
    assert_eq!(capacity(1), 4_096, "app1 reloaded with a larger policy map");
    assert_eq!(capacity(2), codegen::endpoint::POLICY_MIN_CAPACITY);
    let (entries, _) = snapshot(&agent, 1);
    assert!(entries.len() > 1_100, "{} entries", entries.len());
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));

    agent.ok(&["policy", "delete", "team=big"]);
    assert_eq!(capacity(1), 4_096, "no reload to shrink");
    assert!(snapshot(&agent, 1).0.len() < 10);
    assert!(tcp_ok(&s.app2.ns, s.app1.addr, 80, PASS_WAIT));
    assert!(!tcp_ok(&s.app3.ns, s.app1.addr, 80, T));
}
