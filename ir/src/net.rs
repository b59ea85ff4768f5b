//! CIDRs and CIDR sets (`toCIDR`, `toCIDRSet`, NetworkPolicy `ipBlock`).

pub use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A prefix minus excepted sub-prefixes. `except` entries are inside `cidr` (the front end
/// rejects others) and sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CidrSet {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl CidrSet {
    pub fn new(cidr: IpNet, mut except: Vec<IpNet>) -> Self {
        except.sort();
        except.dedup();
        CidrSet {
            cidr: cidr.trunc(),
            except,
        }
    }
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        self.cidr.contains(&addr) && !self.except.iter().any(|e| e.contains(&addr))
    }
}

impl fmt::Display for CidrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        for e in &self.except {
            write!(f, " except {e}")?;
        }
        Ok(())
    }
}

/// The CIDR sets a `cidrGroupRef` with `except` stands for: each of the group's prefixes minus
/// the excepted prefixes inside it; a prefix inside an excepted one is left out whole (Cilium
/// selects the group's CIDR identities that carry no excepted `cidr:` label, and a prefix's
/// identity carries the labels of the prefixes containing it).
pub fn group_sets(cidrs: &[IpNet], except: &[IpNet]) -> Vec<CidrSet> {
    let mut out: Vec<CidrSet> = cidrs
        .iter()
        .map(IpNet::trunc)
        .filter(|p| !except.iter().any(|e| e.contains(p)))
        .map(|p| {
            let inside = except.iter().filter(|e| p.contains(*e)).copied().collect();
            CidrSet::new(p, inside)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    #[test]
    fn group_sets_apply_excepts_per_prefix() {
        let cidrs = [
            net("10.48.0.0/24"),
            net("10.16.0.0/24"),
            net("192.0.2.0/28"),
        ];
        let except = [net("10.48.0.128/25"), net("192.0.2.0/24")];
        assert_eq!(
            group_sets(&cidrs, &except),
            vec![
                CidrSet::new(net("10.16.0.0/24"), vec![]),
                CidrSet::new(net("10.48.0.0/24"), vec![net("10.48.0.128/25")]),
            ]
        );
        assert!(group_sets(&[], &except).is_empty());
    }
}
