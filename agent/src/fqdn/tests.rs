use super::*;

fn learned(addr: &str, ttl: u32, names: &[&str]) -> Learned {
    Learned {
        addr: addr.parse().unwrap(),
        ttl,
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn allowed() -> Vec<DnsRule> {
    vec![DnsRule::MatchPattern("*.allowed.test".into())]
}

fn cfg(min_ttl: u64, max: usize) -> FqdnConfig {
    FqdnConfig {
        min_ttl: Duration::from_secs(min_ttl),
        max_addresses: max,
    }
}

#[test]
fn only_addresses_a_selector_matches_are_learned() {
    let mut c = FqdnCache::default();
    let now = Instant::now();
    let got = c.learn(
        now,
        &[
            learned("192.0.2.1", 30, &["api.allowed.test."]),
            learned("192.0.2.2", 30, &["blocked.test."]),
            // Through a CNAME: the alias matches.
            learned("192.0.2.3", 30, &["www.allowed.test.", "edge.cdn.test."]),
        ],
        &allowed(),
        &cfg(0, 10),
    );
    let a = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(got.changed, [a("192.0.2.1"), a("192.0.2.3")].into());
    assert_eq!((got.new, got.refused), (2, 0));
    assert_eq!(c.len(), 2);
    assert_eq!(
        selectors_of(c.names(a("192.0.2.3")), &allowed()),
        allowed().into_iter().collect()
    );
    // Learned again: nothing changes.
    let again = c.learn(
        now,
        &[learned("192.0.2.1", 30, &["api.allowed.test."])],
        &allowed(),
        &cfg(0, 10),
    );
    assert!(again.changed.is_empty());
}

#[test]
fn entries_expire_at_their_ttl_raised_to_the_minimum() {
    let mut c = FqdnCache::default();
    let t0 = Instant::now();
    let s = |n| Duration::from_secs(n);
    c.learn(
        t0,
        &[learned("192.0.2.1", 2, &["a.allowed.test."])],
        &allowed(),
        &cfg(0, 10),
    );
    c.learn(
        t0,
        &[learned("192.0.2.2", 2, &["b.allowed.test."])],
        &allowed(),
        &cfg(10, 10),
    );
    assert_eq!(c.next_deadline(), Some(t0 + s(2)));
    assert!(c.expire(t0 + s(1)).is_empty());
    let gone = c.expire(t0 + s(2));
    assert_eq!(gone, ["192.0.2.1".parse().unwrap()].into());
    assert_eq!(c.len(), 1);
    assert_eq!(c.next_deadline(), Some(t0 + s(10)), "min TTL 10 s");
    // Learned again later: it lives until the later expiry.
    c.learn(
        t0 + s(5),
        &[learned("192.0.2.2", 30, &["b.allowed.test."])],
        &allowed(),
        &cfg(0, 10),
    );
    assert!(c.expire(t0 + s(10)).is_empty());
    assert_eq!(c.expire(t0 + s(35)).len(), 1);
    assert!(c.is_empty() && c.next_deadline().is_none());
}

#[test]
fn a_full_cache_refuses_new_addresses_but_refreshes_known_ones() {
    let mut c = FqdnCache::default();
    let now = Instant::now();
    let one = cfg(0, 1);
    c.learn(
        now,
        &[learned("192.0.2.1", 5, &["a.allowed.test."])],
        &allowed(),
        &one,
    );
    let got = c.learn(
        now,
        &[
            learned("192.0.2.2", 5, &["b.allowed.test."]),
            learned("192.0.2.1", 5, &["c.allowed.test."]),
        ],
        &allowed(),
        &one,
    );
    assert_eq!((got.new, got.refused), (0, 1));
    assert_eq!(got.changed, ["192.0.2.1".parse().unwrap()].into());
    assert_eq!(c.names("192.0.2.1".parse().unwrap()).count(), 2);
}

mod agent {
    use super::*;
    use crate::state::tests::{agent, endpoint, put};
    use crate::state::Agent;
    use ir::{Direction, NumericIdentity};

    const POLICY: &str = r#"[{"endpointSelector": {"matchLabels": {"app": "client"}},
        "egress": [{"toFQDNs": [{"matchPattern": "*.ALLOWED.test"}],
                    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}]"#;

    /// Whether endpoint 1 may open TCP to `addr:80`, by its map state.
    fn allowed(a: &Agent, addr: IpAddr) -> bool {
        let w = a.world();
        let id = w.engine.cluster.ipcache().lookup(addr);
        let pol = &w.policies[&1];
        compiler::policy::lookup(pol, Direction::Egress, id, Some(addr), 6, 80).allowed()
    }

    fn api(ttl: u32) -> Vec<Learned> {
        vec![learned("192.0.2.80", ttl, &["api.allowed.test."])]
    }

    #[test]
    fn learned_addresses_follow_the_policy_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = agent(dir.path());
        a.cfg.fqdn.min_ttl = Duration::ZERO;
        a.put_endpoint(endpoint(1, &["app=client"], "10.0.0.1"))
            .unwrap();
        put(&mut a, "fqdn.json", POLICY).unwrap();
        let addr: IpAddr = "192.0.2.80".parse().unwrap();
        assert!(!allowed(&a, addr), "denied before learning");

        let got = a.learn_fqdn(&api(30)).unwrap();
        assert_eq!((got.new, got.refused), (1, 0));
        assert!(allowed(&a, addr), "allowed once learned");
        let id = a.world().engine.cluster.ipcache().lookup(addr);
        let labels = a
            .world()
            .engine
            .cluster
            .identity(id)
            .unwrap()
            .labels
            .to_string();
        assert!(labels.contains("fqdn:*.allowed.test"), "{labels}");

        // A policy without the selector: the address loses its identity, the cache keeps it.
        let other = POLICY.replace("*.ALLOWED.test", "*.other.test");
        put(&mut a, "fqdn.json", &other).unwrap();
        assert!(!allowed(&a, addr));
        assert_eq!(
            a.world().engine.cluster.ipcache().lookup(addr),
            NumericIdentity::WORLD
        );
        // The selector back: the learned address is selected again without a new answer.
        put(&mut a, "fqdn.json", POLICY).unwrap();
        assert!(allowed(&a, addr), "re-labelled when the selector came back");

        // A TTL of 0 (minimum 0): expired at once.
        a.learn_fqdn(&api(0)).unwrap();
        let counters = FqdnCounters::default();
        assert!(a.fqdn_deadline().is_some());
        // The 30 s entry still holds it.
        a.expire_fqdn(&counters);
        assert!(allowed(&a, addr));
        a.world_mut().fqdn = FqdnCache::default();
        a.learn_fqdn(&api(0)).unwrap();
        assert!(allowed(&a, addr));
        assert_eq!(a.expire_fqdn(&counters), 1);
        assert!(!allowed(&a, addr), "denied after expiry");
        assert_eq!(counters.expired.load(Ordering::Relaxed), 1);
        // Nothing left to expire; the writer still wakes for the file's held-back write.
        assert!(a.world().fqdn.next_deadline().is_none());
        assert!(a.fqdn_file.due().is_some());
        assert_eq!(a.fqdn_deadline(), a.fqdn_file.due());
    }

    /// A restarted agent restores what the previous one learned, before its first sync, and
    /// leaves out what its policy no longer selects.
    #[test]
    fn a_restarted_agent_keeps_what_was_learned() {
        let dir = tempfile::tempdir().unwrap();
        let addr: IpAddr = "192.0.2.80".parse().unwrap();
        {
            let mut a = agent(dir.path());
            a.put_endpoint(endpoint(1, &["app=client"], "10.0.0.1"))
                .unwrap();
            put(&mut a, "fqdn.json", POLICY).unwrap();
            a.learn_fqdn(&api(300)).unwrap();
            assert!(allowed(&a, addr));
        }
        let a = agent(dir.path());
        assert!(allowed(&a, addr), "restored");
        let left = a.world().fqdn.next_deadline().unwrap() - Instant::now();
        assert!(
            left > Duration::from_secs(290) && left <= Duration::from_secs(300),
            "{left:?}"
        );
        drop(a);

        // The same file under a policy without the selector: nothing to restore.
        let mut a = agent(dir.path());
        let other = POLICY.replace("*.ALLOWED.test", "*.other.test");
        put(&mut a, "fqdn.json", &other).unwrap();
        drop(a);
        let a = agent(dir.path());
        assert!(a.world().fqdn.is_empty());
        assert!(!allowed(&a, addr));
    }
}
