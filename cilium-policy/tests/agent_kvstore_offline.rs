//! An agent restarted while etcd does not answer, with a real etcd (Debian `etcd-server`):
//! it starts from the identity numbers and the other nodes' endpoints it kept in its state
//! directory (same numbers, remote endpoints still in its ipcache), refuses label sets it
//! never numbered as without the cache, and once etcd is back claims its numbers under its
//! new lease while the watch's first read replaces the kept remote endpoints. A bad cache
//! file is ignored with a warning naming it: the agent behaves as without it. The agents run
//! without a datapath (no root needed). Without an `etcd` binary the test prints a skip line
//! and returns.

mod agent_harness;
mod etcd_harness;

use agent_harness::Agent;
use etcd_harness::{add_at, claim_leases, claims_of, identity, resolve, within, Etcd, PREFIX};
use std::time::Duration;

const WORLD: u64 = 2;
const TTL: [&str; 2] = ["--kvstore-lease-ttl", "2"];

/// Waits up to 10 s for `agent` to see address `from` with identity `want`.
fn sees_id(agent: &Agent, from: &str, want: u64) {
    within(Duration::from_secs(10), || {
        resolve(agent, from, 1).0 == want
    })
    .unwrap_or_else(|| {
        panic!(
            "{from}: {:?}, want identity {want}\n{}",
            resolve(agent, from, 1),
            agent.log()
        )
    });
}

/// Node A with endpoint 1 (`id=web`) and node B with endpoints 1 (`id=client`) and 2
/// (`id=gone`), seen by node A: the identities of web, client and gone.
fn two_nodes(etcd: &Etcd) -> (Agent, Agent, [u64; 3]) {
    let (a, b) = (etcd.agent("node-a", &TTL), etcd.agent("node-b", &[]));
    let web = add_at(&a, 1, "web", "10.200.1.1");
    let client = add_at(&b, 1, "client", "10.200.2.1");
    let gone = add_at(&b, 2, "gone", "10.200.2.2");
    sees_id(&a, "10.200.2.1", client);
    sees_id(&a, "10.200.2.2", gone);
    // Kept on disk in the background, shortly after the writer applied them.
    let kept = a
        .dir
        .path
        .join("state")
        .join(agent::kvstore::remote_cache::FILE);
    within(Duration::from_secs(10), || {
        std::fs::read_to_string(&kept)
            .is_ok_and(|t| t.contains("node-b/1") && t.contains("node-b/2"))
    })
    .expect("node B's endpoints kept on disk");
    (a, b, [web, client, gone])
}

#[test]
fn kvstore_offline_restart_keeps_numbers_and_remote_endpoints_then_claims_again() {
    let Some(mut etcd) =
        Etcd::start("kvstore_offline_restart_keeps_numbers_and_remote_endpoints_then_claims_again")
    else {
        return;
    };
    let (mut a, b, [web, client, gone]) = two_nodes(&etcd);
    let old_lease = claim_leases(&etcd, "node-a");
    assert_eq!((claims_of(&etcd, "node-a"), old_lease.len()), (3, 1));

    // Node A stops; its claims expire with its lease, so that web's number, which only node A
    // used, is freed; node B's endpoint 2 leaves etcd meanwhile; then etcd stops.
    a.kill();
    b.ok(&["endpoint", "delete", "2"]);
    let gone_key = format!("{}/node-b/2", agent::kvstore::ipcache::DEFAULT_PREFIX);
    let web_key = format!("{PREFIX}/value/container:id=web");
    within(Duration::from_secs(10), || {
        etcd.get(&gone_key).is_none() && etcd.get(&web_key).is_none()
    })
    .expect("node B's endpoint 2 or web's number still in etcd");
    etcd.stop();

    // Node A starts without etcd: same number, node B's endpoints still in its ipcache (the
    // one that left etcd too: node A cannot know yet).
    a.spawn();
    assert_eq!(identity(&a, 1), web);
    assert_eq!(resolve(&a, "10.200.2.1", 1).0, client);
    assert_eq!(resolve(&a, "10.200.2.2", 1).0, gone);
    assert!(a.log().contains("numbered from the cache"), "{}", a.log());

    // A label set it never numbered still needs etcd: refused whole, as without the cache.
    let out = a.cli(&[
        "endpoint", "add", "--id", "2", "--labels", "id=new", "--iface", "lxc2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("kvstore"), "{err}");
    assert!(!a.ok(&["endpoint", "list", "-o", "json"]).contains("lxc2"));

    // etcd back: the watch's read drops the endpoint that left, keeps the other, and node A's
    // claims (web, and client as a remote endpoint's label set) are under its new lease, with
    // the same numbers (web's stored again).
    etcd.restart();
    sees_id(&a, "10.200.2.2", WORLD);
    assert_eq!(resolve(&a, "10.200.2.1", 1).0, client);
    let reclaimed = within(Duration::from_secs(10), || {
        let leases = claim_leases(&etcd, "node-a");
        claims_of(&etcd, "node-a") == 2 && leases.len() == 1 && leases != old_lease
    });
    assert!(
        reclaimed.is_some(),
        "claims {:?}\n{}",
        claim_leases(&etcd, "node-a"),
        a.log()
    );
    for (app, n) in [("web", web), ("client", client)] {
        let key = format!("{PREFIX}/value/container:id={app}");
        assert_eq!(etcd.get(&key), Some(n.to_string()), "{app}");
    }
    within(Duration::from_secs(10), || {
        a.cli(&[
            "endpoint", "add", "--id", "2", "--labels", "id=new", "--iface", "lxc2",
        ])
        .status
        .success()
    })
    .expect("no number for a new label set after etcd came back");
}

#[test]
fn kvstore_offline_a_bad_cache_file_is_ignored_with_the_file_named() {
    let Some(mut etcd) =
        Etcd::start("kvstore_offline_a_bad_cache_file_is_ignored_with_the_file_named")
    else {
        return;
    };
    let (mut a, _b, [web, client, _]) = two_nodes(&etcd);
    a.kill();
    etcd.stop();
    let state = a.dir.path.join("state");
    let (ids, remote) = (
        state.join("kvstore-identities.json"),
        state.join("kvstore-remote.json"),
    );
    let good = std::fs::read_to_string(&ids).expect("the identity cache");
    assert!(good.contains("container:id=web"), "{good}");

    // A cut identity cache is not used: without etcd, the endpoint has no number and the agent
    // refuses to start, as without a cache, after a warning naming the file and the place.
    std::fs::write(&ids, &good[..good.len() / 2]).unwrap();
    let out = a.start_refused();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}:1:", ids.display()))
            && err.contains("cached identity numbers are not used")
            && err.contains("cluster-wide identity allocation failed"),
        "{err}"
    );

    // A kept remote endpoint with a reserved label: the whole file is ignored (the agent
    // starts from its good identity cache without node B's endpoints) until etcd answers.
    std::fs::write(&ids, &good).unwrap();
    let kept = std::fs::read_to_string(&remote).expect("the remote cache");
    assert!(kept.contains("container:id=client"), "{kept}");
    std::fs::write(
        &remote,
        kept.replace("container:id=client", "reserved:host"),
    )
    .unwrap();
    a.spawn();
    assert_eq!(identity(&a, 1), web);
    assert_eq!(resolve(&a, "10.200.2.1", 1).0, WORLD);
    let log = a.log();
    assert!(
        log.contains(&remote.display().to_string()) && log.contains("reserved label"),
        "{log}"
    );
    etcd.restart();
    sees_id(&a, "10.200.2.1", client);
}
