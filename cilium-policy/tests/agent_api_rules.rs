//! What the API refuses, checked on the journal and the stored state as well as the answer:
//! PATCH follows PUT's rules (409 for another endpoint's interface; fields it cannot change
//! are refused), and `PATCH /config` is all-or-nothing.

mod agent_harness;

use agent_harness::Agent;
use std::path::Path;

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(p)
        .display()
        .to_string()
}

fn endpoint(agent: &Agent, id: u16) -> serde_json::Value {
    let (code, body) = agent.request("GET", &format!("/v1/endpoint/{id}"), "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn patch_follows_put_and_refuses_what_it_cannot_change() {
    let agent = Agent::start_api_only(vec![]);
    agent.ok(&[
        "apply",
        "-f",
        &repo("testdata/datapath/getting-started/pods.yaml"),
    ]);
    for (id, iface) in [("1", "lxc1"), ("3", "lxc3")] {
        agent.ok(&[
            "endpoint", "add", "--id", id, "--labels", "id=x", "--iface", iface,
        ]);
    }
    agent.ok(&[
        "endpoint",
        "add",
        "--id",
        "5",
        "--pod",
        "default/app2",
        "--iface",
        "lxc5",
    ]);
    let revisions = agent.journal_revisions();
    assert_eq!(revisions, [1, 2, 3, 4]);
    for (path, body, code, says) in [
        (
            "/v1/endpoint/3",
            r#"{"iface": "lxc1"}"#,
            409,
            "already belongs to endpoint 1",
        ),
        ("/v1/endpoint/3", r#"{"id": 4}"#, 400, "cannot change"),
        ("/v1/endpoint/3", r#"{"bogus": 1}"#, 400, "unknown field"),
        (
            "/v1/endpoint/5",
            r#"{"ipv4": "10.9.9.9"}"#,
            400,
            "come from its Pod",
        ),
        (
            "/v1/endpoint/5",
            r#"{"labels": ["a=b"]}"#,
            400,
            "come from its Pod",
        ),
        (
            "/v1/endpoint/5",
            r#"{"iface": "lxc3"}"#,
            409,
            "already belongs to endpoint 3",
        ),
    ] {
        let (c, reply) = agent.request("PATCH", path, body);
        assert_eq!(c, code, "PATCH {path} {body}: {reply}");
        assert!(reply.contains(says), "PATCH {path} {body}: {reply}");
    }
    assert_eq!(agent.journal_revisions(), revisions, "nothing was recorded");
    assert_eq!(endpoint(&agent, 3)["iface"], "lxc3");
    assert_eq!(endpoint(&agent, 5)["ipv4"], "10.0.0.21");
    // What may change still does; repeating its own id is fine.
    let (c, reply) = agent.request("PATCH", "/v1/endpoint/3", r#"{"id": 3, "iface": "lxc3b"}"#);
    assert_eq!(c, 200, "{reply}");
    assert_eq!(agent.journal_revisions(), [1, 2, 3, 4, 5]);
    assert_eq!(endpoint(&agent, 3)["iface"], "lxc3b");
}

#[test]
fn config_patch_is_all_or_nothing() {
    let agent = Agent::start_api_only(vec![]);
    let (c, reply) = agent.request("PATCH", "/v1/config", r#"{"debug": true, "node": "x"}"#);
    assert_eq!(c, 400, "{reply}");
    assert!(reply.contains("nothing was changed"), "{reply}");
    let (_, cfg) = agent.request("GET", "/v1/config", "");
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["debug"], false, "{cfg}");
    assert_eq!(cfg["node"], "node0", "{cfg}");
    let (c, reply) = agent.request("PATCH", "/v1/config", r#"{"debug": true}"#);
    assert_eq!(c, 200, "{reply}");
    assert!(reply.contains("\"debug\":true"), "{reply}");
}
