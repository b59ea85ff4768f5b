//! One agent per node: a second agent given the socket or the state directory of a running
//! one exits with a clear message and leaves the first untouched (its socket, its journal);
//! the socket of a killed agent is stale and replaced.

mod agent_harness;

use agent_harness::{agent_until_exit, Agent};
use runtime_loader::testkit::TempDir;
use std::ffi::OsStr;

const POLICY: &str = r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}},
  "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}]}]}]"#;

#[test]
fn a_second_agent_on_the_same_socket_or_state_dir_exits_and_the_first_is_untouched() {
    let mut agent = Agent::start_api_only(vec![]);
    let f = agent.file("p.json", POLICY);
    agent.ok(&["policy", "import", &f]);
    let journal = std::fs::read(agent.dir.path.join("state/journal.jsonl")).unwrap();
    let other = TempDir::new("cpsec");
    let state = agent.dir.path.join("state");
    let other_state = other.path.join("state");
    let other_socket = other.path.join("agent.sock");
    let no_dp = OsStr::new("--no-datapath");

    // The same socket, another state directory.
    let out = agent_until_exit(&[
        OsStr::new("--state-dir"),
        other_state.as_os_str(),
        OsStr::new("--api-socket"),
        agent.socket.as_os_str(),
        no_dp,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("in use by another agent"), "{err}");
    assert!(
        agent.socket.exists(),
        "the first agent's socket is still there"
    );

    // The same state directory, another socket: refused, naming the first agent's pid.
    let out = agent_until_exit(&[
        OsStr::new("--state-dir"),
        state.as_os_str(),
        OsStr::new("--api-socket"),
        other_socket.as_os_str(),
        no_dp,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = agent.child.as_ref().unwrap().id();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("state directory") && err.contains(&format!("(pid {pid})")),
        "{err}"
    );
    assert!(!other_socket.exists(), "the refused agent served nothing");

    // The first agent still answers, its journal was not touched, and it goes on.
    assert_eq!(
        std::fs::read(agent.dir.path.join("state/journal.jsonl")).unwrap(),
        journal
    );
    let g = agent.file("q.json", &POLICY.replace("app2", "app3"));
    assert_eq!(agent.ok(&["policy", "import", &g]).trim(), "Revision: 2");
    assert_eq!(agent.journal_revisions(), [1, 2]);

    // A killed agent leaves a stale socket, which the next agent replaces.
    agent.kill();
    assert!(agent.socket.exists());
    agent.spawn();
    let policy = agent.ok(&["policy", "get", "-o", "json"]);
    assert!(policy.contains("q.json"), "{policy}");
}

#[test]
fn a_live_socket_is_refused_even_without_the_lock_file() {
    // An agent of an earlier version holds no lock: a socket that answers is still refused.
    let agent = Agent::start_api_only(vec![]);
    let mut lock = agent.socket.as_os_str().to_owned();
    lock.push(".lock");
    std::fs::remove_file(&lock).unwrap();
    let other = TempDir::new("cplive");
    let other_state = other.path.join("state");
    let out = agent_until_exit(&[
        OsStr::new("--state-dir"),
        other_state.as_os_str(),
        OsStr::new("--api-socket"),
        agent.socket.as_os_str(),
        OsStr::new("--no-datapath"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("another agent is serving on this socket"),
        "{err}"
    );
    agent.ok(&["status"]);
}
