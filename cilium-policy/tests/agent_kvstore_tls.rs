//! The kvstore over TLS with client-certificate authentication: a real etcd started with a
//! server certificate and `--client-cert-auth`, on a CA and certificates the test generates.
//! An agent with the CA and a client certificate signed by it numbers identities through it;
//! an agent given another CA, or no client certificate, stops at start with the reason. The
//! agents run without a datapath (no root needed). Without an `etcd` binary the test prints a
//! skip line and returns.

mod agent_harness;
mod etcd_harness;

use agent_harness::BIN;
use etcd_harness::{add, Etcd, Pki};
use runtime_loader::testkit::TempDir;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs an agent with `flags` and expects it to stop with an error within 20 s: its stderr,
/// as one line.
fn refused_at_start(flags: &[String]) -> String {
    let dir = TempDir::new("cpagtls");
    let mut child = Command::new(BIN)
        .args(["agent", "--no-datapath", "--state-dir"])
        .arg(dir.path.join("state"))
        .arg("--api-socket")
        .arg(dir.path.join("agent.sock"))
        .args(flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path.join("agent.log")).expect("log"))
        .spawn()
        .expect("starting the agent");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path.join("agent.log")).unwrap_or_default();
    assert!(!status.success(), "the agent started: {log}");
    eprintln!("refused: {log}");
    // One line, without the report's wrapping and gutter.
    log.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn kvstore_tls_client_certificate_accepted_wrong_ca_or_none_refused() {
    let pki = Pki::new();
    let Some(etcd) = Etcd::start_tls(
        "kvstore_tls_client_certificate_accepted_wrong_ca_or_none_refused",
        &pki,
    ) else {
        return;
    };
    let file = |name: &str| pki.path(name).display().to_string();
    let (ca, other_ca, cert, key) = (
        file("ca.pem"),
        file("other-ca.pem"),
        file("node.pem"),
        file("node-key.pem"),
    );
    let tls = [
        "--kvstore-ca",
        &ca,
        "--kvstore-cert",
        &cert,
        "--kvstore-key",
        &key,
    ];

    // The right CA and a client certificate: two nodes agree on a number from etcd.
    let (a, b) = (etcd.agent("node-a", &tls), etcd.agent("node-b", &tls));
    let web = add(&a, 1, "web");
    assert_eq!(add(&b, 1, "web"), web);
    assert!((256..=65535).contains(&web), "{web}");

    let flags = |extra: &[&str]| -> Vec<String> {
        ["--kvstore", "etcd", "--kvstore-endpoint", &etcd.url]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    // Another CA: etcd's server certificate is not trusted.
    let err = refused_at_start(&flags(&[
        "--kvstore-ca",
        &other_ca,
        "--kvstore-cert",
        &cert,
        "--kvstore-key",
        &key,
    ]));
    assert!(
        err.contains(&format!("kvstore {}", etcd.url))
            && err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    // No client certificate: etcd refuses the connection (its alert, or a closed stream).
    let err = refused_at_start(&flags(&["--kvstore-ca", &ca]));
    assert!(
        err.contains(&format!("kvstore {}", etcd.url))
            && err.contains("no client certificate was given"),
        "{err}"
    );
    // TLS files with a plain endpoint, and an https endpoint without a CA: bad flags.
    let plain = etcd.url.replacen("https://", "http://", 1);
    let err = refused_at_start(
        &[
            "--kvstore",
            "etcd",
            "--kvstore-endpoint",
            &plain,
            "--kvstore-ca",
            &ca,
        ]
        .map(String::from),
    );
    assert!(err.contains("need an https:// endpoint"), "{err}");
    let err = refused_at_start(&flags(&[]));
    assert!(err.contains("needs --kvstore-ca"), "{err}");
    // A CA file that is not there.
    let err = refused_at_start(&flags(&["--kvstore-ca", "/nonexistent/ca.pem"]));
    assert!(err.contains("reading the CA /nonexistent/ca.pem"), "{err}");
}
