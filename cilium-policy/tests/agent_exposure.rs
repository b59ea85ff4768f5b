//! Least exposure of the root agent: state files private to root, `--policy-dir` does not
//! follow links out of the directory (nothing of the linked file is read or echoed),
//! `--listen-tcp` needs a private token and its own `Host`, and an agent without privileges
//! says what it lacks. Each checks the journal or the files, not only the answer.

mod agent_harness;

use agent_harness::{agent_until_exit, http, Agent};
use runtime_loader::testkit::{require_root, TempDir};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn state_files_are_private() {
    let agent = Agent::start_api_only(vec![]);
    let f = agent.file("p.json", "[]");
    agent.ok(&["policy", "import", &f]);
    // State files are private to root.
    let state = agent.dir.path.join("state");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    for f in ["state.json", "journal.jsonl", "lock"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
}

#[test]
fn policy_dir_links_out_of_the_directory_are_not_read() {
    let outside = TempDir::new("cpout");
    let secret = outside.path.join("shadow.yaml");
    std::fs::write(&secret, "root:S3CRET-HASH:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = TempDir::new("cppdl");
    std::os::unix::fs::symlink(&secret, dir.path.join("evil.yaml")).unwrap();
    let agent = Agent::start_api_only(vec!["--policy-dir".into(), dir.path.display().to_string()]);
    std::fs::write(
        dir.path.join("np.json"),
        r#"[{"endpointSelector": {"matchLabels": {"id": "app1"}}, "ingress": [{}]}]"#,
    )
    .unwrap();
    let t = Instant::now();
    while agent.journal_revisions().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = agent.log();
    assert!(
        log.contains("evil.yaml") && log.contains("out of the policy directory"),
        "{log}"
    );
    let journal = std::fs::read_to_string(agent.dir.path.join("state/journal.jsonl")).unwrap();
    let policy = agent.ok(&["policy", "get", "-o", "json"]);
    for text in [&log, &journal, &policy] {
        assert!(
            !text.contains("S3CRET"),
            "the linked file's content leaked: {text}"
        );
        assert!(
            !text.contains("evil.yaml\""),
            "the link was applied: {text}"
        );
    }
    assert!(policy.contains("np.json"), "{policy}");
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn listen_tcp_needs_a_private_token_and_its_own_host() {
    let tmp = TempDir::new("cptcp");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let token = tmp.path.join("token");
    std::fs::write(&token, "c0ffee-0123456789-abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = tmp.path.join("state");
    let socket = tmp.path.join("agent.sock");
    let args = |extra: &[&OsStr]| {
        let mut a: Vec<&OsStr> = vec![
            OsStr::new("--state-dir"),
            state.as_os_str(),
            OsStr::new("--api-socket"),
            socket.as_os_str(),
            OsStr::new("--no-datapath"),
            OsStr::new("--listen-tcp"),
            OsStr::new(&addr),
        ];
        a.extend_from_slice(extra);
        agent_until_exit(&a)
    };
    // No token file at all: refused by the command line.
    let out = args(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--api-token-file"), "{err}");
    // A token other users can read.
    let out = args(&[OsStr::new("--api-token-file"), token.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let agent = Agent::start_api_only(vec![
        "--listen-tcp".into(),
        addr.clone(),
        "--api-token-file".into(),
        token.display().to_string(),
    ]);
    let tcp = || {
        let t = Instant::now();
        loop {
            match std::net::TcpStream::connect(&addr) {
                Ok(s) => return s,
                Err(e) if t.elapsed() > Duration::from_secs(10) => panic!("{addr}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    };
    let bearer = "Bearer c0ffee-0123456789-abcdef";
    let policy = r#"{"sources": [{"path": "p.json", "text": "[]"}]}"#;
    let cases: [(&[(&str, &str)], u16); 5] = [
        (&[("Host", &addr)], 401),
        (
            &[
                ("Host", &addr),
                ("Authorization", "Bearer wrong-token-0123456"),
            ],
            401,
        ),
        (&[("Host", "evil.example"), ("Authorization", bearer)], 403),
        (&[("Authorization", bearer)], 403),
        (
            &[
                ("Host", &format!("localhost:{port}")),
                ("Authorization", bearer),
            ],
            200,
        ),
    ];
    for (headers, want) in cases {
        let (code, body) = http(tcp(), "PUT", "/v1/policy", headers, policy);
        assert_eq!(code, want, "{headers:?}: {body}");
        let recorded = agent.journal_revisions().len();
        assert_eq!(recorded, usize::from(want == 200), "{headers:?}");
    }
}

#[test]
fn an_agent_without_privileges_says_what_it_lacks() {
    // Needs root to drop its privileges.
    if !require_root("an_agent_without_privileges_says_what_it_lacks") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let tmp = TempDir::new("cppriv");
    std::fs::set_permissions(&tmp.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new(agent_harness::BIN)
        .arg("agent")
        .arg("--state-dir")
        .arg(tmp.path.join("state"))
        .arg("--api-socket")
        .arg(tmp.path.join("agent.sock"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("lacks CAP_BPF and CAP_NET_ADMIN") && err.contains("--no-datapath"),
        "{err}"
    );
    assert!(!tmp.path.join("agent.sock").exists());
}

#[test]
fn a_persisted_source_that_does_not_parse_is_reported_with_where_it_is_stored() {
    let tmp = TempDir::new("cpbad");
    let state = tmp.path.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let snapshot = serde_json::json!({
        "revision": 1,
        "sources": {"bad.json": "[{\"endpointSelector\": 5}]"},
        "endpoints": {},
        "revisions": []
    });
    std::fs::write(state.join("state.json"), snapshot.to_string()).unwrap();
    let socket = tmp.path.join("agent.sock");
    let out = agent_until_exit(&[
        OsStr::new("--state-dir"),
        state.as_os_str(),
        OsStr::new("--api-socket"),
        socket.as_os_str(),
        OsStr::new("--no-datapath"),
    ]);
    // miette wraps long lines: compare words.
    let err: Vec<&str> = std::str::from_utf8(&out.stderr)
        .unwrap()
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect();
    let err = err.join(" ");
    assert!(!out.status.success(), "{err}");
    let want = format!(
        "{}: the persisted policy source bad.json is not valid",
        state.join("state.json").display()
    );
    assert!(err.contains(&want) && err.contains("bad.json:1:"), "{err}");
}
