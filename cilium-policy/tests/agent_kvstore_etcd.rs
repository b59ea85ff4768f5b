//! Identities shared between nodes through a real etcd (Debian `etcd-server`): two agents (two
//! nodes) against one etcd give the same label set the same number, label sets whose hashes
//! collide get different numbers even when allocated on different nodes or concurrently, and
//! numbers survive restarts and new agents. The agents run without a datapath (no root needed);
//! etcd runs in a temporary directory on free ports. Without an `etcd` binary the test prints a
//! skip line and returns.

mod agent_harness;
mod etcd_harness;

use agent_harness::Agent;
use compiler::identity::{alloc::key_of, IdAllocator, LabelFilter};
use etcd_harness::{add, identity, ClosedPort, Etcd};
use ir::{Label, LabelSet, LabelSource};
use std::collections::HashMap;

/// The number local allocation would give `container:id=APP` in an empty cluster.
fn local_number(app: &str) -> u32 {
    let labels = LabelSet::new(vec![Label::new(LabelSource::Container, "id", app)]);
    static FILTER: std::sync::OnceLock<LabelFilter> = std::sync::OnceLock::new();
    let key = key_of(&FILTER.get_or_init(LabelFilter::default).relevant(&labels));
    IdAllocator::cluster().candidate(&key).expect("range").0
}

/// `n` app names (`PREFIX0`, `PREFIX1`, …) whose label sets hash to the same local number.
fn colliding(prefix: &str, n: usize) -> Vec<String> {
    let mut by_number: HashMap<u32, Vec<String>> = HashMap::new();
    for i in 0.. {
        let app = format!("{prefix}{i}");
        let v = by_number.entry(local_number(&app)).or_default();
        v.push(app);
        if v.len() == n {
            return v.clone();
        }
    }
    unreachable!()
}

#[test]
fn kvstore_etcd_two_agents_agree_and_collisions_get_distinct_numbers() {
    let Some(etcd) =
        Etcd::start("kvstore_etcd_two_agents_agree_and_collisions_get_distinct_numbers")
    else {
        return;
    };
    let (a, b) = (etcd.agent("node-a", &[]), etcd.agent("node-b", &[]));

    // The same label set on two nodes: one number.
    let web = add(&a, 1, "web");
    assert_eq!(add(&b, 1, "web"), web);

    // Two label sets with the same hash: numbered locally, node B would give y the number
    // node A gave x. Through etcd, y gets another number, and both nodes agree on both.
    let [x, y] = <[String; 2]>::try_from(colliding("c", 2)).unwrap();
    let x_a = add(&a, 2, &x);
    assert_eq!(x_a, u64::from(local_number(&x)), "x takes its hash slot");
    assert_eq!(local_number(&y), local_number(&x));
    let y_b = add(&b, 2, &y);
    assert_ne!(
        y_b, x_a,
        "colliding label sets on two nodes get different numbers"
    );
    assert_eq!(add(&a, 3, &y), y_b);
    assert_eq!(add(&b, 3, &x), x_a);

    // Concurrent allocation of four more colliding label sets on both nodes: all distinct,
    // and each node agrees with the other afterwards.
    let four = colliding("c", 4);
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let threads: Vec<_> = four
        .iter()
        .enumerate()
        .map(|(i, app)| {
            let agent = if i % 2 == 0 { a.clone() } else { b.clone() };
            let app = app.clone();
            std::thread::spawn(move || add(&agent, 10 + i as u16, &app))
        })
        .collect();
    let numbers: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let distinct: std::collections::BTreeSet<_> = numbers.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "concurrent colliding allocations: {numbers:?}"
    );
    for (i, app) in four.iter().enumerate() {
        let other = if i % 2 == 0 { &b } else { &a };
        assert_eq!(add(other, 20 + i as u16, app), numbers[i], "{app}");
    }

    // A restarted agent reads its numbers back, and a new node (empty state) allocating in
    // another order gets the same ones.
    let mut a = std::sync::Arc::try_unwrap(a).unwrap_or_else(|_| panic!("agent a shared"));
    a.kill();
    a.spawn();
    assert_eq!(
        (identity(&a, 1), identity(&a, 2), identity(&a, 3)),
        (web, x_a, y_b)
    );
    let c = etcd.agent("node-c", &[]);
    assert_eq!(add(&c, 1, &y), y_b);
    assert_eq!(add(&c, 2, &x), x_a);
    assert_eq!(add(&c, 3, "web"), web);
    assert_eq!(add(&c, 4, &four[3]), numbers[3]);
}

#[test]
fn kvstore_etcd_unreachable_refuses_the_change() {
    let closed = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}", closed.port);
    let agent = Agent::start_api_only(
        ["--kvstore", "etcd", "--kvstore-endpoint", &url]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    let out = agent.cli(&[
        "endpoint", "add", "--id", "1", "--labels", "id=web", "--iface", "lxc1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kvstore") && err.contains(&url), "{err}");
    let list = agent.ok(&["endpoint", "list", "-o", "json"]);
    assert!(
        !list.contains("\"id\": 1") && !list.contains("\"id\":1"),
        "{list}"
    );
}

/// The number of a label set is freed when the last node using it lets it go, and kept while
/// any node still uses it.
#[test]
fn kvstore_etcd_unused_identities_are_freed() {
    let Some(etcd) = Etcd::start("kvstore_etcd_unused_identities_are_freed") else {
        return;
    };
    let (a, b) = (etcd.agent("node-a", &[]), etcd.agent("node-b", &[]));
    let [p, q] = <[String; 2]>::try_from(colliding("g", 2)).unwrap();
    let slot = u64::from(local_number(&p));

    // Used by node A only: deleting A's endpoint frees p's number, so q (same hash) gets it.
    assert_eq!(add(&a, 1, &p), slot);
    a.ok(&["endpoint", "delete", "1"]);
    assert_eq!(add(&b, 1, &q), slot, "p's number was freed and goes to q");

    // Used by both nodes: A letting q go keeps its number (B still uses it), so p, allocated
    // again, cannot take it.
    assert_eq!(add(&a, 2, &q), slot);
    a.ok(&["endpoint", "delete", "2"]);
    let p_again = add(&a, 3, &p);
    assert_ne!(p_again, slot, "q's number stays while node B uses q");
    assert_eq!(identity(&b, 1), slot);

    // A node restarted without its endpoints (fresh state) drops the claims its previous run
    // left: q is then used by no node, and a third label set of the same hash gets the number.
    let mut b = b;
    b.kill();
    std::fs::remove_dir_all(b.dir.path.join("state")).expect("state dir");
    b.spawn();
    let r = partner(&p, "h");
    assert_eq!(
        add(&a, 4, &r),
        slot,
        "q's number is free once no node uses q"
    );
}

/// An app name (`PREFIX0`, `PREFIX1`, …) whose label set hashes to the number of `app`'s.
fn partner(app: &str, prefix: &str) -> String {
    let want = local_number(app);
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|a| local_number(a) == want)
        .unwrap_or_default()
}
