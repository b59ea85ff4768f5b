//! `diff` recomputes only the groups the differing rules touch and compares only the flows that
//! can change; this checks its result against a brute force: two policy engines built from
//! scratch (common + old, common + new) and every ordered endpoint pair and `--peer` address both
//! ways on every compared port. The inputs are the semantics suites, split into inventory files
//! and policy files, with the policy files divided between the sides in several ways.

use compiler::cluster::{load, ClusterConfig};
use compiler::diff::{diff, rule_ports, DiffInput};
use compiler::policy::connectivity::{verdict, End};
use compiler::policy::PolicyEngine;
use ir::Protocol;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// (src, dst, protocol, port, old outcome, new outcome): `allow`, `audit` or `deny`.
type Row = (String, String, Protocol, u16, &'static str, &'static str);

/// What `verdict` says, in `diff`'s words.
fn word(v: Option<bool>) -> &'static str {
    match v {
        None => "deny",
        Some(true) => "audit",
        Some(false) => "allow",
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn engine(paths: &[PathBuf]) -> PolicyEngine {
    let (p, c) = load(paths, ClusterConfig::default()).expect("loads");
    PolicyEngine::new(p, c)
}

fn end<'a>(e: &'a PolicyEngine, name: &str) -> Option<End<'a>> {
    let ep = e.cluster.endpoint(name)?;
    Some(End {
        policy: e.policy_of(name),
        identity: ep.identity,
        addr: ep.ips.first().copied(),
    })
}

/// Every (src, dst, port) whose verdict (audited or not, when allowed) differs between the two
/// engines.
fn brute_force(
    old: &PolicyEngine,
    new: &PolicyEngine,
    ports: &[(Protocol, u16)],
    peers: &[IpAddr],
) -> Vec<Row> {
    let peer = |e: &PolicyEngine, a: IpAddr| End {
        policy: None,
        identity: e.cluster.identity_of_addr(a),
        addr: Some(a),
    };
    let mut names: Vec<String> = old.cluster.endpoints().map(|e| e.name.clone()).collect();
    names.sort();
    let mut out = Vec::new();
    let mut check = |s: String, d: String, o: (End, End), n: (End, End)| {
        for &(proto, port) in ports {
            let a = word(verdict(o.0, o.1, proto, port));
            let b = word(verdict(n.0, n.1, proto, port));
            if a != b {
                out.push((s.clone(), d.clone(), proto, port, a, b));
            }
        }
    };
    for s in &names {
        for d in names.iter().filter(|d| *d != s) {
            let o = (end(old, s).unwrap(), end(old, d).unwrap());
            let n = (end(new, s).unwrap(), end(new, d).unwrap());
            check(s.clone(), d.clone(), o, n);
        }
        for &a in peers {
            let (os, ns) = (end(old, s).unwrap(), end(new, s).unwrap());
            check(
                a.to_string(),
                s.clone(),
                (peer(old, a), os),
                (peer(new, a), ns),
            );
            check(
                s.clone(),
                a.to_string(),
                (os, peer(old, a)),
                (ns, peer(new, a)),
            );
        }
    }
    out.sort();
    out
}

/// A suite's files: those with inventory (common to both sides) and the policy-only ones.
fn split(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("suite")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json")
            )
        })
        .collect();
    files.sort();
    files.into_iter().partition(|f| {
        let out = compiler::front::load(std::slice::from_ref(f)).expect("reads");
        !out.inventory.is_empty()
    })
}

#[test]
fn diff_equals_the_brute_force_on_every_semantics_suite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty.yaml");
    std::fs::write(&empty, "# no policies\n").expect("write");
    let peers: Vec<IpAddr> = ["203.0.113.5", "192.0.2.1", "8.8.8.8", "2001:db8::1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let mut suites: Vec<PathBuf> = std::fs::read_dir(root().join("testdata/semantics"))
        .expect("suites")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    suites.sort();
    let mut compared = 0;
    let mut differing = 0;
    for suite in suites {
        let (common, policies) = split(&suite);
        if policies.is_empty() {
            continue;
        }
        let n = policies.len();
        let or_empty = |v: &[PathBuf]| {
            if v.is_empty() {
                vec![empty.clone()]
            } else {
                v.to_vec()
            }
        };
        let cases = [
            (policies.clone(), policies[..n - 1].to_vec()),
            (policies[1..].to_vec(), policies.clone()),
            (policies[..n / 2].to_vec(), policies[n / 2..].to_vec()),
            (policies.clone(), policies.clone()),
        ];
        for (old, new) in cases {
            let (old, new) = (or_empty(&old), or_empty(&new));
            let input = DiffInput {
                common: common.clone(),
                old: old.clone(),
                new: new.clone(),
                config: ClusterConfig::default(),
                ports: vec![
                    (Protocol::Tcp, 80),
                    (Protocol::Udp, 53),
                    (Protocol::Icmp, 8),
                ],
                peers: peers.clone(),
            };
            let d = diff(&input).unwrap_or_else(|e| panic!("{}: {e}", suite.display()));
            let mut got: Vec<Row> = d
                .changes
                .iter()
                .map(|c| {
                    let (o, n) = (c.old.outcome().word(), c.new.outcome().word());
                    (c.src.clone(), c.dst.clone(), c.protocol, c.port, o, n)
                })
                .collect();
            got.sort();
            let e_old = engine(&[common.clone(), old].concat());
            let e_new = engine(&[common.clone(), new].concat());
            let mut ports = rule_ports(&d.policy, &e_old.cluster);
            ports.extend(input.ports.iter().copied());
            ports.sort();
            ports.dedup();
            let want = brute_force(&e_old, &e_new, &ports, &peers);
            assert_eq!(got, want, "{}", suite.display());
            compared += 1;
            differing += want.len();
        }
    }
    assert!(compared >= 30, "{compared} cases");
    assert!(
        differing > 50,
        "the cases change too little to test anything: {differing}"
    );
}
