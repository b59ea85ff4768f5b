//! Claims under the node's lease, with a real etcd (Debian `etcd-server`): a killed agent's
//! claims expire a TTL later and the numbers only it used are freed by the other agents; an
//! agent cut off from etcd keeps its endpoints and identities (only label sets new to it are
//! refused), takes numbers again once etcd is back, and puts its claims again under a new
//! lease when its lease expired meanwhile. The agents run without a datapath (no root
//! needed). Without an `etcd` binary the test prints a skip line and returns.

mod agent_harness;
mod etcd_harness;

use etcd_harness::{add, claims_of, identity, within, Etcd, PREFIX};
use std::time::Duration;

#[test]
fn kvstore_lease_dead_node_claims_expire_and_its_identities_are_freed() {
    let Some(etcd) =
        Etcd::start("kvstore_lease_dead_node_claims_expire_and_its_identities_are_freed")
    else {
        return;
    };
    let ttl = ["--kvstore-lease-ttl", "2"];
    let (mut a, b) = (etcd.agent("node-a", &ttl), etcd.agent("node-b", &ttl));
    add(&a, 1, "solo");
    let shared = add(&a, 2, "shared");
    assert_eq!(add(&b, 1, "shared"), shared);
    assert_eq!(claims_of(&etcd, "node-a"), 2);
    let solo_key = format!("{PREFIX}/value/container:id=solo");
    let shared_key = format!("{PREFIX}/value/container:id=shared");
    assert!(etcd.get(&solo_key).is_some());

    a.kill();
    // Kept while the lease runs (2 s from the last keep-alive, at most 2/3 s before the kill).
    assert_eq!(claims_of(&etcd, "node-a"), 2, "claims gone before the TTL");
    let gone = within(Duration::from_secs(10), || claims_of(&etcd, "node-a") == 0)
        .expect("node-a's claims did not expire");
    assert!(
        gone >= Duration::from_millis(1000),
        "expired after {gone:?}"
    );
    // Node B frees the number only node A used, and keeps the one it uses too.
    within(Duration::from_secs(5), || etcd.get(&solo_key).is_none())
        .expect("the dead node's identity was not freed");
    assert_eq!(etcd.get(&shared_key), Some(shared.to_string()));
    assert_eq!(claims_of(&etcd, "node-b"), 1);
}

#[test]
fn kvstore_lease_outage_keeps_the_node_and_it_resynchronises() {
    let Some(mut etcd) = Etcd::start("kvstore_lease_outage_keeps_the_node_and_it_resynchronises")
    else {
        return;
    };
    let a = etcd.agent("node-a", &["--kvstore-lease-ttl", "2"]);
    let web = add(&a, 1, "web");

    // etcd away: what the node has stays, a known label set needs no call, a new one is
    // refused whole.
    etcd.stop();
    assert_eq!(add(&a, 2, "web"), web);
    assert_eq!(identity(&a, 1), web);
    let out = a.cli(&[
        "endpoint", "add", "--id", "3", "--labels", "id=new", "--iface", "lxc3",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("kvstore"), "{err}");
    let list = a.ok(&["endpoint", "list", "-o", "json"]);
    assert!(!list.contains("lxc3"), "{list}");
    // Longer than the TTL: etcd extends leases when it starts again.
    std::thread::sleep(Duration::from_secs(3));

    // etcd back: new label sets are numbered again and the claims are still there.
    etcd.restart();
    within(Duration::from_secs(15), || {
        a.cli(&[
            "endpoint", "add", "--id", "3", "--labels", "id=new", "--iface", "lxc3",
        ])
        .status
        .success()
    })
    .expect("no number after etcd came back");
    assert_eq!(claims_of(&etcd, "node-a"), 2);

    // The lease expired meanwhile (revoked here): the claims go, and the agent puts them
    // again under a new lease, with the same numbers.
    assert!(etcd.revoke_all_leases() >= 1);
    within(Duration::from_secs(10), || claims_of(&etcd, "node-a") == 2)
        .expect("claims not put again under a new lease");
    assert_eq!(
        etcd.get(&format!("{PREFIX}/value/container:id=web")),
        Some(web.to_string())
    );
    assert_eq!(add(&a, 4, "web"), web);
}
