//! The kernel enforces exactly what `trace` says: for the seed's getting-started scenario, the
//! semantics fixture suites (`testdata/semantics/*/`, when present) and random scenarios, every
//! probe (TCP, UDP, SCTP, ICMP, IPv4 and IPv6, endpoint and outside peers) gets the same verdict
//! from BPF_PROG_TEST_RUN as from `trace`, and replies of allowed connections pass.

mod differential;

use differential::{
    compare, fqdn_probes, gen, generator, probes, scenario, scenario_learned, sources_from,
};
use runtime_loader::testkit::require_root;
use std::path::PathBuf;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

#[test]
fn root_differential_getting_started() {
    if !require_root("root_differential_getting_started") {
        return;
    }
    let mut g = generator();
    let s = scenario(
        sources_from(&[repo("testdata/datapath/getting-started")]),
        &mut g,
    );
    let p = probes(&s, &gen::PORTS);
    assert!(p.len() > 100);
    let bad = compare(&s, &p);
    assert!(
        bad.is_empty(),
        "{} of {} probes disagree:\n{}",
        bad.len(),
        p.len(),
        bad.join("\n")
    );
    // The documented outcome itself: app2 reaches app1 on 80, app3 does not.
    let t = |src: &str| {
        let src = compiler::trace::resolve_party(
            &s.cluster,
            &compiler::trace::PartySpec::Endpoint(src.into()),
        )
        .unwrap();
        let dst = compiler::trace::resolve_party(
            &s.cluster,
            &compiler::trace::PartySpec::Endpoint("default/app1-a".into()),
        )
        .unwrap();
        compiler::trace::trace(&s.policy, &s.cluster, src, dst, ir::Protocol::Tcp, 80, None).allowed
    };
    assert!(t("default/app2") && !t("default/app3"));
}

#[test]
fn root_differential_semantics_fixtures() {
    if !require_root("root_differential_semantics_fixtures") {
        return;
    }
    // DIFF_SEMANTICS_DIR points the test at another copy of the suites (e.g. a work tree).
    let root = std::env::var_os("DIFF_SEMANTICS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("testdata/semantics"));
    let Ok(dirs) = std::fs::read_dir(root) else {
        eprintln!("no testdata/semantics yet: only the other differential tests run");
        return;
    };
    let mut g = generator();
    let mut failures = Vec::new();
    for d in dirs.flatten().filter(|d| d.path().is_dir()) {
        let s = scenario(sources_from(&[d.path()]), &mut g);
        let bad = compare(&s, &probes(&s, &gen::PORTS));
        failures.extend(
            bad.into_iter()
                .map(|b| format!("{}: {b}", d.path().display())),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `fqdn:NAME@IP` parties of a suite's expectations: one scenario per pair, whose nodes
/// learned that IP from an answer for NAME, probed from every endpoint to the IP.
#[test]
fn root_differential_learned_fqdn_addresses() {
    if !require_root("root_differential_learned_fqdn_addresses") {
        return;
    }
    let root = repo("testdata/semantics");
    let mut g = generator();
    let mut failures = Vec::new();
    let mut pairs_seen = 0;
    for d in std::fs::read_dir(root).unwrap().flatten() {
        let Ok(expect) = std::fs::read_to_string(d.path().join("expect.tsv")) else {
            continue;
        };
        let mut pairs: Vec<(String, std::net::IpAddr)> = expect
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split('\t'))
            .filter_map(|f| f.strip_prefix("fqdn:")?.split_once('@'))
            .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
            .collect();
        pairs.sort();
        pairs.dedup();
        let mut ports: Vec<u16> = expect
            .lines()
            .filter_map(|l| l.split('\t').nth(2)?.parse().ok())
            .chain(gen::PORTS)
            .collect();
        ports.sort();
        ports.dedup();
        for (name, addr) in pairs {
            pairs_seen += 1;
            let learned = [(name.clone(), addr)];
            let s = scenario_learned(sources_from(&[d.path()]), &mut g, &learned);
            let bad = compare(&s, &fqdn_probes(&s, &name, addr, &ports));
            failures.extend(
                bad.into_iter()
                    .map(|b| format!("{} ({name}): {b}", d.path().display())),
            );
        }
    }
    assert!(pairs_seen > 0, "no suite has fqdn:NAME@IP expectations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn root_differential_random_policies() {
    if !require_root("root_differential_random_policies") {
        return;
    }
    let seeds: u64 = std::env::var("DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut g = generator();
    let mut failures = Vec::new();
    let mut total = 0;
    for seed in 1..=seeds {
        let sources = gen::scenario(seed);
        let s = scenario(sources.clone(), &mut g);
        let p = probes(&s, &gen::PORTS);
        total += p.len();
        let bad = compare(&s, &p);
        if !bad.is_empty() {
            let text: Vec<String> = sources
                .iter()
                .map(|s| String::from_utf8_lossy(&s.text).into_owned())
                .collect();
            failures.push(format!(
                "seed {seed}:\n{}\n{}",
                bad.join("\n"),
                text.join("")
            ));
        }
    }
    assert!(total > 1000);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
