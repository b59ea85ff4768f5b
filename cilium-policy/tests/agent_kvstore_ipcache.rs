//! The cluster-wide ipcache through a real etcd (Debian `etcd-server`): three agents (three
//! nodes, no datapath) each know only their local endpoints, publish them, and see the others'
//! through the etcd watch: a policy applied on every node allows a remote client of one node
//! and denies another's, a moved endpoint (deleted on one node, added on another with a new
//! address) is seen as such within a second, an entry another node wrote that does not parse
//! is skipped without stopping the valid ones, and a killed node's endpoints leave the others
//! after its lease TTL. The datapath side is `root_multinode_etcd`. Without an `etcd` binary
//! the test prints a skip line and returns.

mod agent_harness;
mod etcd_harness;

use etcd_harness::{add_at as add, identity, resolve, sees, Etcd};
use std::time::Duration;

const POLICY: &str = "testdata/getting-started/docker/l3_l4_policy.json";
const WORLD: u64 = 2;

fn repo(p: &str) -> String {
    format!("{}/../{p}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn kvstore_ipcache_remote_endpoints_are_watched_moved_validated_and_expire() {
    let Some(etcd) =
        Etcd::start("kvstore_ipcache_remote_endpoints_are_watched_moved_validated_and_expire")
    else {
        return;
    };
    let ttl = ["--kvstore-lease-ttl", "2"];
    let (a, b) = (etcd.agent("node-a", &ttl), etcd.agent("node-b", &ttl));
    let mut c = etcd.agent("node-c", &ttl);
    for agent in [&a, &b, &c] {
        agent.ok(&["apply", "-f", &repo(POLICY)]);
    }
    // app1 on node B takes port 80 from app2 only; app2 runs on node A, app3 on node C.
    add(&b, 1, "app1", "10.200.2.1");
    let app2 = add(&a, 1, "app2", "10.200.1.1");
    let app3 = add(&c, 1, "app3", "10.200.3.1");
    let second = Duration::from_secs(1);
    sees(&b, "10.200.1.1", (app2, "allowed"), Duration::from_secs(5));
    sees(&b, "10.200.3.1", (app3, "denied"), second);

    // app2 moves from node A to node C with a new address.
    a.ok(&["endpoint", "delete", "1"]);
    assert_eq!(add(&c, 2, "app2", "10.200.3.2"), app2);
    sees(&b, "10.200.3.2", (app2, "allowed"), second);
    sees(&b, "10.200.1.1", (WORLD, "denied"), second);

    // Entries another node wrote that do not parse are skipped; the valid ones still apply.
    let prefix = agent::kvstore::ipcache::DEFAULT_PREFIX;
    etcd.put(&format!("{prefix}/node-x/1"), "{");
    etcd.put(
        &format!("{prefix}/node-x/2"),
        &format!(
            r#"{{"identity": {app2}, "labels": ["container:id=app2"], "ips": ["10.200.9.9"]}}"#
        ),
    );
    etcd.put(
        &format!("{prefix}/node-x/3"),
        r#"{"identity": 300, "labels": ["container:id=app2"], "ips": ["10.200.2.1"]}"#,
    );
    sees(&b, "10.200.9.9", (app2, "allowed"), second);
    // node-x/3 claims node B's own address: refused, the local endpoint keeps it. It was put
    // after node-x/2, so its refusal may be logged a moment after node-x/2 shows.
    let log = b.log_with("already belongs to", second);
    assert!(
        log.contains("skipping another node's ipcache entry") && log.contains("node-x/1"),
        "{log}"
    );
    assert_eq!(identity(&b, 1), resolve(&b, "10.200.2.1", 1).0);

    // Node C dies: its endpoints leave node B's ipcache after its lease (2 s).
    c.kill();
    let gone = sees(&b, "10.200.3.2", (WORLD, "denied"), Duration::from_secs(10));
    assert!(gone >= Duration::from_millis(1000), "gone after {gone:?}");
    sees(&b, "10.200.3.1", (WORLD, "denied"), second);
}
