//! Addresses learned from allowed DNS answers (`toFQDNs`, the agent's DNS proxy): each is a
//! host prefix with an identity of its own whose labels are its CIDR labels (so `toCIDR`
//! peers and the `world` entities still select it) plus `fqdn:<selector>` for every FQDN
//! selector matching a name it was an answer for. Its ipcache entry is set only where no
//! endpoint, node or service address already is (those keep their identity, as Cilium's
//! ipcache prefers them); an address whose selectors change gets a new identity.

use super::{Cluster, ClusterError};
use crate::identity::{alloc::key_of, cidr_labels, IdentityKind};
use ir::{DnsRule, IpNet, LabelSet, NumericIdentity};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What [`Cluster::set_fqdn`] did to the identities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FqdnChange {
    /// The address's previous identity, released.
    pub removed: Option<NumericIdentity>,
    /// Its new identity, allocated.
    pub added: Option<NumericIdentity>,
}

/// The labels of a learned address selected by `selectors` (canonical FQDN selectors).
pub fn fqdn_labels(addr: IpAddr, selectors: &BTreeSet<DnsRule>) -> LabelSet {
    let mut labels = cidr_labels(IpNet::from(addr));
    for s in selectors {
        labels.insert(crate::fqdn::selector_label(s));
    }
    labels
}

impl Cluster {
    /// The learned addresses and their identities.
    pub fn fqdn_addresses(&self) -> impl Iterator<Item = (IpAddr, NumericIdentity)> + '_ {
        self.fqdn.iter().map(|(a, id)| (*a, *id))
    }

    /// Whether the ipcache entry of `prefix` may be taken by a learned address: free, or held
    /// by a CIDR identity (a `toCIDR` host prefix, or the address's previous learned identity).
    fn learnable(&self, prefix: &IpNet) -> bool {
        match self.ipcache.entries.get(prefix) {
            None => true,
            Some(id) => matches!(
                self.identities.get(id).map(|i| &i.kind),
                Some(IdentityKind::Cidr(_))
            ),
        }
    }

    /// Makes `addr` a learned address selected by `selectors` (canonical FQDN selectors), or
    /// forgets it when `selectors` is empty. Idempotent; an address the ipcache gives to an
    /// endpoint, a node or a service is left alone (nothing changes).
    pub fn set_fqdn(
        &mut self,
        addr: IpAddr,
        selectors: &BTreeSet<DnsRule>,
    ) -> Result<FqdnChange, ClusterError> {
        let prefix = IpNet::from(addr);
        let labels = fqdn_labels(addr, selectors);
        let key = key_of(&labels);
        let old = self.fqdn.get(&addr).copied();
        if selectors.is_empty() || !self.learnable(&prefix) {
            return Ok(FqdnChange {
                removed: old.map(|id| self.forget_fqdn(addr, id)),
                added: None,
            });
        }
        if old.is_some() && old == self.cidr_ids.get(&key) {
            return Ok(FqdnChange::default());
        }
        let (id, _) = self.allocate_cidr_identity(labels, &key, prefix)?;
        let removed = old.map(|o| self.forget_fqdn(addr, o));
        self.ipcache.entries.insert(prefix, id);
        self.fqdn.insert(addr, id);
        Ok(FqdnChange {
            removed,
            added: Some(id),
        })
    }

    /// Releases the learned identity `id` of `addr`; its ipcache entry goes back to the
    /// address's `toCIDR` identity, if a rule has one, else away.
    fn forget_fqdn(&mut self, addr: IpAddr, id: NumericIdentity) -> NumericIdentity {
        let prefix = IpNet::from(addr);
        self.fqdn.remove(&addr);
        if let Some(info) = self.identities.remove(&id) {
            self.cidr_ids.release(&key_of(&info.labels));
        }
        if self.ipcache.entries.get(&prefix) == Some(&id) {
            match self.cidr_identity(prefix) {
                Some(c) if c != NumericIdentity::WORLD => self.ipcache.entries.insert(prefix, c),
                _ => self.ipcache.entries.remove(&prefix),
            };
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;

    fn sels(p: &[&str]) -> BTreeSet<DnsRule> {
        p.iter()
            .map(|s| DnsRule::MatchPattern(s.to_string()))
            .collect()
    }

    #[test]
    fn learned_addresses_get_their_own_identity_and_give_it_back() {
        let mut c = Cluster::new(ClusterConfig::default());
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let first = c.set_fqdn(a, &sels(&["*.allowed.test"])).unwrap();
        let id = first.added.unwrap();
        assert_eq!(first.removed, None);
        assert_eq!(c.ipcache().lookup(a), id);
        let info = c.identity(id).unwrap();
        assert_eq!(info.kind, IdentityKind::Cidr(IpNet::from(a)));
        let text = info.labels.to_string();
        assert!(text.contains("fqdn:*.allowed.test"), "{text}");
        assert!(text.contains("cidr:192.0.2.10/32") && text.contains("reserved:world"));
        // Same selectors: nothing changes.
        let again = c.set_fqdn(a, &sels(&["*.allowed.test"])).unwrap();
        assert_eq!(again, FqdnChange::default());
        // Another selector set: a new identity replaces the old one.
        let more = c.set_fqdn(a, &sels(&["*.allowed.test", "api.*"])).unwrap();
        assert_eq!(more.removed, Some(id));
        let id2 = more.added.unwrap();
        assert!(c.identity(id).is_none());
        assert_eq!(c.ipcache().lookup(a), id2);
        // Forgotten: the ipcache entry goes.
        let gone = c.set_fqdn(a, &BTreeSet::new()).unwrap();
        assert_eq!(gone.removed, Some(id2));
        assert_eq!(c.ipcache().lookup(a), NumericIdentity::WORLD);
        assert_eq!(c.fqdn_addresses().count(), 0);
    }

    #[test]
    fn a_cidr_host_prefix_comes_back_and_endpoints_keep_their_address() {
        let mut c = Cluster::new(ClusterConfig::default());
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let cidr = c.add_cidr(IpNet::from(a)).unwrap();
        let learned = c.set_fqdn(a, &sels(&["x.test"])).unwrap().added.unwrap();
        assert_eq!(c.ipcache().lookup(a), learned);
        c.set_fqdn(a, &BTreeSet::new()).unwrap();
        assert_eq!(c.ipcache().lookup(a), cidr, "the toCIDR identity is back");

        let b: IpAddr = "10.0.0.7".parse().unwrap();
        let ep = crate::cluster::ClusterEndpoint {
            name: "default/web".into(),
            namespace: Some("default".into()),
            kind: "Pod".into(),
            workload: None,
            labels: LabelSet::new(vec![ir::Label::k8s("app", "web")]),
            identity: NumericIdentity::WILDCARD,
            ips: vec![b],
            ports: vec![],
            origin: None,
        };
        let ep_id = c.add_endpoint(ep).unwrap().identity;
        let none = c.set_fqdn(b, &sels(&["x.test"])).unwrap();
        assert_eq!(
            none,
            FqdnChange::default(),
            "an endpoint's address is not learned"
        );
        assert_eq!(c.ipcache().lookup(b), ep_id);
    }
}
