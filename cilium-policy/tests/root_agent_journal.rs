//! Nothing acknowledged is lost when the state directory's file system fills up: the change
//! that could not be written is refused, and once space is freed, every later acknowledged
//! change survives a restart (checked in the journal and in the restarted agent's state).

mod agent_harness;

use agent_harness::Agent;
use runtime_loader::testkit::require_root;
use std::io::Write;

/// A policy source of about 12 KB (a long YAML comment), so that its journal record needs new
/// pages of the file system.
fn big_policy(peer: &str) -> String {
    format!(
        "# {}\n- endpointSelector: {{matchLabels: {{id: app1}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{id: {peer}}}}}]\n",
        "x".repeat(12_000)
    )
}

fn mount_tmpfs(dir: &std::path::Path, size: &str) {
    let out = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn root_agent_full_state_dir_refuses_then_loses_nothing() {
    if !require_root("root_agent_full_state_dir_refuses_then_loses_nothing") {
        return;
    }
    let mut agent = Agent::start_api_only(vec![]);
    agent.kill();
    let state = agent.dir.path.join("state");
    mount_tmpfs(&state, "1m");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(state.clone());
    agent.spawn();
    let a = agent.file("a.yaml", &big_policy("app2"));
    assert_eq!(agent.ok(&["policy", "import", &a]).trim(), "Revision: 1");
    let journal = std::fs::read(state.join("journal.jsonl")).unwrap();

    // Fill the file system.
    let filler = state.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    drop(f);
    let b = agent.file("b.yaml", &big_policy("app3"));
    let out = agent.cli(&["policy", "import", &b]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains("partial record was removed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(state.join("journal.jsonl")).unwrap(),
        journal,
        "the partial record is cut off"
    );

    // Space comes back: two more acknowledged changes, then a restart.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(agent.ok(&["policy", "import", &b]).trim(), "Revision: 2");
    let c = agent.file("c.yaml", &big_policy("app4"));
    assert_eq!(agent.ok(&["policy", "import", &c]).trim(), "Revision: 3");
    assert_eq!(agent.journal_revisions(), [1, 2, 3]);
    agent.kill();
    agent.spawn();
    let policy = agent.ok(&["policy", "get", "-o", "json"]);
    for f in ["a.yaml", "b.yaml", "c.yaml"] {
        assert!(policy.contains(f), "{f} survived: {policy}");
    }
    let log = agent.log();
    assert!(!log.contains("torn"), "{log}");
    agent.kill();
}
