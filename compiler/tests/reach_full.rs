//! `policy::reach` (side ranges per map state and peer class, intersected) against evaluating
//! every pair with `connectivity::allowed_ranges`, on every semantics and getting-started suite:
//! per endpoint, and with the endpoints of each map state collapsed into one party.

use compiler::cluster::{load, ClusterConfig};
use compiler::policy::connectivity::{allowed_ranges, End, PortRange};
use compiler::policy::reach::{intersect, reach};
use compiler::policy::{key_of, PolicyEngine};
use ir::{NumericIdentity, Protocol};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn suites() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root");
    let mut v = Vec::new();
    for dir in ["testdata/semantics", "testdata/getting-started"] {
        for e in std::fs::read_dir(root.join(dir)).expect("suites").flatten() {
            if e.path().join("expect.tsv").exists() {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

fn world() -> End<'static> {
    End {
        policy: None,
        identity: NumericIdentity::WORLD,
        addr: None,
    }
}

fn brute(ends: &[End], with_self: impl Fn(usize) -> bool) -> Vec<(u32, u32, Vec<PortRange>)> {
    let mut out = Vec::new();
    for (i, s) in ends.iter().enumerate() {
        for (j, d) in ends.iter().enumerate() {
            if (i == j && !with_self(i)) || (s.policy.is_none() && d.policy.is_none()) {
                continue;
            }
            let r = allowed_ranges(*s, *d);
            if !r.is_empty() {
                out.push((i as u32, j as u32, r));
            }
        }
    }
    out
}

#[test]
fn reach_equals_every_pair_evaluated() {
    let mut pairs = 0;
    for suite in suites() {
        let (p, c) = load(std::slice::from_ref(&suite), ClusterConfig::default()).expect("loads");
        let e = PolicyEngine::new(p, c);
        let mut ends: Vec<End> = e
            .cluster
            .endpoints()
            .map(|ep| End {
                policy: e.policy_of(&ep.name),
                identity: ep.identity,
                addr: ep.ips.first().copied(),
            })
            .collect();
        ends.push(world());
        // Per endpoint.
        let r = reach(&ends, |_| false);
        let got: Vec<_> = r
            .pairs
            .iter()
            .map(|&(s, d, k)| (s, d, r.ranges[k as usize].clone()))
            .collect();
        assert_eq!(got, brute(&ends, |_| false), "{}", suite.display());
        pairs += got.len();
        // One party per map state, paired with itself.
        let mut groups: BTreeMap<_, End> = BTreeMap::new();
        for (ep, end) in e.cluster.endpoints().zip(&ends) {
            groups.entry((key_of(ep), end.addr)).or_insert(*end);
        }
        let mut ends: Vec<End> = groups.into_values().collect();
        ends.push(world());
        let last = ends.len() - 1;
        let r = reach(&ends, |i| i != last);
        let got: Vec<_> = r
            .pairs
            .iter()
            .map(|&(s, d, k)| (s, d, r.ranges[k as usize].clone()))
            .collect();
        assert_eq!(
            got,
            brute(&ends, |i| i != last),
            "{} grouped",
            suite.display()
        );
    }
    assert!(pairs > 100, "{pairs}");
}

#[test]
fn intersection_of_range_lists() {
    let r = |p, a, b| PortRange {
        protocol: p,
        first: a,
        last: b,
        audit: false,
    };
    let a = [
        r(Protocol::Tcp, 0, 100),
        r(Protocol::Tcp, 200, 300),
        r(Protocol::Icmp, 8, 8),
    ];
    let b = [
        r(Protocol::Tcp, 50, 250),
        r(Protocol::Udp, 0, 65535),
        r(Protocol::Icmp, 0, 255),
    ];
    assert_eq!(
        intersect(&a, &b),
        [
            r(Protocol::Tcp, 50, 100),
            r(Protocol::Tcp, 200, 250),
            r(Protocol::Icmp, 8, 8)
        ]
    );
    assert_eq!(intersect(&a, &[]), []);
}
