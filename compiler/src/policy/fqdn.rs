//! Learned `toFQDNs` addresses in the engine: setting an address's FQDN selectors changes its
//! identity (`Cluster::set_fqdn`), and only the entries keyed by the old and the new identity
//! are recomputed, in the groups whose rules use a selector that changed (as for an endpoint
//! added or removed).

use super::engine::{MapDelta, PolicyEngine};
use crate::cluster::ClusterError;
use crate::selcache::PeerSel;
use ir::DnsRule;
use std::collections::BTreeSet;
use std::net::IpAddr;

impl PolicyEngine {
    /// The FQDN selectors (canonical `toFQDNs` entries) of the rules in force, sorted.
    pub fn fqdn_selectors(&self) -> Vec<DnsRule> {
        let mut v: Vec<DnsRule> = self
            .rules_by_sel
            .keys()
            .filter_map(|s| match s {
                PeerSel::Fqdn(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// Makes `addr` a learned address selected by `selectors` (canonical FQDN selectors;
    /// empty: forgets it). Returns the deltas of every endpoint whose map state changed.
    pub fn set_fqdn(
        &mut self,
        addr: IpAddr,
        selectors: &BTreeSet<DnsRule>,
    ) -> Result<Vec<MapDelta>, ClusterError> {
        let change = self.cluster.set_fqdn(addr, selectors)?;
        let mut deltas = Vec::new();
        if let Some(old) = change.removed {
            let changed = self.cache.identity_removed(old);
            self.subjects.remove(&old);
            deltas.extend(self.update_peers(&changed, old, false));
        }
        if let Some(new) = change.added {
            let changed = match self.cluster.identity(new) {
                Some(info) => self.cache.identity_added(&self.policy, info),
                None => Vec::new(),
            };
            self.record_subject(&changed, new);
            deltas.extend(self.update_peers(&changed, new, false));
        }
        Ok(deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, ClusterConfig};
    use crate::policy::lookup;
    use crate::testkit::{self, rule};
    use ir::*;

    /// client may reach `*.allowed.test` on 80/TCP.
    fn engine() -> PolicyEngine {
        let mut p = PolicySet::default();
        p.add_file("fqdn.yaml");
        let client = testkit::selector(&mut p, &[("k8s:id", "client")]);
        p.push_rule(rule(
            client,
            Direction::Egress,
            Action::Allow,
            PeerSet::Some(vec![Peer::Fqdn(DnsRule::MatchPattern(
                "*.Allowed.test".into(),
            ))]),
            vec![testkit::tcp(80, 80)],
        ));
        let mut c = Cluster::new(ClusterConfig::default());
        let ip = "10.0.0.1".parse().unwrap();
        let ep = testkit::pod_at("default", "client", &[("id", "client")], &[ip]);
        c.add_endpoint(testkit::cluster_endpoint(&ep, None))
            .unwrap();
        PolicyEngine::new(p, c)
    }

    fn egress(e: &PolicyEngine, addr: IpAddr, port: u16) -> bool {
        let id = e.cluster.ipcache().lookup(addr);
        let pol = e.policy_of("default/client").unwrap();
        lookup(pol, Direction::Egress, id, Some(addr), 6, port).allowed()
    }

    #[test]
    fn a_learned_address_is_allowed_by_its_selector_until_forgotten() {
        let mut e = engine();
        let sel = DnsRule::MatchPattern("*.allowed.test".into());
        assert_eq!(e.fqdn_selectors(), vec![sel.clone()]);
        let a: IpAddr = "192.0.2.80".parse().unwrap();
        assert!(!egress(&e, a, 80), "denied before learning");

        let deltas = e.set_fqdn(a, &[sel.clone()].into()).unwrap();
        let id = e.cluster.ipcache().lookup(a);
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].endpoint, "default/client");
        assert_eq!(deltas[0].added.len(), 1, "one entry: {deltas:?}");
        assert_eq!(deltas[0].added[0].0.identity, id);
        assert!(egress(&e, a, 80));
        assert!(!egress(&e, a, 81), "only the rule's port");

        // Another selector that no rule uses changes the identity: the entry follows it.
        let other = DnsRule::MatchName("unused.test".into());
        let deltas = e.set_fqdn(a, &[sel.clone(), other].into()).unwrap();
        let added: usize = deltas.iter().map(|d| d.added.len()).sum();
        let removed: usize = deltas.iter().map(|d| d.removed.len()).sum();
        assert_eq!((added, removed), (1, 1), "{deltas:?}");
        assert!(egress(&e, a, 80));

        let deltas = e.set_fqdn(a, &BTreeSet::new()).unwrap();
        assert_eq!(deltas[0].removed.len(), 1);
        assert!(!egress(&e, a, 80), "denied once forgotten");
        assert!(e.policy_of("default/client").unwrap().entries.is_empty());
    }

    #[test]
    fn an_address_no_selector_matches_adds_no_entry() {
        let mut e = engine();
        let a: IpAddr = "192.0.2.81".parse().unwrap();
        let other = DnsRule::MatchName("unused.test".into());
        let deltas = e.set_fqdn(a, &[other].into()).unwrap();
        assert!(deltas.is_empty(), "{deltas:?}");
        assert!(!egress(&e, a, 80));
    }
}
